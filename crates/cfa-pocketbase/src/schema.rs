//! Our PocketBase schema: the migrations and hooks of `pocketbase/` (embedded), `install`
//! into a PocketBase directory (with a generated migration that makes `agent_stacks.template`
//! follow the template catalogue), and `check` of a live instance against what we expect.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::client::PocketBaseClient;
use crate::error::PocketBaseError;

/// `pocketbase/pb_migrations/*`, in the order PocketBase applies them (by file name).
pub const MIGRATIONS: [(&str, &str); 6] = [
    (
        "1763900000_cfa_tenants.js",
        include_str!("../../../pocketbase/pb_migrations/1763900000_cfa_tenants.js"),
    ),
    (
        "1763900001_cfa_agent_stacks.js",
        include_str!("../../../pocketbase/pb_migrations/1763900001_cfa_agent_stacks.js"),
    ),
    (
        "1763900002_cfa_audit_log.js",
        include_str!("../../../pocketbase/pb_migrations/1763900002_cfa_audit_log.js"),
    ),
    (
        "1763900003_cfa_tenants_resource_limits.js",
        include_str!("../../../pocketbase/pb_migrations/1763900003_cfa_tenants_resource_limits.js"),
    ),
    (
        "1763900004_cfa_stack_safety.js",
        include_str!("../../../pocketbase/pb_migrations/1763900004_cfa_stack_safety.js"),
    ),
    (
        "1763900005_cfa_verified_owners.js",
        include_str!("../../../pocketbase/pb_migrations/1763900005_cfa_verified_owners.js"),
    ),
];

/// `pocketbase/pb_hooks/*` (paths relative to `pb_hooks/`).
pub const HOOKS: [(&str, &str); 3] = [
    ("cfa_tenants.pb.js", include_str!("../../../pocketbase/pb_hooks/cfa_tenants.pb.js")),
    ("cfa_agent_stacks.pb.js", include_str!("../../../pocketbase/pb_hooks/cfa_agent_stacks.pb.js")),
    ("cfa/audit.js", include_str!("../../../pocketbase/pb_hooks/cfa/audit.js")),
];

/// The `pocketbase` arguments that point it at a directory `install` wrote into: its data,
/// our migrations and our hooks (`pocketbase serve` or `superuser upsert` come before them).
pub fn directory_arguments(pb_dir: &Path) -> [std::ffi::OsString; 6] {
    [
        "--dir".into(),
        pb_dir.join("pb_data").into(),
        "--migrationsDir".into(),
        pb_dir.join("pb_migrations").into(),
        "--hooksDir".into(),
        pb_dir.join("pb_hooks").into(),
    ]
}

/// The generated migration's file name part; one such file exists per installed catalogue.
const TEMPLATE_VALUES_MARKER: &str = "_cfa_template_values_";

pub const PLAN_TIERS: [&str; 4] = ["starter", "team", "business", "sovereign"];
pub const STACK_STATUSES: [&str; 5] = ["pending", "deploying", "running", "stopped", "error"];
pub const AUDIT_OUTCOMES: [&str; 3] = ["ok", "failed", "refused"];
const OWN_STACK: &str = "@request.auth.id != '' && tenant_id.user_id = @request.auth.id";
const ENGINE_FIELDS: [&str; 6] = [
    "coolify_project_uuid",
    "coolify_service_uuid",
    "domain",
    "resource_limits",
    "last_health_check",
    "error_message",
];
/// Appended to an owner-facing tenants update rule (pb_migrations/1763900000_cfa_tenants.js).
pub const TENANT_UPDATE_GUARD: &str = "@request.body.max_stacks:isset = false && @request.body.plan_tier:isset = false && @request.body.user_id:isset = false";
/// Appended to an owner-facing tenants create rule.
pub const TENANT_CREATE_GUARD: &str =
    "@request.body.max_stacks:isset = false && @request.body.plan_tier:isset = false";
/// Appended to both (pb_migrations/1763900003_cfa_tenants_resource_limits.js).
pub const TENANT_LIMITS_GUARD: &str = "@request.body.resource_limits:isset = false";
/// Appended to every non-empty tenant-facing rule of `tenants` and `agent_stacks`
/// (pb_migrations/1763900005_cfa_verified_owners.js): an unverified account is nobody's owner.
pub const VERIFIED_GUARD: &str = "@request.auth.verified = true";

/// `rule` with the verified guard appended, as the migration does.
pub fn verified(rule: &str) -> String {
    format!("({rule}) && {VERIFIED_GUARD}")
}

/// `agent_stacks.createRule`, as the migration builds it.
pub fn stack_create_rule() -> String {
    let mut terms = vec![OWN_STACK.to_owned(), "status = 'pending'".to_owned()];
    terms.extend(ENGINE_FIELDS.iter().map(|field| format!("@request.body.{field}:isset = false")));
    terms.join(" && ")
}

/// `agent_stacks.updateRule`, as the migration builds it.
pub fn stack_update_rule() -> String {
    let mut terms = vec![OWN_STACK.to_owned()];
    terms.extend(
        ["tenant_id", "stack_name", "template"]
            .iter()
            .chain(ENGINE_FIELDS.iter())
            .map(|field| format!("@request.body.{field}:changed = false")),
    );
    terms.push(
        "(@request.body.status:changed = false || (@request.body.status = 'stopped' && (status = 'running' || status = 'error')) || (@request.body.status = 'pending' && (status = 'stopped' || status = 'error')))"
            .to_owned(),
    );
    terms.join(" && ")
}

/// What `install` did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstallReport {
    pub written: Vec<PathBuf>,
    pub unchanged: Vec<PathBuf>,
    /// Generated migrations of an older catalogue, replaced by the current one.
    pub removed: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot write `{}`\nhint: is the PocketBase directory writable?", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "template name `{name}` cannot become a select value\nhint: template names are lowercase letters, digits and `-`"
    )]
    BadTemplateName { name: String },
    #[error(
        "the template catalogue is empty\nhint: point --templates-dir at the folder holding `<name>/template.toml`"
    )]
    NoTemplates,
}

/// Sorted, deduplicated, checked template names.
fn template_values(template_names: &[String]) -> Result<Vec<String>, InstallError> {
    let names: BTreeSet<String> = template_names.iter().cloned().collect();
    if names.is_empty() {
        return Err(InstallError::NoTemplates);
    }
    for name in &names {
        let valid = !name.is_empty()
            && name.len() <= 60
            && name
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
        if !valid {
            return Err(InstallError::BadTemplateName { name: name.chars().take(60).collect() });
        }
    }
    Ok(names.into_iter().collect())
}

fn catalogue_hash(values: &[String]) -> String {
    let digest = Sha256::digest(values.join("\n").as_bytes());
    hex::encode(&digest[..6])
}

/// The generated migration that sets `agent_stacks.template`'s values to the catalogue
/// (keeping values existing records still use, so no record becomes invalid).
pub fn template_values_migration(template_names: &[String]) -> Result<String, InstallError> {
    let values = template_values(template_names)?;
    let values_json = serde_json::to_string(&values).unwrap_or_else(|_| "[]".to_owned());
    Ok(format!(
        r#"/// <reference path="../pb_data/types.d.ts" />

// GENERATED by `cfa pb install` from the template catalogue (`templates/`); do not edit.
// Makes agent_stacks.template's select values follow the catalogue: a new template needs no
// code change, only `cfa pb install` and a PocketBase restart. Values still used by records
// are kept, so removing a template never makes an existing stack invalid.
migrate((app) => {{
  const catalogue = {values_json};
  const collection = app.findCollectionByNameOrId("agent_stacks");
  const field = collection.fields.getByName("template");
  const rows = arrayOf(new DynamicModel({{ template: "" }}));
  app.db().newQuery("SELECT DISTINCT `template` FROM `agent_stacks`").all(rows);
  const values = catalogue.slice();
  for (let index = 0; index < rows.length; index++) {{
    const used = rows[index].template;
    if (used && values.indexOf(used) < 0) {{
      values.push(used);
    }}
  }}
  values.sort();
  const current = [];
  for (let index = 0; index < field.values.length; index++) {{
    current.push(field.values[index]);
  }}
  current.sort();
  if (JSON.stringify(current) === JSON.stringify(values)) {{
    return;
  }}
  field.values = values;
  app.save(collection);
}}, (app) => {{
  // Nothing to undo: the previous catalogue's values are set by its own install.
}});
"#
    ))
}

/// Writes our migrations and hooks into `pb_dir/pb_migrations` and `pb_dir/pb_hooks`, and the
/// generated template-values migration for this catalogue. Files already up to date are left
/// alone, so running it twice changes nothing; files that are not ours are never touched.
pub fn install(pb_dir: &Path, template_names: &[String]) -> Result<InstallReport, InstallError> {
    let values = template_values(template_names)?;
    let generated = template_values_migration(&values)?;
    let hash = catalogue_hash(&values);
    let migrations_dir = pb_dir.join("pb_migrations");
    let hooks_dir = pb_dir.join("pb_hooks");
    let mut report = InstallReport::default();

    // The generated file keeps its name while the catalogue is the same; a changed catalogue
    // gets a new, later name (now), so PocketBase applies it even if this catalogue was
    // installed once before (A -> B -> A).
    let mut generated_name = None;
    if let Ok(entries) = std::fs::read_dir(&migrations_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.contains(TEMPLATE_VALUES_MARKER) {
                continue;
            }
            if name.ends_with(&format!("{TEMPLATE_VALUES_MARKER}{hash}.js"))
                && generated_name.is_none()
            {
                generated_name = Some(name);
            } else {
                let path = entry.path();
                std::fs::remove_file(&path)
                    .map_err(|source| InstallError::Write { path: path.clone(), source })?;
                report.removed.push(path);
            }
        }
    }
    let generated_name = generated_name.unwrap_or_else(|| {
        let now = jiff::Timestamp::now().as_second().max(1_763_900_100);
        format!("{now}{TEMPLATE_VALUES_MARKER}{hash}.js")
    });

    let mut files: Vec<(PathBuf, &str)> = Vec::new();
    for (name, text) in MIGRATIONS {
        files.push((migrations_dir.join(name), text));
    }
    files.push((migrations_dir.join(&generated_name), generated.as_str()));
    for (name, text) in HOOKS {
        files.push((hooks_dir.join(name), text));
    }
    for (path, text) in files {
        if std::fs::read_to_string(&path).is_ok_and(|existing| existing == text) {
            report.unchanged.push(path);
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|source| InstallError::Write { path: parent.to_owned(), source })?;
        }
        std::fs::write(&path, text)
            .map_err(|source| InstallError::Write { path: path.clone(), source })?;
        report.written.push(path);
    }
    Ok(report)
}

/// One difference between a live instance and our schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub collection: String,
    /// What differs: `missing collection`, `field status`, `updateRule`, ...
    pub subject: String,
    pub expected: String,
    pub actual: String,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: expected {}, found {}",
            self.collection, self.subject, self.expected, self.actual
        )
    }
}

struct ExpectedField {
    name: &'static str,
    kind: &'static str,
    values: Option<Vec<String>>,
}

fn field(name: &'static str, kind: &'static str) -> ExpectedField {
    ExpectedField { name, kind, values: None }
}

fn select(name: &'static str, values: Vec<String>) -> ExpectedField {
    ExpectedField { name, kind: "select", values: Some(values) }
}

fn owned(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| (*value).to_owned()).collect()
}

/// Compares the live instance's `tenants`, `agent_stacks` and `audit_log` with ours: fields
/// (name, type, select values), rules, and the indexes the rules and quota rely on.
pub async fn check(
    client: &PocketBaseClient,
    template_names: &[String],
) -> Result<Vec<Drift>, PocketBaseError> {
    let templates: Vec<String> =
        template_names.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
    let mut drift = Vec::new();

    // tenants: ours are only the billing fields, the owner relation and the guards.
    match client.collection_view("tenants").await? {
        None => drift.push(missing_collection("tenants")),
        Some(tenants) => {
            compare_fields(
                &mut drift,
                "tenants",
                &tenants,
                &[
                    field("user_id", "relation"),
                    field("max_stacks", "number"),
                    select("plan_tier", owned(&PLAN_TIERS)),
                    field("resource_limits", "json"),
                ],
                false,
            );
            for rule in ["listRule", "viewRule", "createRule", "updateRule"] {
                if let Some(actual) = tenants.get(rule).and_then(Value::as_str)
                    && !actual.is_empty()
                    && !actual.contains(VERIFIED_GUARD)
                {
                    drift.push(Drift {
                        collection: "tenants".into(),
                        subject: rule.into(),
                        expected: format!(
                            "null (superusers only) or a rule containing `{VERIFIED_GUARD}`"
                        ),
                        actual: format!("`{actual}`"),
                    });
                }
            }
            for rule in ["listRule", "viewRule"] {
                if tenants.get(rule).and_then(Value::as_str) == Some("") {
                    drift.push(Drift {
                        collection: "tenants".into(),
                        subject: rule.into(),
                        expected: "a rule limiting it to the tenant's owner, or null".into(),
                        actual: "\"\" (anyone, even anonymous, reads every tenant)".into(),
                    });
                }
            }
            let unique_slug =
                tenants.get("indexes").and_then(Value::as_array).is_some_and(|indexes| {
                    indexes.iter().filter_map(Value::as_str).any(|index| {
                        index.to_ascii_uppercase().contains("UNIQUE") && index.contains("(`slug`)")
                    })
                });
            if !unique_slug {
                drift.push(Drift {
                    collection: "tenants".into(),
                    subject: "index on slug".into(),
                    expected: "a unique index on `slug` (two tenants with one slug share a Coolify project and domains)".into(),
                    actual: "missing: find tenants sharing a slug (SELECT slug FROM tenants GROUP BY slug HAVING COUNT(*) > 1), give them distinct slugs, then `cfa pb install` and restart PocketBase".into(),
                });
            }
            for (rule, guard) in [
                ("updateRule", TENANT_UPDATE_GUARD),
                ("createRule", TENANT_CREATE_GUARD),
                ("updateRule", TENANT_LIMITS_GUARD),
                ("createRule", TENANT_LIMITS_GUARD),
            ] {
                if let Some(actual) = tenants.get(rule).and_then(Value::as_str)
                    && !actual.contains(guard)
                {
                    drift.push(Drift {
                        collection: "tenants".into(),
                        subject: rule.into(),
                        expected: format!("null (superusers only) or a rule containing `{guard}`"),
                        actual: format!("`{actual}`"),
                    });
                }
            }
        }
    }

    match client.collection_view("agent_stacks").await? {
        None => drift.push(missing_collection("agent_stacks")),
        Some(stacks) => {
            compare_fields(
                &mut drift,
                "agent_stacks",
                &stacks,
                &[
                    field("tenant_id", "relation"),
                    select("template", templates),
                    field("stack_name", "text"),
                    field("coolify_project_uuid", "text"),
                    field("coolify_service_uuid", "text"),
                    field("domain", "text"),
                    select("status", owned(&STACK_STATUSES)),
                    field("created_at", "autodate"),
                    field("updated_at", "autodate"),
                    field("config", "json"),
                    field("resource_limits", "json"),
                    field("last_health_check", "date"),
                    field("error_message", "text"),
                ],
                true,
            );
            let own = verified(OWN_STACK);
            let create = verified(&stack_create_rule());
            let update = verified(&stack_update_rule());
            compare_rules(
                &mut drift,
                "agent_stacks",
                &stacks,
                [Some(&own), Some(&own), Some(&create), Some(&update), None],
            );
            let cascades = stacks
                .get("fields")
                .and_then(Value::as_array)
                .and_then(|fields| {
                    fields.iter().find(|field| field.get("name") == Some(&Value::from("tenant_id")))
                })
                .and_then(|field| field.get("cascadeDelete"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if cascades {
                drift.push(Drift {
                    collection: "agent_stacks".into(),
                    subject: "field tenant_id".into(),
                    expected: "cascadeDelete false (deleting a tenant must not delete records of running services)".into(),
                    actual: "cascadeDelete true".into(),
                });
            }
            compare_indexes(
                &mut drift,
                "agent_stacks",
                &stacks,
                &[
                    "idx_agent_stacks_tenant_stack",
                    "idx_agent_stacks_tenant",
                    "idx_agent_stacks_status",
                    "idx_agent_stacks_domain",
                ],
            );
        }
    }

    match client.collection_view("audit_log").await? {
        None => drift.push(missing_collection("audit_log")),
        Some(audit) => {
            compare_fields(
                &mut drift,
                "audit_log",
                &audit,
                &[
                    field("time", "autodate"),
                    field("actor", "text"),
                    field("action", "text"),
                    field("tenant", "text"),
                    field("stack", "text"),
                    field("before", "json"),
                    field("after", "json"),
                    select("outcome", owned(&AUDIT_OUTCOMES)),
                    field("error", "text"),
                ],
                true,
            );
            compare_rules(&mut drift, "audit_log", &audit, [None, None, None, None, None]);
        }
    }
    Ok(drift)
}

fn missing_collection(name: &str) -> Drift {
    Drift {
        collection: name.into(),
        subject: "collection".into(),
        expected: "present".into(),
        actual: "missing (run `cfa pb install` and restart PocketBase)".into(),
    }
}

fn compare_fields(
    drift: &mut Vec<Drift>,
    collection: &str,
    live: &Value,
    expected: &[ExpectedField],
    exact: bool,
) {
    let live_fields: Vec<&Value> = live
        .get("fields")
        .and_then(Value::as_array)
        .map(|fields| fields.iter().collect())
        .unwrap_or_default();
    let find = |name: &str| {
        live_fields.iter().find(|field| field.get("name").and_then(Value::as_str) == Some(name))
    };
    for wanted in expected {
        let Some(actual) = find(wanted.name) else {
            drift.push(Drift {
                collection: collection.into(),
                subject: format!("field {}", wanted.name),
                expected: wanted.kind.into(),
                actual: "missing".into(),
            });
            continue;
        };
        let kind = actual.get("type").and_then(Value::as_str).unwrap_or("?");
        if kind != wanted.kind {
            drift.push(Drift {
                collection: collection.into(),
                subject: format!("field {} type", wanted.name),
                expected: wanted.kind.into(),
                actual: kind.into(),
            });
        }
        if let Some(values) = &wanted.values {
            let mut actual_values: Vec<String> = actual
                .get("values")
                .and_then(Value::as_array)
                .map(|values| values.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default();
            actual_values.sort();
            let mut expected_values = values.clone();
            expected_values.sort();
            if actual_values != expected_values {
                drift.push(Drift {
                    collection: collection.into(),
                    subject: format!("field {} values", wanted.name),
                    expected: expected_values.join(", "),
                    actual: actual_values.join(", "),
                });
            }
        }
    }
    if exact {
        for live_field in &live_fields {
            let name = live_field.get("name").and_then(Value::as_str).unwrap_or_default();
            if name != "id" && !expected.iter().any(|wanted| wanted.name == name) {
                drift.push(Drift {
                    collection: collection.into(),
                    subject: format!("field {name}"),
                    expected: "absent".into(),
                    actual: "present".into(),
                });
            }
        }
    }
}

fn compare_rules(
    drift: &mut Vec<Drift>,
    collection: &str,
    live: &Value,
    expected: [Option<&str>; 5],
) {
    let names = ["listRule", "viewRule", "createRule", "updateRule", "deleteRule"];
    for (name, wanted) in names.into_iter().zip(expected) {
        let actual = live.get(name).and_then(Value::as_str);
        if actual != wanted {
            let show = |rule: Option<&str>| {
                rule.map_or_else(|| "null (superusers only)".to_owned(), |rule| format!("`{rule}`"))
            };
            drift.push(Drift {
                collection: collection.into(),
                subject: name.into(),
                expected: show(wanted),
                actual: show(actual),
            });
        }
    }
}

fn compare_indexes(drift: &mut Vec<Drift>, collection: &str, live: &Value, expected: &[&str]) {
    let indexes: Vec<&str> = live
        .get("indexes")
        .and_then(Value::as_array)
        .map(|indexes| indexes.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for name in expected {
        let quoted = format!("`{name}`");
        if !indexes.iter().any(|index| index.contains(&quoted)) {
            drift.push(Drift {
                collection: collection.into(),
                subject: format!("index {name}"),
                expected: "present".into(),
                actual: "missing".into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_built_here_are_the_rules_the_migration_builds() {
        // The migration builds the same strings from the same parts; this pins the parts.
        let migration = MIGRATIONS[1].1;
        for field in ENGINE_FIELDS {
            assert!(
                migration.contains(&format!("\"{field}\"")),
                "{field} missing from the migration's ENGINE_FIELDS"
            );
        }
        assert!(migration.contains(OWN_STACK));
        assert!(MIGRATIONS[0].1.contains(TENANT_UPDATE_GUARD));
        assert!(MIGRATIONS[0].1.contains(TENANT_CREATE_GUARD));
        assert!(MIGRATIONS[3].1.contains(TENANT_LIMITS_GUARD));
        assert!(MIGRATIONS[5].1.contains(VERIFIED_GUARD));
    }

    #[test]
    fn install_is_idempotent_and_replaces_an_older_catalogue() {
        let dir = tempfile::tempdir().unwrap();
        let three = owned(&["telegram-bot", "openclaw-agent", "base-llm"]);
        let first = install(dir.path(), &three).unwrap();
        assert_eq!(first.written.len(), MIGRATIONS.len() + 1 + HOOKS.len());
        let second = install(dir.path(), &three).unwrap();
        assert!(second.written.is_empty() && second.removed.is_empty(), "{second:?}");

        let four = owned(&["telegram-bot", "openclaw-agent", "base-llm", "fourth"]);
        let third = install(dir.path(), &four).unwrap();
        assert_eq!(third.removed.len(), 1);
        assert_eq!(third.written.len(), 1);
        let generated = std::fs::read_to_string(&third.written[0]).unwrap();
        assert!(
            generated.contains(r#"["base-llm","fourth","openclaw-agent","telegram-bot"]"#),
            "{generated}"
        );
    }

    #[test]
    fn template_names_must_be_labels() {
        assert!(matches!(
            template_values(&owned(&["ok", "bad\"); $app.delete"])),
            Err(InstallError::BadTemplateName { .. })
        ));
        assert!(matches!(template_values(&[]), Err(InstallError::NoTemplates)));
    }
}

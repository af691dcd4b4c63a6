//! `check`: a live PocketBase instance compared with our schema (fields, select values, rules,
//! the indexes the rules and the quota rely on), each difference a [`Drift`] that
//! `cfa pb check` reports.

use std::fmt;

use serde_json::Value;

use super::*;
use crate::client::PocketBaseClient;

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

/// Compares the live instance's `tenants`, `agent_stacks`, `audit_log` and `cfa_leases` with
/// ours: fields (name, type, select values), rules, and the indexes the rules and quota rely on.
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
                    actual: "missing: find tenants sharing a slug (SELECT slug FROM tenants GROUP BY slug HAVING COUNT(*) > 1), give them distinct slugs, then install the platform's migrations and restart PocketBase".into(),
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
                    field("delete_requested_at", "date"),
                ],
                true,
            );
            let own = verified(OWN_STACK);
            let create = guarded(&verified(&stack_create_rule()), DELETE_REQUEST_CREATE_GUARD);
            let update = guarded(&verified(&stack_update_rule()), DELETE_REQUEST_UPDATE_GUARD);
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

    match client.collection_view("cfa_leases").await? {
        None => drift.push(missing_collection("cfa_leases")),
        Some(leases) => {
            let expected = [
                field("name", "text"),
                field("holder", "text"),
                field("expires_ms", "number"),
                field("released", "bool"),
            ];
            compare_fields(&mut drift, "cfa_leases", &leases, &expected, false);
            compare_rules(&mut drift, "cfa_leases", &leases, [None, None, None, None, None]);
        }
    }

    // The monitor's collections: superusers only, since incidents name tenants and stacks.
    let monitor: [(&str, &[&str]); 4] = [
        ("cfa_incident_tracks", &["key", "subject", "kind", "track"]),
        ("cfa_incidents", &["key", "kind", "subject", "status", "opened_at", "resolved_at"]),
        ("cfa_alert_outbox", &["delivery_id", "channel", "status", "next_attempt_at", "payload"]),
        ("cfa_host_events", &["event_id", "server", "tenant", "stack", "kind", "seen"]),
    ];
    for (name, fields) in monitor {
        match client.collection_view(name).await? {
            None => drift.push(missing_collection(name)),
            Some(collection) => {
                let present: Vec<&str> = collection
                    .get("fields")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|field| field.get("name").and_then(Value::as_str))
                    .collect();
                for field in fields.iter().filter(|field| !present.contains(field)) {
                    drift.push(Drift {
                        collection: name.into(),
                        subject: format!("field `{field}`"),
                        expected: "present".into(),
                        actual: "missing".into(),
                    });
                }
                compare_rules(&mut drift, name, &collection, [None, None, None, None, None]);
            }
        }
    }
    Ok(drift)
}

fn missing_collection(name: &str) -> Drift {
    Drift {
        collection: name.into(),
        subject: "collection".into(),
        expected: "present".into(),
        actual: "missing (install the platform's migrations and hooks, then restart PocketBase)"
            .into(),
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

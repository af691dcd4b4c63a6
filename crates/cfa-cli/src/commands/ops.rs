//! Operator views: `cfa capacity` (what admission sees per server), `cfa audit` (who changed
//! what), and `cfa doctor` (is every piece reachable, authorised and as we expect).

use anyhow::Context;
use cfa_engine::ServerView;
use cfa_pocketbase::AuditQuery;
use clap::Args;
use serde_json::{Value, json};

use crate::args::{GlobalArgs, OutputFormat};
use crate::config::Config;
use crate::platform::{self, Platform, engine_error};
use crate::{output, settings};

pub(crate) async fn capacity(global: &GlobalArgs, platform: &Platform) -> anyhow::Result<()> {
    let servers = platform.engine.capacity_view().await.map_err(engine_error)?;
    match global.output {
        OutputFormat::Json => {
            output::print_json(&Value::Array(servers.iter().map(ServerView::to_json).collect()))
        }
        OutputFormat::Text => {
            if servers.is_empty() {
                return output::print_text(
                    "no usable Coolify server\nhint: add and validate a server in Coolify",
                );
            }
            let mut rows = vec![vec![
                "SERVER".to_owned(),
                "ALLOCATABLE".to_owned(),
                "RESERVED".to_owned(),
                "FREE".to_owned(),
                "ROOM FOR".to_owned(),
            ]];
            for view in &servers {
                let server = &view.capacity;
                rows.push(vec![
                    format!(
                        "{} ({}){}",
                        server.name,
                        server.id,
                        if view.configured { "" } else { " [seed host assumed]" }
                    ),
                    server.allocatable().to_string(),
                    server.reserved.to_string(),
                    server.free().to_string(),
                    view.room
                        .iter()
                        .map(|(template, room)| {
                            format!("{} {template} ({})", room.stacks, room.plan)
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                ]);
            }
            let mut text = output::table(&rows);
            text.push_str(
                "\nROOM FOR: more stacks of each template at its smallest plan's limits, images counted once per server\n",
            );
            output::print_text(&text)
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Only this tenant's entries.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// Only this stack's entries.
    #[arg(long)]
    pub(crate) stack: Option<String>,
    /// At most this many entries, newest first.
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: u32,
}

pub(crate) async fn audit(
    global: &GlobalArgs,
    platform: &Platform,
    args: AuditArgs,
) -> anyhow::Result<()> {
    let query = AuditQuery {
        tenant: args.tenant,
        stack: args.stack,
        limit: Some(args.limit),
        ..AuditQuery::default()
    };
    let entries =
        platform.pocketbase.audit_list(&query).await.context("cannot read the audit log")?;
    match global.output {
        OutputFormat::Json => output::print_json(&Value::Array(
            entries
                .iter()
                .map(|entry| {
                    json!({
                        "time": entry.time.to_string(),
                        "actor": entry.actor,
                        "action": entry.action,
                        "tenant": entry.tenant,
                        "stack": entry.stack,
                        "outcome": entry.outcome.as_str(),
                        "error": entry.error,
                        "before": entry.before,
                        "after": entry.after,
                    })
                })
                .collect(),
        )),
        OutputFormat::Text => {
            if entries.is_empty() {
                return output::print_text("no audit entries");
            }
            let mut rows = vec![vec![
                "TIME".to_owned(),
                "ACTOR".to_owned(),
                "ACTION".to_owned(),
                "SUBJECT".to_owned(),
                "OUTCOME".to_owned(),
            ]];
            for entry in &entries {
                let subject = match (&entry.tenant, &entry.stack) {
                    (Some(tenant), Some(stack)) => format!("{tenant}/{stack}"),
                    (Some(tenant), None) => tenant.clone(),
                    _ => "-".to_owned(),
                };
                let outcome = match &entry.error {
                    Some(error) if !error.is_empty() => format!(
                        "{}: {}",
                        entry.outcome.as_str(),
                        error.lines().next().unwrap_or_default()
                    ),
                    _ => entry.outcome.as_str().to_owned(),
                };
                rows.push(vec![
                    entry.time.strftime("%Y-%m-%d %H:%M:%S").to_string(),
                    entry.actor.clone(),
                    entry.action.clone(),
                    subject,
                    outcome,
                ]);
            }
            output::print_text(&output::table(&rows))
        }
    }
}

/// One doctor finding.
struct Check {
    name: &'static str,
    state: CheckState,
    detail: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CheckState {
    Ok,
    Warn,
    Fail,
}

impl CheckState {
    fn as_str(self) -> &'static str {
        match self {
            CheckState::Ok => "ok",
            CheckState::Warn => "warn",
            CheckState::Fail => "FAIL",
        }
    }
}

fn first_line(error: &anyhow::Error) -> String {
    format!("{error:#}").lines().next().unwrap_or_default().to_owned()
}

/// `[backups]`: cfa reaches the bucket with its own key, and Coolify has the S3 storage that
/// schedules upload to, usable, on the same bucket.
async fn backups_checks(config: &Config, push: &mut impl FnMut(&'static str, CheckState, String)) {
    let final_backups = match config.final_backups() {
        Ok(Some(final_backups)) => final_backups,
        Ok(None) => {
            push(
                "backups",
                CheckState::Warn,
                "no [backups] bucket: stacks on plans with backups cannot be deleted without \
                 --without-final-backup (Coolify deletes every archive with the service)"
                    .to_owned(),
            );
            return;
        }
        Err(error) => return push("backups", CheckState::Fail, first_line(&error)),
    };
    let store = &final_backups.store;
    match store.check().await {
        Ok(()) => push(
            "backups bucket",
            CheckState::Ok,
            format!("bucket `{}` at {} answers", store.bucket(), store.endpoint()),
        ),
        Err(error) => push(
            "backups bucket",
            CheckState::Fail,
            error.to_string().lines().next().unwrap_or_default().to_owned(),
        ),
    }
    let uuid = &final_backups.coolify_s3_storage_uuid;
    let found = match platform::coolify(config) {
        Ok(coolify) => coolify
            .get_s3_storage_by_uuid(uuid)
            .await
            .map_err(|error| error.to_string().lines().next().unwrap_or_default().to_owned()),
        Err(error) => Err(first_line(&error)),
    };
    match found {
        Ok(storage) if !storage.is_usable => push(
            "backups in coolify",
            CheckState::Fail,
            format!("S3 storage `{}` is not usable in Coolify: validate it there", storage.name),
        ),
        Ok(storage) if storage.bucket != store.bucket() => push(
            "backups in coolify",
            CheckState::Fail,
            format!(
                "S3 storage `{}` uploads to bucket `{}`, [backups] reads `{}`",
                storage.name,
                storage.bucket,
                store.bucket()
            ),
        ),
        Ok(storage) => push(
            "backups in coolify",
            CheckState::Ok,
            format!(
                "schedules upload to S3 storage `{}` (bucket `{}`)",
                storage.name, storage.bucket
            ),
        ),
        Err(detail) => push(
            "backups in coolify",
            CheckState::Fail,
            format!("S3 storage `{uuid}` ([backups] coolify_s3_storage): {detail}"),
        ),
    }
}

/// `cfa doctor`: every check runs (one failure does not hide the next); exits 1 on a failure.
pub(crate) async fn doctor(global: &GlobalArgs, config: Config) -> anyhow::Result<()> {
    let mut checks = Vec::new();
    let mut push = |name, state, detail: String| checks.push(Check { name, state, detail });

    push(
        "configuration",
        CheckState::Ok,
        config.source.as_ref().map_or_else(
            || "no cfa.toml; environment variables only".to_owned(),
            |path| format!("{}", path.display()),
        ),
    );
    let set: Vec<&str> = crate::config::ENVIRONMENT_VARIABLES
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
        .collect();
    push(
        "environment",
        CheckState::Ok,
        if set.is_empty() {
            "no CFA_* variable set".to_owned()
        } else {
            format!("set: {}", set.join(", "))
        },
    );
    let template_names: Vec<String> = match settings::catalogue(global) {
        Ok(catalogue) => {
            let names: Vec<String> = catalogue.names().map(str::to_owned).collect();
            push(
                "templates",
                CheckState::Ok,
                format!("{} loaded: {}", names.len(), names.join(", ")),
            );
            names
        }
        Err(error) => {
            push("templates", CheckState::Fail, first_line(&error));
            Vec::new()
        }
    };
    match settings::plans(global) {
        Ok(_) => push("plans", CheckState::Ok, "plan table loaded".to_owned()),
        Err(error) => push("plans", CheckState::Fail, first_line(&error)),
    }
    let engine_settings = platform::engine_settings(global, &config);
    match &engine_settings {
        Ok(settings) => push("base domain", CheckState::Ok, settings.base_domain.to_string()),
        Err(error) => push("base domain", CheckState::Fail, first_line(error)),
    }

    match platform::pocketbase(&config).await {
        Ok(pocketbase) => {
            push("pocketbase", CheckState::Ok, format!("logged in at {}", pocketbase.base_url()));
            match cfa_pocketbase::schema::check(&pocketbase, &template_names).await {
                Ok(drift) if drift.is_empty() => push(
                    "pocketbase schema",
                    CheckState::Ok,
                    "tenants, agent_stacks and audit_log match".to_owned(),
                ),
                Ok(drift) => push(
                    "pocketbase schema",
                    CheckState::Fail,
                    format!(
                        "{} differences (first: {}); run `cfa pb check` for all, `cfa pb install` to fix",
                        drift.len(),
                        drift[0]
                    ),
                ),
                Err(error) => push("pocketbase schema", CheckState::Fail, error.to_string()),
            }
        }
        Err(error) => push("pocketbase", CheckState::Fail, first_line(&error)),
    }

    match platform::coolify(&config) {
        Ok(coolify) => {
            match coolify.version().await {
                Ok(version) => match cfa_coolify::version_support(&version) {
                    cfa_coolify::VersionSupport::Full => {
                        push("coolify", CheckState::Ok, format!("version {version}"));
                    }
                    cfa_coolify::VersionSupport::WithoutBackups { backups_need } => push(
                        "coolify",
                        CheckState::Warn,
                        format!(
                            "version {version}: storage backups need {backups_need}; stacks run \
                             without them (upgrade Coolify)"
                        ),
                    ),
                    cfa_coolify::VersionSupport::Unsupported { minimum } => push(
                        "coolify",
                        CheckState::Fail,
                        format!(
                            "version {version}: provisioning needs Coolify {minimum} or later \
                             (server destinations); upgrade Coolify"
                        ),
                    ),
                },
                Err(error) => push(
                    "coolify",
                    CheckState::Fail,
                    error.to_string().lines().next().unwrap_or_default().to_owned(),
                ),
            }
            match coolify.list_servers().await {
                Ok(servers) => {
                    let usable: Vec<_> = servers
                        .iter()
                        .filter(|server| {
                            server.is_usable() && server.is_reachable() && !server.is_build_server()
                        })
                        .collect();
                    if usable.is_empty() {
                        push(
                            "coolify servers",
                            CheckState::Fail,
                            "no usable, reachable server; validate one in Coolify".to_owned(),
                        );
                    } else {
                        push(
                            "coolify servers",
                            CheckState::Ok,
                            format!("{} usable of {}", usable.len(), servers.len()),
                        );
                    }
                    let configured = config.servers();
                    for server in usable {
                        if !configured.contains_key(&server.uuid) {
                            push(
                                "server capacity",
                                CheckState::Warn,
                                format!(
                                    "server {} ({}) has no [[servers]] entry: the seed host (12 cores, 31 GB RAM, 24 GB disk) is assumed",
                                    server.name, server.uuid
                                ),
                            );
                        }
                    }
                }
                Err(error) => push(
                    "coolify servers",
                    CheckState::Fail,
                    error.to_string().lines().next().unwrap_or_default().to_owned(),
                ),
            }
        }
        Err(error) => push("coolify", CheckState::Fail, first_line(&error)),
    }
    backups_checks(&config, &mut push).await;

    let failed = checks.iter().filter(|check| check.state == CheckState::Fail).count();
    match global.output {
        OutputFormat::Json => output::print_json(&Value::Array(
            checks
                .iter()
                .map(|check| json!({ "check": check.name, "state": check.state.as_str().to_lowercase(), "detail": check.detail }))
                .collect(),
        ))?,
        OutputFormat::Text => {
            let mut rows = Vec::new();
            for check in &checks {
                rows.push(vec![check.state.as_str().to_owned(), check.name.to_owned(), check.detail.clone()]);
            }
            output::print_text(&output::table(&rows))?;
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} doctor check(s) failed\nhint: fix the FAIL lines above, then run `cfa doctor` again"
        );
    }
    Ok(())
}

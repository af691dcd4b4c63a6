//! The stack lifecycle: `cfa provision|suspend|resume|upgrade|delete`, and the read side,
//! `cfa status|list|logs`. Every mutation goes through the engine; `--dry-run` asks the engine
//! what it would do and changes nothing.

use std::collections::BTreeMap;

use anyhow::Context;
use cfa_engine::{Completion, OperationRequest, ProvisionRequest, StackOutcome};
use cfa_pocketbase::{AgentStack, StackFilter, Tenant};
use clap::Args;
use serde_json::{Value, json};

use crate::args::{GlobalArgs, OutputFormat};
use crate::commands::templates::parse_parameters;
use crate::platform::{self, Platform, engine_error, split_stack_path, with_progress};
use crate::{exit, output};

#[derive(Debug, Args)]
pub(crate) struct ProvisionArgs {
    /// The tenant's slug.
    #[arg(long)]
    pub(crate) tenant: String,
    /// The template, e.g. `telegram-bot` (`cfa templates list`).
    #[arg(long)]
    pub(crate) template: String,
    /// The stack's name (DNS label, 1-40 characters), unique within the tenant.
    #[arg(long)]
    pub(crate) stack: String,
    /// A template parameter, `key=value`; repeat for each.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub(crate) parameters: Vec<String>,
    /// A parameter read from a file, `key=path` (keeps secrets out of the shell history and
    /// the process list); a trailing newline is dropped.
    #[arg(long = "param-file", value_name = "KEY=PATH")]
    pub(crate) parameter_files: Vec<String>,
    /// Place the stack on this Coolify server (uuid or name), or refuse.
    #[arg(long)]
    pub(crate) server: Option<String>,
    /// Print the admission decision, limits, the compose (secrets redacted) and the API calls;
    /// change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    #[command(flatten)]
    pub(crate) wait: WaitArgs,
}

/// `--wait` (the default) or `--no-wait`, for the operations that start containers.
#[derive(Debug, Args)]
pub(crate) struct WaitArgs {
    /// Wait until the stack runs and serves, or fails (the default).
    #[arg(long, overrides_with = "no_wait")]
    pub(crate) wait: bool,
    /// Return once the start is queued: the stack stays `deploying`, and the controller (or
    /// `cfa reconcile`) finishes it; `cfa status` shows when it runs.
    #[arg(long, overrides_with = "wait")]
    pub(crate) no_wait: bool,
}

impl WaitArgs {
    pub(crate) fn completion(&self) -> Completion {
        if self.no_wait { Completion::Queued } else { Completion::Ready }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ResumeArgs {
    #[command(flatten)]
    pub(crate) operation: StackOperationArgs,
    #[command(flatten)]
    pub(crate) wait: WaitArgs,
}

#[derive(Debug, Args)]
pub(crate) struct StackOperationArgs {
    /// The stack, `<tenant>/<stack>`.
    pub(crate) stack: String,
    /// Print what would happen; change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

#[derive(Debug, Args)]
pub(crate) struct UpgradeArgs {
    #[command(flatten)]
    pub(crate) operation: StackOperationArgs,
    /// New parameter values (`key=value`); without any, the current ones are kept.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub(crate) parameters: Vec<String>,
    #[arg(long = "param-file", value_name = "KEY=PATH")]
    pub(crate) parameter_files: Vec<String>,
    #[command(flatten)]
    pub(crate) wait: WaitArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    #[command(flatten)]
    pub(crate) operation: StackOperationArgs,
    /// Skip the grace period (Ctrl-C during it cancels the delete).
    #[arg(long)]
    pub(crate) force: bool,
    /// Delete a stack whose plan has backups although no final backup can be kept (no
    /// [backups] bucket configured): its data is gone for good.
    #[arg(long)]
    pub(crate) without_final_backup: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// `<tenant>` or `<tenant>/<stack>`; every stack when absent.
    pub(crate) target: Option<String>,
    /// The controller instead: who holds its lease, and what its last pass saw and did.
    #[arg(long, conflicts_with = "target")]
    pub(crate) controller: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only this tenant's stacks.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// The stack, `<tenant>/<stack>`.
    pub(crate) stack: String,
    /// The compose service (default: the template's first service).
    #[arg(long)]
    pub(crate) service: Option<String>,
    /// How many lines from the end.
    #[arg(long, default_value_t = 100)]
    pub(crate) lines: u32,
}

fn parameters(inline: &[String], files: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut parameters = parse_parameters(inline)?;
    for item in files {
        let Some((key, path)) = item.split_once('=') else {
            return Err(exit::usage(anyhow::format_err!(
                "`--param-file {}` is not `key=path`",
                item.chars().take(60).collect::<String>()
            )));
        };
        let value = std::fs::read_to_string(path).map_err(|error| {
            exit::usage(anyhow::format_err!("cannot read `{path}` for parameter `{key}`: {error}"))
        })?;
        let value = value.strip_suffix('\n').unwrap_or(&value);
        let value = value.strip_suffix('\r').unwrap_or(value).to_owned();
        if parameters.insert(key.to_owned(), value).is_some() {
            return Err(exit::usage(anyhow::format_err!("parameter `{key}` is given twice")));
        }
    }
    Ok(parameters)
}

pub(crate) async fn provision(
    global: &GlobalArgs,
    platform: &Platform,
    args: ProvisionArgs,
) -> anyhow::Result<()> {
    let parameters = parameters(&args.parameters, &args.parameter_files)?;
    let request = ProvisionRequest {
        tenant: args.tenant,
        stack: args.stack,
        template: args.template,
        parameters,
        preferred_server: args.server,
    };
    if args.dry_run {
        return super::dry_run::provision(global, platform, &request).await;
    }
    let what = format!("provisioning {}/{}", request.tenant, request.stack);
    let completion = args.wait.completion();
    let outcome = with_progress(&what, platform.engine.provision_with(&request, completion))
        .await
        .map_err(engine_error)?;
    print_outcome(global, &outcome, "provisioned")
}

/// Suspend or resume: the two operations that take only the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PowerOperation {
    Suspend,
    Resume,
}

pub(crate) async fn suspend_or_resume(
    global: &GlobalArgs,
    platform: &Platform,
    operation: PowerOperation,
    args: StackOperationArgs,
    completion: Completion,
) -> anyhow::Result<()> {
    let (tenant, stack) = split_stack_path(&args.stack)?;
    let (request, progress, verb) = match operation {
        PowerOperation::Suspend => {
            (OperationRequest::Suspend, "suspending", "suspended (volumes kept)")
        }
        PowerOperation::Resume => (OperationRequest::Resume, "resuming", "resumed"),
    };
    if args.dry_run {
        return super::dry_run::operation(global, platform, request, &tenant, &stack).await;
    }
    let work = async {
        match operation {
            PowerOperation::Suspend => platform.engine.suspend(&tenant, &stack).await,
            PowerOperation::Resume => {
                platform.engine.resume_with(&tenant, &stack, completion).await
            }
        }
    };
    let outcome =
        with_progress(&format!("{progress} {tenant}/{stack}"), work).await.map_err(engine_error)?;
    print_outcome(global, &outcome, verb)
}

pub(crate) async fn upgrade(
    global: &GlobalArgs,
    platform: &Platform,
    args: UpgradeArgs,
) -> anyhow::Result<()> {
    let (tenant, stack) = split_stack_path(&args.operation.stack)?;
    let parameters = parameters(&args.parameters, &args.parameter_files)?;
    let parameters = (!parameters.is_empty()).then_some(parameters);
    if args.operation.dry_run {
        let request = OperationRequest::Upgrade { parameters: parameters.as_ref() };
        return super::dry_run::operation(global, platform, request, &tenant, &stack).await;
    }
    let outcome = with_progress(
        &format!("upgrading {tenant}/{stack}"),
        platform.engine.upgrade_with(&tenant, &stack, parameters.as_ref(), args.wait.completion()),
    )
    .await
    .map_err(engine_error)?;
    let verb = if outcome.changed { "upgraded" } else { "already current (restarted)" };
    print_outcome(global, &outcome, verb)
}

pub(crate) async fn delete(
    global: &GlobalArgs,
    platform: &Platform,
    args: DeleteArgs,
) -> anyhow::Result<()> {
    let (tenant, stack) = split_stack_path(&args.operation.stack)?;
    if args.operation.dry_run {
        return super::dry_run::operation(
            global,
            platform,
            OperationRequest::Delete,
            &tenant,
            &stack,
        )
        .await;
    }
    let options = cfa_engine::DeleteOptions {
        skip_grace: args.force,
        without_final_backup: args.without_final_backup,
    };
    let deletion = platform.engine.delete(&tenant, &stack, options);
    let what = format!("deleting {tenant}/{stack}");
    let result = tokio::select! {
        result = with_progress(&what, deletion) => result,
        _ = tokio::signal::ctrl_c() => {
            return Err(anyhow::format_err!(
                "delete of `{tenant}/{stack}` interrupted\nhint: if it was still in its grace period nothing changed; otherwise rerun `cfa delete {tenant}/{stack}` to finish"
            ));
        }
    };
    result.map_err(engine_error)?;
    match global.output {
        OutputFormat::Json => {
            output::print_json(&json!({ "tenant": tenant, "stack": stack, "deleted": true }))
        }
        OutputFormat::Text => output::print_text(&format!("deleted {tenant}/{stack}")),
    }
}

/// The outcome as text or JSON. A stack left `deploying` (`--no-wait`, or readiness not there
/// yet) says so instead of `verb`.
fn print_outcome(global: &GlobalArgs, outcome: &StackOutcome, verb: &str) -> anyhow::Result<()> {
    let verb = match outcome.status {
        cfa_core::StackStatus::Deploying => {
            "queued, not ready yet (the controller, or `cfa reconcile`, finishes it; `cfa status` shows when it runs)"
        }
        _ => verb,
    };
    match global.output {
        OutputFormat::Json => output::print_json(&outcome.to_json()),
        OutputFormat::Text => {
            let mut text =
                format!("{}/{} {verb}: {}\n", outcome.tenant, outcome.stack, outcome.status);
            if let Some(domain) = &outcome.domain {
                text.push_str(&format!("  url:     https://{domain}\n"));
            }
            if let Some(limits) = outcome.limits {
                text.push_str(&format!("  limits:  {limits}\n"));
            }
            if let Some(uuid) = &outcome.service_uuid {
                text.push_str(&format!("  service: {uuid} (Coolify)\n"));
            }
            output::print_text(&text)
        }
    }
}

/// Stacks with their tenants' slugs, optionally one tenant's.
async fn stacks_with_tenants(
    platform: &Platform,
    tenant_slug: Option<&str>,
) -> anyhow::Result<Vec<(String, AgentStack)>> {
    let filter = match tenant_slug {
        Some(slug) => {
            let tenant = tenant_by_slug(platform, slug).await?;
            StackFilter::tenant(&tenant.id)
        }
        None => StackFilter::default(),
    };
    let stacks = platform
        .pocketbase
        .stack_list_all(&filter, true)
        .await
        .context("cannot list the stacks in PocketBase")?;
    let mut rows: Vec<(String, AgentStack)> = stacks
        .into_iter()
        .map(|stack| {
            let slug = stack
                .tenant
                .as_ref()
                .map_or_else(|| stack.tenant_id.clone(), |tenant| tenant.slug.clone());
            (slug, stack)
        })
        .collect();
    rows.sort_by(|a, b| (&a.0, &a.1.stack_name).cmp(&(&b.0, &b.1.stack_name)));
    Ok(rows)
}

pub(crate) async fn tenant_by_slug(platform: &Platform, slug: &str) -> anyhow::Result<Tenant> {
    match platform.pocketbase.tenant_by_slug(slug).await {
        Ok(tenant) => Ok(tenant),
        Err(error) if error.kind == cfa_pocketbase::PocketBaseErrorKind::NotFound => {
            Err(exit::usage(anyhow::format_err!(
                "tenant `{}` does not exist\nhint: `cfa tenant list` shows the tenants",
                slug.escape_debug()
            )))
        }
        Err(error) => {
            Err(anyhow::Error::new(error).context(format!("cannot read tenant `{slug}`")))
        }
    }
}

pub(crate) async fn list(
    global: &GlobalArgs,
    platform: &Platform,
    args: ListArgs,
) -> anyhow::Result<()> {
    let rows = stacks_with_tenants(platform, args.tenant.as_deref()).await?;
    match global.output {
        OutputFormat::Json => output::print_json(&Value::Array(
            rows.iter().map(|(slug, stack)| cfa_engine::stack_json(slug, stack)).collect(),
        )),
        OutputFormat::Text => {
            let mut table = vec![vec![
                "TENANT/STACK".to_owned(),
                "TEMPLATE".to_owned(),
                "STATUS".to_owned(),
                "DOMAIN".to_owned(),
            ]];
            for (slug, stack) in &rows {
                table.push(vec![
                    format!("{slug}/{}", stack.stack_name),
                    stack.template.clone(),
                    stack.status.to_string(),
                    stack
                        .domain
                        .clone()
                        .filter(|domain| !domain.is_empty())
                        .unwrap_or_else(|| "-".to_owned()),
                ]);
            }
            if rows.is_empty() {
                return output::print_text("no stacks");
            }
            output::print_text(&output::table(&table))
        }
    }
}

/// `cfa status`: the record and what Coolify says now, judged.
pub(crate) async fn status(
    global: &GlobalArgs,
    platform: &Platform,
    args: StatusArgs,
) -> anyhow::Result<()> {
    if args.controller {
        return super::controller::status(global, platform).await;
    }
    let (tenant, stack) = match args.target.as_deref() {
        None => (None, None),
        Some(target) if target.contains('/') => {
            let (tenant, stack) = split_stack_path(target)?;
            (Some(tenant), Some(stack))
        }
        Some(tenant) => (Some(tenant.to_owned()), None),
    };
    let mut rows = stacks_with_tenants(platform, tenant.as_deref()).await?;
    if let Some(stack) = &stack {
        rows.retain(|(_, record)| &record.stack_name == stack);
        if rows.is_empty() {
            let tenant = tenant.unwrap_or_default();
            return Err(exit::usage(anyhow::format_err!(
                "stack `{tenant}/{stack}` does not exist\nhint: `cfa list --tenant {tenant}` shows its stacks"
            )));
        }
    }
    let mut report = Vec::new();
    let records: Vec<_> = rows.iter().map(|(_, record)| record.clone()).collect();
    let healths = platform.engine.health_of_all(&records).await;
    for ((slug, record), health) in rows.iter().zip(healths) {
        report.push((slug.clone(), record.clone(), health.coolify_status, health.judgement));
    }
    match global.output {
        OutputFormat::Json => output::print_json(&Value::Array(
            report
                .iter()
                .map(|(slug, record, coolify_status, judgement)| {
                    let mut value = cfa_engine::stack_json(slug, record);
                    value["coolify_status"] = json!(coolify_status);
                    value["health"] = json!(judgement.verdict.to_string());
                    value["health_reason"] = json!(judgement.reason);
                    value
                })
                .collect(),
        )),
        OutputFormat::Text if stack.is_some() => {
            let (slug, record, coolify_status, judgement) = &report[0];
            let mut text = format!("{slug}/{}\n", record.stack_name);
            text.push_str(&format!("  template: {}\n", record.template));
            text.push_str(&format!("  status:   {} (PocketBase)\n", record.status));
            text.push_str(&format!("  coolify:  {coolify_status}\n"));
            text.push_str(&format!("  health:   {}: {}\n", judgement.verdict, judgement.reason));
            if let Some(domain) = record.domain.as_ref().filter(|domain| !domain.is_empty()) {
                text.push_str(&format!("  url:      https://{domain}\n"));
            }
            if let Some(limits) = &record.resource_limits {
                text.push_str(&format!(
                    "  limits:   {} CPU, {} MB RAM, {} MB disk on server {}\n",
                    limits["cpus"],
                    limits["memory_mb"],
                    limits["disk_mb"],
                    limits["server_uuid"].as_str().unwrap_or("?")
                ));
            }
            if let Some(message) =
                record.error_message.as_ref().filter(|message| !message.is_empty())
            {
                text.push_str(&format!(
                    "  error:    {}\n",
                    message.replace('\n', "\n            ")
                ));
            }
            text.push_str(&format!("  updated:  {}\n", record.updated_at));
            output::print_text(&text)
        }
        OutputFormat::Text => {
            if report.is_empty() {
                return output::print_text("no stacks");
            }
            let mut table = vec![vec![
                "TENANT/STACK".to_owned(),
                "STATUS".to_owned(),
                "COOLIFY".to_owned(),
                "HEALTH".to_owned(),
            ]];
            for (slug, record, coolify_status, judgement) in &report {
                table.push(vec![
                    format!("{slug}/{}", record.stack_name),
                    record.status.to_string(),
                    coolify_status.clone(),
                    judgement.verdict.to_string(),
                ]);
            }
            output::print_text(&output::table(&table))
        }
    }
}

/// `cfa logs`: the last lines of one compose service's container, from Coolify.
pub(crate) async fn logs(
    global: &GlobalArgs,
    platform: &Platform,
    args: LogsArgs,
) -> anyhow::Result<()> {
    let (tenant, stack) = split_stack_path(&args.stack)?;
    let record = platform.engine.stack(&tenant, &stack).await.map_err(engine_error)?;
    let Some(service_uuid) = record.coolify_service_uuid.filter(|uuid| !uuid.is_empty()) else {
        return Err(exit::usage(anyhow::format_err!(
            "stack `{tenant}/{stack}` has no Coolify service yet (status {})\nhint: `cfa provision` creates it",
            record.status
        )));
    };
    let catalogue = crate::settings::catalogue(global)?;
    let services: Vec<String> = catalogue
        .get(&record.template)
        .map(|template| template.manifest.services.keys().cloned().collect())
        .unwrap_or_default();
    let service = match args.service {
        Some(service) if services.is_empty() || services.contains(&service) => service,
        Some(service) => {
            return Err(exit::usage(anyhow::format_err!(
                "template `{}` has no service `{}`\nhint: one of {}",
                record.template,
                service.escape_debug(),
                services.join(", ")
            )));
        }
        None => services.first().cloned().ok_or_else(|| {
            exit::usage(anyhow::format_err!(
                "template `{}` is not in the catalogue\nhint: pass --service",
                record.template
            ))
        })?,
    };
    let text = platform
        .coolify
        .get_service_logs_by_uuid(&service_uuid, &service, args.lines)
        .await
        .with_context(|| {
            format!("cannot read the logs of `{tenant}/{stack}` ({service}) from Coolify")
        })?;
    match global.output {
        OutputFormat::Json => output::print_json(&json!({
            "tenant": tenant, "stack": stack, "service": service, "logs": text,
        })),
        OutputFormat::Text => output::print_text(&text),
    }
}

/// Builds the platform and runs one of this module's async commands on the runtime.
pub(crate) fn block_on_platform<F, Fut>(global: &mut GlobalArgs, command: F) -> anyhow::Result<()>
where
    F: FnOnce(GlobalArgs, Platform) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let config = platform::load_config(global)?;
    let runtime = platform::runtime()?;
    let global = global.clone();
    runtime.block_on(async move {
        let connected = platform::connect(&global, config).await?;
        command(global, connected).await
    })
}

//! `--dry-run` output: what an operation would do now, from the engine's planner (the same
//! observation and plan as the run), as text or JSON.

use cfa_core::resources::format_megabytes;
use cfa_engine::plan::PlannedCall;
use cfa_engine::{
    DryRunAdmission, OperationDryRun, OperationRequest, ProvisionDryRun, ProvisionRequest,
};
use serde_json::{Value, json};

use crate::args::{GlobalArgs, OutputFormat};
use crate::platform::{Platform, engine_error};
use crate::{exit, output};

/// `cfa provision --dry-run`: what a provision would do now; exits 3 when it would be refused.
pub(crate) async fn provision(
    global: &GlobalArgs,
    platform: &Platform,
    request: &ProvisionRequest,
) -> anyhow::Result<()> {
    let dry_run = platform.engine.dry_run_provision(request).await.map_err(engine_error)?;
    print_provision_dry_run(global, &dry_run)?;
    let reason = match (dry_run.admission, dry_run.refusal) {
        (DryRunAdmission::Refused { reason }, _) | (_, Some(reason)) => reason,
        _ => return Ok(()),
    };
    Err(exit::refused(anyhow::format_err!(
        "dry run: provisioning `{}/{}` would be refused: {reason}",
        request.tenant,
        request.stack
    )))
}

/// `--dry-run` of suspend, resume, upgrade and delete; exits 3 when it would be refused.
pub(crate) async fn operation(
    global: &GlobalArgs,
    platform: &Platform,
    request: OperationRequest<'_>,
    tenant: &str,
    stack: &str,
) -> anyhow::Result<()> {
    let dry_run =
        platform.engine.dry_run_operation(request, tenant, stack).await.map_err(engine_error)?;
    let operation = dry_run.operation;
    print_operation_dry_run(global, &dry_run)?;
    match &dry_run.refusal {
        Some(reason) => Err(exit::refused(anyhow::format_err!(
            "dry run: {operation} of `{tenant}/{stack}` would be refused: {reason}"
        ))),
        None => Ok(()),
    }
}

fn admission_json(admission: &DryRunAdmission) -> Value {
    match admission {
        DryRunAdmission::Admitted { server_uuid, server_name, limits, image_disk_mb } => json!({
            "decision": "admitted",
            "server_uuid": server_uuid,
            "server_name": server_name,
            "limits": { "cpus": limits.cpus(), "memory_mb": limits.memory_mb, "disk_mb": limits.disk_mb },
            "image_disk_mb": image_disk_mb,
        }),
        DryRunAdmission::AlreadyAdmitted { server_uuid, limits } => json!({
            "decision": "already_admitted",
            "server_uuid": server_uuid,
            "limits": { "cpus": limits.cpus(), "memory_mb": limits.memory_mb, "disk_mb": limits.disk_mb },
        }),
        DryRunAdmission::Refused { reason } => json!({ "decision": "refused", "reason": reason }),
    }
}

fn print_provision_dry_run(global: &GlobalArgs, dry_run: &ProvisionDryRun) -> anyhow::Result<()> {
    let environment: Vec<Value> = dry_run
        .environment
        .iter()
        .map(|entry| json!({ "name": entry.name, "value": entry.value, "secret": entry.secret }))
        .collect();
    match global.output {
        OutputFormat::Json => output::print_json(&json!({
            "dry_run": true,
            "tenant": dry_run.tenant,
            "stack": dry_run.stack,
            "template": dry_run.template,
            "plan": dry_run.plan,
            "admission": admission_json(&dry_run.admission),
            "limits": { "cpus": dry_run.limits.cpus(), "memory_mb": dry_run.limits.memory_mb, "disk_mb": dry_run.limits.disk_mb },
            "domain": dry_run.domain,
            "compose": dry_run.compose_yaml,
            "environment": environment,
            "steps": dry_run.steps.iter().map(|step| step.as_str()).collect::<Vec<_>>(),
            "refusal": dry_run.refusal,
            "calls": dry_run.calls.iter().map(PlannedCall::to_json).collect::<Vec<_>>(),
        })),
        OutputFormat::Text => {
            let mut text = format!(
                "dry run: provision {}/{} ({} on plan {}); nothing was changed\n\nadmission: ",
                dry_run.tenant, dry_run.stack, dry_run.template, dry_run.plan
            );
            match &dry_run.admission {
                DryRunAdmission::Admitted { server_uuid, server_name, limits, image_disk_mb } => {
                    text.push_str(&format!(
                        "admitted on server {server_name} ({server_uuid}), reserving {limits}"
                    ));
                    if *image_disk_mb > 0 {
                        text.push_str(&format!(
                            " and {} of disk for images it pulls there",
                            format_megabytes(*image_disk_mb)
                        ));
                    }
                    text.push('\n');
                }
                DryRunAdmission::AlreadyAdmitted { server_uuid, limits } => text.push_str(
                    &format!("already admitted on server {server_uuid}, reserving {limits}\n"),
                ),
                DryRunAdmission::Refused { reason } => {
                    text.push_str(&format!("REFUSED: {reason}\n"));
                }
            }
            if let Some(reason) = &dry_run.refusal {
                text.push_str(&format!("REFUSED: {reason}\n"));
            }
            text.push_str(&format!("limits:    {}\n", dry_run.limits));
            if let Some(domain) = &dry_run.domain {
                text.push_str(&format!("url:       https://{domain}\n"));
            }
            text.push_str("\nenvironment (set through Coolify's env API):\n");
            for entry in &dry_run.environment {
                text.push_str(&format!("  {}={}\n", entry.name, entry.value));
            }
            text.push_str("\ncompose (docker_compose_raw):\n");
            for line in dry_run.compose_yaml.lines() {
                text.push_str(&format!("  {line}\n"));
            }
            text.push_str("\ncalls, in order:\n");
            if dry_run.calls.is_empty() {
                text.push_str("  (none)\n");
            }
            for call in &dry_run.calls {
                text.push_str(&format!("  {call}\n"));
            }
            output::print_text(&text)
        }
    }
}

fn print_operation_dry_run(global: &GlobalArgs, dry_run: &OperationDryRun) -> anyhow::Result<()> {
    match global.output {
        OutputFormat::Json => output::print_json(&json!({
            "dry_run": true,
            "operation": dry_run.operation,
            "tenant": dry_run.tenant,
            "stack": dry_run.stack,
            "status": dry_run.status.as_str(),
            "coolify_service_uuid": dry_run.service_uuid,
            "refusal": dry_run.refusal,
            "steps": dry_run.steps.iter().map(|step| step.as_str()).collect::<Vec<_>>(),
            "calls": dry_run.calls.iter().map(PlannedCall::to_json).collect::<Vec<_>>(),
        })),
        OutputFormat::Text => {
            let mut text = format!(
                "dry run: {} {}/{} (now {}); nothing was changed\n",
                dry_run.operation, dry_run.tenant, dry_run.stack, dry_run.status
            );
            if let Some(reason) = &dry_run.refusal {
                text.push_str(&format!("REFUSED: {reason}\n"));
            }
            text.push_str("calls, in order:\n");
            if dry_run.calls.is_empty() {
                text.push_str("  (none: nothing to do)\n");
            }
            for call in &dry_run.calls {
                text.push_str(&format!("  {call}\n"));
            }
            output::print_text(&text)
        }
    }
}

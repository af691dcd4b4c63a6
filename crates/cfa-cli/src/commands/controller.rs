//! `cfa reconcile <tenant>/<stack>` (one activation for one stack) and `cfa controller` (a pass
//! over every stack, then again every `--interval-seconds`; `--once` for cron and tests).
//! The engine decides and acts; this prints what it did.

use std::time::Duration;

use anyhow::format_err;
use cfa_engine::{PassReport, Reconciled, StackActivation};
use clap::Args;
use serde_json::{Value, json};

use crate::args::{GlobalArgs, OutputFormat};
use crate::output;
use crate::platform::{Platform, engine_error, split_stack_path};

#[derive(Debug, Args)]
pub(crate) struct ReconcileArgs {
    /// The stack, `<tenant>/<stack>`.
    pub(crate) stack: String,
}

#[derive(Debug, Args)]
pub(crate) struct ControllerArgs {
    /// One pass, then exit: 0 when every stack converged, acted or waits, 1 on any failure.
    #[arg(long)]
    pub(crate) once: bool,
    /// Seconds between passes.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) interval_seconds: u64,
    /// Stacks reconciled at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub(crate) concurrency: u64,
}

pub(crate) async fn reconcile(
    global: &GlobalArgs,
    platform: &Platform,
    args: ReconcileArgs,
) -> anyhow::Result<()> {
    let (tenant, stack) = split_stack_path(&args.stack)?;
    let reconciled = platform.engine.reconcile(&tenant, &stack).await.map_err(engine_error)?;
    match global.output {
        OutputFormat::Json => output::print_json(&reconciled_json(&tenant, &stack, &reconciled)),
        OutputFormat::Text => {
            output::print_text(&format!("{}\n", describe(&tenant, &stack, &reconciled)))
        }
    }
}

pub(crate) async fn controller(
    global: &GlobalArgs,
    platform: &Platform,
    args: ControllerArgs,
) -> anyhow::Result<()> {
    let concurrency = usize::try_from(args.concurrency).unwrap_or(4);
    loop {
        let report = platform.engine.reconcile_pass(concurrency).await.map_err(engine_error)?;
        print_report(global, &report)?;
        if args.once {
            return match report.failures() {
                0 => Ok(()),
                failures => Err(format_err!(
                    "{failures} of {} stacks failed to reconcile\nhint: each line above says why; the next pass retries them",
                    report.activations.len()
                )),
            };
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(args.interval_seconds)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

fn print_report(global: &GlobalArgs, report: &PassReport) -> anyhow::Result<()> {
    match global.output {
        OutputFormat::Json => output::print_json(&json!({
            "stacks_seen": report.stacks_seen,
            "failures": report.failures(),
            "activations": report.activations.iter().map(activation_json).collect::<Vec<_>>(),
        })),
        OutputFormat::Text => {
            let mut text = format!(
                "pass: {} stacks seen, {} asked for something, {} failed\n",
                report.stacks_seen,
                report.activations.len(),
                report.failures()
            );
            for activation in &report.activations {
                let line = match &activation.result {
                    Ok(reconciled) => describe(&activation.tenant, &activation.stack, reconciled),
                    Err(error) => format!(
                        "{}/{}: failed: {}",
                        activation.tenant,
                        activation.stack,
                        error.to_string().lines().next().unwrap_or_default()
                    ),
                };
                text.push_str(&format!("  {line}\n"));
            }
            output::print_text(&text)
        }
    }
}

fn describe(tenant: &str, stack: &str, reconciled: &Reconciled) -> String {
    match reconciled {
        Reconciled::Converged { status } => format!("{tenant}/{stack}: {status}, nothing asked"),
        Reconciled::Acted { operation, outcome } => {
            format!("{tenant}/{stack}: {operation} done, now {}", outcome.status)
        }
        Reconciled::Waiting { reason } => format!("{tenant}/{stack}: waiting: {reason}"),
    }
}

fn reconciled_json(tenant: &str, stack: &str, reconciled: &Reconciled) -> Value {
    match reconciled {
        Reconciled::Converged { status } => {
            json!({ "tenant": tenant, "stack": stack, "result": "converged", "status": status.as_str() })
        }
        Reconciled::Acted { operation, outcome } => json!({
            "tenant": tenant, "stack": stack, "result": "acted", "operation": operation,
            "status": outcome.status.as_str(),
        }),
        Reconciled::Waiting { reason } => {
            json!({ "tenant": tenant, "stack": stack, "result": "waiting", "reason": reason })
        }
    }
}

fn activation_json(activation: &StackActivation) -> Value {
    match &activation.result {
        Ok(reconciled) => reconciled_json(&activation.tenant, &activation.stack, reconciled),
        Err(error) => json!({
            "tenant": activation.tenant, "stack": activation.stack, "result": "failed",
            "error": error.to_string(),
        }),
    }
}

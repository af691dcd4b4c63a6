//! `cfa reconcile <tenant>/<stack>` (one activation for one stack) and `cfa controller` (a pass
//! over every stack, then again every `--interval-seconds`; `--once` for cron and tests). Each
//! pass holds PocketBase's controller lease, so one controller acts at a time; a second one
//! waits and takes over when the first stops renewing it. The engine decides and acts; this
//! prints what it did.

use std::time::{Duration, Instant};

use anyhow::format_err;
use cfa_core::Backoff;
use cfa_engine::{
    Backoffs, Cadence, Completion, ControllerPass, MonitorPass, PassFocus, PassReport, Reconciled,
    StackActivation, Woken,
};
use clap::Args;
use serde_json::{Value, json};

use crate::args::{GlobalArgs, OutputFormat};
use crate::exit;
use crate::output;
use crate::platform::{Platform, engine_error, split_stack_path};

#[derive(Debug, Args)]
pub(crate) struct ReconcileArgs {
    /// The stack, `<tenant>/<stack>`.
    pub(crate) stack: String,
    #[command(flatten)]
    pub(crate) wait: crate::commands::stacks::WaitArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ControllerArgs {
    /// One pass, then exit: 0 when every stack converged, acted or waits, 1 on any failure.
    #[arg(long)]
    pub(crate) once: bool,
    #[command(flatten)]
    pub(crate) passes: PassArgs,
}

/// How the controller's passes run (`cfa controller` and `cfa serve`).
#[derive(Debug, Args)]
pub(crate) struct PassArgs {
    /// Seconds between passes.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) interval_seconds: u64,
    /// Stacks reconciled at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub(crate) concurrency: u64,
    /// How long the lease lasts unless renewed (renewed every third of it during a pass): how
    /// soon a second controller takes over when this one dies.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(3..=3600))]
    pub(crate) lease_seconds: u64,
}

pub(crate) async fn reconcile(
    global: &GlobalArgs,
    platform: &Platform,
    args: ReconcileArgs,
) -> anyhow::Result<()> {
    let (tenant, stack) = split_stack_path(&args.stack)?;
    let reconciled = match args.wait.completion() {
        Completion::Ready => platform.engine.reconcile(&tenant, &stack).await,
        Completion::Queued => platform.engine.reconcile_once(&tenant, &stack).await,
    };
    let reconciled = reconciled.map_err(engine_error)?;
    match global.output {
        OutputFormat::Json => output::print_json(&reconciled.to_json(&tenant, &stack)),
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
    run_passes(global, platform, &args.passes, args.once, None).await
}

/// Who holds the controller lease: `<host>:<pid>`.
pub(crate) fn holder_name() -> String {
    format!(
        "{}:{}",
        std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "cfa".to_owned()),
        std::process::id()
    )
}

/// Passes until Ctrl-C (or one pass with `once`), each under the lease, woken early by
/// PocketBase's realtime events. Between them, a monitor pass every `[monitor] interval`;
/// beside them, the alert dispatcher and the heartbeat.
pub(crate) async fn run_passes(
    global: &GlobalArgs,
    platform: &Platform,
    args: &PassArgs,
    once: bool,
    monitor_wake: Option<std::sync::Arc<tokio::sync::Notify>>,
) -> anyhow::Result<()> {
    let monitor_wake = monitor_wake.unwrap_or_default();
    if once {
        let alerting = Alerting { dispatcher: None, spool: None };
        return pass_loop(global, platform, args, true, &monitor_wake, alerting).await;
    }
    let dispatcher = super::monitor::dispatcher(&platform.config, platform)?;
    let spool = super::monitor::spool_dispatcher(&platform.config)?;
    let heartbeat = super::monitor::heartbeat(&platform.config)?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        }
    };
    let passes = async {
        let alerting = Alerting { dispatcher: dispatcher.as_ref(), spool: spool.as_ref() };
        let result = pass_loop(global, platform, args, false, &monitor_wake, alerting).await;
        let _ = stop.send(true);
        result
    };
    let delivering = async {
        if let Some(dispatcher) = &dispatcher {
            dispatcher.run(until_stopped()).await;
        }
    };
    let spooling = async {
        if let Some(spool) = &spool {
            spool.run(until_stopped()).await;
        }
    };
    let beating = async {
        if let Some(heartbeat) = &heartbeat {
            heartbeat.run(until_stopped()).await;
        }
    };
    let (result, (), (), ()) = tokio::join!(passes, delivering, spooling, beating);
    result
}

/// Where a pass's alerts go: PocketBase's outbox (its dispatcher woken after a monitor pass),
/// or, for PocketBase itself being down, the local spool.
#[derive(Clone, Copy)]
struct Alerting<'a> {
    dispatcher: Option<&'a cfa_alerts::Dispatcher<cfa_engine::PocketBaseOutbox>>,
    spool: Option<&'a cfa_alerts::Dispatcher<cfa_alerts::SpoolOutbox>>,
}

/// The controller's passes (and, unless `once`, the monitor's between them).
async fn pass_loop(
    global: &GlobalArgs,
    platform: &Platform,
    args: &PassArgs,
    once: bool,
    monitor_wake: &tokio::sync::Notify,
    alerting: Alerting<'_>,
) -> anyhow::Result<()> {
    let mut pocketbase_watch =
        cfa_engine::PocketBaseWatch::new(platform.engine.settings().monitor.policies.clone());
    let concurrency = usize::try_from(args.concurrency).unwrap_or(4);
    let lease = Duration::from_secs(args.lease_seconds);
    let holder = holder_name();
    let engine = &platform.engine;
    let mut backoffs = Backoffs::new(Backoff::CONTROLLER);
    let mut subscription = None;
    if !once {
        engine.subscribe(&mut subscription).await;
    }
    let interval = Duration::from_secs(args.interval_seconds);
    let follow_up = engine.settings().poll_interval;
    let mut cadence = Cadence::new(interval, follow_up, Instant::now());
    let monitor_interval =
        platform.config.file.monitor.interval.unwrap_or(super::monitor::DEFAULT_INTERVAL);
    let mut next_monitor = Instant::now();
    // What the next pass goes over: the record a realtime event named, else what the cadence
    // says is due (the resync, or the deploys under way).
    let mut event: Option<Box<cfa_pocketbase::AgentStack>> = None;
    loop {
        let now = Instant::now();
        let focus = match event.take() {
            Some(record) => PassFocus::Record(record),
            None => cadence.due(now),
        };
        let pass = engine.controller_pass(&holder, lease, concurrency, &mut backoffs, &focus).await;
        let now = Instant::now();
        match pass.map_err(engine_error) {
            Err(error) if once => return Err(error),
            Err(error) => {
                // PocketBase unreachable: one line, and the next pass retries.
                tracing::warn!(error = %error, "controller pass failed");
                cadence.failed(now, None);
            }
            Ok(ControllerPass::LeaseHeld { holder: other, remaining }) => {
                let message = format!(
                    "another controller holds the lease: {other} (for {}s more, unless it renews it)",
                    remaining.as_secs()
                );
                if once {
                    return Err(exit::refused(format_err!(
                        "{message}\nhint: one controller acts at a time; this one takes over when that one stops"
                    )));
                }
                tracing::info!("{message}");
                cadence.failed(now, Some(remaining + Duration::from_secs(1)));
            }
            Ok(ControllerPass::Ran(report)) => {
                print_report(global, &report)?;
                if once {
                    engine.controller_release(&holder).await;
                    return match report.failures() {
                        0 => Ok(()),
                        failures => Err(format_err!(
                            "{failures} of {} stacks failed to reconcile\nhint: each line above says why; the next pass retries them",
                            report.activations.len()
                        )),
                    };
                }
                cadence.passed(&focus, &report, now);
            }
        }
        if Instant::now() >= next_monitor {
            next_monitor = Instant::now() + monitor_interval;
            let monitored = engine.monitor_under_lease(&holder, lease).await;
            // PocketBase down cannot be recorded in PocketBase: the local spool sends it.
            for message in pocketbase_watch.observe(&monitored, std::time::SystemTime::now()) {
                tracing::error!(title = %message.title(), "alert through the local spool");
                if let Some(spool) = alerting.spool
                    && let Err(error) = spool.enqueue_grouped(&message).await
                {
                    tracing::error!(%error, "cannot spool the alert");
                }
            }
            match monitored.map_err(engine_error) {
                Ok(MonitorPass::Ran(report)) => {
                    super::monitor::print_report(global, &report)?;
                    // Its messages are in the outbox: deliver them now, not at the next poll.
                    if report.outbox_writes > 0
                        && let Some(dispatcher) = alerting.dispatcher
                    {
                        dispatcher.wake();
                    }
                }
                // The other controller monitors as well as it reconciles.
                Ok(MonitorPass::LeaseHeld { .. }) => {}
                Err(error) => tracing::warn!(error = %error, "monitor pass failed"),
            }
        }
        // A record that asks for something wakes the next pass at once; otherwise the cadence
        // (or the monitor) says when the next one is due.
        let wait = cadence
            .wait(Instant::now())
            .min(next_monitor.saturating_duration_since(Instant::now()));
        tokio::select! {
            woken = engine.wait_for_request(&mut subscription, wait) => match woken {
                Woken::Request(record) => event = Some(record),
                // Events may have been missed: the resync, now.
                Woken::Missed => cadence.resync_now(Instant::now()),
                Woken::Timeout => {}
            },
            // A host agent reported (an OOM kill): the monitor looks now.
            () = monitor_wake.notified() => next_monitor = Instant::now(),
            _ = tokio::signal::ctrl_c() => {
                engine.controller_release(&holder).await;
                return Ok(());
            }
        }
    }
}

fn print_report(global: &GlobalArgs, report: &PassReport) -> anyhow::Result<()> {
    match global.output {
        OutputFormat::Json => output::print_json(&json!({
            "stacks_seen": report.stacks_seen,
            "failures": report.failures(),
            "activations": report.activations.iter().map(activation_json).collect::<Vec<_>>(),
            "given_up": report.given_up.iter().map(|(tenant, stack, failures)| json!({
                "tenant": tenant, "stack": stack, "failures": failures,
            })).collect::<Vec<_>>(),
            "backing_off": report.backing_off.iter().map(|(tenant, stack, failures, wait)| json!({
                "tenant": tenant, "stack": stack, "failures": failures, "retry_in_seconds": wait.as_secs(),
            })).collect::<Vec<_>>(),
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
            for (tenant, stack, failures, wait) in &report.backing_off {
                text.push_str(&format!(
                    "  {tenant}/{stack}: left alone for {}s more after {failures} failed attempts\n",
                    wait.as_secs()
                ));
            }
            for (tenant, stack, failures) in &report.given_up {
                text.push_str(&format!(
                    "  {tenant}/{stack}: given up after {failures} failed attempts; a change to its record (`pending` again) retries it\n"
                ));
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
        Reconciled::DeleteScheduled { due } => {
            format!("{tenant}/{stack}: the tenant asked for a delete; it runs after {due}")
        }
        Reconciled::Deleted => format!("{tenant}/{stack}: deleted as the tenant asked"),
        Reconciled::InProgress { operation } => {
            format!("{tenant}/{stack}: {operation} under way, not ready yet")
        }
    }
}

fn activation_json(activation: &StackActivation) -> Value {
    match &activation.result {
        Ok(reconciled) => reconciled.to_json(&activation.tenant, &activation.stack),
        Err(error) => json!({
            "tenant": activation.tenant, "stack": activation.stack, "result": "failed",
            "error": error.to_string(),
        }),
    }
}

/// `cfa status --controller`: the lease holder and the last pass, as the holder recorded it.
pub(crate) async fn status(global: &GlobalArgs, platform: &Platform) -> anyhow::Result<()> {
    let lease = platform.engine.controller_status().await.map_err(engine_error)?;
    let now_ms = jiff::Timestamp::now().as_millisecond();
    match global.output {
        OutputFormat::Json => output::print_json(&match &lease {
            None => json!({ "holder": null, "held": false, "last_pass": null }),
            Some(lease) => json!({
                "holder": lease.holder,
                "held": lease.expires_ms > now_ms,
                "expires_ms": lease.expires_ms,
                "last_pass": lease.last_pass,
            }),
        }),
        OutputFormat::Text => {
            let Some(lease) = lease else {
                return output::print_text("controller: never ran (no lease taken)\n");
            };
            let seconds = (lease.expires_ms - now_ms) / 1000;
            let mut text = if seconds > 0 {
                format!(
                    "controller: held by {} for {seconds}s more (renewed while it runs)\n",
                    lease.holder
                )
            } else {
                format!(
                    "controller: not running (last holder {}, lease ended {}s ago)\n",
                    lease.holder, -seconds
                )
            };
            let pass = &lease.last_pass;
            if pass.is_null() {
                text.push_str("last pass: none recorded\n");
            } else {
                text.push_str(&format!(
                    "last pass: {} (took {} ms): {} stacks seen, {} acted, {} waiting, {} failed, {} backing off\n",
                    pass["finished"].as_str().unwrap_or("?"),
                    pass["took_ms"],
                    pass["stacks_seen"],
                    pass["acted"],
                    pass["waiting"],
                    pass["failed"],
                    pass["backing_off"],
                ));
                for error in pass["errors"].as_array().into_iter().flatten() {
                    text.push_str(&format!(
                        "  failed: {}/{}: {}\n",
                        error["tenant"].as_str().unwrap_or("?"),
                        error["stack"].as_str().unwrap_or("?"),
                        error["error"].as_str().unwrap_or("?"),
                    ));
                }
            }
            output::print_text(&text)
        }
    }
}

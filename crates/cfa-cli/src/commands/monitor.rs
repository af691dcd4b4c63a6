//! `cfa monitor [--once]` (health passes and alert delivery, without reconciling; the
//! controller and `cfa serve` run the same passes) and `cfa alerts` (incidents: list,
//! acknowledge, silence). The engine judges and records; `cfa_alerts` delivers; this prints.

use std::time::Duration;

use anyhow::{Context, format_err};
use cfa_alerts::{Dispatcher, Heartbeat, RetryPolicy};
use cfa_engine::{AlertAction, MonitorPass, MonitorReport, PocketBaseOutbox};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::args::{GlobalArgs, OutputFormat};
use crate::config::Config;
use crate::platform::{Platform, engine_error};
use crate::{exit, output};

#[derive(Debug, Args)]
pub(crate) struct MonitorArgs {
    /// One pass (and one round of deliveries), then exit: 0, or 3 when another controller holds
    /// the lease (and monitors).
    #[arg(long)]
    pub(crate) once: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AlertsCommand {
    /// Firing incidents (with --all, resolved ones too), newest first.
    List(AlertsListArgs),
    /// No reminders for an open incident until the time is up; its resolve still comes.
    Ack(AlertsActArgs),
    /// No opens or reminders for the incident's stack and kind until the time is up.
    Silence(AlertsActArgs),
}

#[derive(Debug, Args)]
pub(crate) struct AlertsListArgs {
    #[arg(long)]
    pub(crate) all: bool,
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: u32,
}

#[derive(Debug, Args)]
pub(crate) struct AlertsActArgs {
    /// The incident's id (`cfa alerts list` shows it).
    pub(crate) id: String,
    /// For how long, e.g. `4h`.
    #[arg(long = "for", default_value = "4h", value_parser = humantime::parse_duration)]
    pub(crate) period: Duration,
}

/// The alert dispatcher over PocketBase's outbox, when `[alerts]` configures channels.
pub(crate) fn dispatcher(
    config: &Config,
    platform: &Platform,
) -> anyhow::Result<Option<Dispatcher<PocketBaseOutbox>>> {
    let Some(alerts) = &config.file.alerts else { return Ok(None) };
    let channels = cfa_alerts::channels_from_config(alerts)
        .map_err(|error| exit::usage(anyhow::Error::new(error)))
        .context("[alerts] is not usable")?;
    if channels.is_empty() {
        return Ok(None);
    }
    let outbox = PocketBaseOutbox::new(platform.pocketbase.clone());
    Ok(Some(Dispatcher::new(channels, outbox, RetryPolicy::from_config(&alerts.delivery))))
}

/// The dispatcher over `[alerts] spool_dir`, for what cannot go through PocketBase (PocketBase
/// being down); `None` without channels or a spool directory.
pub(crate) fn spool_dispatcher(
    config: &Config,
) -> anyhow::Result<Option<Dispatcher<cfa_alerts::SpoolOutbox>>> {
    let Some(alerts) = &config.file.alerts else { return Ok(None) };
    let Some(dir) = &alerts.spool_dir else { return Ok(None) };
    let channels = cfa_alerts::channels_from_config(alerts)
        .map_err(|error| exit::usage(anyhow::Error::new(error)))
        .context("[alerts] is not usable")?;
    if channels.is_empty() {
        return Ok(None);
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create [alerts] spool_dir `{}`", dir.display()))?;
    let outbox = cfa_alerts::SpoolOutbox::open(dir)
        .with_context(|| format!("cannot open [alerts] spool_dir `{}`", dir.display()))?;
    Ok(Some(Dispatcher::new(channels, outbox, RetryPolicy::from_config(&alerts.delivery))))
}

/// The dead-man's switch `[alerts.heartbeat]` configures.
pub(crate) fn heartbeat(config: &Config) -> anyhow::Result<Option<Heartbeat>> {
    let Some(heartbeat) = config.file.alerts.as_ref().and_then(|alerts| alerts.heartbeat.as_ref())
    else {
        return Ok(None);
    };
    Heartbeat::from_config(heartbeat)
        .map(Some)
        .map_err(|error| exit::usage(anyhow::Error::new(error)))
        .context("[alerts.heartbeat] is not usable")
}

pub(crate) async fn monitor(
    global: &GlobalArgs,
    platform: &Platform,
    args: MonitorArgs,
) -> anyhow::Result<()> {
    let dispatcher = dispatcher(&platform.config, platform)?;
    let holder = super::controller::holder_name();
    let interval = platform.config.file.monitor.interval.unwrap_or(DEFAULT_INTERVAL);
    let lease = Duration::from_secs(60);
    loop {
        match platform.engine.monitor_under_lease(&holder, lease).await.map_err(engine_error) {
            Ok(MonitorPass::Ran(report)) => print_report(global, &report)?,
            Ok(MonitorPass::LeaseHeld { holder: other, .. }) if args.once => {
                return Err(exit::refused(format_err!(
                    "another controller holds the lease and monitors: {other}\nhint: one monitor runs at a time; `cfa alerts list` shows what it found"
                )));
            }
            Ok(MonitorPass::LeaseHeld { holder: other, .. }) => {
                tracing::info!(%other, "another controller holds the lease and monitors");
            }
            Err(error) if args.once => {
                platform.engine.controller_release(&holder).await;
                return Err(error);
            }
            Err(error) => tracing::warn!(error = %error, "monitor pass failed"),
        }
        if let Some(dispatcher) = &dispatcher {
            dispatcher.deliver_due().await;
        }
        if args.once {
            platform.engine.controller_release(&holder).await;
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => {
                platform.engine.controller_release(&holder).await;
                return Ok(());
            }
        }
    }
}

/// Between two monitor passes unless `[monitor] interval` says otherwise.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

pub(crate) fn print_report(global: &GlobalArgs, report: &MonitorReport) -> anyhow::Result<()> {
    match global.output {
        OutputFormat::Json => output::print_json(&json!({
            "stacks_checked": report.stacks_checked,
            "probes": report.probes,
            "coolify_calls": report.coolify_calls,
            "coolify_unreachable": report.coolify_unreachable,
            "writes": report.writes(),
            "opened": report.opened,
            "resolved": report.resolved,
            "messages": report.messages.iter().map(|message| message.title()).collect::<Vec<_>>(),
            "verdicts": report.verdicts.iter().map(|(verdict, count)| (verdict.to_string(), *count)).collect::<std::collections::BTreeMap<_, _>>(),
        })),
        OutputFormat::Text => {
            let mut text = match &report.coolify_unreachable {
                Some(why) => format!("monitor: {why}; no stack judged\n"),
                None => format!(
                    "monitor: {} stacks checked ({} probed), {} incidents opened, {} resolved, {} writes\n",
                    report.stacks_checked,
                    report.probes,
                    report.opened.len(),
                    report.resolved.len(),
                    report.writes()
                ),
            };
            for message in &report.messages {
                text.push_str(&format!("  alert: {}\n", message.title()));
            }
            output::print_text(&text)
        }
    }
}

pub(crate) async fn alerts(
    global: &GlobalArgs,
    platform: &Platform,
    command: AlertsCommand,
) -> anyhow::Result<()> {
    let engine = &platform.engine;
    let (args, action) = match command {
        AlertsCommand::List(args) => {
            let incidents = engine.incidents(!args.all, args.limit).await.map_err(engine_error)?;
            let undelivered = platform
                .pocketbase
                .outbox_undelivered(cfa_pocketbase::MAX_PER_PAGE)
                .await
                .context("cannot read the alert outbox")?;
            return match global.output {
                OutputFormat::Json => output::print_json(&json!({
                    "incidents": incidents.iter().map(incident_json).collect::<Vec<_>>(),
                    "undelivered_messages": undelivered.len(),
                })),
                OutputFormat::Text => {
                    let mut table = vec![
                        ["ID", "STATUS", "KIND", "ON", "OPENED", "DETAIL"]
                            .map(str::to_owned)
                            .to_vec(),
                    ];
                    for incident in &incidents {
                        table.push(vec![
                            incident.id.clone(),
                            incident.status.as_str().to_owned(),
                            incident.flapping_of.as_ref().map_or_else(
                                || incident.kind.clone(),
                                |kind| format!("flapping {kind}"),
                            ),
                            subject_label(incident),
                            incident.opened_at.strftime("%Y-%m-%d %H:%M").to_string(),
                            incident.detail.clone().unwrap_or_default().chars().take(60).collect(),
                        ]);
                    }
                    let mut text = output::table(&table);
                    text.push_str(&format!("{} message(s) not delivered yet\n", undelivered.len()));
                    output::print_text(&text)
                }
            };
        }
        AlertsCommand::Ack(args) => (args, AlertAction::Acknowledge),
        AlertsCommand::Silence(args) => (args, AlertAction::Silence),
    };
    let by = platform.config.actor();
    let incident =
        engine.act_on_incident(&args.id, action, args.period, &by).await.map_err(|error| {
            match error {
                cfa_engine::AlertActionError::Engine(error) => engine_error(error),
                other => exit::usage(anyhow::Error::new(other)),
            }
        })?;
    let verb = match action {
        AlertAction::Acknowledge => "acknowledged",
        AlertAction::Silence => "silenced",
    };
    match global.output {
        OutputFormat::Json => output::print_json(&incident_json(&incident)),
        OutputFormat::Text => output::print_text(&format!(
            "{} ({} on {}) {verb} for {}\n",
            incident.id,
            incident.kind,
            subject_label(&incident),
            humantime::format_duration(args.period)
        )),
    }
}

fn subject_label(incident: &cfa_pocketbase::IncidentRecord) -> String {
    match (&incident.tenant, &incident.stack) {
        (Some(tenant), Some(stack)) => format!("{tenant}/{stack}"),
        _ => incident.subject["type"].as_str().unwrap_or("platform").to_owned(),
    }
}

fn incident_json(incident: &cfa_pocketbase::IncidentRecord) -> serde_json::Value {
    json!({
        "id": incident.id,
        "key": incident.key,
        "kind": incident.kind,
        "flapping_of": incident.flapping_of,
        "status": incident.status.as_str(),
        "tenant": incident.tenant,
        "stack": incident.stack,
        "opened_at": incident.opened_at.to_string(),
        "resolved_at": incident.resolved_at.map(|time| time.to_string()),
        "detail": incident.detail,
        "acknowledged_until": incident.acknowledged_until.map(|time| time.to_string()),
        "acknowledged_by": incident.acknowledged_by,
    })
}

//! `cfa drift [--remove-orphans] [--environment]`: where Coolify, the records and the templates disagree
//! (the engine's `drift`), and who puts each right. Read-only unless `--remove-orphans`.

use clap::Args;

use crate::args::{GlobalArgs, OutputFormat};
use crate::output;
use crate::platform::{Platform, engine_error};

#[derive(Debug, Args)]
pub(crate) struct DriftArgs {
    /// Record new orphans as seen and remove those seen longer ago than `[engine]
    /// orphan_grace` (their volumes are kept); the controller does this on every full pass.
    #[arg(long)]
    pub(crate) remove_orphans: bool,
    /// Also compare each deployed stack's variables in Coolify with its template's secret
    /// parameters (names only, never values): one Coolify call per stack.
    #[arg(long)]
    pub(crate) environment: bool,
}

pub(crate) async fn drift(
    global: &GlobalArgs,
    platform: &Platform,
    args: DriftArgs,
) -> anyhow::Result<()> {
    let options = cfa_engine::DriftOptions {
        remove_orphans: args.remove_orphans,
        environment: args.environment,
    };
    let report = platform.engine.drift(options).await.map_err(engine_error)?;
    if global.output == OutputFormat::Json {
        return output::print_json(&report.to_json());
    }
    let mut text = format!(
        "{} stacks, {} Coolify services: {} orphans, {} drifts\n",
        report.stacks_seen,
        report.services_seen,
        report.orphans.len(),
        report.drift.len()
    );
    for orphan in &report.orphans {
        let seen = orphan.first_seen.map_or("not seen before".to_owned(), |time| {
            format!("first seen {}", time.strftime("%Y-%m-%d %H:%M:%S UTC"))
        });
        text.push_str(&format!(
            "orphan  {} (marker {}/{}, {}): no record claims it; {seen}\n",
            orphan.service_uuid, orphan.tenant, orphan.stack, orphan.status
        ));
    }
    for uuid in &report.removed {
        text.push_str(&format!("removed {uuid} (volumes kept)\n"));
    }
    for drift in &report.drift {
        let who = match drift.healing {
            cfa_engine::Healing::Controller => "the controller heals it",
            cfa_engine::Healing::Upgrade => "cfa upgrade applies it",
            cfa_engine::Healing::Operator => "for the operator",
        };
        text.push_str(&format!(
            "drift   {}/{}: {:?}: {} ({who})\n",
            drift.tenant, drift.stack, drift.kind, drift.detail
        ));
    }
    output::print_text(&text)
}

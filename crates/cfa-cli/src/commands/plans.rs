//! `cfa plans`: the plan table in use (built-in, or with the operator's plans file).

use cfa_core::plan::{BackupPolicy, Plan};
use serde_json::json;

use crate::args::{GlobalArgs, OutputFormat};
use crate::output;
use crate::settings;

pub(crate) fn run(global: &GlobalArgs) -> anyhow::Result<()> {
    let plans = settings::plans(global)?;
    match global.output {
        OutputFormat::Json => {
            output::print_json(&json!(plans.plans().map(plan_json).collect::<Vec<_>>()))
        }
        OutputFormat::Text => {
            let mut rows = vec![vec![
                "TIER".to_owned(),
                "MAX STACKS".to_owned(),
                "PER-STACK CEILING".to_owned(),
                "TEMPLATES".to_owned(),
                "BACKUPS".to_owned(),
            ]];
            for plan in plans.plans() {
                rows.push(vec![
                    plan.tier.to_string(),
                    match (plan.max_stacks, plan.max_stacks_limit) {
                        (None, _) => "unlimited".to_owned(),
                        (Some(count), Some(limit)) if limit > count => {
                            format!("{count} (up to {limit})")
                        }
                        (Some(count), _) => count.to_string(),
                    },
                    plan.ceiling_description(),
                    plan.templates.join(", ").replace('*', "all"),
                    backups_text(plan.backups),
                ]);
            }
            output::print_text(&output::table(&rows))
        }
    }
}

fn backups_text(backups: BackupPolicy) -> String {
    match backups {
        BackupPolicy::None => "none".to_owned(),
        BackupPolicy::Daily { retention_days } => format!("daily, kept {retention_days} days"),
    }
}

fn plan_json(plan: &Plan) -> serde_json::Value {
    let ceiling = plan.ceiling_for(None);
    json!({
        "tier": plan.tier.as_str(),
        "max_stacks": plan.max_stacks,
        "max_stacks_limit": plan.max_stacks_limit,
        "ceiling": {
            "custom": matches!(plan.ceiling, cfa_core::plan::Ceiling::Tenant { .. }),
            "cpus": ceiling.cpus(),
            "memory_mb": ceiling.memory_mb,
        },
        "templates": plan.templates,
        "backups": backups_text(plan.backups),
    })
}

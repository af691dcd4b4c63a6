//! A tenant's plan, quota and ceiling: what may be asked when a tenant is created or changes
//! plan. A plan change must not strand what the tenant runs: more stacks than the new quota,
//! a template the new plan does not offer, or a ceiling below what a stack needs (its next
//! upgrade would be refused) are refused, naming the stacks.

use crate::plan::{PlanTable, PlanTier};
use crate::resources::Resources;

/// `max_stacks` for a plan without a count limit (PocketBase's number field needs a value).
pub const UNLIMITED_STACKS: u32 = 1000;

/// Why a tenant's plan, quota or ceiling cannot be set. The first three are a wrong request;
/// the others are refusals that protect the tenant's stacks.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TenancyRefusal {
    #[error("a quota of {quota} stacks is outside plan {plan}'s range 1..={limit}")]
    QuotaOutOfRange { quota: u32, plan: PlanTier, limit: u32 },
    #[error("a custom per-stack ceiling is for sovereign tenants; plan {plan} has a fixed one")]
    CeilingNotForPlan { plan: PlanTier },
    #[error("a ceiling of {cpus} CPUs and {memory_mb} MB is outside 0-1024 CPUs and 64-4194304 MB")]
    CeilingOutOfRange { cpus: f64, memory_mb: u32 },
    #[error("the tenant has {has} stacks, more than plan {plan}'s quota of {quota}")]
    TooManyStacks { has: usize, plan: PlanTier, quota: u32 },
    #[error("plan {plan} does not offer the template of {}", stacks.join(", "))]
    TemplatesNotOffered { plan: PlanTier, stacks: Vec<String> },
    #[error("plan {plan} allows {ceiling} per stack, less than {}", stacks.join(", "))]
    CeilingTooSmall { plan: PlanTier, ceiling: Resources, stacks: Vec<String> },
}

impl TenancyRefusal {
    /// What to do about it, without naming any front end's commands.
    pub fn hint(&self) -> &'static str {
        match self {
            TenancyRefusal::QuotaOutOfRange { .. } => "choose a larger plan for more stacks",
            TenancyRefusal::CeilingNotForPlan { .. } => "each plan's ceiling is in the plan table",
            TenancyRefusal::CeilingOutOfRange { .. } => {
                "give CPUs above 0 and memory of at least 64 MB"
            }
            TenancyRefusal::TooManyStacks { .. } => "delete stacks first",
            TenancyRefusal::TemplatesNotOffered { .. } => "delete or move those stacks first",
            TenancyRefusal::CeilingTooSmall { .. } => {
                "give a larger ceiling, or delete those stacks first"
            }
        }
    }

    /// Whether the request itself was malformed (rather than refused to protect stacks).
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            TenancyRefusal::QuotaOutOfRange { .. }
                | TenancyRefusal::CeilingNotForPlan { .. }
                | TenancyRefusal::CeilingOutOfRange { .. }
        )
    }
}

/// One of the tenant's stacks, as a plan change sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct StackNeeds {
    pub stack: String,
    pub template: String,
    /// Below this the stack does not run (its template's minimum for its parameters).
    pub minimum: Resources,
}

/// The stack quota for `plan`: `requested`, or the plan's own, within the plan's range.
pub fn plan_quota(
    plans: &PlanTable,
    plan: PlanTier,
    requested: Option<u32>,
) -> Result<u32, TenancyRefusal> {
    let rules = plans.plan(plan);
    let quota = requested.unwrap_or(rules.max_stacks.unwrap_or(UNLIMITED_STACKS));
    let limit = rules.max_stacks_limit.or(rules.max_stacks).unwrap_or(UNLIMITED_STACKS);
    if quota == 0 || quota > limit {
        return Err(TenancyRefusal::QuotaOutOfRange { quota, plan, limit });
    }
    Ok(quota)
}

/// A sovereign tenant's custom per-stack ceiling, checked against the plan and the range
/// PocketBase accepts.
pub fn custom_ceiling(
    plan: PlanTier,
    cpus: f64,
    memory_mb: u32,
) -> Result<Resources, TenancyRefusal> {
    if plan != PlanTier::Sovereign {
        return Err(TenancyRefusal::CeilingNotForPlan { plan });
    }
    let in_range = cpus > 0.0 && cpus <= 1024.0 && (64..=4_194_304).contains(&memory_mb);
    if !in_range {
        return Err(TenancyRefusal::CeilingOutOfRange { cpus, memory_mb });
    }
    Ok(Resources::new((cpus * 1000.0).round() as u32, memory_mb, 0))
}

/// Whether the tenant's `stacks` still fit `plan` with `quota` and `ceiling` (a sovereign
/// tenant's own, or `None` for the plan's).
pub fn check_plan_change(
    plans: &PlanTable,
    plan: PlanTier,
    quota: u32,
    ceiling: Option<Resources>,
    stacks: &[StackNeeds],
) -> Result<(), TenancyRefusal> {
    if stacks.len() > quota as usize {
        return Err(TenancyRefusal::TooManyStacks { has: stacks.len(), plan, quota });
    }
    let rules = plans.plan(plan);
    let not_offered: Vec<String> = stacks
        .iter()
        .filter(|stack| !rules.allows_template(&stack.template))
        .map(|stack| format!("{} ({})", stack.stack, stack.template))
        .collect();
    if !not_offered.is_empty() {
        return Err(TenancyRefusal::TemplatesNotOffered { plan, stacks: not_offered });
    }
    let ceiling = rules.ceiling_for(ceiling);
    let too_small: Vec<String> = stacks
        .iter()
        .filter(|stack| !stack.minimum.compute_fits_within(&ceiling))
        .map(|stack| {
            format!("{} ({}) needing at least {}", stack.stack, stack.template, stack.minimum)
        })
        .collect();
    if !too_small.is_empty() {
        return Err(TenancyRefusal::CeilingTooSmall { plan, ceiling, stacks: too_small });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(stack: &str, template: &str, millicpus: u32, memory_mb: u32) -> StackNeeds {
        StackNeeds {
            stack: stack.to_owned(),
            template: template.to_owned(),
            minimum: Resources::new(millicpus, memory_mb, 0),
        }
    }

    #[test]
    fn quotas_stay_within_the_plans_range() {
        let plans = PlanTable::builtin();
        let starter = plans.plan(PlanTier::Starter).max_stacks.unwrap_or(UNLIMITED_STACKS);
        assert_eq!(plan_quota(&plans, PlanTier::Starter, None), Ok(starter));
        assert!(matches!(
            plan_quota(&plans, PlanTier::Starter, Some(0)),
            Err(TenancyRefusal::QuotaOutOfRange { .. })
        ));
        assert!(plan_quota(&plans, PlanTier::Starter, Some(UNLIMITED_STACKS + 1)).is_err());
    }

    #[test]
    fn a_custom_ceiling_is_for_sovereign_tenants_within_range() {
        assert_eq!(
            custom_ceiling(PlanTier::Sovereign, 6.0, 12288),
            Ok(Resources::new(6000, 12288, 0))
        );
        let refusal = custom_ceiling(PlanTier::Team, 6.0, 12288).unwrap_err();
        assert!(refusal.is_bad_request());
        assert!(custom_ceiling(PlanTier::Sovereign, 0.0, 12288).is_err());
        assert!(custom_ceiling(PlanTier::Sovereign, 2.0, 32).is_err());
    }

    #[test]
    fn a_plan_change_never_strands_a_stack() {
        let plans = PlanTable::builtin();
        let small = [needs("bot", "telegram-bot", 250, 128)];
        assert_eq!(check_plan_change(&plans, PlanTier::Team, 3, None, &small), Ok(()));
        let many = [needs("a", "telegram-bot", 250, 128), needs("b", "telegram-bot", 250, 128)];
        assert_eq!(
            check_plan_change(&plans, PlanTier::Team, 1, None, &many),
            Err(TenancyRefusal::TooManyStacks { has: 2, plan: PlanTier::Team, quota: 1 })
        );
        let huge = [needs("big", "telegram-bot", 64_000, 512_000)];
        let refusal = check_plan_change(&plans, PlanTier::Team, 3, None, &huge).unwrap_err();
        assert!(
            matches!(&refusal, TenancyRefusal::CeilingTooSmall { stacks, .. } if stacks[0].starts_with("big"))
        );
        assert!(!refusal.is_bad_request());
    }
}

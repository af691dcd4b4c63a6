//! The pure planner: from what an operation observed in PocketBase and Coolify, the steps it
//! still has to run, or why it may not run at all. One planner for every operation; the
//! executor ([`crate::Engine`]) and the dry runs both use it, so what a dry run says is what a
//! run does.
//!
//! Every step is idempotent, and a rerun after a crash at any point observes the half-done
//! state and plans only what is missing: the record is found by (tenant, stack name), the
//! project by its deterministic name, the service by the uuid in the record or else by its name
//! and our marker in the description.

mod calls;
mod delete;
mod power;
mod provision;
mod upgrade;

use std::fmt;

use cfa_core::{Remedy, StackRef, StackStatus};

pub use calls::{Api, PlannedCall, calls_of_step, observation_calls};

use crate::steps::Step;

/// What an operation observed before acting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// The record's status, `None` when there is no record yet.
    pub record_status: Option<StackStatus>,
    /// The record names a service uuid (whether or not Coolify still has it).
    pub record_names_service: bool,
    /// The record names the service that exists in Coolify.
    pub record_has_service: bool,
    /// The tenant's project exists in Coolify.
    pub project_exists: bool,
    /// The service exists in Coolify (by the recorded uuid, or by name and marker).
    pub service_exists: bool,
    /// The service's containers are up (Coolify's status says so, or a start is queued).
    pub service_running: bool,
    /// A start was queued (audited) so recently that Coolify's status cannot show it yet.
    pub start_queued: bool,
}

/// What is asked of a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Create it, or finish creating it, and run it. `backups`: the plan backs up its volumes.
    /// `start: false` prepares a tenant's record that waits for its secrets: project, service,
    /// backups and the variables known so far, nothing started and the record left `pending`,
    /// so the secrets have a service to go to.
    Provision { backups: bool, start: bool },
    /// Stop it, volumes kept.
    Suspend,
    /// The record says `stopped` (a tenant's request): stop containers that still run.
    KeepStopped,
    /// Start a suspended stack again.
    Resume,
    /// Apply a new render: what changed against what Coolify has.
    Upgrade { compose_changed: bool, environment_changed: bool },
    /// Remove it; `final_backup`: the plan backs up its volumes, so keep one last archive.
    Delete { final_backup: bool },
}

impl Intent {
    /// The operation's name as the audit log and the CLI say it.
    pub fn operation(self) -> &'static str {
        match self {
            Intent::Provision { .. } => "provision",
            Intent::Suspend | Intent::KeepStopped => "suspend",
            Intent::Resume => "resume",
            Intent::Upgrade { .. } => "upgrade",
            Intent::Delete { .. } => "delete",
        }
    }
}

/// Why an operation may not run from what was observed. Data, not words: each front end says
/// it its own way ([`Refused::hint`] is the CLI's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// There is no record of the stack.
    NoRecord,
    /// The stack was never deployed (`pending`): provision it.
    NotDeployed,
    /// A deploy is under way.
    Deploying,
    /// The stack is suspended: resume it first.
    Suspended,
    /// The last deploy failed: provision it again.
    Failed,
    /// The record names no Coolify service that exists: provision it again.
    NoService,
}

impl Refused {
    /// What can be done about it, as data each front end words.
    pub fn remedy(self, stack: StackRef) -> Remedy {
        match self {
            Refused::NoRecord => Remedy::ListStacks { tenant: stack.tenant },
            Refused::NotDeployed | Refused::Failed | Refused::NoService => Remedy::Deploy { stack },
            Refused::Deploying => Remedy::AwaitDeploy { stack },
            Refused::Suspended => Remedy::Resume { stack },
        }
    }
}

/// An operation the planner refused, with the status it was refused in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanRefusal {
    pub intent: Intent,
    pub status: Option<StackStatus>,
    pub reason: Refused,
}

impl fmt::Display for PlanRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.status.map_or("missing", StackStatus::as_str);
        write!(f, "a {status} stack cannot take `{}`", self.intent.operation())
    }
}

/// The steps `intent` still has to run from `observed`, in order; empty when there is nothing
/// to do.
pub fn plan(intent: Intent, observed: &Observation) -> Result<Vec<Step>, PlanRefusal> {
    let refuse = |reason| PlanRefusal { intent, status: observed.record_status, reason };
    match intent {
        Intent::Provision { backups, start: true } => {
            provision::plan_provision(observed, backups).map_err(refuse)
        }
        Intent::Provision { backups, start: false } => {
            provision::plan_prepare(observed, backups).map_err(refuse)
        }
        Intent::Suspend => power::plan_suspend(observed).map_err(refuse),
        Intent::KeepStopped => Ok(power::plan_keep_stopped(observed)),
        Intent::Resume => power::plan_resume(observed).map_err(refuse),
        Intent::Upgrade { compose_changed, environment_changed } => {
            upgrade::plan_upgrade(observed, compose_changed, environment_changed).map_err(refuse)
        }
        Intent::Delete { final_backup } => Ok(delete::plan_delete(observed, final_backup)),
    }
}

#[cfg(test)]
pub(crate) fn step_names(steps: &[Step]) -> Vec<&'static str> {
    steps.iter().map(|step| step.as_str()).collect()
}

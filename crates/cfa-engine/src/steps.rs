//! The provisioning saga as data: its steps, and the pure planner that decides which of them a
//! reconcile still has to run from what it observed in PocketBase and Coolify.
//!
//! The planner decides, the executor ([`crate::Engine`]) runs. Every step is idempotent, and a
//! rerun after a crash at any point observes the half-done state and plans only what is missing:
//! the record is found by (tenant, stack name), the project by its deterministic name, the
//! service by the uuid in the record or else by its name and our marker in the description.

use std::fmt;

use cfa_core::StackStatus;

/// One step of a stack operation. Failpoints fire after a step completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// Create the `pending` record (after admission).
    RecordPending,
    /// Move the record to `deploying`.
    RecordDeploying,
    /// Find or create the tenant's Coolify project.
    EnsureProject,
    /// Make sure the project has its `production` environment.
    EnsureEnvironment,
    /// Create the Coolify service from the rendered compose.
    CreateService,
    /// Adopt a service a crashed run created but did not record.
    AdoptService,
    /// Store the project and service uuids in the record.
    RecordService,
    /// Set the daily storage backup schedule (paid plans, stateful stacks).
    SetBackupSchedule,
    /// Bulk-upsert the environment (secrets included).
    SetEnvironment,
    /// Patch the service's compose and urls (upgrade).
    UpdateService,
    /// Start the service.
    StartService,
    /// Restart the service (upgrade).
    RestartService,
    /// Wait until Coolify reports healthy and the URL answers.
    WaitReady,
    /// Record `running`.
    RecordRunning,
    /// Stop without Docker cleanup (suspend).
    StopService,
    /// Wait until the containers are stopped.
    WaitStopped,
    /// Record `stopped`.
    RecordStopped,
    /// Run one final backup before delete.
    FinalBackup,
    /// Delete the Coolify service.
    DeleteService,
    /// Wait until Coolify has removed it.
    WaitDeleted,
    /// Delete the tenant's project when it is empty.
    DeleteProject,
    /// Delete the record.
    DeleteRecord,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::RecordPending => "record_pending",
            Step::RecordDeploying => "record_deploying",
            Step::EnsureProject => "ensure_project",
            Step::EnsureEnvironment => "ensure_environment",
            Step::CreateService => "create_service",
            Step::AdoptService => "adopt_service",
            Step::RecordService => "record_service",
            Step::SetBackupSchedule => "set_backup_schedule",
            Step::SetEnvironment => "set_environment",
            Step::UpdateService => "update_service",
            Step::StartService => "start_service",
            Step::RestartService => "restart_service",
            Step::WaitReady => "wait_ready",
            Step::RecordRunning => "record_running",
            Step::StopService => "stop_service",
            Step::WaitStopped => "wait_stopped",
            Step::RecordStopped => "record_stopped",
            Step::FinalBackup => "final_backup",
            Step::DeleteService => "delete_service",
            Step::WaitDeleted => "wait_deleted",
            Step::DeleteProject => "delete_project",
            Step::DeleteRecord => "delete_record",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a provision observed before acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionObservation {
    /// The record's status, `None` when there is no record yet.
    pub record_status: Option<StackStatus>,
    /// The record already holds the service's uuid.
    pub record_has_service: bool,
    /// The tenant's project exists in Coolify.
    pub project_exists: bool,
    /// The service exists in Coolify (by the recorded uuid, or by name and marker).
    pub service_exists: bool,
    /// The service's containers are up (Coolify's status says `running`, or a start is queued).
    pub service_running: bool,
    /// The plan backs up this stack's volumes.
    pub wants_backups: bool,
}

/// The steps a provision still has to run, in order. `running` records whose service is up
/// only get a readiness check and a fresh `running` (idempotent rerun).
pub fn plan_provision(observed: &ProvisionObservation) -> Vec<Step> {
    let mut steps = Vec::new();
    match observed.record_status {
        None => steps.extend([Step::RecordPending, Step::RecordDeploying]),
        Some(StackStatus::Pending | StackStatus::Error) => steps.push(Step::RecordDeploying),
        Some(StackStatus::Deploying | StackStatus::Running | StackStatus::Stopped) => {}
    }
    let already_done = observed.record_status == Some(StackStatus::Running)
        && observed.service_exists
        && observed.record_has_service
        && observed.service_running;
    if already_done {
        steps.extend([Step::WaitReady, Step::RecordRunning]);
        return steps;
    }
    steps.push(Step::EnsureProject);
    steps.push(Step::EnsureEnvironment);
    if !observed.service_exists {
        steps.push(Step::CreateService);
    } else if !observed.record_has_service {
        steps.push(Step::AdoptService);
    }
    if !observed.record_has_service || !observed.service_exists {
        steps.push(Step::RecordService);
    }
    if observed.wants_backups {
        steps.push(Step::SetBackupSchedule);
    }
    steps.push(Step::SetEnvironment);
    if !observed.service_running {
        steps.push(Step::StartService);
    }
    steps.extend([Step::WaitReady, Step::RecordRunning]);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation() -> ProvisionObservation {
        ProvisionObservation {
            record_status: None,
            record_has_service: false,
            project_exists: false,
            service_exists: false,
            service_running: false,
            wants_backups: false,
        }
    }

    fn check(observed: ProvisionObservation, expected: &[&str]) {
        let steps: Vec<&str> = plan_provision(&observed).into_iter().map(Step::as_str).collect();
        assert_eq!(steps, expected, "{observed:?}");
    }

    #[test]
    fn a_new_stack_runs_every_step() {
        check(
            observation(),
            &[
                "record_pending",
                "record_deploying",
                "ensure_project",
                "ensure_environment",
                "create_service",
                "record_service",
                "set_environment",
                "start_service",
                "wait_ready",
                "record_running",
            ],
        );
        check(
            ProvisionObservation { wants_backups: true, ..observation() },
            &[
                "record_pending",
                "record_deploying",
                "ensure_project",
                "ensure_environment",
                "create_service",
                "record_service",
                "set_backup_schedule",
                "set_environment",
                "start_service",
                "wait_ready",
                "record_running",
            ],
        );
    }

    #[test]
    fn a_crash_after_create_adopts_instead_of_creating_a_twin() {
        check(
            ProvisionObservation {
                record_status: Some(StackStatus::Deploying),
                project_exists: true,
                service_exists: true,
                ..observation()
            },
            &[
                "ensure_project",
                "ensure_environment",
                "adopt_service",
                "record_service",
                "set_environment",
                "start_service",
                "wait_ready",
                "record_running",
            ],
        );
    }

    #[test]
    fn a_recorded_service_that_vanished_is_created_again() {
        check(
            ProvisionObservation {
                record_status: Some(StackStatus::Error),
                record_has_service: true,
                project_exists: true,
                ..observation()
            },
            &[
                "record_deploying",
                "ensure_project",
                "ensure_environment",
                "create_service",
                "record_service",
                "set_environment",
                "start_service",
                "wait_ready",
                "record_running",
            ],
        );
    }

    #[test]
    fn a_running_stack_is_only_checked() {
        check(
            ProvisionObservation {
                record_status: Some(StackStatus::Running),
                record_has_service: true,
                project_exists: true,
                service_exists: true,
                service_running: true,
                ..observation()
            },
            &["wait_ready", "record_running"],
        );
    }

    #[test]
    fn a_started_service_is_not_started_twice() {
        check(
            ProvisionObservation {
                record_status: Some(StackStatus::Deploying),
                record_has_service: true,
                project_exists: true,
                service_exists: true,
                service_running: true,
                ..observation()
            },
            &[
                "ensure_project",
                "ensure_environment",
                "set_environment",
                "wait_ready",
                "record_running",
            ],
        );
    }
}

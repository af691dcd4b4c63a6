//! The steps of every stack operation, as data. [`crate::plan`] decides which of them an
//! operation still has to run; the executor ([`crate::Engine`]) runs them.

use std::fmt;

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

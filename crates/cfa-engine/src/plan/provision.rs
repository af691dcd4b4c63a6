//! Provision: create what is missing, adopt what a crashed run created, start, wait, record.

use cfa_core::StackStatus;

use super::{Observation, Refused};
use crate::steps::Step;

/// The steps a provision still has to run, in order. `running` records whose service is up
/// only get a readiness check and a fresh `running` (idempotent rerun). A suspended stack is
/// resumed, not provisioned.
pub(super) fn plan_provision(observed: &Observation, backups: bool) -> Result<Vec<Step>, Refused> {
    let mut steps = Vec::new();
    match observed.record_status {
        None => steps.extend([Step::RecordPending, Step::RecordDeploying]),
        Some(StackStatus::Pending | StackStatus::Error) => steps.push(Step::RecordDeploying),
        Some(StackStatus::Stopped) => return Err(Refused::Suspended),
        Some(StackStatus::Deploying | StackStatus::Running) => {}
    }
    let already_done = observed.record_status == Some(StackStatus::Running)
        && observed.record_has_service
        && observed.service_running;
    if already_done {
        steps.extend([Step::WaitReady, Step::RecordRunning]);
        return Ok(steps);
    }
    steps.push(Step::EnsureProject);
    steps.push(Step::EnsureEnvironment);
    if !observed.service_exists {
        steps.push(Step::CreateService);
    } else if !observed.record_has_service {
        steps.push(Step::AdoptService);
    }
    if !observed.record_has_service {
        steps.push(Step::RecordService);
    }
    if backups {
        steps.push(Step::SetBackupSchedule);
    }
    steps.push(Step::SetEnvironment);
    if !observed.service_running {
        steps.push(Step::StartService);
    }
    steps.extend([Step::WaitReady, Step::RecordRunning]);
    Ok(steps)
}

/// The steps that prepare a tenant's `pending` record for its secrets: everything a provision
/// creates, nothing started, the record's status untouched.
pub(super) fn plan_prepare(observed: &Observation, backups: bool) -> Result<Vec<Step>, Refused> {
    match observed.record_status {
        Some(StackStatus::Pending | StackStatus::Error) => {}
        Some(StackStatus::Stopped) => return Err(Refused::Suspended),
        // Only a tenant's record is prepared; anything further along has its service.
        None | Some(StackStatus::Deploying | StackStatus::Running) => return Ok(Vec::new()),
    }
    if observed.record_has_service {
        // Prepared already: the secrets have their place. What a crash left out (the backup
        // schedule) the provision that follows the secrets sets anyway.
        return Ok(Vec::new());
    }
    let mut steps = vec![Step::EnsureProject, Step::EnsureEnvironment];
    steps.push(match observed.service_exists {
        false => Step::CreateService,
        true => Step::AdoptService,
    });
    steps.push(Step::RecordService);
    if backups {
        steps.push(Step::SetBackupSchedule);
    }
    steps.push(Step::SetEnvironment);
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::plan::step_names;

    fn observation() -> Observation {
        Observation {
            record_status: None,
            record_names_service: false,
            record_has_service: false,
            project_exists: false,
            service_exists: false,
            service_running: false,
            start_queued: false,
        }
    }

    fn check(observed: Observation, expected: &[&str]) {
        check_with(observed, false, expected);
    }

    fn check_with(observed: Observation, backups: bool, expected: &[&str]) {
        let steps = plan_provision(&observed, backups).expect("planned");
        assert_eq!(step_names(&steps), expected, "{observed:?}");
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
        check_with(
            observation(),
            true,
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
    fn a_tenants_record_waiting_for_secrets_gets_its_service_once_never_a_start() {
        let pending = Observation { record_status: Some(StackStatus::Pending), ..observation() };
        let steps = plan_prepare(&pending, true).expect("planned");
        assert_eq!(
            step_names(&steps),
            [
                "ensure_project",
                "ensure_environment",
                "create_service",
                "record_service",
                "set_backup_schedule",
                "set_environment"
            ]
        );
        let crashed = Observation { project_exists: true, service_exists: true, ..pending };
        let steps = plan_prepare(&crashed, false).expect("planned");
        assert_eq!(
            step_names(&steps),
            [
                "ensure_project",
                "ensure_environment",
                "adopt_service",
                "record_service",
                "set_environment"
            ]
        );
        let prepared =
            Observation { record_names_service: true, record_has_service: true, ..crashed };
        assert!(plan_prepare(&prepared, true).expect("planned").is_empty());
        let stopped = Observation { record_status: Some(StackStatus::Stopped), ..prepared };
        assert_eq!(plan_prepare(&stopped, true), Err(Refused::Suspended));
    }

    #[test]
    fn a_crash_after_create_adopts_instead_of_creating_a_twin() {
        check(
            Observation {
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
            Observation {
                record_status: Some(StackStatus::Error),
                record_names_service: true,
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
            Observation {
                record_status: Some(StackStatus::Running),
                record_names_service: true,
                record_has_service: true,
                project_exists: true,
                service_exists: true,
                service_running: true,
                start_queued: false,
            },
            &["wait_ready", "record_running"],
        );
    }

    #[test]
    fn a_started_service_is_not_started_twice() {
        check(
            Observation {
                record_status: Some(StackStatus::Deploying),
                record_names_service: true,
                record_has_service: true,
                project_exists: true,
                service_exists: true,
                service_running: true,
                start_queued: false,
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

    #[test]
    fn a_suspended_stack_is_resumed_not_provisioned() {
        let observed = Observation {
            record_status: Some(StackStatus::Stopped),
            record_names_service: true,
            record_has_service: true,
            project_exists: true,
            service_exists: true,
            ..observation()
        };
        assert_eq!(plan_provision(&observed, false), Err(Refused::Suspended));
    }
}

//! Suspend and resume: stop the containers (volumes kept) or start them again.

use cfa_core::StackStatus;

use super::{Observation, Refused};
use crate::steps::Step;

/// Suspend: stop the service wherever it exists (a stale `exited` may hide containers that a
/// queued start brings up; Coolify's stop is harmless on a stopped service), then record
/// `stopped`. A stopped record is left alone: right after a stop Coolify's status still says
/// `running`, so it is no evidence that the containers run again (drift detection's job).
pub(super) fn plan_suspend(observed: &Observation) -> Result<Vec<Step>, Refused> {
    let stop = [Step::StopService, Step::WaitStopped];
    match observed.record_status {
        None => Err(Refused::NoRecord),
        Some(StackStatus::Pending) => Err(Refused::NotDeployed),
        Some(StackStatus::Deploying) => Err(Refused::Deploying),
        Some(StackStatus::Stopped) => Ok(Vec::new()),
        Some(StackStatus::Running | StackStatus::Error) => {
            let mut steps = Vec::new();
            if observed.service_exists {
                steps.extend(stop);
            }
            steps.push(Step::RecordStopped);
            Ok(steps)
        }
    }
}

/// A `stopped` record whose containers run (a tenant wrote `stopped`, or someone started them
/// in Coolify): stop them. Right after a stop Coolify's status may still say `running`; the
/// stop is then sent again, which Coolify takes as a no-op, and the wait ends at its next
/// status run.
pub(super) fn plan_keep_stopped(observed: &Observation) -> Vec<Step> {
    match observed.record_status {
        Some(StackStatus::Stopped) if observed.service_exists && observed.service_running => {
            vec![Step::StopService, Step::WaitStopped]
        }
        _ => Vec::new(),
    }
}

/// Resume: a stopped stack goes through `deploying` (a crash mid-way leaves a record the next
/// run finishes), its service is started (an interrupted resume: unless its start was queued a
/// moment ago), and it is recorded `running` once ready. Coolify's status is no reason to skip
/// the start: after a stop it says `running` until its next status run. A failed stack is
/// provisioned again, not resumed.
pub(super) fn plan_resume(observed: &Observation) -> Result<Vec<Step>, Refused> {
    let mut steps = Vec::new();
    match observed.record_status {
        None => return Err(Refused::NoRecord),
        Some(StackStatus::Pending) => return Err(Refused::NotDeployed),
        Some(StackStatus::Error) => return Err(Refused::Failed),
        Some(_) if !observed.record_has_service => return Err(Refused::NoService),
        Some(StackStatus::Running) => return Ok(steps),
        Some(StackStatus::Stopped) => steps.push(Step::RecordDeploying),
        Some(StackStatus::Deploying) => {}
    }
    // A stopped stack is started whatever was queued before: the stop came after it.
    if observed.record_status == Some(StackStatus::Stopped) || !observed.start_queued {
        steps.push(Step::StartService);
    }
    steps.extend([Step::WaitReady, Step::RecordRunning]);
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::step_names;

    fn deployed(status: StackStatus, service_running: bool) -> Observation {
        Observation {
            record_status: Some(status),
            record_names_service: true,
            record_has_service: true,
            project_exists: true,
            service_exists: true,
            service_running,
            start_queued: false,
        }
    }

    #[test]
    fn suspend_stops_what_exists_and_records_stopped() {
        let plan = plan_suspend(&deployed(StackStatus::Running, true)).unwrap();
        assert_eq!(step_names(&plan), ["stop_service", "wait_stopped", "record_stopped"]);
        // Coolify's stale `exited` is no proof: the service is stopped anyway.
        let plan = plan_suspend(&deployed(StackStatus::Error, false)).unwrap();
        assert_eq!(step_names(&plan), ["stop_service", "wait_stopped", "record_stopped"]);
        let gone = Observation {
            service_exists: false,
            record_has_service: false,
            ..deployed(StackStatus::Error, false)
        };
        assert_eq!(step_names(&plan_suspend(&gone).unwrap()), ["record_stopped"]);
    }

    #[test]
    fn suspend_of_a_stopped_stack_does_nothing_whatever_the_stale_status_says() {
        assert!(plan_suspend(&deployed(StackStatus::Stopped, false)).unwrap().is_empty());
        assert!(plan_suspend(&deployed(StackStatus::Stopped, true)).unwrap().is_empty());
    }

    #[test]
    fn a_stopped_record_stops_containers_that_run() {
        let plan = plan_keep_stopped(&deployed(StackStatus::Stopped, true));
        assert_eq!(step_names(&plan), ["stop_service", "wait_stopped"]);
        assert!(plan_keep_stopped(&deployed(StackStatus::Stopped, false)).is_empty());
        assert!(plan_keep_stopped(&deployed(StackStatus::Running, true)).is_empty());
    }

    #[test]
    fn suspend_refuses_what_is_not_deployed_yet() {
        assert_eq!(plan_suspend(&deployed(StackStatus::Pending, false)), Err(Refused::NotDeployed));
        assert_eq!(plan_suspend(&deployed(StackStatus::Deploying, true)), Err(Refused::Deploying));
    }

    #[test]
    fn resume_goes_through_deploying_and_starts_unless_a_start_is_queued() {
        let plan = plan_resume(&deployed(StackStatus::Stopped, false)).unwrap();
        assert_eq!(
            step_names(&plan),
            ["record_deploying", "start_service", "wait_ready", "record_running"]
        );
        // Coolify's `running` right after a stop is stale, and a start queued before the stop
        // is superseded by it: the start is sent anyway.
        let stale = Observation { start_queued: true, ..deployed(StackStatus::Stopped, true) };
        let plan = plan_resume(&stale).unwrap();
        assert_eq!(
            step_names(&plan),
            ["record_deploying", "start_service", "wait_ready", "record_running"]
        );
        // A crash after the start: the rerun waits for it instead of starting twice.
        let queued = Observation { start_queued: true, ..deployed(StackStatus::Deploying, true) };
        let plan = plan_resume(&queued).unwrap();
        assert_eq!(step_names(&plan), ["wait_ready", "record_running"]);
        assert!(plan_resume(&deployed(StackStatus::Running, true)).unwrap().is_empty());
    }

    #[test]
    fn resume_refuses_failed_pending_and_serviceless_stacks() {
        assert_eq!(plan_resume(&deployed(StackStatus::Error, false)), Err(Refused::Failed));
        assert_eq!(plan_resume(&deployed(StackStatus::Pending, false)), Err(Refused::NotDeployed));
        let gone = Observation {
            record_has_service: false,
            service_exists: false,
            ..deployed(StackStatus::Stopped, false)
        };
        assert_eq!(plan_resume(&gone), Err(Refused::NoService));
    }
}

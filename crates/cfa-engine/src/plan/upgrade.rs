//! Upgrade: patch what changed, restart, wait until the new containers serve, record.

use cfa_core::StackStatus;

use super::{Observation, Refused};
use crate::steps::Step;

/// Upgrade a running stack; finish one that was interrupted or failed (`deploying` or `error`
/// with its service), restarting even when nothing differs anymore. Nothing changed on a
/// running stack: nothing to do.
pub(super) fn plan_upgrade(
    observed: &Observation,
    compose_changed: bool,
    environment_changed: bool,
) -> Result<Vec<Step>, Refused> {
    let mut steps = Vec::new();
    match observed.record_status {
        None => return Err(Refused::NoRecord),
        Some(StackStatus::Pending) => return Err(Refused::NotDeployed),
        Some(StackStatus::Stopped) => return Err(Refused::Suspended),
        Some(_) if !observed.record_has_service => return Err(Refused::NoService),
        Some(StackStatus::Running) if !compose_changed && !environment_changed => {
            return Ok(steps);
        }
        Some(StackStatus::Running | StackStatus::Error) => steps.push(Step::RecordDeploying),
        Some(StackStatus::Deploying) => {}
    }
    if compose_changed {
        steps.push(Step::UpdateService);
    }
    if environment_changed {
        steps.push(Step::SetEnvironment);
    }
    steps.extend([Step::RestartService, Step::WaitReady, Step::RecordRunning]);
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::step_names;

    fn deployed(status: StackStatus) -> Observation {
        Observation {
            record_status: Some(status),
            record_names_service: true,
            record_has_service: true,
            project_exists: true,
            service_exists: true,
            service_running: true,
            start_queued: false,
        }
    }

    #[test]
    fn an_upgrade_patches_only_what_changed() {
        let plan = plan_upgrade(&deployed(StackStatus::Running), true, false).unwrap();
        assert_eq!(
            step_names(&plan),
            [
                "record_deploying",
                "update_service",
                "restart_service",
                "wait_ready",
                "record_running"
            ]
        );
        let plan = plan_upgrade(&deployed(StackStatus::Running), false, true).unwrap();
        assert_eq!(
            step_names(&plan),
            [
                "record_deploying",
                "set_environment",
                "restart_service",
                "wait_ready",
                "record_running"
            ]
        );
        assert!(plan_upgrade(&deployed(StackStatus::Running), false, false).unwrap().is_empty());
    }

    #[test]
    fn an_interrupted_upgrade_restarts_even_when_nothing_differs() {
        let plan = plan_upgrade(&deployed(StackStatus::Deploying), false, false).unwrap();
        assert_eq!(step_names(&plan), ["restart_service", "wait_ready", "record_running"]);
        let plan = plan_upgrade(&deployed(StackStatus::Error), false, false).unwrap();
        assert_eq!(
            step_names(&plan),
            ["record_deploying", "restart_service", "wait_ready", "record_running"]
        );
    }

    #[test]
    fn suspended_pending_and_serviceless_stacks_are_not_upgraded() {
        assert_eq!(
            plan_upgrade(&deployed(StackStatus::Stopped), true, true),
            Err(Refused::Suspended)
        );
        assert_eq!(
            plan_upgrade(&deployed(StackStatus::Pending), true, true),
            Err(Refused::NotDeployed)
        );
        let gone = Observation {
            record_has_service: false,
            service_exists: false,
            ..deployed(StackStatus::Error)
        };
        assert_eq!(plan_upgrade(&gone, true, true), Err(Refused::NoService));
    }
}

//! Delete: a final backup where the plan has backups, the service, the tenant's project when
//! it is empty, then the record. Any status may be deleted.

use super::Observation;
use crate::steps::Step;

pub(super) fn plan_delete(observed: &Observation, final_backup: bool) -> Vec<Step> {
    let mut steps = Vec::new();
    if observed.service_exists {
        if final_backup {
            steps.push(Step::FinalBackup);
        }
        steps.extend([Step::DeleteService, Step::WaitDeleted]);
    }
    if observed.project_exists {
        steps.push(Step::DeleteProject);
    }
    if observed.record_status.is_some() {
        steps.push(Step::DeleteRecord);
    }
    steps
}

#[cfg(test)]
mod tests {
    use cfa_core::StackStatus;

    use super::*;
    use crate::plan::step_names;

    #[test]
    fn a_delete_keeps_a_final_backup_before_the_service_goes() {
        let observed = Observation {
            record_status: Some(StackStatus::Running),
            record_names_service: true,
            record_has_service: true,
            project_exists: true,
            service_exists: true,
            service_running: true,
            start_queued: false,
        };
        assert_eq!(
            step_names(&plan_delete(&observed, true)),
            ["final_backup", "delete_service", "wait_deleted", "delete_project", "delete_record"]
        );
        assert_eq!(
            step_names(&plan_delete(&observed, false)),
            ["delete_service", "wait_deleted", "delete_project", "delete_record"]
        );
        let never_created = Observation {
            record_status: Some(StackStatus::Pending),
            record_names_service: false,
            record_has_service: false,
            project_exists: false,
            service_exists: false,
            service_running: false,
            start_queued: false,
        };
        assert_eq!(step_names(&plan_delete(&never_created, true)), ["delete_record"]);
    }
}

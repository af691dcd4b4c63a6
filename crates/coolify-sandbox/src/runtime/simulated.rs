//! The simulated runtime: no containers, only their effects on the world. A start records when
//! the containers started and an activity that lasts `deploy_delay`; a container's Docker state
//! is then computed from timestamps and faults when the status job (or a live read) asks
//! (`World::container_status`). The sandbox never pulls: a start using an image listed in
//! `missing_images` fails as Coolify's failed pull does (`docker compose up` exits non-zero, the
//! activity ends in error, no container is created).

use crate::state::{ActivityRecord, ActivityStatus, SIMULATED, ServiceRecord};

/// `StartService`'s `remote_process` for a simulated service.
pub(crate) fn start(service: &mut ServiceRecord, now: u64, missing_images: &[String]) {
    let missing = service
        .containers
        .iter()
        .find(|container| missing_images.iter().any(|image| image == &container.image));
    service.activity = Some(match missing {
        Some(container) => ActivityRecord {
            status: ActivityStatus::Error,
            started_at: now,
            // Compose's answer to an image it cannot pull.
            log: format!(
                "{SIMULATED} Error response from daemon: pull access denied for {}, repository does not exist or may require 'docker login'",
                container.image
            ),
        },
        None => ActivityRecord {
            status: ActivityStatus::InProgress,
            started_at: now,
            log: SIMULATED.to_owned(),
        },
    });
    service.started_at = Some(now);
}

/// `StopService`: containers stopped and removed (`docker stop`, `docker rm -f`).
pub(crate) fn stop(service: &mut ServiceRecord) {
    service.started_at = None;
}

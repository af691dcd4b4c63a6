//! Container states of every sandbox service, as GetContainersStatus reads them
//! (`app/Actions/Docker/GetContainersStatus.php`: `State.Status`, `State.Health.Status`,
//! `RestartCount`), from one `docker ps -a` and as few inspects as possible.
//!
//! Coolify runs `docker inspect` on every container (`Server::getContainers`). The list already
//! carries the state, and its status text carries the health ("Up 5 seconds (healthy)"), so an
//! inspect is needed only where the list cannot tell: the exit code and OOM flag of a container
//! that is not running, and the restart count of one that was started after it was created.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::models::ContainerSummary;
use bollard::query_parameters::ListContainersOptionsBuilder;

use super::{ContainerState, DockerError, DockerRuntime, label};

/// Inspects run at most this many at once: enough to be quick, few enough for a small engine.
const CONCURRENT_INSPECTS: usize = 8;

impl DockerRuntime {
    /// Every container of every service this runtime deployed: those whose compose project
    /// lives in the runtime's work directory (other compose projects on a shared engine are not
    /// the sandbox's).
    pub async fn container_states(&self) -> Result<Vec<ContainerState>, DockerError> {
        let filters = HashMap::from([("label", vec!["com.docker.compose.project".to_owned()])]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let containers = self
            .engine(
                "docker ps -a",
                "every sandbox service",
                "see the engine's message",
                self.docker.list_containers(Some(options)),
            )
            .await?;
        let now_seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since_epoch| since_epoch.as_secs().try_into().unwrap_or(i64::MAX));
        let known_restart_counts = self.known_restart_counts();
        let mut states = Vec::new();
        let mut to_inspect = Vec::new();
        for container in containers.iter().filter(|container| self.is_sandbox_container(container))
        {
            let state = container.state.map(|state| state.to_string()).unwrap_or_default();
            let status_text = container.status.clone().unwrap_or_default();
            let container_id = container.id.clone().unwrap_or_default();
            let inspect = state != "running"
                || started_after_creation(&status_text, container.created, now_seconds);
            if inspect && state != "created" {
                to_inspect.push(states.len());
            }
            states.push((
                container_id.clone(),
                ContainerState {
                    service_uuid: label(container, "com.docker.compose.project")
                        .unwrap_or_default()
                        .to_owned(),
                    compose_service: label(container, "com.docker.compose.service")
                        .unwrap_or_default()
                        .to_owned(),
                    container_name: container_name(container),
                    state,
                    health: health_from_status(&status_text),
                    restart_count: known_restart_counts.get(&container_id).copied().unwrap_or(0),
                    oom_killed: false,
                    exit_code: exit_code_from_status(&status_text).unwrap_or(0),
                },
            ));
        }
        let inspects = futures::stream::iter(to_inspect.iter().map(|index| {
            let container_id = states[*index].0.clone();
            async move {
                let inspected = self
                    .engine(
                        "docker inspect",
                        &format!("container {container_id}"),
                        "see the engine's message",
                        self.docker.inspect_container(&container_id, None),
                    )
                    .await;
                (*index, inspected)
            }
        }));
        let inspected: Vec<_> = futures::StreamExt::collect(futures::StreamExt::buffer_unordered(
            inspects,
            CONCURRENT_INSPECTS,
        ))
        .await;
        for (index, inspected) in inspected {
            // A container removed between the list and its inspect keeps what the list said.
            let Ok(inspected) = inspected else { continue };
            let container_state = &mut states[index].1;
            container_state.restart_count =
                inspected.restart_count.and_then(|count| u32::try_from(count).ok()).unwrap_or(0);
            if let Some(engine_state) = inspected.state {
                if let Some(status) = engine_state.status {
                    container_state.state = status.to_string();
                }
                container_state.oom_killed = engine_state.oom_killed.unwrap_or(false);
                container_state.exit_code = engine_state.exit_code.unwrap_or(0);
                if let Some(health) = engine_state.health.and_then(|health| health.status) {
                    let health = health.to_string();
                    container_state.health =
                        (!health.is_empty() && health != "none").then_some(health);
                }
            }
        }
        self.remember_restart_counts(&states);
        Ok(states.into_iter().map(|(_, state)| state).collect())
    }

    fn is_sandbox_container(&self, container: &ContainerSummary) -> bool {
        let Some(project) = label(container, "com.docker.compose.project") else { return false };
        let Some(working_dir) = label(container, "com.docker.compose.project.working_dir") else {
            return false;
        };
        std::path::Path::new(working_dir) == self.config.work_dir.join(project)
    }

    fn known_restart_counts(&self) -> HashMap<String, u32> {
        self.restart_counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Keeps the counts of the containers just listed (and only those: removed containers go).
    /// A restart is seen while the container's status says it started after its creation (to
    /// the second during its first minute up); the count read then is kept for later calls.
    fn remember_restart_counts(&self, states: &[(String, ContainerState)]) {
        let mut restart_counts =
            self.restart_counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *restart_counts = states
            .iter()
            .map(|(container_id, state)| (container_id.clone(), state.restart_count))
            .collect();
    }
}

fn container_name(container: &ContainerSummary) -> String {
    container
        .names
        .as_ref()
        .and_then(|names| names.first())
        .map(|name| name.trim_start_matches('/').to_owned())
        .unwrap_or_default()
}

/// "Up 5 seconds (healthy)", "Up 2 seconds (health: starting)", "Up 1 minute (unhealthy)".
pub(super) fn health_from_status(status_text: &str) -> Option<String> {
    let (_, rest) = status_text.rsplit_once('(')?;
    let inside = rest.strip_suffix(')')?;
    match inside {
        "healthy" | "unhealthy" => Some(inside.to_owned()),
        "health: starting" => Some("starting".to_owned()),
        _ => None,
    }
}

/// "Exited (137) 3 seconds ago", "Restarting (1) Less than a second ago".
pub(super) fn exit_code_from_status(status_text: &str) -> Option<i64> {
    let rest = status_text
        .strip_prefix("Exited (")
        .or_else(|| status_text.strip_prefix("Restarting ("))?;
    rest.split_once(')')?.0.parse().ok()
}

/// Whether "Up …" says the container started noticeably later than it was created, i.e. it
/// was restarted (by its restart policy or by hand). Docker rounds the uptime it prints
/// (`HumanDuration`), so the longest uptime the text allows is compared with the age.
pub(super) fn started_after_creation(
    status_text: &str,
    created_seconds: Option<i64>,
    now_seconds: i64,
) -> bool {
    let (Some(created_seconds), Some(longest_uptime)) =
        (created_seconds, longest_uptime(status_text))
    else {
        return false;
    };
    let age_seconds = now_seconds.saturating_sub(created_seconds).max(0).unsigned_abs();
    // Creation and the first start are a second or two apart; more means a later start.
    age_seconds > longest_uptime.as_secs() + 2
}

/// The upper bound of the uptime in "Up <HumanDuration>[ (health)]".
fn longest_uptime(status_text: &str) -> Option<Duration> {
    let text = status_text.strip_prefix("Up ")?;
    let text = text.split(" (").next().unwrap_or(text);
    let seconds: u64 = match text {
        "Less than a second" => 1,
        "About a minute" => 90,
        "About an hour" => 90 * 60,
        _ => {
            let (count, unit) = text.split_once(' ')?;
            let count: u64 = count.parse().ok()?;
            let unit_seconds: u64 = match unit.trim_end_matches('s') {
                "second" => 1,
                "minute" => 60,
                "hour" => 3_600,
                "day" => 86_400,
                "week" => 7 * 86_400,
                "month" => 30 * 86_400,
                "year" => 365 * 86_400,
                _ => return None,
            };
            (count + 1) * unit_seconds
        }
    };
    Some(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_read_from_the_status_text() {
        assert_eq!(health_from_status("Up 5 seconds (healthy)").as_deref(), Some("healthy"));
        assert_eq!(
            health_from_status("Up 2 seconds (health: starting)").as_deref(),
            Some("starting")
        );
        assert_eq!(health_from_status("Up 1 minute (unhealthy)").as_deref(), Some("unhealthy"));
        assert_eq!(health_from_status("Up 3 hours"), None);
        assert_eq!(health_from_status("Exited (137) 3 seconds ago"), None);
    }

    #[test]
    fn exit_codes_are_read_from_the_status_text() {
        assert_eq!(exit_code_from_status("Exited (137) 3 seconds ago"), Some(137));
        assert_eq!(exit_code_from_status("Restarting (1) Less than a second ago"), Some(1));
        assert_eq!(exit_code_from_status("Up 3 seconds"), None);
    }

    #[test]
    fn a_start_later_than_creation_is_noticed_within_docker_rounding() {
        let now = 1_000_000;
        assert!(!started_after_creation("Up 5 seconds", Some(now - 6), now));
        assert!(started_after_creation("Up 5 seconds (healthy)", Some(now - 30), now));
        assert!(!started_after_creation("Up About a minute", Some(now - 80), now));
        assert!(!started_after_creation("Up 3 hours", Some(now - 4 * 3_600 + 10), now));
        assert!(started_after_creation("Up 3 hours", Some(now - 5 * 3_600), now));
        assert!(!started_after_creation("Exited (0) 1 second ago", Some(now - 50), now));
    }
}

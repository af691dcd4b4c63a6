//! A service container's logs, as `ServicesController::logs_by_uuid` serves them
//! (`app/Http/Controllers/Api/ServicesController.php`; the command is `buildContainerLogsCommand`
//! and `getContainerLogs` in `bootstrap/helpers/docker.php`).

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures::StreamExt;

use super::{DockerRuntime, LogsError, label, validated_service_uuid};

/// `normalizeLogLines`: 100 when absent or not positive, at most 10,000.
const DEFAULT_LOG_LINES: u32 = 100;
const MAXIMUM_LOG_LINES: u32 = 10_000;
/// The bound on reading one container's logs.
const LOGS_TIMEOUT: Duration = Duration::from_secs(30);

impl DockerRuntime {
    /// The last `lines` lines of a service container's output, stdout and stderr together
    /// (`docker logs -n <lines> <id> 2>&1`), without ANSI colours (`removeAnsiColors`).
    /// `container_name` is the container's name (Coolify builds `<sub_service_name>-<uuid>`) or
    /// its compose service name. As logs_by_uuid: no such container of the service is
    /// `NotFound` (404 "Container not found."), one whose `State.Status` is not `running` is
    /// `NotRunning` (400 "Container is not running.").
    pub async fn logs(
        &self,
        service_uuid: &str,
        container_name: &str,
        lines: u32,
    ) -> Result<String, LogsError> {
        let service_uuid = validated_service_uuid(service_uuid)?;
        let not_found = || LogsError::NotFound {
            service_uuid: service_uuid.to_owned(),
            container_name: container_name.to_owned(),
        };
        let containers = self.project_containers(service_uuid).await?;
        let container = containers
            .iter()
            .find(|container| {
                let named = container
                    .names
                    .iter()
                    .flatten()
                    .any(|name| name.trim_start_matches('/') == container_name);
                named || label(container, "com.docker.compose.service") == Some(container_name)
            })
            .ok_or_else(not_found)?;
        let container_id = container.id.clone().ok_or_else(not_found)?;
        // getContainerStatus reads `State.Status` through `docker inspect`: the list's state is
        // the same field, read in the same engine call that found the container.
        let state = container.state.map(|state| state.to_string()).unwrap_or_default();
        if state != "running" {
            return Err(LogsError::NotRunning { container_name: container_name.to_owned(), state });
        }
        let lines = if lines == 0 { DEFAULT_LOG_LINES } else { lines.min(MAXIMUM_LOG_LINES) };
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let read_all = async {
            let mut stream = self.docker.logs(&container_id, Some(options));
            let mut text = Vec::new();
            while let Some(chunk) = stream.next().await {
                match chunk? {
                    LogOutput::StdOut { message }
                    | LogOutput::StdErr { message }
                    | LogOutput::Console { message } => text.extend_from_slice(&message),
                    LogOutput::StdIn { .. } => {}
                }
            }
            Ok::<_, bollard::errors::Error>(String::from_utf8_lossy(&text).into_owned())
        };
        let text = self
            .engine_within(
                LOGS_TIMEOUT,
                "docker logs",
                &format!("container {container_name} of service {service_uuid}"),
                "see the engine's message",
                read_all,
            )
            .await?;
        Ok(without_ansi_colours(&text))
    }
}

/// removeAnsiColors: drops ANSI escape sequences (CSI `ESC [ … final`, and two-byte `ESC x`).
pub(super) fn without_ansi_colours(text: &str) -> String {
    let mut cleaned = String::with_capacity(text.len());
    let mut characters = text.chars();
    while let Some(character) = characters.next() {
        if character != '\u{1b}' {
            cleaned.push(character);
            continue;
        }
        // A CSI sequence runs to its final byte '@'..='~'; any other escape is two characters.
        if characters.next() == Some('[') {
            for following in characters.by_ref() {
                if ('@'..='~').contains(&following) {
                    break;
                }
            }
        }
    }
    cleaned
}

#[cfg(test)]
mod tests {
    use super::without_ansi_colours;

    #[test]
    fn ansi_colours_are_removed() {
        assert_eq!(without_ansi_colours("\u{1b}[1;31mred\u{1b}[0m plain"), "red plain");
        assert_eq!(without_ansi_colours("no colours\n"), "no colours\n");
    }
}

//! Running `docker compose` (the CLI plugin; compose has no engine API), bounded in time.

use std::ffi::OsString;
use std::process::Stdio;
use std::time::Duration;

use super::{DockerError, DockerRuntime};

/// The bound on one compose run. `up -d` waits for `depends_on: condition: service_healthy`,
/// so it covers a slow healthcheck; nothing is pulled or built.
const COMPOSE_TIMEOUT: Duration = Duration::from_secs(300);
/// Compose's output kept in an error: the end, where the failure is.
const KEPT_OUTPUT_BYTES: usize = 8_000;

impl DockerRuntime {
    /// Runs `docker compose <arguments>` against this runtime's engine and returns its output
    /// (stderr, where compose writes its progress, then stdout).
    pub(super) async fn run_compose(
        &self,
        service_uuid: &str,
        subcommand: &'static str,
        arguments: Vec<OsString>,
    ) -> Result<String, DockerError> {
        let mut command = tokio::process::Command::new("docker");
        command
            .arg("compose")
            .args(["--ansi", "never", "--progress", "plain"])
            .args(arguments)
            // The same engine as the API client, whatever this process's environment says.
            .env("DOCKER_HOST", &self.docker_host)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A timed-out run is killed rather than left to change containers later.
            .kill_on_drop(true);
        let not_runnable = |reason: String| DockerError::ComposeNotRunnable {
            service_uuid: service_uuid.to_owned(),
            subcommand,
            reason,
        };
        let output = match tokio::time::timeout(COMPOSE_TIMEOUT, command.output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(error)) => return Err(not_runnable(format!("cannot start `docker`: {error}"))),
            Err(_) => {
                return Err(not_runnable(format!(
                    "it did not finish within {} s and was killed",
                    COMPOSE_TIMEOUT.as_secs()
                )));
            }
        };
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        if output.status.success() {
            return Ok(text);
        }
        let kept_from = text.len().saturating_sub(KEPT_OUTPUT_BYTES);
        let kept_from = (kept_from..text.len())
            .find(|index| text.is_char_boundary(*index))
            .unwrap_or(text.len());
        Err(DockerError::Compose {
            service_uuid: service_uuid.to_owned(),
            subcommand,
            exit: match output.status.code() {
                Some(code) => format!("exit code {code}"),
                None => "killed by a signal".to_owned(),
            },
            output: text[kept_from..].trim_end().to_owned(),
        })
    }
}

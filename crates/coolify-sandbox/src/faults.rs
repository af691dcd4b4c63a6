//! Fault injection: what can go wrong, and which service it hits. Set through
//! [`crate::SandboxHandle::inject`], `POST /_sandbox/faults`, or `--fault` on the command line.

use serde::{Deserialize, Serialize};

/// One fault. `service_uuid: None` hits every service; `container: None` every container of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Every matching API request waits this long first.
    Latency {
        millis: u64,
        #[serde(default)]
        service_uuid: Option<String>,
    },
    /// The next `requests` matching API requests get 429 with `Retry-After`.
    RateLimitStorm {
        requests: u32,
        #[serde(default = "one")]
        retry_after_seconds: u64,
        #[serde(default)]
        service_uuid: Option<String>,
    },
    /// The next `requests` matching API requests get this 5xx.
    ServerError {
        requests: u32,
        #[serde(default = "internal_error")]
        status: u16,
        #[serde(default)]
        service_uuid: Option<String>,
    },
    /// The next `requests` matching API requests lose their connection mid-answer.
    DropConnection {
        requests: u32,
        #[serde(default)]
        service_uuid: Option<String>,
    },
    /// Starts stay `starting:unhealthy` forever.
    DeployNeverFinishes {
        #[serde(default)]
        service_uuid: Option<String>,
    },
    /// Starts end with every container `exited`.
    DeployFails {
        #[serde(default)]
        service_uuid: Option<String>,
    },
    /// A running container turns `running:unhealthy`.
    ContainerUnhealthy {
        #[serde(default)]
        service_uuid: Option<String>,
        #[serde(default)]
        container: Option<String>,
    },
    /// A running container exits (code 1, no restart).
    ContainerExited {
        #[serde(default)]
        service_uuid: Option<String>,
        #[serde(default)]
        container: Option<String>,
    },
    /// A running container is OOM-killed (exit 137, restarted once).
    ContainerOomKilled {
        #[serde(default)]
        service_uuid: Option<String>,
        #[serde(default)]
        container: Option<String>,
    },
    /// A container restart-loops (`restarting`, restart count climbing).
    ContainerRestartLoop {
        #[serde(default)]
        service_uuid: Option<String>,
        #[serde(default)]
        container: Option<String>,
    },
    /// The server stops answering SSH: `is_reachable`/`is_usable` false, `server_status` false.
    ServerUnreachable {
        #[serde(default)]
        server_uuid: Option<String>,
    },
    /// Backup runs fail.
    BackupFails {
        #[serde(default)]
        service_uuid: Option<String>,
    },
    /// Backup runs succeed with an empty archive.
    BackupEmpty {
        #[serde(default)]
        service_uuid: Option<String>,
    },
}

fn one() -> u64 {
    1
}

fn internal_error() -> u16 {
    500
}

/// How a container misbehaves once it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContainerFault {
    Unhealthy,
    Exited,
    OomKilled,
    RestartLoop,
}

pub(crate) fn matches_service(target: &Option<String>, service_uuid: &str) -> bool {
    target.as_deref().is_none_or(|target| target == service_uuid)
}

pub(crate) fn matches_container(target: &Option<String>, container: &str) -> bool {
    target.as_deref().is_none_or(|target| target == container)
}

impl Fault {
    pub(crate) fn container_fault(
        &self,
        service_uuid: &str,
        container: &str,
    ) -> Option<ContainerFault> {
        let (kind, service, target) = match self {
            Self::ContainerUnhealthy { service_uuid, container } => {
                (ContainerFault::Unhealthy, service_uuid, container)
            }
            Self::ContainerExited { service_uuid, container } => {
                (ContainerFault::Exited, service_uuid, container)
            }
            Self::ContainerOomKilled { service_uuid, container } => {
                (ContainerFault::OomKilled, service_uuid, container)
            }
            Self::ContainerRestartLoop { service_uuid, container } => {
                (ContainerFault::RestartLoop, service_uuid, container)
            }
            _ => return None,
        };
        (matches_service(service, service_uuid) && matches_container(target, container))
            .then_some(kind)
    }
}

//! The Docker runtime's errors: each says what failed, for which service or volume, and a hint.

use std::path::PathBuf;

/// Why a Docker runtime operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The engine did not answer `GET /version` when the runtime connected.
    #[error(
        "cannot reach the Docker engine at {docker_host}: {source}\nhint: start it with scripts/install-docker, or point DOCKER_HOST at a socket that answers"
    )]
    Unreachable {
        docker_host: String,
        #[source]
        source: bollard::errors::Error,
    },
    /// The engine took longer than the runtime's bound for one call.
    #[error(
        "the Docker engine at {docker_host} did not finish {operation} for {target} within {seconds} s\nhint: the engine is overloaded or stuck; `docker info` shows whether it still answers"
    )]
    Timeout { operation: String, target: String, docker_host: String, seconds: u64 },
    /// The engine answered with an error.
    #[error("the Docker engine refused {operation} for {target}: {source}\nhint: {hint}")]
    Engine {
        operation: String,
        target: String,
        hint: &'static str,
        #[source]
        source: bollard::errors::Error,
    },
    /// `docker compose` ran and failed; its output is Coolify's deployment log for the service.
    #[error(
        "`docker compose {subcommand}` failed for service {service_uuid} ({exit}):\n{output}\nhint: compose's output above says why; images are never pulled here, so a missing image must be built locally first"
    )]
    Compose { service_uuid: String, subcommand: &'static str, exit: String, output: String },
    /// `docker compose` could not be run at all (or did not finish in time).
    #[error(
        "cannot run `docker compose {subcommand}` for service {service_uuid}: {reason}\nhint: scripts/install-docker installs the Compose v2 plugin; `docker compose version` must answer"
    )]
    ComposeNotRunnable { service_uuid: String, subcommand: &'static str, reason: String },
    /// A file of the service's work directory, or a backup archive, could not be written.
    #[error(
        "cannot {operation} {path} for {target}: {source}\nhint: check the directory's permissions and free space"
    )]
    Io {
        operation: &'static str,
        path: PathBuf,
        target: String,
        #[source]
        source: std::io::Error,
    },
    /// The service uuid would not be a safe directory or compose project name.
    #[error(
        "{service_uuid:?} is not a service uuid\nhint: Coolify's uuids are lowercase letters, digits, '-' and '_' (they name a directory and a compose project)"
    )]
    InvalidServiceUuid { service_uuid: String },
    /// `docker volume inspect` found no such volume (VolumeBackupJob's verify command fails the same way).
    #[error(
        "volume {volume_name} does not exist\nhint: start the service once so compose creates its volumes"
    )]
    VolumeNotFound { volume_name: String },
    /// The volume's data is not visible from this process (a remote or rootless engine).
    #[error(
        "volume {volume_name}'s mountpoint {mountpoint} is not readable from this process: {source}\nhint: backups read the volume from the host, so the engine must be local and the sandbox must run as root"
    )]
    VolumeNotReadable {
        volume_name: String,
        mountpoint: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// VolumeBackupJob: `du -b` of the archive said 0 bytes.
    #[error(
        "the storage backup archive of volume {volume_name} is empty or was not created ({archive})\nhint: Coolify fails the backup the same way; the archive was removed"
    )]
    EmptyBackup { volume_name: String, archive: PathBuf },
}

/// Why [`DockerRuntime::logs`](super::DockerRuntime::logs) gave no logs; the first two are the
/// answers of Coolify's `ServicesController::logs_by_uuid`.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// Coolify answers 400 "Container is not running.".
    #[error("Container is not running.")]
    NotRunning { container_name: String, state: String },
    /// Coolify answers 404 "Container not found.".
    #[error("Container not found.")]
    NotFound { service_uuid: String, container_name: String },
    #[error(transparent)]
    Docker(#[from] DockerError),
}

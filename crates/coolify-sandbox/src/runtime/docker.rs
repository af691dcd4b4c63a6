//! The sandbox's Docker runtime: what Coolify 4.3 does to a service's containers on its server,
//! done to a real local engine.
//!
//! It follows Coolify's source (4.3.11): `app/Actions/Service/StartService.php` (`handle`) for
//! start, `app/Actions/Service/StopService.php` (`handle`, `stopContainersInParallel`) for stop,
//! `app/Actions/Server/CleanupDocker.php` for `docker_cleanup`, `app/Jobs/DeleteResourceJob.php`
//! with `app/Actions/Service/DeleteService.php` (`cleanupRemote`) and `app/Models/Service.php`
//! (`deleteConnectedNetworks`, `deleteConfigurations`) for delete,
//! `app/Actions/Docker/GetContainersStatus.php` for container states,
//! `app/Http/Controllers/Api/ServicesController.php` (`logs_by_uuid`) for logs and
//! `app/Jobs/VolumeBackupJob.php` for volume backups.
//!
//! The engine API (bollard, pinned to API 1.41 = dockerd 20.10, and raised to an engine's minimum
//! when a newer engine refuses 1.41) does listing, inspecting, stopping, logs, networks and
//! volumes; `docker compose` (the CLI plugin: compose has no API) does `up`. Every engine call
//! has a timeout. One runtime value serves many services at once: ordering the operations of one
//! service is the job queue's business.
//!
//! Differences from Coolify, each for a reason given where it is done: nothing is ever pulled or
//! built (`--pull never`, no `--build`); the proxy is a host process ([`crate::front`]) that reaches
//! containers on their stack network, so there is no `docker network connect <uuid>
//! coolify-proxy` and containers are not put on the shared proxy network (Coolify does that only
//! with `connect_to_docker_network`, and doing it always would let tenants' stacks reach each
//! other); `docker_cleanup` leaves tagged images alone because they cannot be pulled again here.

mod backup;
mod compose;
mod error;
mod logs;
mod removal;
mod states;

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerSummary, NetworkCreateRequest};
use bollard::query_parameters::{ListContainersOptionsBuilder, ListNetworksOptionsBuilder};

pub use error::{DockerError, LogsError};

/// Where the runtime finds the engine and keeps its files.
#[derive(Debug, Clone)]
pub struct DockerRuntimeConfig {
    /// `unix:///…` or `tcp://host:port`; `None` reads `DOCKER_HOST`, then the default socket.
    pub docker_host: Option<String>,
    /// Coolify's `/data/coolify/services`: one directory per service with its compose file and `.env`.
    pub work_dir: PathBuf,
    /// Coolify's `backup_dir()`; callers put volume archives under it.
    pub backup_dir: PathBuf,
    /// The destination's network (Coolify's `coolify`); created when missing, see the module doc.
    pub proxy_network: String,
}

/// What [`DockerRuntime::start`] deploys: the parsed compose file and `.env` of one service.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub service_uuid: String,
    pub compose_yaml: String,
    pub env_file: String,
    /// The service's file storages (`LocalFileVolume`), written before `up`; their paths are
    /// relative to the service's work directory, as the compose's binds name them.
    pub files: Vec<DeploymentFile>,
    /// A network the compose file uses as `external`; created (attachable) when missing, like
    /// the `<uuid>` network StartService creates, which is always ensured too.
    pub network: String,
}

/// One file storage: `LocalFileVolume::saveStorageOnServer` writes `content` (`tee`, then
/// `chmod +x`, as the server user: root here) or makes a directory.
#[derive(Debug, Clone)]
pub struct DeploymentFile {
    /// Below the service's work directory, e.g. `config/cfa-1234/openclaw.json`.
    pub relative_path: String,
    pub content: Option<String>,
    pub is_directory: bool,
}

/// DeleteResourceJob's four flags (all `true` in Coolify's API by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteFlags {
    pub delete_volumes: bool,
    pub delete_connected_networks: bool,
    pub delete_configurations: bool,
    pub docker_cleanup: bool,
}

/// One container of a sandbox service, as GetContainersStatus reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub service_uuid: String,
    /// The `com.docker.compose.service` label (Coolify's sub-service name).
    pub compose_service: String,
    pub container_name: String,
    /// `State.Status`: `created`, `running`, `restarting`, `exited`, `paused`, `dead`, …
    pub state: String,
    /// `State.Health.Status` (`starting`, `healthy`, `unhealthy`) when there is a healthcheck.
    pub health: Option<String>,
    pub restart_count: u32,
    pub oom_killed: bool,
    pub exit_code: i64,
}

/// The sandbox's handle on one Docker engine. Cheap to clone; clones share the engine client.
#[derive(Clone)]
pub struct DockerRuntime {
    docker: Docker,
    docker_host: String,
    config: Arc<DockerRuntimeConfig>,
    /// Restart counts read by earlier inspects, by container id (see `states.rs` for why).
    restart_counts: Arc<Mutex<HashMap<String, u32>>>,
    /// dockerd 20.10 allows two networks with one name: creations are serialized so two
    /// services starting at once cannot create the shared network twice.
    network_creation: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for DockerRuntime {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("DockerRuntime")
            .field("docker_host", &self.docker_host)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The engine API version this project's engine speaks (dockerd 20.10).
const PINNED_API_VERSION: bollard::ClientVersion =
    bollard::ClientVersion { major_version: 1, minor_version: 41 };
/// The bound on one engine API call (list, inspect, network, volume).
const ENGINE_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The bound on connecting and reading the engine's version.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Extra time allowed over `docker stop --time` before the call counts as stuck.
const STOP_TIMEOUT_MARGIN: Duration = Duration::from_secs(15);

impl DockerRuntime {
    /// Connects to the engine and checks that it answers; creates the work and backup
    /// directories and the destination network, as Coolify's server validation does.
    pub async fn connect(config: DockerRuntimeConfig) -> Result<Self, DockerError> {
        let docker_host = match &config.docker_host {
            Some(host) => host.clone(),
            None => std::env::var("DOCKER_HOST")
                .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned()),
        };
        let docker = Self::connect_with_version(&docker_host, &PINNED_API_VERSION)?;
        let docker = match with_timeout(CONNECT_TIMEOUT, docker.version()).await {
            Some(Ok(_)) => docker,
            // A newer engine (Docker 25+ raised the minimum API) names its minimum: use it.
            Some(Err(error)) => match minimum_api_version(&error) {
                Some(minimum) => Self::connect_with_version(&docker_host, &minimum)?,
                None => return Err(DockerError::Unreachable { docker_host, source: error }),
            },
            None => {
                return Err(DockerError::Timeout {
                    operation: "GET /version".to_owned(),
                    target: "the runtime".to_owned(),
                    docker_host,
                    seconds: CONNECT_TIMEOUT.as_secs(),
                });
            }
        };
        for directory in [&config.work_dir, &config.backup_dir] {
            tokio::fs::create_dir_all(directory).await.map_err(|source| DockerError::Io {
                operation: "create directory",
                path: directory.clone(),
                target: "the runtime".to_owned(),
                source,
            })?;
        }
        let runtime = DockerRuntime {
            docker,
            docker_host,
            config: Arc::new(config),
            restart_counts: Arc::new(Mutex::new(HashMap::new())),
            network_creation: Arc::new(tokio::sync::Mutex::new(())),
        };
        if !runtime.config.proxy_network.is_empty() {
            runtime.ensure_network(&runtime.config.proxy_network.clone(), "the runtime").await?;
        }
        Ok(runtime)
    }

    fn connect_with_version(
        docker_host: &str,
        version: &bollard::ClientVersion,
    ) -> Result<Docker, DockerError> {
        let seconds = ENGINE_CALL_TIMEOUT.as_secs();
        let connected = if docker_host.starts_with("tcp://") || docker_host.starts_with("http://") {
            Docker::connect_with_http(docker_host, seconds, version)
        } else {
            Docker::connect_with_unix(docker_host, seconds, version)
        };
        connected.map_err(|source| DockerError::Unreachable {
            docker_host: docker_host.to_owned(),
            source,
        })
    }

    /// StartService::handle: writes `W/docker-compose.yml` and `W/.env` (`saveComposeConfigs`,
    /// then `touch W/.env`), creates the `<uuid>` network when missing (`docker network inspect
    /// || docker network create --attachable`), then runs `docker compose --project-directory W
    /// -f W/docker-compose.yml --project-name <uuid> up -d --remove-orphans --force-recreate`.
    /// Coolify adds `--build`; here nothing is built or pulled (`--pull never`), so a missing
    /// image fails the start with compose's message as Coolify's failed pull does. Returns
    /// compose's output (Coolify's deployment log).
    pub async fn start(&self, deployment: &Deployment) -> Result<String, DockerError> {
        let service_uuid = validated_service_uuid(&deployment.service_uuid)?;
        let target = format!("service {service_uuid}");
        let work_dir = self.service_work_dir(service_uuid);
        let compose_file = work_dir.join("docker-compose.yml");
        write_file(&work_dir, &compose_file, &deployment.compose_yaml, &target).await?;
        write_file(&work_dir, &work_dir.join(".env"), &deployment.env_file, &target).await?;
        for file in &deployment.files {
            write_storage(&work_dir, file, &target).await?;
        }
        self.ensure_network(service_uuid, &target).await?;
        if !deployment.network.is_empty() && deployment.network != service_uuid {
            self.ensure_network(&deployment.network, &target).await?;
        }
        let mut arguments = vec![
            "--project-directory".into(),
            work_dir.clone().into_os_string(),
            "-f".into(),
            compose_file.into_os_string(),
            "--project-name".into(),
            service_uuid.into(),
        ];
        arguments.extend(
            ["up", "-d", "--remove-orphans", "--force-recreate", "--pull", "never"].map(Into::into),
        );
        self.run_compose(service_uuid, "up", arguments).await
    }

    /// The container's IP on its stack network (the `<uuid>` network, else its first network
    /// with an address), for the front; `None` when it is not running or the engine fails.
    pub async fn container_address(
        &self,
        service_uuid: &str,
        compose_service: &str,
    ) -> Option<IpAddr> {
        let containers = self.project_containers(service_uuid).await.ok()?;
        let container = containers.iter().find(|container| {
            label(container, "com.docker.compose.service") == Some(compose_service)
                && container.state.map(|state| state.to_string()).as_deref() == Some("running")
        })?;
        let networks = container.network_settings.as_ref()?.networks.as_ref()?;
        let address_on =
            |name: &str| networks.get(name).and_then(|endpoint| endpoint.ip_address.clone());
        let address =
            address_on(service_uuid).filter(|address| !address.is_empty()).or_else(|| {
                let mut names: Vec<&String> = networks.keys().collect();
                names.sort();
                names
                    .into_iter()
                    .filter_map(|name| address_on(name))
                    .find(|address| !address.is_empty())
            })?;
        address.parse().ok()
    }

    // ---- shared helpers ----

    fn service_work_dir(&self, service_uuid: &str) -> PathBuf {
        self.config.work_dir.join(service_uuid)
    }

    /// The service's directory (Coolify's `/data/coolify/services/<uuid>`): its compose, `.env`
    /// and file storages.
    pub fn service_dir(&self, service_uuid: &str) -> PathBuf {
        self.service_work_dir(service_uuid)
    }

    /// Every container (running or not) of one compose project: one engine call.
    async fn project_containers(
        &self,
        service_uuid: &str,
    ) -> Result<Vec<ContainerSummary>, DockerError> {
        let filters =
            HashMap::from([("label", vec![format!("com.docker.compose.project={service_uuid}")])]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        self.engine(
            "docker ps -a",
            &format!("service {service_uuid}"),
            "see the engine's message",
            self.docker.list_containers(Some(options)),
        )
        .await
    }

    /// `docker network inspect <name> || docker network create --attachable <name>`.
    ///
    /// dockerd 20.10 lets two concurrent creations make two networks of one name (and then
    /// refuses the name as ambiguous), and the sandbox's runtimes may run in several processes
    /// at once: after creating, every creator keeps the network with the smallest id and
    /// removes the others, so all of them converge on the same one.
    async fn ensure_network(&self, network_name: &str, target: &str) -> Result<(), DockerError> {
        let _serialized = self.network_creation.lock().await;
        let existing = self.network_ids(network_name, target).await?;
        if existing.len() == 1 {
            return Ok(());
        }
        if existing.is_empty() {
            let request = NetworkCreateRequest {
                name: network_name.to_owned(),
                driver: Some("bridge".to_owned()),
                attachable: Some(true),
                ..Default::default()
            };
            self.engine(
                "docker network create --attachable",
                target,
                "the engine could not create a bridge network (address pools exhausted?)",
                self.docker.create_network(request),
            )
            .await?;
        }
        let mut network_ids = self.network_ids(network_name, target).await?;
        network_ids.sort();
        for duplicate_id in network_ids.iter().skip(1) {
            let removed = self
                .engine(
                    "docker network rm",
                    target,
                    "a container already joined the duplicate network",
                    self.docker.remove_network(duplicate_id),
                )
                .await;
            if let Err(error) = ignore_not_found(removed) {
                tracing::warn!(%error, network_name, "could not remove a duplicate network");
            }
        }
        Ok(())
    }

    /// The ids of the networks named exactly `network_name` (the engine's name filter matches
    /// substrings).
    async fn network_ids(
        &self,
        network_name: &str,
        target: &str,
    ) -> Result<Vec<String>, DockerError> {
        let filters = HashMap::from([("name", vec![network_name.to_owned()])]);
        let options = ListNetworksOptionsBuilder::default().filters(&filters).build();
        let networks = self
            .engine(
                "docker network ls",
                target,
                "see the engine's message",
                self.docker.list_networks(Some(options)),
            )
            .await?;
        Ok(networks
            .into_iter()
            .filter(|network| network.name.as_deref() == Some(network_name))
            .filter_map(|network| network.id)
            .collect())
    }

    /// One engine call under [`ENGINE_CALL_TIMEOUT`].
    async fn engine<T>(
        &self,
        operation: &str,
        target: &str,
        hint: &'static str,
        call: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, DockerError> {
        self.engine_within(ENGINE_CALL_TIMEOUT, operation, target, hint, call).await
    }

    async fn engine_within<T>(
        &self,
        timeout: Duration,
        operation: &str,
        target: &str,
        hint: &'static str,
        call: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, DockerError> {
        match with_timeout(timeout, call).await {
            Some(Ok(value)) => Ok(value),
            Some(Err(source)) => Err(DockerError::Engine {
                operation: operation.to_owned(),
                target: target.to_owned(),
                hint: if hint.is_empty() { "see the engine's message" } else { hint },
                source,
            }),
            None => Err(DockerError::Timeout {
                operation: operation.to_owned(),
                target: target.to_owned(),
                docker_host: self.docker_host.clone(),
                seconds: timeout.as_secs(),
            }),
        }
    }
}

async fn with_timeout<T>(timeout: Duration, call: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(timeout, call).await.ok()
}

/// Docker 25+ refuses old API versions with "… Minimum supported API version is 1.44 …".
fn minimum_api_version(error: &bollard::errors::Error) -> Option<bollard::ClientVersion> {
    let bollard::errors::Error::DockerResponseServerError { message, .. } = error else {
        return None;
    };
    let (_, rest) = message.split_once("Minimum supported API version is ")?;
    let version: String = rest
        .chars()
        .take_while(|character| character.is_ascii_digit() || *character == '.')
        .collect();
    let (major, minor) = version.trim_end_matches('.').split_once('.')?;
    Some(bollard::ClientVersion {
        major_version: major.parse().ok()?,
        minor_version: minor.parse().ok()?,
    })
}

/// Coolify's uuids name a directory and a compose project: refuse anything else (`..`, `/`).
fn validated_service_uuid(service_uuid: &str) -> Result<&str, DockerError> {
    let valid = !service_uuid.is_empty()
        && service_uuid.len() <= 64
        && service_uuid.chars().all(|character| {
            character.is_ascii_lowercase()
                || character.is_ascii_digit()
                || matches!(character, '-' | '_')
        })
        && !service_uuid.starts_with(['-', '_']);
    if valid {
        Ok(service_uuid)
    } else {
        Err(DockerError::InvalidServiceUuid { service_uuid: service_uuid.to_owned() })
    }
}

/// Writes one file storage under `work_dir`; a path that would leave it is refused.
async fn write_storage(
    work_dir: &Path,
    file: &DeploymentFile,
    target: &str,
) -> Result<(), DockerError> {
    let relative = Path::new(&file.relative_path);
    let escapes = relative.components().any(|component| {
        !matches!(component, std::path::Component::Normal(_) | std::path::Component::CurDir)
    });
    let io_error = |operation, path: &Path| {
        let path = path.to_path_buf();
        let target = target.to_owned();
        move |source| DockerError::Io { operation, path, target, source }
    };
    let path = work_dir.join(relative);
    if escapes {
        return Err(DockerError::Io {
            operation: "write a file storage outside the service directory",
            path,
            target: target.to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        });
    }
    if file.is_directory {
        return tokio::fs::create_dir_all(&path).await.map_err(io_error("create directory", &path));
    }
    let parent = path.parent().unwrap_or(work_dir);
    write_file(parent, &path, file.content.as_deref().unwrap_or(""), target).await?;
    // `chmod +x` after `tee`: 0755 for a file the server user (root) owns.
    let permissions = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    tokio::fs::set_permissions(&path, permissions).await.map_err(io_error("chmod", &path))
}

async fn write_file(
    work_dir: &Path,
    path: &Path,
    contents: &str,
    target: &str,
) -> Result<(), DockerError> {
    let io_error = |operation, path: &Path| {
        let path = path.to_path_buf();
        let target = target.to_owned();
        move |source| DockerError::Io { operation, path, target, source }
    };
    tokio::fs::create_dir_all(work_dir).await.map_err(io_error("create directory", work_dir))?;
    tokio::fs::write(path, contents).await.map_err(io_error("write", path))
}

fn label<'container>(
    container: &'container ContainerSummary,
    key: &str,
) -> Option<&'container str> {
    container.labels.as_ref()?.get(key).map(String::as_str)
}

fn engine_status(error: &DockerError) -> Option<u16> {
    match error {
        DockerError::Engine {
            source: bollard::errors::Error::DockerResponseServerError { status_code, .. },
            ..
        } => Some(*status_code),
        _ => None,
    }
}

fn is_not_found(error: &DockerError) -> bool {
    engine_status(error) == Some(404)
}

/// `|| true` for "already gone": a removal of something that no longer exists succeeded.
fn ignore_not_found<T>(result: Result<T, DockerError>) -> Result<(), DockerError> {
    match result {
        Err(error) if !is_not_found(&error) => Err(error),
        _ => Ok(()),
    }
}

/// A stop of an already stopped (304) or removed (404) container succeeded.
fn ignore_not_modified_or_missing<T>(result: Result<T, DockerError>) -> Result<(), DockerError> {
    match result {
        Err(error) if !matches!(engine_status(&error), Some(304 | 404)) => Err(error),
        _ => Ok(()),
    }
}

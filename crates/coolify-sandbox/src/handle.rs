//! Starting the sandbox in-process, and the handle tests use to steer it (faults, settings,
//! statistics, recorded exchanges) without HTTP.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{RuntimeKind, SandboxConfig, SandboxToken};
use crate::faults::Fault;
use crate::front::{Front, FrontHandle};
use crate::runtime::Runtime;
use crate::runtime::docker::{DockerRuntime, DockerRuntimeConfig};
use crate::state::{
    BackupExecution, ContainerRecord, DestinationRecord, ProjectRecord, ServerRecord,
    ServiceRecord, Timings, World, new_uuid, now_ms,
};

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot listen on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot use the Docker engine\nhint: start it (scripts/install-docker) or set DOCKER_HOST"
    )]
    Docker {
        #[source]
        source: crate::runtime::docker::DockerError,
    },
    #[error("cannot read the state file {path}\nhint: delete it or fix its JSON")]
    State {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// One request and its answer, kept when `record_exchanges` is on (contract tests).
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The id part of the bearer token (`<id>|<secret>`): whose call it was.
    pub token_id: Option<String>,
    pub method: String,
    /// The route template, e.g. `/api/v1/services/{uuid}`; `None` for unknown paths.
    pub route: Option<String>,
    pub path: String,
    pub query: Option<String>,
    pub request_content_type: Option<String>,
    pub request_body: Vec<u8>,
    pub status: u16,
    pub response_content_type: Option<String>,
    pub response_body: Vec<u8>,
}

/// Counters for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxStats {
    /// API requests that reached the throttle.
    pub requests: u64,
    /// 429s from the throttle (not from injected storms).
    pub rate_limited: u64,
    /// Throttle windows opened (a 60 s window starts at the first request after the last).
    pub rate_windows_opened: u64,
    /// Requests answered by an injected fault.
    pub faulted: u64,
}

pub(crate) struct Settings {
    /// Tokens whose user no longer belongs to the token's team (`getTeamIdFromToken` is null).
    pub teamless_tokens: Vec<String>,
    pub api_enabled: bool,
    pub allowed_ips: Option<Vec<IpAddr>>,
    pub tokens: Vec<SandboxToken>,
}

pub(crate) struct ThrottleWindow {
    pub started_ms: u64,
    pub count: u32,
}

pub(crate) struct Shared {
    pub world: Mutex<World>,
    pub settings: Mutex<Settings>,
    pub throttle: Mutex<HashMap<(bool, IpAddr), ThrottleWindow>>,
    pub exchanges: Mutex<Vec<Exchange>>,
    pub config: SandboxConfig,
    pub timings: Timings,
    pub requests: AtomicU64,
    pub rate_limited: AtomicU64,
    pub rate_windows_opened: AtomicU64,
    pub faulted: AtomicU64,
    pub dirty: AtomicBool,
    pub jobs: crate::jobs::JobQueue,
    pub runtime: crate::runtime::Runtime,
    /// Host -> container address, for the front (docker runtime; refreshed by the status job).
    pub routes: Arc<Mutex<HashMap<String, SocketAddr>>>,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A handler that panicked mid-update leaves plain data behind; keep serving.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Entry point: `Sandbox::start(config).await`.
#[derive(Debug)]
pub struct Sandbox;

impl Sandbox {
    /// Binds, seeds (or loads) the world and serves until the handle shuts it down or drops.
    pub async fn start(config: SandboxConfig) -> Result<SandboxHandle, SandboxError> {
        let world = match &config.state_file {
            Some(path) if path.exists() => {
                let state_error = |source: Box<dyn std::error::Error + Send + Sync>| {
                    SandboxError::State { path: path.display().to_string(), source }
                };
                let text =
                    std::fs::read_to_string(path).map_err(|error| state_error(Box::new(error)))?;
                serde_json::from_str(&text).map_err(|error| state_error(Box::new(error)))?
            }
            _ => seed_world(&config),
        };
        let routes: Arc<Mutex<HashMap<String, SocketAddr>>> = Arc::default();
        let (runtime, front) = match config.runtime {
            RuntimeKind::Simulated => (Runtime::Simulated, None),
            RuntimeKind::Docker => {
                let docker = DockerRuntime::connect(DockerRuntimeConfig {
                    docker_host: config.docker_host.clone(),
                    work_dir: config.docker_work_dir.clone(),
                    backup_dir: config.docker_backup_dir.clone(),
                    proxy_network: config
                        .servers
                        .first()
                        .and_then(|server| server.destinations.first().cloned())
                        .unwrap_or_else(|| "coolify".to_owned()),
                })
                .await
                .map_err(|source| SandboxError::Docker { source })?;
                let table = routes.clone();
                let front = Front::start(
                    config.front_listen,
                    Arc::new(move |host: &str| {
                        let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
                        lock(&table).get(&host).copied()
                    }),
                )
                .await
                .map_err(|source| SandboxError::Listen { address: config.front_listen, source })?;
                (Runtime::Docker(docker), Some(front))
            }
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| SandboxError::Listen { address: config.listen, source })?;
        let address = listener
            .local_addr()
            .map_err(|source| SandboxError::Listen { address: config.listen, source })?;
        let shared = Arc::new(Shared {
            world: Mutex::new(world),
            settings: Mutex::new(Settings {
                teamless_tokens: Vec::new(),
                api_enabled: config.api_enabled,
                allowed_ips: config.allowed_ips.clone(),
                tokens: config.tokens.clone(),
            }),
            throttle: Mutex::new(HashMap::new()),
            exchanges: Mutex::new(Vec::new()),
            timings: Timings {
                deploy_ms: millis(config.deploy_delay),
                healthcheck_ms: millis(config.healthcheck_delay),
                live_status: config.status_interval.is_zero()
                    && config.runtime == RuntimeKind::Simulated,
            },
            config,
            requests: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            rate_windows_opened: AtomicU64::new(0),
            faulted: AtomicU64::new(0),
            dirty: AtomicBool::new(false),
            jobs: crate::jobs::JobQueue::default(),
            runtime,
            routes,
        });
        let workers = crate::jobs::spawn_workers(&shared);
        let router = crate::api::router(shared.clone());
        let (shutdown_sender, shutdown_receiver) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, service)
                .with_graceful_shutdown(async {
                    let _ = shutdown_receiver.await;
                })
                .await;
        });
        let saver = shared.config.state_file.clone().map(|path| {
            let shared = shared.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    save_if_dirty(&shared, &path);
                }
            })
        });
        let token =
            shared.config.tokens.first().map(|token| token.token.clone()).unwrap_or_default();
        Ok(SandboxHandle {
            address,
            token,
            shared,
            server,
            saver,
            workers,
            front,
            shutdown: Some(shutdown_sender),
        })
    }
}

fn save_if_dirty(shared: &Shared, path: &std::path::Path) {
    if shared.dirty.swap(false, Ordering::AcqRel) {
        let text = serde_json::to_string(&*lock(&shared.world));
        if let Ok(text) = text {
            let temporary = path.with_extension("tmp");
            if std::fs::write(&temporary, text).is_ok() {
                let _ = std::fs::rename(&temporary, path);
            }
        }
    }
}

fn seed_world(config: &SandboxConfig) -> World {
    let mut world = World {
        next_id: 0,
        servers: Vec::new(),
        destinations: Vec::new(),
        projects: IndexMap::new(),
        services: IndexMap::new(),
        s3_storages: Vec::new(),
        shared_variables: Vec::new(),
        backup_executions: Vec::new(),
        faults: Vec::new(),
    };
    let now = now_ms();
    // A usable storage without an endpoint: schedules may name it; uploads to it fail (a
    // warning on the run). Tests add real ones with `SandboxHandle::add_s3_storage`.
    let id = world.next_id();
    world.s3_storages.push(crate::s3::S3StorageRecord {
        id,
        uuid: new_uuid(),
        name: "sandbox-default".to_owned(),
        description: Some("no endpoint: uploads fail".to_owned()),
        endpoint: String::new(),
        bucket: "sandbox".to_owned(),
        region: "us-east-1".to_owned(),
        key: String::new(),
        secret: String::new(),
        is_usable: true,
        created_at: now,
    });
    for server in &config.servers {
        let id = world.next_id();
        let uuid = new_uuid();
        for network in &server.destinations {
            let destination_id = world.next_id();
            world.destinations.push(DestinationRecord {
                id: destination_id,
                uuid: new_uuid(),
                name: network.clone(),
                network: network.clone(),
                server_uuid: uuid.clone(),
                created_at: now,
            });
        }
        world.servers.push(ServerRecord {
            id,
            uuid,
            name: server.name.clone(),
            ip: server.ip.clone(),
            wildcard_domain: server.wildcard_domain.clone(),
            created_at: now,
        });
    }
    world
}

/// A running sandbox. Dropping it stops the server.
#[derive(Debug)]
pub struct SandboxHandle {
    address: SocketAddr,
    token: String,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
    saver: Option<JoinHandle<()>>,
    /// The queue workers and the status ticker.
    workers: Vec<JoinHandle<()>>,
    front: Option<FrontHandle>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl SandboxHandle {
    /// `http://127.0.0.1:PORT` (the client appends `/api/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The first configured token (root by default).
    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.world).faults.push(fault);
    }

    pub fn clear_faults(&self) {
        lock(&self.shared.world).faults.clear();
    }

    pub fn faults(&self) -> Vec<Fault> {
        lock(&self.shared.world).faults.clone()
    }

    pub fn set_api_enabled(&self, enabled: bool) {
        lock(&self.shared.settings).api_enabled = enabled;
    }

    pub fn set_allowed_ips(&self, allowed: Option<Vec<IpAddr>>) {
        lock(&self.shared.settings).allowed_ips = allowed;
    }

    pub fn add_token(&self, token: SandboxToken) {
        lock(&self.shared.settings).tokens.push(token);
    }

    pub fn stats(&self) -> SandboxStats {
        SandboxStats {
            requests: self.shared.requests.load(Ordering::Relaxed),
            rate_limited: self.shared.rate_limited.load(Ordering::Relaxed),
            rate_windows_opened: self.shared.rate_windows_opened.load(Ordering::Relaxed),
            faulted: self.shared.faulted.load(Ordering::Relaxed),
        }
    }

    /// Recorded exchanges (empty unless `record_exchanges`).
    pub fn exchanges(&self) -> Vec<Exchange> {
        lock(&self.shared.exchanges).clone()
    }

    pub fn server_uuid(&self) -> String {
        lock(&self.shared.world)
            .servers
            .first()
            .map(|server| server.uuid.clone())
            .unwrap_or_default()
    }

    pub fn destination_uuids(&self) -> Vec<String> {
        lock(&self.shared.world)
            .destinations
            .iter()
            .map(|destination| destination.uuid.clone())
            .collect()
    }

    /// The seed's usable S3 storage (no endpoint: uploads to it fail), for schedules with
    /// `save_s3`.
    pub fn s3_storage_uuid(&self) -> String {
        lock(&self.shared.world)
            .s3_storages
            .first()
            .map(|storage| storage.uuid.clone())
            .unwrap_or_default()
    }

    /// Registers a usable S3 storage, as an operator does in Coolify's UI or with
    /// `POST /s3-storages`; returns its uuid.
    pub fn add_s3_storage(
        &self,
        name: &str,
        settings: &cfa_backup_store::BackupStoreSettings,
    ) -> String {
        let mut world = lock(&self.shared.world);
        let id = world.next_id();
        let uuid = new_uuid();
        world.s3_storages.push(crate::s3::S3StorageRecord {
            id,
            uuid: uuid.clone(),
            name: name.to_owned(),
            description: None,
            endpoint: settings.endpoint.clone(),
            bucket: settings.bucket.clone(),
            region: settings.region.clone(),
            key: settings.access_key_id.clone(),
            secret: settings.secret_access_key.clone(),
            is_usable: true,
            created_at: now_ms(),
        });
        uuid
    }

    pub fn backup_executions(&self) -> Vec<BackupExecution> {
        let now = now_ms();
        lock(&self.shared.world)
            .backup_executions
            .iter()
            .map(|execution| {
                let mut execution = execution.clone();
                if execution.finished_at_ms > now {
                    execution.outcome = "running".to_owned();
                }
                execution
            })
            .collect()
    }

    /// `stop`'s `docker_cleanup` as last sent for a service (to check suspend skips cleanup).
    pub fn last_stop_docker_cleanup(&self, service_uuid: &str) -> Option<bool> {
        lock(&self.shared.world)
            .services
            .get(service_uuid)
            .and_then(|service| service.last_stop_docker_cleanup)
    }

    /// Adds `count` running single-container services in one project (benchmarks, load tests).
    pub fn seed_services(&self, count: usize) {
        let mut world = lock(&self.shared.world);
        let now = now_ms();
        let project_id = world.next_id();
        let environment_id = world.next_id();
        let project_uuid = new_uuid();
        let (server_uuid, server_id) = world
            .servers
            .first()
            .map(|server| (server.uuid.clone(), server.id))
            .unwrap_or_default();
        let destination_id =
            world.destinations.first().map(|destination| destination.id).unwrap_or_default();
        world.projects.insert(
            project_uuid.clone(),
            ProjectRecord {
                id: project_id,
                uuid: project_uuid.clone(),
                name: "seeded".to_owned(),
                description: None,
                environments: vec![crate::state::EnvironmentRecord {
                    id: environment_id,
                    uuid: new_uuid(),
                    name: "production".to_owned(),
                    description: None,
                    created_at: now,
                }],
                created_at: now,
            },
        );
        for index in 0..count {
            let id = world.next_id();
            let container_id = world.next_id();
            let uuid = new_uuid();
            world.services.insert(
                uuid.clone(),
                ServiceRecord {
                    id,
                    uuid: uuid.clone(),
                    name: format!("seeded-{index}"),
                    description: None,
                    project_uuid: project_uuid.clone(),
                    environment_id,
                    server_uuid: server_uuid.clone(),
                    server_id,
                    destination_id,
                    raw: "services:\n  app:\n    image: nginx:1.27\n".to_owned(),
                    rendered: format!(
                        "services:\n  app:\n    image: nginx:1.27\n    container_name: app-{uuid}\n"
                    ),
                    containers: vec![ContainerRecord {
                        id: container_id,
                        uuid: new_uuid(),
                        name: "app".to_owned(),
                        image: "nginx:1.27".to_owned(),
                        is_database: false,
                        has_healthcheck: true,
                        excluded: false,
                        fqdn: None,
                        status: Some("running:healthy".to_owned()),
                    }],
                    envs: IndexMap::new(),
                    storages: Vec::new(),
                    started_at: Some(now.saturating_sub(3_600_000)),
                    deleted_at: None,
                    connect_to_docker_network: false,
                    is_container_label_escape_enabled: true,
                    last_stop_docker_cleanup: None,
                    created_at: now,
                    updated_at: now,
                    activity: None,
                },
            );
        }
        self.shared.dirty.store(true, Ordering::Release);
    }

    /// Runs the status job (`GetContainersStatus`) now, whatever the interval.
    pub async fn run_status_job(&self) {
        crate::jobs::run_status_job(&self.shared).await;
    }

    /// Waits until no job is queued or running.
    pub async fn wait_for_jobs(&self) {
        self.shared.jobs.wait_idle().await;
    }

    /// The `docker-compose.yml` Coolify writes to the service's work directory.
    pub fn written_compose(&self, service_uuid: &str) -> Option<String> {
        let world = lock(&self.shared.world);
        world
            .services
            .get(service_uuid)
            .map(|service| crate::jobs::written_compose(service, &world.shared_variables))
    }

    /// Sets a shared variable (`kind` is `team`, `project` or `environment`), as an operator
    /// does in Coolify's UI: `{{<kind>.<key>}}` in any value then reads `value`.
    pub fn set_shared_variable(&self, kind: &str, key: &str, value: &str) {
        let mut world = lock(&self.shared.world);
        world.shared_variables.retain(|variable| !(variable.kind == kind && variable.key == key));
        world.shared_variables.push(crate::shared_variables::SharedVariable {
            kind: kind.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
        });
    }

    /// The `.env` Coolify writes next to it (`Service::saveComposeConfigs`).
    pub fn written_env_file(&self, service_uuid: &str) -> Option<String> {
        let world = lock(&self.shared.world);
        world
            .services
            .get(service_uuid)
            .map(|service| crate::jobs::env_file(service, &world.shared_variables))
    }

    /// The local backup archives kept for a service's volumes.
    pub fn backup_archives(&self, service_uuid: &str) -> Vec<String> {
        lock(&self.shared.world)
            .backup_executions
            .iter()
            .filter(|execution| execution.service_uuid == service_uuid)
            .filter_map(|execution| execution.archive.clone())
            .collect()
    }

    /// The log of the service's latest activity (compose's output or its error).
    pub fn activity_log(&self, service_uuid: &str) -> Option<String> {
        lock(&self.shared.world)
            .services
            .get(service_uuid)
            .and_then(|service| service.activity.as_ref().map(|activity| activity.log.clone()))
    }

    /// The token's user leaves its team: Coolify's controllers answer 400 "Invalid token.".
    pub fn remove_token_from_team(&self, token: &str) {
        lock(&self.shared.settings).teamless_tokens.push(token.to_owned());
    }

    /// The front's base URL (docker runtime): requests with a service's `Host` reach its container.
    pub fn probe_url(&self) -> Option<String> {
        self.front.as_ref().map(FrontHandle::base_url)
    }

    /// Stops serving and writes the state file one last time.
    pub async fn shutdown(mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
        if let Some(saver) = self.saver.take() {
            saver.abort();
        }
        for worker in self.workers.drain(..) {
            worker.abort();
        }
        if let Some(path) = &self.shared.config.state_file {
            save_if_dirty(&self.shared, path);
        }
        let server = std::mem::replace(&mut self.server, tokio::spawn(async {}));
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    }

    /// Waits until the server stops (the binary's main loop).
    pub async fn wait(mut self) {
        let server = std::mem::replace(&mut self.server, tokio::spawn(async {}));
        let _ = server.await;
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
        if let Some(saver) = self.saver.take() {
            saver.abort();
        }
        for worker in self.workers.drain(..) {
            worker.abort();
        }
    }
}

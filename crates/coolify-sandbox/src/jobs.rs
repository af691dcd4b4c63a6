//! Coolify's job model: start, restart, stop, delete and backup runs are queued jobs, and
//! statuses are stored only by the status job.
//!
//! - `POST /services/{uuid}/start` queues `StartService` on the deployment queue
//!   (app/Actions/Service/StartService.php `configureJob`, 4.3.11) and answers at once. The job
//!   parses, writes `docker-compose.yml` and `.env` (`Service::saveComposeConfigs`) and runs
//!   `docker compose up` as a `remote_process` Activity; while that Activity is queued or in
//!   progress the service reads `starting:unhealthy` (`Service::isStarting`,
//!   `getStatusAttribute`).
//! - `RestartService` runs on the `high` queue (`$jobQueue = 'high'`): `StartService` with
//!   `stopBeforeStart`, so `StopService` (stored statuses `exited`) comes first, then the start.
//! - `StopService` (`high`) cancels queued or running activities, `docker stop` + `docker rm -f`
//!   the containers, stores `exited` for each, and with `docker_cleanup` runs `CleanupDocker`.
//! - `DeleteResourceJob` (`high`, app/Jobs/DeleteResourceJob.php from 4.3.10): `StopService`,
//!   `DeleteService::cleanupRemote` with its four flags, then `deleteScheduledVolumeBackups`
//!   (`DeleteScheduledVolumeBackup`: every local and S3 archive and the schedule), then the rows.
//! - `VolumeBackupJob` (crons queue, app/Jobs/VolumeBackupJob.php): tars the volume; an archive
//!   of 0 bytes (`du -b`) fails the run.
//! - The status job is `GetContainersStatus` (app/Actions/Docker/GetContainersStatus.php), run
//!   by `ServerManagerJob` once a minute: each container's `State.Status:Health`, aggregated per
//!   sub-resource by `ContainerStatusAggregator::aggregateFromStrings` with
//!   `preserveRestarting: true` and no restart counts (they are stored for applications only);
//!   a sub-resource with no container left is stored `exited`.
//!
//! One worker per queue, so a long deploy does not hold up a stop (Horizon's supervisors).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::RuntimeKind;
use crate::handle::{Shared, lock};
use crate::runtime::docker::{DeleteFlags, Deployment, DeploymentFile, DockerRuntime};
use crate::runtime::{Runtime, simulated};
use cfa_backup_store::layout::coolify_volume_archive_key;

use crate::s3::{TEAM_ID, TEAM_NAME};
use crate::shared_variables::{SharedVariable, resolve};
use crate::state::{
    ActivityRecord, ActivityStatus, BackupExecution, ServiceRecord, backup_fault, new_uuid, now_ms,
};
use crate::status::{ContainerStatus, aggregate, excluded_suffix};

/// Laravel queues the sandbox's jobs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queue {
    High,
    Deployment,
    Crons,
}

const QUEUES: [Queue; 3] = [Queue::High, Queue::Deployment, Queue::Crons];

impl Queue {
    fn index(self) -> usize {
        match self {
            Self::High => 0,
            Self::Deployment => 1,
            Self::Crons => 2,
        }
    }
}

/// One queued job.
#[derive(Debug, Clone)]
pub(crate) enum Job {
    StartService { service_uuid: String },
    RestartService { service_uuid: String },
    StopService { service_uuid: String, docker_cleanup: bool },
    DeleteResource { service_uuid: String, flags: DeleteFlags },
    VolumeBackup { service_uuid: String, storage_uuid: String },
}

impl Job {
    fn queue(&self) -> Queue {
        match self {
            Self::StartService { .. } => Queue::Deployment,
            Self::RestartService { .. }
            | Self::StopService { .. }
            | Self::DeleteResource { .. } => Queue::High,
            Self::VolumeBackup { .. } => Queue::Crons,
        }
    }
}

#[derive(Debug, Default)]
struct QueueState {
    queues: [VecDeque<Job>; 3],
    running: usize,
}

/// The queues; workers take jobs in order, one at a time per queue.
#[derive(Debug, Default)]
pub(crate) struct JobQueue {
    state: std::sync::Mutex<QueueState>,
    wake: Notify,
    idle: Notify,
}

impl JobQueue {
    pub(crate) fn dispatch(&self, job: Job) {
        lock(&self.state).queues[job.queue().index()].push_back(job);
        self.wake.notify_waiters();
    }

    async fn next(&self, queue: Queue) -> Job {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = lock(&self.state);
                if let Some(job) = state.queues[queue.index()].pop_front() {
                    state.running += 1;
                    return job;
                }
            }
            notified.await;
        }
    }

    fn finished(&self) {
        let mut state = lock(&self.state);
        state.running = state.running.saturating_sub(1);
        if state.running == 0 && state.queues.iter().all(VecDeque::is_empty) {
            self.idle.notify_waiters();
        }
    }

    /// Waits until no job is queued or running.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let state = lock(&self.state);
                if state.running == 0 && state.queues.iter().all(VecDeque::is_empty) {
                    return;
                }
            }
            notified.await;
        }
    }
}

/// One worker per queue and, with a status interval, the `ServerManagerJob` ticker.
pub(crate) fn spawn_workers(shared: &Arc<Shared>) -> Vec<JoinHandle<()>> {
    let mut workers: Vec<JoinHandle<()>> = QUEUES
        .iter()
        .map(|queue| {
            let shared = shared.clone();
            let queue = *queue;
            tokio::spawn(async move {
                loop {
                    let job = shared.jobs.next(queue).await;
                    run(&shared, job).await;
                    shared.dirty.store(true, Ordering::Release);
                    shared.jobs.finished();
                }
            })
        })
        .collect();
    let interval = shared.config.status_interval;
    if !interval.is_zero() {
        let shared = shared.clone();
        workers.push(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                run_status_job(&shared).await;
            }
        }));
    }
    workers
}

async fn run(shared: &Shared, job: Job) {
    match job {
        Job::StartService { service_uuid } => start(shared, &service_uuid).await,
        Job::RestartService { service_uuid } => {
            // RestartService -> StartService(stopBeforeStart: true) -> StopService(dockerCleanup: false).
            stop(shared, &service_uuid, false).await;
            start(shared, &service_uuid).await;
        }
        Job::StopService { service_uuid, docker_cleanup } => {
            stop(shared, &service_uuid, docker_cleanup).await;
            if let Some(service) = lock(&shared.world).services.get_mut(&service_uuid) {
                service.last_stop_docker_cleanup = Some(docker_cleanup);
            }
        }
        Job::DeleteResource { service_uuid, flags } => delete(shared, &service_uuid, flags).await,
        Job::VolumeBackup { service_uuid, storage_uuid } => {
            backup(shared, &service_uuid, &storage_uuid).await;
        }
    }
}

/// `Service::saveComposeConfigs`'s `.env`: `SERVICE_NAME_<NAME>=<name>` for every compose
/// service, then every variable as `KEY=value`, `SERVICE_*` keys first, then values that read a
/// `$SERVICE_*` variable, then the rest (app/Models/Service.php, 4.3.11).
/// The compose as the start job writes it: shared-variable placeholders in its values resolved
/// (the parser's `resolveSharedEnvironmentVariables`; here on the text, which for the values
/// tests use is the same).
pub(crate) fn written_compose(service: &ServiceRecord, variables: &[SharedVariable]) -> String {
    resolve(&service.rendered, variables)
}

/// `.env` as `Service::saveComposeConfigs` writes it, each value its `realValue` (shared
/// placeholders resolved, `is_literal` or not).
pub(crate) fn env_file(service: &ServiceRecord, variables: &[SharedVariable]) -> String {
    let mut lines: Vec<String> = service
        .containers
        .iter()
        .map(|container| {
            format!(
                "SERVICE_NAME_{}={}",
                container.name.replace(['-', '.'], "_").to_uppercase(),
                container.name
            )
        })
        .collect();
    let mut envs: Vec<_> = service.envs.values().collect();
    envs.sort_by_key(|env| {
        let value = env.value.as_deref().unwrap_or_default();
        if env.key.starts_with("SERVICE_") {
            1
        } else if value.starts_with("$SERVICE_") || value.starts_with("${SERVICE_") {
            2
        } else {
            3
        }
    });
    lines.extend(envs.into_iter().map(|env| {
        format!("{}={}", env.key, resolve(env.value.as_deref().unwrap_or_default(), variables))
    }));
    lines.join("\n")
}

async fn start(shared: &Shared, service_uuid: &str) {
    match &shared.runtime {
        Runtime::Simulated => {
            let mut world = lock(&shared.world);
            if let Some(service) = world.services.get_mut(service_uuid) {
                simulated::start(service, now_ms(), &shared.config.missing_images);
            }
        }
        Runtime::Docker(docker) => {
            let deployment = {
                let mut world = lock(&shared.world);
                let network = world.services.get(service_uuid).and_then(|service| {
                    world
                        .destinations
                        .iter()
                        .find(|destination| destination.id == service.destination_id)
                        .map(|destination| destination.network.clone())
                });
                let variables = world.shared_variables.clone();
                let Some(service) = world.services.get_mut(service_uuid) else { return };
                service.activity = Some(ActivityRecord {
                    status: ActivityStatus::InProgress,
                    started_at: now_ms(),
                    log: String::new(),
                });
                // The parser binds relative sources under Coolify's configuration directory
                // (`base_configuration_dir()/services/<uuid>`); here that is the runtime's work
                // directory for the service, where the compose and `.env` are written too.
                let coolify_dir = format!("/data/coolify/services/{service_uuid}");
                let work_dir = docker.service_dir(service_uuid);
                let files = service
                    .storages
                    .iter()
                    .filter_map(|storage| {
                        let fs_path = storage.fs_path.as_deref()?;
                        let relative = fs_path.strip_prefix(&coolify_dir)?.trim_start_matches('/');
                        Some(DeploymentFile {
                            relative_path: relative.to_owned(),
                            content: storage.content.clone(),
                            is_directory: storage.is_directory,
                        })
                    })
                    .collect();
                Deployment {
                    service_uuid: service_uuid.to_owned(),
                    compose_yaml: written_compose(service, &variables)
                        .replace(&coolify_dir, &work_dir.to_string_lossy()),
                    env_file: env_file(service, &variables),
                    files,
                    network: network.unwrap_or_default(),
                }
            };
            let result = docker.start(&deployment).await;
            // The guard lives in this block only: the route lookups below await.
            let routed: Vec<(String, String, String)> = {
                let mut world = lock(&shared.world);
                if let Some(service) = world.services.get_mut(service_uuid)
                    && let Some(activity) = service.activity.as_mut()
                    && activity.status == ActivityStatus::InProgress
                {
                    service.started_at = Some(activity.started_at);
                    (activity.status, activity.log) = match result {
                        Ok(output) => (ActivityStatus::Finished, output),
                        Err(error) => (ActivityStatus::Error, error.to_string()),
                    };
                }
                // Traefik routes a container as soon as Docker starts it (its Docker provider
                // watches events), long before Coolify's status job runs: so does the front.
                world
                    .services
                    .get(service_uuid)
                    .map(|service| {
                        service
                            .containers
                            .iter()
                            .filter_map(|container| {
                                Some((container.name.clone(), container.fqdn.clone()?))
                            })
                            .flat_map(|(name, list)| {
                                list.split(',')
                                    .map(|fqdn| {
                                        let fqdn = fqdn.trim().to_owned();
                                        (service_uuid.to_owned(), name.clone(), fqdn)
                                    })
                                    .collect::<Vec<_>>()
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let routes = resolve_routes(docker, routed).await;
            lock(&shared.routes).extend(routes);
        }
    }
}

/// `StopService::handle`.
async fn stop(shared: &Shared, service_uuid: &str, docker_cleanup: bool) {
    {
        let mut world = lock(&shared.world);
        let Some(service) = world.services.get_mut(service_uuid) else { return };
        if let Some(activity) = service.activity.as_mut()
            && matches!(activity.status, ActivityStatus::Queued | ActivityStatus::InProgress)
        {
            activity.status = ActivityStatus::Cancelled;
        }
    }
    if let Some(docker) = shared.runtime.docker() {
        // Coolify's stop ignores failures (`throwError: false`).
        let _ = docker.stop(service_uuid, docker_cleanup).await;
    }
    let mut world = lock(&shared.world);
    if let Some(service) = world.services.get_mut(service_uuid) {
        simulated::stop(service);
        for container in &mut service.containers {
            container.status = Some("exited".to_owned());
        }
    }
}

/// `DeleteResourceJob::handle` for a service.
async fn delete(shared: &Shared, service_uuid: &str, flags: DeleteFlags) {
    stop(shared, service_uuid, flags.docker_cleanup).await;
    if let Some(docker) = shared.runtime.docker() {
        // Failures are logged and the local deletion goes on.
        let _ = docker.delete(service_uuid, flags).await;
    }
    let uploaded = {
        let mut world = lock(&shared.world);
        // deleteScheduledVolumeBackups -> DeleteScheduledVolumeBackup: archives, then schedules.
        let archives: Vec<String> = world
            .backup_executions
            .iter()
            .filter(|execution| execution.service_uuid == service_uuid)
            .filter_map(|execution| execution.archive.clone())
            .collect();
        if shared.runtime.docker().is_some() {
            for archive in &archives {
                let _ = std::fs::remove_file(archive);
            }
        }
        let uploaded =
            uploaded_archives(&world, |execution| execution.service_uuid == service_uuid);
        world.backup_executions.retain(|execution| execution.service_uuid != service_uuid);
        let now = now_ms();
        let delay = match shared.config.runtime {
            RuntimeKind::Simulated => {
                u64::try_from(shared.config.delete_delay.as_millis()).unwrap_or(0)
            }
            RuntimeKind::Docker => 0,
        };
        if let Some(service) = world.services.get_mut(service_uuid) {
            for storage in &mut service.storages {
                storage.backup = None;
            }
            service.deleted_at = Some(now + delay);
        }
        world.purge_deleted(now);
        uploaded
    };
    for (storage, keys) in uploaded {
        storage.delete(&keys).await;
    }
}

/// `deleteBackupsS3`'s input: each S3 storage with the keys its executions uploaded.
pub(crate) fn uploaded_archives(
    world: &crate::state::World,
    selected: impl Fn(&BackupExecution) -> bool,
) -> Vec<(crate::s3::S3StorageRecord, Vec<String>)> {
    let mut grouped: Vec<(crate::s3::S3StorageRecord, Vec<String>)> = Vec::new();
    for execution in world.backup_executions.iter().filter(|execution| selected(execution)) {
        let (Some(storage_uuid), Some(key)) = (&execution.s3_storage_uuid, &execution.s3_key)
        else {
            continue;
        };
        let Some(storage) = world.s3_storages.iter().find(|storage| &storage.uuid == storage_uuid)
        else {
            continue;
        };
        match grouped.iter_mut().find(|(known, _)| known.uuid == storage.uuid) {
            Some((_, keys)) => keys.push(key.clone()),
            None => grouped.push((storage.clone(), vec![key.clone()])),
        }
    }
    grouped
}

/// `VolumeBackupJob::handle`: the archive under Coolify's backup directory, then, with
/// `save_s3`, `uploadToS3` (a failed upload is a warning on a successful run).
async fn backup(shared: &Shared, service_uuid: &str, storage_uuid: &str) {
    let now = now_ms();
    let (backup_uuid, volume_name, target_name, size_from_envs, s3) = {
        let world = lock(&shared.world);
        let Some(service) = world.services.get(service_uuid) else { return };
        let Some(storage) = service.storages.iter().find(|storage| storage.uuid == storage_uuid)
        else {
            return;
        };
        let Some(backup) = &storage.backup else { return };
        let s3 = backup.s3_storage_uuid.as_ref().filter(|_| backup.save_s3).and_then(|uuid| {
            world.s3_storages.iter().find(|candidate| &candidate.uuid == uuid).cloned()
        });
        (
            backup.uuid.clone(),
            storage.volume_name.clone(),
            // ScheduledVolumeBackup::targetName: the volume's name, or a directory's fs_path.
            storage.volume_name.clone().or_else(|| storage.fs_path.clone()).unwrap_or_default(),
            4096 + 1024 * u64::try_from(service.envs.len()).unwrap_or(0),
            s3,
        )
    };
    let key =
        coolify_volume_archive_key(TEAM_NAME, TEAM_ID, storage_uuid, &target_name, now / 1000);
    let mut execution = BackupExecution {
        uuid: new_uuid(),
        backup_uuid,
        service_uuid: service_uuid.to_owned(),
        storage_uuid: storage_uuid.to_owned(),
        started_at_ms: now,
        finished_at_ms: now,
        outcome: "success".to_owned(),
        size_bytes: 0,
        archive: None,
        s3_key: None,
        s3_storage_uuid: None,
        s3_warning: None,
    };
    let mut upload: Option<bytes::Bytes> = None;
    let mut upload_delay = std::time::Duration::ZERO;
    match &shared.runtime {
        Runtime::Simulated => {
            let (fails, empty) = backup_fault(&lock(&shared.world).faults, service_uuid);
            upload_delay = shared.config.backup_duration;
            let duration = u64::try_from(upload_delay.as_millis()).unwrap_or(0);
            execution.finished_at_ms = now + duration;
            if fails {
                execution.outcome = "failed".to_owned();
            } else {
                execution.size_bytes = if empty { 0 } else { size_from_envs };
                execution.archive = Some(format!("/{key}"));
                if !empty {
                    upload = simulated_archive();
                }
            }
        }
        Runtime::Docker(docker) => {
            let relative = key.strip_prefix("data/coolify/backups/").unwrap_or(&key);
            let archive = shared.config.docker_backup_dir.join(relative);
            let result = match &volume_name {
                Some(volume) => {
                    docker.backup_volume(volume, &archive).await.map_err(|error| error.to_string())
                }
                None => Err("only named volumes are backed up by the docker runtime".to_owned()),
            };
            execution.finished_at_ms = now_ms();
            match result {
                Ok(size) => {
                    execution.size_bytes = size;
                    if s3.is_some() {
                        upload = tokio::fs::read(&archive).await.ok().map(bytes::Bytes::from);
                    }
                    execution.archive = Some(archive.display().to_string());
                }
                Err(_) => execution.outcome = "failed".to_owned(),
            }
        }
    }
    let execution_uuid = execution.uuid.clone();
    lock(&shared.world).backup_executions.push(execution);
    let (Some(s3), Some(content)) = (s3, upload) else { return };
    // The upload is the run's last step: a simulated run's archive reaches S3 when it ends.
    tokio::time::sleep(upload_delay).await;
    let uploaded = s3.upload(&key, content).await;
    let mut world = lock(&shared.world);
    if let Some(execution) =
        world.backup_executions.iter_mut().find(|execution| execution.uuid == execution_uuid)
    {
        execution.s3_storage_uuid = Some(s3.uuid.clone());
        match uploaded {
            Ok(()) => execution.s3_key = Some(key),
            Err(error) => execution.s3_warning = Some(format!("S3 upload failed: {error}")),
        }
    }
}

/// What the simulated runtime uploads for a volume it does not have: a gzipped tar with one
/// entry saying so, so that a restore test reads a real archive.
fn simulated_archive() -> Option<bytes::Bytes> {
    use std::io::Write as _;
    let note = b"the sandbox's simulated runtime has no real volume contents\n";
    let gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(gzip);
    let mut header = tar::Header::new_gnu();
    header.set_size(note.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, "./SIMULATED", &note[..]).ok()?;
    let mut gzip = builder.into_inner().ok()?;
    gzip.flush().ok()?;
    gzip.finish().ok().map(bytes::Bytes::from)
}

/// `GetContainersStatus` over every service: one pass, never per request.
pub(crate) async fn run_status_job(shared: &Shared) {
    match &shared.runtime {
        Runtime::Simulated => store_simulated_statuses(shared),
        Runtime::Docker(docker) => {
            // `DockerRuntime::container_states`'s future is not `Send` (rustc: "implementation of
            // `Iterator` is not general enough"), so it cannot run inside a spawned task's
            // await; it runs to completion on this worker thread instead (multi-thread runtime
            // only). Remove once it is `Send`.
            let states = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(docker.container_states())
            });
            let Ok(states) = states else { return };
            let mut found: HashMap<(String, String), Vec<ContainerStatus>> = HashMap::new();
            for state in &states {
                // GetContainersStatus: `restarting:<health>`, `exited`, else `<state>:<health>`.
                let status = match (state.state.as_str(), &state.health) {
                    ("exited", _) => "exited".to_owned(),
                    (other, health) => {
                        format!("{other}:{}", health.as_deref().unwrap_or("unknown"))
                    }
                };
                found
                    .entry((state.service_uuid.clone(), state.compose_service.clone()))
                    .or_default()
                    .push(ContainerStatus { status, restart_count: 0 });
            }
            let hosts = store_docker_statuses(shared, &found);
            *lock(&shared.routes) = resolve_routes(docker, hosts).await;
        }
    }
    shared.dirty.store(true, Ordering::Release);
}

fn store_simulated_statuses(shared: &Shared) {
    let now = now_ms();
    let timings = shared.timings;
    let mut world = lock(&shared.world);
    let mut observed: Vec<Vec<String>> = Vec::with_capacity(world.services.len());
    for service in world.services.values() {
        let mut statuses = Vec::with_capacity(service.containers.len());
        for container in &service.containers {
            statuses.push(world.observed_sub_status(service, container, now, timings));
        }
        observed.push(statuses);
    }
    for (service, statuses) in world.services.values_mut().zip(observed) {
        for (container, status) in service.containers.iter_mut().zip(statuses) {
            container.status = Some(status);
        }
    }
}

/// Stores what the engine reported; returns (service, compose service, fqdn) to route.
fn store_docker_statuses(
    shared: &Shared,
    found: &HashMap<(String, String), Vec<ContainerStatus>>,
) -> Vec<(String, String, String)> {
    let mut hosts = Vec::new();
    let mut world = lock(&shared.world);
    for service in world.services.values_mut() {
        for container in &mut service.containers {
            let key = (service.uuid.clone(), container.name.clone());
            let Some(statuses) = found.get(&key) else {
                // GetContainersStatus: a sub-resource with no container left is `exited`.
                if container.status.as_deref().is_some_and(|status| !status.starts_with("exited")) {
                    container.status = Some("exited".to_owned());
                }
                continue;
            };
            let aggregated = aggregate(statuses, true);
            container.status = Some(if container.excluded {
                excluded_suffix(Some(&aggregated))
            } else {
                aggregated
            });
            if let Some(list) = &container.fqdn {
                for fqdn in list.split(',') {
                    hosts.push((
                        service.uuid.clone(),
                        container.name.clone(),
                        fqdn.trim().to_owned(),
                    ));
                }
            }
        }
    }
    hosts
}

/// `https://host:port/path` -> (`host`, port); Coolify routes the FQDN's port to the container.
/// The front's routes for `(service uuid, container, fqdn)` triples: each host to its
/// container's address on the stack network and the port its URL names.
async fn resolve_routes(
    docker: &DockerRuntime,
    hosts: Vec<(String, String, String)>,
) -> HashMap<String, SocketAddr> {
    let mut routes = HashMap::new();
    for (service_uuid, name, fqdn) in hosts {
        let Some((host, port)) = host_and_port(&fqdn) else { continue };
        if let Some(address) = docker.container_address(&service_uuid, &name).await {
            routes.insert(host, SocketAddr::new(address, port));
        }
    }
    routes
}

fn host_and_port(fqdn: &str) -> Option<(String, u16)> {
    let rest = fqdn.split_once("://").map_or(fqdn, |(_, rest)| rest);
    let authority = rest.split('/').next()?;
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_ascii_lowercase(), port.parse().ok()?)),
        None => Some((authority.to_ascii_lowercase(), 80)),
    }
}

//! The sandbox's world: team, servers, projects, services and their containers, envs,
//! storages and backups. One `World` behind one lock. A service's status is Coolify's
//! `Service::getStatusAttribute`: `starting:unhealthy` while its latest activity runs, else the
//! aggregate of the per-container statuses the status job (`GetContainersStatus`) stored. The
//! simulated runtime's containers are computed from timestamps, so with a zero status interval
//! the stored statuses are read live and 10,000 services stay one pass.

use indexmap::IndexMap;
use rand::Rng as _;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::faults::{ContainerFault, Fault, matches_service};
use crate::status::{ContainerStatus, aggregate, excluded_suffix};

/// The log of a simulated activity (its end is computed from `deploy_delay`).
pub(crate) const SIMULATED: &str = "[simulated]";

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(now.as_millis()).unwrap_or(u64::MAX)
}

/// Laravel's JSON timestamp format, e.g. `2026-11-22T14:00:00.000000Z`.
///
/// Hand-rolled (civil-from-days) because `GET /services` formats two per service and
/// 10,000 services must list in well under 50 ms.
pub(crate) fn timestamp(ms: u64) -> String {
    let seconds = ms / 1000;
    let micros = (ms % 1000) * 1000;
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let second_of_day = seconds % 86_400;
    // Howard Hinnant's days -> (year, month, day).
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// `new_public_id()`: 24 lowercase alphanumerics.
pub(crate) fn new_uuid() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect::<String>()
        .to_lowercase()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServerRecord {
    pub id: u64,
    pub uuid: String,
    pub name: String,
    pub ip: String,
    pub wildcard_domain: Option<String>,
    pub created_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DestinationRecord {
    pub id: u64,
    pub uuid: String,
    pub name: String,
    pub network: String,
    pub server_uuid: String,
    pub created_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EnvironmentRecord {
    pub id: u64,
    pub uuid: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ProjectRecord {
    pub id: u64,
    pub uuid: String,
    pub name: String,
    pub description: Option<String>,
    pub environments: Vec<EnvironmentRecord>,
    pub created_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ContainerRecord {
    pub id: u64,
    pub uuid: String,
    pub name: String,
    pub image: String,
    pub is_database: bool,
    pub has_healthcheck: bool,
    pub excluded: bool,
    pub fqdn: Option<String>,
    /// The stored `service_applications.status` / `service_databases.status`: written only by
    /// the status job (`GetContainersStatus::aggregateServiceContainerStatuses`) and by
    /// `StopService` (`exited`); `None` is a never-seen container (`exited`).
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EnvRecord {
    pub id: u64,
    pub uuid: String,
    pub key: String,
    pub value: Option<String>,
    pub is_required: bool,
    pub is_literal: bool,
    pub is_multiline: bool,
    pub is_shown_once: bool,
    pub comment: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BackupRecord {
    pub uuid: String,
    pub frequency: String,
    pub enabled: bool,
    pub save_s3: bool,
    pub s3_storage_uuid: Option<String>,
    pub disable_local_backup: bool,
    pub stop_during_backup: bool,
    pub retention_amount_locally: i64,
    pub retention_days_locally: i64,
    pub retention_max_storage_locally: f64,
    pub retention_amount_s3: i64,
    pub retention_days_s3: i64,
    pub retention_max_storage_s3: f64,
    pub timeout: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StorageRecord {
    pub id: u64,
    pub uuid: String,
    pub container_uuid: String,
    pub mount_path: String,
    /// `Some` for a named volume (`LocalPersistentVolume`).
    pub volume_name: Option<String>,
    /// `Some` for a bind mount (`LocalFileVolume`).
    pub fs_path: Option<String>,
    pub is_directory: bool,
    pub content: Option<String>,
    pub backup: Option<BackupRecord>,
    pub created_at: u64,
}

/// A finished or running backup run (Coolify keeps these as `ScheduledVolumeBackupExecution`
/// rows but exposes no API for them; the sandbox shows them through its control API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupExecution {
    pub uuid: String,
    pub backup_uuid: String,
    pub service_uuid: String,
    pub storage_uuid: String,
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
    /// `success` or `failed` once `finished_at_ms` has passed; `running` before.
    pub outcome: String,
    pub size_bytes: u64,
    /// The local archive a successful run wrote (`VolumeBackupJob`), until a retention or
    /// `DeleteScheduledVolumeBackup` removes it.
    #[serde(default)]
    pub archive: Option<String>,
    /// The S3 key `uploadToS3` wrote (`s3_uploaded`), until `DeleteScheduledVolumeBackup`.
    #[serde(default)]
    pub s3_key: Option<String>,
    #[serde(default)]
    pub s3_storage_uuid: Option<String>,
    /// `S3 upload failed: ...`: the run stays a success with this warning, as in Coolify.
    #[serde(default)]
    pub s3_warning: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServiceRecord {
    pub id: u64,
    pub uuid: String,
    pub name: String,
    pub description: Option<String>,
    pub project_uuid: String,
    pub environment_id: u64,
    pub server_uuid: String,
    pub server_id: u64,
    pub destination_id: u64,
    pub raw: String,
    pub rendered: String,
    pub containers: Vec<ContainerRecord>,
    pub envs: IndexMap<String, EnvRecord>,
    pub storages: Vec<StorageRecord>,
    /// When the last start or restart began; `None` while stopped.
    pub started_at: Option<u64>,
    /// When the queued delete job finishes (the service is visible until then).
    pub deleted_at: Option<u64>,
    pub connect_to_docker_network: bool,
    pub is_container_label_escape_enabled: bool,
    pub last_stop_docker_cleanup: Option<bool>,
    pub created_at: u64,
    pub updated_at: u64,
    /// The latest `remote_process` Activity of the service (`Service::isStarting`).
    #[serde(default)]
    pub activity: Option<ActivityRecord>,
}

/// `spatie/laravel-activitylog`'s Activity as `remote_process` keeps it
/// (`App\Enums\ProcessStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ActivityStatus {
    Queued,
    InProgress,
    Finished,
    Error,
    Cancelled,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ActivityRecord {
    pub status: ActivityStatus,
    pub started_at: u64,
    /// What the commands printed (compose's output, or its error).
    pub log: String,
}

/// Timings the status computation needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timings {
    pub deploy_ms: u64,
    pub healthcheck_ms: u64,
    /// Zero: the simulated runtime's statuses are written when read (no status job needed).
    pub live_status: bool,
}

/// Everything the sandbox knows, persisted by `--state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct World {
    pub next_id: u64,
    pub servers: Vec<ServerRecord>,
    pub destinations: Vec<DestinationRecord>,
    pub projects: IndexMap<String, ProjectRecord>,
    pub services: IndexMap<String, ServiceRecord>,
    /// The team's S3 storages (`GET /s3-storages`); the first, with no endpoint, is the seed's.
    #[serde(default)]
    pub s3_storages: Vec<crate::s3::S3StorageRecord>,
    /// Shared variables (`{{team.X}}` ...), resolved where compose and `.env` are written.
    #[serde(default)]
    pub shared_variables: Vec<crate::shared_variables::SharedVariable>,
    pub backup_executions: Vec<BackupExecution>,
    #[serde(skip)]
    pub faults: Vec<Fault>,
}

impl World {
    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Services whose delete job has finished disappear.
    pub(crate) fn purge_deleted(&mut self, now: u64) {
        if self.services.values().any(|service| service.deleted_at.is_some_and(|at| at <= now)) {
            self.services.retain(|_, service| service.deleted_at.is_none_or(|at| at > now));
        }
    }

    pub(crate) fn server_reachable(&self, server_uuid: &str) -> bool {
        !self.faults.iter().any(|fault| {
            matches!(fault, Fault::ServerUnreachable { server_uuid: target } if target.as_deref().is_none_or(|target| target == server_uuid))
        })
    }

    fn service_fault(&self, service_uuid: &str, predicate: impl Fn(&Fault) -> bool) -> bool {
        self.faults.iter().any(|fault| {
            predicate(fault) && fault_service(fault).is_none_or(|target| target == service_uuid)
        })
    }

    /// `Service::isStarting`: the latest Activity is queued or in progress. The simulated
    /// runtime's activity lasts `deploy_delay` (forever under `DeployNeverFinishes`).
    pub(crate) fn activity_running(
        &self,
        service: &ServiceRecord,
        now: u64,
        timings: Timings,
    ) -> bool {
        let Some(activity) = &service.activity else { return false };
        match activity.status {
            ActivityStatus::Queued | ActivityStatus::InProgress if activity.log == SIMULATED => {
                now < activity.started_at + timings.deploy_ms
                    || self.service_fault(&service.uuid, |fault| {
                        matches!(fault, Fault::DeployNeverFinishes { .. })
                    })
            }
            ActivityStatus::Error if activity.log.starts_with(SIMULATED) => {
                now < activity.started_at + timings.deploy_ms
            }
            ActivityStatus::Queued | ActivityStatus::InProgress => true,
            ActivityStatus::Finished | ActivityStatus::Error | ActivityStatus::Cancelled => false,
        }
    }

    /// Whether the simulated start failed (`DeployFails`, or an image the engine lacks).
    fn start_failed(&self, service: &ServiceRecord) -> bool {
        service.activity.as_ref().is_some_and(|activity| activity.status == ActivityStatus::Error)
            || self.service_fault(&service.uuid, |fault| matches!(fault, Fault::DeployFails { .. }))
    }

    /// Whether the simulated containers exist: `StopService` removes them (`docker rm -f`) and a
    /// failed pull never creates them.
    pub(crate) fn containers_exist(&self, service: &ServiceRecord) -> bool {
        service.started_at.is_some()
            && !service
                .activity
                .as_ref()
                .is_some_and(|activity| activity.status == ActivityStatus::Error)
    }

    /// One container's Docker status string and restart count.
    pub(crate) fn container_status(
        &self,
        service: &ServiceRecord,
        container: &ContainerRecord,
        now: u64,
        timings: Timings,
    ) -> ContainerStatus {
        let status = |text: &str, restart_count: u32| ContainerStatus {
            status: text.to_owned(),
            restart_count,
        };
        let Some(started) = service.started_at else { return status("exited", 0) };
        let started = service.activity.as_ref().map_or(started, |activity| activity.started_at);
        if self.activity_running(service, now, timings) {
            return status("created:unknown", 0);
        }
        if self.start_failed(service) {
            return status("exited", 0);
        }
        let fault = self
            .faults
            .iter()
            .find_map(|fault| fault.container_fault(&service.uuid, &container.name));
        match fault {
            Some(ContainerFault::Unhealthy) => return status("running:unhealthy", 0),
            Some(ContainerFault::Exited) => return status("exited", 0),
            Some(ContainerFault::OomKilled) => return status("exited", 1),
            Some(ContainerFault::RestartLoop) => {
                let restarts =
                    u32::try_from((now.saturating_sub(started)) / 1000).unwrap_or(u32::MAX).max(1);
                return status("restarting:unknown", restarts);
            }
            None => {}
        }
        if !container.has_healthcheck {
            return status("running:unknown", 0);
        }
        if now < started + timings.deploy_ms + timings.healthcheck_ms {
            return status("running:starting", 0);
        }
        status("running:healthy", 0)
    }

    /// The sub-resource (`service_applications.status`) string as stored, or as the status job
    /// would store it now when statuses are live.
    pub(crate) fn sub_status(
        &self,
        service: &ServiceRecord,
        container: &ContainerRecord,
        now: u64,
        timings: Timings,
    ) -> String {
        if !timings.live_status {
            return container.status.clone().unwrap_or_else(|| "exited".to_owned());
        }
        self.observed_sub_status(service, container, now, timings)
    }

    /// What `GetContainersStatus` stores for a simulated container now: its `State.Status:Health`
    /// aggregated with `preserveRestarting: true`, `:excluded` when excluded.
    pub(crate) fn observed_sub_status(
        &self,
        service: &ServiceRecord,
        container: &ContainerRecord,
        now: u64,
        timings: Timings,
    ) -> String {
        let status = self.container_status(service, container, now, timings);
        let aggregated = aggregate(std::slice::from_ref(&status), true);
        if container.excluded { excluded_suffix(Some(&aggregated)) } else { aggregated }
    }

    /// `Service::getStatusAttribute`.
    pub(crate) fn service_status(
        &self,
        service: &ServiceRecord,
        now: u64,
        timings: Timings,
    ) -> String {
        if self.activity_running(service, now, timings) {
            return "starting:unhealthy".to_owned();
        }
        let mut included = Vec::with_capacity(service.containers.len());
        let mut excluded = Vec::new();
        for container in &service.containers {
            let sub = ContainerStatus {
                status: self.sub_status(service, container, now, timings),
                restart_count: 0,
            };
            if container.excluded { excluded.push(sub) } else { included.push(sub) }
        }
        if included.is_empty() && !excluded.is_empty() {
            let stripped: Vec<ContainerStatus> = excluded
                .into_iter()
                .map(|status| ContainerStatus {
                    status: status.status.trim_end_matches(":excluded").to_owned(),
                    restart_count: 0,
                })
                .collect();
            return excluded_suffix(Some(&aggregate(&stripped, false)));
        }
        aggregate(&included, false)
    }

    pub(crate) fn container_logs(
        &self,
        service: &ServiceRecord,
        container: &ContainerRecord,
        lines: usize,
    ) -> String {
        let oom = self.faults.iter().any(|fault| {
            fault.container_fault(&service.uuid, &container.name) == Some(ContainerFault::OomKilled)
        });
        let mut log: Vec<String> = vec![
            format!(
                "[sandbox] container {}-{} created from {}",
                container.name, service.uuid, container.image
            ),
            format!("[sandbox] container {}-{} started", container.name, service.uuid),
        ];
        if oom {
            log.push(format!(
                "[sandbox] container {}-{} was OOMKilled, exit code 137",
                container.name, service.uuid
            ));
        }
        let skip = log.len().saturating_sub(lines);
        log.into_iter().skip(skip).collect::<Vec<_>>().join("\n")
    }
}

fn fault_service(fault: &Fault) -> Option<&str> {
    match fault {
        Fault::Latency { service_uuid, .. }
        | Fault::RateLimitStorm { service_uuid, .. }
        | Fault::ServerError { service_uuid, .. }
        | Fault::DropConnection { service_uuid, .. }
        | Fault::DeployNeverFinishes { service_uuid }
        | Fault::DeployFails { service_uuid }
        | Fault::ContainerUnhealthy { service_uuid, .. }
        | Fault::ContainerExited { service_uuid, .. }
        | Fault::ContainerOomKilled { service_uuid, .. }
        | Fault::ContainerRestartLoop { service_uuid, .. }
        | Fault::BackupFails { service_uuid }
        | Fault::BackupEmpty { service_uuid } => service_uuid.as_deref(),
        Fault::ServerUnreachable { .. } => None,
    }
}

pub(crate) fn backup_fault(faults: &[Fault], service_uuid: &str) -> (bool, bool) {
    let fails = faults.iter().any(|fault| matches!(fault, Fault::BackupFails { service_uuid: target } if matches_service(target, service_uuid)));
    let empty = faults.iter().any(|fault| matches!(fault, Fault::BackupEmpty { service_uuid: target } if matches_service(target, service_uuid)));
    (fails, empty)
}

// ------------------------------------------------------------------ JSON views

/// `GET /services` item; serialized directly (no `Value` tree) so 10,000 services stay fast.
#[derive(Serialize)]
pub(crate) struct ServiceListItem<'a> {
    pub uuid: &'a str,
    pub name: &'a str,
    pub environment_id: u64,
    pub server_id: u64,
    pub description: Option<&'a str>,
    pub destination_type: &'static str,
    pub destination_id: u64,
    pub connect_to_docker_network: bool,
    pub is_container_label_escape_enabled: bool,
    pub is_container_label_readonly_enabled: bool,
    pub config_hash: String,
    pub service_type: Option<&'a str>,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
    pub server_status: bool,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_compose_raw: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_compose: Option<&'a str>,
}

impl World {
    pub(crate) fn service_list_item<'a>(
        &self,
        service: &'a ServiceRecord,
        now: u64,
        timings: Timings,
        sensitive: bool,
    ) -> ServiceListItem<'a> {
        ServiceListItem {
            uuid: &service.uuid,
            name: &service.name,
            environment_id: service.environment_id,
            server_id: service.server_id,
            description: service.description.as_deref(),
            destination_type: "App\\Models\\StandaloneDocker",
            destination_id: service.destination_id,
            connect_to_docker_network: service.connect_to_docker_network,
            is_container_label_escape_enabled: service.is_container_label_escape_enabled,
            is_container_label_readonly_enabled: true,
            config_hash: config_hash(&service.rendered),
            service_type: None,
            created_at: timestamp(service.created_at),
            updated_at: timestamp(service.updated_at),
            deleted_at: None,
            server_status: self.server_reachable(&service.server_uuid),
            status: self.service_status(service, now, timings),
            docker_compose_raw: sensitive.then_some(service.raw.as_str()),
            docker_compose: sensitive.then_some(service.rendered.as_str()),
        }
    }

    pub(crate) fn service_json(
        &self,
        service: &ServiceRecord,
        now: u64,
        timings: Timings,
        sensitive: bool,
    ) -> Value {
        let mut value =
            serde_json::to_value(self.service_list_item(service, now, timings, sensitive))
                .unwrap_or(Value::Null);
        let sub = |container: &ContainerRecord| {
            let mut item = json!({
                "uuid": container.uuid,
                "name": container.name,
                "human_name": null,
                "description": null,
                "image": container.image,
                "status": self.sub_status(service, container, now, timings),
                "exclude_from_status": container.excluded,
                "is_log_drain_enabled": false,
                "is_include_timestamps": false,
                "service_id": service.id,
                "last_online_at": timestamp(service.updated_at),
                "is_migrated": false,
                "created_at": timestamp(service.created_at),
                "updated_at": timestamp(service.updated_at),
                "deleted_at": null,
            });
            if let Some(object) = item.as_object_mut() {
                if container.is_database {
                    object.insert("is_public".into(), json!(false));
                    object.insert("public_port".into(), Value::Null);
                } else {
                    object.insert("fqdn".into(), json!(container.fqdn));
                    object.insert("ports".into(), Value::Null);
                    object.insert("exposes".into(), Value::Null);
                    object.insert("required_fqdn".into(), json!(false));
                    object.insert("is_gzip_enabled".into(), json!(true));
                    object.insert("is_stripprefix_enabled".into(), json!(true));
                    object.insert("is_force_https_enabled".into(), json!(true));
                }
            }
            item
        };
        let applications: Vec<Value> =
            service.containers.iter().filter(|container| !container.is_database).map(sub).collect();
        let databases: Vec<Value> =
            service.containers.iter().filter(|container| container.is_database).map(sub).collect();
        if let Some(object) = value.as_object_mut() {
            object.insert("applications".into(), Value::Array(applications));
            object.insert("databases".into(), Value::Array(databases));
        }
        value
    }
}

pub(crate) fn env_json(service: &ServiceRecord, env: &EnvRecord, sensitive: bool) -> Value {
    let mut value = json!({
        "uuid": env.uuid,
        "key": env.key,
        "is_literal": env.is_literal,
        "is_multiline": env.is_multiline,
        "is_preview": false,
        "is_runtime": true,
        "is_buildtime": false,
        "is_shared": false,
        "is_shown_once": env.is_shown_once,
        "is_required": env.is_required,
        "is_really_required": env.is_required && env.value.as_deref().is_none_or(str::is_empty),
        "is_coolify": false,
        "comment": env.comment,
        "version": "4.3.11",
        "resourceable_type": "App\\Models\\Service",
        "resourceable_id": service.id,
        "created_at": timestamp(env.created_at),
        "updated_at": timestamp(env.updated_at),
    });
    if sensitive
        && !env.is_shown_once
        && let Some(object) = value.as_object_mut()
    {
        let text = env.value.clone().unwrap_or_default();
        object.insert("value".into(), json!(text));
        object.insert("real_value".into(), json!(text));
    }
    value
}

/// A cheap stable 32-hex-digit hash for `config_hash` (Coolify uses md5; not security relevant).
fn config_hash(text: &str) -> String {
    let mut low: u64 = 0xcbf2_9ce4_8422_2325;
    let mut high: u64 = 0x8422_2325_cbf2_9ce4;
    for byte in text.bytes() {
        low = (low ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01B3);
        high = (high ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01B3).rotate_left(5);
    }
    format!("{low:016x}{high:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_look_like_laravel() {
        assert_eq!(timestamp(1_700_000_000_123), "2023-11-14T22:13:20.123000Z");
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(timestamp(951_782_400_000), "2000-02-29T00:00:00.000000Z");
        assert_eq!(timestamp(4_102_444_799_999), "2099-12-31T23:59:59.999000Z");
    }

    #[test]
    fn uuids_are_24_lowercase_alphanumerics() {
        let uuid = new_uuid();
        assert_eq!(uuid.len(), 24);
        assert!(
            uuid.chars()
                .all(|character| character.is_ascii_lowercase() || character.is_ascii_digit())
        );
    }
}

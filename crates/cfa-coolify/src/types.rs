//! Our typed view of Coolify's requests and answers. Answers deserialize leniently (unknown
//! fields ignored, missing optional fields defaulted) because Coolify's JSON carries far more
//! than we read and differs between versions.

use serde::Deserialize;

use crate::SecretValue;

/// The team the token belongs to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Team {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// A server (`GET /servers`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Server {
    pub uuid: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub ip: String,
    #[serde(default)]
    pub is_reachable: Option<bool>,
    #[serde(default)]
    pub is_usable: Option<bool>,
    #[serde(default)]
    pub settings: Option<ServerSettings>,
}

impl Server {
    /// Coolify reports reachability at the top level on list answers and in `settings`.
    pub fn is_reachable(&self) -> bool {
        self.is_reachable
            .or_else(|| self.settings.as_ref().and_then(|settings| settings.is_reachable))
            .unwrap_or(false)
    }

    pub fn is_usable(&self) -> bool {
        self.is_usable
            .or_else(|| self.settings.as_ref().and_then(|settings| settings.is_usable))
            .unwrap_or(false)
    }

    pub fn is_build_server(&self) -> bool {
        self.settings.as_ref().and_then(|settings| settings.is_build_server).unwrap_or(false)
    }

    pub fn wildcard_domain(&self) -> Option<&str> {
        self.settings.as_ref().and_then(|settings| settings.wildcard_domain.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ServerSettings {
    #[serde(default)]
    pub is_reachable: Option<bool>,
    #[serde(default)]
    pub is_usable: Option<bool>,
    #[serde(default)]
    pub is_build_server: Option<bool>,
    #[serde(default)]
    pub wildcard_domain: Option<String>,
}

/// One resource on a server (`GET /servers/{uuid}/resources`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ServerResource {
    pub uuid: String,
    pub name: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    #[serde(default)]
    pub status: String,
}

/// A Docker network destination on a server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Destination {
    pub uuid: String,
    pub name: String,
    pub network: String,
    #[serde(rename = "type", default)]
    pub destination_type: String,
    pub server_uuid: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Project {
    pub uuid: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Present on `GET /projects/{uuid}` only.
    #[serde(default)]
    pub environments: Vec<Environment>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Environment {
    pub uuid: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// An environment with its services (`GET /projects/{uuid}/{environment}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EnvironmentDetails {
    pub uuid: String,
    pub name: String,
    #[serde(default)]
    pub services: Vec<ServiceSummary>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateProjectRequest {
    pub name: String,
    pub description: Option<String>,
}

/// How to pick the environment of a new service: Coolify looks a name up first, then a uuid.
#[derive(Debug, Clone, PartialEq)]
pub enum EnvironmentRef {
    Name(String),
    Uuid(String),
}

/// A domain for one compose service: `url` is a comma-separated list of `http(s)://host:port`,
/// the port being the container's.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceUrl {
    pub compose_service: String,
    pub url: String,
}

/// `POST /services` from our own compose YAML (sent as standard padded base64).
#[derive(Debug, Clone, PartialEq)]
pub struct CreateServiceRequest {
    pub project_uuid: String,
    pub environment: EnvironmentRef,
    pub server_uuid: String,
    pub destination_uuid: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub compose_yaml: String,
    pub urls: Vec<ServiceUrl>,
    pub instant_deploy: bool,
    pub force_domain_override: bool,
}

/// Coolify's answer to create or update: the service and its domains.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ServiceDomains {
    pub uuid: String,
    #[serde(default)]
    pub domains: Vec<String>,
}

/// `PATCH /services/{uuid}`: only the set fields are sent (Coolify rejects an empty body).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateServiceRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub compose_yaml: Option<String>,
    pub urls: Option<Vec<ServiceUrl>>,
    pub force_domain_override: Option<bool>,
    pub instant_deploy: Option<bool>,
    pub connect_to_docker_network: Option<bool>,
}

/// A service as `GET /services` lists it (no sub-resources).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ServiceSummary {
    pub uuid: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The aggregate status string, e.g. `running:healthy`, `degraded:unhealthy`, `exited`.
    #[serde(default)]
    pub status: String,
    /// Whether Coolify considers the server functional.
    #[serde(default)]
    pub server_status: bool,
}

/// A service with its containers (`GET /services/{uuid}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Service {
    pub uuid: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub server_status: bool,
    #[serde(default)]
    pub applications: Vec<ServiceContainer>,
    #[serde(default)]
    pub databases: Vec<ServiceContainer>,
    /// Only with a `read:sensitive` token.
    #[serde(default)]
    pub docker_compose_raw: Option<String>,
    #[serde(default)]
    pub docker_compose: Option<String>,
    #[serde(default)]
    pub connect_to_docker_network: bool,
}

/// One compose service of a Coolify service (a `ServiceApplication` or `ServiceDatabase`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ServiceContainer {
    pub uuid: String,
    /// The compose service name.
    pub name: String,
    #[serde(default)]
    pub human_name: Option<String>,
    #[serde(default)]
    pub fqdn: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub exclude_from_status: bool,
}

/// `DELETE /services/{uuid}` flags; Coolify defaults every one to true.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteServiceOptions {
    pub delete_configurations: bool,
    pub delete_volumes: bool,
    pub docker_cleanup: bool,
    pub delete_connected_networks: bool,
}

impl Default for DeleteServiceOptions {
    fn default() -> Self {
        Self {
            delete_configurations: true,
            delete_volumes: true,
            docker_cleanup: true,
            delete_connected_networks: true,
        }
    }
}

/// `docker_cleanup` on stop: Coolify's default (true) has pruned volumes of stopped services
/// (coollabsio/coolify#6112), so callers always choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DockerCleanup {
    Run,
    Skip,
}

/// Coolify's plain `{"message": ...}` acknowledgement.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Acknowledgement {
    #[serde(default)]
    pub message: String,
}

/// A service environment variable. `value` is present only with `read:sensitive`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EnvironmentVariable {
    pub uuid: String,
    pub key: String,
    #[serde(default)]
    pub value: Option<SecretValue>,
    #[serde(default)]
    pub real_value: Option<SecretValue>,
    #[serde(default)]
    pub is_literal: bool,
    #[serde(default)]
    pub is_multiline: bool,
    #[serde(default)]
    pub is_shown_once: bool,
    #[serde(default)]
    pub is_required: bool,
    #[serde(default)]
    pub comment: Option<String>,
}

/// One item of a bulk upsert (`PATCH /services/{uuid}/envs/bulk`), keyed by `key`.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvironmentVariableUpsert {
    pub key: String,
    pub value: SecretValue,
    pub is_literal: bool,
    pub is_multiline: bool,
    pub is_shown_once: bool,
}

impl EnvironmentVariableUpsert {
    pub fn new(key: impl Into<String>, value: SecretValue) -> Self {
        Self { key: key.into(), value, is_literal: true, is_multiline: false, is_shown_once: false }
    }
}

/// The storages of a service's containers.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ServiceStorages {
    #[serde(default, rename = "persistent_storages")]
    pub persistent: Vec<PersistentStorage>,
    #[serde(default, rename = "file_storages")]
    pub files: Vec<FileStorage>,
}

/// A named Docker volume (`LocalPersistentVolume`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PersistentStorage {
    pub uuid: String,
    /// The Docker volume name, e.g. `<service uuid>_data`.
    pub name: String,
    pub mount_path: String,
    #[serde(default)]
    pub host_path: Option<String>,
    /// The container (service application or database) it belongs to.
    #[serde(default)]
    pub resource_uuid: Option<String>,
}

/// A bind-mounted file or directory (`LocalFileVolume`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FileStorage {
    pub uuid: String,
    pub fs_path: String,
    pub mount_path: String,
    #[serde(default)]
    pub is_directory: bool,
    #[serde(default)]
    pub resource_uuid: Option<String>,
}

/// `PUT /services/{uuid}/storages/{storage_uuid}/backups`.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupScheduleRequest {
    /// Cron (`0 2 * * *`) or `@daily`-style.
    pub frequency: String,
    pub enabled: bool,
    /// `Some(uuid)` uploads to that S3 storage.
    pub s3_storage_uuid: Option<String>,
    pub disable_local_backup: bool,
    pub stop_during_backup: bool,
    pub retention_amount_locally: u32,
    pub retention_days_locally: u32,
    pub retention_amount_s3: u32,
    pub retention_days_s3: u32,
    pub timeout_seconds: Option<u32>,
}

impl BackupScheduleRequest {
    pub fn daily(retention_amount: u32) -> Self {
        Self {
            frequency: "0 2 * * *".to_owned(),
            enabled: true,
            s3_storage_uuid: None,
            disable_local_backup: false,
            stop_during_backup: false,
            retention_amount_locally: retention_amount,
            retention_days_locally: 0,
            retention_amount_s3: retention_amount,
            retention_days_s3: 0,
            timeout_seconds: None,
        }
    }
}

/// The stored schedule. `created` tells a new schedule (201) from a replaced one (200).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BackupSchedule {
    pub uuid: String,
    pub storage_uuid: String,
    /// `persistent` or `directory`.
    pub storage_type: String,
    pub frequency: String,
    pub enabled: bool,
    pub save_s3: bool,
    #[serde(default)]
    pub s3_storage_uuid: Option<String>,
    pub retention_amount_locally: i64,
    pub retention_days_locally: i64,
    pub retention_amount_s3: i64,
    pub retention_days_s3: i64,
    /// Seconds a run may take. Since 4.3.9 `VolumeBackupsController::persistSchedule` stores it
    /// only when the request sends it, and answers `"timeout": null` otherwise.
    #[serde(default)]
    pub timeout: Option<i64>,
    #[serde(skip)]
    pub created: bool,
}

/// One of the team's S3 storages (`GET /s3-storages/{uuid}`, 4.3).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct S3Storage {
    pub uuid: String,
    pub name: String,
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Coolify schedules only upload to a storage it validated.
    pub is_usable: bool,
}

/// `POST .../backups/run`: the run was queued for the schedule `uuid`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BackupRunQueued {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub uuid: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_schedule_answer_without_a_timeout_decodes() {
        // The 201 body of Coolify >= 4.3.9 when the request sent no timeout.
        let body = serde_json::json!({
            "uuid": "b1", "storage_uuid": "s1", "storage_type": "persistent",
            "frequency": "0 2 * * *", "enabled": true, "save_s3": false,
            "s3_storage_uuid": null, "retention_amount_locally": 7, "retention_days_locally": 0,
            "retention_amount_s3": 7, "retention_days_s3": 0, "timeout": null
        });
        let schedule: BackupSchedule = serde_json::from_value(body).expect("decodes");
        assert_eq!(schedule.timeout, None);
    }
}

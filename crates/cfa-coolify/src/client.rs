//! The client: transport (budget, retries, error mapping, version gate) and one method per
//! Coolify operation, named after Coolify's operation id in snake case.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rand::Rng as _;
use reqwest::{Method, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

use crate::error::kind_from_response;
use crate::types::{
    Acknowledgement, BackupRunQueued, BackupSchedule, BackupScheduleRequest, CreateProjectRequest,
    CreateServiceRequest, DeleteServiceOptions, Destination, DockerCleanup, Environment,
    EnvironmentDetails, EnvironmentRef, EnvironmentVariable, EnvironmentVariableUpsert, Project,
    S3Storage, Server, ServerResource, Service, ServiceDomains, ServiceStorages, ServiceSummary,
    ServiceUrl, Team, UpdateServiceRequest,
};
use crate::version::{Feature, parse_coolify_version};
use crate::{CoolifyConfig, CoolifyError, CoolifyErrorKind, Lane, RateBudget};

/// A Coolify API client. Clones share the connection pool, the rate budget and the version.
#[derive(Debug, Clone)]
pub struct CoolifyClient {
    inner: Arc<ClientInner>,
}

#[derive(Debug)]
struct ClientInner {
    http: reqwest::Client,
    /// `<root>/api` without a trailing slash.
    api_root: String,
    authorization: header::HeaderValue,
    budget: RateBudget,
    config: CoolifyConfig,
    version: OnceCell<semver::Version>,
}

/// One HTTP call as the transport sees it.
struct Call {
    operation: &'static str,
    method: Method,
    /// Path below `/api`, e.g. `/v1/services`.
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Value>,
    /// Safe to repeat after a 5xx or a transport error (GET, PUT, DELETE, upserts).
    idempotent: bool,
}

impl Call {
    fn new(operation: &'static str, method: Method, path: String) -> Self {
        let idempotent = matches!(method, Method::GET | Method::PUT | Method::DELETE);
        Self { operation, method, path, query: Vec::new(), body: None, idempotent }
    }

    fn query(mut self, key: &'static str, value: impl ToString) -> Self {
        self.query.push((key, value.to_string()));
        self
    }

    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }
}

/// A successful answer.
struct Answer {
    status: StatusCode,
    bytes: Vec<u8>,
    url: String,
    operation: &'static str,
}

impl Answer {
    fn json<T: DeserializeOwned>(&self) -> Result<T, CoolifyError> {
        serde_json::from_slice(&self.bytes).map_err(|error| {
            CoolifyError::new(
                self.operation,
                &self.url,
                CoolifyErrorKind::Decode { detail: error.to_string() },
            )
            .with_status(self.status.as_u16(), None)
            .with_source(error)
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Path segments are uuids and names we got from Coolify or the caller; encode them anyway.
fn segment(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>().replace('+', "%20")
}

impl CoolifyClient {
    /// Builds a client; fails only on an unusable base URL or TLS setup.
    pub fn new(config: CoolifyConfig) -> Result<Self, CoolifyError> {
        let mut root = config.base_url.trim().trim_end_matches('/').to_owned();
        for suffix in ["/api/v1", "/api"] {
            if let Some(stripped) = root.strip_suffix(suffix) {
                root = stripped.to_owned();
                break;
            }
        }
        let api_root = format!("{root}/api");
        let invalid = |detail: String| {
            CoolifyError::new("new", &api_root, CoolifyErrorKind::Transport { detail })
        };
        let parsed = url::Url::parse(&api_root)
            .map_err(|error| invalid(format!("invalid base url: {error}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("the base url must be http or https".to_owned()));
        }
        let mut authorization =
            header::HeaderValue::from_str(&format!("Bearer {}", config.token.expose())).map_err(
                |_| invalid("the token contains characters not allowed in a header".to_owned()),
            )?;
        authorization.set_sensitive(true);
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("cfa-coolify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| invalid(format!("cannot build the HTTP client: {error}")))?;
        let budget = RateBudget::new(config.requests_per_minute, config.rate_window);
        Ok(Self {
            inner: Arc::new(ClientInner {
                http,
                api_root,
                authorization,
                budget,
                config,
                version: OnceCell::new(),
            }),
        })
    }

    /// The shared rate budget (for tests and metrics).
    pub fn rate_budget(&self) -> &RateBudget {
        &self.inner.budget
    }

    // ---------------------------------------------------------------- transport

    async fn send(&self, call: Call) -> Result<Answer, CoolifyError> {
        let url = format!("{}{}", self.inner.api_root, call.path);
        let config = &self.inner.config;
        let mut attempt: u32 = 0;
        loop {
            let lane = match call.method {
                Method::GET => Lane::Read,
                _ => Lane::Mutation,
            };
            self.inner.budget.acquire(lane).await;
            let outcome = self.send_once(&call, &url).await;
            let retry_delay = match outcome {
                Ok(answer) => return Ok(answer),
                Err(Failure { error, retry_after }) => {
                    let retryable = match &error.kind {
                        // The throttle answers before any handler runs: always safe to repeat.
                        CoolifyErrorKind::RateLimited { .. } => true,
                        CoolifyErrorKind::Server { .. } => call.idempotent,
                        CoolifyErrorKind::Transport { .. } => call.idempotent || error.never_sent,
                        _ => false,
                    };
                    if !retryable || attempt >= config.max_retries {
                        return Err(error);
                    }
                    let delay = match retry_after {
                        Some(delay) => {
                            self.inner.budget.pause_for(delay);
                            delay
                        }
                        None => self.backoff(attempt),
                    };
                    tracing::debug!(operation = call.operation, attempt, ?delay, kind = %error.kind, "retrying coolify call");
                    delay
                }
            };
            attempt += 1;
            tokio::time::sleep(retry_delay).await;
        }
    }

    /// Exponential backoff with jitter in [d/2, d].
    fn backoff(&self, attempt: u32) -> Duration {
        let config = &self.inner.config;
        let exponential = config.retry_base_delay.saturating_mul(2u32.saturating_pow(attempt));
        let capped = exponential.min(config.max_retry_delay);
        let half = capped / 2;
        let jitter = rand::rng().random_range(0.0..=1.0);
        half + half.mul_f64(jitter)
    }

    async fn send_once(&self, call: &Call, url: &str) -> Result<Answer, Failure> {
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), url)
            .header(header::ACCEPT, "application/json")
            .header(header::AUTHORIZATION, self.inner.authorization.clone());
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let transport = |error: reqwest::Error, status: Option<u16>| {
            let detail = if error.is_timeout() {
                "the request timed out".to_owned()
            } else if error.is_connect() {
                "could not connect".to_owned()
            } else if error.is_body() || error.is_decode() {
                "the connection dropped while reading the answer".to_owned()
            } else {
                "the request failed".to_owned()
            };
            let connect = error.is_connect();
            let mut failure =
                CoolifyError::new(call.operation, url, CoolifyErrorKind::Transport { detail });
            if let Some(status) = status {
                failure = failure.with_status(status, None);
            }
            // A refused connection means the request never left: even a POST may be repeated.
            failure.never_sent = connect && status.is_none();
            Failure { error: failure.with_source(error), retry_after: None }
        };
        let response = request.send().await.map_err(|error| transport(error, None))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(|seconds| Duration::from_secs(seconds).min(self.inner.config.max_retry_delay));
        let bytes =
            response.bytes().await.map_err(|error| transport(error, Some(status.as_u16())))?;
        if status.is_success() {
            return Ok(Answer {
                status,
                bytes: bytes.to_vec(),
                url: url.to_owned(),
                operation: call.operation,
            });
        }
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        let kind = kind_from_response(status.as_u16(), body.as_ref(), retry_after);
        let error = CoolifyError::new(call.operation, url, kind).with_status(status.as_u16(), body);
        Err(Failure {
            error,
            retry_after: if status == StatusCode::TOO_MANY_REQUESTS { retry_after } else { None },
        })
    }

    async fn get<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        path: String,
    ) -> Result<T, CoolifyError> {
        self.send(Call::new(operation, Method::GET, path)).await?.json()
    }

    // ---------------------------------------------------------------- version gate

    /// Reads `/version` once per client and refuses `feature` on an older instance.
    pub async fn require(&self, feature: Feature) -> Result<(), CoolifyError> {
        let actual = self.version().await?;
        let required = feature.minimum();
        if actual < required {
            let url = format!("{}/v1/version", self.inner.api_root);
            return Err(CoolifyError::new(
                feature_operation(feature),
                &url,
                CoolifyErrorKind::VersionTooOld { feature: feature.name(), required, actual },
            ));
        }
        Ok(())
    }

    // ---------------------------------------------------------------- instance and team

    /// `GET /api/health` (no auth): Coolify answers plain `OK`.
    pub async fn healthcheck(&self) -> Result<(), CoolifyError> {
        let answer = self.send(Call::new("healthcheck", Method::GET, "/health".to_owned())).await?;
        if answer.text().trim() == "OK" {
            Ok(())
        } else {
            Err(CoolifyError::new(
                "healthcheck",
                &answer.url,
                CoolifyErrorKind::Decode {
                    detail: "the health endpoint did not answer OK".to_owned(),
                },
            ))
        }
    }

    /// `GET /version`, cached for the client's lifetime (also proves token and API access).
    pub async fn version(&self) -> Result<semver::Version, CoolifyError> {
        self.inner
            .version
            .get_or_try_init(|| async {
                let answer =
                    self.send(Call::new("version", Method::GET, "/v1/version".to_owned())).await?;
                let text = answer.text();
                parse_coolify_version(&text).ok_or_else(|| {
                    CoolifyError::new(
                        "version",
                        &answer.url,
                        CoolifyErrorKind::Decode {
                            detail: "the version is not a semantic version".to_owned(),
                        },
                    )
                })
            })
            .await
            .cloned()
    }

    /// `GET /team`: the team the token is bound to.
    pub async fn get_token_team(&self) -> Result<Team, CoolifyError> {
        self.get("get_token_team", "/v1/team".to_owned()).await
    }

    // ---------------------------------------------------------------- servers

    pub async fn list_servers(&self) -> Result<Vec<Server>, CoolifyError> {
        self.get("list_servers", "/v1/servers".to_owned()).await
    }

    pub async fn get_server_by_uuid(&self, server_uuid: &str) -> Result<Server, CoolifyError> {
        self.get("get_server_by_uuid", format!("/v1/servers/{}", segment(server_uuid))).await
    }

    pub async fn get_resources_by_server_uuid(
        &self,
        server_uuid: &str,
    ) -> Result<Vec<ServerResource>, CoolifyError> {
        self.get(
            "get_resources_by_server_uuid",
            format!("/v1/servers/{}/resources", segment(server_uuid)),
        )
        .await
    }

    pub async fn list_destinations(&self) -> Result<Vec<Destination>, CoolifyError> {
        self.require(Feature::Destinations).await?;
        self.get("list_destinations", "/v1/destinations".to_owned()).await
    }

    pub async fn list_server_destinations(
        &self,
        server_uuid: &str,
    ) -> Result<Vec<Destination>, CoolifyError> {
        self.require(Feature::Destinations).await?;
        self.get(
            "list_server_destinations",
            format!("/v1/servers/{}/destinations", segment(server_uuid)),
        )
        .await
    }

    // ---------------------------------------------------------------- projects

    pub async fn list_projects(&self) -> Result<Vec<Project>, CoolifyError> {
        self.get("list_projects", "/v1/projects".to_owned()).await
    }

    /// `POST /projects`; Coolify also creates the `production` environment. Returns the uuid.
    pub async fn create_project(
        &self,
        request: &CreateProjectRequest,
    ) -> Result<String, CoolifyError> {
        let mut body = Map::new();
        body.insert("name".into(), json!(request.name));
        if let Some(description) = &request.description {
            body.insert("description".into(), json!(description));
        }
        let call = Call::new("create_project", Method::POST, "/v1/projects".to_owned())
            .body(Value::Object(body));
        let created: CreatedUuid = self.send(call).await?.json()?;
        Ok(created.uuid)
    }

    pub async fn get_project_by_uuid(&self, project_uuid: &str) -> Result<Project, CoolifyError> {
        self.get("get_project_by_uuid", format!("/v1/projects/{}", segment(project_uuid))).await
    }

    /// Refused with 400 while the project still has resources (service deletion is async).
    pub async fn delete_project_by_uuid(
        &self,
        project_uuid: &str,
    ) -> Result<Acknowledgement, CoolifyError> {
        let call = Call::new(
            "delete_project_by_uuid",
            Method::DELETE,
            format!("/v1/projects/{}", segment(project_uuid)),
        );
        self.send(call).await?.json()
    }

    pub async fn get_environments(
        &self,
        project_uuid: &str,
    ) -> Result<Vec<Environment>, CoolifyError> {
        self.get("get_environments", format!("/v1/projects/{}/environments", segment(project_uuid)))
            .await
    }

    /// Returns the new environment's uuid (409 if the name exists).
    pub async fn create_environment(
        &self,
        project_uuid: &str,
        name: &str,
    ) -> Result<String, CoolifyError> {
        let call = Call::new(
            "create_environment",
            Method::POST,
            format!("/v1/projects/{}/environments", segment(project_uuid)),
        )
        .body(json!({ "name": name }));
        let created: CreatedUuid = self.send(call).await?.json()?;
        Ok(created.uuid)
    }

    pub async fn get_environment_by_name_or_uuid(
        &self,
        project_uuid: &str,
        environment_name_or_uuid: &str,
    ) -> Result<EnvironmentDetails, CoolifyError> {
        let path =
            format!("/v1/projects/{}/{}", segment(project_uuid), segment(environment_name_or_uuid));
        self.get("get_environment_by_name_or_uuid", path).await
    }

    // ---------------------------------------------------------------- services

    /// `POST /services` with `docker_compose_raw` as standard padded base64.
    pub async fn create_service(
        &self,
        request: &CreateServiceRequest,
    ) -> Result<ServiceDomains, CoolifyError> {
        self.require(Feature::ComposeRawServices).await?;
        if !request.urls.is_empty() || request.force_domain_override {
            self.require(Feature::ServiceUrls).await?;
        }
        let mut body = Map::new();
        body.insert("project_uuid".into(), json!(request.project_uuid));
        match &request.environment {
            EnvironmentRef::Name(name) => body.insert("environment_name".into(), json!(name)),
            EnvironmentRef::Uuid(uuid) => body.insert("environment_uuid".into(), json!(uuid)),
        };
        body.insert("server_uuid".into(), json!(request.server_uuid));
        if let Some(destination_uuid) = &request.destination_uuid {
            body.insert("destination_uuid".into(), json!(destination_uuid));
        }
        body.insert("name".into(), json!(request.name));
        if let Some(description) = &request.description {
            body.insert("description".into(), json!(description));
        }
        body.insert("docker_compose_raw".into(), json!(encode_compose(&request.compose_yaml)));
        if !request.urls.is_empty() {
            body.insert("urls".into(), urls_json(&request.urls));
        }
        if request.force_domain_override {
            body.insert("force_domain_override".into(), json!(true));
        }
        body.insert("instant_deploy".into(), json!(request.instant_deploy));
        let call = Call::new("create_service", Method::POST, "/v1/services".to_owned())
            .body(Value::Object(body));
        self.send(call).await?.json()
    }

    pub async fn list_services(&self) -> Result<Vec<ServiceSummary>, CoolifyError> {
        self.get("list_services", "/v1/services".to_owned()).await
    }

    pub async fn get_service_by_uuid(&self, service_uuid: &str) -> Result<Service, CoolifyError> {
        self.get("get_service_by_uuid", format!("/v1/services/{}", segment(service_uuid))).await
    }

    /// `PATCH /services/{uuid}`: sends only the fields that are set (an empty body is a 400).
    pub async fn update_service_by_uuid(
        &self,
        service_uuid: &str,
        request: &UpdateServiceRequest,
    ) -> Result<ServiceDomains, CoolifyError> {
        let mut body = Map::new();
        if let Some(name) = &request.name {
            body.insert("name".into(), json!(name));
        }
        if let Some(description) = &request.description {
            body.insert("description".into(), json!(description));
        }
        if let Some(compose_yaml) = &request.compose_yaml {
            body.insert("docker_compose_raw".into(), json!(encode_compose(compose_yaml)));
        }
        if let Some(urls) = &request.urls {
            self.require(Feature::ServiceUrls).await?;
            body.insert("urls".into(), urls_json(urls));
        }
        if let Some(force) = request.force_domain_override {
            body.insert("force_domain_override".into(), json!(force));
        }
        if let Some(instant_deploy) = request.instant_deploy {
            body.insert("instant_deploy".into(), json!(instant_deploy));
        }
        if let Some(connect) = request.connect_to_docker_network {
            body.insert("connect_to_docker_network".into(), json!(connect));
        }
        // Same body, same result: safe to repeat unless it also deploys.
        let idempotent = request.instant_deploy != Some(true);
        let call = Call::new(
            "update_service_by_uuid",
            Method::PATCH,
            format!("/v1/services/{}", segment(service_uuid)),
        )
        .body(Value::Object(body))
        .idempotent(idempotent);
        self.send(call).await?.json()
    }

    /// `DELETE /services/{uuid}`: queued; the service stays visible until the job finishes.
    pub async fn delete_service_by_uuid(
        &self,
        service_uuid: &str,
        options: DeleteServiceOptions,
    ) -> Result<Acknowledgement, CoolifyError> {
        let call = Call::new(
            "delete_service_by_uuid",
            Method::DELETE,
            format!("/v1/services/{}", segment(service_uuid)),
        )
        .query("delete_configurations", options.delete_configurations)
        .query("delete_volumes", options.delete_volumes)
        .query("docker_cleanup", options.docker_cleanup)
        .query("delete_connected_networks", options.delete_connected_networks);
        self.send(call).await?.json()
    }

    /// 400 "Service is already running." when the status contains `running`.
    pub async fn start_service_by_uuid(
        &self,
        service_uuid: &str,
    ) -> Result<Acknowledgement, CoolifyError> {
        let call = Call::new(
            "start_service_by_uuid",
            Method::POST,
            format!("/v1/services/{}/start", segment(service_uuid)),
        );
        self.send(call).await?.json()
    }

    /// Always sends `docker_cleanup` (see [`DockerCleanup`]).
    pub async fn stop_service_by_uuid(
        &self,
        service_uuid: &str,
        docker_cleanup: DockerCleanup,
    ) -> Result<Acknowledgement, CoolifyError> {
        let call = Call::new(
            "stop_service_by_uuid",
            Method::POST,
            format!("/v1/services/{}/stop", segment(service_uuid)),
        )
        .query("docker_cleanup", docker_cleanup == DockerCleanup::Run);
        self.send(call).await?.json()
    }

    /// `latest = true` pulls images instead of stopping first.
    pub async fn restart_service_by_uuid(
        &self,
        service_uuid: &str,
        latest: bool,
    ) -> Result<Acknowledgement, CoolifyError> {
        let call = Call::new(
            "restart_service_by_uuid",
            Method::POST,
            format!("/v1/services/{}/restart", segment(service_uuid)),
        )
        .query("latest", latest);
        self.send(call).await?.json()
    }

    /// The last `lines` log lines of one compose service (400 if its container is not running).
    pub async fn get_service_logs_by_uuid(
        &self,
        service_uuid: &str,
        compose_service: &str,
        lines: u32,
    ) -> Result<String, CoolifyError> {
        let call = Call::new(
            "get_service_logs_by_uuid",
            Method::GET,
            format!("/v1/services/{}/logs", segment(service_uuid)),
        )
        .query("sub_service_name", compose_service)
        .query("lines", lines);
        let logs: Logs = self.send(call).await?.json()?;
        Ok(logs.logs)
    }

    // ---------------------------------------------------------------- service envs

    pub async fn list_envs_by_service_uuid(
        &self,
        service_uuid: &str,
    ) -> Result<Vec<EnvironmentVariable>, CoolifyError> {
        self.get(
            "list_envs_by_service_uuid",
            format!("/v1/services/{}/envs", segment(service_uuid)),
        )
        .await
    }

    /// `PATCH /services/{uuid}/envs/bulk`: upserts by key (idempotent). Apply with a restart.
    pub async fn update_envs_by_service_uuid(
        &self,
        service_uuid: &str,
        variables: &[EnvironmentVariableUpsert],
    ) -> Result<Vec<EnvironmentVariable>, CoolifyError> {
        let data: Vec<Value> = variables
            .iter()
            .map(|variable| {
                json!({
                    "key": variable.key,
                    "value": variable.value.expose(),
                    "is_literal": variable.is_literal,
                    "is_multiline": variable.is_multiline,
                    "is_shown_once": variable.is_shown_once,
                })
            })
            .collect();
        let call = Call::new(
            "update_envs_by_service_uuid",
            Method::PATCH,
            format!("/v1/services/{}/envs/bulk", segment(service_uuid)),
        )
        .body(json!({ "data": data }))
        .idempotent(true);
        self.send(call).await?.json()
    }

    // ---------------------------------------------------------------- storages and backups

    pub async fn list_storages_by_service_uuid(
        &self,
        service_uuid: &str,
    ) -> Result<ServiceStorages, CoolifyError> {
        self.get(
            "list_storages_by_service_uuid",
            format!("/v1/services/{}/storages", segment(service_uuid)),
        )
        .await
    }

    /// Creates or replaces the backup schedule of one storage (Coolify >= 4.3).
    pub async fn set_service_storage_backup_schedule(
        &self,
        service_uuid: &str,
        storage_uuid: &str,
        request: &BackupScheduleRequest,
    ) -> Result<BackupSchedule, CoolifyError> {
        self.require(Feature::StorageBackups).await?;
        let mut body = Map::new();
        body.insert("frequency".into(), json!(request.frequency));
        body.insert("enabled".into(), json!(request.enabled));
        body.insert("save_s3".into(), json!(request.s3_storage_uuid.is_some()));
        if let Some(s3) = &request.s3_storage_uuid {
            body.insert("s3_storage_uuid".into(), json!(s3));
            body.insert("disable_local_backup".into(), json!(request.disable_local_backup));
        }
        body.insert("stop_during_backup".into(), json!(request.stop_during_backup));
        body.insert("retention_amount_locally".into(), json!(request.retention_amount_locally));
        body.insert("retention_days_locally".into(), json!(request.retention_days_locally));
        body.insert("retention_amount_s3".into(), json!(request.retention_amount_s3));
        body.insert("retention_days_s3".into(), json!(request.retention_days_s3));
        if let Some(timeout) = request.timeout_seconds {
            body.insert("timeout".into(), json!(timeout));
        }
        let path = format!(
            "/v1/services/{}/storages/{}/backups",
            segment(service_uuid),
            segment(storage_uuid)
        );
        let answer = self
            .send(
                Call::new("set_service_storage_backup_schedule", Method::PUT, path)
                    .body(Value::Object(body)),
            )
            .await?;
        let mut schedule: BackupSchedule = answer.json()?;
        schedule.created = answer.status == StatusCode::CREATED;
        Ok(schedule)
    }

    /// Deletes the schedule and its archives (409 while a backup runs).
    pub async fn delete_service_storage_backup_schedule(
        &self,
        service_uuid: &str,
        storage_uuid: &str,
    ) -> Result<Acknowledgement, CoolifyError> {
        self.require(Feature::StorageBackups).await?;
        let path = format!(
            "/v1/services/{}/storages/{}/backups",
            segment(service_uuid),
            segment(storage_uuid)
        );
        self.send(Call::new("delete_service_storage_backup_schedule", Method::DELETE, path))
            .await?
            .json()
    }

    /// Queues one backup run now (the storage needs a schedule).
    pub async fn run_service_storage_backup(
        &self,
        service_uuid: &str,
        storage_uuid: &str,
    ) -> Result<BackupRunQueued, CoolifyError> {
        self.require(Feature::StorageBackups).await?;
        let path = format!(
            "/v1/services/{}/storages/{}/backups/run",
            segment(service_uuid),
            segment(storage_uuid)
        );
        self.send(Call::new("run_service_storage_backup", Method::POST, path)).await?.json()
    }

    /// One of the team's S3 storages (4.3; its key and secret are not read).
    pub async fn get_s3_storage_by_uuid(&self, uuid: &str) -> Result<S3Storage, CoolifyError> {
        self.require(Feature::StorageBackups).await?;
        self.get("get_s3_storage_by_uuid", format!("/v1/s3-storages/{}", segment(uuid))).await
    }
}

struct Failure {
    error: CoolifyError,
    retry_after: Option<Duration>,
}

fn feature_operation(feature: Feature) -> &'static str {
    match feature {
        Feature::ComposeRawServices => "create_service",
        Feature::ServiceUrls => "service_urls",
        Feature::Destinations => "list_destinations",
        Feature::StorageBackups => "service_storage_backups",
    }
}

/// Standard alphabet, `=` padding, no line breaks: what Coolify's `isBase64Encoded` round trip
/// accepts.
fn encode_compose(compose_yaml: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(compose_yaml.as_bytes())
}

fn urls_json(urls: &[ServiceUrl]) -> Value {
    Value::Array(
        urls.iter().map(|url| json!({ "name": url.compose_service, "url": url.url })).collect(),
    )
}

#[derive(serde::Deserialize)]
struct CreatedUuid {
    uuid: String,
}

#[derive(serde::Deserialize)]
struct Logs {
    #[serde(default)]
    logs: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_is_standard_padded_base64() {
        let encoded = encode_compose("services:\n  a:\n    image: x\n");
        assert!(encoded.ends_with('='), "{encoded}");
        assert!(!encoded.contains('\n'));
        let decoded = base64::engine::general_purpose::STANDARD.decode(&encoded).unwrap();
        assert_eq!(decoded, b"services:\n  a:\n    image: x\n");
    }

    #[test]
    fn base_url_suffixes_are_dropped() {
        for base in [
            "http://c.example",
            "http://c.example/",
            "http://c.example/api",
            "http://c.example/api/v1/",
        ] {
            let client =
                CoolifyClient::new(CoolifyConfig::new(base, crate::ApiToken::new("1|x"))).unwrap();
            assert_eq!(client.inner.api_root, "http://c.example/api");
        }
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(segment("abc123"), "abc123");
    }
}

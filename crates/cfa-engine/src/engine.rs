//! The executor: runs the planned steps against PocketBase and Coolify, records every outcome
//! and audits every mutation.
//!
//! Design notes:
//! - One per-stack lock around every operation on a stack, one per-tenant lock around "ensure
//!   project" (never two projects), one admission lock around "admit + create record" (capacity
//!   is not promised twice in this process). Across processes, PocketBase's unique
//!   (tenant_id, stack_name) index and its quota hook guard the record, and every Coolify
//!   project or service created is audited and settled against the other racers' (the oldest
//!   audited one wins, losers remove theirs: `engine/claims.rs`).
//! - Every step is idempotent; a rerun after a crash observes and plans only what is missing
//!   ([`crate::steps::plan_provision`]).
//! - Secrets go to Coolify's env API only (`is_literal`), are never stored in PocketBase (its
//!   `config` is the render's non-secret `config`) and never logged (we log env keys).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Instant;

use cfa_coolify::types::{
    CreateProjectRequest, CreateServiceRequest, EnvironmentRef, EnvironmentVariableUpsert,
    ServiceUrl, UpdateServiceRequest,
};
use cfa_coolify::{CoolifyClient, CoolifyError, CoolifyErrorKind, SecretValue};
use cfa_core::admission::{AdmissionRequest, ImageFootprint, TenantStanding, admit};
use cfa_core::health::{CoolifyState, CoolifyStatus};
use cfa_core::lifecycle::next;
use cfa_core::naming::{coolify_project_name, coolify_service_name};
use cfa_core::plan::BackupPolicy;
use cfa_core::{
    Resources, ServerCapacity, StackEvent, StackName, StackStatus, StartKind, TenantSlug,
};
use cfa_pocketbase::{
    AgentStack, AuditOutcome, NewAuditEntry, NewStack, PocketBaseClient, PocketBaseErrorKind,
    StackFilter, StackPatch, Tenant,
};
use cfa_templates::{Catalogue, RenderFailure, RenderRequest, RenderedStack, Template, render};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::error::{EngineError, Refusal, Subject};
use crate::settings::EngineSettings;
use crate::steps::{ProvisionObservation, Step, plan_provision};

mod claims;
mod delete;
mod domains;
mod read_only;
mod wait;
use claims::Created;
pub use delete::DeleteOptions;
pub use read_only::{DryRunAdmission, OperationDryRun, ProvisionDryRun, StackHealth};

/// The Coolify environment every stack lives in (Coolify creates it with the project).
const ENVIRONMENT: &str = "production";

/// What to provision. Parameters include secrets; its `Debug` prints only their names.
#[derive(Clone)]
pub struct ProvisionRequest {
    pub tenant: String,
    pub stack: String,
    pub template: String,
    pub parameters: BTreeMap<String, String>,
    /// An operator's `--server` (uuid or name): place there or refuse.
    pub preferred_server: Option<String>,
}

impl std::fmt::Debug for ProvisionRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvisionRequest")
            .field("tenant", &self.tenant)
            .field("stack", &self.stack)
            .field("template", &self.template)
            .field("parameters", &self.parameters.keys().collect::<Vec<_>>())
            .field("preferred_server", &self.preferred_server)
            .finish()
    }
}

/// Where a stack stands after an operation.
#[derive(Debug, Clone, PartialEq)]
pub struct StackOutcome {
    pub tenant: String,
    pub stack: String,
    pub record_id: String,
    pub status: StackStatus,
    pub project_uuid: Option<String>,
    pub service_uuid: Option<String>,
    pub domain: Option<String>,
    pub server_uuid: Option<String>,
    pub limits: Option<Resources>,
    /// For upgrades: whether anything had to change.
    pub changed: bool,
}

/// The engine. Cheap to clone; clones share locks and clients.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("settings", &self.inner.settings).finish_non_exhaustive()
    }
}

struct Inner {
    coolify: CoolifyClient,
    pocketbase: PocketBaseClient,
    catalogue: Catalogue,
    settings: EngineSettings,
    http: reqwest::Client,
    tenant_locks: StdMutex<HashMap<String, Arc<Mutex<()>>>>,
    stack_locks: StdMutex<HashMap<String, Arc<Mutex<()>>>>,
    admission_lock: Mutex<()>,
    /// Each server's destination for new services (one lookup per server and process).
    destinations: StdMutex<HashMap<String, Option<String>>>,
}

/// The record's `resource_limits` json. The Coolify server uuid is stored with the limits
/// because capacity accounting needs both together (the limits reserve room on that server)
/// and `agent_stacks` has no server field; the compose hash lets an upgrade skip an unchanged
/// PATCH. The images are kept so capacity can count each image once per server.
#[derive(Debug, Clone, PartialEq)]
struct RecordedLimits {
    server_uuid: String,
    limits: Resources,
    images: Vec<ImageFootprint>,
    compose_sha256: Option<String>,
}

impl RecordedLimits {
    fn to_json(&self) -> Value {
        let mut value = json!({
            "server_uuid": self.server_uuid,
            "cpus": self.limits.cpus(),
            "millicpus": self.limits.millicpus,
            "memory_mb": self.limits.memory_mb,
            "disk_mb": self.limits.disk_mb,
            "images": self
                .images
                .iter()
                .map(|footprint| json!({ "image": footprint.image, "disk_mb": footprint.disk_mb }))
                .collect::<Vec<_>>(),
        });
        if let Some(hash) = &self.compose_sha256 {
            value["compose_sha256"] = json!(hash);
        }
        value
    }

    fn from_json(value: &Value) -> Option<RecordedLimits> {
        let number = |key: &str| value.get(key).and_then(Value::as_u64).map(|n| n as u32);
        Some(RecordedLimits {
            server_uuid: value.get("server_uuid")?.as_str()?.to_owned(),
            limits: Resources::new(number("millicpus")?, number("memory_mb")?, number("disk_mb")?),
            // Records written before images were recorded have none: their images go uncounted.
            images: value
                .get("images")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|footprint| {
                    Some(ImageFootprint {
                        image: footprint.get("image")?.as_str()?.to_owned(),
                        disk_mb: footprint.get("disk_mb")?.as_u64()?.try_into().ok()?,
                    })
                })
                .collect(),
            compose_sha256: value.get("compose_sha256").and_then(Value::as_str).map(str::to_owned),
        })
    }
}

/// Admission's answer and the servers it weighed.
pub(crate) struct AdmissionDecision {
    pub(crate) outcome: Result<cfa_core::admission::Admitted, cfa_core::AdmissionError>,
    pub(crate) servers: Vec<ServerCapacity>,
}

/// What the provision steps share.
#[derive(Debug, Default)]
struct Progress {
    record: Option<AgentStack>,
    project_uuid: Option<String>,
    service_uuid: Option<String>,
    recorded: Option<RecordedLimits>,
    /// This run created the service from the rendered compose (so its hash is what runs).
    created_service: bool,
    /// The project's `production` environment was seen (or came with a project created now).
    environment_known: bool,
    /// When this run queued Coolify's start (readiness is judged from then).
    start_queued_at: Option<Instant>,
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Our marker in the Coolify service's description: with the name, it identifies a service a
/// crashed run created, so the rerun adopts it instead of creating a twin.
fn service_marker(tenant: &str, stack: &str) -> String {
    format!("managed by cloudfreedom: tenant={tenant} stack={stack}")
}

fn is_running_status(status: &str) -> bool {
    // `starting:*` is a queued start; starting it again would be a second deploy.
    matches!(
        CoolifyStatus::parse(status).state,
        CoolifyState::Running | CoolifyState::Starting | CoolifyState::Created
    )
}

fn redact_record(record: &AgentStack) -> Value {
    // The record holds no secrets (PocketBase never gets any); keep the fields that matter.
    json!({
        "status": record.status.as_str(),
        "template": record.template,
        "coolify_project_uuid": record.coolify_project_uuid,
        "coolify_service_uuid": record.coolify_service_uuid,
        "domain": record.domain,
        "config": record.config,
        "resource_limits": record.resource_limits,
        "error_message": record.error_message,
    })
}

impl Engine {
    pub fn new(
        coolify: CoolifyClient,
        pocketbase: PocketBaseClient,
        catalogue: Catalogue,
        settings: EngineSettings,
    ) -> Engine {
        let http = crate::probe::probe_client();
        Engine {
            inner: Arc::new(Inner {
                coolify,
                pocketbase,
                catalogue,
                settings,
                http,
                tenant_locks: StdMutex::new(HashMap::new()),
                stack_locks: StdMutex::new(HashMap::new()),
                admission_lock: Mutex::new(()),
                destinations: StdMutex::new(HashMap::new()),
            }),
        }
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.inner.settings
    }

    /// The template catalogue the engine renders from.
    pub fn catalogue(&self) -> &Catalogue {
        &self.inner.catalogue
    }

    fn lock_for(map: &StdMutex<HashMap<String, Arc<Mutex<()>>>>, key: &str) -> Arc<Mutex<()>> {
        let mut map = map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(key.to_owned()).or_default().clone()
    }

    fn failpoint(&self, subject: &Subject, step: Step) -> Result<(), EngineError> {
        if let Some(failpoint) = &self.inner.settings.failpoint
            && failpoint(&subject.tenant, &subject.stack, step).is_err()
        {
            tracing::warn!(tenant = %subject.tenant, stack = %subject.stack, %step, "failpoint: stopping here");
            return Err(EngineError::Injected {
                tenant: subject.tenant.clone(),
                stack: subject.stack.clone(),
                step,
            });
        }
        Ok(())
    }

    // ------------------------------------------------------------------ lookups

    async fn tenant(&self, subject: &Subject) -> Result<Tenant, EngineError> {
        match self.inner.pocketbase.tenant_by_slug(&subject.tenant).await {
            Ok(tenant) => Ok(tenant),
            Err(error) if error.kind == PocketBaseErrorKind::NotFound => {
                Err(EngineError::UnknownTenant { tenant: subject.tenant.clone() })
            }
            Err(error) => Err(subject.pocketbase(Step::RecordPending, error)),
        }
    }

    fn template(&self, name: &str) -> Result<&Template, EngineError> {
        self.inner.catalogue.get(name).map_err(|_| EngineError::UnknownTemplate {
            template: name.chars().take(60).collect(),
            known: self.inner.catalogue.names().collect::<Vec<_>>().join(", "),
        })
    }

    async fn find_record(
        &self,
        subject: &Subject,
        tenant_id: &str,
        step: Step,
    ) -> Result<Option<AgentStack>, EngineError> {
        let filter = StackFilter {
            stack_name: Some(subject.stack.clone()),
            ..StackFilter::tenant(tenant_id)
        };
        let mut records = self
            .inner
            .pocketbase
            .stack_list_all(&filter, false)
            .await
            .map_err(|error| subject.pocketbase(step, error))?;
        Ok(records.pop())
    }

    fn parse_names(&self, subject: &Subject) -> Result<(TenantSlug, StackName), EngineError> {
        let slug = TenantSlug::parse(&subject.tenant)
            .map_err(|error| subject.invalid_input(error.to_string()))?;
        let stack = StackName::parse(&subject.stack)
            .map_err(|error| subject.invalid_input(error.to_string()))?;
        Ok((slug, stack))
    }

    fn render(
        &self,
        subject: &Subject,
        template: &Template,
        tenant: &Tenant,
        slug: &TenantSlug,
        stack: &StackName,
        parameters: &BTreeMap<String, String>,
    ) -> Result<RenderedStack, EngineError> {
        cfa_templates::params::check_url_origins(
            template,
            parameters,
            &self.inner.settings.url_origins,
        )
        .map_err(|problem| subject.invalid_input(problem.to_string()))?;
        let request = RenderRequest {
            template,
            plans: &self.inner.settings.plans,
            plan: tenant.plan_tier,
            tenant_resource_limits: tenant.resource_limits,
            tenant: slug,
            stack,
            base_domain: &self.inner.settings.base_domain,
            parameters,
        };
        render(request).map_err(|error| match *error.reason {
            RenderFailure::Parameter(problem) => subject.invalid_input(problem.to_string()),
            RenderFailure::Name(problem) => subject.invalid_input(problem.to_string()),
            RenderFailure::Refused(refusal) => subject.refused(Refusal::Admission(refusal)),
            guardrails @ RenderFailure::Guardrails(_) => EngineError::Template {
                template: template.name().to_owned(),
                message: guardrails.to_string(),
            },
        })
    }

    // ------------------------------------------------------------------ audit

    async fn audit(
        &self,
        subject: &Subject,
        action: &str,
        before: Value,
        after: Value,
        outcome: AuditOutcome,
        error: Option<String>,
    ) {
        let entry = NewAuditEntry {
            actor: self.inner.settings.actor.clone(),
            action: action.to_owned(),
            tenant: Some(subject.tenant.clone()),
            stack: Some(subject.stack.clone()),
            before,
            after,
            outcome,
            error,
        };
        if let Err(error) = self.inner.pocketbase.audit_append(&entry).await {
            // The mutation itself happened; a lost audit line must not turn it into a failure.
            tracing::warn!(tenant = %subject.tenant, stack = %subject.stack, action, error = %error, "cannot append to the audit log");
        }
    }

    async fn update_record(
        &self,
        subject: &Subject,
        step: Step,
        record: &AgentStack,
        patch: &StackPatch,
        action: &str,
    ) -> Result<AgentStack, EngineError> {
        let updated = self
            .inner
            .pocketbase
            .stack_update(&record.id, patch)
            .await
            .map_err(|error| subject.pocketbase(step, error))?;
        self.audit(
            subject,
            action,
            redact_record(record),
            redact_record(&updated),
            AuditOutcome::Ok,
            None,
        )
        .await;
        Ok(updated)
    }

    /// Records `error` with the message after a failed deploy, unless the failure is a
    /// failpoint (a "crash" records nothing). Best effort: PocketBase may be what failed.
    async fn record_failure(
        &self,
        subject: &Subject,
        action: &str,
        record_id: &str,
        error: &EngineError,
    ) {
        if matches!(error, EngineError::Injected { .. }) {
            return;
        }
        let message = error.record_message();
        tracing::warn!(tenant = %subject.tenant, stack = %subject.stack, action, error = %error, "stack operation failed");
        let current = match self.inner.pocketbase.stack_view(record_id, false).await {
            Ok(current) => current,
            Err(_) => return,
        };
        let status = match current.status {
            StackStatus::Deploying => next(StackStatus::Deploying, StackEvent::DeployFailed).ok(),
            StackStatus::Running => next(StackStatus::Running, StackEvent::HealthFailed).ok(),
            StackStatus::Pending => next(StackStatus::Pending, StackEvent::DeployStarted)
                .and_then(|status| next(status, StackEvent::DeployFailed))
                .ok(),
            StackStatus::Stopped | StackStatus::Error => None,
        };
        let patch =
            StackPatch { status, error_message: Some(message.clone()), ..StackPatch::default() };
        match self.inner.pocketbase.stack_update(record_id, &patch).await {
            Ok(updated) => {
                self.audit(
                    subject,
                    action,
                    redact_record(&current),
                    redact_record(&updated),
                    AuditOutcome::Failed,
                    Some(error.to_string()),
                )
                .await;
            }
            Err(pocketbase_error) => {
                tracing::warn!(tenant = %subject.tenant, stack = %subject.stack, error = %pocketbase_error, "cannot record the failure");
            }
        }
    }

    // ------------------------------------------------------------------ provision

    /// Provisions a stack, or converges a half-provisioned one: idempotent, crash-safe.
    pub async fn provision(&self, request: &ProvisionRequest) -> Result<StackOutcome, EngineError> {
        let subject = Subject { tenant: request.tenant.clone(), stack: request.stack.clone() };
        let (slug, stack_name) = self.parse_names(&subject)?;
        let tenant = self.tenant(&subject).await?;
        let template = self.template(&request.template)?;
        let lock =
            Self::lock_for(&self.inner.stack_locks, &format!("{}/{}", tenant.id, stack_name));
        let _guard = lock.lock().await;

        let record = self.find_record(&subject, &tenant.id, Step::RecordPending).await?;
        if let Some(record) = &record {
            if record.template != request.template {
                return Err(subject.invalid_input(format!(
                    "the stack exists with template `{}`\nhint: choose another stack name, or delete this one first",
                    record.template
                )));
            }
            if record.status == StackStatus::Stopped {
                return Err(EngineError::InvalidState {
                    tenant: subject.tenant.clone(),
                    stack: subject.stack.clone(),
                    status: record.status.to_string(),
                    action: "provisioned",
                    hint: "resume it (`cfa resume`)".to_owned(),
                });
            }
        }
        let rendered =
            self.render(&subject, template, &tenant, &slug, &stack_name, &request.parameters)?;
        if let Some(domain) = &rendered.domain {
            self.ensure_domain_is_ours(&subject, &tenant, domain).await?;
        }
        tracing::info!(
            tenant = %subject.tenant, stack = %subject.stack, template = %request.template,
            environment_keys = ?rendered.environment.iter().map(|entry| entry.name.as_str()).collect::<Vec<_>>(),
            "provisioning"
        );

        let mut progress = Progress {
            recorded: record
                .as_ref()
                .and_then(|record| record.resource_limits.as_ref())
                .and_then(RecordedLimits::from_json),
            record,
            ..Progress::default()
        };
        if let Some(record) = &progress.record
            && progress.recorded.is_none()
        {
            // A record a tenant created through PocketBase: admitted by its quota hook, but not
            // yet placed on a server.
            let (recorded, updated) = self
                .place_record(
                    &subject,
                    &tenant,
                    &rendered,
                    record,
                    request.preferred_server.as_deref(),
                )
                .await?;
            progress.recorded = Some(recorded);
            progress.record = Some(updated);
        }
        let observed = match self.observe(&subject, &slug, &stack_name, &mut progress).await {
            Ok(observed) => observed,
            Err(error) => {
                if let Some(record) = &progress.record {
                    self.record_failure(&subject, "stack.provision", &record.id, &error).await;
                }
                return Err(error);
            }
        };
        let plan = self.inner.settings.plans.plan(tenant.plan_tier);
        let wants_backups =
            matches!(plan.backups, BackupPolicy::Daily { .. }) && rendered.requirements.disk_mb > 0;
        let observation = ProvisionObservation { wants_backups, ..observed };
        let steps = plan_provision(&observation);
        tracing::debug!(tenant = %subject.tenant, stack = %subject.stack, ?steps, "planned");

        let context = ProvisionContext {
            subject: &subject,
            slug: &slug,
            stack_name: &stack_name,
            tenant: &tenant,
            rendered: &rendered,
            preferred_server: request.preferred_server.as_deref(),
        };
        for step in steps {
            if let Err(error) = self.run_provision_step(&context, step, &mut progress).await {
                if let Some(record) = &progress.record
                    && !matches!(error, EngineError::Refused { .. })
                {
                    self.record_failure(&subject, "stack.provision", &record.id, &error).await;
                }
                return Err(error);
            }
            self.failpoint(&subject, step)?;
        }
        let record = required(progress.record.as_ref(), &subject)?;
        Ok(outcome(&subject, record, false))
    }

    /// Reads the record's and Coolify's state for the planner.
    async fn observe(
        &self,
        subject: &Subject,
        slug: &TenantSlug,
        stack_name: &StackName,
        progress: &mut Progress,
    ) -> Result<ProvisionObservation, EngineError> {
        let coolify = &self.inner.coolify;
        let project_name = coolify_project_name(slug);
        let list_projects = || async {
            let projects = coolify
                .list_projects()
                .await
                .map_err(|error| subject.coolify(Step::EnsureProject, error))?;
            Ok(projects
                .into_iter()
                .filter(|project| project.name == project_name)
                .map(|project| project.uuid)
                .collect())
        };
        progress.project_uuid =
            self.agreed_candidate(subject, Created::Project, list_projects).await?;

        let record_service =
            progress.record.as_ref().and_then(|record| record.coolify_service_uuid.clone());
        let mut service_status = None;
        if let Some(uuid) = &record_service {
            match coolify.get_service_by_uuid(uuid).await {
                Ok(service) => {
                    service_status = Some(service.status);
                    progress.service_uuid = Some(uuid.clone());
                }
                Err(error) if error.is_not_found() => {
                    tracing::warn!(tenant = %subject.tenant, stack = %subject.stack, service_uuid = %uuid, "the recorded Coolify service is gone; it will be created again");
                }
                Err(error) => return Err(subject.coolify(Step::CreateService, error)),
            }
        }
        if progress.service_uuid.is_none()
            && let Some(project_uuid) = &progress.project_uuid
        {
            let service_name = coolify_service_name(stack_name);
            let marker = service_marker(slug.as_str(), stack_name.as_str());
            let environment_seen = std::sync::atomic::AtomicBool::new(false);
            let list_services = || async {
                match coolify.get_environment_by_name_or_uuid(project_uuid, ENVIRONMENT).await {
                    Ok(environment) => Ok({
                        environment_seen.store(true, std::sync::atomic::Ordering::Relaxed);
                        environment
                            .services
                            .into_iter()
                            .filter(|service| {
                                service.name == service_name
                                    && service.description.as_deref() == Some(marker.as_str())
                            })
                            .map(|service| service.uuid)
                            .collect()
                    }),
                    Err(error) if error.is_not_found() => Ok(Vec::new()),
                    Err(error) => Err(subject.coolify(Step::EnsureEnvironment, error)),
                }
            };
            let agreed = self.agreed_candidate(subject, Created::Service, list_services).await?;
            progress.environment_known = environment_seen.into_inner();
            if let Some(uuid) = agreed {
                // A service a crashed or concurrent run created: its status decides the start.
                match coolify.get_service_by_uuid(&uuid).await {
                    Ok(service) => {
                        service_status = Some(service.status);
                        progress.service_uuid = Some(uuid);
                    }
                    Err(error) if error.is_not_found() => {}
                    Err(error) => return Err(subject.coolify(Step::CreateService, error)),
                }
            }
        }
        let mut service_running = service_status.as_deref().is_some_and(is_running_status);
        if !service_running
            && let Some(uuid) = &progress.service_uuid
            && let Some(age) = self.recent_start(subject, uuid).await
        {
            // Queued by an earlier run, and Coolify's stored `exited` cannot say otherwise yet.
            tracing::debug!(tenant = %subject.tenant, stack = %subject.stack, age_ms = age.as_millis(), "a start is already queued; waiting for it");
            service_running = true;
            progress.start_queued_at = Instant::now().checked_sub(age);
        }
        Ok(ProvisionObservation {
            record_status: progress.record.as_ref().map(|record| record.status),
            record_has_service: record_service.is_some() && record_service == progress.service_uuid,
            project_exists: progress.project_uuid.is_some(),
            service_exists: progress.service_uuid.is_some(),
            service_running,
            wants_backups: false,
        })
    }

    async fn run_provision_step(
        &self,
        context: &ProvisionContext<'_>,
        step: Step,
        progress: &mut Progress,
    ) -> Result<(), EngineError> {
        let subject = context.subject;
        let coolify = &self.inner.coolify;
        match step {
            Step::RecordPending => self.create_record(context, progress).await,
            Step::RecordDeploying => {
                let record = required(progress.record.as_ref(), subject)?;
                if matches!(record.status, StackStatus::Deploying | StackStatus::Running) {
                    // A concurrent run (another process) got here first, or even finished.
                    return Ok(());
                }
                let mut status = record.status;
                if status == StackStatus::Error {
                    status = next(status, StackEvent::Retry)
                        .map_err(|error| invalid_state(subject, record, &error))?;
                }
                let status = next(status, StackEvent::DeployStarted)
                    .map_err(|error| invalid_state(subject, record, &error))?;
                let patch = StackPatch {
                    status: Some(status),
                    error_message: Some(String::new()),
                    ..StackPatch::default()
                };
                let updated =
                    self.update_record(subject, step, record, &patch, "stack.deploying").await?;
                progress.record = Some(updated);
                Ok(())
            }
            Step::EnsureProject => {
                if progress.project_uuid.is_some() {
                    // Observed (and agreed on) a moment ago.
                    return Ok(());
                }
                let (project_uuid, created) = self.ensure_project(subject, context.slug).await?;
                progress.project_uuid = Some(project_uuid);
                // Coolify creates `production` with every project.
                progress.environment_known |= created;
                Ok(())
            }
            Step::EnsureEnvironment => {
                if progress.environment_known {
                    return Ok(());
                }
                let project_uuid = required(progress.project_uuid.as_ref(), subject)?;
                let environments = coolify
                    .get_environments(project_uuid)
                    .await
                    .map_err(|error| subject.coolify(step, error))?;
                if !environments.iter().any(|environment| environment.name == ENVIRONMENT) {
                    match coolify.create_environment(project_uuid, ENVIRONMENT).await {
                        Ok(_) => {}
                        Err(error) if matches!(error.kind, CoolifyErrorKind::Conflict { .. }) => {}
                        Err(error) => return Err(subject.coolify(step, error)),
                    }
                }
                Ok(())
            }
            Step::CreateService => {
                let project_uuid = required(progress.project_uuid.as_ref(), subject)?.clone();
                let recorded = required(progress.recorded.as_ref(), subject)?;
                let destination = self.destination(subject, &recorded.server_uuid).await?;
                let request = CreateServiceRequest {
                    project_uuid,
                    environment: EnvironmentRef::Name(ENVIRONMENT.to_owned()),
                    server_uuid: recorded.server_uuid.clone(),
                    destination_uuid: destination,
                    name: coolify_service_name(context.stack_name),
                    description: Some(service_marker(
                        context.slug.as_str(),
                        context.stack_name.as_str(),
                    )),
                    compose_yaml: context.rendered.compose_yaml.clone(),
                    urls: service_urls(context.rendered),
                    instant_deploy: false,
                    force_domain_override: false,
                };
                let created = match coolify.create_service(&request).await {
                    Ok(created) => created,
                    Err(error) => {
                        // The destination may be what is stale: look it up again next time.
                        self.lock_destinations().remove(&recorded.server_uuid);
                        return Err(subject.coolify(step, error));
                    }
                };
                tracing::info!(tenant = %subject.tenant, stack = %subject.stack, service_uuid = %created.uuid, "created the Coolify service");
                let service_name = coolify_service_name(context.stack_name);
                let marker = service_marker(context.slug.as_str(), context.stack_name.as_str());
                let list_existing = || async {
                    let environment = coolify
                        .get_environment_by_name_or_uuid(&request.project_uuid, ENVIRONMENT)
                        .await
                        .map_err(|error| subject.coolify(step, error))?;
                    Ok(environment
                        .services
                        .into_iter()
                        .filter(|service| {
                            service.name == service_name
                                && service.description.as_deref() == Some(marker.as_str())
                        })
                        .map(|service| service.uuid)
                        .collect())
                };
                let winner = self
                    .settle_creation(subject, Created::Service, &created.uuid, list_existing)
                    .await?;
                progress.created_service = winner == created.uuid;
                progress.service_uuid = Some(winner);
                Ok(())
            }
            Step::AdoptService => {
                tracing::info!(tenant = %subject.tenant, stack = %subject.stack, service_uuid = ?progress.service_uuid, "adopting the Coolify service an interrupted run created");
                Ok(())
            }
            Step::RecordService => {
                let record = required(progress.record.as_ref(), subject)?;
                let patch = StackPatch {
                    coolify_project_uuid: progress.project_uuid.clone(),
                    coolify_service_uuid: progress.service_uuid.clone(),
                    domain: Some(context.rendered.domain.clone().unwrap_or_default()),
                    ..StackPatch::default()
                };
                let updated =
                    self.update_record(subject, step, record, &patch, "stack.service").await?;
                progress.record = Some(updated);
                Ok(())
            }
            Step::SetBackupSchedule => {
                let service_uuid = required(progress.service_uuid.as_ref(), subject)?;
                let BackupPolicy::Daily { retention_days } =
                    self.inner.settings.plans.plan(context.tenant.plan_tier).backups
                else {
                    return Ok(());
                };
                let storages = coolify
                    .list_storages_by_service_uuid(service_uuid)
                    .await
                    .map_err(|error| subject.coolify(step, error))?;
                for storage in &storages.persistent {
                    let request = self.backup_schedule(retention_days);
                    match coolify
                        .set_service_storage_backup_schedule(service_uuid, &storage.uuid, &request)
                        .await
                    {
                        Ok(_) => {}
                        Err(error)
                            if matches!(error.kind, CoolifyErrorKind::VersionTooOld { .. }) =>
                        {
                            tracing::warn!(tenant = %subject.tenant, stack = %subject.stack, "this Coolify has no storage backups (needs 4.3); the stack runs without volume backups");
                            return Ok(());
                        }
                        Err(error) => return Err(subject.coolify(step, error)),
                    }
                }
                Ok(())
            }
            Step::SetEnvironment => {
                let service_uuid = required(progress.service_uuid.as_ref(), subject)?;
                self.set_environment(subject, service_uuid, context.rendered).await
            }
            Step::StartService => {
                let service_uuid = required(progress.service_uuid.as_ref(), subject)?;
                progress.start_queued_at = Some(self.start(subject, service_uuid).await?);
                Ok(())
            }
            Step::WaitReady => {
                let service_uuid = required(progress.service_uuid.as_ref(), subject)?;
                // Skipped start (the service already runs, or an earlier run queued it): the
                // wait starts now.
                let queued_at = progress.start_queued_at.unwrap_or_else(Instant::now);
                let domain = context.rendered.domain.as_deref();
                self.wait_ready(subject, service_uuid, domain, StartKind::Start, queued_at).await
            }
            Step::RecordRunning => {
                let record = required(progress.record.as_ref(), subject)?;
                // Our copy may be a concurrent run's `pending` or failed `error`: walk the
                // lifecycle from there, since this run did reach ready.
                let status = match record.status {
                    StackStatus::Running => Ok(StackStatus::Running),
                    StackStatus::Error => next(StackStatus::Error, StackEvent::Retry)
                        .and_then(|pending| next(pending, StackEvent::DeployStarted))
                        .and_then(|deploying| next(deploying, StackEvent::DeploySucceeded)),
                    StackStatus::Pending => next(StackStatus::Pending, StackEvent::DeployStarted)
                        .and_then(|deploying| next(deploying, StackEvent::DeploySucceeded)),
                    status => next(status, StackEvent::DeploySucceeded),
                }
                .map_err(|error| invalid_state(subject, record, &error))?;
                let mut recorded = required(progress.recorded.as_ref(), subject)?.clone();
                // The hash says which compose Coolify runs: ours when this run created the
                // service; else the one recorded before (an upgrade compares against it).
                if progress.created_service || recorded.compose_sha256.is_none() {
                    recorded.compose_sha256 = Some(sha256(&context.rendered.compose_yaml));
                }
                let patch = StackPatch {
                    status: Some(status),
                    coolify_project_uuid: progress.project_uuid.clone(),
                    coolify_service_uuid: progress.service_uuid.clone(),
                    domain: Some(context.rendered.domain.clone().unwrap_or_default()),
                    resource_limits: Some(recorded.to_json()),
                    last_health_check: Some(jiff::Timestamp::now()),
                    error_message: Some(String::new()),
                    ..StackPatch::default()
                };
                let updated =
                    self.update_record(subject, step, record, &patch, "stack.provision").await?;
                progress.recorded = Some(recorded);
                progress.record = Some(updated);
                tracing::info!(tenant = %subject.tenant, stack = %subject.stack, "stack is running");
                Ok(())
            }
            Step::UpdateService
            | Step::RestartService
            | Step::StopService
            | Step::WaitStopped
            | Step::RecordStopped
            | Step::FinalBackup
            | Step::DeleteService
            | Step::WaitDeleted
            | Step::DeleteProject
            | Step::DeleteRecord => Ok(()),
        }
    }

    /// Admission, then the `pending` record; the admission lock makes capacity checks and
    /// record creation atomic within this process.
    async fn create_record(
        &self,
        context: &ProvisionContext<'_>,
        progress: &mut Progress,
    ) -> Result<(), EngineError> {
        let subject = context.subject;
        let _admission = self.inner.admission_lock.lock().await;
        let decision = self
            .admission_decision(
                subject,
                context.tenant,
                &context.rendered.requirements,
                context.preferred_server,
                false,
                Step::RecordPending,
            )
            .await?;
        let admitted = match decision.outcome {
            Ok(admitted) => admitted,
            Err(refusal) => {
                return Err(self.refuse_provision(subject, Refusal::Admission(refusal)).await);
            }
        };
        let recorded = RecordedLimits {
            server_uuid: admitted.server_id.clone(),
            limits: admitted.limits,
            images: context.rendered.requirements.images.clone(),
            compose_sha256: None,
        };
        let new_stack = NewStack {
            config: Value::Object(
                context
                    .rendered
                    .config
                    .iter()
                    .map(|(key, value)| (key.clone(), Value::String(value.clone())))
                    .collect(),
            ),
            resource_limits: Some(recorded.to_json()),
            ..NewStack::pending(
                &context.tenant.id,
                context.rendered.template.as_str(),
                context.stack_name.as_str(),
            )
        };
        match self.inner.pocketbase.stack_create(&new_stack).await {
            Ok(created) => {
                self.audit(
                    subject,
                    "stack.create",
                    Value::Null,
                    redact_record(&created),
                    AuditOutcome::Ok,
                    None,
                )
                .await;
                progress.recorded = Some(recorded);
                progress.record = Some(created);
                Ok(())
            }
            Err(error) if error.kind == PocketBaseErrorKind::StackLimitReached => {
                let refusal = Refusal::QuotaHook { tenant: subject.tenant.clone() };
                Err(self.refuse_provision(subject, refusal).await)
            }
            Err(error) if matches!(error.kind, PocketBaseErrorKind::NotUnique { .. }) => {
                // Another process created it first: continue with its record.
                let record =
                    self.find_record(subject, &context.tenant.id, Step::RecordPending).await?;
                let record =
                    record.ok_or_else(|| subject.pocketbase(Step::RecordPending, error))?;
                progress.recorded =
                    record.resource_limits.as_ref().and_then(RecordedLimits::from_json);
                progress.record = Some(record);
                Ok(())
            }
            Err(error) => Err(subject.pocketbase(Step::RecordPending, error)),
        }
    }

    /// Admits and places a record that exists without a server (created by a tenant).
    async fn place_record(
        &self,
        subject: &Subject,
        tenant: &Tenant,
        rendered: &RenderedStack,
        record: &AgentStack,
        preferred_server: Option<&str>,
    ) -> Result<(RecordedLimits, AgentStack), EngineError> {
        let _admission = self.inner.admission_lock.lock().await;
        // The record exists: PocketBase's quota hook already counted it.
        let decision = self
            .admission_decision(
                subject,
                tenant,
                &rendered.requirements,
                preferred_server,
                true,
                Step::RecordDeploying,
            )
            .await?;
        let admitted =
            decision.outcome.map_err(|refusal| subject.refused(Refusal::Admission(refusal)));
        let admitted = match admitted {
            Ok(admitted) => admitted,
            Err(error) => {
                self.record_failure(subject, "stack.provision", &record.id, &error).await;
                return Err(error);
            }
        };
        let recorded = RecordedLimits {
            server_uuid: admitted.server_id,
            limits: admitted.limits,
            images: rendered.requirements.images.clone(),
            compose_sha256: None,
        };
        let patch = StackPatch {
            resource_limits: Some(recorded.to_json()),
            config: Some(Value::Object(
                rendered
                    .config
                    .iter()
                    .map(|(key, value)| (key.clone(), Value::String(value.clone())))
                    .collect(),
            )),
            ..StackPatch::default()
        };
        let updated = self
            .update_record(subject, Step::RecordDeploying, record, &patch, "stack.place")
            .await?;
        Ok((recorded, updated))
    }

    /// Admission against what PocketBase records and Coolify lists now. `already_counted` is
    /// set for a record PocketBase's quota hook counted when a tenant created it: the count
    /// quota is then not applied a second time.
    pub(crate) async fn admission_decision(
        &self,
        subject: &Subject,
        tenant: &Tenant,
        requirements: &cfa_core::StackRequirements,
        preferred_server: Option<&str>,
        already_counted: bool,
        step: Step,
    ) -> Result<AdmissionDecision, EngineError> {
        let all_stacks = self
            .inner
            .pocketbase
            .stack_list_all(&StackFilter::default(), false)
            .await
            .map_err(|error| subject.pocketbase(step, error))?;
        let servers = self.server_capacities(subject, &all_stacks).await?;
        let existing_stacks =
            all_stacks.iter().filter(|stack| stack.tenant_id == tenant.id).count() as u32;
        let standing = TenantStanding {
            slug: tenant.slug.clone(),
            plan_tier: tenant.plan_tier,
            max_stacks: (!already_counted).then_some(tenant.max_stacks),
            existing_stacks: if already_counted { 0 } else { existing_stacks },
            resource_limits: tenant.resource_limits,
        };
        let outcome = admit(AdmissionRequest {
            plans: &self.inner.settings.plans,
            tenant: &standing,
            requirements,
            servers: &servers,
            preferred_server,
        });
        Ok(AdmissionDecision { outcome, servers })
    }

    /// The usable Coolify servers with what the recorded stacks reserve on each.
    async fn server_capacities(
        &self,
        subject: &Subject,
        stacks: &[AgentStack],
    ) -> Result<Vec<ServerCapacity>, EngineError> {
        let servers = self
            .inner
            .coolify
            .list_servers()
            .await
            .map_err(|error| subject.coolify(Step::RecordPending, error))?;
        let placed: Vec<RecordedLimits> = stacks
            .iter()
            .filter_map(|stack| stack.resource_limits.as_ref().and_then(RecordedLimits::from_json))
            .collect();
        Ok(servers
            .iter()
            .filter(|server| server.is_usable() && server.is_reachable() && !server.is_build_server())
            .map(|server| {
                let mut capacity = match self.inner.settings.servers.get(&server.uuid) {
                    Some(settings) => settings.capacity(&server.uuid),
                    None => {
                        tracing::warn!(server_uuid = %server.uuid, server = %server.name, "no capacity configured for this server; assuming the seed host (12 cores, 31 GB RAM, 24 GB free disk)");
                        ServerCapacity { name: server.name.clone(), ..ServerCapacity::seed_host(&server.uuid) }
                    }
                };
                for recorded in placed.iter().filter(|recorded| recorded.server_uuid == server.uuid) {
                    capacity.reserve(recorded.limits, &recorded.images);
                }
                capacity
            })
            .collect())
    }

    fn lock_destinations(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<String>>> {
        self.inner.destinations.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The destination new services on `server_uuid` go to: Coolify's default network
    /// `coolify` when the server has it, else its first; `None` lets Coolify pick.
    async fn destination(
        &self,
        subject: &Subject,
        server_uuid: &str,
    ) -> Result<Option<String>, EngineError> {
        if let Some(known) = self.lock_destinations().get(server_uuid) {
            return Ok(known.clone());
        }
        let destinations = self
            .inner
            .coolify
            .list_server_destinations(server_uuid)
            .await
            .map_err(|error| subject.coolify(Step::CreateService, error))?;
        let destination = destinations
            .iter()
            .find(|destination| destination.network == "coolify")
            .or_else(|| destinations.first())
            .map(|destination| destination.uuid.clone());
        self.lock_destinations().insert(server_uuid.to_owned(), destination.clone());
        Ok(destination)
    }

    /// Finds the tenant's project by its deterministic name, or creates it; never two. Says
    /// whether this call created it.
    async fn ensure_project(
        &self,
        subject: &Subject,
        slug: &TenantSlug,
    ) -> Result<(String, bool), EngineError> {
        let lock = Self::lock_for(&self.inner.tenant_locks, slug.as_str());
        let _guard = lock.lock().await;
        let coolify = &self.inner.coolify;
        let name = coolify_project_name(slug);
        let find = || async {
            let projects = coolify
                .list_projects()
                .await
                .map_err(|error| subject.coolify(Step::EnsureProject, error))?;
            Ok::<_, EngineError>(
                projects
                    .into_iter()
                    .filter(|project| project.name == name)
                    .map(|project| project.uuid)
                    .collect::<Vec<String>>(),
            )
        };
        if let Some(uuid) = self.agreed_candidate(subject, Created::Project, find).await? {
            return Ok((uuid, false));
        }
        let created = coolify
            .create_project(&CreateProjectRequest {
                name: name.clone(),
                description: Some(format!("CloudFreedom tenant {slug}")),
            })
            .await
            .map_err(|error| subject.coolify(Step::EnsureProject, error))?;
        tracing::info!(tenant = %subject.tenant, project_uuid = %created, "created the tenant's Coolify project");
        // Another process may have created one at the same time (see `claims`).
        let winner = self.settle_creation(subject, Created::Project, &created, find).await?;
        let ours = winner == created;
        Ok((winner, ours))
    }

    async fn set_environment(
        &self,
        subject: &Subject,
        service_uuid: &str,
        rendered: &RenderedStack,
    ) -> Result<(), EngineError> {
        if rendered.environment.is_empty() {
            return Ok(());
        }
        let variables: Vec<EnvironmentVariableUpsert> = rendered
            .environment
            .iter()
            .map(|entry| {
                EnvironmentVariableUpsert::new(
                    entry.name.clone(),
                    SecretValue::new(entry.value.clone()),
                )
            })
            .collect();
        tracing::info!(
            tenant = %subject.tenant, stack = %subject.stack,
            keys = ?rendered.environment.iter().map(|entry| entry.name.as_str()).collect::<Vec<_>>(),
            "setting the service environment"
        );
        self.inner
            .coolify
            .update_envs_by_service_uuid(service_uuid, &variables)
            .await
            .map_err(|error| subject.coolify(Step::SetEnvironment, error))?;
        Ok(())
    }

    // ------------------------------------------------------------------ suspend, resume

    async fn existing(
        &self,
        subject: &Subject,
    ) -> Result<(Tenant, AgentStack, Arc<Mutex<()>>), EngineError> {
        self.parse_names(subject)?;
        let tenant = self.tenant(subject).await?;
        let lock =
            Self::lock_for(&self.inner.stack_locks, &format!("{}/{}", tenant.id, subject.stack));
        let record = self.reread(subject, &tenant.id, Step::RecordStopped).await?;
        Ok((tenant, record, lock))
    }

    /// A provision refused before anything was created: audited, and the error to return.
    async fn refuse_provision(&self, subject: &Subject, refusal: Refusal) -> EngineError {
        let error = subject.refused(refusal);
        let reason = Some(error.to_string());
        self.audit(
            subject,
            "stack.provision",
            Value::Null,
            Value::Null,
            AuditOutcome::Refused,
            reason,
        )
        .await;
        error
    }

    /// The stack's record, read (again) now: callers re-read under the stack's lock, since
    /// another run may have changed it while they waited.
    async fn reread(
        &self,
        subject: &Subject,
        tenant_id: &str,
        step: Step,
    ) -> Result<AgentStack, EngineError> {
        self.find_record(subject, tenant_id, step).await?.ok_or_else(|| subject.unknown_stack())
    }

    /// Suspends a stack: stop without Docker cleanup, so its volumes are kept.
    pub async fn suspend(&self, tenant: &str, stack: &str) -> Result<StackOutcome, EngineError> {
        let subject = Subject { tenant: tenant.to_owned(), stack: stack.to_owned() };
        let (tenant_record, _, lock) = self.existing(&subject).await?;
        let _guard = lock.lock().await;
        let record = self.reread(&subject, &tenant_record.id, Step::StopService).await?;
        if record.status == StackStatus::Stopped {
            return Ok(outcome(&subject, &record, false));
        }
        let status = next(record.status, StackEvent::Suspend)
            .map_err(|error| invalid_state(&subject, &record, &error))?;
        let result = async {
            if let Some(service_uuid) = &record.coolify_service_uuid {
                self.stop(&subject, service_uuid).await?;
                self.failpoint(&subject, Step::StopService)?;
                self.wait_status(&subject, Step::WaitStopped, service_uuid, |status| {
                    status.is_none_or(|status| {
                        !is_running_status(status) && !status.starts_with("degraded")
                    })
                })
                .await?;
                self.failpoint(&subject, Step::WaitStopped)?;
            }
            let patch = StackPatch {
                status: Some(status),
                error_message: Some(String::new()),
                ..StackPatch::default()
            };
            let updated = self
                .update_record(&subject, Step::RecordStopped, &record, &patch, "stack.suspend")
                .await?;
            self.failpoint(&subject, Step::RecordStopped)?;
            Ok(updated)
        }
        .await;
        match result {
            Ok(updated) => Ok(outcome(&subject, &updated, true)),
            Err(error) => {
                if !matches!(error, EngineError::Injected { .. }) {
                    self.audit(
                        &subject,
                        "stack.suspend",
                        redact_record(&record),
                        Value::Null,
                        AuditOutcome::Failed,
                        Some(error.to_string()),
                    )
                    .await;
                }
                Err(error)
            }
        }
    }

    /// Resumes a suspended stack: start and wait until ready. It goes through `deploying`, so
    /// a crash mid-way leaves a record that the next provision or resume finishes.
    pub async fn resume(&self, tenant: &str, stack: &str) -> Result<StackOutcome, EngineError> {
        let subject = Subject { tenant: tenant.to_owned(), stack: stack.to_owned() };
        let (tenant_record, _, lock) = self.existing(&subject).await?;
        let _guard = lock.lock().await;
        let record = self.reread(&subject, &tenant_record.id, Step::StartService).await?;
        let record = match record.status {
            StackStatus::Running => return Ok(outcome(&subject, &record, false)),
            StackStatus::Stopped => {
                let pending = next(StackStatus::Stopped, StackEvent::ResumeRequested)
                    .map_err(|error| invalid_state(&subject, &record, &error))?;
                let deploying = next(pending, StackEvent::DeployStarted)
                    .map_err(|error| invalid_state(&subject, &record, &error))?;
                let patch = StackPatch {
                    status: Some(deploying),
                    error_message: Some(String::new()),
                    ..StackPatch::default()
                };
                let updated = self
                    .update_record(&subject, Step::RecordDeploying, &record, &patch, "stack.resume")
                    .await?;
                self.failpoint(&subject, Step::RecordDeploying)?;
                updated
            }
            StackStatus::Deploying => record,
            StackStatus::Pending | StackStatus::Error => {
                return Err(EngineError::InvalidState {
                    tenant: subject.tenant.clone(),
                    stack: subject.stack.clone(),
                    status: record.status.to_string(),
                    action: "resumed",
                    hint: "a pending or failed stack is deployed with `cfa provision`".to_owned(),
                });
            }
        };
        let result = async {
            let service_uuid =
                record.coolify_service_uuid.clone().ok_or_else(|| EngineError::InvalidState {
                    tenant: subject.tenant.clone(),
                    stack: subject.stack.clone(),
                    status: record.status.to_string(),
                    action: "resumed",
                    hint: "it has no Coolify service yet; run `cfa provision` to create it"
                        .to_owned(),
                })?;
            let queued_at = self.start(&subject, &service_uuid).await?;
            self.failpoint(&subject, Step::StartService)?;
            let domain = record.domain.as_deref();
            self.wait_ready(&subject, &service_uuid, domain, StartKind::Start, queued_at).await?;
            self.failpoint(&subject, Step::WaitReady)?;
            let status = next(StackStatus::Deploying, StackEvent::DeploySucceeded)
                .map_err(|error| invalid_state(&subject, &record, &error))?;
            let patch = StackPatch {
                status: Some(status),
                last_health_check: Some(jiff::Timestamp::now()),
                error_message: Some(String::new()),
                ..StackPatch::default()
            };
            self.update_record(&subject, Step::RecordRunning, &record, &patch, "stack.resume").await
        }
        .await;
        match result {
            Ok(updated) => Ok(outcome(&subject, &updated, true)),
            Err(error) => {
                self.record_failure(&subject, "stack.resume", &record.id, &error).await;
                Err(error)
            }
        }
    }

    // ------------------------------------------------------------------ upgrade

    /// Re-renders a running stack and applies what changed: PATCH the compose only when its
    /// hash changed, upsert the environment only when a value changed, then restart and wait.
    /// `parameters = None` keeps the current ones (non-secret from PocketBase, secrets read back
    /// from Coolify, which needs a `read:sensitive` token).
    pub async fn upgrade(
        &self,
        tenant: &str,
        stack: &str,
        parameters: Option<&BTreeMap<String, String>>,
    ) -> Result<StackOutcome, EngineError> {
        let subject = Subject { tenant: tenant.to_owned(), stack: stack.to_owned() };
        let (slug, stack_name) = self.parse_names(&subject)?;
        let (tenant_record, _, lock) = self.existing(&subject).await?;
        let _guard = lock.lock().await;
        let record = self.reread(&subject, &tenant_record.id, Step::UpdateService).await?;
        // `deploying` or `error` with a service: an upgrade (or resume) that was interrupted or
        // failed; rerunning it finishes the job, restarting even when nothing differs anymore.
        let resuming = match record.status {
            StackStatus::Running => false,
            StackStatus::Deploying | StackStatus::Error
                if record.coolify_service_uuid.is_some() =>
            {
                true
            }
            _ => {
                return Err(EngineError::InvalidState {
                    tenant: subject.tenant.clone(),
                    stack: subject.stack.clone(),
                    status: record.status.to_string(),
                    action: "upgraded",
                    hint: "only a running stack is upgraded; resume or provision it first"
                        .to_owned(),
                });
            }
        };
        let template = self.template(&record.template)?;
        let service_uuid =
            record.coolify_service_uuid.clone().ok_or_else(|| EngineError::InvalidState {
                tenant: subject.tenant.clone(),
                stack: subject.stack.clone(),
                status: record.status.to_string(),
                action: "upgraded",
                hint: "it has no Coolify service; run `cfa provision`".to_owned(),
            })?;
        let current_env = self
            .inner
            .coolify
            .list_envs_by_service_uuid(&service_uuid)
            .await
            .map_err(|error| subject.coolify(Step::SetEnvironment, error))?;
        let current_values: BTreeMap<String, Option<String>> = current_env
            .iter()
            .map(|variable| {
                let value = variable
                    .value
                    .as_ref()
                    .or(variable.real_value.as_ref())
                    .map(|value| value.expose().to_owned());
                (variable.key.clone(), value)
            })
            .collect();
        let parameters = match parameters {
            Some(parameters) => parameters.clone(),
            None => self.current_parameters(template, &record, &current_values),
        };
        let rendered =
            self.render(&subject, template, &tenant_record, &slug, &stack_name, &parameters)?;
        let recorded = record.resource_limits.as_ref().and_then(RecordedLimits::from_json);
        let compose_hash = sha256(&rendered.compose_yaml);
        let compose_changed =
            recorded.as_ref().and_then(|recorded| recorded.compose_sha256.as_deref())
                != Some(compose_hash.as_str());
        let environment_changed = rendered.environment.iter().any(|entry| {
            current_values
                .get(&entry.name)
                .is_none_or(|value| value.as_deref() != Some(entry.value.as_str()))
        });
        tracing::info!(tenant = %subject.tenant, stack = %subject.stack, compose_changed, environment_changed, resuming, "upgrade");
        if !compose_changed && !environment_changed && !resuming {
            return Ok(outcome(&subject, &record, false));
        }
        let record = match record.status {
            StackStatus::Deploying => record,
            status => {
                let deploying = match status {
                    StackStatus::Error => next(status, StackEvent::Retry)
                        .and_then(|pending| next(pending, StackEvent::DeployStarted)),
                    _ => next(status, StackEvent::UpgradeStarted),
                }
                .map_err(|error| invalid_state(&subject, &record, &error))?;
                let patch = StackPatch {
                    status: Some(deploying),
                    error_message: Some(String::new()),
                    ..StackPatch::default()
                };
                self.update_record(
                    &subject,
                    Step::RecordDeploying,
                    &record,
                    &patch,
                    "stack.upgrade",
                )
                .await?
            }
        };
        let result = async {
            if compose_changed {
                let request = UpdateServiceRequest {
                    compose_yaml: Some(rendered.compose_yaml.clone()),
                    urls: Some(service_urls(&rendered)),
                    ..UpdateServiceRequest::default()
                };
                self.inner
                    .coolify
                    .update_service_by_uuid(&service_uuid, &request)
                    .await
                    .map_err(|error| subject.coolify(Step::UpdateService, error))?;
                self.failpoint(&subject, Step::UpdateService)?;
            }
            if environment_changed {
                self.set_environment(&subject, &service_uuid, &rendered).await?;
                self.failpoint(&subject, Step::SetEnvironment)?;
            }
            let queued_at = Instant::now();
            self.inner
                .coolify
                .restart_service_by_uuid(&service_uuid, false)
                .await
                .map_err(|error| subject.coolify(Step::RestartService, error))?;
            self.failpoint(&subject, Step::RestartService)?;
            let domain = rendered.domain.as_deref();
            // Done only once the old containers are provably gone (`StartKind::Restart`).
            self.wait_ready(&subject, &service_uuid, domain, StartKind::Restart, queued_at).await?;
            let mut recorded = recorded.clone().unwrap_or(RecordedLimits {
                server_uuid: String::new(),
                limits: rendered.limits,
                images: Vec::new(),
                compose_sha256: None,
            });
            recorded.compose_sha256 = Some(compose_hash.clone());
            // A plan change re-renders with other limits: they are what the stack reserves now.
            recorded.limits = rendered.limits;
            // A new image version is what the stack reserves now (Coolify's cleanup prunes the
            // old one once unused).
            recorded.images = rendered.requirements.images.clone();
            let status = next(StackStatus::Deploying, StackEvent::DeploySucceeded)
                .map_err(|error| invalid_state(&subject, &record, &error))?;
            let patch = StackPatch {
                status: Some(status),
                config: Some(Value::Object(
                    rendered
                        .config
                        .iter()
                        .map(|(key, value)| (key.clone(), Value::String(value.clone())))
                        .collect(),
                )),
                resource_limits: Some(recorded.to_json()),
                last_health_check: Some(jiff::Timestamp::now()),
                error_message: Some(String::new()),
                ..StackPatch::default()
            };
            self.update_record(&subject, Step::RecordRunning, &record, &patch, "stack.upgrade")
                .await
        }
        .await;
        match result {
            Ok(updated) => Ok(outcome(&subject, &updated, true)),
            Err(error) => {
                self.record_failure(&subject, "stack.upgrade", &record.id, &error).await;
                Err(error)
            }
        }
    }

    /// The parameters a stack runs with: PocketBase's non-secret `config`, plus each secret
    /// parameter's value read back from its Coolify variable.
    fn current_parameters(
        &self,
        template: &Template,
        record: &AgentStack,
        coolify_values: &BTreeMap<String, Option<String>>,
    ) -> BTreeMap<String, String> {
        let mut parameters: BTreeMap<String, String> = record
            .config
            .as_object()
            .map(|config| {
                config
                    .iter()
                    .filter_map(|(key, value)| {
                        value.as_str().map(|value| (key.clone(), value.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (name, parameter) in &template.manifest.parameters {
            if parameter.kind == cfa_templates::manifest::ParameterType::Secret {
                let variable = cfa_templates::render::secret_variable_name(name);
                if let Some(Some(value)) = coolify_values.get(&variable) {
                    parameters.insert(name.clone(), value.clone());
                }
            }
        }
        parameters
    }

    // ------------------------------------------------------------------ status

    /// The record of one stack.
    pub async fn stack(&self, tenant: &str, stack: &str) -> Result<AgentStack, EngineError> {
        let subject = Subject { tenant: tenant.to_owned(), stack: stack.to_owned() };
        let (_, record, _) = self.existing(&subject).await?;
        Ok(record)
    }
}

fn first_line_of(error: &CoolifyError) -> String {
    error.to_string().lines().next().unwrap_or_default().to_owned()
}

struct ProvisionContext<'a> {
    subject: &'a Subject,
    slug: &'a TenantSlug,
    stack_name: &'a StackName,
    tenant: &'a Tenant,
    rendered: &'a RenderedStack,
    preferred_server: Option<&'a str>,
}

fn service_urls(rendered: &RenderedStack) -> Vec<ServiceUrl> {
    rendered
        .url
        .iter()
        .map(|url| ServiceUrl { compose_service: url.service.clone(), url: url.url.clone() })
        .collect()
}

fn required<'a, T>(value: Option<&'a T>, subject: &Subject) -> Result<&'a T, EngineError> {
    value.ok_or_else(|| subject.unknown_stack())
}

fn invalid_state(
    subject: &Subject,
    record: &AgentStack,
    error: &cfa_core::TransitionError,
) -> EngineError {
    EngineError::InvalidState {
        tenant: subject.tenant.clone(),
        stack: subject.stack.clone(),
        status: record.status.to_string(),
        action: "changed this way",
        hint: error
            .to_string()
            .lines()
            .last()
            .unwrap_or_default()
            .trim_start_matches("hint: ")
            .to_owned(),
    }
}

fn outcome(subject: &Subject, record: &AgentStack, changed: bool) -> StackOutcome {
    let recorded = record.resource_limits.as_ref().and_then(RecordedLimits::from_json);
    StackOutcome {
        tenant: subject.tenant.clone(),
        stack: subject.stack.clone(),
        record_id: record.id.clone(),
        status: record.status,
        project_uuid: record.coolify_project_uuid.clone(),
        service_uuid: record.coolify_service_uuid.clone(),
        domain: record.domain.clone(),
        server_uuid: recorded.as_ref().map(|recorded| recorded.server_uuid.clone()),
        limits: recorded.map(|recorded| recorded.limits),
        changed,
    }
}

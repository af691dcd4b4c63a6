//! The engine: its state (clients, catalogue, settings, locks), the lookups and the render
//! every operation shares. Each operation lives in its own file under `engine/`: it observes
//! (`observe.rs`), plans ([`crate::plan`]) and runs the plan (`execute.rs`), recording every
//! outcome and auditing every mutation.
//!
//! Design notes:
//! - One per-stack lock around every operation on a stack, one per-tenant lock around "ensure
//!   project" (never two projects), one admission lock around "admit + create record" (capacity
//!   is not promised twice in this process). Across processes, PocketBase's unique
//!   (tenant_id, stack_name) index and its quota hook guard the record, and every Coolify
//!   project or service created is audited and settled against the other racers' (the oldest
//!   audited one wins, losers remove theirs: `engine/claims.rs`).
//! - Every step is idempotent; a rerun after a crash observes and plans only what is missing
//!   ([`crate::plan::plan`]).
//! - Secrets go to Coolify's env API only (`is_literal`), are never stored in PocketBase (its
//!   `config` is the render's non-secret `config`) and never logged (we log env keys).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Instant;

use cfa_coolify::types::{
    CreateProjectRequest, CreateServiceRequest, DeleteServiceOptions, EnvironmentRef,
    EnvironmentVariableUpsert, ServiceUrl, UpdateServiceRequest,
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
use crate::plan::{Intent, Observation, plan};
use crate::settings::EngineSettings;
use crate::steps::Step;

mod admission;
mod alerts;
mod backups;
mod cadence;
mod capacity;
mod claims;
mod controller;
mod delete;
mod domains;
mod drift;
mod environment_drift;
mod execute;
mod incident_store;
mod monitor;
mod monitor_backups;
mod monitor_tracks;
mod observe;
mod power;
mod provision;
mod read_only;
mod reconcile;
mod record;
mod tenant_api;
mod tenants;
mod upgrade;
mod views;
mod volume_restore;
mod wait;
pub use alerts::{AlertAction, AlertActionError};
pub use backups::{RestoreChoice, RestoreReport, StackBackups, VolumeArchive, VolumeBackups};
pub use cadence::{Backoffs, Cadence, GIVE_UP_AFTER, PassFocus, Waiting};
pub use capacity::{ServerView, resources_json};
use claims::Created;
pub use controller::{CONTROLLER_LEASE, ControllerPass, PassReport, StackActivation, Woken};
pub use delete::DeleteOptions;
pub use drift::{DriftKind, DriftOptions, DriftReport, Healing, OrphanService, StackDrift};
pub use execute::Completion;
use execute::{Operation, Progress};
pub use monitor::{MonitorPass, MonitorReport};
use observe::Begun;
use provision::service_urls;
pub use read_only::{
    DryRunAdmission, OperationDryRun, OperationRequest, ProvisionDryRun, StackHealth,
};
pub use reconcile::Reconciled;
pub use tenant_api::{SecretsTakeEffect, TenantRequestError};
pub use tenants::{PlanChange, TenantCreated, TenantRequest, tenant_json};
pub use views::stack_json;
pub use volume_restore::RestoredVolume;

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
    /// Starts looked at by activations that do not wait, by service uuid: what Coolify showed
    /// so far decides the next look (`wait::Look`).
    looks: StdMutex<HashMap<String, wait::Look>>,
    /// The monitor's tracks as of its last pass, by key (`monitor::CachedTrack`): their
    /// window of recent checks changes every check, and is written to PocketBase only with a
    /// change that matters, so a steady stream costs no write.
    tracks: StdMutex<HashMap<String, monitor_tracks::CachedTrack>>,
    admission_lock: Mutex<()>,
    /// A lease this process took from a controller that stopped renewing it (not a release):
    /// the next monitor pass reports it as `controller_lease_lost`.
    lease_lost: StdMutex<Option<String>>,
    /// When the monitor last listed the bucket for its backup check.
    backups_checked_at: StdMutex<Option<Instant>>,
    /// Each server's destination for new services (one lookup per server and process).
    destinations: StdMutex<HashMap<String, Option<String>>>,
}

/// The record's `resource_limits` json. The Coolify server uuid is stored with the limits
/// because capacity accounting needs both together (the limits reserve room on that server)
/// and `agent_stacks` has no server field; the compose hash lets an upgrade skip an unchanged
/// PATCH. The images are kept so capacity can count each image once per server; the volumes
/// (with backups: since when they are due) so the monitor can find each one's archives in the
/// bucket without a Coolify call per stack.
#[derive(Debug, Clone, PartialEq)]
struct RecordedLimits {
    server_uuid: String,
    limits: Resources,
    images: Vec<ImageFootprint>,
    compose_sha256: Option<String>,
    /// The stack's Docker volumes as Coolify stores them; `None` until they were looked up.
    volumes: Option<Vec<RecordedVolume>>,
    /// When daily backups became due (unix ms): the schedule was first set, or the volumes
    /// were first recorded for a stack that already had one.
    backups_due_since_ms: Option<i64>,
}

/// One persistent volume: the Docker volume's name and Coolify's storage uuid (its archives'
/// folder in the bucket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordedVolume {
    pub(crate) name: String,
    pub(crate) storage_uuid: String,
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
        if let Some(volumes) = &self.volumes {
            value["volumes"] = volumes
                .iter()
                .map(|volume| json!({ "name": volume.name, "storage_uuid": volume.storage_uuid }))
                .collect();
        }
        if let Some(since) = self.backups_due_since_ms {
            value["backups_due_since_ms"] = json!(since);
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
            volumes: value.get("volumes").and_then(Value::as_array).map(|volumes| {
                volumes
                    .iter()
                    .filter_map(|volume| {
                        Some(RecordedVolume {
                            name: volume.get("name")?.as_str()?.to_owned(),
                            storage_uuid: volume.get("storage_uuid")?.as_str()?.to_owned(),
                        })
                    })
                    .collect()
            }),
            backups_due_since_ms: value.get("backups_due_since_ms").and_then(Value::as_i64),
        })
    }
}

/// Admission's answer and the servers it weighed.
pub(crate) struct AdmissionDecision {
    pub(crate) outcome: Result<cfa_core::admission::Admitted, cfa_core::AdmissionError>,
    pub(crate) servers: Vec<ServerCapacity>,
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
                looks: StdMutex::new(HashMap::new()),
                tracks: StdMutex::new(HashMap::new()),
                admission_lock: Mutex::new(()),
                lease_lost: StdMutex::new(None),
                backups_checked_at: StdMutex::new(None),
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
        (slug, stack): (&TenantSlug, &StackName),
        parameters: &BTreeMap<String, String>,
        secrets_pending: bool,
    ) -> Result<RenderedStack, EngineError> {
        // Platform values (the Router's URL) fill what the request and the record leave
        // out, whoever asked: the CLI, the controller for a tenant's record, an upgrade.
        let mut parameters = parameters.clone();
        for (name, value) in &self.inner.settings.platform_parameters {
            if template.manifest.parameters.contains_key(name) && !parameters.contains_key(name) {
                parameters.insert(name.clone(), value.clone());
            }
        }
        let parameters = &parameters;
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
            secrets_pending,
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

    // ------------------------------------------------------------------ provision

    // ------------------------------------------------------------------ suspend, resume

    // ------------------------------------------------------------------ upgrade

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
        remedy: Box::new(cfa_core::lifecycle::remedy_in(
            error.from,
            cfa_core::StackRef::new(&subject.tenant, &subject.stack),
        )),
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

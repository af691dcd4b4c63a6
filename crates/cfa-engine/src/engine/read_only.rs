//! Read-only operations: dry runs (what an operation would do), the capacity view and health.
//! Nothing is written anywhere. Secret values never leave this module (the environment is redacted
//! and the compose holds only `${NAME}` references).
//!
//! A dry run reads PocketBase and Coolify (tenant, records, servers, projects, the service) so
//! its admission decision and its list of API calls are the ones a real run would make now.

use cfa_core::health::{CoolifyState, CoolifyStatus};
use cfa_core::plan::BackupPolicy;
use cfa_core::{
    HealthJudgement, HealthVerdict, ProbeOutcome, Resources, StackStatus, judge_health,
};
use cfa_pocketbase::{AgentStack, StackFilter};
use cfa_templates::EnvironmentEntry;

use super::{Engine, Progress, ProvisionRequest, RecordedLimits, is_running_status};
use crate::error::{EngineError, Subject};
use crate::probe::probe;
use crate::steps::{ProvisionObservation, Step, plan_provision};

/// The admission decision of a dry run.
#[derive(Debug, Clone, PartialEq)]
pub enum DryRunAdmission {
    /// The stack is admitted and would be placed on this server with these limits.
    Admitted {
        server_uuid: String,
        server_name: String,
        limits: Resources,
        /// Disk for images the server does not have yet, reserved on top of `limits`.
        image_disk_mb: u32,
    },
    /// The stack already has a record: it was admitted before, on this server.
    AlreadyAdmitted { server_uuid: String, limits: Resources },
    /// A rule says no; a real run would change nothing.
    Refused { reason: String },
}

/// What a dry run of a provision found and would do.
#[derive(Debug, Clone)]
pub struct ProvisionDryRun {
    pub tenant: String,
    pub stack: String,
    pub template: String,
    pub plan: String,
    pub admission: DryRunAdmission,
    /// The stack's limits as rendered (plan ceiling within the template's profile).
    pub limits: Resources,
    pub domain: Option<String>,
    /// The compose Coolify would get; it holds no secret values.
    pub compose_yaml: String,
    /// The environment Coolify's env API would get, secret values replaced by `***`.
    pub environment: Vec<EnvironmentEntry>,
    /// The steps a real run would take now, in order.
    pub steps: Vec<Step>,
    /// The HTTP calls of those steps, e.g. `POST /api/v1/services`.
    pub calls: Vec<String>,
}

/// A stack's health as [`Engine::health`] saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct StackHealth {
    /// Coolify's status string, or why there is none (`not created`, `missing in Coolify`).
    pub coolify_status: String,
    pub probe: ProbeOutcome,
    pub judgement: HealthJudgement,
}

/// What a dry run of suspend, resume, upgrade or delete found and would do.
#[derive(Debug, Clone)]
pub struct OperationDryRun {
    pub tenant: String,
    pub stack: String,
    pub operation: &'static str,
    pub status: StackStatus,
    pub service_uuid: Option<String>,
    /// Whether the operation is allowed from the current status; `None` when it is.
    pub refusal: Option<String>,
    pub calls: Vec<String>,
}

/// The HTTP calls one provision step makes (reads included), as `METHOD path`.
fn calls_of(
    step: Step,
    wants_backups: bool,
    has_domain: bool,
    project_exists: bool,
) -> Vec<String> {
    let record = "/api/collections/agent_stacks/records";
    let audit = "POST /api/collections/audit_log/records (audit)".to_owned();
    let mut calls: Vec<String> = match step {
        Step::RecordPending => vec![
            format!("GET {record} (all stacks, for quota and capacity)"),
            "GET /api/v1/servers".to_owned(),
            format!("POST {record} (status pending, limits, server)"),
            audit,
        ],
        Step::RecordDeploying => vec![format!("PATCH {record}/:id (status deploying)"), audit],
        Step::EnsureProject if project_exists => vec!["GET /api/v1/projects (found)".to_owned()],
        Step::EnsureProject => vec![
            "GET /api/v1/projects".to_owned(),
            "POST /api/v1/projects (cfa-<tenant>)".to_owned(),
            "POST /api/collections/audit_log/records (coolify.project_created)".to_owned(),
            "GET /api/v1/projects (re-check: never two)".to_owned(),
        ],
        Step::EnsureEnvironment => vec![
            "GET /api/v1/projects/:uuid/environments (unless just seen or created)".to_owned(),
        ],
        Step::CreateService => vec![
            "GET /api/v1/servers/:uuid/destinations (once per server and process)".to_owned(),
            "POST /api/v1/services (docker_compose_raw, urls, server, destination)".to_owned(),
            "POST /api/collections/audit_log/records (coolify.service_created)".to_owned(),
            "GET /api/v1/projects/:uuid/production (re-check: never two)".to_owned(),
        ],
        Step::AdoptService => vec![],
        Step::RecordService => vec![format!("PATCH {record}/:id (coolify uuids, domain)"), audit],
        Step::SetBackupSchedule if wants_backups => vec![
            "GET /api/v1/services/:uuid/storages".to_owned(),
            "PUT /api/v1/services/:uuid/storages/:storage/backups (daily) per volume".to_owned(),
        ],
        Step::SetBackupSchedule => vec![],
        Step::SetEnvironment => vec!["PATCH /api/v1/services/:uuid/envs/bulk".to_owned()],
        Step::StartService => vec!["POST /api/v1/services/:uuid/start".to_owned()],
        Step::WaitReady => {
            let mut calls = vec!["GET /api/v1/services/:uuid (polled until healthy)".to_owned()];
            if has_domain {
                calls.push("GET https://<domain>/ (probe, until it answers)".to_owned());
            }
            calls
        }
        Step::RecordRunning => vec![format!("PATCH {record}/:id (status running)"), audit],
        Step::UpdateService => vec!["PATCH /api/v1/services/:uuid".to_owned()],
        Step::RestartService => vec!["POST /api/v1/services/:uuid/restart".to_owned()],
        Step::StopService => {
            vec!["POST /api/v1/services/:uuid/stop?docker_cleanup=false".to_owned()]
        }
        Step::WaitStopped => vec!["GET /api/v1/services/:uuid (polled until exited)".to_owned()],
        Step::RecordStopped => vec![format!("PATCH {record}/:id (status stopped)"), audit],
        Step::FinalBackup => vec![
            "GET /api/v1/services/:uuid/storages".to_owned(),
            "POST /api/v1/services/:uuid/storages/:storage/backups/run per volume".to_owned(),
        ],
        Step::DeleteService => vec![
            "DELETE /api/v1/services/:uuid?delete_configurations=true&delete_volumes=true&docker_cleanup=true&delete_connected_networks=true".to_owned(),
        ],
        Step::WaitDeleted => vec!["GET /api/v1/services/:uuid (polled until 404)".to_owned()],
        Step::DeleteProject => vec![
            "GET /api/v1/projects/:uuid/production (is it empty?)".to_owned(),
            "DELETE /api/v1/projects/:uuid (when empty)".to_owned(),
        ],
        Step::DeleteRecord => vec![format!("DELETE {record}/:id"), audit],
    };
    calls.retain(|call| !call.is_empty());
    calls
}

impl Engine {
    /// What [`Engine::provision`] would do now: admission, limits, the redacted render and the
    /// exact calls. Reads PocketBase and Coolify, writes nothing.
    pub async fn dry_run_provision(
        &self,
        request: &ProvisionRequest,
    ) -> Result<ProvisionDryRun, EngineError> {
        let subject = Subject { tenant: request.tenant.clone(), stack: request.stack.clone() };
        let (slug, stack_name) = self.parse_names(&subject)?;
        let tenant = self.tenant(&subject).await?;
        let template = self.template(&request.template)?;
        let record = self.find_record(&subject, &tenant.id, Step::RecordPending).await?;
        let rendered =
            self.render(&subject, template, &tenant, &slug, &stack_name, &request.parameters)?;
        let recorded = record
            .as_ref()
            .and_then(|record| record.resource_limits.as_ref())
            .and_then(RecordedLimits::from_json);
        let admission = match (&record, &recorded) {
            (Some(_), Some(recorded)) => DryRunAdmission::AlreadyAdmitted {
                server_uuid: recorded.server_uuid.clone(),
                limits: recorded.limits,
            },
            _ => {
                self.dry_run_admit(&subject, &tenant, &rendered, record.is_some(), request).await?
            }
        };
        let mut progress = Progress { record, recorded, ..Progress::default() };
        let observed = self.observe(&subject, &slug, &stack_name, &mut progress).await?;
        let project_exists = observed.project_exists;
        let plan = self.inner.settings.plans.plan(tenant.plan_tier);
        let wants_backups =
            matches!(plan.backups, BackupPolicy::Daily { .. }) && rendered.requirements.disk_mb > 0;
        let steps = match admission {
            DryRunAdmission::Refused { .. } => Vec::new(),
            _ => plan_provision(&ProvisionObservation { wants_backups, ..observed }),
        };
        let calls = steps
            .iter()
            .flat_map(|step| {
                calls_of(*step, wants_backups, rendered.domain.is_some(), project_exists)
            })
            .collect();
        Ok(ProvisionDryRun {
            tenant: subject.tenant.clone(),
            stack: subject.stack.clone(),
            template: rendered.template.clone(),
            plan: tenant.plan_tier.to_string(),
            admission,
            limits: rendered.limits,
            domain: rendered.domain.clone(),
            compose_yaml: rendered.compose_yaml.clone(),
            environment: rendered.redacted_environment(),
            steps,
            calls,
        })
    }

    async fn dry_run_admit(
        &self,
        subject: &Subject,
        tenant: &cfa_pocketbase::Tenant,
        rendered: &cfa_templates::RenderedStack,
        record_exists: bool,
        request: &ProvisionRequest,
    ) -> Result<DryRunAdmission, EngineError> {
        let decision = self
            .admission_decision(
                subject,
                tenant,
                &rendered.requirements,
                request.preferred_server.as_deref(),
                record_exists,
                Step::RecordPending,
            )
            .await?;
        Ok(match decision.outcome {
            Ok(admitted) => {
                let server_name = decision
                    .servers
                    .iter()
                    .find(|server| server.id == admitted.server_id)
                    .map(|server| server.name.clone())
                    .unwrap_or_default();
                DryRunAdmission::Admitted {
                    server_uuid: admitted.server_id,
                    server_name,
                    limits: admitted.limits,
                    image_disk_mb: admitted.image_disk_mb,
                }
            }
            Err(refusal) => DryRunAdmission::Refused { reason: refusal.to_string() },
        })
    }

    /// A stack's health now: Coolify's status string and, where the stack has a URL and its
    /// containers run, our own probe, judged together (as readiness is). Writes nothing.
    pub async fn health(&self, record: &AgentStack) -> StackHealth {
        let coolify_status =
            match record.coolify_service_uuid.as_deref().filter(|uuid| !uuid.is_empty()) {
                None => "not created".to_owned(),
                Some(uuid) => match self.inner.coolify.get_service_by_uuid(uuid).await {
                    Ok(service) => service.status,
                    Err(error) if error.is_not_found() => "missing in Coolify".to_owned(),
                    Err(error) => format!(
                        "unknown ({})",
                        error.to_string().lines().next().unwrap_or_default()
                    ),
                },
            };
        let domain = record.domain.as_deref().filter(|domain| !domain.is_empty());
        let probe_outcome = match domain {
            Some(domain)
                if CoolifyStatus::parse(&coolify_status).state == CoolifyState::Running =>
            {
                probe(&self.inner.http, &self.inner.settings.probe, domain).await
            }
            Some(_) => ProbeOutcome::Failed {
                reason: "not probed: the containers are not running".to_owned(),
            },
            None => ProbeOutcome::NotApplicable,
        };
        let mut judgement = judge_health(&coolify_status, &probe_outcome);
        // The pure judge cannot tell a deploy still warming up from a stack that stopped
        // serving; the record can: one that reached `running` and no longer answers is unhealthy.
        if record.status == StackStatus::Running && judgement.verdict == HealthVerdict::Starting {
            judgement = HealthJudgement {
                verdict: HealthVerdict::Unhealthy,
                reason: format!("was running, now: {}", judgement.reason),
            };
        }
        StackHealth { coolify_status, probe: probe_outcome, judgement }
    }

    /// Every usable Coolify server with its machine, reserve, ratios and what the recorded
    /// stacks reserve on it: what admission sees.
    pub async fn capacity(&self) -> Result<Vec<cfa_core::ServerCapacity>, EngineError> {
        let subject = Subject { tenant: "*".to_owned(), stack: "*".to_owned() };
        let all_stacks = self
            .inner
            .pocketbase
            .stack_list_all(&StackFilter::default(), false)
            .await
            .map_err(|error| subject.pocketbase(Step::RecordPending, error))?;
        self.server_capacities(&subject, &all_stacks).await
    }

    /// What suspend, resume, upgrade or delete would do now. Reads, writes nothing.
    pub async fn dry_run_operation(
        &self,
        operation: &'static str,
        tenant: &str,
        stack: &str,
    ) -> Result<OperationDryRun, EngineError> {
        let subject = Subject { tenant: tenant.to_owned(), stack: stack.to_owned() };
        let (tenant_record, record, _lock) = self.existing(&subject).await?;
        let service_status = match &record.coolify_service_uuid {
            Some(uuid) => match self.inner.coolify.get_service_by_uuid(uuid).await {
                Ok(service) => Some(service.status),
                Err(error) if error.is_not_found() => None,
                Err(error) => return Err(subject.coolify(Step::StopService, error)),
            },
            None => None,
        };
        let running = service_status.as_deref().is_some_and(is_running_status);
        let plan = self.inner.settings.plans.plan(tenant_record.plan_tier);
        let paid_backups = matches!(plan.backups, BackupPolicy::Daily { .. });
        let (steps, refusal): (Vec<Step>, Option<String>) = match operation {
            "suspend" => match record.status {
                StackStatus::Stopped => (vec![], None),
                StackStatus::Running | StackStatus::Error => (
                    [Step::StopService, Step::WaitStopped]
                        .into_iter()
                        .filter(|_| running)
                        .chain([Step::RecordStopped])
                        .collect(),
                    None,
                ),
                status => (vec![], Some(format!("a {status} stack cannot be suspended"))),
            },
            "resume" => match record.status {
                StackStatus::Stopped | StackStatus::Error => (
                    vec![
                        Step::RecordDeploying,
                        Step::StartService,
                        Step::WaitReady,
                        Step::RecordRunning,
                    ],
                    None,
                ),
                StackStatus::Running => (vec![Step::WaitReady], None),
                status => (vec![], Some(format!("a {status} stack cannot be resumed"))),
            },
            "upgrade" => match record.status {
                StackStatus::Running | StackStatus::Error | StackStatus::Stopped => (
                    vec![
                        Step::RecordDeploying,
                        Step::UpdateService,
                        Step::SetEnvironment,
                        Step::RestartService,
                        Step::WaitReady,
                        Step::RecordRunning,
                    ],
                    None,
                ),
                status => (vec![], Some(format!("a {status} stack cannot be upgraded"))),
            },
            _ => {
                let mut steps = Vec::new();
                if paid_backups && record.coolify_service_uuid.is_some() && service_status.is_some()
                {
                    steps.push(Step::FinalBackup);
                }
                if service_status.is_some() {
                    steps.extend([Step::DeleteService, Step::WaitDeleted]);
                }
                if record.coolify_project_uuid.is_some() {
                    steps.push(Step::DeleteProject);
                }
                steps.push(Step::DeleteRecord);
                (steps, None)
            }
        };
        Ok(OperationDryRun {
            tenant: subject.tenant,
            stack: subject.stack,
            operation,
            status: record.status,
            service_uuid: record.coolify_service_uuid,
            refusal,
            calls: steps.iter().flat_map(|step| calls_of(*step, false, false, true)).collect(),
        })
    }
}

//! Read-only operations: dry runs (what an operation would do), the capacity view and health.
//! Nothing is written anywhere. Secret values never leave this module (the environment is redacted
//! and the compose holds only `${NAME}` references).
//!
//! A dry run reads PocketBase and Coolify (tenant, records, servers, projects, the service) so
//! its admission decision and its list of API calls are the ones a real run would make now.

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt as _;

use cfa_core::health::{CoolifyState, CoolifyStatus};
use cfa_core::{
    HealthJudgement, HealthVerdict, ProbeOutcome, Resources, StackStatus, judge_health,
};
use cfa_pocketbase::{AgentStack, StackFilter};
use cfa_templates::EnvironmentEntry;

use super::{Engine, Progress, ProvisionRequest, RecordedLimits};
use crate::error::{EngineError, Subject};
use crate::plan::{Intent, Observation, PlannedCall, calls_of_step, observation_calls, plan};
use crate::probe::probe;
use crate::steps::Step;

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
    /// Why the planner refuses the provision now (a suspended stack is resumed instead).
    pub refusal: Option<String>,
    /// The steps a real run would take now, in order.
    pub steps: Vec<Step>,
    /// The calls of the observation and of those steps, e.g. `POST /api/v1/services`.
    pub calls: Vec<PlannedCall>,
}

/// A stack's health as [`Engine::health`] saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct StackHealth {
    /// Coolify's status string, or why there is none (`not created`, `missing in Coolify`).
    pub coolify_status: String,
    pub probe: ProbeOutcome,
    pub judgement: HealthJudgement,
}

/// An operation on an existing stack, as a dry run is asked for it.
#[derive(Debug, Clone, Copy)]
pub enum OperationRequest<'a> {
    Suspend,
    Resume,
    /// `parameters = None` keeps the current ones, as [`Engine::upgrade`].
    Upgrade {
        parameters: Option<&'a BTreeMap<String, String>>,
    },
    Delete,
}

/// What a dry run of suspend, resume, upgrade or delete found and would do.
#[derive(Debug, Clone)]
pub struct OperationDryRun {
    pub tenant: String,
    pub stack: String,
    pub operation: &'static str,
    pub status: StackStatus,
    pub service_uuid: Option<String>,
    /// Why the operation would be refused now; `None` when it would run.
    pub refusal: Option<String>,
    /// The steps a real run would take now, in order (none when refused or nothing to do).
    pub steps: Vec<Step>,
    /// The calls of the observation and of those steps.
    pub calls: Vec<PlannedCall>,
}

/// The observation's calls followed by each step's.
fn planned_calls(intent: Intent, observed: &Observation, steps: &[Step]) -> Vec<PlannedCall> {
    let mut calls = observation_calls(intent, observed);
    calls.extend(steps.iter().flat_map(|step| calls_of_step(*step, observed)));
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
        let rendered = self.render(
            &subject,
            template,
            &tenant,
            (&slug, &stack_name),
            &request.parameters,
            false,
        )?;
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
        let intent =
            Intent::Provision { backups: self.wants_backups(&tenant, &rendered), start: true };
        let (steps, refusal) = match (&admission, plan(intent, &observed)) {
            (_, Err(refusal)) => (Vec::new(), Some(subject.plan_refused(refusal).to_string())),
            (DryRunAdmission::Refused { .. }, Ok(_)) => (Vec::new(), None),
            (_, Ok(steps)) => (steps, None),
        };
        let calls = planned_calls(intent, &observed, &steps);
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
            refusal,
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
                    Err(error) => unknown_status(&error),
                },
            };
        self.health_with_status(record, coolify_status).await
    }

    /// The health of several stacks from one list of Coolify's services (not one call per
    /// stack: at Coolify's 200 requests a minute, 10,000 stacks would take 50 minutes), probed
    /// `[monitor] concurrency` at a time; in the order of `records`. One stack is asked for by
    /// itself.
    pub async fn health_of_all(&self, records: &[AgentStack]) -> Vec<StackHealth> {
        if let [record] = records {
            return vec![self.health(record).await];
        }
        let statuses: Result<HashMap<String, String>, String> =
            match self.inner.coolify.list_services().await {
                Ok(services) => {
                    Ok(services.into_iter().map(|service| (service.uuid, service.status)).collect())
                }
                Err(error) => Err(unknown_status(&error)),
            };
        let checks = records.iter().map(|record| {
            let coolify_status = match (
                record.coolify_service_uuid.as_deref().filter(|uuid| !uuid.is_empty()),
                &statuses,
            ) {
                (None, _) => "not created".to_owned(),
                (Some(_), Err(unknown)) => unknown.clone(),
                (Some(uuid), Ok(statuses)) => {
                    statuses.get(uuid).cloned().unwrap_or_else(|| "missing in Coolify".to_owned())
                }
            };
            self.health_with_status(record, coolify_status)
        });
        futures::stream::iter(checks)
            .buffered(self.inner.settings.monitor.concurrency.max(1))
            .collect()
            .await
    }

    async fn health_with_status(&self, record: &AgentStack, coolify_status: String) -> StackHealth {
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

    /// What suspend, resume, upgrade or delete would do now: the same observation and the
    /// same plan as the run. Reads, writes nothing.
    pub async fn dry_run_operation(
        &self,
        request: OperationRequest<'_>,
        tenant: &str,
        stack: &str,
    ) -> Result<OperationDryRun, EngineError> {
        let subject = Subject { tenant: tenant.to_owned(), stack: stack.to_owned() };
        let begun = self.begin(&subject, false).await?;
        let planned = match request {
            OperationRequest::Suspend => Ok(Intent::Suspend),
            OperationRequest::Resume => Ok(Intent::Resume),
            OperationRequest::Delete => Ok(self.delete_intent(&begun.tenant)),
            OperationRequest::Upgrade { parameters } => self
                .upgrade_intent(&subject, &begun, parameters)
                .await
                .map(|(intent, _rendered)| intent),
        };
        let (intent, steps, refusal) = match planned {
            Ok(intent) => match plan(intent, &begun.observed) {
                Ok(steps) => (intent, steps, None),
                Err(refusal) => (intent, Vec::new(), Some(subject.plan_refused(refusal))),
            },
            Err(error @ EngineError::InvalidState { .. }) => {
                let any_change =
                    Intent::Upgrade { compose_changed: true, environment_changed: true };
                (any_change, Vec::new(), Some(error))
            }
            Err(error) => return Err(error),
        };
        let record = begun.progress.record.as_ref().ok_or_else(|| subject.unknown_stack())?;
        Ok(OperationDryRun {
            tenant: subject.tenant.clone(),
            stack: subject.stack.clone(),
            operation: intent.operation(),
            status: record.status,
            service_uuid: begun.progress.service_uuid.clone(),
            refusal: refusal.map(|error| error.to_string()),
            calls: planned_calls(intent, &begun.observed, &steps),
            steps,
        })
    }
}

fn unknown_status(error: &cfa_coolify::CoolifyError) -> String {
    format!("unknown ({})", error.to_string().lines().next().unwrap_or_default())
}

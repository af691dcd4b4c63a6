//! The executor: runs one planned step of any operation, and walks the record through the
//! lifecycle on the way. The planner ([`crate::plan`]) decided which steps run; nothing here
//! decides that again.

use super::*;
use crate::engine::delete::KeptArchive;

/// What the steps of one operation share: who, what is asked, and the render it applies.
pub(super) struct Operation<'a> {
    pub(super) subject: &'a Subject,
    pub(super) intent: Intent,
    pub(super) slug: &'a TenantSlug,
    pub(super) stack_name: &'a StackName,
    pub(super) tenant: &'a Tenant,
    /// The render this operation applies (provision, upgrade); `None` for the others.
    pub(super) rendered: Option<&'a RenderedStack>,
    pub(super) preferred_server: Option<&'a str>,
    pub(super) delete_options: DeleteOptions,
    /// Wait for readiness here (the CLI), or look once and stop, leaving the record
    /// `deploying` for the next activation to look again (the controller).
    pub(super) wait: bool,
}

impl Operation<'_> {
    /// The audit action of the operation's record writes.
    pub(super) fn action(&self) -> &'static str {
        match self.intent {
            Intent::Provision { .. } => "stack.provision",
            Intent::Suspend | Intent::KeepStopped => "stack.suspend",
            Intent::Resume => "stack.resume",
            Intent::Upgrade { .. } => "stack.upgrade",
            Intent::Delete { .. } => "stack.delete",
        }
    }

    pub(super) fn rendered(&self) -> Result<&RenderedStack, EngineError> {
        self.rendered.ok_or_else(|| self.subject.unknown_stack())
    }
}

/// How far an operation that starts containers (provision, resume, upgrade) goes in one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Completion {
    /// Until the containers run and serve, or provably do not: the CLI's default.
    #[default]
    Ready,
    /// Until the start or restart is queued, readiness looked at once: a stack not ready yet
    /// stays `deploying`, and the next activation (the controller's, or `cfa reconcile`)
    /// finishes it.
    Queued,
}

/// What the steps of one operation found and made so far.
#[derive(Debug, Default)]
pub(super) struct Progress {
    pub(super) record: Option<AgentStack>,
    pub(super) project_uuid: Option<String>,
    pub(super) service_uuid: Option<String>,
    pub(super) recorded: Option<RecordedLimits>,
    /// This run created the service from the rendered compose (so its hash is what runs).
    pub(super) created_service: bool,
    /// The project's `production` environment was seen (or came with a project created now).
    pub(super) environment_known: bool,
    /// When this run (or, seen in the audit log, an earlier one) queued Coolify's start.
    pub(super) start_queued_at: Option<Instant>,
    /// A restart was queued: readiness waits until the old containers are gone.
    pub(super) restarted: bool,
    /// The final backups a delete kept.
    pub(super) kept: Vec<KeptArchive>,
    /// Readiness was looked at once and is not there yet (an activation that does not wait):
    /// the remaining steps are the next activation's.
    pub(super) paused: Option<String>,
}

impl Engine {
    /// Runs the planned steps in order; a failpoint may stop the run after any of them.
    pub(super) async fn run_steps(
        &self,
        operation: &Operation<'_>,
        steps: &[Step],
        progress: &mut Progress,
    ) -> Result<(), EngineError> {
        tracing::debug!(tenant = %operation.subject.tenant, stack = %operation.subject.stack, ?steps, "planned");
        for step in steps {
            self.run_step(operation, *step, progress).await?;
            if progress.paused.is_some() {
                return Ok(());
            }
            self.failpoint(operation.subject, *step)?;
        }
        Ok(())
    }

    async fn run_step(
        &self,
        operation: &Operation<'_>,
        step: Step,
        progress: &mut Progress,
    ) -> Result<(), EngineError> {
        let subject = operation.subject;
        let coolify = &self.inner.coolify;
        let service_uuid = progress.service_uuid.clone();
        let service_uuid = || required(service_uuid.as_ref(), subject);
        match step {
            Step::RecordPending => self.create_record(operation, progress).await,
            Step::EnsureProject
            | Step::EnsureEnvironment
            | Step::CreateService
            | Step::AdoptService
            | Step::RecordService
            | Step::SetBackupSchedule => self.run_provision_step(operation, step, progress).await,
            Step::RecordDeploying => {
                let record = required(progress.record.as_ref(), subject)?;
                let provisioning = matches!(operation.intent, Intent::Provision { .. });
                if record.status == StackStatus::Deploying
                    || (provisioning && record.status == StackStatus::Running)
                {
                    // A concurrent run (another process) got here first, or even finished.
                    return Ok(());
                }
                let status = cfa_core::lifecycle::to_deploying(record.status)
                    .map_err(|error| invalid_state(subject, record, &error))?;
                let patch = StackPatch {
                    status: Some(status),
                    error_message: Some(String::new()),
                    ..StackPatch::default()
                };
                // A provision's deploy start has its own audit action (it may follow a create).
                let action = if provisioning { "stack.deploying" } else { operation.action() };
                let updated = self.update_record(subject, step, record, &patch, action).await?;
                progress.record = Some(updated);
                Ok(())
            }
            Step::SetEnvironment => {
                self.set_environment(subject, service_uuid()?, operation.rendered()?).await
            }
            Step::UpdateService => {
                let rendered = operation.rendered()?;
                let request = UpdateServiceRequest {
                    compose_yaml: Some(rendered.compose_yaml.clone()),
                    urls: Some(service_urls(rendered)),
                    ..UpdateServiceRequest::default()
                };
                coolify
                    .update_service_by_uuid(service_uuid()?, &request)
                    .await
                    .map_err(|error| subject.coolify(step, error))?;
                Ok(())
            }
            Step::StartService => {
                self.forget_look(service_uuid()?);
                progress.start_queued_at = Some(self.start(subject, service_uuid()?).await?);
                Ok(())
            }
            Step::RestartService => {
                self.forget_look(service_uuid()?);
                progress.start_queued_at = Some(Instant::now());
                progress.restarted = true;
                coolify
                    .restart_service_by_uuid(service_uuid()?, false)
                    .await
                    .map_err(|error| subject.coolify(step, error))?;
                self.audit_restart(subject, service_uuid()?).await;
                Ok(())
            }
            Step::WaitReady => {
                // Skipped start (the service already runs, or an earlier run queued it): the
                // wait starts now.
                let queued_at = progress.start_queued_at.unwrap_or_else(Instant::now);
                let domain = match operation.rendered {
                    Some(rendered) => rendered.domain.clone(),
                    None => progress.record.as_ref().and_then(|record| record.domain.clone()),
                };
                let domain = domain.filter(|domain| !domain.is_empty());
                // After a restart, ready only once the old containers are provably gone.
                let kind = if progress.restarted { StartKind::Restart } else { StartKind::Start };
                if !operation.wait {
                    progress.paused = self
                        .look_ready(subject, service_uuid()?, domain.as_deref(), kind, queued_at)
                        .await?;
                    return Ok(());
                }
                self.wait_ready(subject, service_uuid()?, domain.as_deref(), kind, queued_at).await
            }
            Step::RecordRunning => self.record_running(operation, progress).await,
            Step::StopService => self.stop(subject, service_uuid()?).await,
            Step::WaitStopped => {
                self.wait_status(subject, step, service_uuid()?, |status| {
                    status.is_none_or(|status| {
                        !is_running_status(status) && !status.starts_with("degraded")
                    })
                })
                .await
            }
            Step::RecordStopped => {
                let record = required(progress.record.as_ref(), subject)?;
                let status = next(record.status, StackEvent::Suspend)
                    .map_err(|error| invalid_state(subject, record, &error))?;
                let patch = StackPatch {
                    status: Some(status),
                    error_message: Some(String::new()),
                    ..StackPatch::default()
                };
                let updated =
                    self.update_record(subject, step, record, &patch, operation.action()).await?;
                progress.record = Some(updated);
                Ok(())
            }
            Step::FinalBackup => {
                let plan = self.inner.settings.plans.plan(operation.tenant.plan_tier);
                if let BackupPolicy::Daily { retention_days } = plan.backups {
                    progress.kept = self
                        .final_backup(
                            subject,
                            service_uuid()?,
                            retention_days,
                            operation.delete_options,
                        )
                        .await?;
                }
                Ok(())
            }
            Step::DeleteService => {
                match coolify
                    .delete_service_by_uuid(service_uuid()?, DeleteServiceOptions::default())
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(error) if error.is_not_found() => Ok(()),
                    Err(error) => Err(subject.coolify(step, error)),
                }
            }
            Step::WaitDeleted => {
                self.wait_status(subject, step, service_uuid()?, |status| status.is_none()).await
            }
            Step::DeleteProject => {
                let project_uuid = required(progress.project_uuid.as_ref(), subject)?;
                self.delete_project_when_empty(subject, operation.slug, project_uuid).await
            }
            Step::DeleteRecord => {
                let record = required(progress.record.as_ref(), subject)?;
                self.delete_record(subject, record).await
            }
        }
    }

    /// Records `running` once ready, with what the operation changed: the Coolify uuids and
    /// limits of a provision, the config and limits of an upgrade, only the status of a resume.
    async fn record_running(
        &self,
        operation: &Operation<'_>,
        progress: &mut Progress,
    ) -> Result<(), EngineError> {
        let subject = operation.subject;
        let record = required(progress.record.as_ref(), subject)?;
        let status = cfa_core::lifecycle::to_running(record.status)
            .map_err(|error| invalid_state(subject, record, &error))?;
        let mut patch = StackPatch {
            status: Some(status),
            last_health_check: Some(jiff::Timestamp::now()),
            error_message: Some(String::new()),
            ..StackPatch::default()
        };
        if let Some(rendered) = operation.rendered {
            let mut recorded = required(progress.recorded.as_ref(), subject)?.clone();
            let upgrading = matches!(operation.intent, Intent::Upgrade { .. });
            // The hash says which compose Coolify runs: ours when this run created or patched
            // the service; else the one recorded before (an upgrade compares against it).
            if upgrading || progress.created_service || recorded.compose_sha256.is_none() {
                recorded.compose_sha256 = Some(sha256(&rendered.compose_yaml));
            }
            if upgrading {
                // A plan change re-renders with other limits, a new image version reserves
                // other disk: what the stack reserves now.
                recorded.limits = rendered.limits;
                recorded.images = rendered.requirements.images.clone();
                patch.config = Some(Value::Object(
                    rendered
                        .config
                        .iter()
                        .map(|(key, value)| (key.clone(), Value::String(value.clone())))
                        .collect(),
                ));
            } else {
                patch.coolify_project_uuid = progress.project_uuid.clone();
                patch.coolify_service_uuid = progress.service_uuid.clone();
                patch.domain = Some(rendered.domain.clone().unwrap_or_default());
            }
            patch.resource_limits = Some(recorded.to_json());
            progress.recorded = Some(recorded);
        }
        let updated = self
            .update_record(subject, Step::RecordRunning, record, &patch, operation.action())
            .await?;
        progress.record = Some(updated);
        tracing::info!(tenant = %subject.tenant, stack = %subject.stack, "stack is running");
        Ok(())
    }
}

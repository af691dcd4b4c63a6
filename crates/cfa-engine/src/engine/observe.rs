//! What an operation sees before it plans: the record, the tenant's project and the stack's
//! service, found by the recorded uuid or else by name and our marker.

use super::*;

impl Engine {
    /// Reads the record's and Coolify's state for the planner.
    pub(super) async fn observe(
        &self,
        subject: &Subject,
        slug: &TenantSlug,
        stack_name: &StackName,
        progress: &mut Progress,
    ) -> Result<Observation, EngineError> {
        let coolify = &self.inner.coolify;
        let list_projects = || self.projects_named(subject, slug);
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
            let environment_seen = std::sync::atomic::AtomicBool::new(false);
            let list_services = || async {
                match coolify.get_environment_by_name_or_uuid(project_uuid, ENVIRONMENT).await {
                    Ok(environment) => Ok({
                        environment_seen.store(true, std::sync::atomic::Ordering::Relaxed);
                        our_services(environment.services, slug, stack_name)
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
        let mut start_queued = false;
        if !service_running
            && let Some(uuid) = &progress.service_uuid
            && let Some(age) = self.recent_start(subject, uuid).await
        {
            // Queued by an earlier run, and Coolify's stored `exited` cannot say otherwise yet.
            tracing::debug!(tenant = %subject.tenant, stack = %subject.stack, age_ms = age.as_millis(), "a start is already queued; waiting for it");
            service_running = true;
            start_queued = true;
            progress.start_queued_at = Instant::now().checked_sub(age);
        }
        Ok(Observation {
            record_status: progress.record.as_ref().map(|record| record.status),
            record_names_service: record_service.is_some(),
            record_has_service: record_service.is_some() && record_service == progress.service_uuid,
            project_exists: progress.project_uuid.is_some(),
            service_exists: progress.service_uuid.is_some(),
            service_running,
            start_queued,
        })
    }
}

/// The uuids of the services that are this stack's: its name and our marker (a twin created
/// by a racing process looks the same; `claims` picks one).
pub(super) fn our_services(
    services: Vec<cfa_coolify::types::ServiceSummary>,
    slug: &TenantSlug,
    stack_name: &StackName,
) -> Vec<String> {
    let name = coolify_service_name(stack_name);
    let marker = service_marker(slug.as_str(), stack_name.as_str());
    services
        .into_iter()
        .filter(|service| {
            service.name == name && service.description.as_deref() == Some(marker.as_str())
        })
        .map(|service| service.uuid)
        .collect()
}

/// An operation on an existing stack: its names, its tenant, what it observed, and (for a
/// run, not a dry run) the stack's lock, held until the operation ends.
pub(super) struct Begun {
    pub(super) slug: TenantSlug,
    pub(super) stack_name: StackName,
    pub(super) tenant: Tenant,
    pub(super) progress: Progress,
    pub(super) observed: Observation,
    pub(super) _guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Engine {
    /// Reads the tenant and the record (under the stack's lock when `lock`: another run may
    /// have changed the record while this one waited) and observes Coolify.
    pub(super) async fn begin(&self, subject: &Subject, lock: bool) -> Result<Begun, EngineError> {
        let (slug, stack_name) = self.parse_names(subject)?;
        let tenant = self.tenant(subject).await?;
        let guard = match lock {
            true => {
                let key = format!("{}/{}", tenant.id, stack_name);
                Some(Self::lock_for(&self.inner.stack_locks, &key).lock_owned().await)
            }
            false => None,
        };
        let record = self.reread(subject, &tenant.id, Step::RecordStopped).await?;
        let mut progress = Progress {
            recorded: record.resource_limits.as_ref().and_then(RecordedLimits::from_json),
            record: Some(record),
            ..Progress::default()
        };
        let observed = self.observe(subject, &slug, &stack_name, &mut progress).await?;
        Ok(Begun { slug, stack_name, tenant, progress, observed, _guard: guard })
    }

    /// The uuids of the Coolify projects named for the tenant (more than one only in a race).
    pub(super) async fn projects_named(
        &self,
        subject: &Subject,
        slug: &TenantSlug,
    ) -> Result<Vec<String>, EngineError> {
        let name = coolify_project_name(slug);
        let projects = self
            .inner
            .coolify
            .list_projects()
            .await
            .map_err(|error| subject.coolify(Step::EnsureProject, error))?;
        Ok(projects
            .into_iter()
            .filter(|project| project.name == name)
            .map(|project| project.uuid)
            .collect())
    }

    /// Plans `intent` on what [`Engine::begin`] observed and runs the plan; a failure is
    /// recorded ([`Engine::failed`]). Says whether any step ran.
    pub(super) async fn run_planned(
        &self,
        subject: &Subject,
        begun: &mut Begun,
        intent: Intent,
        rendered: Option<&RenderedStack>,
        delete_options: DeleteOptions,
        completion: Completion,
    ) -> Result<bool, EngineError> {
        let steps =
            plan(intent, &begun.observed).map_err(|refusal| subject.plan_refused(refusal))?;
        let Begun { slug, stack_name, tenant, progress, .. } = begun;
        let operation = Operation {
            subject,
            intent,
            slug,
            stack_name,
            tenant,
            rendered,
            preferred_server: None,
            delete_options,
            wait: completion == Completion::Ready,
        };
        if let Err(error) = self.run_steps(&operation, &steps, progress).await {
            return Err(self.failed(&operation, progress, error).await);
        }
        Ok(!steps.is_empty())
    }

    /// What a failed operation leaves: `error` with the message for a deploy (provision,
    /// resume, upgrade), an audit entry for the others; nothing for an injected crash.
    pub(super) async fn failed(
        &self,
        operation: &Operation<'_>,
        progress: &Progress,
        error: EngineError,
    ) -> EngineError {
        if matches!(error, EngineError::Injected { .. }) {
            return error;
        }
        let subject = operation.subject;
        let Some(record) = &progress.record else { return error };
        match operation.intent {
            Intent::Suspend | Intent::KeepStopped | Intent::Delete { .. } => {
                self.audit(
                    subject,
                    operation.action(),
                    redact_record(record),
                    super::delete::kept_json(&progress.kept),
                    AuditOutcome::Failed,
                    Some(error.to_string()),
                )
                .await;
            }
            Intent::Provision { .. } | Intent::Resume | Intent::Upgrade { .. } => {
                self.record_failure(subject, operation.action(), &record.id, &error).await;
            }
        }
        error
    }
}

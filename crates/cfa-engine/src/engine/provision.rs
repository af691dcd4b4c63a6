//! Provision: admission, the record, the project, the service, its environment and backups,
//! the start, readiness; each step idempotent, run as [`crate::plan`] planned it.

use super::*;

impl Engine {
    /// Whether the tenant's plan backs up this stack's volumes (it has some).
    pub(super) fn wants_backups(&self, tenant: &Tenant, rendered: &RenderedStack) -> bool {
        let plan = self.inner.settings.plans.plan(tenant.plan_tier);
        matches!(plan.backups, BackupPolicy::Daily { .. }) && rendered.requirements.disk_mb > 0
    }

    /// Provisions a stack, or converges a half-provisioned one: idempotent, crash-safe.
    pub async fn provision(&self, request: &ProvisionRequest) -> Result<StackOutcome, EngineError> {
        self.provision_with(request, Completion::Ready).await
    }

    /// [`Engine::provision`], going as far as `completion` says: with
    /// [`Completion::Queued`] a stack not ready yet is left `deploying` for the next
    /// activation (the controller's).
    pub async fn provision_with(
        &self,
        request: &ProvisionRequest,
        completion: Completion,
    ) -> Result<StackOutcome, EngineError> {
        self.provision_or_prepare(request, true, completion == Completion::Ready).await
    }

    /// Prepares a tenant's `pending` record that still lacks secret parameters: admitted and
    /// placed, its project, service (not started) and backup schedule created, so that the
    /// tenant's secrets have a service to be written to. The record stays `pending`.
    pub(super) async fn prepare(
        &self,
        request: &ProvisionRequest,
    ) -> Result<StackOutcome, EngineError> {
        self.provision_or_prepare(request, false, false).await
    }

    async fn provision_or_prepare(
        &self,
        request: &ProvisionRequest,
        start: bool,
        wait: bool,
    ) -> Result<StackOutcome, EngineError> {
        let subject = Subject { tenant: request.tenant.clone(), stack: request.stack.clone() };
        let (slug, stack_name) = self.parse_names(&subject)?;
        let tenant = self.tenant(&subject).await?;
        let template = self.template(&request.template)?;
        let lock =
            Self::lock_for(&self.inner.stack_locks, &format!("{}/{}", tenant.id, stack_name));
        let _guard = lock.lock().await;

        let record = self.find_record(&subject, &tenant.id, Step::RecordPending).await?;
        if let Some(record) = &record
            && record.template != request.template
        {
            return Err(subject.invalid_input(format!(
                "the stack exists with template `{}`\nhint: choose another stack name, or delete this one first",
                record.template
            )));
        }
        let rendered = self.render(
            &subject,
            template,
            &tenant,
            (&slug, &stack_name),
            &request.parameters,
            !start,
        )?;
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
        let intent = Intent::Provision { backups: self.wants_backups(&tenant, &rendered), start };
        let steps = plan(intent, &observed).map_err(|refusal| subject.plan_refused(refusal))?;

        let operation = Operation {
            subject: &subject,
            intent,
            slug: &slug,
            stack_name: &stack_name,
            tenant: &tenant,
            rendered: Some(&rendered),
            preferred_server: request.preferred_server.as_deref(),
            delete_options: DeleteOptions::default(),
            wait,
        };
        if let Err(error) = self.run_steps(&operation, &steps, &mut progress).await {
            if let Some(record) = &progress.record
                && !matches!(error, EngineError::Refused { .. })
            {
                self.record_failure(&subject, "stack.provision", &record.id, &error).await;
            }
            return Err(error);
        }
        let record = required(progress.record.as_ref(), &subject)?;
        Ok(outcome(&subject, record, false))
    }

    /// The steps only a provision runs.
    pub(super) async fn run_provision_step(
        &self,
        operation: &Operation<'_>,
        step: Step,
        progress: &mut Progress,
    ) -> Result<(), EngineError> {
        let subject = operation.subject;
        let coolify = &self.inner.coolify;
        match step {
            Step::EnsureProject => {
                if progress.project_uuid.is_some() {
                    // Observed (and agreed on) a moment ago.
                    return Ok(());
                }
                let (project_uuid, created) = self.ensure_project(subject, operation.slug).await?;
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
                    name: coolify_service_name(operation.stack_name),
                    description: Some(service_marker(
                        operation.slug.as_str(),
                        operation.stack_name.as_str(),
                    )),
                    compose_yaml: operation.rendered()?.compose_yaml.clone(),
                    urls: service_urls(operation.rendered()?),
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
                let list_existing = || async {
                    let environment = coolify
                        .get_environment_by_name_or_uuid(&request.project_uuid, ENVIRONMENT)
                        .await
                        .map_err(|error| subject.coolify(step, error))?;
                    Ok(super::observe::our_services(
                        environment.services,
                        operation.slug,
                        operation.stack_name,
                    ))
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
                    domain: Some(operation.rendered()?.domain.clone().unwrap_or_default()),
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
                    self.inner.settings.plans.plan(operation.tenant.plan_tier).backups
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
                self.record_volumes(subject, step, progress, &storages.persistent).await
            }
            _ => Ok(()),
        }
    }

    /// Admission, then the `pending` record; the admission lock makes capacity checks and
    /// record creation atomic within this process.
    pub(super) async fn create_record(
        &self,
        operation: &Operation<'_>,
        progress: &mut Progress,
    ) -> Result<(), EngineError> {
        let subject = operation.subject;
        let _admission = self.inner.admission_lock.lock().await;
        let decision = self
            .admission_decision(
                subject,
                operation.tenant,
                &operation.rendered()?.requirements,
                operation.preferred_server,
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
            images: operation.rendered()?.requirements.images.clone(),
            compose_sha256: None,
            volumes: None,
            backups_due_since_ms: None,
        };
        let new_stack = NewStack {
            config: Value::Object(
                operation
                    .rendered()?
                    .config
                    .iter()
                    .map(|(key, value)| (key.clone(), Value::String(value.clone())))
                    .collect(),
            ),
            resource_limits: Some(recorded.to_json()),
            ..NewStack::pending(
                &operation.tenant.id,
                operation.rendered()?.template.as_str(),
                operation.stack_name.as_str(),
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
                    self.find_record(subject, &operation.tenant.id, Step::RecordPending).await?;
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
    pub(super) async fn place_record(
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
            volumes: None,
            backups_due_since_ms: None,
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

    pub(super) fn lock_destinations(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Option<String>>> {
        self.inner.destinations.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The destination new services on `server_uuid` go to: Coolify's default network
    /// `coolify` when the server has it, else its first; `None` lets Coolify pick.
    pub(super) async fn destination(
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
    pub(super) async fn ensure_project(
        &self,
        subject: &Subject,
        slug: &TenantSlug,
    ) -> Result<(String, bool), EngineError> {
        let lock = Self::lock_for(&self.inner.tenant_locks, slug.as_str());
        let _guard = lock.lock().await;
        let coolify = &self.inner.coolify;
        let name = coolify_project_name(slug);
        let find = || self.projects_named(subject, slug);
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

    pub(super) async fn set_environment(
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
}

pub(super) fn service_urls(rendered: &RenderedStack) -> Vec<ServiceUrl> {
    rendered
        .url
        .iter()
        .map(|url| ServiceUrl { compose_service: url.service.clone(), url: url.url.clone() })
        .collect()
}

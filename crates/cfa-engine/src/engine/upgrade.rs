//! Upgrade: re-render, then patch what changed, restart, and wait until the new containers
//! serve. What changed (compose hash, environment values) is observed before planning.

use super::*;

impl Engine {
    /// Re-renders a running stack and applies what changed: PATCH the compose only when its
    /// hash changed, upsert the environment only when a value changed, then restart and wait.
    /// `parameters = None` keeps the current ones (non-secret from PocketBase, secrets read back
    /// from Coolify, which needs a `read:sensitive` token). An interrupted or failed upgrade
    /// (`deploying` or `error` with its service) is finished by running it again.
    pub async fn upgrade(
        &self,
        tenant: &str,
        stack: &str,
        parameters: Option<&BTreeMap<String, String>>,
    ) -> Result<StackOutcome, EngineError> {
        self.upgrade_with(tenant, stack, parameters, Completion::Ready).await
    }

    /// [`Engine::upgrade`], going as far as `completion` says.
    pub async fn upgrade_with(
        &self,
        tenant: &str,
        stack: &str,
        parameters: Option<&BTreeMap<String, String>>,
        completion: Completion,
    ) -> Result<StackOutcome, EngineError> {
        self.upgrade_or_restart(tenant, stack, parameters, false, completion).await
    }

    /// Restarts a running stack so that variables changed behind the engine's back (a
    /// tenant's new secrets, already in Coolify) take effect: an audited upgrade that
    /// restarts even though nothing differs from what Coolify holds.
    pub async fn apply_environment(
        &self,
        tenant: &str,
        stack: &str,
    ) -> Result<StackOutcome, EngineError> {
        self.upgrade_or_restart(tenant, stack, None, true, Completion::Ready).await
    }

    async fn upgrade_or_restart(
        &self,
        tenant: &str,
        stack: &str,
        parameters: Option<&BTreeMap<String, String>>,
        restart: bool,
        completion: Completion,
    ) -> Result<StackOutcome, EngineError> {
        let subject = Subject { tenant: tenant.to_owned(), stack: stack.to_owned() };
        let mut begun = self.begin(&subject, true).await?;
        let (intent, rendered) = self.upgrade_intent(&subject, &begun, parameters).await?;
        let intent = match intent {
            Intent::Upgrade { compose_changed, environment_changed } => Intent::Upgrade {
                compose_changed,
                environment_changed: environment_changed || restart,
            },
            other => other,
        };
        tracing::info!(tenant = %subject.tenant, stack = %subject.stack, ?intent, "upgrade");
        begun.progress.recorded.get_or_insert_with(|| RecordedLimits {
            server_uuid: String::new(),
            limits: rendered.limits,
            images: Vec::new(),
            compose_sha256: None,
            volumes: None,
            backups_due_since_ms: None,
        });
        let changed = self
            .run_planned(
                &subject,
                &mut begun,
                intent,
                Some(&rendered),
                DeleteOptions::default(),
                completion,
            )
            .await?;
        let record = required(begun.progress.record.as_ref(), &subject)?;
        Ok(outcome(&subject, record, changed))
    }

    /// The upgrade asked for: the new render, and whether its compose and its environment
    /// differ from what Coolify has (the recorded compose hash, the service's variables).
    pub(super) async fn upgrade_intent(
        &self,
        subject: &Subject,
        begun: &Begun,
        parameters: Option<&BTreeMap<String, String>>,
    ) -> Result<(Intent, RenderedStack), EngineError> {
        // Refused whatever changed: say so before reading secrets or rendering.
        let any_change = Intent::Upgrade { compose_changed: true, environment_changed: true };
        plan(any_change, &begun.observed).map_err(|refusal| subject.plan_refused(refusal))?;
        let record = required(begun.progress.record.as_ref(), subject)?;
        let template = self.template(&record.template)?;
        let mut current_values = BTreeMap::new();
        if begun.observed.record_has_service {
            let service_uuid = required(begun.progress.service_uuid.as_ref(), subject)?;
            current_values = self
                .service_values(service_uuid)
                .await
                .map_err(|error| subject.coolify(Step::SetEnvironment, error))?;
        }
        let parameters = match parameters {
            Some(parameters) => parameters.clone(),
            None => self.current_parameters(template, record, &current_values),
        };
        let rendered = self.render(
            subject,
            template,
            &begun.tenant,
            (&begun.slug, &begun.stack_name),
            &parameters,
            false,
        )?;
        let compose_hash = sha256(&rendered.compose_yaml);
        let recorded_hash = begun
            .progress
            .recorded
            .as_ref()
            .and_then(|recorded| recorded.compose_sha256.as_deref());
        let compose_changed = recorded_hash != Some(compose_hash.as_str());
        let environment_changed = rendered.environment.iter().any(|entry| {
            current_values
                .get(&entry.name)
                .is_none_or(|value| value.as_deref() != Some(entry.value.as_str()))
        });
        Ok((Intent::Upgrade { compose_changed, environment_changed }, rendered))
    }

    /// The values of a service's variables, as Coolify holds them (secrets included: a
    /// `read:sensitive` token reads them).
    pub(super) async fn service_values(
        &self,
        service_uuid: &str,
    ) -> Result<BTreeMap<String, Option<String>>, CoolifyError> {
        let variables = self.inner.coolify.list_envs_by_service_uuid(service_uuid).await?;
        Ok(variables
            .iter()
            .map(|variable| {
                let value = variable
                    .value
                    .as_ref()
                    .or(variable.real_value.as_ref())
                    .map(|value| value.expose().to_owned());
                (variable.key.clone(), value)
            })
            .collect())
    }

    /// The parameters a stack runs with: PocketBase's non-secret `config`, plus each secret
    /// parameter's value read back from its Coolify variable.
    pub(super) fn current_parameters(
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
                // Coolify keeps an empty variable for a `${NAME}` the compose references
                // before anyone set it: that is no value.
                if let Some(Some(value)) = coolify_values.get(&variable)
                    && !value.is_empty()
                {
                    parameters.insert(name.clone(), value.clone());
                }
            }
        }
        parameters
    }
}

//! One activation for one stack: read what its record asks for, act on it, say what happened.
//! The record's status is the interface tenants and the business's frontend already write
//! (PocketBase's rules allow it): `pending` asks for a deploy (a new stack, a retry after
//! `error`, a resume after `stopped`), `stopped` asks for the containers to stop. `running` and
//! `error` are what the engine observed; they ask for nothing. The controller runs this for
//! every stack; an operator runs it for one with `cfa reconcile`.

use cfa_templates::manifest::ParameterType;

use super::*;

/// What one activation did.
#[derive(Debug, Clone)]
pub enum Reconciled {
    /// Nothing was asked: the record is `running`, `error` (waiting for a retry) or `stopped`
    /// with its containers down.
    Converged { status: StackStatus },
    /// The record asked and the operation ran.
    Acted { operation: &'static str, outcome: StackOutcome },
    /// The record asks for a deploy that cannot run yet; `error_message` says why (a secret
    /// parameter nobody has set).
    Waiting { reason: String },
    /// A deploy is under way and not ready yet: the next activation looks again (only from
    /// an activation that does not wait).
    InProgress { operation: &'static str },
    /// The tenant asked for a delete, which runs once its grace period ends at `due`.
    DeleteScheduled { due: jiff::Timestamp },
    /// The tenant's delete request ran: the service, the project when empty, and the record
    /// are gone, the final backup kept.
    Deleted,
}

impl Reconciled {
    /// The activation as `--output json` and the JSON API show it.
    pub fn to_json(&self, tenant: &str, stack: &str) -> Value {
        match self {
            Reconciled::Converged { status } => {
                json!({ "tenant": tenant, "stack": stack, "result": "converged", "status": status.as_str() })
            }
            Reconciled::Acted { operation, outcome } => json!({
                "tenant": tenant, "stack": stack, "result": "acted", "operation": operation,
                "status": outcome.status.as_str(),
            }),
            Reconciled::Waiting { reason } => {
                json!({ "tenant": tenant, "stack": stack, "result": "waiting", "reason": reason })
            }
            Reconciled::DeleteScheduled { due } => json!({
                "tenant": tenant, "stack": stack, "result": "delete_scheduled", "due": due.to_string(),
            }),
            Reconciled::Deleted => {
                json!({ "tenant": tenant, "stack": stack, "result": "deleted" })
            }
            Reconciled::InProgress { operation } => json!({
                "tenant": tenant, "stack": stack, "result": "in_progress", "operation": operation,
            }),
        }
    }
}

impl Engine {
    /// Reconciles one stack with what its record asks for.
    pub async fn reconcile(&self, tenant: &str, stack: &str) -> Result<Reconciled, EngineError> {
        self.reconcile_with(tenant, stack, true).await
    }

    /// One activation that never waits for readiness: a deploy it started (or finds started)
    /// is looked at once, and a stack not ready yet is [`Reconciled::InProgress`], to be
    /// looked at again by the next activation. The controller runs this.
    pub async fn reconcile_once(
        &self,
        tenant: &str,
        stack: &str,
    ) -> Result<Reconciled, EngineError> {
        self.reconcile_with(tenant, stack, false).await
    }

    async fn reconcile_with(
        &self,
        tenant: &str,
        stack: &str,
        wait: bool,
    ) -> Result<Reconciled, EngineError> {
        let subject = Subject { tenant: tenant.to_owned(), stack: stack.to_owned() };
        let record = self.stack(tenant, stack).await?;
        if let Some(requested) = record.delete_requested_at {
            return self.reconcile_delete_request(&subject, requested).await;
        }
        match record.status {
            StackStatus::Running | StackStatus::Error => {
                Ok(Reconciled::Converged { status: record.status })
            }
            StackStatus::Stopped => {
                let mut begun = self.begin(&subject, true).await?;
                let acted = self
                    .run_planned(
                        &subject,
                        &mut begun,
                        Intent::KeepStopped,
                        None,
                        DeleteOptions::default(),
                        Completion::Ready,
                    )
                    .await?;
                let record = required(begun.progress.record.as_ref(), &subject)?;
                Ok(match acted {
                    false => Reconciled::Converged { status: record.status },
                    true => Reconciled::Acted {
                        operation: "suspend",
                        outcome: outcome(&subject, record, true),
                    },
                })
            }
            StackStatus::Pending | StackStatus::Deploying => {
                let parameters = self.recorded_parameters(&subject, &record).await?;
                let template = self.template(&record.template)?;
                let missing: Vec<&str> = template
                    .manifest
                    .parameters
                    .iter()
                    .filter(|(name, parameter)| {
                        parameter.kind == ParameterType::Secret
                            && parameter.required
                            && parameter.default.is_none()
                            && !parameters.contains_key(*name)
                    })
                    .map(|(name, _)| name.as_str())
                    .collect();
                let request = ProvisionRequest {
                    tenant: subject.tenant.clone(),
                    stack: subject.stack.clone(),
                    template: record.template.clone(),
                    parameters,
                    preferred_server: None,
                };
                if !missing.is_empty() {
                    // The service exists (not started) before the secrets arrive: they are
                    // written to it, never to PocketBase.
                    if record.coolify_service_uuid.as_deref().is_none_or(str::is_empty) {
                        self.prepare(&request).await?;
                    }
                    let reason = waiting_for_secrets(&missing, &record.id);
                    let record = self.stack(&subject.tenant, &subject.stack).await?;
                    self.note_waiting(&subject, &record, &reason).await?;
                    return Ok(Reconciled::Waiting { reason });
                }
                let completion = if wait { Completion::Ready } else { Completion::Queued };
                let outcome = self.provision_with(&request, completion).await?;
                Ok(match outcome.status {
                    StackStatus::Deploying => Reconciled::InProgress { operation: "provision" },
                    _ => Reconciled::Acted { operation: "provision", outcome },
                })
            }
        }
    }

    /// A tenant's delete request: nothing before the grace period ends (the record shows the
    /// request in `delete_requested_at`), then the delete with its final backup. The record
    /// and its quota slot go last, once Coolify no longer has the service.
    async fn reconcile_delete_request(
        &self,
        subject: &Subject,
        requested: jiff::Timestamp,
    ) -> Result<Reconciled, EngineError> {
        let grace = self.inner.settings.tenant_delete_grace;
        let due = requested
            .checked_add(jiff::SignedDuration::try_from(grace).unwrap_or(jiff::SignedDuration::MAX))
            .unwrap_or(jiff::Timestamp::MAX);
        if jiff::Timestamp::now() < due {
            return Ok(Reconciled::DeleteScheduled { due });
        }
        self.delete(
            &subject.tenant,
            &subject.stack,
            DeleteOptions { skip_grace: true, without_final_backup: false },
        )
        .await?;
        Ok(Reconciled::Deleted)
    }

    /// The parameters a record runs with: its non-secret `config` and the secrets its Coolify
    /// service holds (none before the service exists).
    async fn recorded_parameters(
        &self,
        subject: &Subject,
        record: &AgentStack,
    ) -> Result<BTreeMap<String, String>, EngineError> {
        let template = self.template(&record.template)?;
        let mut values = BTreeMap::new();
        if let Some(service_uuid) =
            record.coolify_service_uuid.as_deref().filter(|uuid| !uuid.is_empty())
        {
            match self.service_values(service_uuid).await {
                Ok(current) => values = current,
                Err(error) if error.is_not_found() => {}
                Err(error) => return Err(subject.coolify(Step::SetEnvironment, error)),
            }
        }
        Ok(self.current_parameters(template, record, &values))
    }

    /// Says on the record why it waits, once (no write when the message is already there).
    async fn note_waiting(
        &self,
        subject: &Subject,
        record: &AgentStack,
        reason: &str,
    ) -> Result<(), EngineError> {
        if record.error_message.as_deref() == Some(reason) {
            return Ok(());
        }
        let patch = StackPatch { error_message: Some(reason.to_owned()), ..StackPatch::default() };
        match self.inner.pocketbase.stack_update_if(&record.id, record.updated_at, &patch).await {
            Ok(_) => Ok(()),
            // Changed meanwhile (the secrets arrived, a new request): the next activation
            // decides again, and says why it waits if it still does.
            Err(error) if error.kind == PocketBaseErrorKind::Stale => Ok(()),
            Err(error) => Err(subject.pocketbase(Step::RecordDeploying, error)),
        }
    }
}

/// What a record that lacks secrets says in `error_message`: which, and where they go.
fn waiting_for_secrets(missing: &[&str], record_id: &str) -> String {
    let names = missing.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ");
    let (plural, pronoun) = if missing.len() == 1 { ("", "it") } else { ("s", "them") };
    format!(
        "waiting for secret parameter{plural} {names}: set {pronoun} with PUT /api/v1/tenant/stacks/{record_id}/secrets on the platform's API (never in PocketBase)"
    )
}

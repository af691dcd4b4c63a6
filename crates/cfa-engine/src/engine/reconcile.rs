//! One activation for one stack: read what its record asks for, act on it, say what happened.
//! The record's status is the interface tenants and the business's frontend already write
//! (PocketBase's rules allow it): `pending` asks for a deploy (a new stack, a retry after
//! `error`, a resume after `stopped`), `stopped` asks for the containers to stop. `running` and
//! `error` are what the engine observed; they ask for nothing. The controller runs this for
//! every stack; an operator runs it for one with `cfa reconcile`.

use std::time::Duration;

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
}

impl Engine {
    /// Reconciles one stack with what its record asks for.
    pub async fn reconcile(&self, tenant: &str, stack: &str) -> Result<Reconciled, EngineError> {
        let subject = Subject { tenant: tenant.to_owned(), stack: stack.to_owned() };
        let record = self.stack(tenant, stack).await?;
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
                if !missing.is_empty() {
                    let reason = format!(
                        "waiting for secret parameter{} {}: set {} through the platform's secrets API (never in PocketBase)",
                        if missing.len() == 1 { "" } else { "s" },
                        missing
                            .iter()
                            .map(|name| format!("`{name}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        if missing.len() == 1 { "it" } else { "them" },
                    );
                    self.note_waiting(&subject, &record, &reason).await?;
                    return Ok(Reconciled::Waiting { reason });
                }
                let request = ProvisionRequest {
                    tenant: subject.tenant.clone(),
                    stack: subject.stack.clone(),
                    template: record.template.clone(),
                    parameters,
                    preferred_server: None,
                };
                let outcome = self.provision(&request).await?;
                Ok(Reconciled::Acted { operation: "provision", outcome })
            }
        }
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
        self.inner
            .pocketbase
            .stack_update(&record.id, &patch)
            .await
            .map_err(|error| subject.pocketbase(Step::RecordDeploying, error))?;
        Ok(())
    }
}

/// One stack's part of a pass.
#[derive(Debug)]
pub struct StackActivation {
    pub tenant: String,
    pub stack: String,
    pub result: Result<Reconciled, EngineError>,
}

/// What one pass over every stack saw and did.
#[derive(Debug, Default)]
pub struct PassReport {
    /// Every record PocketBase listed.
    pub stacks_seen: usize,
    /// The stacks whose record asked for something (`pending`, `deploying`, `stopped`), each
    /// reconciled; `running` and `error` records ask for nothing and are not touched.
    pub activations: Vec<StackActivation>,
}

impl PassReport {
    pub fn failures(&self) -> usize {
        self.activations.iter().filter(|activation| activation.result.is_err()).count()
    }
}

impl Engine {
    /// One pass: lists every record once (with its tenant) and reconciles those whose record
    /// asks for something, at most `concurrency` at a time.
    pub async fn reconcile_pass(&self, concurrency: usize) -> Result<PassReport, EngineError> {
        use futures::StreamExt;
        let subject = Subject { tenant: "*".to_owned(), stack: "*".to_owned() };
        let records = self
            .inner
            .pocketbase
            .stack_list_all(&StackFilter::default(), true)
            .await
            .map_err(|error| subject.pocketbase(Step::RecordPending, error))?;
        let asking: Vec<(String, String)> = records
            .iter()
            .filter(|record| {
                matches!(
                    record.status,
                    StackStatus::Pending | StackStatus::Deploying | StackStatus::Stopped
                )
            })
            .filter_map(|record| {
                let tenant = record.tenant.as_ref()?;
                Some((tenant.slug.clone(), record.stack_name.clone()))
            })
            .collect();
        let activations = futures::stream::iter(asking)
            .map(|(tenant, stack)| async move {
                let result = self.reconcile(&tenant, &stack).await;
                StackActivation { tenant, stack, result }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        Ok(PassReport { stacks_seen: records.len(), activations })
    }
}

/// The lease every controller takes before a pass: one controller acts at a time.
pub const CONTROLLER_LEASE: &str = "controller";

/// A pass, or why there was none.
#[derive(Debug)]
pub enum ControllerPass {
    Ran(PassReport),
    /// Another controller holds the lease.
    LeaseHeld {
        holder: String,
        remaining: Duration,
    },
}

impl Engine {
    /// Takes (or renews) the controller lease for `holder`, then runs one pass, renewing the
    /// lease every third of `lease_ttl` while it runs; a second controller meanwhile gets
    /// [`ControllerPass::LeaseHeld`] and takes over once the lease expires (its holder died).
    pub async fn controller_pass(
        &self,
        holder: &str,
        lease_ttl: Duration,
        concurrency: usize,
    ) -> Result<ControllerPass, EngineError> {
        let subject = Subject { tenant: "*".to_owned(), stack: "*".to_owned() };
        let pocketbase = &self.inner.pocketbase;
        let lease = pocketbase
            .lease_acquire(CONTROLLER_LEASE, holder, lease_ttl)
            .await
            .map_err(|error| subject.pocketbase(Step::RecordPending, error))?;
        if !lease.acquired {
            return Ok(ControllerPass::LeaseHeld {
                holder: lease.holder.clone(),
                remaining: lease.remaining(),
            });
        }
        let renewal = tokio::spawn(renew_lease(pocketbase.clone(), holder.to_owned(), lease_ttl));
        let report = self.reconcile_pass(concurrency).await;
        renewal.abort();
        report.map(ControllerPass::Ran)
    }

    /// Gives the controller lease up (a clean exit): the next controller need not wait.
    pub async fn controller_release(&self, holder: &str) {
        if let Err(error) = self.inner.pocketbase.lease_release(CONTROLLER_LEASE, holder).await {
            tracing::warn!(%error, "cannot release the controller lease; it expires by itself");
        }
    }
}

/// Renews the controller lease every third of its time to live, until aborted.
async fn renew_lease(pocketbase: cfa_pocketbase::PocketBaseClient, holder: String, ttl: Duration) {
    loop {
        tokio::time::sleep(ttl / 3).await;
        match pocketbase.lease_acquire(CONTROLLER_LEASE, &holder, ttl).await {
            Ok(lease) if lease.acquired => {}
            Ok(lease) => {
                tracing::error!(holder = %lease.holder, "another controller took the lease during this pass");
            }
            Err(error) => tracing::warn!(%error, "cannot renew the controller lease"),
        }
    }
}

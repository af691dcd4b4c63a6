//! The record and the audit trail: every mutation of a stack's record is audited, and a
//! failed operation leaves `error` with a message the tenant can read.

use super::*;

impl Engine {
    pub(super) async fn audit(
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

    pub(super) async fn update_record(
        &self,
        subject: &Subject,
        step: Step,
        record: &AgentStack,
        patch: &StackPatch,
        action: &str,
    ) -> Result<AgentStack, EngineError> {
        let pocketbase = &self.inner.pocketbase;
        // Written only over the record as read: a request written meanwhile (a tenant's
        // `stopped`, a delete request) is never overwritten. A change that asks for nothing
        // new (a note, the tenant's config, another run's progress) is read again and written
        // over; a few times, as racing engines may keep writing.
        let mut read_updated = record.updated_at;
        let mut attempts = 0;
        let updated = loop {
            attempts += 1;
            match pocketbase.stack_update_if(&record.id, read_updated, patch).await {
                Ok(updated) => break updated,
                Err(error) if error.kind == PocketBaseErrorKind::Stale && attempts < 5 => {
                    let fresh = pocketbase
                        .stack_view(&record.id, false)
                        .await
                        .map_err(|error| subject.pocketbase(step, error))?;
                    // A new request is a delete request or a status that asks (`pending`,
                    // `stopped`); `deploying`, `running` and `error` are another run's progress
                    // on the same request, which this run converges with.
                    let asks = matches!(fresh.status, StackStatus::Pending | StackStatus::Stopped);
                    let new_request = fresh.delete_requested_at != record.delete_requested_at
                        || (asks
                            && fresh.status != record.status
                            && Some(fresh.status) != patch.status);
                    if new_request {
                        return Err(EngineError::Superseded {
                            tenant: subject.tenant.clone(),
                            stack: subject.stack.clone(),
                            step,
                            status: fresh.status,
                        });
                    }
                    read_updated = fresh.updated_at;
                }
                Err(error) => return Err(subject.pocketbase(step, error)),
            }
        };
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
    pub(super) async fn record_failure(
        &self,
        subject: &Subject,
        action: &str,
        record_id: &str,
        error: &EngineError,
    ) {
        if matches!(error, EngineError::Injected { .. } | EngineError::Superseded { .. }) {
            return;
        }
        let message = error.record_message();
        tracing::warn!(tenant = %subject.tenant, stack = %subject.stack, action, error = %error, "stack operation failed");
        let current = match self.inner.pocketbase.stack_view(record_id, false).await {
            Ok(current) => current,
            Err(_) => return,
        };
        let status = match current.status {
            // An outage is not the stack's failure: it stays where it was, and the next
            // activation (the controller's, or a rerun) resumes it.
            _ if error.is_platform_outage() => None,
            StackStatus::Deploying => next(StackStatus::Deploying, StackEvent::DeployFailed).ok(),
            StackStatus::Running => next(StackStatus::Running, StackEvent::HealthFailed).ok(),
            StackStatus::Pending => next(StackStatus::Pending, StackEvent::DeployStarted)
                .and_then(|status| next(status, StackEvent::DeployFailed))
                .ok(),
            StackStatus::Stopped | StackStatus::Error => None,
        };
        let patch =
            StackPatch { status, error_message: Some(message.clone()), ..StackPatch::default() };
        // Over the record as just read: a request written since wins over this note.
        match self.inner.pocketbase.stack_update_if(record_id, current.updated_at, &patch).await {
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

    pub(super) async fn existing(
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
    pub(super) async fn refuse_provision(
        &self,
        subject: &Subject,
        refusal: Refusal,
    ) -> EngineError {
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
    pub(super) async fn reread(
        &self,
        subject: &Subject,
        tenant_id: &str,
        step: Step,
    ) -> Result<AgentStack, EngineError> {
        self.find_record(subject, tenant_id, step).await?.ok_or_else(|| subject.unknown_stack())
    }
}

//! Delete: after the grace period, a final backup kept where Coolify's delete cannot reach it,
//! then the service, the tenant's project when empty, and the record.
//!
//! Coolify 4.3.10 and later delete every local and S3 archive of a deleted service's backup
//! schedules (`DeleteResourceJob` -> `DeleteScheduledVolumeBackup`), and its API lists no
//! backup executions. So the final backup is found in the platform's bucket (the S3 storage
//! Coolify uploads to), copied under the platform's own prefix, and checked there (same size,
//! not empty) before the delete is sent. Without a bucket a stack whose plan has backups is not
//! deleted unless the caller gives its data up (`without_final_backup`).

use cfa_backup_store::BackupStoreError;
use cfa_backup_store::layout::final_backup_key;
use cfa_coolify::CoolifyErrorKind;
use cfa_coolify::types::BackupScheduleRequest;
use cfa_core::plan::BackupPolicy;
use cfa_pocketbase::{AuditOutcome, StackPatch};
use serde_json::{Value, json};

use super::{Completion, ENVIRONMENT, Engine, redact_record};
use crate::error::{EngineError, Subject};
use crate::plan::Intent;
use crate::steps::Step;

/// How a delete may proceed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Skip the grace period.
    pub skip_grace: bool,
    /// Delete a stack whose plan has backups even though no final backup can be kept (no
    /// backup store configured): its data is gone for good.
    pub without_final_backup: bool,
}

/// One volume's final backup, where it is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeptArchive {
    pub(crate) volume: String,
    pub(crate) key: String,
    pub(crate) size_bytes: u64,
}

impl Engine {
    /// The daily schedule a plan with backups gets: with the platform's S3 storage when a
    /// backup store is configured, so that Coolify uploads every archive there.
    pub(super) fn backup_schedule(&self, retention_days: u32) -> BackupScheduleRequest {
        let mut request = BackupScheduleRequest::daily(retention_days);
        if let Some(final_backups) = &self.inner.settings.final_backups {
            request.s3_storage_uuid = Some(final_backups.coolify_s3_storage_uuid.clone());
        }
        request
    }

    /// Deletes a stack: after the grace period (unless skipped), a final backup for stateful
    /// stacks on plans with backups, the service (waiting until it is gone), the project when
    /// empty, then the record.
    pub async fn delete(
        &self,
        tenant: &str,
        stack: &str,
        options: DeleteOptions,
    ) -> Result<(), EngineError> {
        let subject = Subject { tenant: tenant.to_owned(), stack: stack.to_owned() };
        // An unknown stack is said at once, not after the grace period.
        self.existing(&subject).await?;
        if !options.skip_grace && !self.inner.settings.delete_grace.is_zero() {
            tracing::warn!(tenant = %subject.tenant, stack = %subject.stack, grace = ?self.inner.settings.delete_grace, "deleting after the grace period; interrupt to cancel");
            tokio::time::sleep(self.inner.settings.delete_grace).await;
        }
        let mut begun = self.begin(&subject, true).await?;
        let intent = self.delete_intent(&begun.tenant);
        self.run_planned(&subject, &mut begun, intent, None, options, Completion::Ready).await?;
        let before = begun.progress.record.as_ref().map_or(Value::Null, redact_record);
        let after = kept_json(&begun.progress.kept);
        self.audit(&subject, "stack.delete", before, after, AuditOutcome::Ok, None).await;
        Ok(())
    }

    /// A delete keeps a final backup when the tenant's plan backs volumes up.
    pub(super) fn delete_intent(&self, tenant: &cfa_pocketbase::Tenant) -> Intent {
        let plan = self.inner.settings.plans.plan(tenant.plan_tier);
        Intent::Delete { final_backup: matches!(plan.backups, BackupPolicy::Daily { .. }) }
    }

    /// Deletes the tenant's project when no service is left in it (under the tenant's lock, so
    /// a provision does not create a service in it meanwhile).
    pub(super) async fn delete_project_when_empty(
        &self,
        subject: &Subject,
        slug: &cfa_core::TenantSlug,
        project_uuid: &str,
    ) -> Result<(), EngineError> {
        let coolify = &self.inner.coolify;
        let tenant_lock = Self::lock_for(&self.inner.tenant_locks, slug.as_str());
        let _tenant_guard = tenant_lock.lock().await;
        let empty = match coolify.get_environment_by_name_or_uuid(project_uuid, ENVIRONMENT).await {
            Ok(environment) => environment.services.is_empty(),
            Err(error) if error.is_not_found() => true,
            Err(error) => return Err(subject.coolify(Step::DeleteProject, error)),
        };
        if !empty {
            return Ok(());
        }
        match coolify.delete_project_by_uuid(project_uuid).await {
            Ok(_) => {
                tracing::info!(tenant = %subject.tenant, project_uuid = %project_uuid, "deleted the tenant's empty project");
                Ok(())
            }
            Err(error) if error.is_not_found() => Ok(()),
            // Another resource arrived meanwhile (400): the project stays.
            Err(error) if matches!(error.kind, CoolifyErrorKind::BadRequest { .. }) => Ok(()),
            Err(error) => Err(subject.coolify(Step::DeleteProject, error)),
        }
    }

    /// PocketBase refuses to delete a record that names a service (pb_hooks): the service is
    /// gone now, so the record stops naming it, then goes.
    pub(super) async fn delete_record(
        &self,
        subject: &Subject,
        record: &cfa_pocketbase::AgentStack,
    ) -> Result<(), EngineError> {
        let pocketbase = &self.inner.pocketbase;
        if record.coolify_service_uuid.as_deref().is_some_and(|uuid| !uuid.is_empty()) {
            let patch =
                StackPatch { coolify_service_uuid: Some(String::new()), ..StackPatch::default() };
            pocketbase
                .stack_update(&record.id, &patch)
                .await
                .map_err(|error| subject.pocketbase(Step::DeleteRecord, error))?;
        }
        pocketbase
            .stack_delete(&record.id)
            .await
            .map_err(|error| subject.pocketbase(Step::DeleteRecord, error))
    }

    /// One fresh backup of each persistent volume, copied under the platform's prefix and
    /// checked there. Refuses without a backup store unless `without_final_backup`.
    pub(super) async fn final_backup(
        &self,
        subject: &Subject,
        service_uuid: &str,
        retention_days: u32,
        options: DeleteOptions,
    ) -> Result<Vec<KeptArchive>, EngineError> {
        let coolify = &self.inner.coolify;
        let storages = match coolify.list_storages_by_service_uuid(service_uuid).await {
            Ok(storages) => storages,
            Err(error) if error.is_not_found() => return Ok(Vec::new()),
            Err(error) => return Err(subject.coolify(Step::FinalBackup, error)),
        };
        if storages.persistent.is_empty() {
            return Ok(Vec::new());
        }
        let Some(settings) = &self.inner.settings.final_backups else {
            if options.without_final_backup {
                tracing::warn!(tenant = %subject.tenant, stack = %subject.stack, "deleting without a final backup, as asked: the stack's volumes are gone for good");
                return Ok(Vec::new());
            }
            return Err(EngineError::NoFinalBackupStore {
                tenant: subject.tenant.clone(),
                stack: subject.stack.clone(),
            });
        };
        let mut kept = Vec::new();
        for storage in &storages.persistent {
            let fail =
                |detail: String, hint: String| subject.final_backup(&storage.name, detail, hint);
            let archive = self
                .run_volume_backup(settings, subject, service_uuid, storage, retention_days, &fail)
                .await?;
            let key =
                final_backup_key(&settings.prefix, &subject.tenant, &subject.stack, &archive.key);
            let store_error = |error: BackupStoreError| {
                subject.final_backup(
                    &storage.name,
                    first_line(&error),
                    "check the bucket and cfa's access key (it needs list, read and write)",
                )
            };
            settings.store.copy(&archive.key, &key).await.map_err(store_error)?;
            let copied = settings.store.head(&key).await.map_err(store_error)?;
            if copied.size_bytes != archive.size_bytes || copied.size_bytes == 0 {
                return Err(subject.final_backup(
                    &storage.name,
                    format!(
                        "the copy `{key}` has {} bytes, the archive `{}` {}",
                        copied.size_bytes, archive.key, archive.size_bytes
                    ),
                    "check the bucket",
                ));
            }
            tracing::info!(tenant = %subject.tenant, stack = %subject.stack, volume = %storage.name, %key, size_bytes = copied.size_bytes, "final backup kept");
            kept.push(KeptArchive {
                volume: storage.name.clone(),
                key,
                size_bytes: copied.size_bytes,
            });
        }
        Ok(kept)
    }
}

/// The final backups a delete kept, for its audit entry.
pub(super) fn kept_json(kept: &[KeptArchive]) -> Value {
    match kept {
        [] => Value::Null,
        kept => json!({ "final_backups": kept.iter().map(|archive| json!({
            "volume": archive.volume, "key": archive.key, "size_bytes": archive.size_bytes,
        })).collect::<Vec<_>>() }),
    }
}

fn first_line(error: &BackupStoreError) -> String {
    super::backups::store_line(error)
}

//! A stack's volume backups for the operator (`cfa backup list|run|restore`): the archives
//! Coolify uploaded to the platform's bucket, one made now, and a restore of the newest (or
//! of one chosen by time) into the stack's volumes.
//!
//! Coolify's API lists no backup executions and has no restore, so archives are read from the
//! bucket (`<root>/<team>/<storage uuid>/volume-<name>-<unix s>.tar.gz`) and a restore goes
//! through the server's own Docker engine (`[[servers]] docker_host`; see `volume_restore`):
//! the stack is stopped through Coolify, each volume replaced by its archive, then started
//! again if it ran before. Every step reads what is there first, so a rerun after a crash
//! finishes the work.

use std::collections::BTreeSet;
use std::time::Instant;

use cfa_backup_store::StoredObject;
use cfa_backup_store::layout::{COOLIFY_VOLUME_BACKUPS, final_backup_key, is_coolify_archive_of};
use cfa_coolify::CoolifyErrorKind;
use cfa_coolify::types::PersistentStorage;
use cfa_core::plan::BackupPolicy;
use cfa_pocketbase::{AuditOutcome, StackPatch};
use serde::Serialize;
use serde_json::json;

use super::execute::Progress;
use super::volume_restore::{RestoredVolume, VolumeRestoreError, restore_volume};
use super::*;
use crate::settings::FinalBackupSettings;

/// One archive in the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeArchive {
    pub key: String,
    pub size_bytes: u64,
    /// The bucket's last-modified time (unix ms): when the upload ended.
    pub last_modified_unix_ms: i64,
}

/// A volume of the stack and its archives, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeBackups {
    pub volume: String,
    pub storage_uuid: String,
    pub archives: Vec<VolumeArchive>,
}

/// `cfa backup list`: the stack's volumes with their archives, and the final backups kept
/// for it (a delete's, under the platform's prefix).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackBackups {
    pub tenant: String,
    pub stack: String,
    pub bucket: String,
    pub volumes: Vec<VolumeBackups>,
    pub final_backups: Vec<VolumeArchive>,
}

/// Which archive of each volume a restore uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreChoice {
    /// The newest archive written at or before this time (unix seconds); `None`: the newest.
    pub at_or_before_unix_seconds: Option<i64>,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    pub tenant: String,
    pub stack: String,
    pub volumes: Vec<RestoredVolume>,
    /// The stack was running and was started again.
    pub restarted: bool,
}

impl Engine {
    /// Records the stack's volumes (and since when their backups are due) in its
    /// `resource_limits`, when they differ from what is recorded: the monitor then finds their
    /// archives without asking Coolify.
    pub(super) async fn record_volumes(
        &self,
        subject: &Subject,
        step: Step,
        progress: &mut Progress,
        storages: &[PersistentStorage],
    ) -> Result<(), EngineError> {
        let volumes = recorded_volumes(storages);
        let Some(record) = progress.record.as_ref() else { return Ok(()) };
        let Some(mut recorded) = progress
            .recorded
            .clone()
            .or_else(|| record.resource_limits.as_ref().and_then(RecordedLimits::from_json))
        else {
            return Ok(());
        };
        if recorded.volumes.as_ref() == Some(&volumes) && recorded.backups_due_since_ms.is_some() {
            return Ok(());
        }
        recorded.volumes = Some(volumes);
        recorded
            .backups_due_since_ms
            .get_or_insert_with(|| jiff::Timestamp::now().as_millisecond());
        let patch =
            StackPatch { resource_limits: Some(recorded.to_json()), ..StackPatch::default() };
        let updated = self.update_record(subject, step, record, &patch, "stack.volumes").await?;
        progress.record = Some(updated);
        progress.recorded = Some(recorded);
        Ok(())
    }

    /// The stack's volumes: as recorded, else as Coolify lists them (recorded then).
    async fn stack_volumes(
        &self,
        subject: &Subject,
        action: &'static str,
        record: &AgentStack,
        service_uuid: &str,
    ) -> Result<Vec<RecordedVolume>, EngineError> {
        let recorded = record.resource_limits.as_ref().and_then(RecordedLimits::from_json);
        if let Some(volumes) = recorded.as_ref().and_then(|recorded| recorded.volumes.clone()) {
            return Ok(volumes);
        }
        let storages = self
            .inner
            .coolify
            .list_storages_by_service_uuid(service_uuid)
            .await
            .map_err(|error| subject.coolify(Step::SetBackupSchedule, error))?;
        let mut progress =
            Progress { record: Some(record.clone()), recorded, ..Progress::default() };
        let volumes = recorded_volumes(&storages.persistent);
        if let Err(error) = self
            .record_volumes(subject, Step::SetBackupSchedule, &mut progress, &storages.persistent)
            .await
        {
            tracing::warn!(tenant = %subject.tenant, stack = %subject.stack, action, error = %error, "the volumes could not be recorded; the monitor looks them up again");
        }
        Ok(volumes)
    }

    fn backup_store(
        &self,
        subject: &Subject,
        action: &'static str,
    ) -> Result<&FinalBackupSettings, EngineError> {
        self.inner.settings.final_backups.as_ref().ok_or_else(|| {
            subject.backup_refused(
                action,
                "no backup store is configured",
                "configure [backups] in cfa.toml (README, \"Backups\"): the bucket Coolify uploads volume backups to",
            )
        })
    }

    /// The stack's volumes and every archive of theirs in the bucket.
    pub async fn backup_list(
        &self,
        tenant: &str,
        stack: &str,
    ) -> Result<StackBackups, EngineError> {
        const ACTION: &str = "list";
        let subject = Subject { tenant: tenant.to_owned(), stack: stack.to_owned() };
        let (_tenant, record, _lock) = self.existing(&subject).await?;
        let settings = self.backup_store(&subject, ACTION)?;
        let service_uuid = service_of(&subject, ACTION, &record)?;
        let volumes = self.stack_volumes(&subject, ACTION, &record, &service_uuid).await?;
        let mut listed = Vec::new();
        for volume in volumes {
            let mut archives =
                coolify_archives(settings, &subject, ACTION, &volume.name, &volume.storage_uuid)
                    .await?;
            archives.sort_by_key(|archive| (archive.last_modified_unix_ms, archive.key.clone()));
            listed.push(VolumeBackups {
                volume: volume.name,
                storage_uuid: volume.storage_uuid,
                archives: archives.into_iter().map(VolumeArchive::from).collect(),
            });
        }
        let final_prefix = final_backup_key(&settings.prefix, tenant, stack, "");
        let mut final_backups: Vec<VolumeArchive> = settings
            .store
            .list(final_prefix.trim_end_matches('/'))
            .await
            .map_err(|error| subject.backup(ACTION, None, store_line(&error), BUCKET_HINT))?
            .into_iter()
            .map(VolumeArchive::from)
            .collect();
        final_backups.sort_by_key(|archive| (archive.last_modified_unix_ms, archive.key.clone()));
        Ok(StackBackups {
            tenant: tenant.to_owned(),
            stack: stack.to_owned(),
            bucket: settings.store.bucket().to_owned(),
            volumes: listed,
            final_backups,
        })
    }

    /// A backup of every volume now: the daily schedule (with the bucket) made sure of, one
    /// run queued per volume, and each new archive waited for in the bucket. Audited.
    pub async fn backup_run(
        &self,
        tenant: &str,
        stack: &str,
    ) -> Result<Vec<VolumeBackups>, EngineError> {
        const ACTION: &str = "run";
        let subject = Subject { tenant: tenant.to_owned(), stack: stack.to_owned() };
        let (tenant_record, record, lock) = self.existing(&subject).await?;
        let _guard = lock.lock().await;
        let settings = self.backup_store(&subject, ACTION)?;
        let plan = self.inner.settings.plans.plan(tenant_record.plan_tier);
        let BackupPolicy::Daily { retention_days } = plan.backups else {
            return Err(subject.backup_refused(
                ACTION,
                format!("the tenant's plan `{}` has no volume backups", tenant_record.plan_tier),
                "move the tenant to a plan with backups (`cfa tenant plan`), which schedules them",
            ));
        };
        let service_uuid = service_of(&subject, ACTION, &record)?;
        let storages = match self.inner.coolify.list_storages_by_service_uuid(&service_uuid).await {
            Ok(storages) => storages,
            Err(error) => return Err(subject.coolify(Step::SetBackupSchedule, error)),
        };
        let mut made = Vec::new();
        for storage in &storages.persistent {
            let fail = |detail: String, hint: String| {
                subject.backup(ACTION, Some(&storage.name), detail, hint)
            };
            let archive = self
                .run_volume_backup(
                    settings,
                    &subject,
                    &service_uuid,
                    storage,
                    retention_days,
                    &fail,
                )
                .await?;
            made.push(VolumeBackups {
                volume: storage.name.clone(),
                storage_uuid: storage.uuid.clone(),
                archives: vec![VolumeArchive::from(archive)],
            });
        }
        let mut progress = Progress { record: Some(record.clone()), ..Progress::default() };
        if let Err(error) = self
            .record_volumes(&subject, Step::SetBackupSchedule, &mut progress, &storages.persistent)
            .await
        {
            tracing::warn!(tenant = %subject.tenant, stack = %subject.stack, error = %error, "the volumes could not be recorded");
        }
        let after = json!({ "backups": made.iter().map(|volume| json!({
            "volume": volume.volume,
            "key": volume.archives.first().map(|archive| archive.key.clone()),
            "size_bytes": volume.archives.first().map(|archive| archive.size_bytes),
        })).collect::<Vec<_>>() });
        self.audit(&subject, "stack.backup", Value::Null, after, AuditOutcome::Ok, None).await;
        Ok(made)
    }

    /// One volume's backup: the schedule with the bucket set, a run queued, and the new
    /// archive (not empty) waited for in the bucket until the final-backup timeout.
    pub(super) async fn run_volume_backup(
        &self,
        settings: &FinalBackupSettings,
        subject: &Subject,
        service_uuid: &str,
        storage: &PersistentStorage,
        retention_days: u32,
        fail: &(dyn Fn(String, String) -> EngineError + Sync),
    ) -> Result<StoredObject, EngineError> {
        let coolify = &self.inner.coolify;
        // The schedule with S3 whatever the stack was provisioned with: `backups/run` needs a
        // schedule, and Coolify uploads only with `save_s3`.
        let request = self.backup_schedule(retention_days);
        if let Err(error) =
            coolify.set_service_storage_backup_schedule(service_uuid, &storage.uuid, &request).await
        {
            let hint = match error.kind {
                CoolifyErrorKind::VersionTooOld { .. } => "this Coolify cannot back up volumes (4.3 can): upgrade it".to_owned(),
                _ => error.hint().unwrap_or_else(|| "check the S3 storage in Coolify (Storages > S3) and [backups] coolify_s3_storage".to_owned()),
            };
            return Err(fail(
                format!("Coolify refused the backup schedule: {}", first_line_of(&error)),
                hint,
            ));
        }
        let listing_failed = |error: cfa_backup_store::BackupStoreError| {
            fail(store_line(&error), BUCKET_HINT.to_owned())
        };
        let existing =
            list_coolify_archives(settings, &storage.uuid).await.map_err(listing_failed)?;
        // Coolify names an archive by the second it started (`Carbon::now()->timestamp`): a
        // run in the same second as the last one would overwrite it under the same key.
        let newest = existing.iter().filter_map(|archive| archive_unix_seconds(&archive.key)).max();
        if let Some(newest) = newest {
            let now = jiff::Timestamp::now().as_second();
            if now <= newest + 1 {
                let pause = u64::try_from(newest + 2 - now).unwrap_or(2);
                tokio::time::sleep(std::time::Duration::from_secs(pause)).await;
            }
        }
        let before: BTreeSet<String> = existing.into_iter().map(|archive| archive.key).collect();
        let queued = Instant::now();
        if let Err(error) = coolify.run_service_storage_backup(service_uuid, &storage.uuid).await {
            let hint = error.hint().unwrap_or_else(|| "check Coolify and its logs".to_owned());
            return Err(fail(
                format!("Coolify did not queue the backup: {}", first_line_of(&error)),
                hint,
            ));
        }
        tracing::info!(tenant = %subject.tenant, stack = %subject.stack, volume = %storage.name, "backup queued; waiting for its archive in the bucket");
        loop {
            let archives =
                list_coolify_archives(settings, &storage.uuid).await.map_err(listing_failed)?;
            let fresh = archives
                .into_iter()
                .filter(|archive| !before.contains(&archive.key) && archive.size_bytes > 0)
                .max_by_key(|archive| archive.last_modified_unix_ms);
            if let Some(fresh) = fresh {
                return Ok(fresh);
            }
            if queued.elapsed() >= settings.timeout {
                return Err(fail(
                    format!(
                        "no new archive reached bucket `{}` within {}s of queueing the backup",
                        settings.store.bucket(),
                        settings.timeout.as_secs()
                    ),
                    "look at the volume's backup executions in Coolify (an empty volume, a full disk or a failed S3 upload fail it) and the [backups] timeout".to_owned(),
                ));
            }
            tokio::time::sleep(self.inner.settings.poll_interval).await;
        }
    }

    /// Replaces every volume of the stack with an archive from the bucket (the newest, or the
    /// newest at or before `choice`'s time). The stack is stopped through Coolify first
    /// (Coolify's stop removes its containers, so nothing holds the volumes) and started again
    /// if it was running. Every archive is found and downloaded before anything is stopped.
    pub async fn backup_restore(
        &self,
        tenant: &str,
        stack: &str,
        choice: RestoreChoice,
    ) -> Result<RestoreReport, EngineError> {
        const ACTION: &str = "restore";
        let subject = Subject { tenant: tenant.to_owned(), stack: stack.to_owned() };
        let (_tenant, record, _lock) = self.existing(&subject).await?;
        let settings = self.backup_store(&subject, ACTION)?;
        if !matches!(record.status, StackStatus::Running | StackStatus::Stopped) {
            return Err(subject.backup_refused(
                ACTION,
                format!("the stack is {}", record.status.as_str()),
                "restore a running or suspended stack: finish or fix its operation first (`cfa status`)",
            ));
        }
        let service_uuid = service_of(&subject, ACTION, &record)?;
        let server_uuid = record
            .resource_limits
            .as_ref()
            .and_then(RecordedLimits::from_json)
            .map(|recorded| recorded.server_uuid)
            .unwrap_or_default();
        let docker_host = self
            .inner
            .settings
            .servers
            .get(&server_uuid)
            .and_then(|server| server.docker_host.clone())
            .ok_or_else(|| {
                subject.backup_refused(
                    ACTION,
                    format!("no Docker engine is configured for the stack's server `{server_uuid}`"),
                    "set docker_host in its [[servers]] entry (an SSH-forwarded socket: docs/runbook.md, \"Restore a backup\"); Coolify has no restore API",
                )
            })?;
        let volumes = self.stack_volumes(&subject, ACTION, &record, &service_uuid).await?;
        if volumes.is_empty() {
            return Err(subject.backup_refused(
                ACTION,
                "the stack keeps no data in volumes",
                "nothing to restore",
            ));
        }
        // The image the restore's helper container is created from: one the server holds
        // since the stack ran (the helper is never started; Docker itself unpacks the archive).
        let service = self
            .inner
            .coolify
            .get_service_by_uuid(&service_uuid)
            .await
            .map_err(|error| subject.coolify(Step::StopService, error))?;
        let helper_image = service
            .applications
            .iter()
            .chain(&service.databases)
            .filter_map(|container| container.image.clone())
            .find(|image| !image.is_empty())
            .ok_or_else(|| {
                subject.backup_refused(
                    ACTION,
                    "Coolify names no image for the service's containers",
                    "check the service in Coolify",
                )
            })?;
        let downloads = tempfile::tempdir().map_err(|error| {
            subject.backup(ACTION, None, format!("no temporary directory: {error}"), "check TMPDIR")
        })?;
        let mut chosen = Vec::new();
        for volume in &volumes {
            let archives =
                coolify_archives(settings, &subject, ACTION, &volume.name, &volume.storage_uuid)
                    .await?;
            let archive = archives
                .into_iter()
                .filter(|archive| archive.size_bytes > 0)
                .filter(|archive| {
                    choice.at_or_before_unix_seconds.is_none_or(|limit| {
                        archive_unix_seconds(&archive.key).is_some_and(|seconds| seconds <= limit)
                    })
                })
                .max_by_key(|archive| (archive_unix_seconds(&archive.key), archive.last_modified_unix_ms))
                .ok_or_else(|| {
                    subject.backup_refused(
                        ACTION,
                        format!("volume `{}` has no archive to restore{}", volume.name, match choice.at_or_before_unix_seconds {
                            Some(limit) => format!(" from before unix time {limit}"),
                            None => String::new(),
                        }),
                        format!("`cfa backup list {tenant}/{stack}` shows the archives; `cfa backup run {tenant}/{stack}` makes one"),
                    )
                })?;
            let path = downloads.path().join(format!("{}.tar.gz", volume.storage_uuid));
            settings.store.download(&archive.key, &path).await.map_err(|error| {
                subject.backup(ACTION, Some(&volume.name), store_line(&error), BUCKET_HINT)
            })?;
            chosen.push((volume.clone(), archive, path));
        }
        let was_running = record.status == StackStatus::Running;
        if was_running {
            tracing::info!(tenant, stack, "stopping the stack for the restore");
            self.suspend(tenant, stack).await?;
        }
        let mut restored = Vec::new();
        for (volume, archive, path) in &chosen {
            let outcome = restore_volume(&docker_host, &volume.name, &helper_image, &archive.key, path)
                .await
                .map_err(|error: VolumeRestoreError| {
                    subject.backup(
                        ACTION,
                        Some(&volume.name),
                        error.to_string(),
                        format!("the stack stays stopped; fix the cause, then run `cfa backup restore {tenant}/{stack}` again and `cfa resume {tenant}/{stack}`"),
                    )
                })?;
            tracing::info!(tenant, stack, volume = %volume.name, key = %archive.key, "volume restored");
            restored.push(outcome);
        }
        let after = json!({ "restored": restored, "was_running": was_running });
        self.audit(&subject, "stack.restore", Value::Null, after, AuditOutcome::Ok, None).await;
        if was_running {
            self.resume(tenant, stack).await?;
        }
        Ok(RestoreReport {
            tenant: tenant.to_owned(),
            stack: stack.to_owned(),
            volumes: restored,
            restarted: was_running,
        })
    }
}

const BUCKET_HINT: &str =
    "check [backups] in cfa.toml (endpoint, bucket, access key) and that the bucket answers";

impl From<StoredObject> for VolumeArchive {
    fn from(object: StoredObject) -> VolumeArchive {
        VolumeArchive {
            key: object.key,
            size_bytes: object.size_bytes,
            last_modified_unix_ms: object.last_modified_unix_ms,
        }
    }
}

fn recorded_volumes(storages: &[PersistentStorage]) -> Vec<RecordedVolume> {
    storages
        .iter()
        .map(|storage| RecordedVolume {
            name: storage.name.clone(),
            storage_uuid: storage.uuid.clone(),
        })
        .collect()
}

fn service_of(
    subject: &Subject,
    action: &'static str,
    record: &AgentStack,
) -> Result<String, EngineError> {
    record.coolify_service_uuid.clone().filter(|uuid| !uuid.is_empty()).ok_or_else(|| {
        subject.backup_refused(action, "the stack has no Coolify service yet", "provision it first")
    })
}

/// The archives Coolify uploaded for one storage, whatever its team folder
/// (`<root>/<team slug>-<team id>/<storage uuid>/...`).
pub(super) async fn list_coolify_archives(
    settings: &FinalBackupSettings,
    storage_uuid: &str,
) -> Result<Vec<StoredObject>, cfa_backup_store::BackupStoreError> {
    let mut archives = Vec::new();
    for team in settings.store.folders(COOLIFY_VOLUME_BACKUPS).await? {
        let listed = settings.store.list(&format!("{team}/{storage_uuid}")).await?;
        archives.extend(
            listed.into_iter().filter(|object| is_coolify_archive_of(&object.key, storage_uuid)),
        );
    }
    Ok(archives)
}

async fn coolify_archives(
    settings: &FinalBackupSettings,
    subject: &Subject,
    action: &'static str,
    volume: &str,
    storage_uuid: &str,
) -> Result<Vec<StoredObject>, EngineError> {
    list_coolify_archives(settings, storage_uuid)
        .await
        .map_err(|error| subject.backup(action, Some(volume), store_line(&error), BUCKET_HINT))
}

/// The `<unix seconds>` in `volume-<name>-<unix seconds>.tar.gz`.
pub(super) fn archive_unix_seconds(key: &str) -> Option<i64> {
    let stem = key.strip_suffix(".tar.gz")?;
    stem.rsplit('-').next()?.parse().ok()
}

pub(super) fn store_line(error: &cfa_backup_store::BackupStoreError) -> String {
    error.to_string().lines().next().unwrap_or_default().to_owned()
}

//! The monitor's backup check: every stateful stack on a plan with daily backups has a recent,
//! non-empty archive of each volume in the platform's bucket, not much smaller than the one
//! before (`cfa_core::incidents::judge_backups` decides).
//!
//! Coolify lists no backup runs, and its own check is "larger than 0 bytes", so the bucket is
//! read: one listing of Coolify's volume-backup folder per check, at most once per
//! `backup_check_interval` (archives come daily; listing hundreds of thousands of keys every
//! pass would cost more than it tells). Each stack's volumes are read from its record (the
//! provision records them); a stack provisioned before that is looked up in Coolify, a few per
//! pass. A bucket that does not answer is one platform `backup_failed` incident.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use cfa_backup_store::layout::COOLIFY_VOLUME_BACKUPS;
use cfa_core::incidents::{
    BackupArchive, BackupVerdict, IncidentKind, IncidentSubject, Observation, judge_backups,
};
use cfa_core::plan::BackupPolicy;

use super::execute::Progress;
use super::monitor::{MonitorReport, Seen, stack_subject};
use super::*;

impl Engine {
    /// The backup observations of this pass: none when no bucket is configured or the last
    /// check is more recent than `backup_check_interval`.
    pub(super) async fn backup_observations(
        &self,
        records: &[AgentStack],
        coolify_answers: bool,
        now: SystemTime,
        report: &mut MonitorReport,
    ) -> Vec<Seen> {
        let settings = &self.inner.settings;
        let Some(store) = &settings.final_backups else { return Vec::new() };
        let interval = settings.monitor.backup_check_interval;
        let last = *self
            .inner
            .backups_checked_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|last| last.elapsed() < interval) {
            return Vec::new();
        }
        let mut seen = Vec::new();
        let objects = match store.store.list(COOLIFY_VOLUME_BACKUPS).await {
            Ok(objects) => objects,
            Err(error) => {
                seen.push(Seen {
                    subject: IncidentSubject::Platform,
                    kind: IncidentKind::BackupFailed,
                    observation: Observation::holds(format!(
                        "the backup store does not answer, so no backup can be checked: {}",
                        super::backups::store_line(&error)
                    )),
                });
                return seen;
            }
        };
        seen.push(Seen {
            subject: IncidentSubject::Platform,
            kind: IncidentKind::BackupFailed,
            observation: Observation::clear(),
        });
        report.backup_objects_listed = objects.len();
        // `<root>/<team>/<storage uuid>/<file>.tar.gz`, by storage uuid.
        let mut archives: HashMap<String, Vec<BackupArchive>> = HashMap::new();
        for object in objects {
            let Some(rest) = object.key.strip_prefix(COOLIFY_VOLUME_BACKUPS) else { continue };
            let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
            let [_team, storage_uuid, file] = parts[..] else { continue };
            if !file.ends_with(".tar.gz") {
                continue;
            }
            // Coolify names an archive by the second its run started: that dates it (the
            // bucket's last-modified, the upload's end, only when the name does not say).
            let created_ms = super::backups::archive_unix_seconds(file)
                .map_or(object.last_modified_unix_ms, |seconds| seconds.saturating_mul(1000));
            let created_at = SystemTime::UNIX_EPOCH
                + Duration::from_millis(u64::try_from(created_ms).unwrap_or(0));
            archives
                .entry(storage_uuid.to_owned())
                .or_default()
                .push(BackupArchive { size_bytes: object.size_bytes, created_at });
        }
        let mut lookups = 0;
        for record in records {
            let Some(tenant) = record.tenant.as_deref() else { continue };
            let subject = stack_subject(&tenant.slug, record);
            let backed_up =
                matches!(settings.plans.plan(tenant.plan_tier).backups, BackupPolicy::Daily { .. })
                    && matches!(record.status, StackStatus::Running | StackStatus::Stopped);
            let service_uuid =
                record.coolify_service_uuid.as_deref().filter(|uuid| !uuid.is_empty());
            let (true, Some(service_uuid)) = (backed_up, service_uuid) else {
                // No backups due (any more): an open backup incident resolves.
                seen.extend(clear_all(&subject));
                continue;
            };
            let mut recorded = record.resource_limits.as_ref().and_then(RecordedLimits::from_json);
            if recorded.as_ref().is_some_and(|recorded| recorded.limits.disk_mb == 0) {
                // The template keeps no data (no disk reserved): nothing to back up.
                seen.extend(clear_all(&subject));
                continue;
            }
            if recorded.as_ref().is_some_and(|recorded| recorded.volumes.is_none()) {
                if !coolify_answers || lookups >= settings.monitor.volume_lookups_per_pass {
                    continue;
                }
                lookups += 1;
                recorded = self.look_up_volumes(&tenant.slug, record, service_uuid, report).await;
            }
            let Some(recorded) = recorded else { continue };
            let Some(volumes) = recorded.volumes.as_ref().filter(|volumes| !volumes.is_empty())
            else {
                seen.extend(clear_all(&subject));
                continue;
            };
            let due_since = recorded
                .backups_due_since_ms
                .and_then(|ms| u64::try_from(ms).ok())
                .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
                .unwrap_or_else(|| SystemTime::from(record.created_at));
            let mut worst: Option<(BackupVerdict, &str)> = None;
            for volume in volumes {
                let found = archives.get(&volume.storage_uuid).map_or(&[][..], Vec::as_slice);
                let verdict = judge_backups(found, due_since, &settings.monitor.backups, now);
                if worst.is_none_or(|(current, _)| severity(&verdict) > severity(&current)) {
                    worst = Some((verdict, volume.name.as_str()));
                }
            }
            let Some((verdict, volume)) = worst else { continue };
            for (kind, mut observation) in verdict.observations() {
                if let Some(detail) = observation.detail.take() {
                    observation.detail = Some(format!("volume {volume}: {detail}"));
                }
                seen.push(Seen { subject: subject.clone(), kind, observation });
            }
        }
        *self.inner.backups_checked_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Instant::now());
        seen
    }

    /// A stack recorded before volumes were: asks Coolify once and records them.
    async fn look_up_volumes(
        &self,
        tenant: &str,
        record: &AgentStack,
        service_uuid: &str,
        report: &mut MonitorReport,
    ) -> Option<RecordedLimits> {
        let subject = Subject { tenant: tenant.to_owned(), stack: record.stack_name.clone() };
        report.coolify_calls += 1;
        let storages = match self.inner.coolify.list_storages_by_service_uuid(service_uuid).await {
            Ok(storages) => storages,
            Err(error) => {
                tracing::warn!(tenant, stack = %record.stack_name, %error, "cannot list the stack's volumes; its backups are checked once they are known");
                return None;
            }
        };
        let mut progress = Progress {
            record: Some(record.clone()),
            recorded: record.resource_limits.as_ref().and_then(RecordedLimits::from_json),
            ..Progress::default()
        };
        match self
            .record_volumes(&subject, Step::SetBackupSchedule, &mut progress, &storages.persistent)
            .await
        {
            Ok(()) => report.record_writes += 1,
            Err(error) => {
                tracing::warn!(tenant, stack = %record.stack_name, %error, "cannot record the stack's volumes");
                return None;
            }
        }
        progress.recorded
    }
}

fn clear_all(subject: &IncidentSubject) -> impl Iterator<Item = Seen> + '_ {
    [IncidentKind::BackupMissing, IncidentKind::BackupEmpty, IncidentKind::BackupShrunk]
        .into_iter()
        .map(|kind| Seen { subject: subject.clone(), kind, observation: Observation::clear() })
}

/// Which volume's verdict speaks for the stack: missing, then empty, then shrunk.
fn severity(verdict: &BackupVerdict) -> u8 {
    match verdict {
        BackupVerdict::Fine => 0,
        BackupVerdict::Shrunk { .. } => 1,
        BackupVerdict::Empty { .. } => 2,
        BackupVerdict::Missing { .. } => 3,
    }
}

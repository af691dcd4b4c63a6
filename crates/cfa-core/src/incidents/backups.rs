//! Backups that are proven: the archives found in S3 for a stateful stack on a paid plan,
//! judged against its daily period.
//!
//! Coolify's own check is "archive larger than 0 bytes" and it has no API listing volume
//! backup runs, so the platform lists the archives itself and judges them here: the newest is
//! at most a period plus a grace old (Healthchecks.io's dead-man's switch: period 1 day, grace
//! 1 h), not empty, and not much smaller than the one before. A backup run that reports failure
//! is the engine's `backup_failed` observation; it is not judged from archives.

use std::time::{Duration, SystemTime};

use super::grouping::short_duration;
use super::{IncidentKind, Observation};

/// One archive as listed in the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupArchive {
    pub size_bytes: u64,
    /// When it was written (the object's last-modified time).
    pub created_at: SystemTime,
}

/// What a good backup history looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupExpectations {
    /// How often a backup runs: a day for the paid plans.
    pub period: Duration,
    /// How late the newest may be beyond the period.
    pub grace: Duration,
    /// Smaller than this is empty.
    pub empty_below_bytes: u64,
    /// Below this share of the previous archive is "much smaller".
    pub shrunk_below_percent: u32,
}

impl Default for BackupExpectations {
    /// A day, 2 h of grace, empty under 128 bytes, shrunk under 50% of the previous one.
    ///
    /// The grace is twice Healthchecks.io's hour because an archive is dated when its upload
    /// ends, and a volume that grew takes longer to pack and upload than yesterday. 128 bytes:
    /// a gzipped tar of an empty directory is 105 bytes, of one with a 3-byte file 143.
    fn default() -> BackupExpectations {
        BackupExpectations {
            period: Duration::from_secs(24 * 3600),
            grace: Duration::from_secs(2 * 3600),
            empty_below_bytes: 128,
            shrunk_below_percent: 50,
        }
    }
}

/// The judgement of one stack's archives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupVerdict {
    /// The newest is recent, not empty, not much smaller (or no backup is due yet).
    Fine,
    /// No archive at all after the first period and grace, or the newest is too old.
    Missing { newest_age: Option<Duration>, allowed_age: Duration },
    /// The newest is (nearly) zero bytes.
    Empty { size_bytes: u64 },
    /// The newest is much smaller than the one before.
    Shrunk { size_bytes: u64, previous_size_bytes: u64 },
}

impl BackupVerdict {
    /// The incident kind it fires, if any.
    pub fn incident_kind(&self) -> Option<IncidentKind> {
        match self {
            BackupVerdict::Fine => None,
            BackupVerdict::Missing { .. } => Some(IncidentKind::BackupMissing),
            BackupVerdict::Empty { .. } => Some(IncidentKind::BackupEmpty),
            BackupVerdict::Shrunk { .. } => Some(IncidentKind::BackupShrunk),
        }
    }

    /// What is wrong, for people.
    pub fn detail(&self) -> Option<String> {
        match *self {
            BackupVerdict::Fine => None,
            BackupVerdict::Missing { newest_age: None, allowed_age } => Some(format!(
                "no backup archive, {} after backups became due",
                short_duration(allowed_age)
            )),
            BackupVerdict::Missing { newest_age: Some(age), allowed_age } => Some(format!(
                "the newest backup archive is {} old (at most {} expected)",
                short_duration(age),
                short_duration(allowed_age)
            )),
            BackupVerdict::Empty { size_bytes } => {
                Some(format!("the newest backup archive has {size_bytes} bytes"))
            }
            BackupVerdict::Shrunk { size_bytes, previous_size_bytes } => Some(format!(
                "the newest backup archive has {size_bytes} bytes, {}% of the previous one's \
                 {previous_size_bytes}",
                u128::from(size_bytes) * 100 / u128::from(previous_size_bytes.max(1))
            )),
        }
    }

    /// One observation for each of `backup_missing`, `backup_empty` and `backup_shrunk`, to
    /// step their tracks with. A missing backup says nothing about the archive that should
    /// have come (no data for `empty` and `shrunk`, whose incidents stay as they were); an
    /// empty one is not also reported as shrunk.
    pub fn observations(&self) -> [(IncidentKind, Observation); 3] {
        let holds = || Observation::holds(self.detail().unwrap_or_default());
        let missing = matches!(self, BackupVerdict::Missing { .. });
        let for_kind = |kind: IncidentKind| {
            if self.incident_kind() == Some(kind) {
                holds()
            } else if missing {
                Observation::no_data()
            } else {
                Observation::clear()
            }
        };
        [
            (IncidentKind::BackupMissing, for_kind(IncidentKind::BackupMissing)),
            (IncidentKind::BackupEmpty, for_kind(IncidentKind::BackupEmpty)),
            (IncidentKind::BackupShrunk, for_kind(IncidentKind::BackupShrunk)),
        ]
    }
}

/// Judges a stack's archives (any order) at `now`. `due_since` is when backups became due:
/// the stack's creation, or its move to a plan with backups; without an archive nothing is
/// missing before a period and its grace have passed since then.
///
/// Missing comes first (an old archive's size says nothing about today's), then empty, then
/// shrunk. An archive dated in the future (clock skew) counts as new.
pub fn judge_backups(
    archives: &[BackupArchive],
    due_since: SystemTime,
    expectations: &BackupExpectations,
    now: SystemTime,
) -> BackupVerdict {
    let age = |time: SystemTime| now.duration_since(time).unwrap_or(Duration::ZERO);
    let allowed_age = expectations.period.saturating_add(expectations.grace);
    let mut by_time: Vec<&BackupArchive> = archives.iter().collect();
    by_time.sort_by_key(|archive| std::cmp::Reverse(archive.created_at));
    let Some(newest) = by_time.first() else {
        return if age(due_since) > allowed_age {
            BackupVerdict::Missing { newest_age: None, allowed_age }
        } else {
            BackupVerdict::Fine
        };
    };
    if age(newest.created_at) > allowed_age {
        return BackupVerdict::Missing { newest_age: Some(age(newest.created_at)), allowed_age };
    }
    let is_empty = |archive: &BackupArchive| {
        archive.size_bytes == 0 || archive.size_bytes < expectations.empty_below_bytes
    };
    if is_empty(newest) {
        return BackupVerdict::Empty { size_bytes: newest.size_bytes };
    }
    if let Some(previous) = by_time.get(1).filter(|previous| !is_empty(previous)) {
        let shrunk = u128::from(newest.size_bytes) * 100
            < u128::from(previous.size_bytes) * u128::from(expectations.shrunk_below_percent);
        if shrunk {
            return BackupVerdict::Shrunk {
                size_bytes: newest.size_bytes,
                previous_size_bytes: previous.size_bytes,
            };
        }
    }
    BackupVerdict::Fine
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::Condition;

    const HOUR: u64 = 3600;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
    }

    fn archive(size_bytes: u64, created_hour: u64) -> BackupArchive {
        BackupArchive { size_bytes, created_at: at(created_hour * HOUR) }
    }

    /// Judges `archives` at `now_hour`, backups due since hour 0, default expectations.
    fn check(archives: &[BackupArchive], now_hour: u64) -> BackupVerdict {
        judge_backups(archives, at(0), &BackupExpectations::default(), at(now_hour * HOUR))
    }

    #[test]
    fn a_daily_archive_of_a_steady_size_is_fine() {
        let archives = [archive(1_000_000, 24), archive(1_050_000, 48), archive(990_000, 72)];
        assert_eq!(check(&archives, 80), BackupVerdict::Fine);
        // Archives come in any order.
        let shuffled = [archives[2], archives[0], archives[1]];
        assert_eq!(check(&shuffled, 80), BackupVerdict::Fine);
    }

    #[test]
    fn missing_only_after_the_period_and_its_grace() {
        // No archive yet: due after 24 h + 2 h from when backups became due.
        assert_eq!(check(&[], 26), BackupVerdict::Fine);
        let verdict = check(&[], 27);
        assert_eq!(verdict.incident_kind(), Some(IncidentKind::BackupMissing));
        assert_eq!(
            verdict.detail().as_deref(),
            Some("no backup archive, 1d 2h after backups became due")
        );
        // The newest archive at hour 24 is fine until hour 50 exactly, missing after.
        assert_eq!(check(&[archive(1_000, 24)], 50), BackupVerdict::Fine);
        let late = judge_backups(
            &[archive(1_000, 24)],
            at(0),
            &BackupExpectations::default(),
            at(50 * HOUR + 1),
        );
        assert_eq!(late.incident_kind(), Some(IncidentKind::BackupMissing));
        // An old empty archive is missing, not empty.
        assert_eq!(check(&[archive(0, 24)], 60).incident_kind(), Some(IncidentKind::BackupMissing));
    }

    #[test]
    fn an_empty_archive_is_zero_bytes_or_under_the_floor() {
        assert_eq!(check(&[archive(0, 24)], 25), BackupVerdict::Empty { size_bytes: 0 });
        // A gzipped tar of an empty directory.
        assert_eq!(check(&[archive(105, 24)], 25), BackupVerdict::Empty { size_bytes: 105 });
        assert_eq!(check(&[archive(143, 24)], 25), BackupVerdict::Fine);
        // Empty after a big one is empty, not shrunk.
        let verdict = check(&[archive(1_000_000, 0), archive(0, 24)], 25);
        assert_eq!(verdict, BackupVerdict::Empty { size_bytes: 0 });
    }

    #[test]
    fn an_archive_under_half_the_previous_one_has_shrunk() {
        let verdict = check(&[archive(1_000_000, 0), archive(499_999, 24)], 25);
        assert_eq!(
            verdict,
            BackupVerdict::Shrunk { size_bytes: 499_999, previous_size_bytes: 1_000_000 }
        );
        assert_eq!(
            verdict.detail().as_deref(),
            Some("the newest backup archive has 499999 bytes, 49% of the previous one's 1000000")
        );
        assert_eq!(check(&[archive(1_000_000, 0), archive(500_000, 24)], 25), BackupVerdict::Fine);
        // Only the one before counts, and growing from an empty one is not a shrink either.
        assert_eq!(
            check(&[archive(9_000_000, 0), archive(1_000_000, 24), archive(900_000, 48)], 49),
            BackupVerdict::Fine
        );
        assert_eq!(check(&[archive(0, 0), archive(200, 24)], 25), BackupVerdict::Fine);
    }

    #[test]
    fn observations_step_each_backup_kind() {
        let conditions = |verdict: BackupVerdict| {
            verdict.observations().map(|(kind, observation)| (kind.as_str(), observation.condition))
        };
        assert_eq!(
            conditions(BackupVerdict::Empty { size_bytes: 0 }),
            [
                ("backup_missing", Condition::Clear),
                ("backup_empty", Condition::Holds),
                ("backup_shrunk", Condition::Clear),
            ]
        );
        let missing = BackupVerdict::Missing { newest_age: None, allowed_age: Duration::ZERO };
        assert_eq!(
            conditions(missing),
            [
                ("backup_missing", Condition::Holds),
                ("backup_empty", Condition::NoData),
                ("backup_shrunk", Condition::NoData),
            ]
        );
        assert!(
            conditions(BackupVerdict::Fine)
                .iter()
                .all(|(_, condition)| *condition == Condition::Clear)
        );
    }
}

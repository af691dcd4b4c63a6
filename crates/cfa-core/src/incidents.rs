//! Incidents: when a condition the monitor sees becomes an incident, when it is announced,
//! reminded and resolved, and how a storm of them becomes a few messages.
//!
//! The monitor (in the engine) looks; this module decides. For every subject (a stack, a
//! server, a Coolify service, the platform) and every [`IncidentKind`] the monitor reports one
//! [`Observation`] per check: the condition holds, is clear, or could not be looked at. [`step`]
//! folds it into that stream's [`IncidentTrack`] and returns the [`Notification`]s to send.
//! Everything takes `now` as an argument; nothing here reads a clock.
//!
//! # Design notes
//!
//! - **One incident per subject and kind.** A track is keyed by [`IncidentSubject::key`] and
//!   the kind; an incident is opened once, resolved once, and the resolve goes to every
//!   channel that got the open. Alertmanager sends no resolve e-mail by default and users
//!   complain of missed resolves (prometheus/alertmanager#2060); here a resolve is part of the
//!   contract, not a channel option.
//! - **Pending before firing**, per kind ([`AlertPolicy::pending_for`] and
//!   [`AlertPolicy::consecutive_failures`], both must be met): a stack is unhealthy after 3
//!   failed checks in a row spanning 60 s, an OOM kill fires at once. Alertmanager's
//!   `group_wait` gives every alert the same 30 s; a kind-specific wait is both quicker for
//!   events and quieter for blips.
//! - **Events** (an OOM kill, an unexpected exit, a failed deploy) hold at an instant. The
//!   monitor reports [`Condition::Holds`] when one happened since the last check,
//!   [`Condition::Clear`] once the stack is seen healthy again (or, for a failed deploy, a
//!   deploy succeeded), and [`Condition::NoData`] in between; with no pending period the
//!   incident opens on the event and stays open until the stack recovered.
//! - **Flapping** (Kibana's rule: 4 or more changes in the last 20 checks) turns a stream into
//!   one `flapping` incident instead of an open/resolve stream, and it is judged on the raw
//!   condition, so a stack that fails every other check (which a pending period would never
//!   let fire) is caught too. It resolves after 10 checks in a row agree.
//! - **Reminders** every [`AlertPolicy::repeat_every`] while open (4 h for stack kinds, as
//!   Alertmanager's `repeat_interval`; 1 h for a lost controller lease, since then nothing
//!   reconciles; a day for backups, capacity and orphans, which change daily at most), unless
//!   acknowledged or silenced.
//! - **Acknowledge and silence.** An acknowledgement is for the open incident (it ends when
//!   the incident resolves or at its `until`) and holds back reminders. A silence is for the
//!   stream (subject and kind) until a time, whether or not an incident is open, and holds
//!   back opens and reminders. The rule for resolves: **a resolve is sent exactly when the
//!   open was sent.** So an incident announced and then silenced still sends its resolve (the
//!   operator who saw it open learns it is over), and one that opened and resolved inside a
//!   silence sends nothing. An incident still open when its silence ends is announced then.
//! - **Storms are grouped** by [`group_notifications`]: one message per (kind, notification
//!   kind) per pass, counting and listing the first few subjects. 500 stacks going unhealthy
//!   at once make one message per channel, not 500.
//! - **No data is not clear.** When Coolify or PocketBase cannot be read, the monitor reports
//!   [`Condition::NoData`] for every stack (and opens one platform incident): nothing fires,
//!   nothing resolves, and pending periods do not advance by check count. Reminders still go
//!   out, since they depend only on time.
//!
//! # Persisting a track
//!
//! [`IncidentTrack`] is plain data with public fields: its kind, its state (the open incident's
//! times and detail), the current run of checks where the condition held, the last 32 checks
//! as a bit set (`recent_checks`) and the silence. A steady stream leaves it unchanged (the
//! check count of a run saturates, the bit set saturates at all ones or all zeros), so the
//! engine writes it only when `new != old`, and a track equal to [`IncidentTrack::new`] need
//! not be stored at all. Times are `SystemTime`s; store them as PocketBase dates (UTC, to the
//! millisecond is enough) and `recent_checks` as a number.

use std::fmt;

mod backups;
mod capacity;
mod grouping;
mod policy;
mod track;

pub use backups::{BackupArchive, BackupExpectations, BackupVerdict, judge_backups};
pub use capacity::{CapacityThresholds, capacity_low, judge_capacity};
pub use grouping::{GroupedMessage, group_notifications, short_duration};
pub use policy::{AlertPolicies, AlertPolicy, FlappingPolicy};
pub use track::{
    Condition, Holding, IncidentTrack, Notification, NotificationKind, Observation, OpenIncident,
    Resolution, TrackState, TrackStatus, acknowledge, resolve_removed, silence, step, unsilence,
};

/// What an incident is about. Stored in PocketBase as [`IncidentKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IncidentKind {
    /// N failed checks in a row (Coolify's status and our probe, judged by `judge_health`).
    Unhealthy,
    /// Containers restart over and over.
    RestartLoop,
    /// The kernel killed a container at its memory limit (the host agent's `oom` event).
    OomKilled,
    /// A container exited that should run (the host agent's `die` with its exit code).
    UnexpectedExit,
    /// A deploy ended in failure.
    DeployFailed,
    /// Our HTTP probe fails while Coolify says the stack is healthy.
    ProbeFailingWhileHealthy,
    /// A stack stayed `deploying` past its deploy timeout.
    StuckDeploying,
    /// A server's reserved RAM or disk is over its threshold.
    CapacityLow,
    /// No backup archive within the period and its grace.
    BackupMissing,
    /// A backup run reported failure.
    BackupFailed,
    /// The newest archive is empty.
    BackupEmpty,
    /// The newest archive is much smaller than the previous one.
    BackupShrunk,
    /// A Coolify service carries our marker but no record claims it.
    OrphanService,
    /// No controller holds the lease: nobody reconciles.
    ControllerLeaseLost,
    /// Coolify's API does not answer: one platform incident, never every stack flipped.
    CoolifyUnreachable,
    /// PocketBase does not answer: nothing can be recorded, so it goes out through the local
    /// spool.
    PocketBaseUnreachable,
    /// Another kind's condition changes too often; reported instead of that kind.
    Flapping,
}

impl IncidentKind {
    /// Every kind, in declaration order.
    pub const ALL: [IncidentKind; 17] = [
        IncidentKind::Unhealthy,
        IncidentKind::RestartLoop,
        IncidentKind::OomKilled,
        IncidentKind::UnexpectedExit,
        IncidentKind::DeployFailed,
        IncidentKind::ProbeFailingWhileHealthy,
        IncidentKind::StuckDeploying,
        IncidentKind::CapacityLow,
        IncidentKind::BackupMissing,
        IncidentKind::BackupFailed,
        IncidentKind::BackupEmpty,
        IncidentKind::BackupShrunk,
        IncidentKind::OrphanService,
        IncidentKind::ControllerLeaseLost,
        IncidentKind::CoolifyUnreachable,
        IncidentKind::PocketBaseUnreachable,
        IncidentKind::Flapping,
    ];

    /// The stable snake_case name stored in PocketBase and sent in webhooks.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::Unhealthy => "unhealthy",
            IncidentKind::RestartLoop => "restart_loop",
            IncidentKind::OomKilled => "oom_killed",
            IncidentKind::UnexpectedExit => "unexpected_exit",
            IncidentKind::DeployFailed => "deploy_failed",
            IncidentKind::ProbeFailingWhileHealthy => "probe_failing_while_healthy",
            IncidentKind::StuckDeploying => "stuck_deploying",
            IncidentKind::CapacityLow => "capacity_low",
            IncidentKind::BackupMissing => "backup_missing",
            IncidentKind::BackupFailed => "backup_failed",
            IncidentKind::BackupEmpty => "backup_empty",
            IncidentKind::BackupShrunk => "backup_shrunk",
            IncidentKind::OrphanService => "orphan_service",
            IncidentKind::ControllerLeaseLost => "controller_lease_lost",
            IncidentKind::CoolifyUnreachable => "coolify_unreachable",
            IncidentKind::PocketBaseUnreachable => "pocketbase_unreachable",
            IncidentKind::Flapping => "flapping",
        }
    }

    /// Parses [`IncidentKind::as_str`]'s names.
    pub fn parse(input: &str) -> Result<IncidentKind, IncidentError> {
        IncidentKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == input)
            .ok_or_else(|| IncidentError::UnknownKind { given: input.chars().take(40).collect() })
    }

    /// A short phrase for messages ("OOM kill", "restart loop").
    pub fn title(self) -> &'static str {
        match self {
            IncidentKind::Unhealthy => "unhealthy",
            IncidentKind::RestartLoop => "restart loop",
            IncidentKind::OomKilled => "OOM kill",
            IncidentKind::UnexpectedExit => "unexpected exit",
            IncidentKind::DeployFailed => "deploy failed",
            IncidentKind::ProbeFailingWhileHealthy => "probe failing while Coolify says healthy",
            IncidentKind::StuckDeploying => "stuck deploying",
            IncidentKind::CapacityLow => "capacity low",
            IncidentKind::BackupMissing => "backup missing",
            IncidentKind::BackupFailed => "backup failed",
            IncidentKind::BackupEmpty => "backup empty",
            IncidentKind::BackupShrunk => "backup much smaller than the previous one",
            IncidentKind::OrphanService => "orphan service",
            IncidentKind::ControllerLeaseLost => "controller lease lost",
            IncidentKind::CoolifyUnreachable => "Coolify unreachable",
            IncidentKind::PocketBaseUnreachable => "PocketBase unreachable",
            IncidentKind::Flapping => "flapping",
        }
    }

    /// Kinds whose condition is an event at an instant rather than a state: the monitor reports
    /// `Holds` when one happened and `Clear` once the subject recovered (see the module notes).
    pub fn is_event(self) -> bool {
        matches!(
            self,
            IncidentKind::OomKilled | IncidentKind::UnexpectedExit | IncidentKind::DeployFailed
        )
    }
}

impl fmt::Display for IncidentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for IncidentKind {
    type Err = IncidentError;
    fn from_str(input: &str) -> Result<IncidentKind, IncidentError> {
        IncidentKind::parse(input)
    }
}

/// What an incident is on.
///
/// Names are plain strings, not [`crate::TenantSlug`]s: the monitor must keep going on a
/// record whose name no longer parses.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IncidentSubject {
    /// A tenant's stack; `record_id` is its PocketBase record.
    Stack { tenant_slug: String, stack_name: String, record_id: String },
    /// A Coolify server.
    Server { uuid: String },
    /// A Coolify service with no stack record (an orphan).
    CoolifyService { uuid: String },
    /// The platform itself: Coolify or PocketBase unreachable, the controller lease.
    Platform,
}

impl IncidentSubject {
    /// The stable key incidents are deduplicated by, together with the kind:
    /// `stack:acme/support-bot#<record id>`, `server:<uuid>`, `service:<uuid>`, `platform`.
    ///
    /// The record id is part of a stack's key, so a stack deleted and created again under the
    /// same name starts afresh; tenant and name come first, so keys sort as people read them.
    pub fn key(&self) -> String {
        match self {
            IncidentSubject::Stack { tenant_slug, stack_name, record_id } => {
                format!("stack:{tenant_slug}/{stack_name}#{record_id}")
            }
            IncidentSubject::Server { uuid } => format!("server:{uuid}"),
            IncidentSubject::CoolifyService { uuid } => format!("service:{uuid}"),
            IncidentSubject::Platform => "platform".to_owned(),
        }
    }

    /// The name people know it by: `acme/support-bot`, a uuid, `platform`.
    pub fn label(&self) -> String {
        match self {
            IncidentSubject::Stack { tenant_slug, stack_name, .. } => {
                format!("{tenant_slug}/{stack_name}")
            }
            IncidentSubject::Server { uuid } | IncidentSubject::CoolifyService { uuid } => {
                uuid.clone()
            }
            IncidentSubject::Platform => "platform".to_owned(),
        }
    }

    /// What it is, in a word, singular: "stack", "server", "service", "platform".
    pub fn noun(&self) -> &'static str {
        match self {
            IncidentSubject::Stack { .. } => "stack",
            IncidentSubject::Server { .. } => "server",
            IncidentSubject::CoolifyService { .. } => "service",
            IncidentSubject::Platform => "platform",
        }
    }
}

impl fmt::Display for IncidentSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IncidentSubject::Platform => f.write_str("the platform"),
            _ => write!(f, "{} {}", self.noun(), self.label()),
        }
    }
}

/// The key of one incident: its subject's key and the kind it is reported as. A flapping
/// incident names the kind that flaps (`.../flapping:unhealthy`), so two kinds flapping on one
/// stack are two incidents.
pub fn incident_key(
    subject: &IncidentSubject,
    incident_kind: IncidentKind,
    flapping_of: Option<IncidentKind>,
) -> String {
    match flapping_of {
        Some(flapping_kind) => format!("{}/{incident_kind}:{flapping_kind}", subject.key()),
        None => format!("{}/{incident_kind}", subject.key()),
    }
}

/// What can go wrong here: unknown names and invalid settings, no I/O.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncidentError {
    #[error(
        "unknown incident kind `{given}`\nhint: one of unhealthy, restart_loop, oom_killed, unexpected_exit, deploy_failed, probe_failing_while_healthy, stuck_deploying, capacity_low, backup_missing, backup_failed, backup_empty, backup_shrunk, orphan_service, controller_lease_lost, flapping"
    )]
    UnknownKind { given: String },
    #[error("no {kind} incident is open to acknowledge")]
    NotOpen { kind: IncidentKind },
    #[error(
        "flapping detection for {kind} looks at {window_checks} checks, more than the {max} kept"
    )]
    FlappingWindowTooLong { kind: IncidentKind, window_checks: u32, max: u32 },
    #[error(
        "flapping detection for {kind} needs between 1 and {most} changes in {window_checks} checks, not {min_changes}"
    )]
    FlappingChangesOutOfRange {
        kind: IncidentKind,
        min_changes: u32,
        window_checks: u32,
        most: u32,
    },
    #[error("flapping for {kind} ends after between 1 and {max} calm checks, not {calm_checks}")]
    FlappingCalmOutOfRange { kind: IncidentKind, calm_checks: u32, max: u32 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip_and_are_unique() {
        let mut names: Vec<&str> = IncidentKind::ALL.iter().map(|kind| kind.as_str()).collect();
        for kind in IncidentKind::ALL {
            assert_eq!(IncidentKind::parse(kind.as_str()), Ok(kind));
            assert_eq!(kind.to_string().parse::<IncidentKind>(), Ok(kind));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), IncidentKind::ALL.len());
        let error = IncidentKind::parse("oom").unwrap_err();
        assert!(error.to_string().starts_with("unknown incident kind `oom`"), "{error}");
        assert!(error.to_string().contains("oom_killed"), "{error}");
    }

    #[test]
    fn subject_keys_are_stable_and_sort_by_tenant_and_stack() {
        let stack = |tenant: &str, name: &str, id: &str| IncidentSubject::Stack {
            tenant_slug: tenant.to_owned(),
            stack_name: name.to_owned(),
            record_id: id.to_owned(),
        };
        assert_eq!(stack("acme", "bot", "r1").key(), "stack:acme/bot#r1");
        assert_eq!(IncidentSubject::Server { uuid: "s1".into() }.key(), "server:s1");
        assert_eq!(IncidentSubject::CoolifyService { uuid: "c1".into() }.key(), "service:c1");
        assert_eq!(IncidentSubject::Platform.key(), "platform");
        assert!(stack("acme", "a", "zz").key() < stack("acme", "b", "aa").key());
        assert_eq!(stack("acme", "bot", "r1").to_string(), "stack acme/bot");
        assert_eq!(
            incident_key(&stack("acme", "bot", "r1"), IncidentKind::OomKilled, None),
            "stack:acme/bot#r1/oom_killed"
        );
        assert_eq!(
            incident_key(
                &IncidentSubject::Platform,
                IncidentKind::Flapping,
                Some(IncidentKind::ControllerLeaseLost)
            ),
            "platform/flapping:controller_lease_lost"
        );
    }
}

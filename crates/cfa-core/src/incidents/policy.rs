//! Alert policies: per kind, how long a condition must hold before it fires, how often an open
//! incident is repeated, and when a stream counts as flapping.
//!
//! Plain data with `Duration`s: the file format (`cfa.toml`, humantime strings such as
//! `"60s"`) belongs to the CLI, which reads it and calls [`AlertPolicies::set`].

use std::collections::BTreeMap;
use std::time::Duration;

use super::{IncidentError, IncidentKind};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// How one kind of incident fires, repeats and flaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertPolicy {
    /// How long the condition must hold, without a clear check in between, before the
    /// incident fires. Zero fires on the first check that holds.
    pub pending_for: Duration,
    /// How many checks in a row must find the condition holding before it fires (both this and
    /// `pending_for` must be met). 0 counts as 1.
    pub consecutive_failures: u32,
    /// Reminders while the incident is open and neither acknowledged nor silenced, this long
    /// after the last message. Zero sends none.
    pub repeat_every: Duration,
    /// Flapping detection for this kind's stream; `None` turns it off.
    pub flapping: Option<FlappingPolicy>,
}

/// When a stream flaps, and when it is calm again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlappingPolicy {
    /// How many of the latest checks are looked at (at most [`FlappingPolicy::MAX_CHECKS`]).
    pub window_checks: u32,
    /// Flapping from this many changes (holds to clear or back) within the window.
    pub min_changes: u32,
    /// Flapping ends once this many checks in a row agree. The window then starts afresh, so
    /// one more change cannot flip it straight back.
    pub calm_checks: u32,
}

impl FlappingPolicy {
    /// Checks a track remembers (one bit each in `IncidentTrack::recent_checks`).
    pub const MAX_CHECKS: u32 = 32;

    /// Kibana's rule: 4 changes in the last 20 checks; calm after 10 checks in a row agree.
    pub const DEFAULT: FlappingPolicy =
        FlappingPolicy { window_checks: 20, min_changes: 4, calm_checks: 10 };

    /// Changes within the last `window_checks` of `recent_checks` (bit 0 the latest; checks
    /// before the first one count as clear).
    pub fn changes_in_window(&self, recent_checks: u32) -> u32 {
        let pairs = self.window_checks.clamp(1, FlappingPolicy::MAX_CHECKS) - 1;
        let mask = (1u32 << pairs) - 1;
        ((recent_checks ^ (recent_checks >> 1)) & mask).count_ones()
    }

    /// Whether `recent_checks` flap.
    pub fn is_flapping(&self, recent_checks: u32) -> bool {
        self.changes_in_window(recent_checks) >= self.min_changes.max(1)
    }

    /// Whether the latest `calm_checks` checks agree.
    pub fn is_calm(&self, recent_checks: u32) -> bool {
        steady_checks(recent_checks) >= self.calm_checks.clamp(1, FlappingPolicy::MAX_CHECKS)
    }
}

/// How many of the latest checks agree with the latest one.
pub(super) fn steady_checks(recent_checks: u32) -> u32 {
    let latest_holds = recent_checks & 1 == 1;
    let differs = if latest_holds { !recent_checks } else { recent_checks };
    differs.trailing_zeros()
}

impl AlertPolicy {
    /// The built-in policy for `kind` (the table in [`AlertPolicies::default`]).
    pub fn default_for(kind: IncidentKind) -> AlertPolicy {
        use IncidentKind as K;
        let flapping = Some(FlappingPolicy::DEFAULT);
        let at_once = |repeat_every, flapping| AlertPolicy {
            pending_for: Duration::ZERO,
            consecutive_failures: 1,
            repeat_every,
            flapping,
        };
        match kind {
            // Three failed checks spanning a minute: a deploy's or a restart's blip is not an
            // incident, a minute of failures is.
            K::Unhealthy | K::ProbeFailingWhileHealthy => AlertPolicy {
                pending_for: MINUTE,
                consecutive_failures: 3,
                repeat_every: 4 * HOUR,
                flapping,
            },
            // Events, and conditions that already carry their own time (the restart count over
            // a window, the deploy timeout): fire on the first check.
            K::RestartLoop
            | K::OomKilled
            | K::UnexpectedExit
            | K::DeployFailed
            | K::StuckDeploying => at_once(4 * HOUR, flapping),
            // A controller that stopped renewing its lease is seen once, by its successor:
            // told at once (and resolved by the successor's next pass).
            K::ControllerLeaseLost => at_once(HOUR, None),
            // A minute without an answer is an outage, not a blip.
            K::CoolifyUnreachable | K::PocketBaseUnreachable => AlertPolicy {
                pending_for: MINUTE,
                consecutive_failures: 1,
                repeat_every: HOUR,
                flapping,
            },
            // Reservations change on admission and delete only: no wait, but flapping around
            // the threshold is caught; one reminder a day.
            K::CapacityLow => at_once(DAY, flapping),
            // Judged against a daily period that already has its grace; checked rarely, so a
            // window of checks means weeks: no flapping detection.
            K::BackupMissing | K::BackupFailed | K::BackupEmpty | K::BackupShrunk => {
                at_once(DAY, None)
            }
            // The engine's orphan grace has passed already.
            K::OrphanService => at_once(DAY, None),
            // Only `repeat_every` applies to flapping incidents; the rest comes from the kind
            // that flaps.
            K::Flapping => at_once(4 * HOUR, None),
        }
    }
}

/// The policy of every kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertPolicies {
    policies: BTreeMap<IncidentKind, AlertPolicy>,
}

impl Default for AlertPolicies {
    /// | kind | pending | in a row | reminders | flapping |
    /// | --- | --- | --- | --- | --- |
    /// | unhealthy, probe failing while healthy | 60 s | 3 | 4 h | 4 in 20, calm after 10 |
    /// | restart loop, OOM kill, unexpected exit, deploy failed, stuck deploying | 0 s | 1 | 4 h | 4 in 20 |
    /// | controller lease lost | 0 s | 1 | 1 h | off |
    /// | Coolify or PocketBase unreachable | 60 s | 1 | 1 h | 4 in 20 |
    /// | capacity low | 0 s | 1 | 24 h | 4 in 20 |
    /// | backup missing, failed, empty, shrunk; orphan service | 0 s | 1 | 24 h | off |
    /// | flapping (its reminders) | | | 4 h | |
    fn default() -> AlertPolicies {
        AlertPolicies {
            policies: IncidentKind::ALL
                .into_iter()
                .map(|kind| (kind, AlertPolicy::default_for(kind)))
                .collect(),
        }
    }
}

impl AlertPolicies {
    /// The policy for `kind`.
    pub fn get(&self, kind: IncidentKind) -> AlertPolicy {
        self.policies.get(&kind).copied().unwrap_or_else(|| AlertPolicy::default_for(kind))
    }

    /// Overrides the policy for `kind` (an operator's `cfa.toml`). Refuses flapping settings
    /// the track cannot honour.
    pub fn set(&mut self, kind: IncidentKind, policy: AlertPolicy) -> Result<(), IncidentError> {
        if let Some(flapping) = policy.flapping {
            let max = FlappingPolicy::MAX_CHECKS;
            if flapping.window_checks > max {
                return Err(IncidentError::FlappingWindowTooLong {
                    kind,
                    window_checks: flapping.window_checks,
                    max,
                });
            }
            let most = flapping.window_checks.saturating_sub(1);
            if flapping.min_changes == 0 || flapping.min_changes > most {
                return Err(IncidentError::FlappingChangesOutOfRange {
                    kind,
                    min_changes: flapping.min_changes,
                    window_checks: flapping.window_checks,
                    most,
                });
            }
            if flapping.calm_checks == 0 || flapping.calm_checks > max {
                return Err(IncidentError::FlappingCalmOutOfRange {
                    kind,
                    calm_checks: flapping.calm_checks,
                    max,
                });
            }
        }
        self.policies.insert(kind, policy);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks written oldest first, `H` holds and `.` clear, as the bit set a track keeps.
    fn checks(pattern: &str) -> u32 {
        pattern.chars().fold(0, |bits, check| (bits << 1) | u32::from(check == 'H'))
    }

    #[test]
    fn changes_are_counted_within_the_window_only() {
        let flapping = FlappingPolicy::DEFAULT;
        assert_eq!(flapping.changes_in_window(checks("")), 0);
        // The first hold counts as a change: before it, the stream was clear.
        assert_eq!(flapping.changes_in_window(checks("H")), 1);
        assert_eq!(flapping.changes_in_window(checks("H.H.")), 4);
        assert!(flapping.is_flapping(checks("H.H.")));
        assert!(!flapping.is_flapping(checks("HHH...")));
        // Changes older than 20 checks are forgotten.
        let old_flaps_then_steady = format!("H.H.H.H.H.{}", "H".repeat(19));
        assert_eq!(flapping.changes_in_window(checks(&old_flaps_then_steady)), 1);
        assert_eq!(flapping.changes_in_window(u32::MAX), 0);
    }

    #[test]
    fn calm_means_the_latest_checks_agree() {
        let flapping = FlappingPolicy::DEFAULT;
        assert!(!flapping.is_calm(checks(&format!("H.H.H{}", ".".repeat(9)))));
        assert!(flapping.is_calm(checks(&format!("H.H.H{}", ".".repeat(10)))));
        assert!(!flapping.is_calm(checks(&format!("H.H.{}", "H".repeat(9)))));
        assert!(flapping.is_calm(checks(&format!("H.H.{}", "H".repeat(10)))));
        assert_eq!(steady_checks(u32::MAX), 32);
        assert_eq!(steady_checks(0), 32);
    }

    #[test]
    fn overrides_are_checked_and_kept_per_kind() {
        let mut policies = AlertPolicies::default();
        assert_eq!(policies.get(IncidentKind::OomKilled).pending_for, Duration::ZERO);
        assert_eq!(policies.get(IncidentKind::Unhealthy).consecutive_failures, 3);
        let quick = AlertPolicy {
            pending_for: Duration::from_secs(10),
            ..policies.get(IncidentKind::Unhealthy)
        };
        policies.set(IncidentKind::Unhealthy, quick).unwrap();
        assert_eq!(policies.get(IncidentKind::Unhealthy), quick);
        assert_eq!(
            policies.get(IncidentKind::ProbeFailingWhileHealthy).pending_for,
            Duration::from_secs(60)
        );
        let too_long = FlappingPolicy { window_checks: 40, ..FlappingPolicy::DEFAULT };
        let error = policies
            .set(IncidentKind::Unhealthy, AlertPolicy { flapping: Some(too_long), ..quick })
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "flapping detection for unhealthy looks at 40 checks, more than the 32 kept"
        );
        let unreachable = FlappingPolicy { min_changes: 20, ..FlappingPolicy::DEFAULT };
        assert!(
            policies
                .set(IncidentKind::Unhealthy, AlertPolicy { flapping: Some(unreachable), ..quick })
                .is_err()
        );
        assert_eq!(
            policies.get(IncidentKind::Unhealthy),
            quick,
            "a refused override changes nothing"
        );
    }
}

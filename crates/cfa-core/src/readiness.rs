//! Readiness after a start or a restart, judged across Coolify's status lag.
//!
//! Coolify's API does not say what its containers do now. `POST /services/{uuid}/start` only
//! queues `StartService`; while that job's activity is queued or running the service reads
//! `starting:unhealthy` (`Service::isStarting`), and otherwise the aggregate of the
//! per-container statuses Coolify stored at its last status run (`GetContainersStatus`, once a
//! minute). So after a start the status reads `exited`, then `starting:unhealthy`, then the
//! stale stored `exited` again for up to a minute, then `running:*`. A restart (`RestartService`)
//! reads the old `running:healthy` until its job runs, which first stores `exited`
//! (`StopService`) and then queues the start. Three rules follow:
//!
//! - `exited` fails a start only once Coolify has had a status run after its start activity
//!   ended (`status_lag` after the activity was last seen). Before that it cannot know better.
//!   A start whose activity was never seen is not failed by `exited` at all (its job may still
//!   wait in Coolify's queue): the deploy timeout ends it.
//! - A stack with a URL is ready when our probe answers: the probe sees the new containers
//!   at once, the status a minute later. Without a URL only Coolify's `running:healthy` can say
//!   so, and it is bounded by Coolify's status interval.
//! - After a restart nothing counts until the old containers are provably gone: Coolify has
//!   shown a state that only the restart job produces (`exited` or `starting`), or has had two
//!   status runs since the restart was queued (a quick restart can slip between two looks).
//!   Until then the old container still answers the probe and the old status says healthy.
//!
//! [`ReadinessWatch`] keeps what was seen between polls; it has no clock: the caller passes the
//! time since it queued the start.

use std::time::Duration;

use crate::health::{CoolifyHealth, CoolifyState, CoolifyStatus, ProbeOutcome};

/// What the engine queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartKind {
    /// `start` of a service whose containers were not running (new, or stopped): any running
    /// container or answering URL is the new one.
    Start,
    /// `restart` of running containers: the old ones keep answering until the job runs.
    Restart,
}

/// The conclusion of one look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// The new containers run and serve.
    Ready { reason: String },
    /// Not yet; look again (the caller's deadline ends the wait).
    Waiting { reason: String },
    /// Coolify has had time to know, and the containers are not running.
    Failed { reason: String },
}

impl Readiness {
    /// The reason, whatever the outcome.
    pub fn reason(&self) -> &str {
        match self {
            Readiness::Ready { reason }
            | Readiness::Waiting { reason }
            | Readiness::Failed { reason } => reason,
        }
    }
}

/// Follows one start or restart from the moment it was queued.
#[derive(Debug, Clone)]
pub struct ReadinessWatch {
    kind: StartKind,
    status_lag: Duration,
    /// For a restart: Coolify showed `exited` or `starting` since it was queued.
    old_containers_gone: bool,
    /// Time since queueing at which Coolify last showed its start activity (`starting:*`).
    activity_last_seen: Option<Duration>,
}

impl ReadinessWatch {
    /// `status_lag`: the longest Coolify may take to store fresh container statuses after its
    /// start activity ends (its status interval, 60 s by default, plus the poll interval).
    pub fn new(kind: StartKind, status_lag: Duration) -> ReadinessWatch {
        ReadinessWatch { kind, status_lag, old_containers_gone: false, activity_last_seen: None }
    }

    /// Judges one reading: Coolify's status and our probe, `since_queued` after the start or
    /// restart was queued. Readings must come in time order.
    pub fn judge(
        &mut self,
        coolify_status: &str,
        probe: &ProbeOutcome,
        since_queued: Duration,
    ) -> Readiness {
        let status = CoolifyStatus::parse(coolify_status);
        let shown = coolify_status.trim();
        if matches!(status.state, CoolifyState::Starting | CoolifyState::Created) {
            self.activity_last_seen = Some(since_queued);
        }
        if matches!(
            status.state,
            CoolifyState::Exited
                | CoolifyState::Dead
                | CoolifyState::Removing
                | CoolifyState::Starting
                | CoolifyState::Created
        ) {
            self.old_containers_gone = true;
        }
        // A quick restart can slip between two looks: its `starting` lasts as long as
        // `docker compose up -d` (under a second), and a status run that read the containers
        // before the stop can store them healthy again right after it. The restart job runs on
        // Coolify's high queue within seconds, so once Coolify has had two status runs since it
        // was queued, its status is taken as the new containers'.
        if self.kind == StartKind::Restart
            && !self.old_containers_gone
            && since_queued >= self.status_lag * 2
        {
            self.old_containers_gone = true;
        }
        if self.kind == StartKind::Restart && !self.old_containers_gone {
            return Readiness::Waiting {
                reason: format!(
                    "coolify reports {shown}: the restart has not run yet (the old containers \
                     still run)"
                ),
            };
        }
        match probe {
            ProbeOutcome::Passed { status_code } => {
                return match (status.state, status.health) {
                    (CoolifyState::Running, CoolifyHealth::Unhealthy)
                    | (CoolifyState::Degraded | CoolifyState::Restarting, _) => {
                        Readiness::Waiting {
                            reason: format!(
                                "the URL answers {status_code} but coolify reports {shown}: a \
                                 container fails its healthcheck or restarts"
                            ),
                        }
                    }
                    _ => Readiness::Ready {
                        reason: format!(
                            "the URL answers {status_code} (coolify reports {shown}, which lags)"
                        ),
                    },
                };
            }
            ProbeOutcome::Failed { .. } | ProbeOutcome::NotApplicable => {}
        }
        let url_fails = match probe {
            ProbeOutcome::Failed { reason } => Some(reason.as_str()),
            _ => None,
        };
        match (status.state, status.health) {
            (CoolifyState::Running, CoolifyHealth::Healthy) if url_fails.is_none() => {
                Readiness::Ready { reason: format!("coolify reports {shown} (no URL to probe)") }
            }
            (CoolifyState::Exited | CoolifyState::Dead | CoolifyState::Removing, _) => {
                self.judge_down(shown, since_queued)
            }
            (CoolifyState::Starting | CoolifyState::Created, _) => Readiness::Waiting {
                reason: format!("coolify reports {shown}: its start job is queued or running"),
            },
            _ => Readiness::Waiting {
                reason: match url_fails {
                    Some(reason) => {
                        format!("coolify reports {shown} but the URL does not answer: {reason}")
                    }
                    None => format!("coolify reports {shown}"),
                },
            },
        }
    }

    /// `exited` after a start: a failure only once Coolify has provably looked again.
    fn judge_down(&self, shown: &str, since_queued: Duration) -> Readiness {
        let Some(activity_seen) = self.activity_last_seen else {
            return Readiness::Waiting {
                reason: format!(
                    "coolify reports {shown}: its start job has not been seen running yet (it \
                     may wait in Coolify's queue)"
                ),
            };
        };
        let since_activity = since_queued.saturating_sub(activity_seen);
        if since_activity >= self.status_lag {
            Readiness::Failed {
                reason: format!(
                    "coolify reports {shown} {}s after its start job ended: no container is \
                     running",
                    since_activity.as_secs()
                ),
            }
        } else {
            Readiness::Waiting {
                reason: format!(
                    "coolify reports {shown}: its status runs lag (next look within {}s)",
                    self.status_lag.saturating_sub(since_activity).as_secs()
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: Duration = Duration::from_secs(65);

    fn seconds(value: u64) -> Duration {
        Duration::from_secs(value)
    }

    fn passed() -> ProbeOutcome {
        ProbeOutcome::Passed { status_code: 200 }
    }

    fn refused() -> ProbeOutcome {
        ProbeOutcome::Failed { reason: "connection refused".to_owned() }
    }

    fn kind_of(readiness: &Readiness) -> &'static str {
        match readiness {
            Readiness::Ready { .. } => "ready",
            Readiness::Waiting { .. } => "waiting",
            Readiness::Failed { .. } => "failed",
        }
    }

    /// Feeds `(seconds since queued, status, probe)` readings; returns each verdict.
    fn walk(kind: StartKind, readings: &[(u64, &str, ProbeOutcome)]) -> Vec<&'static str> {
        let mut watch = ReadinessWatch::new(kind, LAG);
        readings
            .iter()
            .map(|(at, status, probe)| kind_of(&watch.judge(status, probe, seconds(*at))))
            .collect()
    }

    #[test]
    fn a_start_is_not_failed_by_the_stale_exited_that_follows_its_job() {
        // Coolify's order after a start of a new service: exited, starting:unhealthy while the
        // job runs, the stored exited until the next status run, then running.
        let none = || ProbeOutcome::NotApplicable;
        let verdicts = walk(
            StartKind::Start,
            &[
                (0, "exited", none()),
                (5, "starting:unhealthy", none()),
                (10, "exited", none()),
                (60, "exited", none()),
                (70, "running:healthy", none()),
            ],
        );
        assert_eq!(verdicts, ["waiting", "waiting", "waiting", "waiting", "ready"]);
    }

    #[test]
    fn exited_fails_a_start_once_coolify_has_looked_after_the_job() {
        let none = || ProbeOutcome::NotApplicable;
        let verdicts = walk(
            StartKind::Start,
            &[(5, "starting:unhealthy", none()), (30, "exited", none()), (71, "exited", none())],
        );
        assert_eq!(verdicts, ["waiting", "waiting", "failed"]);
    }

    #[test]
    fn exited_never_fails_a_start_whose_job_was_not_seen() {
        // The job may wait in Coolify's queue; the caller's deadline ends this wait.
        let verdicts =
            walk(StartKind::Start, &[(0, "exited", refused()), (600, "exited", refused())]);
        assert_eq!(verdicts, ["waiting", "waiting"]);
    }

    #[test]
    fn a_url_that_answers_makes_a_start_ready_whatever_the_lagging_status_says() {
        for status in ["exited", "starting:unhealthy", "running:healthy", "running:unknown"] {
            let verdicts = walk(StartKind::Start, &[(1, status, passed())]);
            assert_eq!(verdicts, ["ready"], "{status}");
        }
        // A container that fails its healthcheck holds readiness even when the URL answers.
        for status in ["running:unhealthy", "degraded:unhealthy", "restarting:unknown"] {
            let verdicts = walk(StartKind::Start, &[(1, status, passed())]);
            assert_eq!(verdicts, ["waiting"], "{status}");
        }
    }

    #[test]
    fn running_healthy_with_a_url_that_does_not_answer_is_not_ready() {
        // `running:starting` aggregates to running:healthy at Coolify (coollabsio/coolify#9411).
        let verdicts = walk(StartKind::Start, &[(70, "running:healthy", refused())]);
        assert_eq!(verdicts, ["waiting"]);
    }

    #[test]
    fn a_restart_counts_only_after_the_old_containers_are_gone() {
        // Until the restart job runs, the old container answers and the old status is healthy.
        let verdicts = walk(
            StartKind::Restart,
            &[
                (0, "running:healthy", passed()),
                (3, "running:healthy", passed()),
                (5, "starting:unhealthy", refused()),
                (8, "exited", passed()),
            ],
        );
        assert_eq!(verdicts, ["waiting", "waiting", "waiting", "ready"]);
        // Without a URL: the stale exited after the job, then Coolify's next status run.
        let none = || ProbeOutcome::NotApplicable;
        let verdicts = walk(
            StartKind::Restart,
            &[
                (2, "running:healthy", none()),
                (4, "exited", none()),
                (6, "starting:unhealthy", none()),
                (40, "exited", none()),
                (66, "running:healthy", none()),
            ],
        );
        assert_eq!(verdicts, ["waiting", "waiting", "waiting", "waiting", "ready"]);
    }

    #[test]
    fn a_restart_never_seen_counts_only_after_two_status_runs() {
        let none = || ProbeOutcome::NotApplicable;
        let verdicts = walk(
            StartKind::Restart,
            &[
                (1, "running:healthy", none()),
                (100, "running:healthy", none()),
                (140, "running:healthy", none()),
            ],
        );
        assert_eq!(verdicts, ["waiting", "waiting", "ready"]);
    }

    #[test]
    fn reasons_name_what_coolify_said() {
        let mut watch = ReadinessWatch::new(StartKind::Start, LAG);
        let readiness = watch.judge("exited", &ProbeOutcome::NotApplicable, seconds(1));
        assert!(readiness.reason().contains("exited"), "{}", readiness.reason());
        assert!(readiness.reason().contains("queue"), "{}", readiness.reason());
    }
}

//! What one monitor check of one stack observes, and what its record should say afterwards.
//!
//! The monitor (in the engine) reads Coolify's status of every service from one list call and
//! probes every routed stack; this module turns one stack's record, Coolify's status and the
//! probe into an observation per incident kind ([`crate::incidents`] decides when they fire),
//! and decides the record's health fields: a `running` stack whose `unhealthy` or `restart
//! loop` incident fires becomes `error` with the reason, and becomes `running` again once it
//! is seen healthy. Only the monitor's own `error` is undone this way (its message starts with
//! [`MONITOR_PREFIX`]): a failed deploy stays `error` until it is retried.

use std::time::Duration;

use crate::health::{CoolifyHealth, CoolifyState, CoolifyStatus};
use crate::incidents::{IncidentKind, Observation};
use crate::{HealthJudgement, HealthVerdict, ProbeOutcome, StackStatus, judge_health};

/// How the monitor's own `error_message` begins.
pub const MONITOR_PREFIX: &str = "health: ";

/// The incident kinds the monitor judges for every stack, in the order it reports them.
pub const STACK_KINDS: [IncidentKind; 5] = [
    IncidentKind::Unhealthy,
    IncidentKind::RestartLoop,
    IncidentKind::ProbeFailingWhileHealthy,
    IncidentKind::DeployFailed,
    IncidentKind::StuckDeploying,
];

/// One stack as the monitor sees it.
#[derive(Debug, Clone, Copy)]
pub struct StackSighting<'a> {
    pub record_status: StackStatus,
    pub error_message: Option<&'a str>,
    /// Coolify's status of the recorded service; `None` when Coolify has no such service.
    pub coolify_status: Option<&'a str>,
    pub probe: &'a ProbeOutcome,
    /// How long the record has been `deploying` (since its last update).
    pub deploying_for: Duration,
    /// How long a deploy may take before it counts as stuck.
    pub stuck_after: Duration,
    /// How often the host agent saw the stack's containers crash (exit code other than 0 and
    /// 143) within the last [`RESTART_LOOP_WINDOW`].
    pub recent_crashes: u64,
}

/// Crashes within [`RESTART_LOOP_WINDOW`] that make a restart loop, whatever Coolify's status
/// says at the moment of the check: a container that crashes and comes back between Coolify's
/// status runs looks `running` to it every time. Three in ten minutes is a program that does
/// not stay up (Docker's own restart backoff doubles from 100 ms, so a loop crashes far more
/// often; one or two are `unexpected_exit`).
pub const RESTART_LOOP_CRASHES: u64 = 3;
/// The window crashes are counted in.
pub const RESTART_LOOP_WINDOW: Duration = Duration::from_secs(10 * 60);

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackCheck {
    /// The health verdict, where the stack should be running.
    pub judgement: Option<HealthJudgement>,
    /// One observation per kind of [`STACK_KINDS`].
    pub observations: Vec<(IncidentKind, Observation)>,
}

/// Observes one stack: Coolify's status and our probe, and the host agent's count of crashes
/// for the restart loop.
pub fn check_stack(sighting: &StackSighting<'_>) -> StackCheck {
    let mut check = check_coolify_and_probe(sighting);
    let should_run = matches!(sighting.record_status, StackStatus::Running | StackStatus::Error);
    if should_run && sighting.recent_crashes >= RESTART_LOOP_CRASHES {
        let detail = format!(
            "its containers crashed {} times in the last {} min (host agent)",
            sighting.recent_crashes,
            RESTART_LOOP_WINDOW.as_secs() / 60
        );
        for (kind, observation) in &mut check.observations {
            if *kind == IncidentKind::RestartLoop {
                *observation = Observation::holds(detail.clone());
            }
        }
    }
    check
}

fn check_coolify_and_probe(sighting: &StackSighting<'_>) -> StackCheck {
    use IncidentKind as K;
    let mut observed: Vec<(IncidentKind, Observation)> =
        STACK_KINDS.iter().map(|kind| (*kind, Observation::no_data())).collect();
    let mut set = |kind: IncidentKind, observation: Observation| {
        if let Some(entry) = observed.iter_mut().find(|(known, _)| *known == kind) {
            entry.1 = observation;
        }
    };
    let monitored_error = sighting.record_status == StackStatus::Error
        && sighting.error_message.is_some_and(|message| message.starts_with(MONITOR_PREFIX));
    let mut judgement = None;
    match sighting.record_status {
        StackStatus::Running => {}
        StackStatus::Error if monitored_error => {}
        StackStatus::Error => {
            // A deploy failed and nobody retried yet: that is the incident; its health is not
            // expected, so nothing else is judged.
            let detail = sighting
                .error_message
                .and_then(|message| message.lines().next())
                .unwrap_or("the last deploy failed");
            set(K::DeployFailed, Observation::holds(detail));
            return StackCheck { judgement, observations: observed };
        }
        StackStatus::Deploying => {
            let stuck = sighting.deploying_for > sighting.stuck_after;
            set(
                K::StuckDeploying,
                if stuck {
                    Observation::holds(format!(
                        "deploying for {} min (deploys time out after {} min)",
                        sighting.deploying_for.as_secs() / 60,
                        sighting.stuck_after.as_secs().div_ceil(60)
                    ))
                } else {
                    Observation::clear()
                },
            );
            return StackCheck { judgement, observations: observed };
        }
        // Suspended on purpose: whatever was wrong is over.
        StackStatus::Stopped => {
            for kind in STACK_KINDS {
                set(kind, Observation::clear());
            }
            return StackCheck { judgement, observations: observed };
        }
        // Not deployed yet (or waiting for its secrets): nothing to judge.
        StackStatus::Pending => return StackCheck { judgement, observations: observed },
    }
    set(K::StuckDeploying, Observation::clear());
    set(K::DeployFailed, Observation::clear());
    let Some(coolify_status) = sighting.coolify_status else {
        let detail = "Coolify has no service for it (deleted outside the platform?)";
        set(K::Unhealthy, Observation::holds(detail));
        set(K::RestartLoop, Observation::clear());
        set(K::ProbeFailingWhileHealthy, Observation::clear());
        return StackCheck {
            judgement: Some(HealthJudgement {
                verdict: HealthVerdict::Down,
                reason: detail.to_owned(),
            }),
            observations: observed,
        };
    };
    let health = judge_health(coolify_status, sighting.probe);
    let parsed = CoolifyStatus::parse(coolify_status);
    match health.verdict {
        HealthVerdict::Healthy => {
            for kind in [K::Unhealthy, K::RestartLoop, K::ProbeFailingWhileHealthy] {
                set(kind, Observation::clear());
            }
        }
        HealthVerdict::Starting
            if parsed.state == CoolifyState::Running
                && matches!(parsed.health, CoolifyHealth::Healthy | CoolifyHealth::Unknown)
                && matches!(sighting.probe, ProbeOutcome::Failed { .. }) =>
        {
            set(K::ProbeFailingWhileHealthy, Observation::holds(health.reason.clone()));
            set(K::Unhealthy, Observation::clear());
            set(K::RestartLoop, Observation::clear());
        }
        HealthVerdict::Unhealthy if parsed.state == CoolifyState::Restarting => {
            set(K::RestartLoop, Observation::holds(health.reason.clone()));
        }
        HealthVerdict::Unhealthy | HealthVerdict::Down => {
            set(K::Unhealthy, Observation::holds(health.reason.clone()));
            set(K::RestartLoop, Observation::clear());
        }
        // A restart or deploy under way, paused by hand, or nothing to go on: no data.
        HealthVerdict::Starting | HealthVerdict::Paused | HealthVerdict::Unknown => {}
    }
    judgement = Some(health);
    StackCheck { judgement, observations: observed }
}

/// What the record should say after a check, when that differs from what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHealth {
    pub status: StackStatus,
    pub error_message: String,
}

/// The record's health fields after a check: `error` with the reason once an `unhealthy` or
/// `restart loop` incident fires on a `running` stack (`firing`: that incident's detail), and
/// `running` again once a stack in the monitor's own `error` is seen healthy. `None`: leave
/// the record as it is.
pub fn record_health(
    record_status: StackStatus,
    error_message: Option<&str>,
    verdict: Option<HealthVerdict>,
    firing: Option<&str>,
) -> Option<RecordHealth> {
    let monitored_error = record_status == StackStatus::Error
        && error_message.is_some_and(|message| message.starts_with(MONITOR_PREFIX));
    match (record_status, firing) {
        (StackStatus::Running, Some(detail)) => Some(RecordHealth {
            status: StackStatus::Error,
            error_message: format!("{MONITOR_PREFIX}{detail}"),
        }),
        (StackStatus::Error, Some(detail)) if monitored_error => {
            let message = format!("{MONITOR_PREFIX}{detail}");
            (error_message != Some(message.as_str()))
                .then_some(RecordHealth { status: StackStatus::Error, error_message: message })
        }
        (StackStatus::Error, None)
            if monitored_error && verdict == Some(HealthVerdict::Healthy) =>
        {
            Some(RecordHealth { status: StackStatus::Running, error_message: String::new() })
        }
        _ => None,
    }
}

/// What a host agent reported about one of the stack's containers since the last check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSighting {
    /// The kernel's OOM killer killed a process of the container.
    OomKilled { container: String },
    /// The container's main process ended with this code; `after_oom`: the OOM killer hit the
    /// same container just before (in this check or an earlier one: Docker's `die` can come
    /// seconds after its `oom`).
    Died { container: String, exit_code: i64, after_oom: bool },
}

/// OOM kills and unexpected exits from the host agents' events since the last check: an OOM
/// kill is one whatever the record says; an exit is unexpected only on a stack that should run
/// (a stop or a restart's exit while `deploying` or `stopped` is asked for), and not when an
/// OOM kill explains it (exit 137 after `oom`), nor a clean stop (0, or 143 for SIGTERM).
///
/// An unexpected exit clears once the stack is seen `healthy` with no new event. An OOM kill
/// clears only once `recovered_from_oom`: healthy and restarted after its last kill (Coolify's
/// stored status still shows the container that was killed until its next status run, and one
/// kill can raise several `oom` events over seconds). Otherwise there is no data.
pub fn event_observations(
    sightings: &[HostSighting],
    record_status: StackStatus,
    healthy: bool,
    recovered_from_oom: bool,
) -> [(IncidentKind, Observation); 2] {
    let killed: Vec<&str> = sightings
        .iter()
        .filter_map(|sighting| match sighting {
            HostSighting::OomKilled { container } => Some(container.as_str()),
            HostSighting::Died { .. } => None,
        })
        .collect();
    let should_run = matches!(record_status, StackStatus::Running | StackStatus::Error);
    let exits: Vec<String> = sightings
        .iter()
        .filter_map(|sighting| match sighting {
            HostSighting::Died { container, exit_code, after_oom }
                if should_run
                    && !matches!(exit_code, 0 | 143)
                    && !(*exit_code == 137
                        && (*after_oom || killed.contains(&container.as_str()))) =>
            {
                Some(format!("container {container} exited with code {exit_code}"))
            }
            _ => None,
        })
        .collect();
    let otherwise = |clear: bool| if clear { Observation::clear() } else { Observation::no_data() };
    let oom = match killed.as_slice() {
        [] => otherwise(healthy && recovered_from_oom),
        containers => Observation::holds(format!(
            "the kernel killed {} at its memory limit (OOM)",
            containers
                .iter()
                .map(|name| format!("container {name}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    };
    let exit = match exits.as_slice() {
        [] => otherwise(healthy),
        exits => Observation::holds(exits.join("; ")),
    };
    [(IncidentKind::OomKilled, oom), (IncidentKind::UnexpectedExit, exit)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::Condition;

    fn sighting<'a>(
        record_status: StackStatus,
        coolify_status: Option<&'a str>,
        probe: &'a ProbeOutcome,
    ) -> StackSighting<'a> {
        StackSighting {
            record_status,
            error_message: None,
            coolify_status,
            probe,
            deploying_for: Duration::ZERO,
            stuck_after: Duration::from_secs(1200),
            recent_crashes: 0,
        }
    }

    fn condition(check: &StackCheck, kind: IncidentKind) -> Condition {
        check.observations.iter().find(|(known, _)| *known == kind).unwrap().1.condition
    }

    #[test]
    fn a_running_stacks_status_and_probe_become_one_observation_per_kind() {
        use Condition::{Clear, Holds, NoData};
        use IncidentKind as K;
        let passed = ProbeOutcome::Passed { status_code: 200 };
        let failed = ProbeOutcome::Failed { reason: "connection refused".into() };
        let none = ProbeOutcome::NotApplicable;
        let cases: [(&str, &ProbeOutcome, [Condition; 3]); 7] = [
            ("running:healthy", &passed, [Clear, Clear, Clear]),
            ("running:healthy", &failed, [Clear, Clear, Holds]),
            ("running:unhealthy", &passed, [Holds, Clear, NoData]),
            ("restarting:unknown", &none, [NoData, Holds, NoData]),
            ("exited", &none, [Holds, Clear, NoData]),
            ("starting:unhealthy", &failed, [NoData, NoData, NoData]),
            ("paused:unknown", &none, [NoData, NoData, NoData]),
        ];
        for (status, probe, expected) in cases {
            let check = check_stack(&sighting(StackStatus::Running, Some(status), probe));
            let seen = [K::Unhealthy, K::RestartLoop, K::ProbeFailingWhileHealthy]
                .map(|kind| condition(&check, kind));
            assert_eq!(seen, expected, "{status} with {probe:?}");
            assert_eq!(condition(&check, K::DeployFailed), Clear);
        }
        let gone = check_stack(&sighting(StackStatus::Running, None, &none));
        assert_eq!(condition(&gone, K::Unhealthy), Holds);
    }

    #[test]
    fn other_statuses_observe_only_what_they_can() {
        use IncidentKind as K;
        let probe = ProbeOutcome::NotApplicable;
        let mut failed = sighting(StackStatus::Error, Some("exited"), &probe);
        failed.error_message = Some("stack `a/b` failed to start: no container\nhint: ...");
        let check = check_stack(&failed);
        assert_eq!(condition(&check, K::DeployFailed), Condition::Holds);
        assert_eq!(condition(&check, K::Unhealthy), Condition::NoData);

        let mut deploying = sighting(StackStatus::Deploying, Some("starting"), &probe);
        deploying.deploying_for = Duration::from_secs(600);
        assert_eq!(condition(&check_stack(&deploying), K::StuckDeploying), Condition::Clear);
        deploying.deploying_for = Duration::from_secs(1800);
        assert_eq!(condition(&check_stack(&deploying), K::StuckDeploying), Condition::Holds);

        let stopped = check_stack(&sighting(StackStatus::Stopped, Some("exited"), &probe));
        assert!(stopped.observations.iter().all(|(_, seen)| seen.condition == Condition::Clear));
        let pending = check_stack(&sighting(StackStatus::Pending, None, &probe));
        assert!(pending.observations.iter().all(|(_, seen)| seen.condition == Condition::NoData));
    }

    #[test]
    fn an_oom_kill_is_one_incident_and_its_exit_137_is_not_a_second() {
        use Condition::{Clear, Holds, NoData};
        let oom = HostSighting::OomKilled { container: "app".into() };
        let died = |container: &str, exit_code, after_oom| HostSighting::Died {
            container: container.into(),
            exit_code,
            after_oom,
        };
        let killed = died("app", 137, false);
        let crashed = died("worker", 1, false);
        let stopped = died("app", 143, false);
        let conditions = |sightings: &[HostSighting], status, healthy| {
            event_observations(sightings, status, healthy, true).map(|(_, seen)| seen.condition)
        };
        let running = StackStatus::Running;
        assert_eq!(conditions(&[oom.clone(), killed.clone()], running, false), [Holds, NoData]);
        // Docker's `die` after the `oom`, folded in the next check: still the same kill.
        assert_eq!(conditions(&[died("app", 137, true)], running, false), [NoData, NoData]);
        assert_eq!(
            conditions(std::slice::from_ref(&killed), running, false),
            [NoData, Holds],
            "137 alone"
        );
        assert_eq!(conditions(&[crashed.clone(), stopped.clone()], running, true), [Clear, Holds]);
        assert_eq!(conditions(&[stopped], running, true), [Clear, Clear]);
        // A restart's exit while deploying is asked for; an OOM kill never is.
        let deploying = StackStatus::Deploying;
        assert_eq!(conditions(&[crashed, oom.clone()], deploying, false), [Holds, NoData]);
        assert_eq!(conditions(&[], running, false), [NoData, NoData]);
        // Healthy by Coolify's word, but not restarted since the kill: not over yet.
        let waiting = event_observations(&[], running, true, false).map(|(_, seen)| seen.condition);
        assert_eq!(waiting, [NoData, Clear]);
        let detail = event_observations(&[oom], running, false, true)[0].1.detail.clone().unwrap();
        assert!(detail.contains("container app") && detail.contains("OOM"), "{detail}");
    }

    #[test]
    fn the_record_turns_error_when_the_incident_fires_and_back_when_healthy_again() {
        let firing = Some("coolify reports running:unhealthy");
        let error = record_health(StackStatus::Running, None, None, firing).unwrap();
        assert_eq!(error.status, StackStatus::Error);
        assert_eq!(error.error_message, "health: coolify reports running:unhealthy");
        // Still firing with the same detail: no write.
        let same = Some(error.error_message.as_str());
        assert_eq!(record_health(StackStatus::Error, same, None, firing), None);
        // Healthy again: running, message cleared.
        let healthy = Some(HealthVerdict::Healthy);
        let back = record_health(StackStatus::Error, same, healthy, None).unwrap();
        assert_eq!(back.status, StackStatus::Running);
        assert!(back.error_message.is_empty());
        // A failed deploy is not the monitor's to undo, and a running healthy stack is left.
        let deploy = Some("stack `a/b` failed to start");
        assert_eq!(record_health(StackStatus::Error, deploy, healthy, None), None);
        assert_eq!(record_health(StackStatus::Running, None, healthy, None), None);
    }

    #[test]
    fn three_crashes_in_ten_minutes_are_a_restart_loop_whatever_coolify_says() {
        let probe = ProbeOutcome::Passed { status_code: 200 };
        let restart_loop = |status: StackStatus, crashes: u64| {
            let mut seen = sighting(status, Some("running:healthy"), &probe);
            seen.recent_crashes = crashes;
            check_stack(&seen)
                .observations
                .into_iter()
                .find(|(kind, _)| *kind == IncidentKind::RestartLoop)
                .map(|(_, observation)| observation)
                .unwrap()
        };
        assert_eq!(restart_loop(StackStatus::Running, 2).condition, Condition::Clear);
        let looping = restart_loop(StackStatus::Running, 3);
        assert_eq!(looping.condition, Condition::Holds);
        assert_eq!(
            looping.detail.as_deref(),
            Some("its containers crashed 3 times in the last 10 min (host agent)")
        );
        assert_eq!(restart_loop(StackStatus::Error, 5).condition, Condition::Holds);
        // Suspended: the crashes were the stop's; whatever was wrong is over.
        assert_eq!(restart_loop(StackStatus::Stopped, 5).condition, Condition::Clear);
    }
}

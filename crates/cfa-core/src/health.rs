//! Health judgement: Coolify's status string plus our own HTTP probe, turned into a verdict
//! and a reason a person can act on.
//!
//! Coolify's strings (notes/coolify.md §7) are `<state>:<health>`, `<state>:<health>:excluded`
//! or plain `exited`. Two traps shape the rules: a container whose healthcheck is still in
//! Docker's `starting` phase aggregates to `running:healthy`, and a container without a
//! healthcheck keeps the stack at `running:unknown` forever. So `running:healthy` only counts
//! when our probe answers too (where the stack has a URL), and `running:unknown` counts when
//! the probe answers.

use std::fmt;

/// The container state part of Coolify's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoolifyState {
    Running,
    Starting,
    Degraded,
    Restarting,
    Exited,
    Paused,
    Created,
    Dead,
    Removing,
    Unknown,
}

/// The health part of Coolify's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoolifyHealth {
    Healthy,
    Unhealthy,
    Starting,
    Unknown,
}

/// Coolify's status string, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoolifyStatus {
    pub state: CoolifyState,
    pub health: CoolifyHealth,
    /// Only excluded containers remained (`...:excluded`).
    pub excluded: bool,
}

impl CoolifyStatus {
    /// Parses any status Coolify 4.3 produces; anything else is `unknown:unknown`, never an error,
    /// because a newer Coolify may add states and the monitor must keep going.
    pub fn parse(input: &str) -> CoolifyStatus {
        let mut parts = input.trim().split(':');
        let state = match parts.next().unwrap_or("") {
            "running" => CoolifyState::Running,
            "starting" => CoolifyState::Starting,
            "degraded" => CoolifyState::Degraded,
            "restarting" => CoolifyState::Restarting,
            "exited" => CoolifyState::Exited,
            "paused" => CoolifyState::Paused,
            "created" => CoolifyState::Created,
            "dead" => CoolifyState::Dead,
            "removing" => CoolifyState::Removing,
            _ => CoolifyState::Unknown,
        };
        let health = match parts.next().unwrap_or("") {
            "healthy" => CoolifyHealth::Healthy,
            "unhealthy" => CoolifyHealth::Unhealthy,
            "starting" => CoolifyHealth::Starting,
            _ => CoolifyHealth::Unknown,
        };
        let excluded = parts.next() == Some("excluded");
        CoolifyStatus { state, health, excluded }
    }
}

/// Our own HTTP probe of the stack's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The stack has no URL (e.g. the long-polling Telegram bot).
    NotApplicable,
    /// The URL answered with a non-error status.
    Passed { status_code: u16 },
    /// It did not answer, or answered 5xx (or 404 from the proxy: no route yet).
    Failed { reason: String },
}

/// What we conclude.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HealthVerdict {
    /// Serving: Coolify healthy (or without healthcheck) and the probe answers.
    Healthy,
    /// Not ready yet; keep waiting within the deploy timeout.
    Starting,
    /// Running but failing: unhealthy containers, a restart loop, a degraded stack.
    Unhealthy,
    /// Not running at all: exited or dead.
    Down,
    /// Paused by hand on the host.
    Paused,
    /// Nothing to go on: no healthcheck and no URL, or a status we do not know.
    Unknown,
}

impl fmt::Display for HealthVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HealthVerdict::Healthy => "healthy",
            HealthVerdict::Starting => "starting",
            HealthVerdict::Unhealthy => "unhealthy",
            HealthVerdict::Down => "down",
            HealthVerdict::Paused => "paused",
            HealthVerdict::Unknown => "unknown",
        })
    }
}

/// A verdict with the reason behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthJudgement {
    pub verdict: HealthVerdict,
    pub reason: String,
}

/// Judges one stack from Coolify's status string and our probe.
pub fn judge_health(coolify_status: &str, probe: &ProbeOutcome) -> HealthJudgement {
    use CoolifyHealth as H;
    use CoolifyState as S;
    use HealthVerdict as V;
    let status = CoolifyStatus::parse(coolify_status);
    let shown = coolify_status.trim();
    let judgement = |verdict, reason: String| HealthJudgement { verdict, reason };
    match (status.state, status.health, probe) {
        (S::Running, H::Healthy | H::Starting, ProbeOutcome::Passed { status_code }) => judgement(
            V::Healthy,
            format!("coolify reports {shown} and the URL answers {status_code}"),
        ),
        (S::Running, H::Healthy, ProbeOutcome::NotApplicable) => {
            judgement(V::Healthy, format!("coolify reports {shown} (no URL to probe)"))
        }
        (S::Running, H::Healthy | H::Starting | H::Unknown, ProbeOutcome::Failed { reason }) => {
            judgement(
                V::Starting,
                format!("coolify reports {shown} but the URL does not answer yet: {reason}"),
            )
        }
        (S::Running, H::Starting, ProbeOutcome::NotApplicable) => judgement(
            V::Starting,
            format!("coolify reports {shown}: healthchecks have not passed yet"),
        ),
        (S::Running, H::Unknown, ProbeOutcome::Passed { status_code }) => judgement(
            V::Healthy,
            format!(
                "coolify reports {shown} (a container has no healthcheck) and the URL answers {status_code}"
            ),
        ),
        (S::Running, H::Unknown, ProbeOutcome::NotApplicable) => judgement(
            V::Unknown,
            format!(
                "coolify reports {shown}: a container has no healthcheck and the stack has no URL"
            ),
        ),
        (S::Running, H::Unhealthy, _) => judgement(
            V::Unhealthy,
            format!("coolify reports {shown}: a container fails its healthcheck"),
        ),
        (S::Starting | S::Created, _, _) => {
            judgement(V::Starting, format!("coolify reports {shown}"))
        }
        (S::Degraded, _, _) => judgement(
            V::Unhealthy,
            format!("coolify reports {shown}: a container is restarting, exited or unhealthy"),
        ),
        (S::Restarting, _, _) => judgement(
            V::Unhealthy,
            format!("coolify reports {shown}: a container is in a restart loop"),
        ),
        (S::Exited | S::Dead | S::Removing, _, _) => {
            judgement(V::Down, format!("coolify reports {shown}: no container is running"))
        }
        (S::Paused, _, _) => judgement(V::Paused, format!("coolify reports {shown}")),
        (S::Unknown, _, _) => {
            judgement(V::Unknown, format!("coolify reports an unknown status `{shown}`"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: &str, probe: ProbeOutcome, expected: HealthVerdict) {
        let judgement = judge_health(status, &probe);
        assert_eq!(judgement.verdict, expected, "{status} + {probe:?}: {}", judgement.reason);
        assert!(judgement.reason.contains(status.trim()), "{}", judgement.reason);
    }

    fn passed() -> ProbeOutcome {
        ProbeOutcome::Passed { status_code: 200 }
    }

    fn failed() -> ProbeOutcome {
        ProbeOutcome::Failed { reason: "connection refused".into() }
    }

    #[test]
    fn coolify_statuses_with_and_without_a_probe() {
        use HealthVerdict as V;
        use ProbeOutcome::NotApplicable as None_;
        check("running:healthy", passed(), V::Healthy);
        check("running:healthy", None_, V::Healthy);
        // running:starting reads healthy at Coolify; our probe catches it.
        check("running:healthy", failed(), V::Starting);
        check("running:starting", failed(), V::Starting);
        check("running:unknown", passed(), V::Healthy);
        check("running:unknown", None_, V::Unknown);
        check("running:unhealthy", passed(), V::Unhealthy);
        check("starting:unknown", None_, V::Starting);
        check("starting:unhealthy", failed(), V::Starting);
        check("degraded:unhealthy", passed(), V::Unhealthy);
        check("restarting:unknown", None_, V::Unhealthy);
        check("exited", None_, V::Down);
        check("exited", failed(), V::Down);
        check("paused:unknown", None_, V::Paused);
        check("running:healthy:excluded", None_, V::Healthy);
        check("unknown:unknown:excluded", None_, V::Unknown);
        check("", None_, V::Unknown);
        check("teleported:healthy", passed(), V::Unknown);
    }

    #[test]
    fn parses_the_excluded_suffix() {
        let status = CoolifyStatus::parse("running:unknown:excluded");
        assert_eq!(status.state, CoolifyState::Running);
        assert_eq!(status.health, CoolifyHealth::Unknown);
        assert!(status.excluded);
        assert!(!CoolifyStatus::parse("exited").excluded);
    }
}

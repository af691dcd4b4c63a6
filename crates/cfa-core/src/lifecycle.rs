//! The stack lifecycle (DESIGN §3) as an explicit transition table.
//!
//! `pending -> deploying -> running | error`; `running <-> stopped` (suspend, resume);
//! `running -> error` on failed health and back on recovery. Three additions, each needed so a
//! stack is never stuck: a tenant's resume request (`stopped -> pending`, which PocketBase's
//! rules allow a tenant to write), a retry of a failed stack (`error -> pending`), and an
//! upgrade (`running -> deploying`). Suspending a failing stack (`error -> stopped`) stops its
//! restart loop. Everything else is refused.

use std::fmt;

/// A stack's status, as stored in PocketBase's `agent_stacks.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StackStatus {
    Pending,
    Deploying,
    Running,
    Stopped,
    Error,
}

impl StackStatus {
    pub const ALL: [StackStatus; 5] = [
        StackStatus::Pending,
        StackStatus::Deploying,
        StackStatus::Running,
        StackStatus::Stopped,
        StackStatus::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StackStatus::Pending => "pending",
            StackStatus::Deploying => "deploying",
            StackStatus::Running => "running",
            StackStatus::Stopped => "stopped",
            StackStatus::Error => "error",
        }
    }

    pub fn parse(input: &str) -> Option<StackStatus> {
        StackStatus::ALL.into_iter().find(|status| status.as_str() == input)
    }
}

impl fmt::Display for StackStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StackEvent {
    /// The engine starts deploying a pending stack.
    DeployStarted,
    /// Coolify reports healthy and our probe answers.
    DeploySucceeded,
    /// The deploy failed or timed out.
    DeployFailed,
    /// An operator or the tenant suspends it.
    Suspend,
    /// An operator resumes it inline (start and wait).
    Resume,
    /// A tenant asks for a resume through PocketBase; the controller deploys it.
    ResumeRequested,
    /// The monitor finds it unhealthy.
    HealthFailed,
    /// The monitor finds it healthy again.
    HealthRecovered,
    /// An operator or the tenant asks to try a failed stack again.
    Retry,
    /// An operator upgrades it (re-render, patch, restart).
    UpgradeStarted,
}

impl StackEvent {
    pub const ALL: [StackEvent; 10] = [
        StackEvent::DeployStarted,
        StackEvent::DeploySucceeded,
        StackEvent::DeployFailed,
        StackEvent::Suspend,
        StackEvent::Resume,
        StackEvent::ResumeRequested,
        StackEvent::HealthFailed,
        StackEvent::HealthRecovered,
        StackEvent::Retry,
        StackEvent::UpgradeStarted,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a stack that is {from} cannot take `{event:?}`\nhint: {}", transition_hint(*from))]
pub struct TransitionError {
    pub from: StackStatus,
    pub event: StackEvent,
}

fn transition_hint(from: StackStatus) -> &'static str {
    match from {
        StackStatus::Pending => "a pending stack is deployed by the controller or a provision",
        StackStatus::Deploying => "wait for the deploy to finish; the stack's status shows it",
        StackStatus::Running => "a running stack can be suspended, upgraded or deleted",
        StackStatus::Stopped => "resume it first",
        StackStatus::Error => "retry it (provision it again), suspend it or delete it",
    }
}

/// What can be done with a stack in `status` instead of what it refused.
pub fn remedy_in(status: StackStatus, stack: crate::remedy::StackRef) -> crate::remedy::Remedy {
    use crate::remedy::Remedy;
    match status {
        StackStatus::Pending => Remedy::Deploy { stack },
        StackStatus::Deploying => Remedy::AwaitDeploy { stack },
        StackStatus::Running => Remedy::ActOnRunning,
        StackStatus::Stopped => Remedy::Resume { stack },
        StackStatus::Error => Remedy::RetryOrRemove { stack },
    }
}

/// The transition table: the one place that says what may follow what.
pub fn next(from: StackStatus, event: StackEvent) -> Result<StackStatus, TransitionError> {
    use StackEvent as E;
    use StackStatus as S;
    let to = match (from, event) {
        (S::Pending, E::DeployStarted) => S::Deploying,
        (S::Deploying, E::DeploySucceeded) => S::Running,
        (S::Deploying, E::DeployFailed) => S::Error,
        (S::Running, E::Suspend) => S::Stopped,
        (S::Running, E::HealthFailed) => S::Error,
        (S::Running, E::UpgradeStarted) => S::Deploying,
        (S::Stopped, E::Resume) => S::Running,
        (S::Stopped, E::ResumeRequested) => S::Pending,
        (S::Error, E::HealthRecovered) => S::Running,
        (S::Error, E::Retry) => S::Pending,
        (S::Error, E::Suspend) => S::Stopped,
        (
            S::Pending,
            E::DeploySucceeded
            | E::DeployFailed
            | E::Suspend
            | E::Resume
            | E::ResumeRequested
            | E::HealthFailed
            | E::HealthRecovered
            | E::Retry
            | E::UpgradeStarted,
        )
        | (
            S::Deploying,
            E::DeployStarted
            | E::Suspend
            | E::Resume
            | E::ResumeRequested
            | E::HealthFailed
            | E::HealthRecovered
            | E::Retry
            | E::UpgradeStarted,
        )
        | (
            S::Running,
            E::DeployStarted
            | E::DeploySucceeded
            | E::DeployFailed
            | E::Resume
            | E::ResumeRequested
            | E::HealthRecovered
            | E::Retry,
        )
        | (
            S::Stopped,
            E::DeployStarted
            | E::DeploySucceeded
            | E::DeployFailed
            | E::Suspend
            | E::HealthFailed
            | E::HealthRecovered
            | E::Retry
            | E::UpgradeStarted,
        )
        | (
            S::Error,
            E::DeployStarted
            | E::DeploySucceeded
            | E::DeployFailed
            | E::Resume
            | E::ResumeRequested
            | E::HealthFailed
            | E::UpgradeStarted,
        ) => return Err(TransitionError { from, event }),
    };
    Ok(to)
}

/// The whole table, one line per (status, event), for docs and the snapshot test.
pub fn transition_table() -> String {
    let mut out = String::new();
    for from in StackStatus::ALL {
        for event in StackEvent::ALL {
            let to = match next(from, event) {
                Ok(to) => to.as_str().to_owned(),
                Err(_) => "refused".to_owned(),
            };
            out.push_str(&format!("{:<10} {:<16} -> {to}\n", from.as_str(), format!("{event:?}")));
        }
    }
    out
}

/// The status a run that starts deploying writes, walked through the table from what the
/// record says now: a retry (`error`), a tenant's resume (`stopped`), an upgrade (`running`),
/// a first deploy (`pending`); `deploying` stays.
pub fn to_deploying(from: StackStatus) -> Result<StackStatus, TransitionError> {
    use StackEvent as E;
    match from {
        StackStatus::Deploying => Ok(StackStatus::Deploying),
        StackStatus::Error => {
            next(from, E::Retry).and_then(|pending| next(pending, E::DeployStarted))
        }
        StackStatus::Stopped => {
            next(from, E::ResumeRequested).and_then(|pending| next(pending, E::DeployStarted))
        }
        StackStatus::Running => next(from, E::UpgradeStarted),
        StackStatus::Pending => next(from, E::DeployStarted),
    }
}

/// The status a run that reached ready writes. The record it holds may be a concurrent run's
/// `pending` or failed `error`: walked from there, since this run did reach ready.
pub fn to_running(from: StackStatus) -> Result<StackStatus, TransitionError> {
    match from {
        StackStatus::Running => Ok(StackStatus::Running),
        _ => to_deploying(from).and_then(|deploying| next(deploying, StackEvent::DeploySucceeded)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_table_snapshot() {
        insta::assert_snapshot!(transition_table());
    }

    #[test]
    fn exactly_the_designed_transitions_are_allowed() {
        let allowed: Vec<(StackStatus, StackEvent)> = StackStatus::ALL
            .into_iter()
            .flat_map(|from| StackEvent::ALL.into_iter().map(move |event| (from, event)))
            .filter(|(from, event)| next(*from, *event).is_ok())
            .collect();
        assert_eq!(allowed.len(), 11);
        let error = next(StackStatus::Stopped, StackEvent::HealthFailed).unwrap_err();
        assert_eq!(
            error.to_string(),
            "a stack that is stopped cannot take `HealthFailed`\nhint: resume it first"
        );
    }

    #[test]
    fn every_status_can_reach_running() {
        // No status is a dead end: from each, some path of allowed events reaches running.
        for start in StackStatus::ALL {
            let mut seen = vec![start];
            let mut frontier = vec![start];
            while let Some(status) = frontier.pop() {
                for event in StackEvent::ALL {
                    if let Ok(to) = next(status, event)
                        && !seen.contains(&to)
                    {
                        seen.push(to);
                        frontier.push(to);
                    }
                }
            }
            assert!(seen.contains(&StackStatus::Running), "{start} cannot reach running");
        }
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in StackStatus::ALL {
            assert_eq!(StackStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(StackStatus::parse("Running"), None);
    }

    #[test]
    fn every_status_walks_to_deploying_and_running_through_the_table() {
        use StackStatus as S;
        for from in S::ALL {
            assert_eq!(to_deploying(from), Ok(S::Deploying), "{from}");
            assert_eq!(to_running(from), Ok(S::Running), "{from}");
        }
    }
}

//! PocketBase itself down: the one incident the monitor cannot record or queue where it
//! records and queues everything else. The long-running controller folds each monitor pass's
//! outcome into this watch's track (the same state machine as every incident), and sends what
//! it says through the local spool of `cfa_alerts` instead of PocketBase's outbox.

use std::time::SystemTime;

use cfa_core::incidents::{
    AlertPolicies, GroupedMessage, IncidentKind, IncidentSubject, IncidentTrack, Observation,
    group_notifications, step,
};

use crate::EngineError;

/// The `pocketbase_unreachable` stream of one controller process.
#[derive(Debug)]
pub struct PocketBaseWatch {
    track: IncidentTrack,
    policies: AlertPolicies,
    listed: usize,
}

impl PocketBaseWatch {
    pub fn new(policies: AlertPolicies) -> PocketBaseWatch {
        PocketBaseWatch {
            track: IncidentTrack::new(IncidentKind::PocketBaseUnreachable),
            policies,
            listed: 1,
        }
    }

    /// Folds in one monitor pass's outcome (`Ok`: PocketBase answered); the messages due.
    pub fn observe<T>(
        &mut self,
        outcome: &Result<T, EngineError>,
        now: SystemTime,
    ) -> Vec<GroupedMessage> {
        let observation = match outcome {
            Ok(_) => Observation::clear(),
            Err(error) if error.is_pocketbase_unreachable() => Observation::holds(format!(
                "PocketBase does not answer: {}",
                error.to_string().lines().next().unwrap_or_default()
            )),
            // Another failure says nothing about PocketBase.
            Err(_) => Observation::no_data(),
        };
        let (track, due) = step(self.track.clone(), &observation, &self.policies, now);
        self.track = track;
        let due = due.into_iter().map(|notification| (IncidentSubject::Platform, notification));
        group_notifications(due.collect(), self.listed)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cfa_core::incidents::NotificationKind;
    use cfa_pocketbase::{Password, PocketBaseClient, PocketBaseErrorKind};

    use super::*;
    use crate::Step;
    use crate::error::Subject;

    /// A real client's error against a closed loopback port, as the engine reports it.
    async fn down() -> Result<(), EngineError> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let password = Password::new("not-used".to_owned());
        let error = PocketBaseClient::connect_superuser(&url, "ops@example.test", password)
            .await
            .unwrap_err();
        assert_eq!(error.kind, PocketBaseErrorKind::Transport);
        let subject = Subject { tenant: "*".to_owned(), stack: "*".to_owned() };
        Err(subject.pocketbase(Step::RecordRunning, error))
    }

    #[tokio::test]
    async fn pocketbase_down_for_its_pending_period_is_one_incident_and_its_return_resolves_it() {
        let mut watch = PocketBaseWatch::new(AlertPolicies::default());
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let at = |seconds| start + Duration::from_secs(seconds);
        assert!(watch.observe(&down().await, at(0)).is_empty(), "a blip is not an incident");
        assert!(watch.observe(&down().await, at(30)).is_empty());
        let opened = watch.observe(&down().await, at(61));
        assert_eq!(opened.len(), 1);
        assert_eq!(opened[0].notification_kind, NotificationKind::Opened);
        assert!(opened[0].text().contains("PocketBase does not answer"), "{}", opened[0].text());
        assert!(watch.observe(&down().await, at(90)).is_empty(), "opened once");
        let other: Result<(), EngineError> =
            Err(EngineError::CoolifyUnavailable { detail: "x".into() });
        assert!(
            watch.observe(&other, at(100)).is_empty(),
            "another failure neither opens nor resolves"
        );
        let resolved = watch.observe(&Ok(()), at(120));
        assert!(matches!(resolved[0].notification_kind, NotificationKind::Resolved(_)));
    }
}

//! What an operator does with incidents: list them, acknowledge one (no reminders until a
//! time; its resolve still comes), silence its stream (no opens or reminders until a time).
//! Both change the stream's track, which the monitor folds every check into, and are audited.

use std::time::{Duration, SystemTime};

use cfa_core::incidents::{IncidentKind, IncidentTrack, acknowledge, silence};
use cfa_pocketbase::{AuditOutcome, IncidentRecord};

use super::incident_store::{
    subject_from_json, timestamp, track_from_json, track_key, track_to_json,
};
use super::*;

/// Why an operator's action on an incident was refused.
#[derive(Debug, thiserror::Error)]
pub enum AlertActionError {
    #[error("incident `{id}` does not exist\nhint: the list of incidents shows their ids")]
    UnknownIncident { id: String },
    #[error("incident `{id}` is resolved already; nothing to acknowledge")]
    Resolved { id: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What an action did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    Acknowledge,
    Silence,
}

impl Engine {
    /// Stores what a host agent reported (already authenticated by the receiver); events
    /// already stored are skipped. Answers how many were new. The next monitor pass folds
    /// them into incidents.
    pub async fn record_host_events(
        &self,
        events: &[cfa_pocketbase::NewHostEvent],
    ) -> Result<usize, EngineError> {
        let all = Subject { tenant: "*".to_owned(), stack: "*".to_owned() };
        let mut new = 0;
        for event in events {
            if self
                .inner
                .pocketbase
                .host_event_insert(event)
                .await
                .map_err(|error| all.pocketbase(Step::RecordRunning, error))?
            {
                new += 1;
            }
        }
        Ok(new)
    }

    /// Incidents, newest first: the firing ones, or also the resolved ones.
    pub async fn incidents(
        &self,
        firing_only: bool,
        limit: u32,
    ) -> Result<Vec<IncidentRecord>, EngineError> {
        let all = Subject { tenant: "*".to_owned(), stack: "*".to_owned() };
        self.inner
            .pocketbase
            .incident_list(firing_only, limit)
            .await
            .map_err(|error| all.pocketbase(Step::RecordRunning, error))
    }

    /// Acknowledges (no reminders) or silences (no opens or reminders) incident `id`'s stream
    /// for `period`, as `by`.
    pub async fn act_on_incident(
        &self,
        id: &str,
        action: AlertAction,
        period: Duration,
        by: &str,
    ) -> Result<IncidentRecord, AlertActionError> {
        let all = Subject { tenant: "*".to_owned(), stack: "*".to_owned() };
        let pocketbase = &self.inner.pocketbase;
        let failed = |error| AlertActionError::Engine(all.pocketbase(Step::RecordRunning, error));
        let incident = match pocketbase.incident_view(id).await {
            Ok(incident) => incident,
            Err(error) if error.kind == PocketBaseErrorKind::NotFound => {
                return Err(AlertActionError::UnknownIncident { id: id.to_owned() });
            }
            Err(error) => return Err(failed(error)),
        };
        if action == AlertAction::Acknowledge
            && incident.status == cfa_pocketbase::IncidentStatus::Resolved
        {
            return Err(AlertActionError::Resolved { id: id.to_owned() });
        }
        let unknown = || AlertActionError::UnknownIncident { id: id.to_owned() };
        let subject = subject_from_json(&incident.subject).ok_or_else(unknown)?;
        let kind = IncidentKind::parse(incident.flapping_of.as_deref().unwrap_or(&incident.kind))
            .map_err(|_| unknown())?;
        let key = track_key(&subject, kind);
        let stored = pocketbase.track_list_all().await.map_err(failed)?;
        let kept = stored.iter().find(|track| track.key == key);
        let track = kept
            .and_then(|kept| track_from_json(kind, &kept.track))
            .unwrap_or_else(|| IncidentTrack::new(kind));
        let until = SystemTime::now() + period;
        let changed = match action {
            AlertAction::Acknowledge => acknowledge(track, until)
                .map_err(|_| AlertActionError::Resolved { id: id.to_owned() })?,
            AlertAction::Silence => silence(track, until),
        };
        let subject_json = super::incident_store::subject_to_json(&subject);
        pocketbase
            .track_save(
                kept.map(|kept| kept.id.as_str()),
                &key,
                &subject_json,
                kind.as_str(),
                &track_to_json(&changed),
            )
            .await
            .map_err(failed)?;
        // The monitor's cache follows PocketBase: what it stored no longer matches, so the next
        // pass starts from this track.
        let updated = match action {
            AlertAction::Acknowledge => {
                pocketbase.incident_acknowledge(id, timestamp(until), by).await.map_err(failed)?
            }
            AlertAction::Silence => incident,
        };
        let audit_subject = Subject {
            tenant: updated.tenant.clone().unwrap_or_else(|| "*".to_owned()),
            stack: updated.stack.clone().unwrap_or_else(|| "*".to_owned()),
        };
        let verb = match action {
            AlertAction::Acknowledge => "incident.acknowledge",
            AlertAction::Silence => "incident.silence",
        };
        let after = json!({ "incident": id, "key": updated.key, "until": timestamp(until).to_string(), "by": by });
        self.audit(&audit_subject, verb, Value::Null, after, AuditOutcome::Ok, None).await;
        Ok(updated)
    }
}

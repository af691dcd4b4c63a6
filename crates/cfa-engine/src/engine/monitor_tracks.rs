//! The monitor's memory of each stream (subject and kind): its track as PocketBase stores it
//! and as the last pass left it, written only when it changed beyond its window of recent
//! checks, and the incident records its changes open and resolve.

use std::time::SystemTime;

use cfa_core::incidents::{IncidentKind, IncidentSubject, IncidentTrack, TrackState};
use cfa_pocketbase::{NewIncident, StoredTrack};

use super::incident_store::{subject_names, subject_to_json, timestamp, track_key, track_to_json};
use super::monitor::MonitorReport;
use super::*;

/// A track as the last pass left it, and as PocketBase holds it (`None`: not stored).
#[derive(Debug)]
pub(super) struct CachedTrack {
    stored: Option<IncidentTrack>,
    current: IncidentTrack,
}

/// Whether `new` differs from `stored` in more than its window of recent checks (which moves
/// with every check; only the process's cache follows it, and after a restart the stored
/// window is a little old, which only delays a flapping verdict).
fn worth_writing(stored: Option<&IncidentTrack>, new: &IncidentTrack) -> bool {
    let at_rest = *new == IncidentTrack::new(new.kind);
    match stored {
        None => !at_rest,
        Some(_) if at_rest => true,
        Some(stored) => {
            let mut windowless = new.clone();
            windowless.recent_checks = stored.recent_checks;
            windowless != *stored
        }
    }
}

/// One stream's track before and after a check, and what PocketBase holds of it.
pub(super) struct Change<'a> {
    pub(super) subject: &'a IncidentSubject,
    pub(super) kind: IncidentKind,
    pub(super) kept: Option<&'a StoredTrack>,
    /// `kept`, read back (`None` also when it does not read back).
    pub(super) stored: Option<&'a IncidentTrack>,
    pub(super) old: &'a IncidentTrack,
    pub(super) new: &'a IncidentTrack,
}

impl Engine {
    /// The track the last pass left, if PocketBase still holds what that pass stored.
    pub(super) fn cached_track(
        &self,
        key: &str,
        stored: Option<&IncidentTrack>,
    ) -> Option<IncidentTrack> {
        let cache = self.inner.tracks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let cached = cache.get(key)?;
        (cached.stored.as_ref() == stored).then(|| cached.current.clone())
    }

    pub(super) fn cache_track(
        &self,
        key: String,
        stored: Option<IncidentTrack>,
        current: IncidentTrack,
    ) {
        let mut cache = self.inner.tracks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if stored.is_none() && current == IncidentTrack::new(current.kind) {
            cache.remove(&key);
        } else {
            cache.insert(key, CachedTrack { stored, current });
        }
    }

    /// Writes what changed about one stream: its track (deleted once at rest), and the
    /// incident records it opened or resolved. Answers what PocketBase holds of the track now
    /// and what was written.
    pub(super) async fn keep_track(
        &self,
        change: Change<'_>,
        now: SystemTime,
    ) -> Result<(Option<IncidentTrack>, MonitorReport), EngineError> {
        let mut written = MonitorReport::default();
        let report = &mut written;
        let Change { subject, kind, kept, stored, old, new } = change;
        let all = Subject { tenant: "*".to_owned(), stack: "*".to_owned() };
        let pocketbase = &self.inner.pocketbase;
        let failed = |error| all.pocketbase(Step::RecordRunning, error);
        let unreadable = kept.is_some() && stored.is_none();
        let mut stored_after = stored.cloned();
        if unreadable || worth_writing(stored, new) {
            let at_rest = *new == IncidentTrack::new(kind);
            stored_after = (!at_rest).then(|| new.clone());
            match (kept, at_rest) {
                (Some(kept), true) => pocketbase.track_delete(&kept.id).await.map_err(failed)?,
                (None, true) => {}
                (kept, false) => {
                    let key = track_key(subject, kind);
                    let subject_json = subject_to_json(subject);
                    let track = track_to_json(new);
                    let id = kept.map(|kept| kept.id.as_str());
                    pocketbase
                        .track_save(id, &key, &subject_json, kind.as_str(), &track)
                        .await
                        .map_err(failed)?;
                }
            }
            report.track_writes += 1;
        }
        let (old_key, new_key) = (old.open_incident_key(subject), new.open_incident_key(subject));
        if old_key != new_key {
            if let Some(old_key) = old_key {
                self.resolve_incident(&old_key, now, report).await?;
            }
            if let (Some(key), Some(open)) = (new_key, new.open_incident()) {
                let (tenant, stack) = subject_names(subject);
                let flapping = matches!(new.state, TrackState::Flapping(_));
                let incident = NewIncident {
                    key: key.clone(),
                    kind: if flapping { IncidentKind::Flapping } else { kind }.as_str().to_owned(),
                    flapping_of: flapping.then(|| kind.as_str().to_owned()),
                    subject: subject_to_json(subject),
                    tenant,
                    stack,
                    opened_at: timestamp(open.opened_at),
                    detail: open.detail.clone(),
                };
                pocketbase.incident_open(&incident).await.map_err(failed)?;
                report.opened.push(key);
            }
        }
        Ok((stored_after, written))
    }

    pub(super) async fn resolve_incident(
        &self,
        key: &str,
        now: SystemTime,
        report: &mut MonitorReport,
    ) -> Result<(), EngineError> {
        let all = Subject { tenant: "*".to_owned(), stack: "*".to_owned() };
        self.inner
            .pocketbase
            .incident_resolve(key, timestamp(now))
            .await
            .map_err(|error| all.pocketbase(Step::RecordRunning, error))?;
        report.resolved.push(key.to_owned());
        Ok(())
    }
}

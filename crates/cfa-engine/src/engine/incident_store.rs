//! How the monitor's pure state (`cfa_core::incidents`) is kept in PocketBase: a track and a
//! subject as JSON (messages are `cfa_alerts::AlertMessage`s). Times are milliseconds since the epoch; a track that
//! does not read back (a newer or corrupted shape) starts afresh rather than stopping the
//! monitor.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cfa_core::incidents::{
    Holding, IncidentKind, IncidentSubject, IncidentTrack, OpenIncident, TrackState,
};
use serde_json::{Value, json};

/// The key a track is stored under: its subject's and its kind's.
pub(crate) fn track_key(subject: &IncidentSubject, kind: IncidentKind) -> String {
    format!("{}/{}", subject.key(), kind.as_str())
}

fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}

fn time(value: &Value) -> Option<SystemTime> {
    let millis = u64::try_from(value.as_i64()?).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(millis))
}

fn optional_time(value: &Value) -> Option<Option<SystemTime>> {
    if value.is_null() { Some(None) } else { time(value).map(Some) }
}

/// A time as PocketBase's date type and jiff take it.
pub(crate) fn timestamp(time: SystemTime) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(millis(time)).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

fn open_to_json(open: &OpenIncident) -> Value {
    json!({
        "opened_at": millis(open.opened_at),
        "last_notified_at": open.last_notified_at.map(millis),
        "acknowledged_until": open.acknowledged_until.map(millis),
        "detail": open.detail,
    })
}

fn open_from_json(value: &Value) -> Option<OpenIncident> {
    Some(OpenIncident {
        opened_at: time(value.get("opened_at")?)?,
        last_notified_at: optional_time(value.get("last_notified_at").unwrap_or(&Value::Null))?,
        acknowledged_until: optional_time(value.get("acknowledged_until").unwrap_or(&Value::Null))?,
        detail: value.get("detail").and_then(Value::as_str).map(str::to_owned),
    })
}

pub(crate) fn track_to_json(track: &IncidentTrack) -> Value {
    let (state, open) = match &track.state {
        TrackState::Ok => ("ok", Value::Null),
        TrackState::Firing(open) => ("firing", open_to_json(open)),
        TrackState::Flapping(open) => ("flapping", open_to_json(open)),
    };
    json!({
        "state": state,
        "open": open,
        "holding": track.holding.map(|holding| json!({
            "since": millis(holding.since), "checks": holding.checks,
        })),
        "recent_checks": track.recent_checks,
        "silenced_until": track.silenced_until.map(millis),
    })
}

/// The stored track of `kind`, or `None` when it does not read back.
pub(crate) fn track_from_json(kind: IncidentKind, value: &Value) -> Option<IncidentTrack> {
    let state = match value.get("state")?.as_str()? {
        "ok" => TrackState::Ok,
        "firing" => TrackState::Firing(open_from_json(value.get("open")?)?),
        "flapping" => TrackState::Flapping(open_from_json(value.get("open")?)?),
        _ => return None,
    };
    let holding = match value.get("holding") {
        None | Some(Value::Null) => None,
        Some(holding) => Some(Holding {
            since: time(holding.get("since")?)?,
            checks: u32::try_from(holding.get("checks")?.as_u64()?).ok()?,
        }),
    };
    Some(IncidentTrack {
        kind,
        state,
        holding,
        recent_checks: u32::try_from(value.get("recent_checks")?.as_u64()?).ok()?,
        silenced_until: optional_time(value.get("silenced_until").unwrap_or(&Value::Null))?,
    })
}

pub(crate) fn subject_to_json(subject: &IncidentSubject) -> Value {
    match subject {
        IncidentSubject::Stack { tenant_slug, stack_name, record_id } => json!({
            "type": "stack", "tenant": tenant_slug, "stack": stack_name, "record_id": record_id,
        }),
        IncidentSubject::Server { uuid } => json!({ "type": "server", "uuid": uuid }),
        IncidentSubject::CoolifyService { uuid } => json!({ "type": "service", "uuid": uuid }),
        IncidentSubject::Platform => json!({ "type": "platform" }),
    }
}

pub(crate) fn subject_from_json(value: &Value) -> Option<IncidentSubject> {
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    Some(match value.get("type")?.as_str()? {
        "stack" => IncidentSubject::Stack {
            tenant_slug: text("tenant")?,
            stack_name: text("stack")?,
            record_id: text("record_id")?,
        },
        "server" => IncidentSubject::Server { uuid: text("uuid")? },
        "service" => IncidentSubject::CoolifyService { uuid: text("uuid")? },
        "platform" => IncidentSubject::Platform,
        _ => return None,
    })
}

/// The tenant and stack a subject names, for the incident record's columns.
pub(crate) fn subject_names(subject: &IncidentSubject) -> (Option<String>, Option<String>) {
    match subject {
        IncidentSubject::Stack { tenant_slug, stack_name, .. } => {
            (Some(tenant_slug.clone()), Some(stack_name.clone()))
        }
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use cfa_core::incidents::{AlertPolicies, Observation, step};

    use super::*;

    #[test]
    fn tracks_and_subjects_read_back_as_they_were_written() {
        let policies = AlertPolicies::default();
        let start = UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let mut track = IncidentTrack::new(IncidentKind::OomKilled);
        let mut seen = vec![track.clone()];
        for (offset, observation) in [
            (0, Observation::holds("exit code 137")),
            (30, Observation::no_data()),
            (60, Observation::clear()),
            (90, Observation::holds("again")),
        ] {
            track = step(track, &observation, &policies, start + Duration::from_secs(offset)).0;
            seen.push(track.clone());
        }
        assert!(seen.iter().any(|track| matches!(track.state, TrackState::Firing(_))));
        for track in seen {
            let stored = track_to_json(&track);
            assert_eq!(track_from_json(track.kind, &stored), Some(track), "{stored}");
        }
        assert_eq!(track_from_json(IncidentKind::Unhealthy, &json!({ "state": "odd" })), None);

        for subject in [
            IncidentSubject::Stack {
                tenant_slug: "acme".into(),
                stack_name: "bot".into(),
                record_id: "r1".into(),
            },
            IncidentSubject::Server { uuid: "s1".into() },
            IncidentSubject::CoolifyService { uuid: "c1".into() },
            IncidentSubject::Platform,
        ] {
            assert_eq!(subject_from_json(&subject_to_json(&subject)), Some(subject));
        }
    }
}

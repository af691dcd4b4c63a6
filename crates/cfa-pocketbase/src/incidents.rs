//! The monitor's collections (pb_migrations/1763900008_cfa_incidents.js), superusers only:
//! incident tracks (the state machine of `cfa_core::incidents`, stored as JSON only while a
//! stream is not at rest), incidents (one record per opening: what `cfa alerts` lists and
//! acknowledges), and the alert outbox (every message owed to a channel, written before it is
//! sent, so a crash loses none).

use jiff::Timestamp;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{ListOptions, MAX_PER_PAGE, path_segment};
use crate::filter::quote;
use crate::types::{Fields, format_pocketbase_date};
use crate::{PocketBaseClient, PocketBaseError};

const TRACKS: &str = "cfa_incident_tracks";
const INCIDENTS: &str = "cfa_incidents";
const OUTBOX: &str = "cfa_alert_outbox";

/// One stream's track as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTrack {
    pub id: String,
    /// The subject's key and the kind: `stack:acme/bot#<id>/unhealthy`.
    pub key: String,
    pub subject: Value,
    pub kind: String,
    pub track: Value,
}

/// Whether an incident is still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentStatus {
    Firing,
    Resolved,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Firing => "firing",
            IncidentStatus::Resolved => "resolved",
        }
    }
}

/// An incident as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRecord {
    pub id: String,
    /// The incident key (subject and kind; a flapping incident names the kind that flaps).
    pub key: String,
    pub kind: String,
    pub flapping_of: Option<String>,
    pub subject: Value,
    pub tenant: Option<String>,
    pub stack: Option<String>,
    pub status: IncidentStatus,
    pub opened_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub detail: Option<String>,
    pub acknowledged_until: Option<Timestamp>,
    pub acknowledged_by: Option<String>,
}

/// An incident to record as opened.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIncident {
    pub key: String,
    pub kind: String,
    pub flapping_of: Option<String>,
    pub subject: Value,
    pub tenant: Option<String>,
    pub stack: Option<String>,
    pub opened_at: Timestamp,
    pub detail: Option<String>,
}

/// A message owed to a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub id: String,
    pub channel: String,
    pub message: Value,
    pub attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub created: Timestamp,
}

impl PocketBaseClient {
    /// Every stored track (streams not at rest: few, however many stacks there are).
    pub async fn track_list_all(&self) -> Result<Vec<StoredTrack>, PocketBaseError> {
        let mut tracks: Vec<StoredTrack> = Vec::new();
        loop {
            let filter = tracks.last().map(|last| format!("id > {}", quote(&last.id)));
            let options = ListOptions {
                page: 1,
                per_page: MAX_PER_PAGE,
                sort: Some("id".to_owned()),
                expand_tenant: false,
                skip_total: true,
            };
            let (items, _) = self.list_records("track_list_all", TRACKS, filter, &options).await?;
            let count = items.len();
            for record in &items {
                tracks.push(track_from_record("track_list_all", record)?);
            }
            if count < MAX_PER_PAGE as usize {
                return Ok(tracks);
            }
        }
    }

    /// Creates the track (`id: None`) or replaces the stored one.
    pub async fn track_save(
        &self,
        id: Option<&str>,
        key: &str,
        subject: &Value,
        kind: &str,
        track: &Value,
    ) -> Result<StoredTrack, PocketBaseError> {
        let body = json!({ "key": key, "subject": subject, "kind": kind, "track": track });
        let record = match id {
            None => {
                let path = format!("api/collections/{TRACKS}/records");
                self.call_record("track_save", Method::POST, &path, &[], Some(&body)).await?
            }
            Some(id) => {
                let path = format!("api/collections/{TRACKS}/records/{}", path_segment(id)?);
                self.call_record("track_save", Method::PATCH, &path, &[], Some(&body)).await?
            }
        };
        track_from_record("track_save", &record)
    }

    /// Deletes a track that is at rest again.
    pub async fn track_delete(&self, id: &str) -> Result<(), PocketBaseError> {
        let path = format!("api/collections/{TRACKS}/records/{}", path_segment(id)?);
        self.call("track_delete", Method::DELETE, &path, &[], None).await?;
        Ok(())
    }

    /// Records an incident as opened (`firing`).
    pub async fn incident_open(
        &self,
        incident: &NewIncident,
    ) -> Result<IncidentRecord, PocketBaseError> {
        let body = json!({
            "key": incident.key,
            "kind": incident.kind,
            "flapping_of": incident.flapping_of.clone().unwrap_or_default(),
            "subject": incident.subject,
            "tenant": incident.tenant.clone().unwrap_or_default(),
            "stack": incident.stack.clone().unwrap_or_default(),
            "status": IncidentStatus::Firing.as_str(),
            "opened_at": format_pocketbase_date(incident.opened_at),
            "detail": incident.detail.as_deref().map(|detail| clip(detail, 2000)).unwrap_or_default(),
        });
        let path = format!("api/collections/{INCIDENTS}/records");
        let record =
            self.call_record("incident_open", Method::POST, &path, &[], Some(&body)).await?;
        incident_from_record("incident_open", &record)
    }

    /// Marks every firing incident with `key` resolved at `at` (one, unless a crash left two).
    pub async fn incident_resolve(&self, key: &str, at: Timestamp) -> Result<(), PocketBaseError> {
        let body = json!({
            "status": IncidentStatus::Resolved.as_str(),
            "resolved_at": format_pocketbase_date(at),
        });
        for incident in self.incidents_firing_with_key(key).await? {
            let path =
                format!("api/collections/{INCIDENTS}/records/{}", path_segment(&incident.id)?);
            self.call_record("incident_resolve", Method::PATCH, &path, &[], Some(&body)).await?;
        }
        Ok(())
    }

    /// The firing incidents with `key`.
    pub async fn incidents_firing_with_key(
        &self,
        key: &str,
    ) -> Result<Vec<IncidentRecord>, PocketBaseError> {
        let filter = format!("key = {} && status = 'firing'", quote(key));
        let options = ListOptions { skip_total: true, ..ListOptions::default() };
        let (items, _) =
            self.list_records("incidents_firing", INCIDENTS, Some(filter), &options).await?;
        items.iter().map(|record| incident_from_record("incidents_firing", record)).collect()
    }

    /// Incidents, newest first: the firing ones only, or also those resolved lately.
    pub async fn incident_list(
        &self,
        firing_only: bool,
        limit: u32,
    ) -> Result<Vec<IncidentRecord>, PocketBaseError> {
        let filter = firing_only.then(|| "status = 'firing'".to_owned());
        let options = ListOptions {
            page: 1,
            per_page: limit.clamp(1, MAX_PER_PAGE),
            sort: Some("-opened_at,-@rowid".to_owned()),
            expand_tenant: false,
            skip_total: true,
        };
        let (items, _) = self.list_records("incident_list", INCIDENTS, filter, &options).await?;
        items.iter().map(|record| incident_from_record("incident_list", record)).collect()
    }

    /// One incident by its record id.
    pub async fn incident_view(&self, id: &str) -> Result<IncidentRecord, PocketBaseError> {
        let path = format!("api/collections/{INCIDENTS}/records/{}", path_segment(id)?);
        let record = self.call_record("incident_view", Method::GET, &path, &[], None).await?;
        incident_from_record("incident_view", &record)
    }

    /// Notes an acknowledgement on the incident record (the track holds the reminders back).
    pub async fn incident_acknowledge(
        &self,
        id: &str,
        until: Timestamp,
        by: &str,
    ) -> Result<IncidentRecord, PocketBaseError> {
        let body = json!({
            "acknowledged_until": format_pocketbase_date(until),
            "acknowledged_by": clip(by, 200),
        });
        let path = format!("api/collections/{INCIDENTS}/records/{}", path_segment(id)?);
        let record = self
            .call_record("incident_acknowledge", Method::PATCH, &path, &[], Some(&body))
            .await?;
        incident_from_record("incident_acknowledge", &record)
    }

    /// Queues `message` for `channel` (the delivery loop sends it and marks it delivered).
    pub async fn outbox_enqueue(
        &self,
        channel: &str,
        message: &Value,
    ) -> Result<OutboxEntry, PocketBaseError> {
        let body = json!({ "channel": channel, "message": message, "attempts": 0 });
        let path = format!("api/collections/{OUTBOX}/records");
        let record =
            self.call_record("outbox_enqueue", Method::POST, &path, &[], Some(&body)).await?;
        outbox_from_record("outbox_enqueue", &record)
    }

    /// Undelivered messages whose next attempt is due at `now`, oldest first.
    pub async fn outbox_due(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, PocketBaseError> {
        let now = quote(&format_pocketbase_date(now));
        let filter =
            format!("delivered_at = '' && (next_attempt_at = '' || next_attempt_at <= {now})");
        let options = ListOptions {
            page: 1,
            per_page: limit.clamp(1, MAX_PER_PAGE),
            sort: Some("@rowid".to_owned()),
            expand_tenant: false,
            skip_total: true,
        };
        let (items, _) = self.list_records("outbox_due", OUTBOX, Some(filter), &options).await?;
        items.iter().map(|record| outbox_from_record("outbox_due", record)).collect()
    }

    /// Every undelivered message (for `cfa alerts`), oldest first.
    pub async fn outbox_pending(&self, limit: u32) -> Result<Vec<OutboxEntry>, PocketBaseError> {
        let options = ListOptions {
            page: 1,
            per_page: limit.clamp(1, MAX_PER_PAGE),
            sort: Some("@rowid".to_owned()),
            expand_tenant: false,
            skip_total: true,
        };
        let filter = Some("delivered_at = ''".to_owned());
        let (items, _) = self.list_records("outbox_pending", OUTBOX, filter, &options).await?;
        items.iter().map(|record| outbox_from_record("outbox_pending", record)).collect()
    }

    /// A channel took the message.
    pub async fn outbox_delivered(&self, id: &str, at: Timestamp) -> Result<(), PocketBaseError> {
        let body = json!({ "delivered_at": format_pocketbase_date(at), "last_error": "" });
        let path = format!("api/collections/{OUTBOX}/records/{}", path_segment(id)?);
        self.call_record("outbox_delivered", Method::PATCH, &path, &[], Some(&body)).await?;
        Ok(())
    }

    /// A delivery failed: try again at `next_attempt_at`.
    pub async fn outbox_failed(
        &self,
        id: &str,
        attempts: u32,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> Result<(), PocketBaseError> {
        let body = json!({
            "attempts": attempts,
            "next_attempt_at": format_pocketbase_date(next_attempt_at),
            "last_error": clip(error, 2000),
        });
        let path = format!("api/collections/{OUTBOX}/records/{}", path_segment(id)?);
        self.call_record("outbox_failed", Method::PATCH, &path, &[], Some(&body)).await?;
        Ok(())
    }
}

fn clip(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

fn track_from_record(
    operation: &'static str,
    record: &Value,
) -> Result<StoredTrack, PocketBaseError> {
    let fields = Fields::new(operation, TRACKS, record)?;
    Ok(StoredTrack {
        id: fields.text("id")?,
        key: fields.text("key")?,
        subject: fields.json("subject"),
        kind: fields.text("kind")?,
        track: fields.json("track"),
    })
}

fn incident_from_record(
    operation: &'static str,
    record: &Value,
) -> Result<IncidentRecord, PocketBaseError> {
    let fields = Fields::new(operation, INCIDENTS, record)?;
    let status = match fields.text("status")?.as_str() {
        "resolved" => IncidentStatus::Resolved,
        _ => IncidentStatus::Firing,
    };
    Ok(IncidentRecord {
        id: fields.text("id")?,
        key: fields.text("key")?,
        kind: fields.text("kind")?,
        flapping_of: fields.optional_text("flapping_of")?,
        subject: fields.json("subject"),
        tenant: fields.optional_text("tenant")?,
        stack: fields.optional_text("stack")?,
        status,
        opened_at: fields.required_date("opened_at")?,
        resolved_at: fields.date("resolved_at")?,
        detail: fields.optional_text("detail")?,
        acknowledged_until: fields.date("acknowledged_until")?,
        acknowledged_by: fields.optional_text("acknowledged_by")?,
    })
}

fn outbox_from_record(
    operation: &'static str,
    record: &Value,
) -> Result<OutboxEntry, PocketBaseError> {
    let fields = Fields::new(operation, OUTBOX, record)?;
    Ok(OutboxEntry {
        id: fields.text("id")?,
        channel: fields.text("channel")?,
        message: fields.json("message"),
        attempts: fields
            .json("attempts")
            .as_u64()
            .and_then(|attempts| u32::try_from(attempts).ok())
            .unwrap_or(0),
        next_attempt_at: fields.date("next_attempt_at")?,
        delivered_at: fields.date("delivered_at")?,
        last_error: fields.optional_text("last_error")?,
        created: fields.required_date("created")?,
    })
}

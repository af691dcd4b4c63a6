//! The monitor's collections (pb_migrations/1763900008_cfa_incidents.js), superusers only:
//! incident tracks (the state machine of `cfa_core::incidents`, stored as JSON only while a
//! stream is not at rest), incidents (one record per opening: what `cfa alerts` lists and
//! acknowledges), and the alert outbox (every message owed to a channel, written before it is
//! sent, so a crash loses none; the engine adapts it to `cfa_alerts::Outbox`).

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
const HOST_EVENTS: &str = "cfa_host_events";

/// What a host agent reported from Docker about one of our containers.
#[derive(Debug, Clone, PartialEq)]
pub struct HostEventRecord {
    pub id: String,
    pub event_id: String,
    pub server: String,
    pub container_name: String,
    pub tenant: String,
    pub stack: String,
    /// `oom`, `died`, `restarted`, `started`, `health`.
    pub kind: String,
    pub exit_code: Option<i64>,
    pub healthy: Option<bool>,
    /// Docker's `timeNano`.
    pub at_ns: i64,
}

/// An event to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewHostEvent {
    pub event_id: String,
    pub server: String,
    pub container_name: String,
    pub tenant: String,
    pub stack: String,
    pub kind: String,
    pub exit_code: Option<i64>,
    pub healthy: Option<bool>,
    pub at_ns: i64,
}

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

/// A message owed to one channel, as stored: the delivery's JSON (`cfa_alerts::Delivery`)
/// with the columns the queries need.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRecord {
    pub delivery_id: String,
    pub channel: String,
    /// `pending`, `delivered` or `abandoned`.
    pub status: String,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    /// The delivery's creation, in milliseconds: its order in its channel.
    pub created_ms: i64,
    pub last_error: Option<String>,
    pub payload: Value,
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

    /// Stores a delivery; one with the same `delivery_id` already stored is left as it is
    /// (queuing is idempotent). Answers whether it was new.
    pub async fn outbox_insert(&self, record: &OutboxRecord) -> Result<bool, PocketBaseError> {
        let path = format!("api/collections/{OUTBOX}/records");
        match self
            .call_record("outbox_insert", Method::POST, &path, &[], Some(&outbox_body(record)))
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if is_duplicate(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// The pending deliveries of `channel` due at `until` (`None`: due or not), oldest first.
    pub async fn outbox_pending(
        &self,
        channel: &str,
        until: Option<Timestamp>,
        limit: u32,
    ) -> Result<Vec<OutboxRecord>, PocketBaseError> {
        let mut filter = format!("channel = {} && status = 'pending'", quote(channel));
        if let Some(until) = until {
            filter.push_str(&format!(
                " && next_attempt_at <= {}",
                quote(&format_pocketbase_date(until))
            ));
        }
        let options = ListOptions {
            page: 1,
            per_page: limit.clamp(1, MAX_PER_PAGE),
            sort: Some("created_ms,delivery_id".to_owned()),
            expand_tenant: false,
            skip_total: true,
        };
        let (items, _) =
            self.list_records("outbox_pending", OUTBOX, Some(filter), &options).await?;
        items.iter().map(|record| outbox_from_record("outbox_pending", record)).collect()
    }

    /// Every delivery not yet delivered nor abandoned, on any channel, oldest first.
    pub async fn outbox_undelivered(
        &self,
        limit: u32,
    ) -> Result<Vec<OutboxRecord>, PocketBaseError> {
        let options = ListOptions {
            page: 1,
            per_page: limit.clamp(1, MAX_PER_PAGE),
            sort: Some("created_ms,delivery_id".to_owned()),
            expand_tenant: false,
            skip_total: true,
        };
        let filter = Some("status = 'pending'".to_owned());
        let (items, _) = self.list_records("outbox_undelivered", OUTBOX, filter, &options).await?;
        items.iter().map(|record| outbox_from_record("outbox_undelivered", record)).collect()
    }

    /// One stored delivery by its id.
    pub async fn outbox_view(
        &self,
        delivery_id: &str,
    ) -> Result<Option<OutboxRecord>, PocketBaseError> {
        let filter = format!("delivery_id = {}", quote(delivery_id));
        let options = ListOptions { skip_total: true, ..ListOptions::default() };
        let (items, _) = self.list_records("outbox_view", OUTBOX, Some(filter), &options).await?;
        items.first().map(|record| outbox_from_record("outbox_view", record)).transpose()
    }

    /// Replaces a stored delivery's state (status, attempts, next attempt, error).
    pub async fn outbox_update(&self, record: &OutboxRecord) -> Result<(), PocketBaseError> {
        let filter = format!("delivery_id = {}", quote(&record.delivery_id));
        let options = ListOptions { skip_total: true, ..ListOptions::default() };
        let (items, _) = self.list_records("outbox_update", OUTBOX, Some(filter), &options).await?;
        let Some(id) = items.first().and_then(|item| item.get("id")).and_then(Value::as_str) else {
            return Err(PocketBaseError::new(
                "outbox_update",
                crate::PocketBaseErrorKind::NotFound,
                format!("no delivery `{}` in the outbox", record.delivery_id),
            ));
        };
        let path = format!("api/collections/{OUTBOX}/records/{}", path_segment(id)?);
        self.call_record("outbox_update", Method::PATCH, &path, &[], Some(&outbox_body(record)))
            .await?;
        Ok(())
    }
}

impl PocketBaseClient {
    /// Stores a host event; one already stored (same `event_id`) is left as it is. Answers
    /// whether it was new.
    pub async fn host_event_insert(&self, event: &NewHostEvent) -> Result<bool, PocketBaseError> {
        let body = json!({
            "event_id": event.event_id,
            "server": event.server,
            "container_name": clip(&event.container_name, 300),
            "tenant": event.tenant,
            "stack": event.stack,
            "kind": event.kind,
            "exit_code": event.exit_code,
            "healthy": event.healthy.unwrap_or(false),
            "at_ns": event.at_ns,
            "seen": false,
        });
        let path = format!("api/collections/{HOST_EVENTS}/records");
        match self.call_record("host_event_insert", Method::POST, &path, &[], Some(&body)).await {
            Ok(_) => Ok(true),
            Err(error) if is_duplicate(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Events no monitor pass has folded in yet, oldest first.
    pub async fn host_events_unseen(&self) -> Result<Vec<HostEventRecord>, PocketBaseError> {
        let options = ListOptions {
            page: 1,
            per_page: MAX_PER_PAGE,
            sort: Some("at_ns,@rowid".to_owned()),
            expand_tenant: false,
            skip_total: true,
        };
        let filter = Some("seen = false".to_owned());
        let (items, _) =
            self.list_records("host_events_unseen", HOST_EVENTS, filter, &options).await?;
        items.iter().map(|record| host_event_from_record("host_events_unseen", record)).collect()
    }

    /// When the latest event of `kind` for the stack happened (Docker's `timeNano`), seen or not.
    pub async fn host_event_latest(
        &self,
        tenant: &str,
        stack: &str,
        kind: &str,
    ) -> Result<Option<i64>, PocketBaseError> {
        let filter = format!(
            "tenant = {} && stack = {} && kind = {}",
            quote(tenant),
            quote(stack),
            quote(kind)
        );
        self.host_event_first("host_event_latest", filter, "-at_ns").await
    }

    /// Whether the OOM killer hit `container` between `from_ns` and `to_ns` (Docker's times).
    pub async fn host_oom_between(
        &self,
        container: &str,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<bool, PocketBaseError> {
        let filter = format!(
            "kind = 'oom' && container_name = {} && at_ns >= {from_ns} && at_ns <= {to_ns}",
            quote(container)
        );
        Ok(self.host_event_first("host_oom_between", filter, "at_ns").await?.is_some())
    }

    /// How many times the stack's containers died with an error (any exit code but 0 and
    /// 143, a clean stop) from `from_ns` on: the restart-loop count.
    pub async fn host_crashes_since(
        &self,
        tenant: &str,
        stack: &str,
        from_ns: i64,
    ) -> Result<u64, PocketBaseError> {
        let filter = format!(
            "kind = 'died' && tenant = {} && stack = {} && at_ns >= {from_ns} && exit_code != 0 && exit_code != 143",
            quote(tenant),
            quote(stack)
        );
        let options = ListOptions {
            page: 1,
            per_page: 1,
            sort: None,
            expand_tenant: false,
            skip_total: false,
        };
        let (_, page) =
            self.list_records("host_crashes_since", HOST_EVENTS, Some(filter), &options).await?;
        Ok(page.total_items.unwrap_or(0))
    }

    async fn host_event_first(
        &self,
        operation: &'static str,
        filter: String,
        sort: &str,
    ) -> Result<Option<i64>, PocketBaseError> {
        let options = ListOptions {
            page: 1,
            per_page: 1,
            sort: Some(sort.to_owned()),
            expand_tenant: false,
            skip_total: true,
        };
        let (items, _) = self.list_records(operation, HOST_EVENTS, Some(filter), &options).await?;
        Ok(items.first().and_then(|item| item.get("at_ns")).and_then(Value::as_i64))
    }

    /// Marks an event folded in.
    pub async fn host_event_seen(&self, id: &str) -> Result<(), PocketBaseError> {
        let path = format!("api/collections/{HOST_EVENTS}/records/{}", path_segment(id)?);
        let body = json!({ "seen": true });
        self.call_record("host_event_seen", Method::PATCH, &path, &[], Some(&body)).await?;
        Ok(())
    }
}

fn host_event_from_record(
    operation: &'static str,
    record: &Value,
) -> Result<HostEventRecord, PocketBaseError> {
    let fields = Fields::new(operation, HOST_EVENTS, record)?;
    let kind = fields.text("kind")?;
    Ok(HostEventRecord {
        id: fields.text("id")?,
        event_id: fields.text("event_id")?,
        server: fields.text("server")?,
        container_name: fields.text("container_name")?,
        tenant: fields.text("tenant")?,
        stack: fields.text("stack")?,
        exit_code: (kind == "died").then(|| fields.json("exit_code").as_i64()).flatten(),
        healthy: (kind == "health").then(|| fields.json("healthy").as_bool()).flatten(),
        kind,
        at_ns: fields.json("at_ns").as_i64().unwrap_or(0),
    })
}

fn is_duplicate(error: &PocketBaseError) -> bool {
    matches!(error.kind, crate::PocketBaseErrorKind::NotUnique { .. })
        || error.field_errors.values().any(|field| field.code == "validation_not_unique")
}

fn outbox_body(record: &OutboxRecord) -> Value {
    json!({
        "delivery_id": record.delivery_id,
        "channel": record.channel,
        "status": record.status,
        "attempts": record.attempts,
        "next_attempt_at": format_pocketbase_date(record.next_attempt_at),
        "created_ms": record.created_ms,
        "last_error": record.last_error.as_deref().map(|error| clip(error, 2000)).unwrap_or_default(),
        "payload": record.payload,
    })
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
) -> Result<OutboxRecord, PocketBaseError> {
    let fields = Fields::new(operation, OUTBOX, record)?;
    let number = |field: &str| fields.json(field).as_i64().unwrap_or(0);
    Ok(OutboxRecord {
        delivery_id: fields.text("delivery_id")?,
        channel: fields.text("channel")?,
        status: fields.text("status")?,
        attempts: u32::try_from(number("attempts")).unwrap_or(0),
        next_attempt_at: fields.required_date("next_attempt_at")?,
        created_ms: number("created_ms"),
        last_error: fields.optional_text("last_error")?,
        payload: fields.json("payload"),
    })
}

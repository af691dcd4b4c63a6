//! The one message every channel renders: [`AlertMessage`], built from a
//! [`cfa_core::incidents::GroupedMessage`]. It is also the webhook's JSON body and the payload
//! an outbox stores (see the crate docs for the wire format).

use std::time::{Duration, SystemTime};

use cfa_core::incidents::{GroupedMessage, IncidentSubject, NotificationKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `version` of the wire format this crate writes.
pub const WIRE_VERSION: u32 = 1;

/// One grouped message: a single incident, or a storm of them, for every channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertMessage {
    /// [`WIRE_VERSION`].
    pub version: u32,
    /// Derived from the content (kind, notification, every incident's id and time): the same
    /// grouped message always gets the same id, so enqueuing it twice sends it once, and a
    /// receiver can drop a redelivery it already has (delivery is at least once).
    pub message_id: String,
    /// The incident kind, `cfa_core::incidents::IncidentKind::as_str` (`oom_killed`).
    pub kind: String,
    /// `firing` (opened, reminder) or `resolved`.
    pub status: AlertStatus,
    /// `opened`, `reminder` or `resolved`.
    pub notification: NotificationType,
    /// Why it resolved (`recovered`, `now_flapping`, `subject_removed`); `null` unless resolved.
    pub resolution: Option<String>,
    /// One line: `opened: OOM kill on stack acme/bot`, `opened: unhealthy on 500 stacks`.
    pub title: String,
    /// The title, then one line per listed incident and `and N more` (what Telegram and
    /// e-mail show).
    pub text: String,
    /// How many incidents the message is about.
    pub count: usize,
    /// The incidents of the message, sorted by subject key: all of them up to
    /// [`MAX_INCIDENTS`], the first [`MAX_INCIDENTS`] beyond (a storm of 10,000 would be a
    /// 4 MB body); `omitted` says how many more there are.
    pub incidents: Vec<IncidentEntry>,
    /// Incidents counted in `count` but not listed in `incidents`.
    #[serde(default)]
    pub omitted: usize,
}

/// At most this many incidents are listed in one message's `incidents` (about 400 KB).
pub const MAX_INCIDENTS: usize = 1000;

/// One incident in a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentEntry {
    /// The incident's key (`cfa_core::incidents::incident_key`), stable from its open to its
    /// resolve: `stack:acme/bot#<record id>/oom_killed`.
    pub id: String,
    /// The kind it is reported as (`flapping` for a flapping stream).
    pub kind: String,
    /// For a flapping incident, the kind that flaps.
    pub flapping_of: Option<String>,
    pub status: AlertStatus,
    /// `stack`, `server`, `service` or `platform`.
    pub subject_type: String,
    /// The subject's key (`stack:acme/bot#<record id>`, `server:<uuid>`, `platform`).
    pub subject: String,
    /// The tenant's slug, for a stack.
    pub tenant: Option<String>,
    /// The stack's name, for a stack.
    pub stack: Option<String>,
    /// The stack's PocketBase record id, for a stack.
    pub record_id: Option<String>,
    /// The Coolify server's or service's uuid, for a server or a service.
    pub uuid: Option<String>,
    /// When the incident opened, RFC 3339 UTC with milliseconds.
    pub opened_at: String,
    /// When this notification became due (the check's time), same format.
    pub at: String,
    /// What was seen ("exit code 137", "coolify reports exited").
    pub detail: Option<String>,
}

/// `firing` or `resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

/// `opened`, `reminder` or `resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationType {
    Opened,
    Reminder,
    Resolved,
}

impl AlertMessage {
    /// The message for a grouped message of `cfa-core`.
    pub fn from_grouped(grouped: &GroupedMessage) -> AlertMessage {
        let status = match grouped.notification_kind {
            NotificationKind::Opened | NotificationKind::Reminder => AlertStatus::Firing,
            NotificationKind::Resolved(_) => AlertStatus::Resolved,
        };
        let (notification, resolution) = match grouped.notification_kind {
            NotificationKind::Opened => (NotificationType::Opened, None),
            NotificationKind::Reminder => (NotificationType::Reminder, None),
            NotificationKind::Resolved(resolution) => {
                (NotificationType::Resolved, Some(resolution.as_str().to_owned()))
            }
        };
        let incidents: Vec<IncidentEntry> = grouped
            .notifications
            .iter()
            .map(|(subject, notification)| {
                let (tenant, stack, record_id, uuid) = match subject {
                    IncidentSubject::Stack { tenant_slug, stack_name, record_id } => (
                        Some(tenant_slug.clone()),
                        Some(stack_name.clone()),
                        Some(record_id.clone()),
                        None,
                    ),
                    IncidentSubject::Server { uuid } | IncidentSubject::CoolifyService { uuid } => {
                        (None, None, None, Some(uuid.clone()))
                    }
                    IncidentSubject::Platform => (None, None, None, None),
                };
                IncidentEntry {
                    id: notification.incident_key(subject),
                    kind: notification.incident_kind.as_str().to_owned(),
                    flapping_of: notification.flapping_of.map(|kind| kind.as_str().to_owned()),
                    status,
                    subject_type: subject.noun().to_owned(),
                    subject: subject.key(),
                    tenant,
                    stack,
                    record_id,
                    uuid,
                    opened_at: format_time(notification.opened_at),
                    at: format_time(notification.at),
                    detail: notification.detail.clone(),
                }
            })
            .collect();
        let kind = grouped.incident_kind.as_str().to_owned();
        let message_id = message_id(&kind, notification, resolution.as_deref(), &incidents);
        let count = incidents.len();
        let mut incidents = incidents;
        incidents.truncate(MAX_INCIDENTS);
        AlertMessage {
            version: WIRE_VERSION,
            message_id,
            kind,
            status,
            notification,
            resolution,
            title: grouped.title(),
            text: grouped.text(),
            count,
            omitted: count - incidents.len(),
            incidents,
        }
    }
}

impl NotificationType {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationType::Opened => "opened",
            NotificationType::Reminder => "reminder",
            NotificationType::Resolved => "resolved",
        }
    }
}

/// 32 hex digits of SHA-256 over the fields that make a message what it is.
fn message_id(
    kind: &str,
    notification: NotificationType,
    resolution: Option<&str>,
    incidents: &[IncidentEntry],
) -> String {
    let mut hasher = Sha256::new();
    for part in [kind, notification.as_str(), resolution.unwrap_or("")] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    for incident in incidents {
        for part in [&incident.id, &incident.at] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
    }
    hex::encode(&hasher.finalize()[..16])
}

/// RFC 3339 in UTC with milliseconds: `2027-01-15T08:00:00.000Z`.
pub(crate) fn format_time(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// `time` cut to whole milliseconds, so it survives a round trip through [`format_time`].
pub(crate) fn to_millis(time: SystemTime) -> SystemTime {
    let since_epoch = time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    SystemTime::UNIX_EPOCH + Duration::from_millis(since_epoch.as_millis() as u64)
}

/// Serde for `SystemTime` as [`format_time`]'s text (PocketBase's dates parse the same way:
/// a space instead of the `T` is accepted).
pub(crate) mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        time: &SystemTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_time(*time))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_rfc3339_weak(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cfa_core::incidents::{IncidentKind, Notification, Resolution, group_notifications};

    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
    }

    fn oom(tenant: &str, notification_kind: NotificationKind) -> (IncidentSubject, Notification) {
        (
            IncidentSubject::Stack {
                tenant_slug: tenant.to_owned(),
                stack_name: "bot".to_owned(),
                record_id: format!("rec{tenant}"),
            },
            Notification {
                incident_kind: IncidentKind::OomKilled,
                flapping_of: None,
                notification_kind,
                opened_at: at(0),
                at: at(90),
                detail: Some("exit code 137".to_owned()),
            },
        )
    }

    /// A storm of 10,000 lists the first thousand and counts the rest, so the body stays
    /// under half a megabyte; its id still covers every incident.
    #[test]
    fn a_storm_lists_the_first_thousand_incidents_and_counts_the_rest() {
        let storm: Vec<_> = (0..10_000)
            .map(|index| oom(&format!("t{index:05}"), NotificationKind::Opened))
            .collect();
        let mut one_less = storm.clone();
        one_less.pop();
        let grouped = group_notifications(storm, 20);
        let message = AlertMessage::from_grouped(&grouped[0]);
        assert_eq!((message.count, message.incidents.len(), message.omitted), (10_000, 1000, 9000));
        assert!(serde_json::to_vec(&message).unwrap().len() < 512 * 1024);
        let other = AlertMessage::from_grouped(&group_notifications(one_less, 20)[0]);
        assert_ne!(message.message_id, other.message_id, "the id covers the unlisted too");
    }

    #[test]
    fn a_single_open_has_the_incident_its_subject_and_times() {
        let grouped = group_notifications(vec![oom("acme", NotificationKind::Opened)], 20);
        let message = AlertMessage::from_grouped(&grouped[0]);
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "version": 1,
                "message_id": message.message_id,
                "kind": "oom_killed",
                "status": "firing",
                "notification": "opened",
                "resolution": null,
                "title": "opened: OOM kill on stack acme/bot",
                "text": "opened: OOM kill on stack acme/bot\nexit code 137",
                "count": 1,
                "incidents": [{
                    "id": "stack:acme/bot#recacme/oom_killed",
                    "kind": "oom_killed",
                    "flapping_of": null,
                    "status": "firing",
                    "subject_type": "stack",
                    "subject": "stack:acme/bot#recacme",
                    "tenant": "acme",
                    "stack": "bot",
                    "record_id": "recacme",
                    "uuid": null,
                    "opened_at": "2027-01-15T08:00:00.000Z",
                    "at": "2027-01-15T08:01:30.000Z",
                    "detail": "exit code 137",
                }],
                "omitted": 0,
            })
        );
        assert_eq!(message.message_id.len(), 32);
        let back: AlertMessage = serde_json::from_value(json).unwrap();
        assert_eq!(back, message);
    }

    #[test]
    fn message_ids_are_stable_and_tell_messages_apart() {
        let open = group_notifications(vec![oom("acme", NotificationKind::Opened)], 20);
        let again = group_notifications(vec![oom("acme", NotificationKind::Opened)], 20);
        let resolved = NotificationKind::Resolved(Resolution::Recovered);
        let resolve = group_notifications(vec![oom("acme", resolved)], 20);
        let other = group_notifications(vec![oom("other", NotificationKind::Opened)], 20);
        let id = |grouped: &[GroupedMessage]| AlertMessage::from_grouped(&grouped[0]).message_id;
        assert_eq!(id(&open), id(&again));
        assert_ne!(id(&open), id(&resolve));
        assert_ne!(id(&open), id(&other));
        let message = AlertMessage::from_grouped(&resolve[0]);
        assert_eq!(
            (message.status, message.notification, message.resolution.as_deref()),
            (AlertStatus::Resolved, NotificationType::Resolved, Some("recovered"))
        );
    }

    #[test]
    fn a_storm_lists_every_incident_and_texts_only_the_first() {
        let pass = (0..500).map(|index| oom(&format!("t{index:03}"), NotificationKind::Opened));
        let grouped = group_notifications(pass.collect(), 3);
        assert_eq!(grouped.len(), 1);
        let message = AlertMessage::from_grouped(&grouped[0]);
        assert_eq!(message.count, 500);
        assert_eq!(message.incidents.len(), 500);
        assert_eq!(message.incidents[499].tenant.as_deref(), Some("t499"));
        assert_eq!(message.text.lines().count(), 5, "{}", message.text);
        assert!(message.text.ends_with("and 497 more"), "{}", message.text);
    }

    #[test]
    fn times_round_trip_at_millisecond_precision() {
        let time = to_millis(SystemTime::now());
        assert_eq!(humantime::parse_rfc3339_weak(&format_time(time)).unwrap(), time);
        let pocketbase = humantime::parse_rfc3339_weak("2027-01-15 08:00:00.250Z").unwrap();
        assert_eq!(pocketbase, at(0) + Duration::from_millis(250));
    }
}

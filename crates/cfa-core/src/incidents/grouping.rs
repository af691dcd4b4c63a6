//! Storm grouping: the notifications of one pass as one message per kind and notification kind,
//! so 500 stacks going unhealthy at once are one message per channel that counts and lists
//! them, not 500.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::{IncidentKind, IncidentSubject, Notification, NotificationKind, Resolution};

/// One message for a channel: every notification of one pass with the same incident kind and
/// notification kind. A single notification stays a message of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupedMessage {
    pub incident_kind: IncidentKind,
    pub notification_kind: NotificationKind,
    /// All of them, sorted by [`IncidentSubject::key`] (a webhook may carry every one; text
    /// channels list the first `max_listed`).
    pub notifications: Vec<(IncidentSubject, Notification)>,
    /// How many subjects [`GroupedMessage::text`] names before "and N more".
    pub max_listed: usize,
}

impl GroupedMessage {
    /// How many incidents it is about.
    pub fn count(&self) -> usize {
        self.notifications.len()
    }

    /// Whether it is about one incident.
    pub fn is_single(&self) -> bool {
        self.notifications.len() == 1
    }

    /// The ones the text names.
    pub fn listed(&self) -> &[(IncidentSubject, Notification)] {
        &self.notifications[..self.notifications.len().min(self.max_listed)]
    }

    /// The ones the text only counts.
    pub fn unlisted_count(&self) -> usize {
        self.notifications.len() - self.listed().len()
    }

    /// One line: `opened: unhealthy on stack acme/bot`, `opened: unhealthy on 500 stacks`.
    pub fn title(&self) -> String {
        let what = match self.notification_kind {
            NotificationKind::Opened => "opened",
            NotificationKind::Reminder => "still open",
            NotificationKind::Resolved(_) => "resolved",
        };
        let on = match self.notifications.as_slice() {
            [(subject, notification)] => {
                format!("{}{}", subject, single_suffix(self.notification_kind, notification))
            }
            _ => format!("{} {}", self.count(), self.plural_noun()),
        };
        let because = match self.notification_kind {
            NotificationKind::Resolved(Resolution::NowFlapping) => " (now flapping)",
            NotificationKind::Resolved(Resolution::SubjectRemoved) => " (removed)",
            _ => "",
        };
        format!("{what}: {} on {on}{because}", self.incident_kind.title())
    }

    /// The title, then one line per listed incident (just the detail for a single one), then
    /// `and N more`.
    pub fn text(&self) -> String {
        let mut text = self.title();
        if let [(_, notification)] = self.notifications.as_slice() {
            if let Some(flapping_of) = notification.flapping_of {
                let _ = write!(text, "\nflapping: {}", flapping_of.title());
            }
            if let Some(detail) = &notification.detail {
                let _ = write!(text, "\n{detail}");
            }
            return text;
        }
        for (subject, notification) in self.listed() {
            let _ = write!(text, "\n- {}", subject.label());
            if let Some(flapping_of) = notification.flapping_of {
                let _ = write!(text, " ({})", flapping_of.title());
            }
            if let Some(detail) = &notification.detail {
                let _ = write!(text, ": {detail}");
            }
        }
        if self.unlisted_count() > 0 {
            let _ = write!(text, "\nand {} more", self.unlisted_count());
        }
        text
    }

    fn plural_noun(&self) -> &'static str {
        let first = self.notifications.first().map(|(subject, _)| subject.noun());
        let same = self.notifications.iter().all(|(subject, _)| Some(subject.noun()) == first);
        match (same, first) {
            (true, Some("stack")) => "stacks",
            (true, Some("server")) => "servers",
            (true, Some("service")) => "services",
            _ => "subjects",
        }
    }
}

/// ` after 12m` for a resolve, ` (open 4h 0m)` for a reminder.
fn single_suffix(notification_kind: NotificationKind, notification: &Notification) -> String {
    let open_for = notification.at.duration_since(notification.opened_at).unwrap_or_default();
    match notification_kind {
        NotificationKind::Opened => String::new(),
        NotificationKind::Reminder => format!(" (open {})", short_duration(open_for)),
        NotificationKind::Resolved(_) => format!(" after {}", short_duration(open_for)),
    }
}

/// `45s`, `12m`, `4h 5m`, `2d 3h`.
pub fn short_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86_400 => format!("{}h {}m", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{}d {}h", seconds / 86_400, seconds % 86_400 / 3600),
    }
}

/// Groups one pass's notifications by incident kind and notification kind (a resolve's reason
/// included), each group sorted by subject key; groups come in kind order.
pub fn group_notifications(
    notifications: Vec<(IncidentSubject, Notification)>,
    max_listed: usize,
) -> Vec<GroupedMessage> {
    let mut groups: BTreeMap<(IncidentKind, NotificationKind), Vec<_>> = BTreeMap::new();
    for (subject, notification) in notifications {
        groups
            .entry((notification.incident_kind, notification.notification_kind))
            .or_default()
            .push((subject, notification));
    }
    groups
        .into_iter()
        .map(|((incident_kind, notification_kind), mut notifications)| {
            notifications.sort_by_cached_key(|(subject, notification)| {
                (subject.key(), notification.flapping_of)
            });
            GroupedMessage { incident_kind, notification_kind, notifications, max_listed }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
    }

    fn stack(tenant: &str, name: &str) -> IncidentSubject {
        IncidentSubject::Stack {
            tenant_slug: tenant.to_owned(),
            stack_name: name.to_owned(),
            record_id: format!("rec-{tenant}-{name}"),
        }
    }

    fn notification(kind: IncidentKind, notification_kind: NotificationKind) -> Notification {
        Notification {
            incident_kind: kind,
            flapping_of: None,
            notification_kind,
            opened_at: at(0),
            at: at(750),
            detail: Some("coolify reports exited".to_owned()),
        }
    }

    #[test]
    fn five_hundred_stacks_failing_in_one_pass_make_one_message_that_counts_and_lists_them() {
        // Handed over in reverse order: the message lists by key whatever the order.
        let mut pass: Vec<_> = (0..500)
            .rev()
            .map(|index| {
                let subject = stack(&format!("tenant-{index:03}"), "bot");
                (subject, notification(IncidentKind::Unhealthy, NotificationKind::Opened))
            })
            .collect();
        pass.push((
            IncidentSubject::Server { uuid: "srv-1".into() },
            notification(IncidentKind::CapacityLow, NotificationKind::Opened),
        ));
        let messages = group_notifications(pass, 3);
        assert_eq!(messages.len(), 2);
        let storm = &messages[0];
        assert_eq!(storm.incident_kind, IncidentKind::Unhealthy);
        assert_eq!(storm.count(), 500);
        assert!(!storm.is_single());
        assert_eq!(storm.unlisted_count(), 497);
        assert_eq!(
            storm.text(),
            "opened: unhealthy on 500 stacks\n\
             - tenant-000/bot: coolify reports exited\n\
             - tenant-001/bot: coolify reports exited\n\
             - tenant-002/bot: coolify reports exited\n\
             and 497 more"
        );
        let single = &messages[1];
        assert!(single.is_single());
        assert_eq!(single.text(), "opened: capacity low on server srv-1\ncoolify reports exited");
    }

    #[test]
    fn opens_reminders_and_resolves_are_separate_messages() {
        let resolved = NotificationKind::Resolved(Resolution::Recovered);
        let pass = vec![
            (stack("acme", "a"), notification(IncidentKind::OomKilled, NotificationKind::Opened)),
            (stack("acme", "b"), notification(IncidentKind::OomKilled, resolved)),
            (stack("acme", "c"), notification(IncidentKind::OomKilled, resolved)),
            (stack("acme", "d"), notification(IncidentKind::OomKilled, NotificationKind::Reminder)),
        ];
        let titles: Vec<String> =
            group_notifications(pass, 10).iter().map(GroupedMessage::title).collect();
        assert_eq!(
            titles,
            [
                "opened: OOM kill on stack acme/a",
                "still open: OOM kill on stack acme/d (open 12m)",
                "resolved: OOM kill on 2 stacks",
            ]
        );
    }

    #[test]
    fn flapping_messages_name_the_kind_that_flaps() {
        let flapping = Notification {
            incident_kind: IncidentKind::Flapping,
            flapping_of: Some(IncidentKind::Unhealthy),
            detail: None,
            ..notification(IncidentKind::Flapping, NotificationKind::Opened)
        };
        let single = group_notifications(vec![(stack("acme", "a"), flapping.clone())], 5);
        assert_eq!(single[0].text(), "opened: flapping on stack acme/a\nflapping: unhealthy");
        let two =
            vec![(stack("acme", "b"), flapping.clone()), (IncidentSubject::Platform, flapping)];
        assert_eq!(
            group_notifications(two, 5)[0].text(),
            "opened: flapping on 2 subjects\n- platform (unhealthy)\n- acme/b (unhealthy)"
        );
    }

    #[test]
    fn durations_read_short() {
        let text = |seconds| short_duration(Duration::from_secs(seconds));
        assert_eq!(
            [text(45), text(720), text(14_700), text(183_600)],
            ["45s", "12m", "4h 5m", "2d 3h"]
        );
    }
}

//! One stream's state machine: a subject and a kind, folded check by check into a track, with
//! the notifications each check makes due (see the module notes of [`super`]).

use std::time::{Duration, SystemTime};

use super::policy::{AlertPolicies, AlertPolicy, FlappingPolicy};
use super::{IncidentError, IncidentKind, IncidentSubject, incident_key};

/// What one check found about a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The condition holds now (for an event kind: one happened since the last check).
    Holds,
    /// It does not (for an event kind: the subject is seen recovered).
    Clear,
    /// It could not be looked at (Coolify unreachable, no event and no recovery yet). Neither
    /// fires nor resolves, and is not counted as a check.
    NoData,
}

/// One check's report for one subject and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub condition: Condition,
    /// What was seen, for people ("coolify reports running:unhealthy", "exit code 137").
    pub detail: Option<String>,
}

impl Observation {
    /// The condition holds, and why.
    pub fn holds(detail: impl Into<String>) -> Observation {
        Observation { condition: Condition::Holds, detail: Some(detail.into()) }
    }

    /// The condition is clear.
    pub fn clear() -> Observation {
        Observation { condition: Condition::Clear, detail: None }
    }

    /// Nothing could be seen.
    pub fn no_data() -> Observation {
        Observation { condition: Condition::NoData, detail: None }
    }
}

/// The current run of checks in which the condition held without a clear one in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holding {
    /// The first check of the run.
    pub since: SystemTime,
    /// Checks in the run, counted up to the policy's `consecutive_failures` (so a steady
    /// stream does not change the track).
    pub checks: u32,
}

/// An open incident: a fired one, or a flapping one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenIncident {
    pub opened_at: SystemTime,
    /// The last message sent about it (open or reminder); `None` while it was never announced
    /// (it opened during a silence). Its resolve is sent only when it was announced.
    pub last_notified_at: Option<SystemTime>,
    /// An operator acknowledged it: no reminders before this time.
    pub acknowledged_until: Option<SystemTime>,
    /// What was seen when it opened.
    pub detail: Option<String>,
}

impl OpenIncident {
    /// Whether its open was sent.
    pub fn announced(&self) -> bool {
        self.last_notified_at.is_some()
    }

    /// Whether an acknowledgement holds at `now`.
    pub fn is_acknowledged(&self, now: SystemTime) -> bool {
        self.acknowledged_until.is_some_and(|until| now < until)
    }
}

/// Where a stream stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackState {
    /// No incident open (the condition may be pending: see [`IncidentTrack::holding`]).
    Ok,
    /// The kind's incident is open.
    Firing(OpenIncident),
    /// The stream flaps: one `flapping` incident is open instead of the kind's.
    Flapping(OpenIncident),
}

/// A track's state in a word, for `cfa alerts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TrackStatus {
    Ok,
    /// The condition holds but has not held long enough to fire.
    Pending,
    Firing,
    Flapping,
}

impl TrackStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TrackStatus::Ok => "ok",
            TrackStatus::Pending => "pending",
            TrackStatus::Firing => "firing",
            TrackStatus::Flapping => "flapping",
        }
    }
}

/// Everything remembered about one subject and kind between checks. Plain data: the engine
/// stores it (see the module notes on persisting) and passes it back to [`step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentTrack {
    pub kind: IncidentKind,
    pub state: TrackState,
    /// The current run of checks where the condition held; `None` after a clear check.
    pub holding: Option<Holding>,
    /// The latest checks, one bit each (bit 0 the latest, 1 where the condition held). Checks
    /// before the first count as clear.
    pub recent_checks: u32,
    /// Nothing but resolves is sent before this time.
    pub silenced_until: Option<SystemTime>,
}

impl IncidentTrack {
    /// A stream never seen failing.
    pub fn new(kind: IncidentKind) -> IncidentTrack {
        IncidentTrack {
            kind,
            state: TrackState::Ok,
            holding: None,
            recent_checks: 0,
            silenced_until: None,
        }
    }

    /// Where it stands, in a word.
    pub fn status(&self) -> TrackStatus {
        match (&self.state, self.holding) {
            (TrackState::Ok, None) => TrackStatus::Ok,
            (TrackState::Ok, Some(_)) => TrackStatus::Pending,
            (TrackState::Firing(_), _) => TrackStatus::Firing,
            (TrackState::Flapping(_), _) => TrackStatus::Flapping,
        }
    }

    /// The open incident, fired or flapping.
    pub fn open_incident(&self) -> Option<&OpenIncident> {
        match &self.state {
            TrackState::Ok => None,
            TrackState::Firing(open) | TrackState::Flapping(open) => Some(open),
        }
    }

    /// Whether a silence holds at `now`.
    pub fn is_silenced(&self, now: SystemTime) -> bool {
        self.silenced_until.is_some_and(|until| now < until)
    }

    /// The key of its open incident (see [`incident_key`]), if one is open.
    pub fn open_incident_key(&self, subject: &IncidentSubject) -> Option<String> {
        match &self.state {
            TrackState::Ok => None,
            TrackState::Firing(_) => Some(incident_key(subject, self.kind, None)),
            TrackState::Flapping(_) => {
                Some(incident_key(subject, IncidentKind::Flapping, Some(self.kind)))
            }
        }
    }
}

/// Why an incident resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resolution {
    /// The condition cleared (for a flapping incident: the stream calmed down).
    Recovered,
    /// The stream started flapping: a `flapping` incident takes over.
    NowFlapping,
    /// The stack, server or service is gone.
    SubjectRemoved,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Recovered => "recovered",
            Resolution::NowFlapping => "now_flapping",
            Resolution::SubjectRemoved => "subject_removed",
        }
    }
}

/// Which message is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NotificationKind {
    Opened,
    Reminder,
    Resolved(Resolution),
}

impl NotificationKind {
    /// `opened`, `reminder` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Opened => "opened",
            NotificationKind::Reminder => "reminder",
            NotificationKind::Resolved(_) => "resolved",
        }
    }

    /// The webhook's `status`: `firing` or `resolved`.
    pub fn status(self) -> &'static str {
        match self {
            NotificationKind::Opened | NotificationKind::Reminder => "firing",
            NotificationKind::Resolved(_) => "resolved",
        }
    }
}

/// A message due about one incident. The subject is the caller's: it knows which stream it
/// stepped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The kind the incident is reported as: [`IncidentKind::Flapping`] for a flapping stream.
    pub incident_kind: IncidentKind,
    /// For a flapping incident, the kind that flaps.
    pub flapping_of: Option<IncidentKind>,
    pub notification_kind: NotificationKind,
    pub opened_at: SystemTime,
    /// When it became due (the check's `now`).
    pub at: SystemTime,
    pub detail: Option<String>,
}

impl Notification {
    /// The key of the incident it is about (see [`incident_key`]).
    pub fn incident_key(&self, subject: &IncidentSubject) -> String {
        incident_key(subject, self.incident_kind, self.flapping_of)
    }
}

/// Folds one check into a track: returns the new track and the messages due, in order (at most
/// two: a resolve and an open, when an open incident turns into a flapping one or a flapping
/// stream calms into a steady failure).
///
/// Observations must come in time order. A `NoData` observation only lets time pass: reminders
/// and the announcement of an incident whose silence ended.
pub fn step(
    track: IncidentTrack,
    observation: &Observation,
    policies: &AlertPolicies,
    now: SystemTime,
) -> (IncidentTrack, Vec<Notification>) {
    let mut track = track;
    let mut notifications = Vec::new();
    if track.silenced_until.is_some_and(|until| now >= until) {
        track.silenced_until = None;
    }
    let holds = match observation.condition {
        Condition::Holds => true,
        Condition::Clear => false,
        Condition::NoData => {
            announce_or_remind(&mut track, None, policies, now, &mut notifications);
            return (track, notifications);
        }
    };
    let policy = policies.get(track.kind);
    record_check(&mut track, holds, &policy, now);
    let flapping = policy.flapping.filter(|flapping| flapping.is_flapping(track.recent_checks));
    let detail = observation.detail.clone();
    let kind = track.kind;
    track.state = match std::mem::replace(&mut track.state, TrackState::Ok) {
        TrackState::Ok => {
            open_if_due(&mut track, &policy, flapping, &detail, now, &mut notifications)
        }
        TrackState::Firing(open) if flapping.is_some() => {
            notifications.extend(resolve(
                kind,
                false,
                &open,
                Resolution::NowFlapping,
                &detail,
                now,
            ));
            open_if_due(&mut track, &policy, flapping, &detail, now, &mut notifications)
        }
        TrackState::Firing(open) if holds => TrackState::Firing(open),
        TrackState::Firing(open) => {
            notifications.extend(resolve(kind, false, &open, Resolution::Recovered, &detail, now));
            TrackState::Ok
        }
        TrackState::Flapping(open) => {
            let calm = policy.flapping.is_none_or(|flapping| flapping.is_calm(track.recent_checks));
            if calm {
                notifications.extend(resolve(
                    kind,
                    true,
                    &open,
                    Resolution::Recovered,
                    &detail,
                    now,
                ));
                // The window starts afresh: one more change must not flip it straight back.
                track.recent_checks &= 1;
                open_if_due(&mut track, &policy, None, &detail, now, &mut notifications)
            } else {
                TrackState::Flapping(open)
            }
        }
    };
    let latest_detail = if holds { detail.as_ref() } else { None };
    announce_or_remind(&mut track, latest_detail, policies, now, &mut notifications);
    (track, notifications)
}

/// Acknowledges the open incident: no reminders before `until` (nor, for one opened during a
/// silence, its held-back open); its resolve is still sent when its open was. The
/// acknowledgement ends with the incident.
pub fn acknowledge(
    track: IncidentTrack,
    until: SystemTime,
) -> Result<IncidentTrack, IncidentError> {
    let mut track = track;
    match &mut track.state {
        TrackState::Ok => return Err(IncidentError::NotOpen { kind: track.kind }),
        TrackState::Firing(open) | TrackState::Flapping(open) => {
            open.acknowledged_until = Some(until);
        }
    }
    Ok(track)
}

/// Silences the stream until `until`, open incident or not: no opens and no reminders before
/// then. Resolves of incidents that were announced are still sent; an incident open when the
/// silence ends is announced at the next step.
pub fn silence(track: IncidentTrack, until: SystemTime) -> IncidentTrack {
    IncidentTrack { silenced_until: Some(until), ..track }
}

/// Ends a silence early.
pub fn unsilence(track: IncidentTrack) -> IncidentTrack {
    IncidentTrack { silenced_until: None, ..track }
}

/// The subject is gone (a stack deleted): the resolve its announced incident is owed, if any.
/// The track can be dropped afterwards.
pub fn resolve_removed(track: IncidentTrack, now: SystemTime) -> Option<Notification> {
    match &track.state {
        TrackState::Ok => None,
        TrackState::Firing(open) => {
            resolve(track.kind, false, open, Resolution::SubjectRemoved, &None, now)
        }
        TrackState::Flapping(open) => {
            resolve(track.kind, true, open, Resolution::SubjectRemoved, &None, now)
        }
    }
}

fn record_check(track: &mut IncidentTrack, holds: bool, policy: &AlertPolicy, now: SystemTime) {
    track.recent_checks = (track.recent_checks << 1) | u32::from(holds);
    track.holding = match (holds, track.holding) {
        (false, _) => None,
        (true, None) => Some(Holding { since: now, checks: 1 }),
        (true, Some(holding)) => Some(Holding {
            since: holding.since,
            checks: holding.checks.saturating_add(1).min(policy.consecutive_failures.max(1)),
        }),
    };
}

/// From no open incident: opens a flapping one when the stream flaps, else the kind's own
/// when the condition has held long enough.
fn open_if_due(
    track: &mut IncidentTrack,
    policy: &AlertPolicy,
    flapping: Option<FlappingPolicy>,
    detail: &Option<String>,
    now: SystemTime,
    notifications: &mut Vec<Notification>,
) -> TrackState {
    if let Some(flapping) = flapping {
        let changes = flapping.changes_in_window(track.recent_checks);
        let window = flapping.window_checks.min(FlappingPolicy::MAX_CHECKS);
        let mut summary =
            format!("{}: {changes} changes in the last {window} checks", track.kind.title());
        if let Some(detail) = detail {
            summary.push_str(&format!(" (latest: {detail})"));
        }
        let open = open(track, true, Some(summary), now, notifications);
        return TrackState::Flapping(open);
    }
    let due = track.holding.is_some_and(|holding| {
        holding.checks >= policy.consecutive_failures.max(1)
            && elapsed(holding.since, now) >= policy.pending_for
    });
    if due {
        TrackState::Firing(open(track, false, detail.clone(), now, notifications))
    } else {
        TrackState::Ok
    }
}

fn open(
    track: &IncidentTrack,
    flapping: bool,
    detail: Option<String>,
    now: SystemTime,
    notifications: &mut Vec<Notification>,
) -> OpenIncident {
    let announce = !track.is_silenced(now);
    let open = OpenIncident {
        opened_at: now,
        last_notified_at: announce.then_some(now),
        acknowledged_until: None,
        detail,
    };
    if announce {
        notifications.push(notification(
            track.kind,
            flapping,
            &open,
            NotificationKind::Opened,
            open.detail.clone(),
            now,
        ));
    }
    open
}

/// The resolve of `open`, owed only when its open was sent.
fn resolve(
    kind: IncidentKind,
    flapping: bool,
    open: &OpenIncident,
    resolution: Resolution,
    detail: &Option<String>,
    now: SystemTime,
) -> Option<Notification> {
    open.announced().then(|| {
        notification(
            kind,
            flapping,
            open,
            NotificationKind::Resolved(resolution),
            detail.clone(),
            now,
        )
    })
}

/// Sends the open of an incident never announced, or a reminder, when neither a silence nor an
/// acknowledgement holds it back.
fn announce_or_remind(
    track: &mut IncidentTrack,
    latest_detail: Option<&String>,
    policies: &AlertPolicies,
    now: SystemTime,
    notifications: &mut Vec<Notification>,
) {
    let silenced = track.is_silenced(now);
    let kind = track.kind;
    let (open, flapping, repeat_every) = match &mut track.state {
        TrackState::Ok => return,
        TrackState::Firing(open) => (open, false, policies.get(kind).repeat_every),
        TrackState::Flapping(open) => {
            (open, true, policies.get(IncidentKind::Flapping).repeat_every)
        }
    };
    if silenced || open.is_acknowledged(now) {
        return;
    }
    let notification_kind = match open.last_notified_at {
        None => NotificationKind::Opened,
        Some(last) if !repeat_every.is_zero() && elapsed(last, now) >= repeat_every => {
            NotificationKind::Reminder
        }
        Some(_) => return,
    };
    open.last_notified_at = Some(now);
    let detail = match (flapping, latest_detail) {
        (false, Some(latest)) => Some(latest.clone()),
        _ => open.detail.clone(),
    };
    notifications.push(notification(kind, flapping, open, notification_kind, detail, now));
}

fn notification(
    kind: IncidentKind,
    flapping: bool,
    open: &OpenIncident,
    notification_kind: NotificationKind,
    detail: Option<String>,
    now: SystemTime,
) -> Notification {
    Notification {
        incident_kind: if flapping { IncidentKind::Flapping } else { kind },
        flapping_of: flapping.then_some(kind),
        notification_kind,
        opened_at: open.opened_at,
        at: now,
        detail,
    }
}

/// Time from `since` to `now`; zero if the clock went back.
fn elapsed(since: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(since).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests;

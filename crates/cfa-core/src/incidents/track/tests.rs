//! Tests of the stream state machine: each feeds a script of checks and compares the messages.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::*;
use crate::incidents::IncidentKind as K;

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
}

fn seconds_of(time: SystemTime) -> u64 {
    time.duration_since(at(0)).unwrap().as_secs()
}

/// `H` holds, `.` clear, `?` no data.
fn observation(check: char) -> Observation {
    match check {
        'H' => Observation::holds("coolify reports running:unhealthy"),
        '.' => Observation::clear(),
        '?' => Observation::no_data(),
        other => panic!("unknown check `{other}`"),
    }
}

/// One check every `interval` seconds from 0, one per character of `pattern`.
fn every(interval: u64, pattern: &str) -> Vec<(u64, char)> {
    (0..).step_by(interval as usize).zip(pattern.chars()).collect()
}

/// A message as `"<seconds> <kind> <what>"`, e.g. `"60 flapping:unhealthy opened"`.
fn describe(notification: &Notification) -> String {
    let kind = match notification.flapping_of {
        Some(flapping_of) => format!("flapping:{flapping_of}"),
        None => notification.incident_kind.to_string(),
    };
    let what = match notification.notification_kind {
        NotificationKind::Resolved(resolution) => format!("resolved({})", resolution.as_str()),
        other => other.as_str().to_owned(),
    };
    format!("{} {kind} {what}", seconds_of(notification.at))
}

/// Feeds `checks` to `track`; returns the track and every message described.
fn run_from(
    track: IncidentTrack,
    policies: &AlertPolicies,
    checks: &[(u64, char)],
) -> (IncidentTrack, Vec<String>) {
    let mut track = track;
    let mut log = Vec::new();
    for (seconds, check) in checks {
        let (next, notifications) = step(track, &observation(*check), policies, at(*seconds));
        track = next;
        log.extend(notifications.iter().map(describe));
    }
    (track, log)
}

fn run(kind: IncidentKind, checks: &[(u64, char)]) -> (IncidentTrack, Vec<String>) {
    run_from(IncidentTrack::new(kind), &AlertPolicies::default(), checks)
}

#[test]
fn unhealthy_fires_only_after_three_failed_checks_spanning_the_pending_period() {
    // Every 20 s: three failures span only 40 s; the fourth, at 60 s, fires.
    let (_, log) = run(K::Unhealthy, &every(20, "HHHHH"));
    assert_eq!(log, ["60 unhealthy opened"]);
    // Every 60 s: a minute has passed at the second failure, but three in a row are needed.
    let (_, log) = run(K::Unhealthy, &every(60, "HHH"));
    assert_eq!(log, ["120 unhealthy opened"]);
    // A clear check starts the count again.
    let (track, log) = run(K::Unhealthy, &every(60, "HH.HH"));
    assert_eq!(log, Vec::<String>::new());
    assert_eq!(track.status(), TrackStatus::Pending);
    assert_eq!(track.holding, Some(Holding { since: at(180), checks: 2 }));
}

#[test]
fn an_oom_kill_fires_at_once_and_resolves_when_the_stack_is_seen_healthy_again() {
    let (track, log) = run(K::OomKilled, &every(60, "H??.??"));
    assert_eq!(log, ["0 oom_killed opened", "180 oom_killed resolved(recovered)"]);
    assert_eq!(track.status(), TrackStatus::Ok);
}

#[test]
fn an_incident_opens_once_and_resolves_once() {
    let pattern = format!("{}{}", "H".repeat(30), ".".repeat(30));
    let (_, log) = run(K::Unhealthy, &every(60, &pattern));
    assert_eq!(log, ["120 unhealthy opened", "1800 unhealthy resolved(recovered)"]);
}

#[test]
fn the_opened_message_carries_what_was_seen() {
    let (_, notifications) = step(
        IncidentTrack::new(K::UnexpectedExit),
        &Observation::holds("exit code 1"),
        &AlertPolicies::default(),
        at(5),
    );
    assert_eq!(
        notifications,
        [Notification {
            incident_kind: K::UnexpectedExit,
            flapping_of: None,
            notification_kind: NotificationKind::Opened,
            opened_at: at(5),
            at: at(5),
            detail: Some("exit code 1".to_owned()),
        }]
    );
}

#[test]
fn reminders_come_at_the_interval_and_not_before() {
    // Opened at 120 s; 4 h later is 14,520 s.
    let checks = [(0, 'H'), (60, 'H'), (120, 'H'), (14_519, 'H'), (14_520, 'H'), (14_521, 'H')];
    let (_, log) = run(K::Unhealthy, &checks);
    assert_eq!(log, ["120 unhealthy opened", "14520 unhealthy reminder"]);
    // Nine hours of failures every minute: two reminders.
    let (_, log) = run(K::Unhealthy, &every(60, &"H".repeat(541)));
    assert_eq!(
        log,
        ["120 unhealthy opened", "14520 unhealthy reminder", "28920 unhealthy reminder"]
    );
    // Reminders depend on time only: they go out while nothing can be seen, too.
    let (_, log) = run(K::Unhealthy, &every(60, &format!("HHH{}", "?".repeat(300))));
    assert_eq!(log, ["120 unhealthy opened", "14520 unhealthy reminder"]);
    // A zero interval sends none.
    let mut policies = AlertPolicies::default();
    let policy = AlertPolicy { repeat_every: Duration::ZERO, ..policies.get(K::Unhealthy) };
    policies.set(K::Unhealthy, policy).unwrap();
    let (_, log) =
        run_from(IncidentTrack::new(K::Unhealthy), &policies, &every(60, &"H".repeat(541)));
    assert_eq!(log, ["120 unhealthy opened"]);
}

#[test]
fn an_acknowledgement_holds_back_reminders_until_it_ends_but_not_the_resolve() {
    let policies = AlertPolicies::default();
    let (track, log) = run(K::Unhealthy, &every(60, "HHH"));
    assert_eq!(log, ["120 unhealthy opened"]);
    let track = acknowledge(track, at(20_000)).unwrap();
    let checks = [(14_520, 'H'), (19_999, 'H'), (20_000, 'H'), (20_060, '.')];
    let (track, log) = run_from(track, &policies, &checks);
    assert_eq!(log, ["20000 unhealthy reminder", "20060 unhealthy resolved(recovered)"]);
    // The acknowledgement was for that incident: the next one reminds as usual.
    let checks = [(30_000, 'H'), (30_060, 'H'), (30_120, 'H'), (44_520, 'H')];
    let (_, log) = run_from(track, &policies, &checks);
    assert_eq!(log, ["30120 unhealthy opened", "44520 unhealthy reminder"]);
}

#[test]
fn acknowledging_needs_an_open_incident() {
    let error = acknowledge(IncidentTrack::new(K::Unhealthy), at(10)).unwrap_err();
    assert_eq!(error, IncidentError::NotOpen { kind: K::Unhealthy });
    assert_eq!(error.to_string(), "no unhealthy incident is open to acknowledge");
}

#[test]
fn a_silence_holds_back_the_open_and_an_incident_still_open_when_it_ends_is_announced_then() {
    let policies = AlertPolicies::default();
    let track = silence(IncidentTrack::new(K::Unhealthy), at(1000));
    let (track, log) = run_from(track, &policies, &every(60, "HHH"));
    assert_eq!(log, Vec::<String>::new());
    assert_eq!(track.status(), TrackStatus::Firing);
    assert!(!track.open_incident().unwrap().announced());
    let (track, log) = run_from(track, &policies, &[(999, 'H')]);
    assert_eq!(log, Vec::<String>::new());
    let (track, notifications) = step(track, &observation('?'), &policies, at(1000));
    assert_eq!(notifications.iter().map(describe).collect::<Vec<_>>(), ["1000 unhealthy opened"]);
    assert_eq!(notifications[0].opened_at, at(120), "it opened during the silence");
    assert_eq!(track.silenced_until, None, "an ended silence is forgotten");
}

#[test]
fn an_incident_announced_before_a_silence_still_sends_its_resolve() {
    let policies = AlertPolicies::default();
    let (track, _) = run(K::Unhealthy, &every(60, "HHH"));
    let track = silence(track, at(100_000));
    let (_, log) = run_from(track, &policies, &[(14_520, 'H'), (15_000, '.')]);
    assert_eq!(log, ["15000 unhealthy resolved(recovered)"]);
}

#[test]
fn an_incident_that_opened_and_resolved_inside_a_silence_sends_nothing() {
    let policies = AlertPolicies::default();
    let track = silence(IncidentTrack::new(K::OomKilled), at(1000));
    let (track, log) = run_from(track, &policies, &every(60, "H?."));
    assert_eq!(log, Vec::<String>::new());
    let (track, log) = run_from(track, &policies, &[(2000, '.')]);
    assert_eq!(log, Vec::<String>::new());
    assert_eq!(track.status(), TrackStatus::Ok);
    let track = unsilence(silence(track, at(5000)));
    assert_eq!(track.silenced_until, None);
}

#[test]
fn flapping_collapses_four_changes_in_twenty_checks_into_one_incident_that_resolves_when_calm() {
    // Alternating every 30 s: never three failures in a row, so `unhealthy` alone would never
    // fire; the fourth change opens one flapping incident, and 26 more changes add nothing.
    // Ten agreeing checks in a row end it, and not nine.
    let pattern = format!("H.H.{}H{}", "H.".repeat(13), ".".repeat(10));
    let (track, log) = run(K::Unhealthy, &every(30, &pattern));
    assert_eq!(
        log,
        ["90 flapping:unhealthy opened", "1200 flapping:unhealthy resolved(recovered)"]
    );
    // The window starts afresh: one more failure is an ordinary pending check.
    let (track, log) = run_from(track, &AlertPolicies::default(), &[(1230, 'H')]);
    assert_eq!(log, Vec::<String>::new());
    assert_eq!(track.status(), TrackStatus::Pending);
}

#[test]
fn an_oom_loop_becomes_one_flapping_incident_and_its_open_oom_incident_resolves_as_now_flapping() {
    let (track, log) = run(K::OomKilled, &every(60, "H.H.H.H.H."));
    assert_eq!(
        log,
        [
            "0 oom_killed opened",
            "60 oom_killed resolved(recovered)",
            "120 oom_killed opened",
            "180 oom_killed resolved(now_flapping)",
            "180 flapping:oom_killed opened",
        ]
    );
    assert_eq!(track.status(), TrackStatus::Flapping);
    // Without flapping detection the same loop is a stream of opens and resolves.
    let mut policies = AlertPolicies::default();
    policies
        .set(K::OomKilled, AlertPolicy { flapping: None, ..policies.get(K::OomKilled) })
        .unwrap();
    let (_, log) = run_from(IncidentTrack::new(K::OomKilled), &policies, &every(60, "H.H.H.H.H."));
    assert_eq!(log.len(), 10);
}

#[test]
fn a_flapping_stream_that_settles_into_failure_resolves_flapping_and_fires_the_kind_itself() {
    let pattern = format!("H.H.{}", "H".repeat(10));
    let (track, log) = run(K::Unhealthy, &every(30, &pattern));
    assert_eq!(
        log,
        [
            "90 flapping:unhealthy opened",
            "390 flapping:unhealthy resolved(recovered)",
            "390 unhealthy opened",
        ]
    );
    assert_eq!(track.status(), TrackStatus::Firing);
}

#[test]
fn flapping_incidents_remind_on_the_flapping_policy_and_can_be_acknowledged() {
    let policies = AlertPolicies::default();
    let (track, _) = run(K::Unhealthy, &every(30, "H.H."));
    let key = track.open_incident_key(&IncidentSubject::Platform);
    assert_eq!(key.as_deref(), Some("platform/flapping:unhealthy"));
    let (track, log) = run_from(track, &policies, &[(14_490, 'H')]);
    assert_eq!(log, ["14490 flapping:unhealthy reminder"]);
    let track = acknowledge(track, at(1_000_000)).unwrap();
    let (_, log) = run_from(track, &policies, &[(28_890, '.'), (43_290, 'H')]);
    assert_eq!(log, Vec::<String>::new());
}

#[test]
fn no_data_neither_fires_nor_resolves_nor_counts_as_a_check() {
    let (track, log) = run(K::Unhealthy, &every(60, &format!("HH{}", "?".repeat(20))));
    assert_eq!(log, Vec::<String>::new());
    assert_eq!(track.status(), TrackStatus::Pending);
    // Two failures two minutes apart are still two checks; the third fires.
    let (_, log) = run(K::Unhealthy, &every(60, "H?H?H"));
    assert_eq!(log, ["240 unhealthy opened"]);
    // An OOM incident stays open while nothing says the stack recovered.
    let (track, log) = run(K::OomKilled, &every(60, &format!("H{}", "?".repeat(50))));
    assert_eq!(log, ["0 oom_killed opened"]);
    assert_eq!(track.status(), TrackStatus::Firing);
}

#[test]
fn a_steady_stream_leaves_the_track_unchanged() {
    let policies = AlertPolicies::default();
    let (firing, _) = run(K::Unhealthy, &every(60, &"H".repeat(40)));
    let (again, notifications) = step(firing.clone(), &observation('H'), &policies, at(2400));
    assert!(notifications.is_empty());
    assert_eq!(again, firing, "no write while it stays down");
    let (fine, notifications) =
        step(IncidentTrack::new(K::Unhealthy), &observation('.'), &policies, at(0));
    assert!(notifications.is_empty());
    assert_eq!(fine, IncidentTrack::new(K::Unhealthy), "nothing to store while it stays up");
}

#[test]
fn a_removed_subject_resolves_only_an_announced_incident() {
    let (track, _) = run(K::OomKilled, &every(60, "H"));
    let notification = resolve_removed(track, at(100)).unwrap();
    assert_eq!(describe(&notification), "100 oom_killed resolved(subject_removed)");
    assert_eq!(notification.opened_at, at(0));
    let silenced = silence(IncidentTrack::new(K::OomKilled), at(1000));
    let (track, _) = run_from(silenced, &AlertPolicies::default(), &every(60, "H"));
    assert_eq!(resolve_removed(track, at(100)), None);
    assert_eq!(resolve_removed(IncidentTrack::new(K::OomKilled), at(100)), None);
}

/// A small deterministic generator (xorshift64*), so the property test needs no dependency.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
    }
}

#[test]
fn random_streams_announce_and_resolve_each_incident_exactly_once() {
    let mut policies = AlertPolicies::default();
    let quick =
        AlertPolicy { repeat_every: Duration::from_secs(600), ..policies.get(K::Unhealthy) };
    policies.set(K::Unhealthy, quick).unwrap();
    let kinds = [K::Unhealthy, K::OomKilled, K::ControllerLeaseLost, K::BackupEmpty];
    for seed in 1..=300u64 {
        let mut random = Random(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let kind = kinds[random.below(kinds.len() as u64) as usize];
        let holds_per_thousand = 100 + random.below(800);
        let mut track = IncidentTrack::new(kind);
        let mut now = 0u64;
        // Per incident key: whether announced and open, and when its last message went out.
        let mut announced: BTreeMap<(IncidentKind, Option<IncidentKind>), u64> = BTreeMap::new();
        for _ in 0..400 {
            now += 1 + random.below(900);
            match random.below(40) {
                0 => track = silence(track, at(now + random.below(7200))),
                1 => {
                    track =
                        acknowledge(track.clone(), at(now + random.below(7200))).unwrap_or(track)
                }
                _ => {}
            }
            let check = match random.below(1000) {
                value if value < 50 => '?',
                value if value < 50 + holds_per_thousand => 'H',
                _ => '.',
            };
            let (next, notifications) = step(track, &observation(check), &policies, at(now));
            track = next;
            for notification in &notifications {
                assert_eq!(notification.at, at(now));
                let key = (notification.incident_kind, notification.flapping_of);
                let context = format!("seed {seed}, {}", describe(notification));
                match notification.notification_kind {
                    NotificationKind::Opened => {
                        assert!(announced.insert(key, now).is_none(), "opened twice: {context}");
                    }
                    NotificationKind::Reminder => {
                        let last = announced.insert(key, now).expect(&context);
                        let repeat_every = policies.get(notification.incident_kind).repeat_every;
                        assert!(now - last >= repeat_every.as_secs(), "early: {context}");
                    }
                    NotificationKind::Resolved(_) => {
                        assert!(announced.remove(&key).is_some(), "resolved unopened: {context}");
                    }
                }
            }
            // The messages sent so far agree with the track: only its own incident is open,
            // and exactly when it was announced.
            let expected: Vec<_> = match &track.state {
                TrackState::Firing(open) if open.announced() => vec![(kind, None)],
                TrackState::Flapping(open) if open.announced() => {
                    vec![(K::Flapping, Some(kind))]
                }
                _ => vec![],
            };
            assert_eq!(announced.keys().copied().collect::<Vec<_>>(), expected, "seed {seed}");
        }
    }
}

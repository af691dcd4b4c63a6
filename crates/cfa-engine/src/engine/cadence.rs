//! The controller's memory between passes: which stacks failed and when they may be tried
//! again ([`Backoffs`]), and when the next pass runs and over what ([`Cadence`]). A full pass
//! lists every record and every Coolify service; between two of them, a deploy under way is
//! looked at again every `follow_up` by a pass over just those stacks, so a deploy's progress
//! costs one activation per stack, not a listing of 10,000 records every few seconds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cfa_core::Backoff;
use cfa_pocketbase::AgentStack;

use super::controller::PassReport;
use super::reconcile::Reconciled;

/// The controller's memory between passes: which stacks failed, how often, and when they may
/// be tried again. After [`GIVE_UP_AFTER`] failures in a row a stack is left alone until its
/// record changes (a tenant writes `pending` again, the operator fixes it): a request that
/// cannot be carried out costs a few attempts, not one an hour forever.
#[derive(Debug)]
pub struct Backoffs {
    policy: Backoff,
    failing: HashMap<(String, String), Failing>,
}

/// Consecutive failures after which the controller stops retrying a stack by itself.
pub const GIVE_UP_AFTER: u32 = 10;

#[derive(Debug)]
struct Failing {
    failures: u32,
    retry_at: Instant,
    /// The record's `updated_at` when the controller gave up: a change to it is a new request.
    given_up_on: Option<jiff::Timestamp>,
}

/// Why a stack that asks is not tried in this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// It failed lately; it is tried again in `wait`.
    Backoff { failures: u32, wait: Duration },
    /// It failed [`GIVE_UP_AFTER`] times in a row; a change to its record retries it.
    GivenUp { failures: u32 },
}

impl Backoffs {
    pub fn new(policy: Backoff) -> Backoffs {
        Backoffs { policy, failing: HashMap::new() }
    }

    /// `None` when the stack may be tried now (its record as of `updated`), else why not.
    pub fn waiting(
        &mut self,
        key: &(String, String),
        now: Instant,
        updated: jiff::Timestamp,
    ) -> Option<Waiting> {
        let entry = self.failing.get_mut(key)?;
        if entry.failures >= GIVE_UP_AFTER {
            match entry.given_up_on {
                Some(seen) if seen != updated => {
                    self.failing.remove(key);
                    return None;
                }
                _ => {
                    entry.given_up_on = Some(updated);
                    return Some(Waiting::GivenUp { failures: entry.failures });
                }
            }
        }
        (entry.retry_at > now)
            .then(|| Waiting::Backoff { failures: entry.failures, wait: entry.retry_at - now })
    }

    pub fn record(&mut self, key: (String, String), failed: bool, now: Instant) {
        if !failed {
            self.failing.remove(&key);
            return;
        }
        let failures = self.failing.get(&key).map_or(0, |entry| entry.failures) + 1;
        let retry_at = now + self.policy.delay(failures);
        self.failing.insert(key, Failing { failures, retry_at, given_up_on: None });
    }
}

/// What a pass goes over.
#[derive(Debug, Clone)]
pub enum PassFocus {
    /// Every record, and every Coolify service once (the resync, orphans included).
    Full,
    /// The record a realtime event named.
    Record(Box<AgentStack>),
    /// Deploys under way that an earlier pass left in progress: `(tenant slug, stack name)`.
    Stacks(Vec<(String, String)>),
}

/// When the controller's next pass runs, and over what.
#[derive(Debug)]
pub struct Cadence {
    resync: Duration,
    follow_up: Duration,
    next_full: Instant,
    following: Vec<(String, String)>,
    next_follow_up: Option<Instant>,
}

impl Cadence {
    /// A full pass every `resync`, deploys under way looked at again every `follow_up`; the
    /// first pass is due at once.
    pub fn new(resync: Duration, follow_up: Duration, now: Instant) -> Cadence {
        Cadence {
            resync,
            follow_up: follow_up.max(Duration::from_millis(200)),
            next_full: now,
            following: Vec::new(),
            next_follow_up: None,
        }
    }

    /// The pass to run once the wait ended without a realtime event: the resync when it is due
    /// (it looks at every deploy too), else the deploys under way, else the resync.
    pub fn due(&mut self, now: Instant) -> PassFocus {
        if now < self.next_full
            && !self.following.is_empty()
            && self.next_follow_up.is_some_and(|at| now >= at)
        {
            self.next_follow_up = None;
            return PassFocus::Stacks(std::mem::take(&mut self.following));
        }
        PassFocus::Full
    }

    /// Takes note of a pass that ran: a full one sets the next resync; the deploys it left in
    /// progress are looked at again after `follow_up`; a tenant's delete that becomes due
    /// brings the resync forward to that moment.
    pub fn passed(&mut self, focus: &PassFocus, report: &PassReport, now: Instant) {
        if matches!(focus, PassFocus::Full) {
            self.next_full = now + self.resync;
            self.following.clear();
        }
        for key in report.in_progress_stacks() {
            if !self.following.contains(&key) {
                self.following.push(key);
            }
        }
        if !self.following.is_empty() {
            self.next_follow_up.get_or_insert(now + self.follow_up);
        }
        if let Some(due) = report.next_delete_due() {
            let wait = jiff::Timestamp::now().duration_until(due);
            let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
            self.next_full = self.next_full.min(now + wait + Duration::from_millis(100));
        }
    }

    /// A pass that could not run (PocketBase or Coolify away): the next one is the resync,
    /// after `resync` (or `retry`, when sooner: a lease held elsewhere may end before it).
    pub fn failed(&mut self, now: Instant, retry: Option<Duration>) {
        let wait = retry.map_or(self.resync, |retry| retry.min(self.resync));
        self.next_full = now + wait;
        if let Some(at) = &mut self.next_follow_up {
            *at = (*at).max(self.next_full);
        }
    }

    /// Events may have been missed (the realtime stream reconnected): the resync is due now.
    pub fn resync_now(&mut self, now: Instant) {
        self.next_full = now;
    }

    /// How long until the next pass is due.
    pub fn wait(&self, now: Instant) -> Duration {
        let next = match self.next_follow_up {
            Some(at) if !self.following.is_empty() => at.min(self.next_full),
            _ => self.next_full,
        };
        next.saturating_duration_since(now)
    }
}

impl PassReport {
    /// The stacks whose deploy this pass left under way.
    pub fn in_progress_stacks(&self) -> Vec<(String, String)> {
        self.activations
            .iter()
            .filter(|activation| matches!(activation.result, Ok(Reconciled::InProgress { .. })))
            .map(|activation| (activation.tenant.clone(), activation.stack.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::controller::StackActivation;

    /// Ten failures in a row and the stack is left alone, however long it waits, until its
    /// record changes; then it is tried at once.
    #[test]
    fn a_stack_failing_again_and_again_is_given_up_until_its_record_changes() {
        let policy = Backoff { base: Duration::from_secs(1), cap: Duration::from_secs(4) };
        let mut backoffs = Backoffs::new(policy);
        let key = ("acme".to_owned(), "bot".to_owned());
        let updated: jiff::Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let start = Instant::now();
        for failure in 1..GIVE_UP_AFTER {
            backoffs.record(key.clone(), true, start);
            let waiting = backoffs.waiting(&key, start, updated);
            assert!(
                matches!(waiting, Some(Waiting::Backoff { failures, .. }) if failures == failure)
            );
        }
        backoffs.record(key.clone(), true, start);
        let much_later = start + Duration::from_secs(86_400);
        for _ in 0..3 {
            assert_eq!(
                backoffs.waiting(&key, much_later, updated),
                Some(Waiting::GivenUp { failures: GIVE_UP_AFTER })
            );
        }
        let retried = updated.checked_add(jiff::SignedDuration::from_secs(5)).unwrap();
        assert_eq!(backoffs.waiting(&key, much_later, retried), None, "a changed record is tried");
        assert_eq!(backoffs.waiting(&key, much_later, retried), None, "and its count starts over");
    }

    fn report(in_progress: &[&str]) -> PassReport {
        PassReport {
            activations: in_progress
                .iter()
                .map(|stack| StackActivation {
                    tenant: "acme".to_owned(),
                    stack: (*stack).to_owned(),
                    result: Ok(Reconciled::InProgress { operation: "provision" }),
                })
                .collect(),
            ..PassReport::default()
        }
    }

    fn stacks(focus: &PassFocus) -> Vec<&str> {
        match focus {
            PassFocus::Stacks(stacks) => stacks.iter().map(|(_, stack)| stack.as_str()).collect(),
            other => panic!("expected a pass over deploys under way, got {other:?}"),
        }
    }

    /// Between two resyncs a deploy under way costs a pass over itself every `follow_up`, and
    /// the full pass keeps its interval instead of running every few seconds.
    #[test]
    fn deploys_under_way_are_followed_up_between_resyncs() {
        let start = Instant::now();
        let (resync, follow_up) = (Duration::from_secs(60), Duration::from_secs(5));
        let mut cadence = Cadence::new(resync, follow_up, start);
        assert_eq!(cadence.wait(start), Duration::ZERO, "the first pass is due at once");
        let first = cadence.due(start);
        assert!(matches!(first, PassFocus::Full));
        cadence.passed(&first, &report(&["bot", "web"]), start);
        assert_eq!(cadence.wait(start), follow_up);

        let later = start + follow_up;
        let follow = cadence.due(later);
        assert_eq!(stacks(&follow), ["bot", "web"]);
        cadence.passed(&follow, &report(&["web"]), later);
        assert_eq!(cadence.wait(later), follow_up, "web is still under way");
        let again = later + follow_up;
        assert_eq!(stacks(&cadence.due(again)), ["web"]);
        cadence.passed(&PassFocus::Stacks(vec![]), &report(&[]), again);
        assert_eq!(cadence.wait(again), resync - follow_up * 2, "nothing left: the resync is next");
        assert!(matches!(cadence.due(start + resync), PassFocus::Full));
    }

    /// A realtime event's pass of one record does not drop the deploys being followed, and a
    /// follow-up never postpones the resync.
    #[test]
    fn an_events_pass_adds_to_the_deploys_followed_and_the_resync_wins_when_due() {
        let start = Instant::now();
        let (resync, follow_up) = (Duration::from_secs(10), Duration::from_secs(4));
        let mut cadence = Cadence::new(resync, follow_up, start);
        let full = cadence.due(start);
        cadence.passed(&full, &report(&["bot"]), start);
        // An event's pass (a `Record` focus; any focus but `Full` is taken note of alike).
        let event = PassFocus::Stacks(Vec::new());
        cadence.passed(&event, &report(&["new"]), start + Duration::from_secs(1));
        assert_eq!(cadence.wait(start + Duration::from_secs(1)), Duration::from_secs(3));
        let follow = cadence.due(start + follow_up);
        assert_eq!(stacks(&follow), ["bot", "new"]);
        cadence.passed(&follow, &report(&["bot", "new"]), start + follow_up);
        // Follow-up due at 8 s, resync at 10 s: at 10 s the resync runs and covers both.
        assert!(matches!(cadence.due(start + resync), PassFocus::Full));
    }

    /// A pass that could not run (PocketBase away, the lease held elsewhere) retries as a full
    /// pass, no sooner than the retry asks, no later than the resync.
    #[test]
    fn a_pass_that_could_not_run_is_retried_as_a_full_pass() {
        let start = Instant::now();
        let mut cadence = Cadence::new(Duration::from_secs(60), Duration::from_secs(5), start);
        let full = cadence.due(start);
        cadence.passed(&full, &report(&["bot"]), start);
        cadence.failed(start, Some(Duration::from_secs(20)));
        assert_eq!(cadence.wait(start), Duration::from_secs(20));
        assert!(matches!(cadence.due(start + Duration::from_secs(20)), PassFocus::Full));
        cadence.failed(start, None);
        assert_eq!(cadence.wait(start), Duration::from_secs(60));
    }
}

//! The controller's pass: every record listed once (and Coolify's services once, when a record
//! is `stopped`), those that ask for something reconciled, N at a time, under PocketBase's
//! controller lease; stacks whose activations keep failing are left alone for a while
//! ([`cfa_core::Backoff`]), so they cannot spend Coolify's request budget.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use cfa_core::Backoff;
use cfa_pocketbase::{StackChange, StackSubscription};

use super::*;

/// One stack's part of a pass.
#[derive(Debug)]
pub struct StackActivation {
    pub tenant: String,
    pub stack: String,
    pub result: Result<Reconciled, EngineError>,
}

/// What one pass over every stack saw and did.
#[derive(Debug, Default)]
pub struct PassReport {
    /// Every record PocketBase listed.
    pub stacks_seen: usize,
    /// The stacks whose record asked for something (`pending`, `deploying`, `stopped` while
    /// Coolify lists its containers running), each reconciled; `running` and `error` records
    /// ask for nothing and are not touched.
    pub activations: Vec<StackActivation>,
    /// Stacks that asked but failed lately: `(tenant, stack, failures, retried in)`.
    pub backing_off: Vec<(String, String, u32, Duration)>,
    /// Stacks the controller gave up on until their record changes: `(tenant, stack, failures)`.
    pub given_up: Vec<(String, String, u32)>,
    /// Services with our marker that no record claims (a full pass only).
    pub orphans: usize,
    /// Orphans removed past their grace period, by service uuid.
    pub orphans_removed: Vec<String>,
}

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

impl PassReport {
    pub fn failures(&self) -> usize {
        self.activations.iter().filter(|activation| activation.result.is_err()).count()
    }

    /// Deploys under way that the next activation looks at again: the controller's next pass
    /// should come soon.
    pub fn in_progress(&self) -> usize {
        self.activations
            .iter()
            .filter(|activation| matches!(activation.result, Ok(Reconciled::InProgress { .. })))
            .count()
    }

    /// When the first delete a tenant asked for becomes due: the controller's next pass should
    /// not wait longer than that.
    pub fn next_delete_due(&self) -> Option<jiff::Timestamp> {
        self.activations
            .iter()
            .filter_map(|activation| match activation.result {
                Ok(Reconciled::DeleteScheduled { due }) => Some(due),
                _ => None,
            })
            .min()
    }

    /// What the pass saw and did, as kept on the lease for `cfa status --controller`: when,
    /// how long, stacks seen, actions, waits, failures (the first 20, first line each).
    pub fn summary(&self, finished: jiff::Timestamp, took: Duration) -> Value {
        let count = |wanted: fn(&Reconciled) -> bool| {
            self.activations
                .iter()
                .filter(|activation| activation.result.as_ref().is_ok_and(wanted))
                .count()
        };
        let errors: Vec<Value> = self
            .activations
            .iter()
            .filter_map(|activation| {
                let error = activation.result.as_ref().err()?;
                Some(json!({
                    "tenant": activation.tenant,
                    "stack": activation.stack,
                    "error": error.to_string().lines().next().unwrap_or_default(),
                }))
            })
            .take(20)
            .collect();
        json!({
            "finished": finished.to_string(),
            "took_ms": u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            "stacks_seen": self.stacks_seen,
            "acted": count(|reconciled| matches!(reconciled, Reconciled::Acted { .. })),
            "waiting": count(|reconciled| matches!(reconciled, Reconciled::Waiting { .. })),
            "in_progress": count(|reconciled| matches!(reconciled, Reconciled::InProgress { .. })),
            "converged": count(|reconciled| matches!(reconciled, Reconciled::Converged { .. })),
            "deletes_scheduled": count(|reconciled| matches!(reconciled, Reconciled::DeleteScheduled { .. })),
            "deleted": count(|reconciled| matches!(reconciled, Reconciled::Deleted)),
            "failed": self.failures(),
            "backing_off": self.backing_off.len(),
            "given_up": self.given_up.len(),
            "orphans": self.orphans,
            "orphans_removed": self.orphans_removed,
            "errors": errors,
        })
    }
}

impl Engine {
    /// One pass: lists every record once (with its tenant) and reconciles those whose record
    /// asks for something and are not backing off, at most `concurrency` at a time.
    pub async fn reconcile_pass(
        &self,
        concurrency: usize,
        backoffs: &mut Backoffs,
    ) -> Result<PassReport, EngineError> {
        use futures::StreamExt;
        // One list of every service per pass: it says Coolify answers (an outage stops the pass
        // before any stack is touched), which `stopped` records still have containers running
        // (only those ask for something), and which services no record claims.
        let (records, services) = self.records_and_services().await?;
        let running_services: HashSet<&str> = services
            .iter()
            .filter(|service| is_running_status(&service.status))
            .map(|service| service.uuid.as_str())
            .collect();
        let (mut orphans, _) = super::drift::classify(&records, &services);
        let orphans_removed = self.sweep_orphans(&mut orphans, true).await?;
        let asking: Vec<((String, String), jiff::Timestamp)> = records
            .iter()
            .filter(|record| {
                record.delete_requested_at.is_some()
                    || match record.status {
                        StackStatus::Pending | StackStatus::Deploying => true,
                        StackStatus::Stopped => record
                            .coolify_service_uuid
                            .as_deref()
                            .is_some_and(|uuid| running_services.contains(uuid)),
                        StackStatus::Running | StackStatus::Error => false,
                    }
            })
            .filter_map(|record| {
                let tenant = record.tenant.as_ref()?;
                Some(((tenant.slug.clone(), record.stack_name.clone()), record.updated_at))
            })
            .collect();
        let now = Instant::now();
        let (mut backing_off, mut given_up, mut due) = (Vec::new(), Vec::new(), Vec::new());
        for (key, updated) in asking {
            match backoffs.waiting(&key, now, updated) {
                Some(Waiting::Backoff { failures, wait }) => {
                    backing_off.push((key.0, key.1, failures, wait));
                }
                Some(Waiting::GivenUp { failures }) => given_up.push((key.0, key.1, failures)),
                None => due.push(key),
            }
        }
        let activations: Vec<StackActivation> = futures::stream::iter(due)
            .map(|(tenant, stack)| async move {
                let result = self.reconcile_once(&tenant, &stack).await;
                StackActivation { tenant, stack, result }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let now = Instant::now();
        for activation in &activations {
            let key = (activation.tenant.clone(), activation.stack.clone());
            backoffs.record(key, is_stack_failure(&activation.result), now);
        }
        Ok(PassReport {
            stacks_seen: records.len(),
            activations,
            backing_off,
            given_up,
            orphans: orphans.len(),
            orphans_removed,
        })
    }
}

/// The lease every controller takes before a pass: one controller acts at a time.
pub const CONTROLLER_LEASE: &str = "controller";

/// A pass, or why there was none.
#[derive(Debug)]
pub enum ControllerPass {
    Ran(PassReport),
    /// Another controller holds the lease.
    LeaseHeld {
        holder: String,
        remaining: Duration,
    },
}

impl Engine {
    /// Coolify down is one platform incident: the pass stops before touching any stack, so no
    /// stack records a failure (nor gets a backoff) for what is not its own.
    async fn coolify_answers(&self) -> Result<(), EngineError> {
        self.inner.coolify.healthcheck().await.map_err(unavailable)
    }

    /// One record's activation, as a pass of one: a realtime event named it, so there is no
    /// need to list every record first.
    async fn reconcile_one(
        &self,
        record: &AgentStack,
        backoffs: &mut Backoffs,
    ) -> Result<PassReport, EngineError> {
        let subject = Subject { tenant: "*".to_owned(), stack: record.stack_name.clone() };
        let tenant = self
            .inner
            .pocketbase
            .tenant_view(&record.tenant_id)
            .await
            .map_err(|error| subject.pocketbase(Step::RecordPending, error))?;
        let key = (tenant.slug, record.stack_name.clone());
        let mut report = PassReport { stacks_seen: 1, ..PassReport::default() };
        match backoffs.waiting(&key, Instant::now(), record.updated_at) {
            Some(Waiting::Backoff { failures, wait }) => {
                report.backing_off.push((key.0, key.1, failures, wait));
                return Ok(report);
            }
            Some(Waiting::GivenUp { failures }) => {
                report.given_up.push((key.0, key.1, failures));
                return Ok(report);
            }
            None => {}
        }
        self.coolify_answers().await?;
        let result = self.reconcile_once(&key.0, &key.1).await;
        backoffs.record(key.clone(), is_stack_failure(&result), Instant::now());
        report.activations.push(StackActivation { tenant: key.0, stack: key.1, result });
        Ok(report)
    }

    /// Takes (or renews) the controller lease for `holder`, then runs one pass (of `only`, when
    /// a realtime event named the record that asks), renewing the
    /// lease every third of `lease_ttl` while it runs; a second controller meanwhile gets
    /// [`ControllerPass::LeaseHeld`] and takes over once the lease expires (its holder died).
    pub async fn controller_pass(
        &self,
        holder: &str,
        lease_ttl: Duration,
        concurrency: usize,
        backoffs: &mut Backoffs,
        only: Option<&AgentStack>,
    ) -> Result<ControllerPass, EngineError> {
        let subject = Subject { tenant: "*".to_owned(), stack: "*".to_owned() };
        let pocketbase = &self.inner.pocketbase;
        let lease = pocketbase
            .lease_acquire(CONTROLLER_LEASE, holder, lease_ttl)
            .await
            .map_err(|error| subject.pocketbase(Step::RecordPending, error))?;
        if !lease.acquired {
            return Ok(ControllerPass::LeaseHeld {
                holder: lease.holder.clone(),
                remaining: lease.remaining(),
            });
        }
        let started = Instant::now();
        let renewal = tokio::spawn(renew_lease(pocketbase.clone(), holder.to_owned(), lease_ttl));
        let report = match only {
            Some(record) => self.reconcile_one(record, backoffs).await,
            None => self.reconcile_pass(concurrency, backoffs).await,
        };
        renewal.abort();
        let report = report?;
        let summary = report.summary(jiff::Timestamp::now(), started.elapsed());
        // Best effort: the pass happened whether or not PocketBase keeps its summary.
        if let Err(error) =
            pocketbase.lease_renew_with(CONTROLLER_LEASE, holder, lease_ttl, Some(&summary)).await
        {
            tracing::warn!(%error, "cannot record the pass on the controller lease");
        }
        Ok(ControllerPass::Ran(report))
    }

    /// The controller lease as stored: its holder, until when, and the holder's last pass.
    pub async fn controller_status(
        &self,
    ) -> Result<Option<cfa_pocketbase::LeaseRecord>, EngineError> {
        let subject = Subject { tenant: "*".to_owned(), stack: "*".to_owned() };
        self.inner
            .pocketbase
            .lease_view(CONTROLLER_LEASE)
            .await
            .map_err(|error| subject.pocketbase(Step::RecordPending, error))
    }

    /// Gives the controller lease up (a clean exit): the next controller need not wait.
    pub async fn controller_release(&self, holder: &str) {
        if let Err(error) = self.inner.pocketbase.lease_release(CONTROLLER_LEASE, holder).await {
            tracing::warn!(%error, "cannot release the controller lease; it expires by itself");
        }
    }
}

/// Renews the controller lease every third of its time to live, until aborted.
async fn renew_lease(pocketbase: cfa_pocketbase::PocketBaseClient, holder: String, ttl: Duration) {
    loop {
        tokio::time::sleep(ttl / 3).await;
        match pocketbase.lease_acquire(CONTROLLER_LEASE, &holder, ttl).await {
            Ok(lease) if lease.acquired => {}
            Ok(lease) => {
                tracing::error!(holder = %lease.holder, "another controller took the lease during this pass");
            }
            Err(error) => tracing::warn!(%error, "cannot renew the controller lease"),
        }
    }
}

/// A failure that is the stack's own, which earns it a backoff. Coolify going down during the
/// pass is not (the next pass asks Coolify first and waits for it as a whole), nor a record
/// that changed under the activation (its new request is the next activation's).
fn is_stack_failure(result: &Result<Reconciled, EngineError>) -> bool {
    result.as_ref().is_err_and(|error| {
        !error.is_platform_outage() && !matches!(error, EngineError::Superseded { .. })
    })
}

fn unavailable(error: cfa_coolify::CoolifyError) -> EngineError {
    EngineError::CoolifyUnavailable {
        detail: error.to_string().lines().next().unwrap_or_default().to_owned(),
    }
}

/// How often a controller whose realtime subscription broke tries to open it again.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_secs(2);

/// Why the controller's wait between passes ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Woken {
    /// This record now asks for something (PocketBase's realtime event).
    Request(Box<AgentStack>),
    /// Events may have been missed (the stream reconnected): time for a full pass.
    Missed,
    /// The wait ran out: time for the full resync.
    Timeout,
}

impl Engine {
    /// Opens the realtime subscription unless it is open. A controller opens it before its
    /// first pass, so that a request written during that pass is not missed.
    pub async fn subscribe(&self, subscription: &mut Option<StackSubscription>) {
        if subscription.is_some() {
            return;
        }
        match self.inner.pocketbase.stack_subscribe().await {
            Ok(opened) => *subscription = Some(opened),
            Err(error) => {
                tracing::warn!(%error, "no realtime subscription; passes run on the interval only")
            }
        }
    }

    /// PocketBase is away (a restart, a network cut): tries to subscribe again every
    /// [`RESUBSCRIBE_PAUSE`] until `deadline`. Back in time, the answer is
    /// [`Woken::Missed`]: a full pass catches up on what changed meanwhile.
    async fn resubscribe(
        &self,
        subscription: &mut Option<StackSubscription>,
        deadline: tokio::time::Instant,
    ) -> Woken {
        loop {
            if tokio::time::Instant::now() + RESUBSCRIBE_PAUSE >= deadline {
                tokio::time::sleep_until(deadline).await;
                return Woken::Timeout;
            }
            tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
            if let Ok(opened) = self.inner.pocketbase.stack_subscribe().await {
                tracing::info!("realtime subscription back; resyncing");
                *subscription = Some(opened);
                return Woken::Missed;
            }
        }
    }

    /// Waits until PocketBase reports a record that asks for something, or `max_wait` passes.
    /// The subscription is opened on first use and again after it failed (PocketBase down: the
    /// wait is then only the timeout, and the full resync catches up).
    pub async fn wait_for_request(
        &self,
        subscription: &mut Option<StackSubscription>,
        max_wait: Duration,
    ) -> Woken {
        let deadline = tokio::time::Instant::now() + max_wait;
        self.subscribe(subscription).await;
        let Some(stream) = subscription.as_mut() else {
            return self.resubscribe(subscription, deadline).await;
        };
        loop {
            let change = tokio::select! {
                change = stream.next() => change,
                () = tokio::time::sleep_until(deadline) => return Woken::Timeout,
            };
            match change {
                Ok(StackChange::Created(record) | StackChange::Updated(record))
                    if record.delete_requested_at.is_some()
                        || matches!(record.status, StackStatus::Pending | StackStatus::Stopped) =>
                {
                    return Woken::Request(Box::new(record));
                }
                Ok(StackChange::Reconnected) => return Woken::Missed,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "the realtime subscription failed; resubscribing");
                    *subscription = None;
                    return self.resubscribe(subscription, deadline).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

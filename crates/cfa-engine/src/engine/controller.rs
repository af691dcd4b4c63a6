//! The controller's pass: every record listed once (and Coolify's services once, when a record
//! is `stopped`), those that ask for something reconciled, N at a time, under PocketBase's
//! controller lease; stacks whose activations keep failing are left alone for a while
//! ([`super::cadence::Backoffs`]), so they cannot spend Coolify's request budget. Between two
//! full passes, a pass goes over one record (a realtime event) or the deploys under way
//! ([`PassFocus`]).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cfa_pocketbase::{StackChange, StackSubscription};

use super::cadence::{Backoffs, PassFocus, Waiting};
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
        // The list of services just answered: Coolify is up.
        let mut report = self.reconcile_stacks(asking, concurrency, backoffs, false).await?;
        report.stacks_seen = records.len();
        report.orphans = orphans.len();
        report.orphans_removed = orphans_removed;
        Ok(report)
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
        self.reconcile_stacks(vec![(key, record.updated_at)], 1, backoffs, true).await
    }

    /// Activations of the deploys an earlier pass left under way: no listing of every record.
    /// A stack that stopped asking meanwhile (now `running`) converges at no Coolify cost.
    async fn reconcile_followed(
        &self,
        stacks: Vec<(String, String)>,
        concurrency: usize,
        backoffs: &mut Backoffs,
    ) -> Result<PassReport, EngineError> {
        // Their records' `updated_at` only matter to a stack given up on, and an in-progress
        // stack has just succeeded: any timestamp will do.
        let keyed = stacks.into_iter().map(|key| (key, jiff::Timestamp::UNIX_EPOCH)).collect();
        self.reconcile_stacks(keyed, concurrency, backoffs, true).await
    }

    /// Reconciles the given stacks (those not backing off), N at a time, after asking Coolify
    /// whether it answers (`check_coolify`; not when the caller just heard from it).
    async fn reconcile_stacks(
        &self,
        stacks: Vec<((String, String), jiff::Timestamp)>,
        concurrency: usize,
        backoffs: &mut Backoffs,
        check_coolify: bool,
    ) -> Result<PassReport, EngineError> {
        use futures::StreamExt;
        let mut report = PassReport { stacks_seen: stacks.len(), ..PassReport::default() };
        let now = Instant::now();
        let mut due = Vec::new();
        for (key, updated) in stacks {
            match backoffs.waiting(&key, now, updated) {
                Some(Waiting::Backoff { failures, wait }) => {
                    report.backing_off.push((key.0, key.1, failures, wait));
                }
                Some(Waiting::GivenUp { failures }) => {
                    report.given_up.push((key.0, key.1, failures));
                }
                None => due.push(key),
            }
        }
        if due.is_empty() {
            return Ok(report);
        }
        if check_coolify {
            self.coolify_answers().await?;
        }
        report.activations = futures::stream::iter(due)
            .map(|(tenant, stack)| async move {
                let result = self.reconcile_once(&tenant, &stack).await;
                StackActivation { tenant, stack, result }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let now = Instant::now();
        for activation in &report.activations {
            let key = (activation.tenant.clone(), activation.stack.clone());
            backoffs.record(key, is_stack_failure(&activation.result), now);
        }
        Ok(report)
    }

    /// Takes (or renews) the controller lease for `holder`, then runs one pass over `focus`,
    /// renewing the lease every third of `lease_ttl` while it runs; a second controller meanwhile gets
    /// [`ControllerPass::LeaseHeld`] and takes over once the lease expires (its holder died).
    pub async fn controller_pass(
        &self,
        holder: &str,
        lease_ttl: Duration,
        concurrency: usize,
        backoffs: &mut Backoffs,
        focus: &PassFocus,
    ) -> Result<ControllerPass, EngineError> {
        let subject = Subject { tenant: "*".to_owned(), stack: "*".to_owned() };
        let pocketbase = &self.inner.pocketbase;
        let lease = pocketbase
            .lease_acquire(CONTROLLER_LEASE, holder, lease_ttl)
            .await
            .map_err(|error| subject.pocketbase(Step::RecordPending, error))?;
        self.note_takeover(&lease, holder);
        if !lease.acquired {
            return Ok(ControllerPass::LeaseHeld {
                holder: lease.holder.clone(),
                remaining: lease.remaining(),
            });
        }
        let started = Instant::now();
        let renewal = tokio::spawn(renew_lease(pocketbase.clone(), holder.to_owned(), lease_ttl));
        let report = match focus {
            PassFocus::Full => self.reconcile_pass(concurrency, backoffs).await,
            PassFocus::Record(record) => self.reconcile_one(record, backoffs).await,
            PassFocus::Stacks(stacks) => {
                self.reconcile_followed(stacks.clone(), concurrency, backoffs).await
            }
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

    /// Remembers a lease taken from a controller that stopped renewing it, for the monitor.
    pub(super) fn note_takeover(&self, lease: &cfa_pocketbase::Lease, holder: &str) {
        let Some(taken) = lease.taken_over.as_ref().filter(|taken| !taken.released) else {
            return;
        };
        let ago =
            Duration::from_millis(u64::try_from(lease.now_ms - taken.expires_ms).unwrap_or(0));
        let detail = format!(
            "controller `{}` stopped renewing its lease; `{holder}` took it over {} after it ran out",
            taken.holder,
            cfa_core::incidents::short_duration(ago)
        );
        tracing::warn!(previous = %taken.holder, %holder, "took over the controller lease from a controller that stopped renewing it");
        *self.inner.lease_lost.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(detail);
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

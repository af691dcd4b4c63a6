//! Delivery: every message goes to every channel through the outbox, each channel in its own
//! lane, so a channel that is down never delays the others.
//!
//! # Design notes
//!
//! - **Outbox first.** [`Dispatcher::enqueue`] stores one [`Delivery`] per channel before any
//!   attempt, so a crash after it loses nothing; attempts read the outbox back.
//! - **One lane per channel.** A lane's *round* takes the channel's due deliveries oldest first
//!   and attempts them one at a time, each bounded by the channel's timeout. Rounds of different
//!   channels run concurrently; rounds of one channel never overlap (a lock per lane), so no
//!   delivery is attempted twice at once.
//! - **A failing channel pauses its lane.** After a failure the delivery gets its next attempt
//!   time from the backoff (`initial_backoff` doubling up to `max_backoff`, or the receiver's
//!   `retry_after` when longer) and the lane pauses until then: later messages of that channel
//!   wait behind it instead of each timing out in turn, and they arrive in order once it is
//!   back. Other lanes do not notice. A round reads the channel's pending deliveries oldest
//!   first ([`Outbox::pending`]) and stops at the first one not yet due, so the order holds
//!   across a restart too.
//! - **Giving up.** A delivery refused as such ([`Retry::Never`]: HTTP 400/413/422, a permanent
//!   SMTP answer about the message) is abandoned at once, so it cannot block its lane; one that
//!   keeps failing is abandoned after `give_up_after` since it was created. Both are logged.
//! - **Driving it.** [`Dispatcher::run`] keeps every lane going until shutdown: a lane wakes
//!   when a message is enqueued, when its pause ends, and every `poll_interval` (deliveries
//!   another process put in the same outbox). [`Dispatcher::dispatch`] (enqueue, then one round
//!   on every lane) and [`Dispatcher::deliver_due`] (one round on every lane) serve one-shot
//!   callers and tests, and are safe to call while `run` is going.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use cfa_core::Backoff;
use cfa_core::incidents::GroupedMessage;
use futures::future::join_all;
use tokio::sync::{Mutex, Notify};

use crate::channel::{Channel, Retry, error_chain};
use crate::config::DeliveryConfig;
use crate::message::{AlertMessage, to_millis};
use crate::outbox::{Delivery, Outbox, OutboxError};

/// How deliveries are retried and how often lanes look at the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failure, doubled per failure up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A delivery still failing this long after it was created is abandoned.
    pub give_up_after: Duration,
    /// How often an idle lane looks at the outbox without being woken.
    pub poll_interval: Duration,
    /// At most this many deliveries per round.
    pub batch_limit: usize,
}

impl Default for RetryPolicy {
    /// 2 s doubling to 5 min (Omicron's webhooks retry after 60 s then 300 s; an alert should
    /// not wait a minute for a receiver that blinked), given up after a day, lanes polled every
    /// 10 s.
    fn default() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
            give_up_after: Duration::from_secs(86_400),
            poll_interval: Duration::from_secs(10),
            batch_limit: 100,
        }
    }
}

impl RetryPolicy {
    /// The defaults with `[alerts.delivery]` laid over them.
    pub fn from_config(config: &DeliveryConfig) -> RetryPolicy {
        let default = RetryPolicy::default();
        RetryPolicy {
            initial_backoff: config.initial_backoff.unwrap_or(default.initial_backoff),
            max_backoff: config.max_backoff.unwrap_or(default.max_backoff),
            give_up_after: config.give_up_after.unwrap_or(default.give_up_after),
            poll_interval: config.poll_interval.unwrap_or(default.poll_interval),
            batch_limit: default.batch_limit,
        }
    }

    /// The wait after a delivery's `failures`-th failure.
    pub fn backoff(&self, failures: u32) -> Duration {
        Backoff { base: self.initial_backoff, cap: self.max_backoff }.delay(failures)
    }
}

/// What one round did on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelReport {
    pub channel: String,
    /// Every attempt of the round, in order.
    pub attempts: Vec<AttemptReport>,
    /// The lane is paused until then (a failure's backoff); nothing was attempted if it was
    /// paused when the round began.
    pub paused_until: Option<SystemTime>,
    /// The outbox could not be read or written (the round stopped there).
    pub outbox_error: Option<String>,
}

/// One attempt of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptReport {
    pub delivery_id: String,
    pub message_id: String,
    /// From the start of the attempt to the receiver's answer (or the failure).
    pub elapsed: Duration,
    pub outcome: AttemptOutcome,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Failed; tried again at `next_attempt_at`.
    Retrying {
        error: String,
        next_attempt_at: SystemTime,
    },
    /// Failed and given up.
    Abandoned {
        error: String,
    },
}

impl ChannelReport {
    /// Whether every attempt of the round delivered (and there was at least one).
    pub fn delivered_all(&self) -> bool {
        !self.attempts.is_empty()
            && self.attempts.iter().all(|attempt| attempt.outcome == AttemptOutcome::Delivered)
    }
}

/// Sends messages to every channel through an outbox (see the module notes).
#[derive(Debug)]
pub struct Dispatcher<O> {
    lanes: Vec<Lane>,
    outbox: O,
    policy: RetryPolicy,
    /// The last `created_at` given out: each enqueue gets a later one (by a millisecond at
    /// least), so `due`'s oldest-first order is the order messages were enqueued in.
    last_created: std::sync::Mutex<SystemTime>,
}

#[derive(Debug)]
struct Lane {
    channel: Channel,
    /// Held for a whole round; holds the pause.
    state: Mutex<LaneState>,
    wake: Notify,
}

#[derive(Debug, Default)]
struct LaneState {
    paused_until: Option<SystemTime>,
}

impl<O: Outbox> Dispatcher<O> {
    pub fn new(channels: Vec<Channel>, outbox: O, policy: RetryPolicy) -> Dispatcher<O> {
        let lanes = channels
            .into_iter()
            .map(|channel| Lane { channel, state: Mutex::default(), wake: Notify::new() })
            .collect();
        Dispatcher {
            lanes,
            outbox,
            policy,
            last_created: std::sync::Mutex::new(SystemTime::UNIX_EPOCH),
        }
    }

    pub fn outbox(&self) -> &O {
        &self.outbox
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Wakes every lane: deliveries were queued into the outbox by someone else (the monitor
    /// writes to the outbox directly, in the same store as its incidents).
    pub fn wake(&self) {
        for lane in &self.lanes {
            lane.wake.notify_one();
        }
    }

    /// The channels' names, in order.
    pub fn channel_names(&self) -> Vec<&str> {
        self.lanes.iter().map(|lane| lane.channel.name()).collect()
    }

    /// Stores the message for every channel and wakes their lanes; returns the delivery ids.
    /// A message already enqueued (same `message_id`) is not stored again.
    pub async fn enqueue(&self, message: &AlertMessage) -> Result<Vec<String>, OutboxError> {
        let now = to_millis(SystemTime::now());
        let created_at = {
            let mut last_created =
                self.last_created.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *last_created = now.max(*last_created + Duration::from_millis(1));
            *last_created
        };
        let mut ids = Vec::with_capacity(self.lanes.len());
        for lane in &self.lanes {
            let delivery = Delivery {
                next_attempt_at: now,
                ..Delivery::new(lane.channel.name(), message.clone(), created_at)
            };
            ids.push(delivery.id.clone());
            self.outbox.enqueue(delivery).await?;
        }
        for lane in &self.lanes {
            lane.wake.notify_one();
        }
        Ok(ids)
    }

    /// Enqueues a grouped message of `cfa-core` (see [`Dispatcher::enqueue`]).
    pub async fn enqueue_grouped(
        &self,
        grouped: &GroupedMessage,
    ) -> Result<Vec<String>, OutboxError> {
        self.enqueue(&AlertMessage::from_grouped(grouped)).await
    }

    /// Enqueues the message, then runs one round on every channel concurrently and returns
    /// their reports, in channel order. A channel that fails keeps its delivery for later
    /// (`run`, or the next `deliver_due`).
    pub async fn dispatch(
        &self,
        message: &AlertMessage,
    ) -> Result<Vec<ChannelReport>, OutboxError> {
        self.enqueue(message).await?;
        Ok(self.deliver_due().await)
    }

    /// One round on every channel, concurrently; reports in channel order.
    pub async fn deliver_due(&self) -> Vec<ChannelReport> {
        join_all(self.lanes.iter().map(|lane| self.round(lane))).await
    }

    /// Keeps every lane delivering until `shutdown` completes. An attempt under way then is
    /// dropped; its delivery stays pending and goes out after the restart.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        if self.lanes.is_empty() {
            return shutdown.await;
        }
        let lanes = join_all(self.lanes.iter().map(|lane| self.lane_loop(lane)));
        tokio::select! {
            () = shutdown => {}
            _ = lanes => {}
        }
    }

    async fn lane_loop(&self, lane: &Lane) {
        loop {
            let report = self.round(lane).await;
            let full_batch = report.attempts.len() >= self.policy.batch_limit;
            if full_batch && report.paused_until.is_none() && report.outbox_error.is_none() {
                continue;
            }
            let wait = match report.paused_until {
                Some(until) => until
                    .duration_since(SystemTime::now())
                    .unwrap_or_default()
                    .min(self.policy.poll_interval),
                None => self.policy.poll_interval,
            };
            tokio::select! {
                () = lane.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One round on one lane (see the module notes).
    async fn round(&self, lane: &Lane) -> ChannelReport {
        let mut state = lane.state.lock().await;
        let channel = &lane.channel;
        let mut report = ChannelReport {
            channel: channel.name().to_owned(),
            attempts: Vec::new(),
            paused_until: None,
            outbox_error: None,
        };
        let now = SystemTime::now();
        if let Some(until) = state.paused_until {
            if now < until {
                report.paused_until = Some(until);
                return report;
            }
            state.paused_until = None;
        }
        // Every pending delivery, not only the due ones: one that waits for its backoff holds
        // back the later ones, also after a restart.
        let pending = match self.outbox.pending(channel.name(), self.policy.batch_limit).await {
            Ok(pending) => pending,
            Err(error) => {
                tracing::warn!(channel = channel.name(), error = %error_chain(&error), "cannot read the alert outbox");
                report.outbox_error = Some(error_chain(&error));
                return report;
            }
        };
        for delivery in pending {
            if delivery.next_attempt_at > now {
                state.paused_until = Some(delivery.next_attempt_at);
                report.paused_until = Some(delivery.next_attempt_at);
                break;
            }
            let started = Instant::now();
            let result = channel.send(&delivery.payload).await;
            let elapsed = started.elapsed();
            let (outcome, recorded) = match result {
                Ok(()) => {
                    tracing::debug!(
                        channel = channel.name(),
                        message_id = %delivery.payload.message_id,
                        elapsed_ms = elapsed.as_millis() as u64,
                        "alert delivered"
                    );
                    (AttemptOutcome::Delivered, self.outbox.mark_delivered(&delivery.id).await)
                }
                Err(send_error) => {
                    let error = error_chain(&send_error);
                    let failures = delivery.attempts.saturating_add(1);
                    let failed_at = SystemTime::now();
                    let wait = match send_error.retry {
                        Retry::Backoff => Some(self.policy.backoff(failures)),
                        // The receiver's own word wins over our doubling (Telegram's
                        // `retry_after` is exact), but never below the first backoff.
                        Retry::After(after) => Some(after.max(self.policy.initial_backoff)),
                        Retry::Never => None,
                    };
                    let too_old = failed_at
                        .duration_since(delivery.created_at)
                        .is_ok_and(|age| age >= self.policy.give_up_after);
                    match wait.filter(|_| !too_old) {
                        Some(wait) => {
                            let next_attempt_at = to_millis(failed_at + wait);
                            tracing::warn!(
                                channel = channel.name(),
                                message_id = %delivery.payload.message_id,
                                attempts = failures,
                                retry_in_ms = wait.as_millis() as u64,
                                error = %error,
                                "alert delivery failed; retrying"
                            );
                            let recorded = self
                                .outbox
                                .mark_failed(&delivery.id, &error, Some(next_attempt_at))
                                .await;
                            state.paused_until = Some(next_attempt_at);
                            report.paused_until = Some(next_attempt_at);
                            (AttemptOutcome::Retrying { error, next_attempt_at }, recorded)
                        }
                        None => {
                            tracing::error!(
                                channel = channel.name(),
                                message_id = %delivery.payload.message_id,
                                attempts = failures,
                                error = %error,
                                "alert delivery abandoned"
                            );
                            let recorded =
                                self.outbox.mark_failed(&delivery.id, &error, None).await;
                            (AttemptOutcome::Abandoned { error }, recorded)
                        }
                    }
                }
            };
            report.attempts.push(AttemptReport {
                delivery_id: delivery.id.clone(),
                message_id: delivery.payload.message_id.clone(),
                elapsed,
                outcome,
            });
            if let Err(error) = recorded {
                tracing::warn!(channel = channel.name(), error = %error_chain(&error), "cannot record an alert attempt in the outbox");
                report.outbox_error = Some(error_chain(&error));
                return report;
            }
            if state.paused_until.is_some() {
                break;
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_initial_wait_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let waits: Vec<u64> = (1..=10).map(|failures| policy.backoff(failures).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        let configured = RetryPolicy::from_config(&DeliveryConfig {
            initial_backoff: Some(Duration::from_millis(100)),
            ..DeliveryConfig::default()
        });
        assert_eq!(configured.backoff(3), Duration::from_millis(400));
        assert_eq!(configured.max_backoff, Duration::from_secs(300));
    }
}

//! The outbox: every delivery (one message for one channel) is stored before it is attempted
//! and stays until it is delivered or abandoned, so a crash loses no notification.
//!
//! [`Outbox`] is the interface; [`MemoryOutbox`] keeps deliveries in memory (tests, and a
//! process that accepts losing them), [`SpoolOutbox`] in JSON-lines files in a local directory
//! (when PocketBase itself is down, and across restarts). A PocketBase-backed outbox maps
//! [`Delivery`] to a collection field for field.
//!
//! Delivery is at least once: a crash between a receiver's answer and `mark_delivered` sends
//! that delivery again. Receivers can drop a redelivery by its `message_id`.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::message::{AlertMessage, rfc3339};

mod memory;
mod spool;

pub use memory::MemoryOutbox;
pub use spool::SpoolOutbox;

/// 9999-12-31T23:59:59Z, the `now` of [`Outbox::pending`]: later than every `next_attempt_at`
/// and still an RFC 3339 time (a PocketBase filter takes it).
pub fn end_of_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799)
}

/// One message queued for one channel. Plain data, so that it maps to a PocketBase record:
/// times are RFC 3339 strings, the payload a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// `<message_id>:<channel>`, unique: the same message for the same channel is one delivery.
    pub id: String,
    /// The channel's configured name.
    pub channel: String,
    /// What is sent (the webhook's body; Telegram and e-mail render its title and text).
    pub payload: AlertMessage,
    pub status: DeliveryStatus,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not attempted before this time.
    #[serde(with = "rfc3339")]
    pub next_attempt_at: SystemTime,
    #[serde(with = "rfc3339")]
    pub created_at: SystemTime,
    /// The last failure, as one line without secrets.
    pub last_error: Option<String>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// A receiver accepted it.
    Delivered,
    /// Given up: refused as such, or failing for longer than the retry policy allows.
    Abandoned,
}

impl Delivery {
    /// A new pending delivery of `payload` on `channel`, due at once.
    pub fn new(channel: &str, payload: AlertMessage, now: SystemTime) -> Delivery {
        Delivery {
            id: format!("{}:{channel}", payload.message_id),
            channel: channel.to_owned(),
            payload,
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            created_at: now,
            last_error: None,
        }
    }
}

/// Where deliveries wait. Every method is durable when it returns (for a store that can be).
///
/// The methods return `Send` futures, so a dispatcher holding an outbox can run on any tokio
/// worker; an implementation writes them as `async fn`.
pub trait Outbox: Send + Sync {
    /// Stores a new delivery. One whose id is already stored (pending or settled) is left as
    /// it is: enqueuing is idempotent, so a monitor pass repeated after a crash sends nothing
    /// twice.
    fn enqueue(&self, delivery: Delivery) -> impl Future<Output = Result<(), OutboxError>> + Send;

    /// The pending deliveries of `channel` whose `next_attempt_at` is at or before `now`,
    /// oldest `created_at` first (then by id), at most `limit`.
    ///
    /// Per channel, so that a channel with a long backlog cannot hide another channel's
    /// deliveries behind a `limit`.
    fn due(
        &self,
        channel: &str,
        now: SystemTime,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Delivery>, OutboxError>> + Send;

    /// The oldest pending deliveries of `channel`, due or not, oldest first, at most `limit`:
    /// [`Outbox::due`] at the end of time. What the dispatcher reads, so a delivery waiting
    /// for its backoff holds back the later ones of its channel.
    fn pending(
        &self,
        channel: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Delivery>, OutboxError>> + Send {
        self.due(channel, end_of_time(), limit)
    }

    /// The receiver accepted it.
    fn mark_delivered(&self, id: &str) -> impl Future<Output = Result<(), OutboxError>> + Send;

    /// An attempt failed: `attempts` goes up by one and `last_error` is `error`. With
    /// `Some(time)` the delivery is tried again at `time`; with `None` it is abandoned.
    fn mark_failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: Option<SystemTime>,
    ) -> impl Future<Output = Result<(), OutboxError>> + Send;
}

impl<O: Outbox> Outbox for Arc<O> {
    async fn enqueue(&self, delivery: Delivery) -> Result<(), OutboxError> {
        O::enqueue(self, delivery).await
    }

    async fn due(
        &self,
        channel: &str,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<Delivery>, OutboxError> {
        O::due(self, channel, now, limit).await
    }

    async fn pending(&self, channel: &str, limit: usize) -> Result<Vec<Delivery>, OutboxError> {
        O::pending(self, channel, limit).await
    }

    async fn mark_delivered(&self, id: &str) -> Result<(), OutboxError> {
        O::mark_delivered(self, id).await
    }

    async fn mark_failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: Option<SystemTime>,
    ) -> Result<(), OutboxError> {
        O::mark_failed(self, id, error, next_attempt_at).await
    }
}

/// Why an outbox cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("cannot {operation} `{path}`")]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the spool directory `{dir}` is in use by another process\nhint: give every process its own spool_dir"
    )]
    Locked { dir: PathBuf },
    #[error("no delivery `{id}` in the outbox")]
    UnknownDelivery { id: String },
    /// For other implementations (PocketBase): what failed, and why as the source.
    #[error("the outbox cannot {operation}")]
    Backend {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Shared by the in-memory and spool outboxes: `due`'s order and filter.
pub(crate) fn select_due<'a>(
    deliveries: impl Iterator<Item = &'a Delivery>,
    channel: &str,
    now: SystemTime,
    limit: usize,
) -> Vec<Delivery> {
    let mut due: Vec<&Delivery> = deliveries
        .filter(|delivery| {
            delivery.channel == channel
                && delivery.status == DeliveryStatus::Pending
                && delivery.next_attempt_at <= now
        })
        .collect();
    due.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    due.into_iter().take(limit).cloned().collect()
}

/// Shared by the in-memory and spool outboxes: what `mark_failed` does to a delivery.
pub(crate) fn apply_failure(
    delivery: &mut Delivery,
    error: &str,
    next_attempt_at: Option<SystemTime>,
) {
    delivery.attempts = delivery.attempts.saturating_add(1);
    delivery.last_error = Some(error.to_owned());
    match next_attempt_at {
        Some(time) => delivery.next_attempt_at = time,
        None => delivery.status = DeliveryStatus::Abandoned,
    }
}

//! Alert channels and their delivery: the grouped messages `cfa-core`'s incident logic decides
//! on go out to every configured webhook, Telegram chat and e-mail recipient, through an outbox,
//! with retries, and without one channel that is down delaying the others. Also the
//! controller's heartbeat (a dead-man's switch).
//!
//! - [`config`]: the `[alerts]` section of `cfa.toml` ([`AlertsConfig`]).
//! - [`channels_from_config`] turns it into [`Channel`]s (secrets read from their files).
//! - [`AlertMessage::from_grouped`]: a `cfa_core::incidents::GroupedMessage` as the one
//!   message every channel renders (a storm of 500 incidents is one message).
//! - [`Dispatcher`]: stores one [`Delivery`] per channel in an [`Outbox`], then delivers each
//!   channel in its own lane with its own timeout and backoff ([`dispatch`] has the design).
//! - [`MemoryOutbox`] and [`SpoolOutbox`] (JSON lines in a local directory, synced): a
//!   PocketBase-backed outbox implements the same trait elsewhere.
//! - [`Heartbeat`]: pings a URL every interval.
//!
//! # The webhook's wire format (version 1)
//!
//! `POST <url>` with `content-type: application/json` and three headers:
//!
//! - `cfa-timestamp: <unix seconds>`
//! - `cfa-signature: sha256=<hex>`: HMAC-SHA256, keyed by the webhook's secret (the bytes of
//!   `secret_file` without trailing whitespace), over `"{cfa-timestamp}.{body}"` (the raw body
//!   bytes). Receivers recompute it, compare in constant time, and refuse timestamps more than
//!   5 minutes away ([`signature::verify_signature`] does all three).
//! - `cfa-message-id: <message_id>`, the same as in the body.
//!
//! The body is one [`AlertMessage`]; every message has an `incidents` array, one entry or
//! five hundred (at most [`MAX_INCIDENTS`]; `omitted` counts the rest of `count`):
//!
//! ```json
//! {
//!   "version": 1,
//!   "message_id": "5f0c…(32 hex digits)",
//!   "kind": "oom_killed",
//!   "status": "firing",
//!   "notification": "opened",
//!   "resolution": null,
//!   "title": "opened: OOM kill on stack acme/bot",
//!   "text": "opened: OOM kill on stack acme/bot\nexit code 137",
//!   "count": 1,
//!   "incidents": [{
//!     "id": "stack:acme/bot#k3x9q2m1p0w8e7r/oom_killed",
//!     "kind": "oom_killed",
//!     "flapping_of": null,
//!     "status": "firing",
//!     "subject_type": "stack",
//!     "subject": "stack:acme/bot#k3x9q2m1p0w8e7r",
//!     "tenant": "acme",
//!     "stack": "bot",
//!     "record_id": "k3x9q2m1p0w8e7r",
//!     "uuid": null,
//!     "opened_at": "2027-01-15T08:00:00.000Z",
//!     "at": "2027-01-15T08:00:01.250Z",
//!     "detail": "exit code 137"
//!   }],
//!   "omitted": 0
//! }
//! ```
//!
//! - `status` is `firing` (`notification` `opened` or `reminder`) or `resolved` (then
//!   `resolution` is `recovered`, `now_flapping` or `subject_removed`). Every incident announced
//!   as opened is later sent resolved, once.
//! - `incidents[].id` is the incident's key, the same from its open to its resolve; `kind` is
//!   what it is reported as (`flapping`, with `flapping_of` naming the kind that flaps);
//!   `subject_type` is `stack` (with `tenant`, `stack`, `record_id`), `server` or `service`
//!   (with `uuid`), or `platform`. Times are RFC 3339 UTC with milliseconds; `at` is when the
//!   notification became due, `opened_at` when the incident opened.
//! - `message_id` is derived from the content: a redelivery carries the same id. Delivery is at
//!   least once (a crash between the receiver's answer and our record of it sends again), so a
//!   receiver that must not act twice drops ids it has seen.
//! - Any 2xx is success. 400, 413 and 422 abandon the message (the receiver refused it as
//!   such); everything else, connection failures and timeouts included, is retried with
//!   backoff, honouring `Retry-After` (seconds) on 429 and 503.
//!
//! Telegram gets `text` (plain, or MarkdownV2 with the title in bold); e-mail gets `title` as
//! its subject and `text` as its body, for resolves too.
//!
//! **Invariant:** no log line or error carries a secret, a bot token, a webhook or heartbeat
//! URL's path, or message text; secrets are [`Secret`]s (`***`).

pub mod channel;
pub mod config;
pub mod dispatch;
pub mod heartbeat;
pub mod message;
pub mod outbox;
pub mod signature;

pub use cfa_signing::{Secret, SecretError};
pub use channel::{
    AlertsConfigError, Channel, Retry, SendError, channels_from_config, error_chain,
};
pub use config::AlertsConfig;
pub use dispatch::{AttemptOutcome, AttemptReport, ChannelReport, Dispatcher, RetryPolicy};
pub use heartbeat::{Heartbeat, HeartbeatError};
pub use message::{AlertMessage, AlertStatus, IncidentEntry, MAX_INCIDENTS, NotificationType};
pub use outbox::{Delivery, DeliveryStatus, MemoryOutbox, Outbox, OutboxError, SpoolOutbox};

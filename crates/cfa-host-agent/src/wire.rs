//! The request the agent sends and the receiver reads.
//!
//! `POST {receiver_url}/api/v1/agent/events`, `content-type: application/json`, with
//! `cfa-agent-server: <server uuid>`, `cfa-timestamp: <unix seconds>` and
//! `cfa-signature: sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">`
//! ([`crate::signature`]). The body is an [`EventBatch`]. Any 2xx acknowledges every event in
//! it (the agent reads no response body); anything else, or no answer, and the agent sends the
//! same events again later, re-signed with a new timestamp. So the receiver must accept a batch
//! whose events it already has (drop them by [`HostEvent::id`]) and still answer 2xx.

use serde::{Deserialize, Serialize};

use crate::event::HostEvent;

/// The receiver's path, appended to the agent's `--receiver-url`.
pub const EVENTS_PATH: &str = "/api/v1/agent/events";

/// The body of one report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatch {
    /// The sending server's uuid; equals the `cfa-agent-server` header and every event's `server`.
    pub server: String,
    /// Oldest first, in the order Docker reported them. May be empty when only `dropped` is news.
    pub events: Vec<HostEvent>,
    /// How many events the agent dropped (its spool was full while the receiver was away) since
    /// the last acknowledged batch: they are lost, and the receiver should say so.
    #[serde(default)]
    pub dropped: u64,
}

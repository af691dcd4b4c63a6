//! The webhook's signature, the same as the host agent's (`cfa-signing`): HMAC-SHA256 over
//! `"{timestamp}.{body}"`, keyed by the webhook's secret, sent as `cfa-signature: sha256=<hex>`
//! beside `cfa-timestamp: <unix seconds>`, plus the webhook's own [`MESSAGE_ID_HEADER`].
//!
//! [`verify_signature`] is what a receiver runs on every request before it parses the body
//! (the tests' receiver does; so can any receiver written in Rust).

pub use cfa_signing::signature::{
    DEFAULT_MAX_AGE, SIGNATURE_HEADER, SIGNATURE_PREFIX, SignatureError, TIMESTAMP_HEADER, sign,
    verify_signature,
};

/// The message's `message_id`, also in the body: a receiver can drop a redelivery unread.
pub const MESSAGE_ID_HEADER: &str = "cfa-message-id";

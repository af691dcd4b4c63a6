//! The request signature, shared with the alert webhooks (`cfa-signing`): HMAC-SHA256 over
//! `"{timestamp}.{body}"`, keyed by the server's shared secret, sent as
//! `cfa-signature: sha256=<hex>` beside `cfa-timestamp: <unix seconds>`, plus the agent's own
//! [`SERVER_HEADER`].
//!
//! [`verify_signature`] is what the receiver calls on every request, before it parses the body.

pub use cfa_signing::signature::{
    DEFAULT_MAX_AGE, SIGNATURE_HEADER, SIGNATURE_PREFIX, SignatureError, TIMESTAMP_HEADER, sign,
    verify_signature,
};

/// The sending server's uuid (also in the body); lets the receiver pick that server's secret
/// before it reads the body.
pub const SERVER_HEADER: &str = "cfa-agent-server";

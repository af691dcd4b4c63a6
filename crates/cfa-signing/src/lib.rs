//! `cfa-signing`: the one HMAC-SHA256 request signature of the platform, and the secret it is
//! keyed with.
//!
//! Three places sign or verify the same way: the host agent signs its event batches, `cfa
//! serve` verifies them, and the webhook alert channel signs what it posts (a receiver verifies
//! it). One implementation means one piece of code to audit, and a receiver written against one
//! of them accepts the others' format by construction.
//!
//! - [`signature`]: the header names, [`sign`] and [`verify_signature`] (constant-time,
//!   authenticity before age, replays and skewed clocks refused);
//! - [`secret`]: [`Secret`], a key read from a file other users cannot read, printed as `***`.
//!
//! **Architecture invariant:** pure and small. The only I/O is reading a secret file; the only
//! dependencies are `hex`, `hmac`, `sha2` and `thiserror`, so the host agent's static binary
//! stays small. Headers specific to one sender (the agent's server, the webhook's message id)
//! live in that sender's crate.

pub mod secret;
pub mod signature;

pub use secret::{Secret, SecretError};
pub use signature::{
    DEFAULT_MAX_AGE, SIGNATURE_HEADER, SIGNATURE_PREFIX, SignatureError, TIMESTAMP_HEADER, sign,
    verify_signature,
};

//! Typed client for Coolify's REST API (`/api/v1`): the only crate that knows Coolify's JSON.
//!
//! One [`CoolifyClient`] (cheap to clone; clones share one connection pool, one rate budget and
//! one cached `/version`) mirrors the Coolify operations the platform calls. Method names are
//! Coolify's operation ids in snake case (`create-service` becomes [`CoolifyClient::create_service`]).
//! Requests and responses are our own typed structs ([`types`]); Coolify's wire JSON stays inside
//! this crate.
//!
//! Transport rules (see `notes/coolify.md` §1-§3): `Accept: application/json` on every call, a
//! bearer token that never prints, timeouts, one shared client-side rate budget (Coolify allows
//! 200 requests a minute per client by default), retries with backoff and jitter for 429 (honouring
//! `Retry-After`), and for 5xx and transport failures on idempotent calls only.

#![expect(
    clippy::result_large_err,
    reason = "one error per remote call; its size is nothing next to the HTTP round trip, and public fields keep matching simple"
)]

mod budget;
mod client;
mod config;
mod error;
mod token;
pub mod types;
mod version;

pub use budget::{Lane, RateBudget};
pub use client::CoolifyClient;
pub use config::CoolifyConfig;
pub use error::{CoolifyError, CoolifyErrorKind, ForbiddenReason};
pub use token::{ApiToken, SecretValue};
pub use version::{Feature, VersionSupport, support as version_support};

//! Typed PocketBase client and schema: the only crate that knows PocketBase's JSON.
//!
//! - [`PocketBaseClient`]: login (superuser for the engine, user for a tenant's view) with
//!   token refresh; tenants, agent_stacks (typed filters, paging, expand), audit_log, and a
//!   realtime subscription to stack changes ([`StackSubscription`]); the monitor's incident
//!   tracks, incidents and alert outbox.
//! - [`schema`]: our migrations and hooks (`pocketbase/`), `install` into a PocketBase
//!   directory, and `check` of a live instance for drift.
//! - `testing` (cargo feature): starts the real PocketBase binary for tests.

mod client;
mod error;
mod filter;
mod incidents;
mod lease;
mod realtime;
pub mod schema;
mod stacks;
#[cfg(feature = "testing")]
pub mod testing;
mod types;
mod users;

pub use client::{ListOptions, MAX_PER_PAGE, Password, PocketBaseClient};
pub use error::{FieldError, PocketBaseError, PocketBaseErrorKind};
pub use filter::{AuditQuery, StackFilter, quote};
pub use incidents::{
    HostEventRecord, IncidentRecord, IncidentStatus, NewHostEvent, NewIncident, OutboxRecord,
    StoredTrack,
};
pub use lease::{Lease, LeaseRecord, Takeover};
pub use realtime::{StackChange, StackSubscription};
pub use types::{
    AgentStack, AuditEntry, AuditOutcome, NewAuditEntry, NewStack, NewTenant, Page, StackPatch,
    Tenant, TenantPatch, UserAccount, format_pocketbase_date, parse_pocketbase_date,
};

//! `cfa-host-agent`: the small agent that runs on every Coolify server, follows Docker's events
//! for the containers the platform rendered, and reports OOM kills, exits, restarts, starts and
//! health changes to `cfa serve`.
//!
//! Coolify's API cannot tell any of these: it has no OOM flag and no restart count for a
//! service's containers, and Docker clears `State.OOMKilled` when a container restarts. Exit code
//! 137 alone proves nothing (any SIGKILL gives it). Docker's `oom` event is the one reliable
//! signal, and only something on the host sees it.
//!
//! # What the library holds
//!
//! Without the default `agent` feature (what the receiver takes) the crate is only the shared,
//! pure part, with no Docker or HTTP client:
//! - [`event`]: [`HostEvent`] and [`EventKind`], the marker labels, the stable event id;
//! - [`wire`]: the request the agent sends ([`EventBatch`], [`EVENTS_PATH`], the header names);
//! - [`signature`]: [`sign`] and [`verify_signature`], which the receiver calls (from
//!   `cfa-signing`, the platform's one implementation), and [`signature::SERVER_HEADER`];
//! - [`AgentSecret`]: the shared secret read from a file (prints `***`), `cfa-signing`'s
//!   [`Secret`](cfa_signing::Secret);
//! - [`spool`] and [`backoff`]: the agent's on-disk buffer and its retry schedule.
//!
//! With `agent`: [`docker`] (the bollard event stream and the pure parse of its
//! `EventMessage`), [`report`] (the signed POST) and [`agent`] (the loop: [`agent::run`]).
//!
//! # Decision: HMAC-signed requests to `cfa serve`, not an agent-only PocketBase collection
//!
//! The issue allowed either. We report to `cfa serve` (`POST /api/v1/agent/events`), each
//! request signed with HMAC-SHA256 under a secret shared by that server's agent and the
//! receiver, because:
//! - **No PocketBase credentials on tenant-hosting servers.** A server runs tenants' containers;
//!   anything on it is one container escape away from a tenant. A PocketBase account there, even
//!   one limited to an agent-only collection, is a login to the system of record (its rules,
//!   its realtime API, its auth endpoints). A per-server HMAC secret opens nothing but this one
//!   endpoint, and can be rotated per server without touching PocketBase's users.
//! - **Replay protection.** The signed material is `"{timestamp}.{body}"`: the receiver refuses a
//!   request whose `cfa-timestamp` is older than a few minutes ([`verify_signature`]'s
//!   `max_age`), and every event carries a stable id ([`event::event_id`]), so a replay inside
//!   that window or an agent's retry is a duplicate the receiver drops.
//! - **The receiver owns incident logic.** Whether an OOM kill opens an incident, whether five
//!   exits are a restart loop, who is told: that is `cfa-core`'s pure code run by the
//!   controller, not rules in a collection or logic on the agent. The agent only observes and
//!   delivers, so it stays small and is rarely redeployed across the fleet.
//!
//! # Architecture invariant: the agent only reads Docker
//!
//! It calls `GET /version` and `GET /events` and nothing else ([`docker`]): no
//! create, start, stop, kill, exec or delete, ever. This matters because a `:ro` mount of
//! `/var/run/docker.sock` restricts nothing: `ro` applies to the socket file, and anyone who can
//! connect to the socket speaks Docker's whole API, which is root on the host. The agent's safety
//! is that its code only reads, and that it runs as platform-owned software (a systemd unit or a
//! platform-owned Coolify service, see the crate's README.md), never in a tenant's stack: the
//! template linter keeps forbidding the Docker socket in tenant templates.
//!
//! # Delivery: at least once to the receiver, never again once acknowledged
//!
//! Every event goes into an append-only JSON-lines spool in `--spool-dir` before it is sent; a
//! 2xx acknowledges a batch, and the cursor file then records it (and the time of the newest
//! acknowledged event). On start the agent resumes Docker's event stream with `since` = that
//! time, and drops any event whose id it already holds or has acknowledged, so an agent restart
//! loses nothing Docker still has and resends nothing acknowledged. While the receiver is away
//! the agent retries with capped exponential backoff; the spool is bounded (the oldest events
//! are dropped, counted in the log and reported as `dropped` in the next batch).
//!
//! Limits, from Docker: the engine keeps only its last 256 events in memory and none across its
//! own restart, so events during an agent outage longer than that (or across a dockerd restart)
//! are not replayed; and a container restarted by its restart policy emits `die` then `start`
//! (Docker sends `restart` only for an API restart), so restart loops are counted by the
//! receiver from `died` and `started` events.

pub mod backoff;
pub mod event;
pub mod signature;
pub mod spool;
pub mod wire;

#[cfg(feature = "agent")]
pub mod agent;
#[cfg(feature = "agent")]
pub mod docker;
#[cfg(feature = "agent")]
pub mod report;

/// The agent's shared secret: the platform's one secret-file type.
pub use cfa_signing::Secret as AgentSecret;
pub use cfa_signing::SecretError;
pub use event::{EventKind, HostEvent};
pub use signature::{SignatureError, sign, verify_signature};
pub use wire::{EVENTS_PATH, EventBatch};

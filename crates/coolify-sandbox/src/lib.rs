//! `coolify-sandbox`: a Coolify-4.3-compatible API server for tests and the local demo.
//!
//! It serves `/api/health` and the `/api/v1/...` operations the platform's client uses, with
//! Coolify's behaviour as `notes/coolify.md` describes it: token abilities, API-disabled and IP
//! checks, JSON and unknown-field checks, the base64 and injection checks on compose, container
//! and volume renaming, magic variables, domain conflicts, async delete, start/stop answers,
//! status strings and their aggregation, storages with backups, and the 200/min throttle.
//! Faults (latency, 429 storms, 5xx, dropped connections, stuck or failing deploys, unhealthy,
//! exited, OOM-killed or restart-looping containers, an unreachable server) are injected through
//! [`SandboxHandle::inject`], `POST /_sandbox/faults`, or the binary's `--fault` flag.
//!
//! Start it in-process with [`Sandbox::start`]; the binary wraps the same call.

mod api;
pub mod compose;
mod config;
mod faults;
pub mod front;
mod handle;
mod jobs;
pub mod runtime;
mod s3;
mod shared_variables;
mod state;
pub mod status;

pub use config::{
    Ability, DEFAULT_TOKEN, RuntimeKind, SandboxConfig, SandboxServerConfig, SandboxToken, TeamRole,
};
pub use faults::Fault;
pub use handle::{Exchange, Sandbox, SandboxError, SandboxHandle, SandboxStats};
pub use state::BackupExecution;

//! Integration tests of the engine against the real PocketBase and the Coolify sandbox.

mod backups;
mod concurrency;
mod drift;
mod dry_runs;
mod faults;
mod harness;
mod lifecycle;
mod monitor;
mod reconcile;
mod refusals;
mod status;
mod status_lag;
mod tenant_attacks;

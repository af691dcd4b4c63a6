//! Integration tests against the real PocketBase 0.40.6 (`scripts/install-deps` installs it):
//! every test starts its own server with our migrations and hooks.

mod audit;
mod client;
mod common;
mod config;
mod incidents;
mod lease;
mod quota;
mod rules;
mod schema;

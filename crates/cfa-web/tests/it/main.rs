//! `cfa_web` served on loopback over the real PocketBase and the Coolify sandbox: the tenant
//! API as a tenant (and an attacker) uses it, and the host agents' reports.

mod agent;
mod harness;
mod tenant_api;

//! The platform's HTTP server, run by `cfa serve`: `GET /healthz`, and the tenant API beside
//! PocketBase, where secrets go in and generated credentials come out without ever touching
//! PocketBase: `PUT /api/v1/tenant/stacks/{record id}/secrets` and
//! `GET /api/v1/tenant/stacks/{record id}/credentials`; and the host agents' reports
//! (`POST /api/v1/agent/events`, HMAC-signed per server). The admin portal will live here too.
//!
//! Handlers only authenticate and translate: who the caller is comes from PocketBase
//! ([`auth`]), what is allowed and what happens from the engine (`cfa_engine`'s tenant
//! requests), and every refusal is a JSON body with the HTTP status it deserves ([`problem`]).

mod api;
mod auth;
mod problem;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use cfa_engine::Engine;
use cfa_pocketbase::PocketBaseClient;

pub use api::tenant::TAKES_EFFECT_HEADER;
pub use problem::Problem;

/// What every handler reaches: the engine, the PocketBase client that checks tokens, each
/// server's host agent secret, and the bell that wakes the monitor.
#[derive(Clone, Debug)]
pub struct AppState {
    pub engine: Engine,
    pub pocketbase: PocketBaseClient,
    /// Coolify server uuid -> the secret its host agent signs with.
    pub agent_secrets: Arc<BTreeMap<String, Vec<u8>>>,
    /// Rung when host events arrive: the monitor looks now.
    pub monitor_wake: Arc<tokio::sync::Notify>,
}

impl AppState {
    /// A state with no host agents.
    pub fn new(engine: Engine, pocketbase: PocketBaseClient) -> AppState {
        AppState { engine, pocketbase, agent_secrets: Arc::default(), monitor_wake: Arc::default() }
    }
}

/// A request body larger than this is refused before it is read: a tenant's secrets are a few
/// short strings.
const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// A host agent's batch after an outage holds up to a few thousand events.
const AGENT_BODY_LIMIT_BYTES: usize = 4 * 1024 * 1024;

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(api::health::healthz))
        .route("/api/v1/tenant/stacks/{record_id}/secrets", put(api::tenant::put_secrets))
        .route("/api/v1/tenant/stacks/{record_id}/credentials", get(api::tenant::get_credentials))
        .route(
            cfa_host_agent::EVENTS_PATH,
            post(api::agent::post_events).layer(DefaultBodyLimit::max(AGENT_BODY_LIMIT_BYTES)),
        )
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .with_state(state)
}

/// Serves [`router`] on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

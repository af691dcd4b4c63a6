//! The platform's HTTP server, run by `cfa serve`: `GET /healthz`, and the tenant API beside
//! PocketBase, where secrets go in and generated credentials come out without ever touching
//! PocketBase: `PUT /api/v1/tenant/stacks/{record id}/secrets` and
//! `GET /api/v1/tenant/stacks/{record id}/credentials`. The admin portal will live here too.
//!
//! Handlers only authenticate and translate: who the caller is comes from PocketBase
//! ([`auth`]), what is allowed and what happens from the engine (`cfa_engine`'s tenant
//! requests), and every refusal is a JSON body with the HTTP status it deserves ([`problem`]).

mod api;
mod auth;
mod problem;

use std::future::Future;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, put};
use cfa_engine::Engine;
use cfa_pocketbase::PocketBaseClient;

pub use api::tenant::TAKES_EFFECT_HEADER;
pub use problem::Problem;

/// What every handler reaches: the engine and the PocketBase client that checks tokens.
#[derive(Clone, Debug)]
pub struct AppState {
    pub engine: Engine,
    pub pocketbase: PocketBaseClient,
}

/// A request body larger than this is refused before it is read: a tenant's secrets are a few
/// short strings.
const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(api::health::healthz))
        .route("/api/v1/tenant/stacks/{record_id}/secrets", put(api::tenant::put_secrets))
        .route("/api/v1/tenant/stacks/{record_id}/credentials", get(api::tenant::get_credentials))
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

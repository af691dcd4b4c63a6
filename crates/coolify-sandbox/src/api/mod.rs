//! The HTTP surface: `/api/health`, `/api/v1/...` with Coolify's middleware chain and handlers,
//! and the `/_sandbox/...` control endpoints. One module per resource; this one holds the
//! router and the order of the middleware chain.

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post, put};

use crate::handle::Shared;

mod apply;
mod chain;
mod control;
mod envs;
mod helpers;
mod lifecycle;
mod projects;
mod s3_storages;
mod servers;
mod services;
mod storages;

type AppState = Arc<Shared>;
type ApiResult = Result<Response, Response>;

pub(crate) fn router(shared: AppState) -> Router {
    let v1 = Router::new()
        .route("/api/v1/version", get(servers::version))
        .route("/api/v1/team", get(servers::team))
        .route("/api/v1/servers", get(servers::list_servers))
        .route("/api/v1/servers/{uuid}", get(servers::get_server))
        .route("/api/v1/servers/{uuid}/resources", get(servers::server_resources))
        .route("/api/v1/servers/{uuid}/destinations", get(servers::server_destinations))
        .route("/api/v1/destinations", get(servers::list_destinations))
        .route("/api/v1/projects", get(projects::list_projects).post(projects::create_project))
        .route(
            "/api/v1/projects/{uuid}",
            get(projects::get_project).delete(projects::delete_project),
        )
        .route(
            "/api/v1/projects/{uuid}/environments",
            get(projects::list_environments).post(projects::create_environment),
        )
        .route("/api/v1/projects/{uuid}/{environment}", get(projects::get_environment))
        .route("/api/v1/services", get(services::list_services).post(services::create_service))
        .route(
            "/api/v1/services/{uuid}",
            get(services::get_service)
                .patch(services::update_service)
                .delete(lifecycle::delete_service),
        )
        .route(
            "/api/v1/services/{uuid}/start",
            post(lifecycle::start_service).get(helpers::post_required),
        )
        .route(
            "/api/v1/services/{uuid}/stop",
            post(lifecycle::stop_service).get(helpers::post_required),
        )
        .route(
            "/api/v1/services/{uuid}/restart",
            post(lifecycle::restart_service).get(helpers::post_required),
        )
        .route("/api/v1/services/{uuid}/logs", get(lifecycle::service_logs))
        .route("/api/v1/services/{uuid}/envs", get(envs::list_envs))
        .route("/api/v1/services/{uuid}/envs/bulk", axum::routing::patch(envs::bulk_envs))
        .route("/api/v1/services/{uuid}/storages", get(storages::list_storages))
        .route("/api/v1/s3-storages", get(s3_storages::list).post(s3_storages::create))
        .route("/api/v1/s3-storages/{uuid}", get(s3_storages::show).delete(s3_storages::delete))
        .route(
            "/api/v1/services/{uuid}/storages/{storage_uuid}/backups",
            put(storages::upsert_backup).delete(storages::delete_backup),
        )
        .route(
            "/api/v1/services/{uuid}/storages/{storage_uuid}/backups/run",
            post(storages::run_backup),
        )
        .route_layer(middleware::from_fn_with_state(shared.clone(), chain::authenticate));
    Router::new()
        .route("/api/health", get(servers::health))
        .route("/api/v1/health", get(servers::health))
        .merge(v1)
        .route(
            "/_sandbox/faults",
            get(control::control_faults)
                .post(control::control_add_fault)
                .delete(control::control_clear_faults),
        )
        .route("/_sandbox/stats", get(control::control_stats))
        .route("/_sandbox/backup-executions", get(control::control_backup_executions))
        .route("/_sandbox/settings", post(control::control_settings))
        .fallback(helpers::not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), chain::front_door))
        .with_state(shared)
}

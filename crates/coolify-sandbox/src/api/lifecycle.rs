//! Service lifecycle: delete, start, stop, restart and logs (`ServicesController`).

use std::collections::HashMap;

use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use serde_json::json;

use crate::config::Ability;
use crate::faults::{Fault, matches_service};
use crate::handle::lock;
use crate::state::now_ms;

use super::chain::Caller;
use super::helpers::{field_error, message, query_bool, reply};
use super::services::find_service;
use super::{ApiResult, AppState};

pub(super) async fn delete_service(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    caller.require(Ability::Write)?;
    let mut world = lock(&shared.world);
    let now = now_ms();
    world.purge_deleted(now);
    let Some(service) = world.services.get_mut(&uuid) else {
        return Err(message(StatusCode::NOT_FOUND, "Service not found."));
    };
    // The flags only change what the queued job removes on the host; read them as Coolify does.
    let _delete_volumes = query_bool(&query, "delete_volumes", true);
    let _delete_configurations = query_bool(&query, "delete_configurations", true);
    let _docker_cleanup = query_bool(&query, "docker_cleanup", true);
    let _delete_networks = query_bool(&query, "delete_connected_networks", true);
    if service.deleted_at.is_none() {
        let delay = u64::try_from(shared.config.delete_delay.as_millis()).unwrap_or(0);
        service.deleted_at = Some(now + delay);
    }
    Ok(message(StatusCode::OK, "Service deletion request queued."))
}

pub(super) async fn start_service(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
) -> ApiResult {
    caller.require(Ability::Deploy)?;
    let mut world = lock(&shared.world);
    let now = now_ms();
    world.purge_deleted(now);
    let service = find_service(&world, &uuid)?;
    if world.service_status(service, now, shared.timings).contains("running") {
        return Err(message(StatusCode::BAD_REQUEST, "Service is already running."));
    }
    if let Some(service) = world.services.get_mut(&uuid) {
        service.started_at = Some(now);
    }
    Ok(message(StatusCode::OK, "Service starting request queued."))
}

pub(super) async fn stop_service(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    caller.require(Ability::Deploy)?;
    let mut world = lock(&shared.world);
    let now = now_ms();
    world.purge_deleted(now);
    let service = find_service(&world, &uuid)?;
    let status = world.service_status(service, now, shared.timings);
    if status.contains("stopped") || status.contains("exited") {
        return Err(message(StatusCode::BAD_REQUEST, "Service is already stopped."));
    }
    if let Some(service) = world.services.get_mut(&uuid) {
        service.started_at = None;
        service.last_stop_docker_cleanup = Some(query_bool(&query, "docker_cleanup", true));
    }
    Ok(message(StatusCode::OK, "Service stopping request queued."))
}

pub(super) async fn restart_service(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
) -> ApiResult {
    caller.require(Ability::Deploy)?;
    let mut world = lock(&shared.world);
    let now = now_ms();
    world.purge_deleted(now);
    find_service(&world, &uuid)?;
    if let Some(service) = world.services.get_mut(&uuid) {
        service.started_at = Some(now);
    }
    Ok(message(StatusCode::OK, "Service restarting request queued."))
}

pub(super) async fn service_logs(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    caller.require(Ability::Read)?;
    let world = lock(&shared.world);
    let service = find_service(&world, &uuid)?;
    let Some(name) = query.get("sub_service_name") else {
        return Err(field_error("sub_service_name", "The sub service name field is required."));
    };
    let Some(container) = service.containers.iter().find(|container| &container.name == name)
    else {
        return Err(message(StatusCode::NOT_FOUND, "Sub-service not found."));
    };
    let status = world.container_status(service, container, now_ms(), shared.timings);
    let oom = world.faults.iter().any(|fault| matches!(fault, Fault::ContainerOomKilled { service_uuid, .. } if matches_service(service_uuid, &uuid)));
    if !status.status.starts_with("running") && !oom {
        return Err(message(StatusCode::BAD_REQUEST, "Container is not running."));
    }
    let lines = query.get("lines").and_then(|lines| lines.parse::<usize>().ok()).unwrap_or(100);
    Ok(reply(StatusCode::OK, json!({ "logs": world.container_logs(service, container, lines) })))
}

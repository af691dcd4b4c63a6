//! Service lifecycle: delete, start, stop, restart and logs (`ServicesController`). Each
//! action queues its job (`crate::jobs`) and answers at once, as Coolify does.

use std::collections::HashMap;

use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use serde_json::json;

use crate::config::Ability;
use crate::handle::lock;
use crate::jobs::Job;
use crate::runtime::docker::{DeleteFlags, LogsError};
use crate::state::now_ms;

use super::chain::Caller;
use super::helpers::{field_error, message, query_bool, reply};
use super::services::find_service;
use super::{ApiResult, AppState};

/// `ServicesController::delete_by_uuid`: `DeleteResourceJob::dispatch` with its four flags
/// (each defaults to true).
pub(super) async fn delete_service(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    caller.require(Ability::Write)?;
    let mut world = lock(&shared.world);
    world.purge_deleted(now_ms());
    let Some(service) = world.services.get_mut(&uuid) else {
        return Err(message(StatusCode::NOT_FOUND, "Service not found."));
    };
    let flags = DeleteFlags {
        delete_volumes: query_bool(&query, "delete_volumes", true),
        delete_connected_networks: query_bool(&query, "delete_connected_networks", true),
        delete_configurations: query_bool(&query, "delete_configurations", true),
        docker_cleanup: query_bool(&query, "docker_cleanup", true),
    };
    if service.deleted_at.is_none() {
        // Visible until the job has run; far in the future until then.
        service.deleted_at = Some(u64::MAX);
        shared.jobs.dispatch(Job::DeleteResource { service_uuid: uuid, flags });
    }
    Ok(message(StatusCode::OK, "Service deletion request queued."))
}

/// `ServicesController::action_deploy`: refused while the status contains `running`, else
/// `StartService::dispatch`.
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
    shared.jobs.dispatch(Job::StartService { service_uuid: uuid });
    Ok(message(StatusCode::OK, "Service starting request queued."))
}

/// `ServicesController::action_stop`: refused while `stopped` or `exited`, else
/// `StopService::dispatch` (high queue).
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
    let docker_cleanup = query_bool(&query, "docker_cleanup", true);
    shared.jobs.dispatch(Job::StopService { service_uuid: uuid, docker_cleanup });
    Ok(message(StatusCode::OK, "Service stopping request queued."))
}

/// `ServicesController::action_restart`: `RestartService::dispatch` (high queue).
pub(super) async fn restart_service(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
) -> ApiResult {
    caller.require(Ability::Deploy)?;
    let mut world = lock(&shared.world);
    world.purge_deleted(now_ms());
    find_service(&world, &uuid)?;
    shared.jobs.dispatch(Job::RestartService { service_uuid: uuid });
    Ok(message(StatusCode::OK, "Service restarting request queued."))
}

/// `ServicesController::logs_by_uuid` (4.3.11): the container `<sub>-<uuid>` must exist (404
/// "Container not found.") and its `State.Status` be `running` (400 "Container is not
/// running."); a stopped service has none (`StopService` removes them).
pub(super) async fn service_logs(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    caller.require(Ability::Read)?;
    let lines = query.get("lines").and_then(|lines| lines.parse::<usize>().ok()).unwrap_or(100);
    let container_name = {
        let world = lock(&shared.world);
        let service = find_service(&world, &uuid)?;
        let Some(name) = query.get("sub_service_name") else {
            return Err(field_error("sub_service_name", "The sub service name field is required."));
        };
        let not_found = || message(StatusCode::NOT_FOUND, "Container not found.");
        let Some(container) = service.containers.iter().find(|container| &container.name == name)
        else {
            return Err(not_found());
        };
        if shared.runtime.docker().is_none() {
            if !world.containers_exist(service) {
                return Err(not_found());
            }
            let status = world.container_status(service, container, now_ms(), shared.timings);
            // The OOM fault's container was restarted once (restart policy): it runs again.
            let restarted = world.faults.iter().any(|fault| {
                fault.container_fault(&service.uuid, &container.name)
                    == Some(crate::faults::ContainerFault::OomKilled)
            });
            if !status.status.starts_with("running") && !restarted {
                return Err(message(StatusCode::BAD_REQUEST, "Container is not running."));
            }
            return Ok(reply(
                StatusCode::OK,
                json!({ "logs": world.container_logs(service, container, lines) }),
            ));
        }
        format!("{}-{}", container.name, service.uuid)
    };
    let Some(docker) = shared.runtime.docker() else {
        return Err(message(StatusCode::INTERNAL_SERVER_ERROR, "Server Error"));
    };
    match docker.logs(&uuid, &container_name, u32::try_from(lines).unwrap_or(u32::MAX)).await {
        Ok(logs) => Ok(reply(StatusCode::OK, json!({ "logs": logs }))),
        Err(LogsError::NotFound { .. }) => {
            Err(message(StatusCode::NOT_FOUND, "Container not found."))
        }
        Err(LogsError::NotRunning { .. }) => {
            Err(message(StatusCode::BAD_REQUEST, "Container is not running."))
        }
        Err(LogsError::Docker(_)) => {
            Err(message(StatusCode::INTERNAL_SERVER_ERROR, "Server Error"))
        }
    }
}

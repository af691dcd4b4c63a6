//! Instance, team, servers and destinations (`OtherController`, `TeamController`, `ServersController`).

use std::collections::HashMap;

use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::config::Ability;
use crate::handle::{Shared, lock};
use crate::state::{World, now_ms, timestamp};

use super::chain::Caller;
use super::helpers::{message, query_bool, reply, text};
use super::{ApiResult, AppState};

// ------------------------------------------------------------------ instance and team

pub(super) async fn health() -> Response {
    text("OK")
}

pub(super) async fn version(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult {
    caller.require(Ability::Read)?;
    Ok(text(&shared.config.version))
}

pub(super) async fn team(Extension(caller): Extension<Caller>) -> ApiResult {
    caller.require(Ability::Read)?;
    let created = timestamp(0);
    Ok(reply(
        StatusCode::OK,
        json!({
            "id": 0,
            "name": "Root Team",
            "description": "The sandbox's only team",
            "personal_team": false,
            "created_at": created,
            "updated_at": created,
            "show_boarding": false,
            "custom_server_limit": "0",
        }),
    ))
}

// ------------------------------------------------------------------ servers and destinations

pub(super) fn server_json(world: &World, index: usize, sensitive: bool) -> Value {
    let server = &world.servers[index];
    let reachable = world.server_reachable(&server.uuid);
    let mut settings = json!({
        "id": server.id,
        "server_id": server.id,
        "is_reachable": reachable,
        "is_usable": reachable,
        "is_build_server": false,
        "is_swarm_manager": false,
        "is_swarm_worker": false,
        "concurrent_builds": 2,
        "wildcard_domain": server.wildcard_domain,
        "created_at": timestamp(server.created_at),
        "updated_at": timestamp(server.created_at),
    });
    if sensitive && let Some(object) = settings.as_object_mut() {
        object.insert("sentinel_token".into(), json!("sandbox-sentinel-token"));
    }
    json!({
        "id": server.id,
        "uuid": server.uuid,
        "name": server.name,
        "description": "",
        "ip": server.ip,
        "user": "root",
        "port": 22,
        "proxy": { "type": "traefik" },
        "proxy_type": "traefik",
        "unreachable_count": if reachable { 0 } else { 3 },
        "is_reachable": reachable,
        "is_usable": reachable,
        "settings": settings,
    })
}

pub(super) async fn list_servers(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult {
    caller.require(Ability::Read)?;
    let world = lock(&shared.world);
    let servers: Vec<Value> = (0..world.servers.len())
        .map(|index| server_json(&world, index, caller.sensitive))
        .collect();
    Ok(reply(StatusCode::OK, Value::Array(servers)))
}

pub(super) async fn get_server(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    caller.require(Ability::Read)?;
    let world = lock(&shared.world);
    let Some(index) = world.servers.iter().position(|server| server.uuid == uuid) else {
        return Err(message(StatusCode::NOT_FOUND, "Server not found."));
    };
    let mut server = server_json(&world, index, caller.sensitive);
    if query_bool(&query, "resources", false)
        && let Some(object) = server.as_object_mut()
    {
        object.insert("resources".into(), resources_json(&shared, &world, &uuid));
    }
    Ok(reply(StatusCode::OK, server))
}

pub(super) fn resources_json(shared: &Shared, world: &World, server_uuid: &str) -> Value {
    let now = now_ms();
    Value::Array(
        world
            .services
            .values()
            .filter(|service| service.server_uuid == server_uuid)
            .map(|service| {
                json!({
                    "id": service.id,
                    "uuid": service.uuid,
                    "name": service.name,
                    "type": "service",
                    "created_at": timestamp(service.created_at),
                    "updated_at": timestamp(service.updated_at),
                    "status": world.service_status(service, now, shared.timings),
                })
            })
            .collect(),
    )
}

pub(super) async fn server_resources(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
) -> ApiResult {
    caller.require(Ability::Read)?;
    let mut world = lock(&shared.world);
    world.purge_deleted(now_ms());
    if !world.servers.iter().any(|server| server.uuid == uuid) {
        return Err(message(StatusCode::NOT_FOUND, "Server not found."));
    }
    Ok(reply(StatusCode::OK, resources_json(&shared, &world, &uuid)))
}

pub(super) fn destinations_json(world: &World, server_uuid: Option<&str>) -> Value {
    Value::Array(
        world
            .destinations
            .iter()
            .filter(|destination| server_uuid.is_none_or(|uuid| destination.server_uuid == uuid))
            .map(|destination| {
                json!({
                    "uuid": destination.uuid,
                    "name": destination.name,
                    "network": destination.network,
                    "type": "standalone",
                    "server_uuid": destination.server_uuid,
                    "created_at": timestamp(destination.created_at),
                    "updated_at": timestamp(destination.created_at),
                })
            })
            .collect(),
    )
}

pub(super) async fn list_destinations(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult {
    caller.require(Ability::Read)?;
    Ok(reply(StatusCode::OK, destinations_json(&lock(&shared.world), None)))
}

pub(super) async fn server_destinations(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
) -> ApiResult {
    caller.require(Ability::Read)?;
    let world = lock(&shared.world);
    if !world.servers.iter().any(|server| server.uuid == uuid) {
        return Err(message(StatusCode::NOT_FOUND, "Server not found."));
    }
    Ok(reply(StatusCode::OK, destinations_json(&world, Some(&uuid))))
}

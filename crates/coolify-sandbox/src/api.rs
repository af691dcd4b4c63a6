//! The HTTP surface: `/api/health`, `/api/v1/...` with Coolify's middleware chain and handlers,
//! and the `/_sandbox/...` control endpoints.

#![expect(
    clippy::result_large_err,
    reason = "handlers return axum Responses as errors; they are built once per request and never stored"
)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Extension, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::compose::{ComposeError, ParsedCompose, UrlBase, decode_compose_base64, parse_compose};
use crate::config::{Ability, TeamRole};
use crate::faults::{Fault, matches_service};
use crate::handle::{Exchange, Shared, ThrottleWindow, lock};
use crate::state::{
    BackupExecution, BackupRecord, ContainerRecord, EnvRecord, EnvironmentRecord, ProjectRecord,
    ServiceRecord, StorageRecord, World, backup_fault, env_json, new_uuid, now_ms, timestamp,
};

type AppState = Arc<Shared>;
type ApiResult = Result<Response, Response>;

pub(crate) fn router(shared: AppState) -> Router {
    let v1 = Router::new()
        .route("/api/v1/version", get(version))
        .route("/api/v1/team", get(team))
        .route("/api/v1/servers", get(list_servers))
        .route("/api/v1/servers/{uuid}", get(get_server))
        .route("/api/v1/servers/{uuid}/resources", get(server_resources))
        .route("/api/v1/servers/{uuid}/destinations", get(server_destinations))
        .route("/api/v1/destinations", get(list_destinations))
        .route("/api/v1/projects", get(list_projects).post(create_project))
        .route("/api/v1/projects/{uuid}", get(get_project).delete(delete_project))
        .route(
            "/api/v1/projects/{uuid}/environments",
            get(list_environments).post(create_environment),
        )
        .route("/api/v1/projects/{uuid}/{environment}", get(get_environment))
        .route("/api/v1/services", get(list_services).post(create_service))
        .route(
            "/api/v1/services/{uuid}",
            get(get_service).patch(update_service).delete(delete_service),
        )
        .route("/api/v1/services/{uuid}/start", post(start_service).get(post_required))
        .route("/api/v1/services/{uuid}/stop", post(stop_service).get(post_required))
        .route("/api/v1/services/{uuid}/restart", post(restart_service).get(post_required))
        .route("/api/v1/services/{uuid}/logs", get(service_logs))
        .route("/api/v1/services/{uuid}/envs", get(list_envs))
        .route("/api/v1/services/{uuid}/envs/bulk", axum::routing::patch(bulk_envs))
        .route("/api/v1/services/{uuid}/storages", get(list_storages))
        .route(
            "/api/v1/services/{uuid}/storages/{storage_uuid}/backups",
            put(upsert_backup).delete(delete_backup),
        )
        .route("/api/v1/services/{uuid}/storages/{storage_uuid}/backups/run", post(run_backup))
        .route_layer(middleware::from_fn_with_state(shared.clone(), authenticate));
    Router::new()
        .route("/api/health", get(health))
        .route("/api/v1/health", get(health))
        .merge(v1)
        .route(
            "/_sandbox/faults",
            get(control_faults).post(control_add_fault).delete(control_clear_faults),
        )
        .route("/_sandbox/stats", get(control_stats))
        .route("/_sandbox/backup-executions", get(control_backup_executions))
        .route("/_sandbox/settings", post(control_settings))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), front_door))
        .with_state(shared)
}

// ------------------------------------------------------------------ replies

fn reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn message(status: StatusCode, text: &str) -> Response {
    reply(status, json!({ "message": text }))
}

fn validation(errors: Value) -> Response {
    reply(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({ "message": "Validation failed.", "errors": errors }),
    )
}

fn field_error(field: &str, text: &str) -> Response {
    validation(json!({ field: [text] }))
}

/// Laravel's `response('...')`: a string body is served as HTML.
fn text(body: &str) -> Response {
    let mut response = body.to_owned().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=UTF-8"));
    response
}

async fn not_found() -> Response {
    reply(
        StatusCode::NOT_FOUND,
        json!({ "message": "Not found.", "docs": "https://coolify.io/docs" }),
    )
}

async fn post_required() -> Response {
    let mut response =
        message(StatusCode::METHOD_NOT_ALLOWED, "This endpoint has changed to a POST request.");
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

// ------------------------------------------------------------------ front door: faults, throttle, recording

async fn front_door(
    State(shared): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if !path.starts_with("/api") {
        return next.run(request).await;
    }
    // Faults act like a flaky network or proxy in front of Coolify.
    if let Some(response) = apply_request_faults(&shared, &path).await {
        shared.faulted.fetch_add(1, Ordering::Relaxed);
        return response;
    }
    let is_health = path == "/api/health" || path == "/api/v1/health";
    let mut throttle_headers = None;
    if !path.starts_with("/_sandbox") {
        shared.requests.fetch_add(1, Ordering::Relaxed);
        match throttle(&shared, is_health, peer) {
            Ok(headers) => throttle_headers = Some(headers),
            Err(response) => return response,
        }
    }
    let record = shared.config.record_exchanges;
    let (request, recorded_request) = if record {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let route =
            parts.extensions.get::<MatchedPath>().map(|matched| matched.as_str().to_owned());
        let info = (
            parts.method.to_string(),
            route,
            parts.uri.query().map(str::to_owned),
            content_type,
            bytes.to_vec(),
        );
        (Request::from_parts(parts, Body::from(bytes)), Some(info))
    } else {
        (request, None)
    };
    let mutating = request.method() != Method::GET;
    let mut response = next.run(request).await;
    if mutating {
        shared.dirty.store(true, Ordering::Release);
    }
    if let Some((limit, remaining)) = throttle_headers {
        response.headers_mut().insert("x-ratelimit-limit", HeaderValue::from(limit));
        response.headers_mut().insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    }
    if let Some((method, route, query, request_content_type, request_body)) = recorded_request {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
        let response_content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        lock(&shared.exchanges).push(Exchange {
            method,
            route,
            path,
            query,
            request_content_type,
            request_body,
            status: parts.status.as_u16(),
            response_content_type,
            response_body: bytes.to_vec(),
        });
        response = Response::from_parts(parts, Body::from(bytes));
    }
    response
}

async fn apply_request_faults(shared: &Shared, path: &str) -> Option<Response> {
    let targets =
        |target: &Option<String>| target.as_deref().is_none_or(|uuid| path.contains(uuid));
    let mut latency = Duration::ZERO;
    let mut answer: Option<Response> = None;
    {
        let mut world = lock(&shared.world);
        for fault in world.faults.iter_mut() {
            match fault {
                Fault::Latency { millis, service_uuid } if targets(service_uuid) => {
                    latency = latency.max(Duration::from_millis(*millis));
                }
                Fault::RateLimitStorm { requests, retry_after_seconds, service_uuid }
                    if *requests > 0 && targets(service_uuid) && answer.is_none() =>
                {
                    *requests -= 1;
                    let mut response = message(StatusCode::TOO_MANY_REQUESTS, "Too Many Attempts.");
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
                    answer = Some(response);
                }
                Fault::ServerError { requests, status, service_uuid }
                    if *requests > 0 && targets(service_uuid) && answer.is_none() =>
                {
                    *requests -= 1;
                    let status =
                        StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    answer = Some(message(status, "Server Error"));
                }
                Fault::DropConnection { requests, service_uuid }
                    if *requests > 0 && targets(service_uuid) && answer.is_none() =>
                {
                    *requests -= 1;
                    // Headers go out, then the body stream fails: the client sees the
                    // connection die mid-answer.
                    let stream = futures::stream::once(async {
                        Err::<Bytes, std::io::Error>(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "sandbox dropped the connection",
                        ))
                    });
                    answer = Some(Response::new(Body::from_stream(stream)));
                }
                _ => {}
            }
        }
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    answer
}

/// Laravel's fixed-window throttle: a window opens at the first hit and lasts the window
/// length; the health route has its own 1000-a-minute budget.
fn throttle(shared: &Shared, is_health: bool, peer: SocketAddr) -> Result<(u32, u32), Response> {
    let window_ms =
        u64::try_from(shared.config.rate_limit_window.as_millis()).unwrap_or(60_000).max(1);
    let limit =
        if is_health { shared.config.rate_limit.max(1000) } else { shared.config.rate_limit };
    let now = now_ms();
    let mut windows = lock(&shared.throttle);
    let window =
        windows.entry((is_health, peer.ip())).or_insert(ThrottleWindow { started_ms: 0, count: 0 });
    if window.count == 0 || now >= window.started_ms + window_ms {
        window.started_ms = now;
        window.count = 0;
        shared.rate_windows_opened.fetch_add(1, Ordering::Relaxed);
    }
    if window.count >= limit {
        shared.rate_limited.fetch_add(1, Ordering::Relaxed);
        let retry_after = (window.started_ms + window_ms).saturating_sub(now).div_ceil(1000).max(1);
        let mut response = message(StatusCode::TOO_MANY_REQUESTS, "Too Many Attempts.");
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(0));
        return Err(response);
    }
    window.count += 1;
    Ok((limit, limit - window.count))
}

// ------------------------------------------------------------------ authentication and abilities

#[derive(Debug, Clone)]
struct Caller {
    abilities: Vec<Ability>,
    sensitive: bool,
}

impl Caller {
    /// `api.ability:<x>`; `root` passes everything.
    fn require(&self, ability: Ability) -> Result<(), Response> {
        if self.abilities.contains(&Ability::Root) || self.abilities.contains(&ability) {
            Ok(())
        } else {
            Err(message(
                StatusCode::FORBIDDEN,
                &format!("Missing required permissions: {}", ability.as_str()),
            ))
        }
    }
}

async fn authenticate(
    State(shared): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_owned);
    let caller = {
        let settings = lock(&shared.settings);
        let Some(token) = presented.and_then(|presented| {
            settings.tokens.iter().find(|token| token.token == presented).cloned()
        }) else {
            return message(StatusCode::UNAUTHORIZED, "Unauthenticated.");
        };
        if token.role == TeamRole::Member
            && token.abilities.iter().any(|ability| ability.is_elevated())
        {
            return message(StatusCode::FORBIDDEN, "Missing required team role.");
        }
        if !settings.api_enabled {
            return reply(
                StatusCode::FORBIDDEN,
                json!({ "success": true, "message": "API is disabled." }),
            );
        }
        if let Some(allowed) = &settings.allowed_ips
            && !allowed.contains(&peer.ip())
        {
            return reply(
                StatusCode::FORBIDDEN,
                json!({ "success": true, "message": "You are not allowed to access the API." }),
            );
        }
        let admin = matches!(token.role, TeamRole::Owner | TeamRole::Admin);
        let sensitive = admin
            && token
                .abilities
                .iter()
                .any(|ability| matches!(ability, Ability::Root | Ability::ReadSensitive));
        Caller { abilities: token.abilities, sensitive }
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

// ------------------------------------------------------------------ request helpers

/// `validateIncomingRequest`: JSON content type, parseable, not empty.
fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, Response> {
    let invalid = |error: &str| {
        reply(StatusCode::BAD_REQUEST, json!({ "message": "Invalid request.", "error": error }))
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().to_ascii_lowercase().starts_with("application/json"));
    if !is_json {
        return Err(invalid("Content-Type must be application/json."));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid("Empty JSON."));
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| invalid("Invalid JSON."))?;
    match value {
        Value::Object(map) if map.is_empty() => Err(invalid("Empty JSON.")),
        Value::Object(map) => Ok(map),
        _ => Err(invalid("Invalid JSON.")),
    }
}

/// The `$allowedFields` check.
fn reject_unknown(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), Response> {
    let mut errors = Map::new();
    for key in body.keys() {
        if !allowed.contains(&key.as_str()) {
            errors.insert(key.clone(), json!(["This field is not allowed."]));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(validation(Value::Object(errors))) }
}

fn optional_string(
    body: &Map<String, Value>,
    field: &str,
    errors: &mut Map<String, Value>,
) -> Option<String> {
    match body.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => {
            errors.insert(
                field.to_owned(),
                json!([format!("The {} field must be a string.", field.replace('_', " "))]),
            );
            None
        }
    }
}

fn optional_bool(
    body: &Map<String, Value>,
    field: &str,
    errors: &mut Map<String, Value>,
) -> Option<bool> {
    match body.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(flag)) => Some(*flag),
        Some(Value::Number(number)) if number.as_u64() == Some(0) || number.as_u64() == Some(1) => {
            Some(number.as_u64() == Some(1))
        }
        Some(_) => {
            errors.insert(
                field.to_owned(),
                json!([format!("The {} field must be true or false.", field.replace('_', " "))]),
            );
            None
        }
    }
}

/// Laravel's `$request->boolean(key, default)`.
fn query_bool(query: &HashMap<String, String>, key: &str, default: bool) -> bool {
    match query.get(key) {
        Some(value) => matches!(value.to_ascii_lowercase().as_str(), "1" | "true" | "on" | "yes"),
        None => default,
    }
}

/// `ValidationPatterns::nameRules()`.
fn check_name(field: &str, value: Option<&str>, required: bool, errors: &mut Map<String, Value>) {
    let Some(value) = value else {
        if required {
            errors.insert(field.to_owned(), json!([format!("The {field} field is required.")]));
        }
        return;
    };
    let length = value.chars().count();
    let allowed = |character: char| {
        character.is_alphanumeric()
            || character.is_whitespace()
            || "-_.@/&()#,:+".contains(character)
    };
    if length < 3 {
        errors.insert(
            field.to_owned(),
            json!([format!("The {field} field must be at least 3 characters.")]),
        );
    } else if length > 255 {
        errors.insert(
            field.to_owned(),
            json!([format!("The {field} field must not be greater than 255 characters.")]),
        );
    } else if !value.chars().all(allowed) {
        errors.insert(field.to_owned(), json!([format!("The {field} field format is invalid.")]));
    }
}

fn env_key_valid(key: &str) -> bool {
    let mut characters = key.chars();
    let first_ok =
        characters.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_');
    first_ok
        && key.len() <= 255
        && key.chars().all(|character| {
            character.is_ascii_alphanumeric() || character == '_' || character == '.'
        })
}

// ------------------------------------------------------------------ instance and team

async fn health() -> Response {
    text("OK")
}

async fn version(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult {
    caller.require(Ability::Read)?;
    Ok(text(&shared.config.version))
}

async fn team(Extension(caller): Extension<Caller>) -> ApiResult {
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

fn server_json(world: &World, index: usize, sensitive: bool) -> Value {
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

async fn list_servers(
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

async fn get_server(
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

fn resources_json(shared: &Shared, world: &World, server_uuid: &str) -> Value {
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

async fn server_resources(
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

fn destinations_json(world: &World, server_uuid: Option<&str>) -> Value {
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

async fn list_destinations(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult {
    caller.require(Ability::Read)?;
    Ok(reply(StatusCode::OK, destinations_json(&lock(&shared.world), None)))
}

async fn server_destinations(
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

// ------------------------------------------------------------------ projects and environments

fn environment_json(project: &ProjectRecord, environment: &EnvironmentRecord) -> Value {
    json!({
        "id": environment.id,
        "uuid": environment.uuid,
        "name": environment.name,
        "project_id": project.id,
        "description": environment.description,
        "created_at": timestamp(environment.created_at),
        "updated_at": timestamp(environment.created_at),
    })
}

async fn list_projects(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult {
    caller.require(Ability::Read)?;
    let world = lock(&shared.world);
    let projects: Vec<Value> = world
        .projects
        .values()
        .map(|project| json!({ "id": project.id, "uuid": project.uuid, "name": project.name, "description": project.description }))
        .collect();
    Ok(reply(StatusCode::OK, Value::Array(projects)))
}

async fn create_project(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    caller.require(Ability::Write)?;
    let body = json_body(&headers, &body)?;
    reject_unknown(&body, &["name", "description"])?;
    let mut errors = Map::new();
    let name = optional_string(&body, "name", &mut errors);
    let description = optional_string(&body, "description", &mut errors);
    check_name("name", name.as_deref(), true, &mut errors);
    if description.as_ref().is_some_and(|description| description.chars().count() > 255) {
        errors.insert(
            "description".into(),
            json!(["The description field must not be greater than 255 characters."]),
        );
    }
    if !errors.is_empty() {
        return Err(validation(Value::Object(errors)));
    }
    let mut world = lock(&shared.world);
    let now = now_ms();
    let id = world.next_id();
    let environment_id = world.next_id();
    let uuid = new_uuid();
    // `Project::booted()` creates the `production` environment.
    world.projects.insert(
        uuid.clone(),
        ProjectRecord {
            id,
            uuid: uuid.clone(),
            name: name.unwrap_or_default(),
            description,
            environments: vec![EnvironmentRecord {
                id: environment_id,
                uuid: new_uuid(),
                name: "production".to_owned(),
                description: None,
                created_at: now,
            }],
            created_at: now,
        },
    );
    Ok(reply(StatusCode::CREATED, json!({ "uuid": uuid })))
}

async fn get_project(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
) -> ApiResult {
    caller.require(Ability::Read)?;
    let world = lock(&shared.world);
    let Some(project) = world.projects.get(&uuid) else {
        return Err(message(StatusCode::NOT_FOUND, "Project not found."));
    };
    let environments: Vec<Value> = project
        .environments
        .iter()
        .map(|environment| environment_json(project, environment))
        .collect();
    Ok(reply(
        StatusCode::OK,
        json!({
            "id": project.id,
            "uuid": project.uuid,
            "name": project.name,
            "description": project.description,
            "environments": environments,
        }),
    ))
}

async fn delete_project(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
) -> ApiResult {
    caller.require(Ability::Write)?;
    let mut world = lock(&shared.world);
    world.purge_deleted(now_ms());
    if !world.projects.contains_key(&uuid) {
        return Err(message(StatusCode::NOT_FOUND, "Project not found."));
    }
    if world.services.values().any(|service| service.project_uuid == uuid) {
        return Err(message(
            StatusCode::BAD_REQUEST,
            "Project has resources, so it cannot be deleted.",
        ));
    }
    world.projects.shift_remove(&uuid);
    Ok(message(StatusCode::OK, "Project deleted."))
}

async fn list_environments(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
) -> ApiResult {
    caller.require(Ability::Read)?;
    let world = lock(&shared.world);
    let Some(project) = world.projects.get(&uuid) else {
        return Err(message(StatusCode::NOT_FOUND, "Project not found."));
    };
    let environments: Vec<Value> = project
        .environments
        .iter()
        .map(|environment| environment_json(project, environment))
        .collect();
    Ok(reply(StatusCode::OK, Value::Array(environments)))
}

async fn create_environment(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    caller.require(Ability::Write)?;
    let body = json_body(&headers, &body)?;
    reject_unknown(&body, &["name"])?;
    let mut errors = Map::new();
    let name = optional_string(&body, "name", &mut errors);
    check_name("name", name.as_deref(), true, &mut errors);
    if !errors.is_empty() {
        return Err(validation(Value::Object(errors)));
    }
    let name = name.unwrap_or_default();
    let mut world = lock(&shared.world);
    let id = world.next_id();
    let Some(project) = world.projects.get_mut(&uuid) else {
        return Err(message(StatusCode::NOT_FOUND, "Project not found."));
    };
    if project.environments.iter().any(|environment| environment.name == name) {
        return Err(message(StatusCode::CONFLICT, "Environment with this name already exists."));
    }
    let environment_uuid = new_uuid();
    project.environments.push(EnvironmentRecord {
        id,
        uuid: environment_uuid.clone(),
        name,
        description: None,
        created_at: now_ms(),
    });
    Ok(reply(StatusCode::CREATED, json!({ "uuid": environment_uuid })))
}

async fn get_environment(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((uuid, environment)): Path<(String, String)>,
) -> ApiResult {
    caller.require(Ability::Read)?;
    let world = lock(&shared.world);
    let Some(project) = world.projects.get(&uuid) else {
        return Err(message(StatusCode::NOT_FOUND, "Project not found."));
    };
    let Some(record) =
        project.environments.iter().find(|candidate| candidate.name == environment).or_else(|| {
            project.environments.iter().find(|candidate| candidate.uuid == environment)
        })
    else {
        return Err(message(StatusCode::NOT_FOUND, "Environment not found."));
    };
    let now = now_ms();
    let services: Vec<Value> = world
        .services
        .values()
        .filter(|service| service.environment_id == record.id)
        .map(|service| {
            serde_json::to_value(world.service_list_item(
                service,
                now,
                shared.timings,
                caller.sensitive,
            ))
            .unwrap_or(Value::Null)
        })
        .collect();
    let mut value = environment_json(project, record);
    if let Some(object) = value.as_object_mut() {
        for empty in ["applications", "postgresqls", "redis", "mongodbs", "mysqls", "mariadbs"] {
            object.insert(empty.into(), json!([]));
        }
        object.insert("services".into(), Value::Array(services));
    }
    Ok(reply(StatusCode::OK, value))
}

// ------------------------------------------------------------------ services

async fn list_services(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult {
    caller.require(Ability::Read)?;
    let bytes = {
        let mut world = lock(&shared.world);
        let now = now_ms();
        world.purge_deleted(now);
        let items: Vec<_> = world
            .services
            .values()
            .map(|service| world.service_list_item(service, now, shared.timings, caller.sensitive))
            .collect();
        serde_json::to_vec(&items).unwrap_or_else(|_| b"[]".to_vec())
    };
    let mut response = bytes.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

fn find_service<'a>(world: &'a World, uuid: &str) -> Result<&'a ServiceRecord, Response> {
    world.services.get(uuid).ok_or_else(|| message(StatusCode::NOT_FOUND, "Service not found."))
}

async fn get_service(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
) -> ApiResult {
    caller.require(Ability::Read)?;
    let mut world = lock(&shared.world);
    let now = now_ms();
    world.purge_deleted(now);
    let service = find_service(&world, &uuid)?;
    Ok(reply(StatusCode::OK, world.service_json(service, now, shared.timings, caller.sensitive)))
}

const CREATE_FIELDS: &[&str] = &[
    "type",
    "name",
    "description",
    "project_uuid",
    "environment_name",
    "environment_uuid",
    "server_uuid",
    "destination_uuid",
    "instant_deploy",
    "docker_compose_raw",
    "urls",
    "force_domain_override",
    "is_container_label_escape_enabled",
    "tags",
];

const UPDATE_FIELDS: &[&str] = &[
    "name",
    "description",
    "instant_deploy",
    "docker_compose_raw",
    "connect_to_docker_network",
    "urls",
    "force_domain_override",
    "is_container_label_escape_enabled",
];

/// `urls` items as `(name, url)`, validated for shape.
fn parse_urls(
    body: &Map<String, Value>,
    errors: &mut Map<String, Value>,
) -> Option<Vec<(Option<String>, Option<String>)>> {
    match body.get("urls") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|item| {
                    (
                        item.get("name").and_then(Value::as_str).map(str::to_owned),
                        item.get("url").and_then(Value::as_str).map(str::to_owned),
                    )
                })
                .collect(),
        ),
        Some(_) => {
            errors.insert("urls".into(), json!(["The urls field must be an array."]));
            None
        }
    }
}

fn url_host(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once(':').map_or(authority, |(host, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) { host } else { authority }
    });
    let valid = !host.is_empty()
        && host.chars().all(|character| {
            character.is_ascii_alphanumeric() || character == '.' || character == '-'
        });
    valid.then(|| host.to_ascii_lowercase())
}

fn split_urls(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

enum UrlFailure {
    Errors(Vec<String>),
    Conflicts(Vec<Value>),
}

/// `applyServiceUrls`.
fn apply_urls(
    world: &mut World,
    service_uuid: &str,
    urls: &[(Option<String>, Option<String>)],
    force: bool,
) -> Result<(), UrlFailure> {
    let mut errors = Vec::new();
    let all: Vec<String> =
        urls.iter().filter_map(|(_, url)| url.as_deref()).flat_map(split_urls).collect();
    for url in &all {
        if url_host(url).is_none() {
            errors.push(format!("Invalid URL: {url}"));
        }
    }
    let mut seen = std::collections::HashSet::new();
    let duplicates: Vec<&String> = all.iter().filter(|url| !seen.insert(url.as_str())).collect();
    if !duplicates.is_empty() && !force {
        let list: Vec<&str> = duplicates.iter().map(|url| url.as_str()).collect();
        errors.push(format!(
            "The current request contains conflicting URLs across containers: {}. Use force_domain_override=true to proceed.",
            list.join(", ")
        ));
    }
    if !errors.is_empty() {
        return Err(UrlFailure::Errors(errors));
    }
    let mut conflicts = Vec::new();
    for (name, url) in urls {
        let Some(name) = name else {
            errors.push("Service container name is required to apply URLs.".to_owned());
            continue;
        };
        let Some(service) = world.services.get(service_uuid) else { continue };
        let Some(container_uuid) = service
            .containers
            .iter()
            .find(|container| !container.is_database && &container.name == name)
            .map(|container| container.uuid.clone())
        else {
            errors.push(format!("Service container with '{name}' not found."));
            continue;
        };
        let list = url.as_deref().map(split_urls).unwrap_or_default();
        if !list.is_empty() && !force {
            let mut found = Vec::new();
            for url in &list {
                let Some(host) = url_host(url) else { continue };
                for other in world.services.values() {
                    for container in &other.containers {
                        if container.uuid == container_uuid {
                            continue;
                        }
                        let used = container.fqdn.as_deref().map(split_urls).unwrap_or_default();
                        if used.iter().any(|used| url_host(used).as_deref() == Some(host.as_str()))
                        {
                            found.push(json!({
                                "domain": host,
                                "resource_name": other.name,
                                "resource_uuid": other.uuid,
                                "resource_type": "service",
                                "message": format!("Domain {host} is already in use by service '{}'", other.name),
                            }));
                        }
                    }
                }
            }
            if !found.is_empty() {
                conflicts.extend(found);
                continue;
            }
        }
        if let Some(service) = world.services.get_mut(service_uuid)
            && let Some(container) =
                service.containers.iter_mut().find(|container| container.uuid == container_uuid)
        {
            container.fqdn = if list.is_empty() { None } else { Some(list.join(",")) };
        }
    }
    if !errors.is_empty() {
        return Err(UrlFailure::Errors(errors));
    }
    if !conflicts.is_empty() {
        return Err(UrlFailure::Conflicts(conflicts));
    }
    Ok(())
}

fn url_failure_response(failure: UrlFailure) -> Response {
    match failure {
        UrlFailure::Errors(errors) => validation(json!(errors)),
        UrlFailure::Conflicts(conflicts) => reply(
            StatusCode::CONFLICT,
            json!({
                "message": "Domain conflicts detected. Use force_domain_override=true to proceed.",
                "conflicts": conflicts,
                "warning": "Using the same domain for multiple resources can cause routing conflicts and unpredictable behavior.",
            }),
        ),
    }
}

fn compose_failure(error: ComposeError) -> Response {
    match error {
        ComposeError::NotBase64 => validation(
            json!({ "docker_compose_raw": "The docker_compose_raw should be base64 encoded." }),
        ),
        // Coolify's `Yaml::parse` sits outside try/catch.
        ComposeError::InvalidYaml(_) => message(StatusCode::INTERNAL_SERVER_ERROR, "Server Error"),
        ComposeError::Rejected(reason) => validation(json!({ "docker_compose_raw": reason })),
    }
}

/// Stores a parse: containers keep their uuid by name, envs are `firstOrCreate` (declared URL
/// keys refreshed), storages keep their uuid by path.
fn apply_compose(world: &mut World, service_uuid: &str, parsed: ParsedCompose) {
    let now = now_ms();
    let mut ids: Vec<u64> = (0..parsed.containers.len()
        + parsed.envs.len()
        + parsed.volumes.len()
        + parsed.files.len())
        .map(|_| world.next_id())
        .collect();
    let Some(service) = world.services.get_mut(service_uuid) else { return };
    let mut containers = Vec::new();
    for parsed_container in parsed.containers {
        let existing =
            service.containers.iter().find(|container| container.name == parsed_container.name);
        containers.push(ContainerRecord {
            id: existing.map_or_else(|| ids.pop().unwrap_or_default(), |container| container.id),
            uuid: existing.map_or_else(new_uuid, |container| container.uuid.clone()),
            fqdn: existing.and_then(|container| container.fqdn.clone()).or(parsed_container.fqdn),
            name: parsed_container.name,
            image: parsed_container.image,
            is_database: parsed_container.is_database,
            has_healthcheck: parsed_container.has_healthcheck,
            excluded: parsed_container.excluded,
        });
    }
    service.containers = containers;
    for env in parsed.envs {
        match service.envs.get_mut(&env.key) {
            Some(existing) if env.refresh => {
                existing.value = Some(env.value);
                existing.updated_at = now;
            }
            Some(_) => {}
            None => {
                service.envs.insert(
                    env.key.clone(),
                    EnvRecord {
                        id: ids.pop().unwrap_or_default(),
                        uuid: new_uuid(),
                        key: env.key,
                        value: Some(env.value),
                        is_required: env.is_required,
                        is_literal: false,
                        is_multiline: false,
                        is_shown_once: false,
                        comment: None,
                        created_at: now,
                        updated_at: now,
                    },
                );
            }
        }
    }
    let container_uuid = |name: &str| {
        service
            .containers
            .iter()
            .find(|container| container.name == name)
            .map(|container| container.uuid.clone())
            .unwrap_or_default()
    };
    let mut storages = Vec::new();
    for volume in parsed.volumes {
        let existing = service
            .storages
            .iter()
            .find(|storage| storage.volume_name.as_deref() == Some(&volume.name));
        storages.push(StorageRecord {
            id: existing.map_or_else(|| ids.pop().unwrap_or_default(), |storage| storage.id),
            uuid: existing.map_or_else(new_uuid, |storage| storage.uuid.clone()),
            container_uuid: container_uuid(&volume.container),
            mount_path: volume.mount_path,
            volume_name: Some(volume.name),
            fs_path: None,
            is_directory: false,
            content: None,
            backup: existing.and_then(|storage| storage.backup.clone()),
            created_at: existing.map_or(now, |storage| storage.created_at),
        });
    }
    for file in parsed.files {
        let existing = service
            .storages
            .iter()
            .find(|storage| storage.fs_path.as_deref() == Some(&file.fs_path));
        storages.push(StorageRecord {
            id: existing.map_or_else(|| ids.pop().unwrap_or_default(), |storage| storage.id),
            uuid: existing.map_or_else(new_uuid, |storage| storage.uuid.clone()),
            container_uuid: container_uuid(&file.container),
            mount_path: file.mount_path,
            volume_name: None,
            fs_path: Some(file.fs_path),
            is_directory: file.is_directory,
            // Write-once: existing content wins (notes §4.5).
            content: existing.and_then(|storage| storage.content.clone()).or(file.content),
            backup: existing.and_then(|storage| storage.backup.clone()),
            created_at: existing.map_or(now, |storage| storage.created_at),
        });
    }
    service.storages = storages;
    service.raw = parsed.raw;
    service.rendered = parsed.rendered;
    service.updated_at = now;
}

fn domains_of(service: &ServiceRecord) -> Vec<String> {
    let mut domains: Vec<String> = service
        .containers
        .iter()
        .filter_map(|container| container.fqdn.clone())
        .filter(|fqdn| !fqdn.is_empty())
        .collect();
    domains.sort();
    domains
}

async fn create_service(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    caller.require(Ability::Write)?;
    let body = json_body(&headers, &body)?;
    reject_unknown(&body, CREATE_FIELDS)?;
    let mut errors = Map::new();
    let service_type = optional_string(&body, "type", &mut errors);
    let compose_raw = optional_string(&body, "docker_compose_raw", &mut errors);
    let project_uuid = optional_string(&body, "project_uuid", &mut errors);
    let server_uuid = optional_string(&body, "server_uuid", &mut errors);
    let environment_name = optional_string(&body, "environment_name", &mut errors);
    let environment_uuid = optional_string(&body, "environment_uuid", &mut errors);
    let destination_uuid = optional_string(&body, "destination_uuid", &mut errors);
    let name = optional_string(&body, "name", &mut errors);
    let description = optional_string(&body, "description", &mut errors);
    let instant_deploy = optional_bool(&body, "instant_deploy", &mut errors).unwrap_or(false);
    let force = optional_bool(&body, "force_domain_override", &mut errors).unwrap_or(false);
    let label_escape =
        optional_bool(&body, "is_container_label_escape_enabled", &mut errors).unwrap_or(true);
    let urls = parse_urls(&body, &mut errors);
    for (field, value) in [("project_uuid", &project_uuid), ("server_uuid", &server_uuid)] {
        if value.is_none() {
            errors.insert(
                field.into(),
                json!([format!("The {} field is required.", field.replace('_', " "))]),
            );
        }
    }
    if service_type.is_none() && compose_raw.is_none() {
        errors.insert(
            "type".into(),
            json!(["The type field is required when docker compose raw is not present."]),
        );
        errors.insert(
            "docker_compose_raw".into(),
            json!(["The docker compose raw field is required when type is not present."]),
        );
    }
    if name.as_ref().is_some_and(|name| name.chars().count() > 255) {
        errors.insert(
            "name".into(),
            json!(["The name field must not be greater than 255 characters."]),
        );
    }
    if !errors.is_empty() {
        return Err(validation(Value::Object(errors)));
    }
    if environment_name.is_none() && environment_uuid.is_none() {
        return Err(message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "You need to provide at least one of environment_name or environment_uuid.",
        ));
    }
    if service_type.is_some() && compose_raw.is_some() {
        return Err(message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "You cannot provide both service type and docker_compose_raw. Use one or the other.",
        ));
    }
    let Some(compose_raw) = compose_raw else {
        // The sandbox has no one-click template bundle.
        return Err(reply(
            StatusCode::NOT_FOUND,
            json!({ "message": "Service not found.", "valid_service_types": [] }),
        ));
    };

    let mut world = lock(&shared.world);
    let project_uuid = project_uuid.unwrap_or_default();
    let Some(project) = world.projects.get(&project_uuid) else {
        return Err(message(StatusCode::NOT_FOUND, "Project not found."));
    };
    let environment = environment_name
        .as_ref()
        .and_then(|name| project.environments.iter().find(|environment| &environment.name == name))
        .or_else(|| {
            environment_uuid.as_ref().and_then(|uuid| {
                project.environments.iter().find(|environment| &environment.uuid == uuid)
            })
        });
    let Some(environment_id) = environment.map(|environment| environment.id) else {
        return Err(message(StatusCode::NOT_FOUND, "Environment not found."));
    };
    let server_uuid = server_uuid.unwrap_or_default();
    let Some(server) = world.servers.iter().find(|server| server.uuid == server_uuid).cloned()
    else {
        return Err(message(StatusCode::NOT_FOUND, "Server not found."));
    };
    let destinations: Vec<_> = world
        .destinations
        .iter()
        .filter(|destination| destination.server_uuid == server.uuid)
        .collect();
    let destination_id = match destinations.len() {
        0 => return Err(message(StatusCode::BAD_REQUEST, "Server has no destinations.")),
        // With exactly one destination the given uuid is ignored.
        1 => destinations[0].id,
        _ => match &destination_uuid {
            None => {
                return Err(message(
                    StatusCode::BAD_REQUEST,
                    "Server has multiple destinations and you do not set destination_uuid.",
                ));
            }
            Some(uuid) => match destinations.iter().find(|destination| &destination.uuid == uuid) {
                Some(destination) => destination.id,
                None => {
                    return Err(validation(
                        json!({ "destination_uuid": "Provided destination_uuid does not belong to the specified server." }),
                    ));
                }
            },
        },
    };
    let yaml = decode_compose_base64(&compose_raw).map_err(compose_failure)?;
    let uuid = new_uuid();
    let parsed = parse_compose(
        &yaml,
        &uuid,
        &UrlBase::for_server(&server.ip, server.wildcard_domain.as_deref()),
    )
    .map_err(compose_failure)?;
    let now = now_ms();
    let id = world.next_id();
    world.services.insert(
        uuid.clone(),
        ServiceRecord {
            id,
            uuid: uuid.clone(),
            name: name.unwrap_or_else(|| format!("service-{}", &new_uuid()[..10])),
            description,
            project_uuid,
            environment_id,
            server_uuid: server.uuid.clone(),
            server_id: server.id,
            destination_id,
            raw: String::new(),
            rendered: String::new(),
            containers: Vec::new(),
            envs: indexmap::IndexMap::new(),
            storages: Vec::new(),
            started_at: None,
            deleted_at: None,
            connect_to_docker_network: false,
            is_container_label_escape_enabled: label_escape,
            last_stop_docker_cleanup: None,
            created_at: now,
            updated_at: now,
        },
    );
    apply_compose(&mut world, &uuid, parsed);
    if let Some(urls) = urls
        && let Err(failure) = apply_urls(&mut world, &uuid, &urls, force)
    {
        // Create rolls back (`$service->delete()`); PATCH does not.
        world.services.shift_remove(&uuid);
        return Err(url_failure_response(failure));
    }
    let Some(service) = world.services.get_mut(&uuid) else {
        return Err(message(StatusCode::INTERNAL_SERVER_ERROR, "Server Error"));
    };
    if instant_deploy {
        service.started_at = Some(now);
    }
    let domains = domains_of(service);
    Ok(reply(StatusCode::CREATED, json!({ "uuid": uuid, "domains": domains })))
}

async fn update_service(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    caller.require(Ability::Write)?;
    let body = json_body(&headers, &body)?;
    reject_unknown(&body, UPDATE_FIELDS)?;
    let mut errors = Map::new();
    let name = optional_string(&body, "name", &mut errors);
    let description = optional_string(&body, "description", &mut errors);
    let compose_raw = optional_string(&body, "docker_compose_raw", &mut errors);
    let instant_deploy = optional_bool(&body, "instant_deploy", &mut errors).unwrap_or(false);
    let force = optional_bool(&body, "force_domain_override", &mut errors).unwrap_or(false);
    let connect = optional_bool(&body, "connect_to_docker_network", &mut errors);
    let label_escape = optional_bool(&body, "is_container_label_escape_enabled", &mut errors);
    let urls = parse_urls(&body, &mut errors);
    if !errors.is_empty() {
        return Err(validation(Value::Object(errors)));
    }
    let mut world = lock(&shared.world);
    world.purge_deleted(now_ms());
    let service = find_service(&world, &uuid)?;
    let server = world.servers.iter().find(|server| server.uuid == service.server_uuid).cloned();
    let parsed = match compose_raw {
        Some(encoded) => {
            let yaml = decode_compose_base64(&encoded).map_err(compose_failure)?;
            let url_base = server.as_ref().map_or_else(
                || UrlBase::for_server("127.0.0.1", None),
                |server| UrlBase::for_server(&server.ip, server.wildcard_domain.as_deref()),
            );
            Some(parse_compose(&yaml, &uuid, &url_base).map_err(compose_failure)?)
        }
        None => None,
    };
    if let Some(service) = world.services.get_mut(&uuid) {
        if let Some(name) = name {
            service.name = name;
        }
        if description.is_some() {
            service.description = description;
        }
        if let Some(connect) = connect {
            service.connect_to_docker_network = connect;
        }
        if let Some(label_escape) = label_escape {
            service.is_container_label_escape_enabled = label_escape;
        }
        service.updated_at = now_ms();
    }
    if let Some(parsed) = parsed {
        apply_compose(&mut world, &uuid, parsed);
    }
    if let Some(urls) = urls {
        apply_urls(&mut world, &uuid, &urls, force).map_err(url_failure_response)?;
    }
    let service = find_service(&world, &uuid)?;
    let domains = domains_of(service);
    if instant_deploy && let Some(service) = world.services.get_mut(&uuid) {
        service.started_at = Some(now_ms());
    }
    Ok(reply(StatusCode::OK, json!({ "uuid": uuid, "domains": domains })))
}

async fn delete_service(
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

async fn start_service(
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

async fn stop_service(
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

async fn restart_service(
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

async fn service_logs(
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

// ------------------------------------------------------------------ envs

async fn list_envs(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
) -> ApiResult {
    caller.require(Ability::Read)?;
    let world = lock(&shared.world);
    let service = find_service(&world, &uuid)?;
    let envs: Vec<Value> =
        service.envs.values().map(|env| env_json(service, env, caller.sensitive)).collect();
    Ok(reply(StatusCode::OK, Value::Array(envs)))
}

async fn bulk_envs(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    caller.require(Ability::Write)?;
    let body = json_body(&headers, &body)?;
    let mut world = lock(&shared.world);
    find_service(&world, &uuid)?;
    let Some(items) = body.get("data").and_then(Value::as_array).filter(|items| !items.is_empty())
    else {
        return Err(message(StatusCode::BAD_REQUEST, "Bulk data is required."));
    };
    let items = items.clone();
    let now = now_ms();
    let mut answer = Vec::new();
    for item in items {
        let Some(item) = item.as_object() else {
            return Err(field_error("key", "The key field is required."));
        };
        let mut errors = Map::new();
        let key = optional_string(item, "key", &mut errors).map(|key| key.trim().replace(' ', "_"));
        let value = optional_string(item, "value", &mut errors);
        let is_literal = optional_bool(item, "is_literal", &mut errors);
        let is_multiline = optional_bool(item, "is_multiline", &mut errors);
        let is_shown_once = optional_bool(item, "is_shown_once", &mut errors);
        let comment = optional_string(item, "comment", &mut errors);
        match &key {
            None => {
                errors.insert("key".into(), json!(["The key field is required."]));
            }
            Some(key) if !env_key_valid(key) => {
                errors.insert("key".into(), json!(["The key field format is invalid."]));
            }
            Some(_) => {}
        }
        if !errors.is_empty() {
            // Coolify stops at the first invalid item; earlier ones stay written.
            return Err(validation(Value::Object(errors)));
        }
        let key = key.unwrap_or_default();
        let id = world.next_id();
        let Some(service) = world.services.get_mut(&uuid) else { break };
        let env = service.envs.entry(key.clone()).or_insert_with(|| EnvRecord {
            id,
            uuid: new_uuid(),
            key: key.clone(),
            value: None,
            is_required: false,
            is_literal: false,
            is_multiline: false,
            is_shown_once: false,
            comment: None,
            created_at: now,
            updated_at: now,
        });
        if value.is_some() || item.contains_key("value") {
            env.value = value;
        }
        if let Some(flag) = is_literal {
            env.is_literal = flag;
        }
        if let Some(flag) = is_multiline {
            env.is_multiline = flag;
        }
        if let Some(flag) = is_shown_once {
            env.is_shown_once = flag;
        }
        if comment.is_some() {
            env.comment = comment;
        }
        env.updated_at = now;
        let env = env.clone();
        if let Some(service) = world.services.get(&uuid) {
            answer.push(env_json(service, &env, caller.sensitive));
        }
    }
    Ok(reply(StatusCode::CREATED, Value::Array(answer)))
}

// ------------------------------------------------------------------ storages and backups

async fn list_storages(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
) -> ApiResult {
    caller.require(Ability::Read)?;
    let world = lock(&shared.world);
    let service = find_service(&world, &uuid)?;
    let mut persistent = Vec::new();
    let mut files = Vec::new();
    for storage in &service.storages {
        let container =
            service.containers.iter().find(|container| container.uuid == storage.container_uuid);
        let resource_type = if container.is_some_and(|container| container.is_database) {
            "database"
        } else {
            "application"
        };
        let resource_id = container.map_or(0, |container| container.id);
        match (&storage.volume_name, &storage.fs_path) {
            (Some(name), _) => persistent.push(json!({
                "id": storage.id,
                "uuid": storage.uuid,
                "name": name,
                "mount_path": storage.mount_path,
                "host_path": null,
                "container_id": null,
                "resource_id": resource_id,
                "resource_type": resource_type,
                "resource_uuid": storage.container_uuid,
                "is_preview_suffix_enabled": true,
                "created_at": timestamp(storage.created_at),
                "updated_at": timestamp(storage.created_at),
            })),
            (None, Some(fs_path)) => {
                let mut file = json!({
                    "id": storage.id,
                    "uuid": storage.uuid,
                    "fs_path": fs_path,
                    "mount_path": storage.mount_path,
                    "is_directory": storage.is_directory,
                    "is_host_file": false,
                    "is_based_on_git": false,
                    "chown": null,
                    "chmod": null,
                    "resource_id": resource_id,
                    "resource_type": resource_type,
                    "resource_uuid": storage.container_uuid,
                    "is_preview_suffix_enabled": true,
                    "created_at": timestamp(storage.created_at),
                    "updated_at": timestamp(storage.created_at),
                });
                if caller.sensitive
                    && let Some(object) = file.as_object_mut()
                {
                    object.insert("content".into(), json!(storage.content));
                }
                files.push(file);
            }
            (None, None) => {}
        }
    }
    Ok(reply(StatusCode::OK, json!({ "persistent_storages": persistent, "file_storages": files })))
}

const BACKUP_FIELDS: &[&str] = &[
    "frequency",
    "enabled",
    "save_s3",
    "disable_local_backup",
    "stop_during_backup",
    "s3_storage_uuid",
    "retention_amount_locally",
    "retention_days_locally",
    "retention_max_storage_locally",
    "retention_amount_s3",
    "retention_days_s3",
    "retention_max_storage_s3",
    "timeout",
];

fn valid_frequency(frequency: &str) -> bool {
    let human = [
        "every_minute",
        "hourly",
        "daily",
        "weekly",
        "monthly",
        "yearly",
        "@hourly",
        "@daily",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
    ];
    if human.contains(&frequency) {
        return true;
    }
    let fields: Vec<&str> = frequency.split_whitespace().collect();
    fields.len() == 5
        && fields.iter().all(|field| {
            field.chars().all(|character| character.is_ascii_digit() || "*/,-".contains(character))
        })
}

fn backup_json(backup: &BackupRecord, storage: &StorageRecord, created: bool) -> Value {
    json!({
        "uuid": backup.uuid,
        "message": if created { "Storage backup schedule created." } else { "Storage backup schedule updated." },
        "storage_uuid": storage.uuid,
        "storage_type": if storage.volume_name.is_some() { "persistent" } else { "directory" },
        "frequency": backup.frequency,
        "enabled": backup.enabled,
        "save_s3": backup.save_s3,
        "disable_local_backup": backup.disable_local_backup,
        "stop_during_backup": backup.stop_during_backup,
        "s3_storage_uuid": backup.s3_storage_uuid,
        "retention_amount_locally": backup.retention_amount_locally,
        "retention_days_locally": backup.retention_days_locally,
        "retention_max_storage_locally": backup.retention_max_storage_locally,
        "retention_amount_s3": backup.retention_amount_s3,
        "retention_days_s3": backup.retention_days_s3,
        "retention_max_storage_s3": backup.retention_max_storage_s3,
        "timeout": backup.timeout,
    })
}

fn integer_field(
    body: &Map<String, Value>,
    field: &str,
    default: i64,
    range: (i64, i64),
    errors: &mut Map<String, Value>,
) -> i64 {
    match body.get(field) {
        None => default,
        Some(value) => match value.as_i64() {
            Some(number) if number >= range.0 && number <= range.1 => number,
            Some(_) => {
                errors.insert(
                    field.into(),
                    json!([format!(
                        "The {} field must be between {} and {}.",
                        field.replace('_', " "),
                        range.0,
                        range.1
                    )]),
                );
                default
            }
            None => {
                errors.insert(
                    field.into(),
                    json!([format!("The {} field must be an integer.", field.replace('_', " "))]),
                );
                default
            }
        },
    }
}

async fn upsert_backup(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((uuid, storage_uuid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    caller.require(Ability::Write)?;
    let body = json_body(&headers, &body)?;
    let mut world = lock(&shared.world);
    let service = find_service(&world, &uuid)?;
    let Some(storage) = service.storages.iter().find(|storage| storage.uuid == storage_uuid) else {
        return Err(message(StatusCode::NOT_FOUND, "Storage not found."));
    };
    let mut errors = Map::new();
    let frequency = optional_string(&body, "frequency", &mut errors);
    match &frequency {
        None if !errors.contains_key("frequency") => {
            errors.insert("frequency".into(), json!(["The frequency field is required."]));
        }
        Some(frequency) if !valid_frequency(frequency) => {
            errors.insert(
                "frequency".into(),
                json!(["The frequency must be a valid cron or human expression."]),
            );
        }
        _ => {}
    }
    let enabled = optional_bool(&body, "enabled", &mut errors).unwrap_or(true);
    let save_s3 = optional_bool(&body, "save_s3", &mut errors).unwrap_or(false);
    let disable_local = optional_bool(&body, "disable_local_backup", &mut errors).unwrap_or(false);
    let stop_during = optional_bool(&body, "stop_during_backup", &mut errors).unwrap_or(false);
    let s3_uuid = optional_string(&body, "s3_storage_uuid", &mut errors);
    let retention_amount_locally =
        integer_field(&body, "retention_amount_locally", 7, (0, 10_000), &mut errors);
    let retention_days_locally =
        integer_field(&body, "retention_days_locally", 0, (0, 2_147_483_647), &mut errors);
    let retention_amount_s3 =
        integer_field(&body, "retention_amount_s3", 7, (0, 10_000), &mut errors);
    let retention_days_s3 =
        integer_field(&body, "retention_days_s3", 0, (0, 2_147_483_647), &mut errors);
    let timeout = integer_field(&body, "timeout", 3600, (60, 36_000), &mut errors);
    for key in body.keys() {
        if !BACKUP_FIELDS.contains(&key.as_str()) {
            errors.insert(key.clone(), json!(["This field is not allowed."]));
        }
    }
    if disable_local && !save_s3 {
        errors.insert(
            "disable_local_backup".into(),
            json!(["Local backups can only be disabled when S3 backups are enabled."]),
        );
    }
    if save_s3 && s3_uuid.as_deref() != Some(world.s3_storage_uuid.as_str()) {
        errors.insert(
            "s3_storage_uuid".into(),
            json!(["Select a usable S3 storage owned by your team."]),
        );
    }
    if storage.volume_name.is_none() && !storage.is_directory {
        errors.insert(
            "storage_uuid".into(),
            json!(["Only directory file storages can be backed up."]),
        );
    }
    if !errors.is_empty() {
        return Err(validation(Value::Object(errors)));
    }
    let float_field = |field: &str| body.get(field).and_then(Value::as_f64).unwrap_or(0.0);
    let Some(storage) = world.services.get_mut(&uuid).and_then(|service| {
        service.storages.iter_mut().find(|storage| storage.uuid == storage_uuid)
    }) else {
        return Err(message(StatusCode::NOT_FOUND, "Storage not found."));
    };
    let created = storage.backup.is_none();
    let backup_uuid = storage.backup.as_ref().map_or_else(new_uuid, |backup| backup.uuid.clone());
    let previous_timeout = storage.backup.as_ref().map_or(3600, |backup| backup.timeout);
    let backup = BackupRecord {
        uuid: backup_uuid,
        frequency: frequency.unwrap_or_default(),
        enabled,
        save_s3,
        s3_storage_uuid: if save_s3 { s3_uuid } else { None },
        disable_local_backup: save_s3 && disable_local,
        stop_during_backup: stop_during,
        retention_amount_locally,
        retention_days_locally,
        retention_max_storage_locally: float_field("retention_max_storage_locally"),
        retention_amount_s3,
        retention_days_s3,
        retention_max_storage_s3: float_field("retention_max_storage_s3"),
        timeout: if body.contains_key("timeout") { timeout } else { previous_timeout },
    };
    storage.backup = Some(backup.clone());
    let answer = backup_json(&backup, storage, created);
    Ok(reply(if created { StatusCode::CREATED } else { StatusCode::OK }, answer))
}

async fn delete_backup(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((uuid, storage_uuid)): Path<(String, String)>,
) -> ApiResult {
    caller.require(Ability::Write)?;
    let mut world = lock(&shared.world);
    let now = now_ms();
    let running = world
        .backup_executions
        .iter()
        .any(|execution| execution.storage_uuid == storage_uuid && execution.finished_at_ms > now);
    let Some(service) = world.services.get_mut(&uuid) else {
        return Err(message(StatusCode::NOT_FOUND, "Resource not found."));
    };
    let Some(storage) = service.storages.iter_mut().find(|storage| storage.uuid == storage_uuid)
    else {
        return Err(message(StatusCode::NOT_FOUND, "Storage not found."));
    };
    if storage.backup.is_none() {
        return Err(message(StatusCode::NOT_FOUND, "Storage backup schedule not found."));
    }
    if running {
        return Err(message(StatusCode::CONFLICT, "A backup is still running for this storage."));
    }
    storage.backup = None;
    world.backup_executions.retain(|execution| execution.storage_uuid != storage_uuid);
    Ok(message(StatusCode::OK, "Storage backup schedule and archives deleted."))
}

async fn run_backup(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((uuid, storage_uuid)): Path<(String, String)>,
) -> ApiResult {
    caller.require(Ability::Write)?;
    let mut world = lock(&shared.world);
    let service = find_service(&world, &uuid)?;
    let Some(storage) = service.storages.iter().find(|storage| storage.uuid == storage_uuid) else {
        return Err(message(StatusCode::NOT_FOUND, "Storage not found."));
    };
    let Some(backup) = storage.backup.clone() else {
        return Err(message(StatusCode::NOT_FOUND, "Storage backup schedule not found."));
    };
    let (fails, empty) = backup_fault(&world.faults, &uuid);
    let now = now_ms();
    let duration = u64::try_from(shared.config.backup_duration.as_millis()).unwrap_or(0);
    let size_bytes = if fails || empty {
        0
    } else {
        4096 + 1024 * u64::try_from(service.envs.len()).unwrap_or(0)
    };
    world.backup_executions.push(BackupExecution {
        uuid: new_uuid(),
        backup_uuid: backup.uuid.clone(),
        service_uuid: uuid.clone(),
        storage_uuid,
        started_at_ms: now,
        finished_at_ms: now + duration,
        outcome: if fails { "failed".to_owned() } else { "success".to_owned() },
        size_bytes,
    });
    Ok(reply(StatusCode::OK, json!({ "message": "Storage backup queued.", "uuid": backup.uuid })))
}

// ------------------------------------------------------------------ control endpoints

async fn control_faults(State(shared): State<AppState>) -> Response {
    reply(StatusCode::OK, serde_json::to_value(&lock(&shared.world).faults).unwrap_or(Value::Null))
}

async fn control_add_fault(State(shared): State<AppState>, body: Bytes) -> Response {
    match serde_json::from_slice::<Fault>(&body) {
        Ok(fault) => {
            lock(&shared.world).faults.push(fault);
            message(StatusCode::CREATED, "Fault injected.")
        }
        Err(error) => message(StatusCode::UNPROCESSABLE_ENTITY, &format!("invalid fault: {error}")),
    }
}

async fn control_clear_faults(State(shared): State<AppState>) -> Response {
    lock(&shared.world).faults.clear();
    message(StatusCode::OK, "Faults cleared.")
}

async fn control_stats(State(shared): State<AppState>) -> Response {
    reply(
        StatusCode::OK,
        json!({
            "requests": shared.requests.load(Ordering::Relaxed),
            "rate_limited": shared.rate_limited.load(Ordering::Relaxed),
            "rate_windows_opened": shared.rate_windows_opened.load(Ordering::Relaxed),
            "faulted": shared.faulted.load(Ordering::Relaxed),
            "services": lock(&shared.world).services.len(),
        }),
    )
}

async fn control_backup_executions(State(shared): State<AppState>) -> Response {
    let now = now_ms();
    let executions: Vec<Value> = lock(&shared.world)
        .backup_executions
        .iter()
        .map(|execution| {
            let mut value = serde_json::to_value(execution).unwrap_or(Value::Null);
            if execution.finished_at_ms > now
                && let Some(object) = value.as_object_mut()
            {
                object.insert("outcome".into(), json!("running"));
            }
            value
        })
        .collect();
    reply(StatusCode::OK, Value::Array(executions))
}

async fn control_settings(State(shared): State<AppState>, body: Bytes) -> Response {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return message(StatusCode::UNPROCESSABLE_ENTITY, "expected a JSON object");
    };
    let mut settings = lock(&shared.settings);
    if let Some(enabled) = body.get("api_enabled").and_then(Value::as_bool) {
        settings.api_enabled = enabled;
    }
    if let Some(allowed) = body.get("allowed_ips") {
        settings.allowed_ips = allowed.as_array().map(|list| {
            list.iter().filter_map(Value::as_str).filter_map(|ip| ip.parse().ok()).collect()
        });
    }
    message(StatusCode::OK, "Settings updated.")
}

//! Services: list, show, create and update (`ServicesController`).

#![expect(
    clippy::result_large_err,
    reason = "handlers return axum Responses as errors; they are built once per request and never stored"
)]

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::compose::{UrlBase, decode_compose_base64, parse_compose};
use crate::config::Ability;
use crate::handle::lock;
use crate::state::{ServiceRecord, World, new_uuid, now_ms};

use super::apply::{apply_compose, apply_urls, compose_failure, parse_urls, url_failure_response};
use super::chain::Caller;
use super::helpers::{
    json_body, message, optional_bool, optional_string, reject_unknown, reply, validation,
};
use super::{ApiResult, AppState};

// ------------------------------------------------------------------ services

pub(super) async fn list_services(
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

pub(super) fn find_service<'a>(
    world: &'a World,
    uuid: &str,
) -> Result<&'a ServiceRecord, Response> {
    world.services.get(uuid).ok_or_else(|| message(StatusCode::NOT_FOUND, "Service not found."))
}

pub(super) async fn get_service(
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

pub(super) const CREATE_FIELDS: &[&str] = &[
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

pub(super) const UPDATE_FIELDS: &[&str] = &[
    "name",
    "description",
    "instant_deploy",
    "docker_compose_raw",
    "connect_to_docker_network",
    "urls",
    "force_domain_override",
    "is_container_label_escape_enabled",
];

pub(super) fn domains_of(service: &ServiceRecord) -> Vec<String> {
    let mut domains: Vec<String> = service
        .containers
        .iter()
        .filter_map(|container| container.fqdn.clone())
        .filter(|fqdn| !fqdn.is_empty())
        .collect();
    domains.sort();
    domains
}

pub(super) async fn create_service(
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
            activity: None,
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
        shared.jobs.dispatch(crate::jobs::Job::StartService { service_uuid: uuid.clone() });
    }
    let domains = domains_of(service);
    Ok(reply(StatusCode::CREATED, json!({ "uuid": uuid, "domains": domains })))
}

pub(super) async fn update_service(
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
    if instant_deploy {
        shared.jobs.dispatch(crate::jobs::Job::StartService { service_uuid: uuid.clone() });
    }
    Ok(reply(StatusCode::OK, json!({ "uuid": uuid, "domains": domains })))
}

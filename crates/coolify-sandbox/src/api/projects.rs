//! Projects and environments (`ProjectController`).

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use crate::config::Ability;
use crate::handle::lock;
use crate::state::{EnvironmentRecord, ProjectRecord, new_uuid, now_ms, timestamp};

use super::chain::Caller;
use super::helpers::{
    check_name, json_body, message, optional_string, reject_unknown, reply, validation,
};
use super::{ApiResult, AppState};

// ------------------------------------------------------------------ projects and environments

pub(super) fn environment_json(project: &ProjectRecord, environment: &EnvironmentRecord) -> Value {
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

pub(super) async fn list_projects(
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

pub(super) async fn create_project(
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

pub(super) async fn get_project(
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

pub(super) async fn delete_project(
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

pub(super) async fn list_environments(
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

pub(super) async fn create_environment(
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

pub(super) async fn get_environment(
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

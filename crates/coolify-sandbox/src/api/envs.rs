//! Service environment variables (`ServicesController::envs`, `create_bulk_envs`).

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use crate::config::Ability;
use crate::handle::lock;
use crate::state::{EnvRecord, env_json, new_uuid, now_ms};

use super::chain::Caller;
use super::helpers::{
    env_key_valid, field_error, json_body, message, optional_bool, optional_string, reply,
    validation,
};
use super::services::find_service;
use super::{ApiResult, AppState};

// ------------------------------------------------------------------ envs

pub(super) async fn list_envs(
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

pub(super) async fn bulk_envs(
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

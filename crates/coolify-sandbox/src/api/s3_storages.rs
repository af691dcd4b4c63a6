//! The team's S3 storages (`S3StoragesController`, Coolify 4.3.11): list, create, show, delete.
//! `key` and `secret` are shown only to a token that may read sensitive data
//! (`removeSensitiveData`). Deviation: Coolify's `SafeWebhookUrl` rule refuses loopback and
//! private endpoints; the sandbox accepts them, because its S3 (moto) runs on loopback.

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use crate::config::Ability;
use crate::handle::lock;
use crate::s3::{S3StorageRecord, TEAM_ID};
use crate::state::{new_uuid, now_ms, timestamp};

use super::chain::Caller;
use super::helpers::{
    json_body, message, optional_bool, optional_string, reject_unknown, reply, validation,
};
use super::{ApiResult, AppState};

const ALLOWED: &[&str] =
    &["name", "description", "endpoint", "bucket", "region", "key", "secret", "is_usable"];

fn storage_json(storage: &S3StorageRecord, caller: &Caller) -> Value {
    let mut value = json!({
        "uuid": storage.uuid,
        "name": storage.name,
        "description": storage.description,
        "endpoint": storage.endpoint,
        "bucket": storage.bucket,
        "region": storage.region,
        "is_usable": storage.is_usable,
        "team_id": TEAM_ID,
        "created_at": timestamp(storage.created_at),
        "updated_at": timestamp(storage.created_at),
    });
    if caller.sensitive
        && let Some(object) = value.as_object_mut()
    {
        object.insert("key".into(), json!(storage.key));
        object.insert("secret".into(), json!(storage.secret));
    }
    value
}

pub(super) async fn list(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult {
    caller.require(Ability::Read)?;
    let world = lock(&shared.world);
    let storages: Vec<Value> =
        world.s3_storages.iter().map(|storage| storage_json(storage, &caller)).collect();
    Ok(reply(StatusCode::OK, Value::Array(storages)))
}

pub(super) async fn show(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
) -> ApiResult {
    caller.require(Ability::Read)?;
    let world = lock(&shared.world);
    match world.s3_storages.iter().find(|storage| storage.uuid == uuid) {
        Some(storage) => Ok(reply(StatusCode::OK, storage_json(storage, &caller))),
        None => Err(message(StatusCode::NOT_FOUND, "S3 storage not found.")),
    }
}

pub(super) async fn create(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    caller.require(Ability::Write)?;
    let body = json_body(&headers, &body)?;
    reject_unknown(&body, ALLOWED)?;
    let mut errors = Map::new();
    let required = |field: &str, errors: &mut Map<String, Value>| {
        let value = optional_string(&body, field, errors);
        match value {
            Some(value) if !value.trim().is_empty() && value.len() <= 255 => value,
            Some(_) if !errors.contains_key(field) => {
                errors.insert(
                    field.into(),
                    json!([format!("The {field} field must be 1 to 255 characters.")]),
                );
                String::new()
            }
            None if !errors.contains_key(field) => {
                errors.insert(field.into(), json!([format!("The {field} field is required.")]));
                String::new()
            }
            _ => String::new(),
        }
    };
    let name = required("name", &mut errors);
    let endpoint = required("endpoint", &mut errors);
    let bucket = required("bucket", &mut errors);
    let region = required("region", &mut errors);
    let key = required("key", &mut errors);
    let secret = required("secret", &mut errors);
    let description = optional_string(&body, "description", &mut errors);
    let is_usable = optional_bool(&body, "is_usable", &mut errors).unwrap_or(false);
    let is_url = endpoint.starts_with("http://") || endpoint.starts_with("https://");
    if !endpoint.is_empty() && !is_url {
        errors.insert("endpoint".into(), json!(["The endpoint must be a valid URL."]));
    }
    // ValidS3BucketName: 3-63 of lower-case letters, digits, dots and hyphens.
    let bucket_valid = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    if !bucket.is_empty() && !bucket_valid {
        errors.insert("bucket".into(), json!(["The bucket name is not a valid S3 bucket name."]));
    }
    if !errors.is_empty() {
        return Err(validation(Value::Object(errors)));
    }
    let mut world = lock(&shared.world);
    let id = world.next_id();
    let uuid = new_uuid();
    world.s3_storages.push(S3StorageRecord {
        id,
        uuid: uuid.clone(),
        name,
        description,
        endpoint,
        bucket,
        region,
        key,
        secret,
        is_usable,
        created_at: now_ms(),
    });
    Ok(reply(StatusCode::CREATED, json!({ "uuid": uuid })))
}

pub(super) async fn delete(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
) -> ApiResult {
    caller.require(Ability::Write)?;
    let mut world = lock(&shared.world);
    let before = world.s3_storages.len();
    world.s3_storages.retain(|storage| storage.uuid != uuid);
    if world.s3_storages.len() == before {
        return Err(message(StatusCode::NOT_FOUND, "S3 storage not found."));
    }
    Ok(message(StatusCode::OK, "S3 storage deleted."))
}

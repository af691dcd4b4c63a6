//! Replies in Coolify's shapes and the request checks every controller shares (`validateIncomingRequest`, `$allowedFields`, Laravel's validation helpers).

#![expect(
    clippy::result_large_err,
    reason = "handlers return axum Responses as errors; they are built once per request and never stored"
)]

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

// ------------------------------------------------------------------ replies

pub(super) fn reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

pub(super) fn message(status: StatusCode, text: &str) -> Response {
    reply(status, json!({ "message": text }))
}

pub(super) fn validation(errors: Value) -> Response {
    reply(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({ "message": "Validation failed.", "errors": errors }),
    )
}

pub(super) fn field_error(field: &str, text: &str) -> Response {
    validation(json!({ field: [text] }))
}

/// Laravel's `response('...')`: a string body is served as HTML.
pub(super) fn text(body: &str) -> Response {
    let mut response = body.to_owned().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=UTF-8"));
    response
}

pub(super) async fn not_found() -> Response {
    reply(
        StatusCode::NOT_FOUND,
        json!({ "message": "Not found.", "docs": "https://coolify.io/docs" }),
    )
}

pub(super) async fn post_required() -> Response {
    let mut response =
        message(StatusCode::METHOD_NOT_ALLOWED, "This endpoint has changed to a POST request.");
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

// ------------------------------------------------------------------ request helpers

/// `validateIncomingRequest`: JSON content type, parseable, not empty.
pub(super) fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, Response> {
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
pub(super) fn reject_unknown(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), Response> {
    let mut errors = Map::new();
    for key in body.keys() {
        if !allowed.contains(&key.as_str()) {
            errors.insert(key.clone(), json!(["This field is not allowed."]));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(validation(Value::Object(errors))) }
}

pub(super) fn optional_string(
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

pub(super) fn optional_bool(
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
pub(super) fn query_bool(query: &HashMap<String, String>, key: &str, default: bool) -> bool {
    match query.get(key) {
        Some(value) => matches!(value.to_ascii_lowercase().as_str(), "1" | "true" | "on" | "yes"),
        None => default,
    }
}

/// `ValidationPatterns::nameRules()`.
pub(super) fn check_name(
    field: &str,
    value: Option<&str>,
    required: bool,
    errors: &mut Map<String, Value>,
) {
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

pub(super) fn env_key_valid(key: &str) -> bool {
    let mut characters = key.chars();
    let first_ok =
        characters.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_');
    first_ok
        && key.len() <= 255
        && key.chars().all(|character| {
            character.is_ascii_alphanumeric() || character == '_' || character == '.'
        })
}

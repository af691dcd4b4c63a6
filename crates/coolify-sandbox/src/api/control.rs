//! The sandbox's own `/_sandbox/*` control endpoints: faults, stats, backup executions, settings.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::faults::Fault;
use crate::handle::lock;
use crate::state::now_ms;

use super::AppState;
use super::helpers::{message, reply};

// ------------------------------------------------------------------ control endpoints

pub(super) async fn control_faults(State(shared): State<AppState>) -> Response {
    reply(StatusCode::OK, serde_json::to_value(&lock(&shared.world).faults).unwrap_or(Value::Null))
}

pub(super) async fn control_add_fault(State(shared): State<AppState>, body: Bytes) -> Response {
    match serde_json::from_slice::<Fault>(&body) {
        Ok(fault) => {
            lock(&shared.world).faults.push(fault);
            message(StatusCode::CREATED, "Fault injected.")
        }
        Err(error) => message(StatusCode::UNPROCESSABLE_ENTITY, &format!("invalid fault: {error}")),
    }
}

pub(super) async fn control_clear_faults(State(shared): State<AppState>) -> Response {
    lock(&shared.world).faults.clear();
    message(StatusCode::OK, "Faults cleared.")
}

pub(super) async fn control_stats(State(shared): State<AppState>) -> Response {
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

pub(super) async fn control_backup_executions(State(shared): State<AppState>) -> Response {
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

pub(super) async fn control_settings(State(shared): State<AppState>, body: Bytes) -> Response {
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

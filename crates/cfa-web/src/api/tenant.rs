//! The tenant API beside PocketBase: a tenant's user sends its stack's secret parameters and
//! reads its stack's generated credentials, with its own PocketBase token. Neither ever passes
//! through PocketBase; the engine writes and reads Coolify's variables.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cfa_engine::{SecretsTakeEffect, TenantRequestError};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::TenantUser;
use crate::problem::Problem;

/// The response header that says when the secrets take effect: `restart` (the running stack
/// restarts now), `deploy` (the controller deploys the stack next) or `resume`.
pub const TAKES_EFFECT_HEADER: &str = "cfa-takes-effect";

/// `PUT /api/v1/tenant/stacks/{record_id}/secrets` with `{"parameter": "value", ...}`:
/// 204 once the values are in Coolify (merged with those set before), 401 without a valid
/// token, 404 for a record that is not the caller's, 409 while the service does not exist yet
/// or a deploy runs (with `Retry-After`), 422 for a parameter the template does not declare
/// as secret or a malformed value.
pub(crate) async fn put_secrets(
    State(state): State<AppState>,
    user: TenantUser,
    Path(record_id): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let values = secret_values(&body)?;
    let takes_effect =
        state.engine.set_tenant_secrets(&user.id, &record_id, &values).await.map_err(problem)?;
    let when = match takes_effect {
        SecretsTakeEffect::AfterRestart { tenant, stack } => {
            // The values are stored; the restart is the engine's (audited) and may take
            // minutes, so the tenant is not kept waiting for it.
            let engine = state.engine.clone();
            tokio::spawn(async move {
                if let Err(error) = engine.apply_environment(&tenant, &stack).await {
                    tracing::warn!(%tenant, %stack, error = %error, "restart for new secrets failed");
                }
            });
            "restart"
        }
        SecretsTakeEffect::AtDeploy => "deploy",
        SecretsTakeEffect::AtResume => "resume",
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(TAKES_EFFECT_HEADER, HeaderValue::from_static(when));
    Ok(response)
}

/// `GET /api/v1/tenant/stacks/{record_id}/credentials`: `{"credentials": {"name": "value"}}`
/// with the values Coolify generated for the stack that its template declares; never cached.
pub(crate) async fn get_credentials(
    State(state): State<AppState>,
    user: TenantUser,
    Path(record_id): Path<String>,
) -> Result<Response, Problem> {
    let credentials =
        state.engine.tenant_credentials(&user.id, &record_id).await.map_err(problem)?;
    let mut response = Json(json!({ "credentials": credentials })).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The body: a JSON object of strings, at least one.
fn secret_values(body: &[u8]) -> Result<BTreeMap<String, String>, Problem> {
    let unprocessable = |message: String| {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, message)
            .hint("send a JSON object of secret parameter names and string values, e.g. {\"router_api_key\": \"...\"}")
    };
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| unprocessable(format!("the body is not JSON: {error}")))?;
    let Value::Object(object) = value else {
        return Err(unprocessable("the body is not a JSON object".to_owned()));
    };
    if object.is_empty() {
        return Err(unprocessable("the body names no parameter".to_owned()));
    }
    object
        .into_iter()
        .map(|(name, value)| match value {
            Value::String(text) => Ok((name, text)),
            _ => Err(unprocessable(format!(
                "parameter `{}`: its value is not a string",
                name.chars().take(60).collect::<String>()
            ))),
        })
        .collect()
}

/// The engine's answer as the tenant sees it; failures inside the platform are logged in
/// full and answered with their first line only.
fn problem(error: TenantRequestError) -> Problem {
    match error {
        TenantRequestError::NotFound => Problem::new(StatusCode::NOT_FOUND, error.to_string())
            .hint("use the id of one of your own agent_stacks records"),
        TenantRequestError::NotReady { retry_after } => {
            Problem::new(StatusCode::CONFLICT, error.to_string())
                .hint("the platform creates the stack's service shortly after the record; send the request again")
                .retry_after(retry_after)
        }
        TenantRequestError::Busy { ref reason, retry_after } => {
            let problem = Problem::new(StatusCode::CONFLICT, reason.clone());
            match retry_after {
                Some(wait) => problem.retry_after(wait),
                None => problem,
            }
        }
        TenantRequestError::Unprocessable { .. } => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string())
        }
        TenantRequestError::Engine(error) => {
            tracing::warn!(error = %error, "tenant request failed inside the platform");
            Problem::unavailable(error.to_string().lines().next().unwrap_or_default().to_owned())
        }
    }
}

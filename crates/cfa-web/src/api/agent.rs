//! `POST /api/v1/agent/events`: what the host agents report from Docker (OOM kills, exits,
//! restarts, health). Each server has its own secret; a batch is taken only when its
//! HMAC-SHA256 signature over `"{timestamp}.{body}"` checks out with the secret of the server it
//! names, within five minutes of its timestamp, and every event in it is that server's. Events
//! are stored once (an agent resending after an outage changes nothing) and wake the monitor,
//! so an OOM kill becomes an incident in seconds, not at the next interval.

use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use cfa_host_agent::signature::{
    DEFAULT_MAX_AGE, SERVER_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use cfa_host_agent::{EventBatch, EventKind, verify_signature};
use cfa_pocketbase::NewHostEvent;

use crate::AppState;
use crate::problem::Problem;

fn unauthorized(why: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, format!("the agent's request is not authentic: {why}"))
        .hint("check the server's agent secret (the same file on the server and in cfa.toml) and its clock")
}

pub(crate) async fn post_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let server = header(SERVER_HEADER).ok_or_else(|| unauthorized("no server named"))?;
    let secret = state
        .agent_secrets
        .get(server)
        .ok_or_else(|| unauthorized("no agent secret is configured for this server"))?;
    verify_signature(
        secret,
        header(TIMESTAMP_HEADER).unwrap_or_default(),
        header(SIGNATURE_HEADER).unwrap_or_default(),
        &body,
        SystemTime::now(),
        DEFAULT_MAX_AGE,
    )
    .map_err(|error| unauthorized(&error.to_string()))?;
    let batch: EventBatch = serde_json::from_slice(&body).map_err(|error| {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, format!("not an event batch: {error}"))
    })?;
    if batch.server != server || batch.events.iter().any(|event| event.server != server) {
        return Err(unauthorized("the batch names another server than the signed header"));
    }
    if batch.dropped > 0 {
        tracing::warn!(%server, dropped = batch.dropped, "the host agent dropped events while the receiver was away");
    }
    let events: Vec<NewHostEvent> = batch
        .events
        .iter()
        .map(|event| NewHostEvent {
            event_id: event.id.clone(),
            server: event.server.clone(),
            container_name: event.container_name.clone(),
            tenant: event.tenant.clone(),
            stack: event.stack.clone(),
            kind: event.kind.name().to_owned(),
            exit_code: match event.kind {
                EventKind::Died { exit_code } => Some(exit_code),
                _ => None,
            },
            healthy: match event.kind {
                EventKind::Health { healthy } => Some(healthy),
                _ => None,
            },
            at_ns: event.at,
        })
        .collect();
    let new = state.engine.record_host_events(&events).await.map_err(|error| {
        Problem::unavailable(error.to_string().lines().next().unwrap_or_default().to_owned())
    })?;
    if new > 0 {
        state.monitor_wake.notify_one();
    }
    Ok(StatusCode::NO_CONTENT)
}

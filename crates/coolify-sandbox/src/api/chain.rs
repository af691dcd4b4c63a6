//! The middleware chain: the sandbox's front door (injected faults, Laravel's throttle, exchange recording) and Coolify's API middleware (Sanctum token, team role, API enabled, IP allow list, abilities).

#![expect(
    clippy::result_large_err,
    reason = "handlers return axum Responses as errors; they are built once per request and never stored"
)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;

use crate::config::{Ability, TeamRole};
use crate::faults::Fault;
use crate::handle::{Exchange, Shared, ThrottleWindow, lock};
use crate::state::now_ms;

use super::AppState;
use super::helpers::{message, reply};

// ------------------------------------------------------------------ front door: faults, throttle, recording

pub(super) async fn front_door(
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
        let token_id = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .and_then(|token| token.split_once('|'))
            .map(|(id, _)| id.to_owned());
        let info = (
            token_id,
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
    if let Some((token_id, method, route, query, request_content_type, request_body)) =
        recorded_request
    {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
        let response_content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        lock(&shared.exchanges).push(Exchange {
            token_id,
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

pub(super) async fn apply_request_faults(shared: &Shared, path: &str) -> Option<Response> {
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
pub(super) fn throttle(
    shared: &Shared,
    is_health: bool,
    peer: SocketAddr,
) -> Result<(u32, u32), Response> {
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
pub(super) struct Caller {
    pub(super) abilities: Vec<Ability>,
    pub(super) sensitive: bool,
    /// `getTeamIdFromToken()` is null for this token.
    pub(super) teamless: bool,
}

impl Caller {
    /// `api.ability:<x>`; `root` passes everything.
    ///
    /// Then, as every team-scoped controller starts, `getTeamIdFromToken()`: null when the
    /// token's user is no longer in the token's team, answered by `invalidTokenResponse()` (400
    /// "Invalid token.", bootstrap/helpers/api.php, 4.3.11).
    pub(super) fn require(&self, ability: Ability) -> Result<(), Response> {
        if self.abilities.contains(&Ability::Root) || self.abilities.contains(&ability) {
            if self.teamless {
                return Err(reply(
                    StatusCode::BAD_REQUEST,
                    json!({
                        "message": "Invalid token.",
                        "docs": "https://coolify.io/docs/api-reference/authorization",
                    }),
                ));
            }
            Ok(())
        } else {
            Err(message(
                StatusCode::FORBIDDEN,
                &format!("Missing required permissions: {}", ability.as_str()),
            ))
        }
    }
}

pub(super) async fn authenticate(
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
        let teamless = settings.teamless_tokens.contains(&token.token);
        Caller { abilities: token.abilities, sensitive, teamless }
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

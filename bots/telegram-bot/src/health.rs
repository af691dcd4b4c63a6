//! Liveness and readiness, and the small HTTP server on `HEALTH_LISTEN` that serves them (and
//! the webhook, in webhook mode).
//!
//! Readiness means: the bot knows who it is (getMe worked), Telegram answered within the last
//! minute (a getMe probe otherwise), and the Router answered within the last five minutes (a
//! `GET /models` probe otherwise). Probe results are cached so `/readyz` cannot hammer either.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

// tokio's clock, so tests can move time past the freshness windows instead of waiting them out.
use tokio::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::app::Bot;
use crate::config::Secret;
use crate::router::{RouterClient, RouterProbe};
use crate::telegram::{TelegramClient, Update};

const TELEGRAM_FRESH_FOR: Duration = Duration::from_secs(60);
const ROUTER_FRESH_FOR: Duration = Duration::from_secs(300);
const PROBE_CACHED_FOR: Duration = Duration::from_secs(15);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The header Telegram sends the webhook secret in.
pub const WEBHOOK_SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

#[derive(Debug)]
pub struct Health {
    telegram: TelegramClient,
    router: RouterClient,
    identity_known: AtomicBool,
    telegram_last_ok: Mutex<Option<Instant>>,
    router_last_ok: Mutex<Option<Instant>>,
    telegram_probe: Mutex<Option<(Instant, bool)>>,
    router_probe: Mutex<Option<(Instant, RouterProbe)>>,
}

impl Health {
    pub(crate) fn new(telegram: TelegramClient, router: RouterClient) -> Self {
        Self {
            telegram,
            router,
            identity_known: AtomicBool::new(false),
            telegram_last_ok: Mutex::new(None),
            router_last_ok: Mutex::new(None),
            telegram_probe: Mutex::new(None),
            router_probe: Mutex::new(None),
        }
    }

    pub(crate) fn identity_known(&self) {
        self.identity_known.store(true, Ordering::Relaxed);
        self.telegram_answered();
    }

    pub(crate) fn telegram_answered(&self) {
        *lock(&self.telegram_last_ok) = Some(Instant::now());
    }

    pub(crate) fn router_answered(&self) {
        *lock(&self.router_last_ok) = Some(Instant::now());
    }

    async fn telegram_status(&self) -> &'static str {
        if fresh(*lock(&self.telegram_last_ok), TELEGRAM_FRESH_FOR) {
            return "ok";
        }
        let cached = *lock(&self.telegram_probe);
        let reachable = match cached {
            Some((at, reachable)) if at.elapsed() < PROBE_CACHED_FOR => reachable,
            _ => {
                let reachable = self.telegram.get_me_within(PROBE_TIMEOUT).await.is_ok();
                *lock(&self.telegram_probe) = Some((Instant::now(), reachable));
                if reachable {
                    self.telegram_answered();
                }
                reachable
            }
        };
        if reachable { "ok" } else { "unreachable" }
    }

    async fn router_status(&self) -> &'static str {
        if fresh(*lock(&self.router_last_ok), ROUTER_FRESH_FOR) {
            return "ok";
        }
        let cached = *lock(&self.router_probe);
        let probe = match cached {
            Some((at, probe)) if at.elapsed() < PROBE_CACHED_FOR => probe,
            _ => {
                let probe = self.router.probe(PROBE_TIMEOUT).await;
                *lock(&self.router_probe) = Some((Instant::now(), probe));
                probe
            }
        };
        match probe {
            RouterProbe::Answered => "ok",
            RouterProbe::KeyRefused => "key refused",
            RouterProbe::Unreachable => "unreachable",
        }
    }

    /// `(ready, body)` for `/readyz`.
    pub(crate) async fn readiness(&self) -> (bool, serde_json::Value) {
        if !self.identity_known.load(Ordering::Relaxed) {
            return (false, json!({ "ready": false, "telegram": "starting", "router": "unknown" }));
        }
        let (telegram, router) = tokio::join!(self.telegram_status(), self.router_status());
        let ready = telegram == "ok" && router == "ok";
        (ready, json!({ "ready": ready, "telegram": telegram, "router": router }))
    }
}

fn fresh(last: Option<Instant>, within: Duration) -> bool {
    last.is_some_and(|at| at.elapsed() < within)
}

/// Locks a std mutex; a poisoned one still holds valid plain data here.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Clone)]
struct ServerState {
    health: Arc<Health>,
    bot: Arc<Bot>,
    webhook_secret: Option<Secret>,
}

/// The HTTP routes: `/healthz`, `/readyz`, and `POST webhook_path` in webhook mode.
pub(crate) fn http_routes(
    health: Arc<Health>,
    bot: Arc<Bot>,
    webhook: Option<(String, Secret)>,
) -> Router {
    let mut routes = Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz));
    let webhook_secret = match webhook {
        Some((path, secret)) => {
            routes = routes.route(&path, post(webhook_update));
            Some(secret)
        }
        None => None,
    };
    routes.with_state(ServerState { health, bot, webhook_secret })
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "alive" }))
}

async fn readyz(State(state): State<ServerState>) -> Response {
    let (ready, body) = state.health.readiness().await;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

async fn webhook_update(
    State(state): State<ServerState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let Some(expected_secret) = &state.webhook_secret else {
        return StatusCode::NOT_FOUND;
    };
    let presented = headers.get(WEBHOOK_SECRET_HEADER).map(|value| value.as_bytes());
    let accepted = presented.is_some_and(|presented| {
        constant_time_equal(presented, expected_secret.expose().as_bytes())
    });
    if !accepted {
        tracing::warn!(
            secret_header_present = presented.is_some(),
            "refused a webhook request without the right secret token"
        );
        return StatusCode::UNAUTHORIZED;
    }
    // The decode error is dropped on purpose: its text can quote message content.
    let Ok(update) = serde_json::from_slice::<Update>(&body) else {
        tracing::warn!(bytes = body.len(), "refused a webhook request that is not an update");
        return StatusCode::BAD_REQUEST;
    };
    state.health.telegram_answered();
    state.bot.dispatch(update).await;
    StatusCode::OK
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
fn constant_time_equal(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    left.iter().zip(right).fold(0u8, |difference, (a, b)| difference | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::RetryPolicy;

    /// A bot whose Telegram and Router both stopped answering (nothing listens on their port).
    fn health_with_nothing_behind_it() -> Health {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let http = reqwest::Client::new();
        let telegram = TelegramClient::new(http.clone(), &url, &Secret::new("1:token"));
        let router = RouterClient::new(
            http,
            &format!("{url}/v1"),
            Secret::new("sk-key"),
            "model",
            Duration::from_secs(2),
            RetryPolicy::default(),
        );
        Health::new(telegram, router)
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_turns_false_once_telegram_has_been_silent_too_long() {
        let health = health_with_nothing_behind_it();
        assert!(!health.readiness().await.0, "not ready before getMe worked");
        health.identity_known();
        health.router_answered();
        let (ready, body) = health.readiness().await;
        assert!(ready, "{body}");

        // Both answered moments ago; a minute later Telegram is stale and its probe fails.
        tokio::time::advance(TELEGRAM_FRESH_FOR + Duration::from_secs(1)).await;
        let (ready, body) = health.readiness().await;
        assert!(!ready, "{body}");
        assert_eq!(body["telegram"], "unreachable");
        assert_eq!(body["router"], "ok", "the Router is fresh for five minutes");

        // Telegram answers again (a poll came back): ready again at once, probe cache or not.
        health.telegram_answered();
        assert!(health.readiness().await.0);

        // Five minutes without the Router: its probe fails too.
        tokio::time::advance(ROUTER_FRESH_FOR + Duration::from_secs(1)).await;
        health.telegram_answered();
        let (ready, body) = health.readiness().await;
        assert!(!ready, "{body}");
        assert_eq!(body["router"], "unreachable");
    }

    #[test]
    fn constant_time_equal_compares_whole_values() {
        assert!(constant_time_equal(b"abc", b"abc"));
        assert!(!constant_time_equal(b"abc", b"abd"));
        assert!(!constant_time_equal(b"abc", b"ab"));
        assert!(!constant_time_equal(b"", b"a"));
    }
}

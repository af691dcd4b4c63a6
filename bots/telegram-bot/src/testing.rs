//! Loopback stand-ins for the Telegram Bot API and the Router (feature `test-support`).
//!
//! Both are small axum servers on `127.0.0.1:0` that record what they receive. The Telegram
//! stand-in answers getMe (with every field real Telegram sends), long-polls getUpdates from a
//! queue the test feeds, records sendMessage and setWebhook, and can answer 429 with
//! `retry_after`. The Router stand-in speaks `/v1/chat/completions` and `/v1/models`, records
//! model, key and messages, and answers from a script (text, echo, status, 429, delays).
//!
//! Besides the Rust API, the Telegram stand-in has control routes for out-of-process use
//! (the `telegram-bot-standins` binary): `POST /control/messages` `{"chat_id":1,"text":"hi"}`
//! queues a text message, `GET /control/sent` lists what the bot sent.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::health::lock;

/// The bot id the Telegram stand-in reports in getMe.
pub const STAND_IN_BOT_ID: i64 = 7_000_001;
/// The username the Telegram stand-in reports in getMe.
pub const STAND_IN_BOT_USERNAME: &str = "cloudfreedom_test_bot";

async fn serve(routes: Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener =
        tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let address = listener.local_addr().expect("read the bound address");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, routes).await;
    });
    (address, server)
}

/// One sendMessage the bot made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub chat_id: i64,
    pub text: String,
    pub received_at: Instant,
}

#[derive(Debug, Default)]
struct TelegramRecord {
    next_update_id: i64,
    pending_updates: VecDeque<Value>,
    /// When each pending update was queued, by update_id (for latency figures).
    queued_at: Vec<(i64, Instant)>,
    sent: Vec<SentMessage>,
    calls: Vec<String>,
    highest_offset: Option<i64>,
    send_429_remaining: u32,
    send_429_retry_after: u64,
    webhook: Option<(String, String)>,
}

#[derive(Debug)]
struct TelegramShared {
    token: String,
    record: Mutex<TelegramRecord>,
    updates_arrived: Notify,
}

/// A Telegram Bot API stand-in on loopback.
#[derive(Debug)]
pub struct TelegramStandIn {
    address: SocketAddr,
    shared: Arc<TelegramShared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TelegramStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TelegramStandIn {
    /// Starts a stand-in that accepts only `token`.
    pub async fn start(token: &str) -> Self {
        Self::start_on("127.0.0.1:0", token).await
    }

    /// Starts a stand-in on `listen` (port 0 for any free port).
    pub async fn start_on(listen: &str, token: &str) -> Self {
        let shared = Arc::new(TelegramShared {
            token: token.to_owned(),
            record: Mutex::new(TelegramRecord { next_update_id: 100, ..TelegramRecord::default() }),
            updates_arrived: Notify::new(),
        });
        let routes = Router::new()
            .route("/control/messages", post(control_push_message))
            .route("/control/sent", get(control_sent))
            .route("/{bot_token}/{method}", any(telegram_method))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind(listen).await.expect("bind the stand-in port");
        let address = listener.local_addr().expect("read the bound address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, routes).await;
        });
        Self { address, shared, server }
    }

    /// The value for `TELEGRAM_API_URL`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Queues a private or group text message as the next update; returns its update_id.
    pub fn push_text(&self, chat_id: i64, text: &str) -> i64 {
        push_message(&self.shared, chat_id, Some(text))
    }

    /// Queues a message without text (a photo, say).
    pub fn push_non_text(&self, chat_id: i64) -> i64 {
        push_message(&self.shared, chat_id, None)
    }

    /// Everything the bot sent so far.
    pub fn sent(&self) -> Vec<SentMessage> {
        lock(&self.shared.record).sent.clone()
    }

    /// Waits until the bot has sent at least `count` messages, or `timeout` passed.
    pub async fn wait_for_sent(&self, count: usize, timeout: Duration) -> Vec<SentMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let sent = self.sent();
            if sent.len() >= count || Instant::now() >= deadline {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The next `count` sendMessage calls answer 429 with `retry_after`.
    pub fn fail_next_sends_with_429(&self, count: u32, retry_after_seconds: u64) {
        let mut record = lock(&self.shared.record);
        record.send_429_remaining = count;
        record.send_429_retry_after = retry_after_seconds;
    }

    /// Every Bot API method called, in order (`getMe`, `getUpdates`, ...).
    pub fn calls(&self) -> Vec<String> {
        lock(&self.shared.record).calls.clone()
    }

    pub fn call_count(&self, method: &str) -> usize {
        lock(&self.shared.record).calls.iter().filter(|call| *call == method).count()
    }

    /// The highest `offset` the bot passed to getUpdates (confirms updates below it).
    pub fn highest_offset(&self) -> Option<i64> {
        lock(&self.shared.record).highest_offset
    }

    /// The webhook set, as `(url, secret_token)`.
    pub fn webhook(&self) -> Option<(String, String)> {
        lock(&self.shared.record).webhook.clone()
    }

    /// When the update was queued (for latency figures).
    pub fn queued_at(&self, update_id: i64) -> Option<Instant> {
        lock(&self.shared.record)
            .queued_at
            .iter()
            .find(|(id, _)| *id == update_id)
            .map(|(_, at)| *at)
    }
}

fn push_message(shared: &TelegramShared, chat_id: i64, text: Option<&str>) -> i64 {
    let update_id = {
        let mut record = lock(&shared.record);
        let update_id = record.next_update_id;
        record.next_update_id += 1;
        let chat = if chat_id < 0 {
            json!({ "id": chat_id, "type": "group", "title": "Test group" })
        } else {
            json!({ "id": chat_id, "type": "private", "first_name": "Tester" })
        };
        let mut message = json!({
            "message_id": update_id * 10,
            "from": { "id": chat_id.abs(), "is_bot": false, "first_name": "Tester" },
            "chat": chat,
            "date": 1_700_000_000,
        });
        if let Some(text) = text {
            message["text"] = json!(text);
        } else {
            message["photo"] =
                json!([{ "file_id": "x", "file_unique_id": "y", "width": 1, "height": 1 }]);
        }
        record.pending_updates.push_back(json!({ "update_id": update_id, "message": message }));
        record.queued_at.push((update_id, Instant::now()));
        update_id
    };
    shared.updates_arrived.notify_waiters();
    update_id
}

fn telegram_error(status: StatusCode, description: &str) -> Response {
    let body = json!({ "ok": false, "error_code": status.as_u16(), "description": description });
    (status, Json(body)).into_response()
}

fn telegram_ok(result: Value) -> Response {
    Json(json!({ "ok": true, "result": result })).into_response()
}

async fn telegram_method(
    State(shared): State<Arc<TelegramShared>>,
    Path((bot_token, method)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if bot_token.strip_prefix("bot") != Some(shared.token.as_str()) {
        return telegram_error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let parameters: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body).unwrap_or(json!({}))
    };
    lock(&shared.record).calls.push(method.clone());
    match method.as_str() {
        "getMe" => telegram_ok(json!({
            "id": STAND_IN_BOT_ID,
            "is_bot": true,
            "first_name": "CloudFreedom Test",
            "username": STAND_IN_BOT_USERNAME,
            "can_join_groups": true,
            "can_read_all_group_messages": false,
            "supports_inline_queries": false,
            "can_connect_to_business": false,
            "has_main_web_app": false,
        })),
        "getUpdates" => get_updates(&shared, &parameters).await,
        "sendMessage" => {
            let mut record = lock(&shared.record);
            if record.send_429_remaining > 0 {
                record.send_429_remaining -= 1;
                let retry_after = record.send_429_retry_after;
                let body = json!({
                    "ok": false,
                    "error_code": 429,
                    "description": format!("Too Many Requests: retry after {retry_after}"),
                    "parameters": { "retry_after": retry_after },
                });
                return (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
            }
            let (Some(chat_id), Some(text)) =
                (parameters["chat_id"].as_i64(), parameters["text"].as_str())
            else {
                return telegram_error(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: chat_id and text are required",
                );
            };
            if text.is_empty() {
                return telegram_error(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: message text is empty",
                );
            }
            if text.encode_utf16().count() > 4096 {
                return telegram_error(StatusCode::BAD_REQUEST, "Bad Request: message is too long");
            }
            let message_id = record.sent.len() as i64 + 1;
            record.sent.push(SentMessage {
                chat_id,
                text: text.to_owned(),
                received_at: Instant::now(),
            });
            telegram_ok(json!({
                "message_id": message_id,
                "chat": { "id": chat_id, "type": if chat_id < 0 { "group" } else { "private" } },
                "date": 1_700_000_000,
                "text": text,
            }))
        }
        "setWebhook" => {
            let url = parameters["url"].as_str().unwrap_or_default().to_owned();
            let secret = parameters["secret_token"].as_str().unwrap_or_default().to_owned();
            if !url.starts_with("https://") {
                return telegram_error(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: bad webhook: An HTTPS URL must be provided for webhook",
                );
            }
            lock(&shared.record).webhook = Some((url, secret));
            telegram_ok(json!(true))
        }
        "deleteWebhook" => {
            lock(&shared.record).webhook = None;
            telegram_ok(json!(true))
        }
        _ => telegram_error(StatusCode::NOT_FOUND, "Not Found: method not found"),
    }
}

async fn get_updates(shared: &TelegramShared, parameters: &Value) -> Response {
    if lock(&shared.record).webhook.is_some() {
        return telegram_error(
            StatusCode::CONFLICT,
            "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
        );
    }
    let offset = parameters["offset"].as_i64();
    let limit = parameters["limit"].as_u64().unwrap_or(100).clamp(1, 100) as usize;
    let timeout = Duration::from_secs(parameters["timeout"].as_u64().unwrap_or(0).min(50));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // Registered before looking, so a push between the look and the wait is not missed.
        let arrived = shared.updates_arrived.notified();
        {
            let mut record = lock(&shared.record);
            if let Some(offset) = offset {
                record.highest_offset =
                    Some(record.highest_offset.map_or(offset, |highest| highest.max(offset)));
                while record
                    .pending_updates
                    .front()
                    .is_some_and(|update| update["update_id"].as_i64().unwrap_or(0) < offset)
                {
                    record.pending_updates.pop_front();
                }
            }
            if !record.pending_updates.is_empty() || tokio::time::Instant::now() >= deadline {
                let updates: Vec<Value> =
                    record.pending_updates.iter().take(limit).cloned().collect();
                return telegram_ok(Value::Array(updates));
            }
        }
        let _ = tokio::time::timeout_at(deadline, arrived).await;
    }
}

async fn control_push_message(
    State(shared): State<Arc<TelegramShared>>,
    Json(body): Json<Value>,
) -> Response {
    let Some(chat_id) = body["chat_id"].as_i64() else {
        return (StatusCode::BAD_REQUEST, "chat_id is required").into_response();
    };
    let update_id = push_message(&shared, chat_id, body["text"].as_str());
    Json(json!({ "update_id": update_id })).into_response()
}

async fn control_sent(State(shared): State<Arc<TelegramShared>>) -> Json<Value> {
    let sent: Vec<Value> = lock(&shared.record)
        .sent
        .iter()
        .map(|message| json!({ "chat_id": message.chat_id, "text": message.text }))
        .collect();
    Json(Value::Array(sent))
}

/// How the Router stand-in answers one completion request.
#[derive(Debug, Clone)]
pub enum RouterReply {
    /// `echo: <last user message>`.
    Echo,
    Text(String),
    /// An HTTP error status with an OpenAI-style error body.
    Status(u16),
    /// 429, with a `Retry-After` header when given.
    TooManyRequests {
        retry_after_seconds: Option<u64>,
    },
    /// Waits, then answers as the inner reply does.
    Delayed(Duration, Box<RouterReply>),
}

/// One completion request the Router stand-in received.
#[derive(Debug, Clone)]
pub struct RecordedCompletion {
    pub model: String,
    /// The `Authorization` header as sent.
    pub authorization: Option<String>,
    /// `(role, content)` in order.
    pub messages: Vec<(String, String)>,
    /// Time the stand-in spent on it, delays included.
    pub handling: Duration,
    pub answered_at: Instant,
}

#[derive(Debug)]
struct RouterShared {
    api_key: String,
    script: Mutex<VecDeque<RouterReply>>,
    default_reply: Mutex<RouterReply>,
    completions: Mutex<Vec<RecordedCompletion>>,
    models_calls: Mutex<usize>,
}

/// An OpenAI-compatible Router stand-in on loopback.
#[derive(Debug)]
pub struct RouterStandIn {
    address: SocketAddr,
    shared: Arc<RouterShared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RouterStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RouterStandIn {
    /// Starts a stand-in that accepts only `api_key` and echoes by default.
    pub async fn start(api_key: &str) -> Self {
        let shared = Arc::new(RouterShared {
            api_key: api_key.to_owned(),
            script: Mutex::new(VecDeque::new()),
            default_reply: Mutex::new(RouterReply::Echo),
            completions: Mutex::new(Vec::new()),
            models_calls: Mutex::new(0),
        });
        let routes = Router::new()
            .route("/v1/chat/completions", post(router_completion))
            .route("/v1/models", get(router_models))
            .with_state(Arc::clone(&shared));
        let (address, server) = serve(routes).await;
        Self { address, shared, server }
    }

    /// The value for `ROUTER_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    /// The next requests are answered by `replies`, in order; then the default reply.
    pub fn script(&self, replies: impl IntoIterator<Item = RouterReply>) {
        lock(&self.shared.script).extend(replies);
    }

    pub fn set_default_reply(&self, reply: RouterReply) {
        *lock(&self.shared.default_reply) = reply;
    }

    pub fn completions(&self) -> Vec<RecordedCompletion> {
        lock(&self.shared.completions).clone()
    }

    pub fn models_calls(&self) -> usize {
        *lock(&self.shared.models_calls)
    }
}

fn openai_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": { "message": message, "type": "stand_in_error" } })))
        .into_response()
}

fn authorized(shared: &RouterShared, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        == Some(shared.api_key.as_str())
}

async fn router_models(State(shared): State<Arc<RouterShared>>, headers: HeaderMap) -> Response {
    *lock(&shared.models_calls) += 1;
    if !authorized(&shared, &headers) {
        return openai_error(StatusCode::UNAUTHORIZED, "invalid api key");
    }
    Json(json!({ "object": "list", "data": [{ "id": "gpt-4o-mini", "object": "model" }] }))
        .into_response()
}

async fn router_completion(
    State(shared): State<Arc<RouterShared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let messages: Vec<(String, String)> = request["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|message| {
                    (
                        message["role"].as_str().unwrap_or_default().to_owned(),
                        message["content"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let authorization =
        headers.get("authorization").and_then(|value| value.to_str().ok()).map(str::to_owned);
    let is_authorized = authorized(&shared, &headers);
    let mut reply =
        lock(&shared.script).pop_front().unwrap_or_else(|| lock(&shared.default_reply).clone());
    while let RouterReply::Delayed(delay, inner) = reply {
        tokio::time::sleep(delay).await;
        reply = *inner;
    }
    let last_user = messages
        .iter()
        .rev()
        .find(|(role, _)| role == "user")
        .map(|(_, content)| content.clone())
        .unwrap_or_default();
    let response = if !is_authorized {
        openai_error(StatusCode::UNAUTHORIZED, "invalid api key")
    } else {
        match reply {
            RouterReply::Echo => completion_body(&format!("echo: {last_user}")),
            RouterReply::Text(text) => completion_body(&text),
            RouterReply::Status(status) => openai_error(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "stand-in error",
            ),
            RouterReply::TooManyRequests { retry_after_seconds } => {
                let mut response = openai_error(StatusCode::TOO_MANY_REQUESTS, "rate limited");
                if let Some(seconds) = retry_after_seconds {
                    response.headers_mut().insert("retry-after", seconds.into());
                }
                response
            }
            RouterReply::Delayed(..) => unreachable!("delays are unwrapped above"),
        }
    };
    lock(&shared.completions).push(RecordedCompletion {
        model: request["model"].as_str().unwrap_or_default().to_owned(),
        authorization,
        messages,
        handling: started.elapsed(),
        answered_at: Instant::now(),
    });
    response
}

fn completion_body(text: &str) -> Response {
    Json(json!({
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "stand-in",
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": text },
            "finish_reason": "stop",
        }],
        "usage": { "prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2 },
    }))
    .into_response()
}

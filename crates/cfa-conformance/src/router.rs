//! A CloudFreedom Router stand-in: a small OpenAI-compatible server on loopback that answers
//! `/v1/chat/completions` (plain and streamed) and `/v1/models`, and records what arrived
//! (path, bearer key, model, messages) so a run can check the tenant's path end to end.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// What every completion answers.
pub const ANSWER: &str = "conformance answer from the router stand-in";

/// One request that reached the stand-in.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub path: String,
    pub api_key: Option<String>,
    pub model: Option<String>,
    /// The `content` of every message, text parts joined.
    pub messages: Vec<String>,
    pub stream: bool,
}

#[derive(Debug)]
struct Shared {
    model: String,
    requests: Mutex<Vec<RecordedRequest>>,
}

/// The running stand-in; dropping it stops the server.
#[derive(Debug)]
pub struct RouterStandIn {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RouterStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RouterStandIn {
    /// Starts the stand-in on a free loopback port; `/v1/models` lists `model`.
    pub async fn start(model: &str) -> std::io::Result<Self> {
        let shared = Arc::new(Shared { model: model.to_owned(), requests: Mutex::new(Vec::new()) });
        let routes = Router::new()
            .route("/v1/chat/completions", post(completion))
            .route("/v1/models", get(models))
            .route("/models", get(models))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, routes).await;
        });
        Ok(Self { address, shared, server })
    }

    /// The value for a template's `router_base_url` parameter.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    /// Every completion and model listing received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().map(|requests| requests.clone()).unwrap_or_default()
    }

    /// The chat completions received so far.
    pub fn completions(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|request| request.path.ends_with("/completions"))
            .collect()
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_owned)
}

fn message_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

fn record(shared: &Shared, request: RecordedRequest) {
    if let Ok(mut requests) = shared.requests.lock() {
        requests.push(request);
    }
}

async fn models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    record(
        &shared,
        RecordedRequest {
            path: "/v1/models".to_owned(),
            api_key: bearer(&headers),
            model: None,
            messages: Vec::new(),
            stream: false,
        },
    );
    axum::Json(json!({
        "object": "list",
        "data": [{ "id": shared.model, "object": "model", "created": 1_700_000_000, "owned_by": "cloudfreedom" }],
    }))
    .into_response()
}

async fn completion(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "invalid JSON").into_response();
    };
    let model = request.get("model").and_then(Value::as_str).map(str::to_owned);
    let stream = request.get("stream").and_then(Value::as_bool).unwrap_or(false);
    record(
        &shared,
        RecordedRequest {
            path: "/v1/chat/completions".to_owned(),
            api_key: bearer(&headers),
            model: model.clone(),
            messages: request
                .get("messages")
                .and_then(Value::as_array)
                .map(|messages| messages.iter().map(message_text).collect())
                .unwrap_or_default(),
            stream,
        },
    );
    let model = model.unwrap_or_else(|| shared.model.clone());
    let usage = json!({ "prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12 });
    if !stream {
        return axum::Json(json!({
            "id": "chatcmpl-conformance",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": ANSWER }, "finish_reason": "stop" }],
            "usage": usage,
        }))
        .into_response();
    }
    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": "chatcmpl-conformance", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": model, "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        })
    };
    let mut events = String::new();
    for event in [
        chunk(json!({ "role": "assistant", "content": "" }), Value::Null),
        chunk(json!({ "content": ANSWER }), Value::Null),
        chunk(json!({}), json!("stop")),
    ] {
        events.push_str(&format!("data: {event}\n\n"));
    }
    let mut last = chunk(json!({}), Value::Null);
    last["choices"] = json!([]);
    last["usage"] = usage;
    events.push_str(&format!("data: {last}\n\ndata: [DONE]\n\n"));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from(events))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_and_answers_plain_and_streamed_completions() {
        let router = RouterStandIn::start("m-1").await.expect("starts");
        let client = reqwest::Client::new();
        let url = format!("{}/chat/completions", router.base_url());
        let plain: Value = client
            .post(&url)
            .bearer_auth("key-1")
            .json(&json!({ "model": "m-1", "messages": [{ "role": "user", "content": "hi" }] }))
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("JSON");
        assert_eq!(plain["choices"][0]["message"]["content"], ANSWER);
        let streamed = client
            .post(&url)
            .json(&json!({ "model": "m-1", "stream": true,
                "messages": [{ "role": "user", "content": [{ "type": "text", "text": "yo" }] }] }))
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("text");
        assert!(streamed.contains(ANSWER) && streamed.ends_with("data: [DONE]\n\n"));
        let recorded = router.completions();
        assert_eq!(recorded.len(), 2);
        assert_eq!(recorded[0].api_key.as_deref(), Some("key-1"));
        assert_eq!(recorded[0].messages, vec!["hi".to_owned()]);
        assert_eq!(recorded[1].messages, vec!["yo".to_owned()]);
        assert!(recorded[1].stream && recorded[1].api_key.is_none());
    }
}

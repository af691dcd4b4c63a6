//! The Router client: OpenAI-compatible `/chat/completions`, with retries and backoff.
//!
//! Errors carry the status code only, never a response body (a body can quote the prompt).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Secret;

#[derive(Debug, Clone)]
pub struct RouterClient {
    http: reqwest::Client,
    base_url: String,
    api_key: Secret,
    model: String,
    attempt_timeout: Duration,
    retry_policy: RetryPolicy,
}

/// How often and how long to retry a failed completion.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    /// Backoff before the second attempt; doubles each time.
    pub first_backoff: Duration,
    /// Cap on any wait, including a Router's `Retry-After`.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Clone, Serialize)]
pub struct ChatMessage<'text> {
    pub role: Role,
    pub content: &'text str,
}

impl std::fmt::Debug for ChatMessage<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ChatMessage")
            .field("role", &self.role)
            .field("content_chars", &self.content.chars().count())
            .finish()
    }
}

#[derive(Serialize)]
struct CompletionRequest<'request> {
    model: &'request str,
    messages: &'request [ChatMessage<'request>],
}

#[derive(Deserialize)]
struct CompletionResponse {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: AssistantMessage,
}

#[derive(Deserialize)]
struct AssistantMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("router did not answer within {timeout_seconds} s")]
    Timeout { timeout_seconds: u64 },
    #[error("router could not be reached\nhint: check ROUTER_BASE_URL and the network")]
    Transport {
        #[source]
        source: reqwest::Error,
    },
    #[error("router is rate limiting this key (HTTP 429)")]
    TooManyRequests { retry_after: Option<Duration> },
    #[error("router refused the API key (HTTP {status})\nhint: check ROUTER_API_KEY")]
    Unauthorized { status: u16 },
    #[error("router answered HTTP {status}")]
    Status { status: u16 },
    #[error("router answered without a message")]
    EmptyAnswer,
}

impl RouterError {
    fn is_retryable(&self) -> bool {
        match self {
            RouterError::Timeout { .. }
            | RouterError::Transport { .. }
            | RouterError::TooManyRequests { .. } => true,
            RouterError::Status { status } => *status >= 500 || *status == 408,
            RouterError::Unauthorized { .. } | RouterError::EmptyAnswer => false,
        }
    }
}

/// A completion, with how many attempts it took.
#[derive(Debug)]
pub struct Completion {
    pub text: String,
    pub attempts: u32,
}

/// A failed completion after all attempts.
#[derive(Debug, thiserror::Error)]
#[error("router completion failed after {attempts} attempt(s)")]
pub struct CompletionFailed {
    pub attempts: u32,
    #[source]
    pub last_error: RouterError,
}

/// What the light readiness check saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouterProbe {
    Answered,
    KeyRefused,
    Unreachable,
}

impl RouterClient {
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        api_key: Secret,
        model: &str,
        attempt_timeout: Duration,
        retry_policy: RetryPolicy,
    ) -> Self {
        Self {
            http,
            base_url: base_url.to_owned(),
            api_key,
            model: model.to_owned(),
            attempt_timeout,
            retry_policy,
        }
    }

    /// Asks for a completion, retrying timeouts, network errors, 429 and 5xx with backoff.
    pub async fn complete(
        &self,
        messages: &[ChatMessage<'_>],
    ) -> Result<Completion, CompletionFailed> {
        let mut backoff = self.retry_policy.first_backoff;
        let mut attempt = 1;
        loop {
            match self.complete_once(messages).await {
                Ok(text) => return Ok(Completion { text, attempts: attempt }),
                Err(error) if error.is_retryable() && attempt < self.retry_policy.attempts => {
                    let wait = match &error {
                        RouterError::TooManyRequests { retry_after: Some(retry_after) } => {
                            (*retry_after).max(backoff)
                        }
                        _ => backoff,
                    }
                    .min(self.retry_policy.max_backoff);
                    tracing::warn!(
                        attempt,
                        error = %error,
                        retry_in_ms = wait.as_millis() as u64,
                        "router call failed, retrying"
                    );
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(self.retry_policy.max_backoff);
                    attempt += 1;
                }
                Err(last_error) => return Err(CompletionFailed { attempts: attempt, last_error }),
            }
        }
    }

    async fn complete_once(&self, messages: &[ChatMessage<'_>]) -> Result<String, RouterError> {
        let request = CompletionRequest { model: &self.model, messages };
        let attempt = async {
            let response = self
                .http
                .post(format!("{}/chat/completions", self.base_url))
                .bearer_auth(self.api_key.expose())
                .json(&request)
                .send()
                .await
                .map_err(|source| RouterError::Transport { source: source.without_url() })?;
            let status = response.status().as_u16();
            match status {
                200..=299 => {}
                429 => {
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| value.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    return Err(RouterError::TooManyRequests { retry_after });
                }
                401 | 403 => return Err(RouterError::Unauthorized { status }),
                _ => return Err(RouterError::Status { status }),
            }
            let bytes = response
                .bytes()
                .await
                .map_err(|source| RouterError::Transport { source: source.without_url() })?;
            let parsed: CompletionResponse =
                serde_json::from_slice(&bytes).map_err(|_| RouterError::EmptyAnswer)?;
            parsed
                .choices
                .into_iter()
                .next()
                .and_then(|choice| choice.message.content)
                .filter(|text| !text.trim().is_empty())
                .ok_or(RouterError::EmptyAnswer)
        };
        tokio::time::timeout(self.attempt_timeout, attempt).await.unwrap_or(Err(
            RouterError::Timeout { timeout_seconds: self.attempt_timeout.as_secs() },
        ))
    }

    /// A light check for readiness: `GET {base}/models`. Any answer but 401/403 and 5xx counts
    /// (a Router without a models list still answered).
    pub async fn probe(&self, timeout: Duration) -> RouterProbe {
        let response = self
            .http
            .get(format!("{}/models", self.base_url))
            .bearer_auth(self.api_key.expose())
            .timeout(timeout)
            .send()
            .await;
        match response.map(|response| response.status().as_u16()) {
            Ok(401 | 403) => RouterProbe::KeyRefused,
            Ok(status) if status < 500 => RouterProbe::Answered,
            Ok(_) | Err(_) => RouterProbe::Unreachable,
        }
    }
}

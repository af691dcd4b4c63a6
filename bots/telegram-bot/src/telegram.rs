//! A small Telegram Bot API client: only getMe, getUpdates, sendMessage, setWebhook and
//! deleteWebhook.
//!
//! The request URL holds the bot token, so no error here carries a URL (`without_url`), and no
//! error carries a response body or message text: errors are safe to log as they are.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::Secret;

/// A Bot API client for one bot.
#[derive(Debug, Clone)]
pub struct TelegramClient {
    http: reqwest::Client,
    /// `{api_url}/bot{token}`, never logged.
    method_base: Secret,
}

/// A failed Bot API call, without the URL (it holds the token) and without content.
#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    #[error(
        "telegram {method} failed to connect or timed out\nhint: check TELEGRAM_API_URL and the network"
    )]
    Transport {
        method: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("telegram {method} asked us to slow down for {retry_after_seconds} s")]
    TooManyRequests { method: &'static str, retry_after_seconds: u64 },
    #[error(
        "telegram {method} refused the bot token (HTTP {status})\nhint: check TELEGRAM_BOT_TOKEN with @BotFather"
    )]
    Unauthorized { method: &'static str, status: u16 },
    #[error("telegram {method} answered HTTP {status}: {description}")]
    Refused { method: &'static str, status: u16, description: String },
    #[error("telegram {method} answered something that is not a Bot API response")]
    Malformed { method: &'static str },
}

impl TelegramError {
    /// Whether trying again later may help (network, 5xx, 429, 409 conflicts).
    pub fn is_transient(&self) -> bool {
        match self {
            TelegramError::Transport { .. }
            | TelegramError::TooManyRequests { .. }
            | TelegramError::Malformed { .. } => true,
            TelegramError::Unauthorized { .. } => false,
            TelegramError::Refused { status, .. } => *status >= 500 || *status == 409,
        }
    }
}

/// The bot itself, from getMe.
#[derive(Debug, Clone, Deserialize)]
pub struct BotUser {
    pub id: i64,
    pub username: Option<String>,
}

/// An update; only messages are asked for (`allowed_updates`).
#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    pub update_id: i64,
    #[serde(default)]
    pub message: Option<Message>,
}

#[derive(Clone, Deserialize)]
pub struct Message {
    pub message_id: i64,
    pub chat: Chat,
    #[serde(default)]
    pub text: Option<String>,
}

impl std::fmt::Debug for Message {
    // Message text never goes into a Debug print (and so never into a log by accident).
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Message")
            .field("message_id", &self.message_id)
            .field("chat", &self.chat)
            .field("text_chars", &self.text.as_ref().map(|text| text.chars().count()))
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Chat {
    pub id: i64,
}

#[derive(Deserialize)]
struct ApiResponse {
    ok: bool,
    #[serde(default)]
    result: Option<serde_json::Value>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize)]
struct ResponseParameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

#[derive(Serialize)]
struct SendMessage<'request> {
    chat_id: i64,
    text: &'request str,
    /// Answers are plain text: model output would often break Markdown or HTML parsing.
    link_preview_options: LinkPreviewOptions,
}

#[derive(Serialize)]
struct LinkPreviewOptions {
    is_disabled: bool,
}

/// Updates decoded from one getUpdates answer; the ones that could not be decoded are counted
/// (with their id when it could be read) rather than failing the whole batch.
#[derive(Debug, Default)]
pub struct UpdateBatch {
    pub updates: Vec<Update>,
    /// Highest update_id seen, decoded or not: the next offset must pass it.
    pub highest_update_id: Option<i64>,
    pub undecodable: usize,
}

/// Timeout for quick calls (getMe, sendMessage, webhook setup).
const QUICK_CALL_TIMEOUT: Duration = Duration::from_secs(15);

impl TelegramClient {
    pub fn new(http: reqwest::Client, api_url: &str, token: &Secret) -> Self {
        let method_base = Secret::new(format!("{api_url}/bot{}", token.expose()));
        Self { http, method_base }
    }

    async fn call(
        &self,
        method: &'static str,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<serde_json::Value, TelegramError> {
        let url = format!("{}/{method}", self.method_base.expose());
        let response =
            self.http.post(url).json(body).timeout(timeout).send().await.map_err(|source| {
                TelegramError::Transport { method, source: source.without_url() }
            })?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|source| TelegramError::Transport { method, source: source.without_url() })?;
        let parsed: ApiResponse = match serde_json::from_slice(&bytes) {
            Ok(parsed) => parsed,
            Err(_) if status == 401 || status == 404 => {
                return Err(TelegramError::Unauthorized { method, status });
            }
            Err(_) if status >= 400 => {
                return Err(TelegramError::Refused {
                    method,
                    status,
                    description: "no Bot API error body".to_owned(),
                });
            }
            Err(_) => return Err(TelegramError::Malformed { method }),
        };
        if parsed.ok {
            return parsed.result.ok_or(TelegramError::Malformed { method });
        }
        if status == 429 {
            let retry_after_seconds =
                parsed.parameters.and_then(|parameters| parameters.retry_after).unwrap_or(1);
            return Err(TelegramError::TooManyRequests { method, retry_after_seconds });
        }
        if status == 401 || status == 404 {
            // The Bot API answers 404 Not Found to a token it does not know.
            return Err(TelegramError::Unauthorized { method, status });
        }
        let description = parsed.description.unwrap_or_default();
        Err(TelegramError::Refused { method, status, description: bounded(&description, 200) })
    }

    pub async fn get_me(&self) -> Result<BotUser, TelegramError> {
        self.get_me_within(QUICK_CALL_TIMEOUT).await
    }

    pub async fn get_me_within(&self, timeout: Duration) -> Result<BotUser, TelegramError> {
        let result = self.call("getMe", &json!({}), timeout).await?;
        serde_json::from_value(result).map_err(|_| TelegramError::Malformed { method: "getMe" })
    }

    /// Long-polls for up to `poll_timeout`; passing `offset` confirms every earlier update.
    pub async fn get_updates(
        &self,
        offset: Option<i64>,
        poll_timeout: Duration,
        limit: u8,
    ) -> Result<UpdateBatch, TelegramError> {
        let body = json!({
            "offset": offset,
            "timeout": poll_timeout.as_secs(),
            "limit": limit,
            "allowed_updates": ["message"],
        });
        // The HTTP timeout must outlast the long poll.
        let http_timeout = poll_timeout + Duration::from_secs(10);
        let result = self.call("getUpdates", &body, http_timeout).await?;
        let serde_json::Value::Array(raw_updates) = result else {
            return Err(TelegramError::Malformed { method: "getUpdates" });
        };
        let mut batch = UpdateBatch::default();
        for raw_update in raw_updates {
            let update_id = raw_update.get("update_id").and_then(serde_json::Value::as_i64);
            if let Some(update_id) = update_id {
                batch.highest_update_id = Some(
                    batch.highest_update_id.map_or(update_id, |highest| highest.max(update_id)),
                );
            }
            // The decode error is dropped on purpose: its text can quote message content.
            match serde_json::from_value::<Update>(raw_update) {
                Ok(update) => batch.updates.push(update),
                Err(_) => batch.undecodable += 1,
            }
        }
        Ok(batch)
    }

    pub async fn send_message(&self, chat_id: i64, text: &str) -> Result<(), TelegramError> {
        let body = SendMessage {
            chat_id,
            text,
            link_preview_options: LinkPreviewOptions { is_disabled: true },
        };
        self.call("sendMessage", &body, QUICK_CALL_TIMEOUT).await.map(drop)
    }

    pub async fn set_webhook(&self, url: &str, secret: &Secret) -> Result<(), TelegramError> {
        let body = json!({
            "url": url,
            "secret_token": secret.expose(),
            "allowed_updates": ["message"],
            "max_connections": 20,
        });
        self.call("setWebhook", &body, QUICK_CALL_TIMEOUT).await.map(drop)
    }

    /// Removes a webhook so getUpdates works; pending updates are kept.
    pub async fn delete_webhook(&self) -> Result<(), TelegramError> {
        self.call("deleteWebhook", &json!({ "drop_pending_updates": false }), QUICK_CALL_TIMEOUT)
            .await
            .map(drop)
    }
}

fn bounded(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

//! The channels a message goes out on, built from `[alerts]`: a closed set (webhook, Telegram,
//! e-mail), each with a name, a timeout and one `send`.
//!
//! A send either delivers the message or says whether trying again can help ([`Retry`]): a
//! refused body (HTTP 400, 413, 422; a permanent SMTP answer about the message) will be refused
//! again, and retrying it would hold up every later message of that channel, so it is abandoned;
//! everything else (timeouts, refused connections, 5xx, 429, wrong credentials that an operator
//! may fix) is retried with backoff.

use std::collections::BTreeSet;
use std::error::Error as StdError;
use std::time::Duration;

use crate::config::AlertsConfig;
use crate::message::AlertMessage;
use crate::{Secret, SecretError};

mod email;
mod telegram;
mod webhook;

pub use email::EmailChannel;
pub use telegram::{TelegramChannel, escape_markdown_v2, telegram_text};
pub use webhook::WebhookChannel;

/// A channel's timeout when its section names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// One configured channel.
#[derive(Debug, Clone)]
pub enum Channel {
    Webhook(WebhookChannel),
    Telegram(TelegramChannel),
    Email(EmailChannel),
}

impl Channel {
    /// The configured name, unique across channels; deliveries are queued under it.
    pub fn name(&self) -> &str {
        match self {
            Channel::Webhook(webhook) => &webhook.name,
            Channel::Telegram(telegram) => &telegram.name,
            Channel::Email(email) => &email.name,
        }
    }

    /// `webhook`, `telegram` or `email`.
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Webhook(_) => "webhook",
            Channel::Telegram(_) => "telegram",
            Channel::Email(_) => "email",
        }
    }

    /// How long one attempt may take.
    pub fn timeout(&self) -> Duration {
        match self {
            Channel::Webhook(webhook) => webhook.timeout,
            Channel::Telegram(telegram) => telegram.timeout,
            Channel::Email(email) => email.timeout,
        }
    }

    /// One attempt, bounded by [`Channel::timeout`].
    pub async fn send(&self, message: &AlertMessage) -> Result<(), SendError> {
        let attempt = async {
            match self {
                Channel::Webhook(webhook) => webhook.send(message).await,
                Channel::Telegram(telegram) => telegram.send(message).await,
                Channel::Email(email) => email.send(message).await,
            }
        };
        match tokio::time::timeout(self.timeout(), attempt).await {
            Ok(result) => result,
            Err(_) => Err(SendError::new(
                format!("no answer within {}", humantime::format_duration(self.timeout())),
                Retry::Backoff,
            )),
        }
    }
}

/// Whether a failed send is worth another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Again after the channel's backoff.
    Backoff,
    /// Again, not before this long (Telegram's `retry_after`, a webhook's `Retry-After`).
    After(Duration),
    /// Never: the receiver refused this message itself.
    Never,
}

/// A failed send. The message says what happened without URLs, tokens or message text; the
/// cause, when there is one, is the source.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct SendError {
    pub what: String,
    pub retry: Retry,
    #[source]
    pub source: Option<Box<dyn StdError + Send + Sync>>,
}

impl SendError {
    pub fn new(what: impl Into<String>, retry: Retry) -> SendError {
        SendError { what: what.into(), retry, source: None }
    }

    pub fn with_source(
        what: impl Into<String>,
        retry: Retry,
        source: impl StdError + Send + Sync + 'static,
    ) -> SendError {
        SendError { what: what.into(), retry, source: Some(Box::new(source)) }
    }
}

/// Why `[alerts]` cannot be turned into channels. Names the channel; never a secret.
#[derive(Debug, thiserror::Error)]
pub enum AlertsConfigError {
    #[error(
        "two alert channels are named `{name}`\nhint: give every [[alerts.*]] section its own name"
    )]
    DuplicateName { name: String },
    #[error("alert channel `{channel}`: its secret cannot be used")]
    Secret {
        channel: String,
        #[source]
        source: SecretError,
    },
    #[error("alert channel `{channel}`: `{field}` is not an http(s) URL")]
    InvalidUrl { channel: String, field: &'static str },
    #[error(
        "alert channel `{channel}`: tls = \"none\" is allowed only for a loopback host, not `{host}`\nhint: use tls = \"starttls\" or \"tls\""
    )]
    PlainSmtpNotLoopback { channel: String, host: String },
    #[error("alert channel `{channel}`: `{address}` is not an e-mail address")]
    InvalidAddress {
        channel: String,
        address: String,
        #[source]
        source: lettre::address::AddressError,
    },
    #[error("alert channel `{channel}`: `to` names no recipient")]
    NoRecipients { channel: String },
    #[error("alert channel `{channel}`: `username` and `password_file` go together")]
    HalfCredentials { channel: String },
    #[error("alert channel `{channel}`: the SMTP transport cannot be set up")]
    Smtp {
        channel: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    #[error("the heartbeat's interval must be longer than zero")]
    HeartbeatInterval,
    #[error("the HTTP client for alerts cannot be built")]
    HttpClient(#[source] reqwest::Error),
}

/// Every channel of `[alerts]`, in order (webhooks, Telegram chats, e-mail), with its secrets
/// read from their files.
pub fn channels_from_config(config: &AlertsConfig) -> Result<Vec<Channel>, AlertsConfigError> {
    let mut names = BTreeSet::new();
    for name in config.channel_names() {
        if !names.insert(name) {
            return Err(AlertsConfigError::DuplicateName { name: name.to_owned() });
        }
    }
    let client = http_client()?;
    let mut channels = Vec::new();
    for webhook in &config.webhook {
        channels.push(Channel::Webhook(WebhookChannel::from_config(webhook, client.clone())?));
    }
    for telegram in &config.telegram {
        channels.push(Channel::Telegram(TelegramChannel::from_config(telegram, client.clone())?));
    }
    for email in &config.email {
        channels.push(Channel::Email(EmailChannel::from_config(email)?));
    }
    Ok(channels)
}

/// The HTTP client of the webhook, Telegram and heartbeat: no redirects (a redirected POST
/// turns into a GET and loses its body), timeouts per request.
pub(crate) fn http_client() -> Result<reqwest::Client, AlertsConfigError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("cfa-alerts/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(AlertsConfigError::HttpClient)
}

pub(crate) fn read_secret(
    channel: &str,
    path: &std::path::Path,
) -> Result<Secret, AlertsConfigError> {
    Secret::from_file(path)
        .map_err(|source| AlertsConfigError::Secret { channel: channel.to_owned(), source })
}

/// An http(s) URL from the config.
pub(crate) fn parse_http_url(
    channel: &str,
    field: &'static str,
    text: &str,
) -> Result<reqwest::Url, AlertsConfigError> {
    let invalid = || AlertsConfigError::InvalidUrl { channel: channel.to_owned(), field };
    let url = reqwest::Url::parse(text).map_err(|_| invalid())?;
    match (url.scheme(), url.host_str()) {
        ("http" | "https", Some(_)) => Ok(url),
        _ => Err(invalid()),
    }
}

/// `https://host:port`: a URL as logs and errors may show it (paths and queries often hold a
/// token: a Healthchecks.io ping, a chat webhook).
pub(crate) fn redacted(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// A transport failure in words, with the URL stripped from the error kept as the source.
pub(crate) fn http_failure(what: &str, error: reqwest::Error) -> SendError {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "failed"
    };
    SendError::with_source(format!("{what} {kind}"), Retry::Backoff, error.without_url())
}

/// How an HTTP error status is retried: a refused body is not.
pub(crate) fn retry_for_status(status: reqwest::StatusCode) -> Retry {
    match status.as_u16() {
        400 | 413 | 422 => Retry::Never,
        _ => Retry::Backoff,
    }
}

/// The error and its causes on one line, `: `-separated (what an outbox keeps as
/// `last_error`).
pub fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{TelegramConfig, TelegramFormat, WebhookConfig};

    fn secret_file(dir: &std::path::Path, name: &str, content: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    fn config(dir: &std::path::Path) -> AlertsConfig {
        AlertsConfig {
            webhook: vec![WebhookConfig {
                name: "hook".into(),
                url: "https://hooks.example.com/cfa/path-token".into(),
                secret_file: secret_file(dir, "hook", "hook-secret-value"),
                timeout: None,
            }],
            telegram: vec![TelegramConfig {
                name: "chat".into(),
                token_file: secret_file(dir, "token", "123:bot-token-value"),
                chat_id: "42".into(),
                api_base: None,
                format: TelegramFormat::Plain,
                timeout: Some(Duration::from_secs(3)),
            }],
            ..AlertsConfig::default()
        }
    }

    #[test]
    fn channels_come_in_config_order_and_print_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let channels = channels_from_config(&config(dir.path())).unwrap();
        let names: Vec<(&str, &str, Duration)> = channels
            .iter()
            .map(|channel| (channel.name(), channel.kind(), channel.timeout()))
            .collect();
        assert_eq!(
            names,
            [("hook", "webhook", DEFAULT_TIMEOUT), ("chat", "telegram", Duration::from_secs(3))]
        );
        let debug = format!("{channels:?}");
        assert!(
            !debug.contains("hook-secret-value") && !debug.contains("bot-token-value"),
            "{debug}"
        );
    }

    #[test]
    fn duplicate_names_bad_urls_and_missing_secrets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut duplicate = config(dir.path());
        duplicate.telegram[0].name = "hook".into();
        let error = channels_from_config(&duplicate).unwrap_err();
        assert!(matches!(error, AlertsConfigError::DuplicateName { .. }), "{error}");
        let mut bad_url = config(dir.path());
        bad_url.webhook[0].url = "ftp://example.com".into();
        let error = channels_from_config(&bad_url).unwrap_err();
        assert_eq!(error.to_string(), "alert channel `hook`: `url` is not an http(s) URL");
        let mut missing = config(dir.path());
        missing.telegram[0].token_file = dir.path().join("absent");
        let error = channels_from_config(&missing).unwrap_err();
        assert!(matches!(error, AlertsConfigError::Secret { .. }), "{error}");
        assert_eq!(
            redacted(&reqwest::Url::parse("https://hc.example.com:8443/ping/uuid?x=1").unwrap()),
            "https://hc.example.com:8443"
        );
    }
}

//! The webhook channel: the message as JSON, POSTed and signed (see the crate docs for the
//! wire format and [`crate::signature`] for the signature).

use std::time::{Duration, SystemTime};

use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};

use super::{
    DEFAULT_TIMEOUT, Retry, SendError, http_failure, parse_http_url, read_secret, redacted,
    retry_for_status,
};
use crate::Secret;
use crate::config::WebhookConfig;
use crate::message::AlertMessage;
use crate::signature::{MESSAGE_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};

/// A configured webhook.
#[derive(Debug, Clone)]
pub struct WebhookChannel {
    pub(crate) name: String,
    url: reqwest::Url,
    secret: Secret,
    pub(crate) timeout: Duration,
    client: reqwest::Client,
}

impl WebhookChannel {
    pub(crate) fn from_config(
        config: &WebhookConfig,
        client: reqwest::Client,
    ) -> Result<WebhookChannel, super::AlertsConfigError> {
        Ok(WebhookChannel {
            name: config.name.clone(),
            url: parse_http_url(&config.name, "url", &config.url)?,
            secret: read_secret(&config.name, &config.secret_file)?,
            timeout: config.timeout.unwrap_or(DEFAULT_TIMEOUT),
            client,
        })
    }

    pub(crate) async fn send(&self, message: &AlertMessage) -> Result<(), SendError> {
        let body = serde_json::to_vec(message).expect("an AlertMessage serializes");
        let timestamp =
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
        let signature = sign(self.secret.expose_bytes(), timestamp, &body);
        let what = format!("POST to {}", redacted(&self.url));
        let response = self
            .client
            .post(self.url.clone())
            .timeout(self.timeout)
            .header(CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .header(MESSAGE_ID_HEADER, &message.message_id)
            .body(body)
            .send()
            .await
            .map_err(|error| http_failure(&what, error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let retry = match (status.as_u16(), retry_after) {
            (429 | 503, Some(after)) => Retry::After(after),
            _ => retry_for_status(status),
        };
        Err(SendError::new(format!("{what} answered {status}"), retry))
    }
}

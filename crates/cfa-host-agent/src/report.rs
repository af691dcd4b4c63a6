//! The signed POST of one batch to the receiver ([`crate::wire`] has the format).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Url;

use crate::AgentSecret;
use crate::event::HostEvent;
use crate::signature::{SERVER_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use crate::wire::{EVENTS_PATH, EventBatch};

/// Sends batches for one server to one receiver.
#[derive(Debug, Clone)]
pub struct Reporter {
    client: reqwest::Client,
    endpoint: Url,
    server: String,
    secret: AgentSecret,
}

/// A `--receiver-url` or `--server-uuid` the agent cannot use.
#[derive(Debug, thiserror::Error)]
pub enum ReporterError {
    #[error(
        "the receiver URL `{url}` is not usable: {reason}\nhint: give the base URL of `cfa serve`, such as `https://cfa.example.com`"
    )]
    ReceiverUrl { url: String, reason: &'static str },
    #[error(
        "the server uuid `{value}` is not usable: 1 to 64 letters, digits, `-` or `_`\nhint: use the Coolify server's uuid"
    )]
    ServerUuid { value: String },
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// One failed delivery. Messages carry the endpoint without credentials or query, and no body.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the receiver `{endpoint}` did not answer")]
    Unreachable {
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the receiver `{endpoint}` answered {status}{}", hint_for(*status))]
    Refused { endpoint: String, status: u16 },
}

fn hint_for(status: u16) -> &'static str {
    match status {
        401 | 403 => {
            "\nhint: the receiver refused the signature: check that both sides have this server's secret and that the clocks agree"
        }
        404 => "\nhint: check --receiver-url: it is the base URL of `cfa serve`",
        _ => "",
    }
}

impl Reporter {
    /// A reporter for `server` posting to `{receiver_url}/api/v1/agent/events`.
    pub fn new(
        receiver_url: &str,
        server: &str,
        secret: AgentSecret,
        timeout: Duration,
    ) -> Result<Reporter, ReporterError> {
        if server.is_empty()
            || server.len() > 64
            || !server
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        {
            return Err(ReporterError::ServerUuid { value: server.to_owned() });
        }
        let refuse = |reason| ReporterError::ReceiverUrl { url: redacted(receiver_url), reason };
        let base = Url::parse(receiver_url).map_err(|_| refuse("not a URL"))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(refuse("the scheme must be http or https"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(refuse("it must have no query or fragment"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(refuse("it must carry no credentials (the signature authenticates)"));
        }
        let endpoint = Url::parse(&format!("{}{EVENTS_PATH}", base.as_str().trim_end_matches('/')))
            .map_err(|_| refuse("not a URL"))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("cfa-host-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ReporterError::Client)?;
        Ok(Reporter { client, endpoint, server: server.to_owned(), secret })
    }

    /// Where batches go.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Posts one batch, signed now; `Ok` only for a 2xx.
    pub async fn send(&self, events: &[HostEvent], dropped: u64) -> Result<(), ReportError> {
        let batch = EventBatch { server: self.server.clone(), events: events.to_vec(), dropped };
        let body = serde_json::to_vec(&batch).expect("a batch always serializes");
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |now| now.as_secs());
        let signature = sign(self.secret.expose_bytes(), timestamp, &body);
        let response = self
            .client
            .post(self.endpoint.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SERVER_HEADER, &self.server)
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(|source| ReportError::Unreachable {
                endpoint: self.endpoint.to_string(),
                source: source.without_url(),
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(ReportError::Refused {
                endpoint: self.endpoint.to_string(),
                status: status.as_u16(),
            })
        }
    }
}

/// A URL for messages: without user info, query or fragment (or `<not a URL>`).
fn redacted(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        Err(_) => "<not a URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reporter(url: &str, server: &str) -> Result<Reporter, ReporterError> {
        Reporter::new(url, server, AgentSecret::new("k"), Duration::from_secs(1))
    }

    #[test]
    fn endpoints() {
        for (base, expected) in [
            ("https://cfa.example.com", "https://cfa.example.com/api/v1/agent/events"),
            ("https://cfa.example.com/", "https://cfa.example.com/api/v1/agent/events"),
            (
                "http://127.0.0.1:8080/platform/",
                "http://127.0.0.1:8080/platform/api/v1/agent/events",
            ),
        ] {
            assert_eq!(reporter(base, "srv-1").unwrap().endpoint().as_str(), expected);
        }
    }

    #[test]
    fn refusals_never_print_credentials() {
        for (base, reason) in [
            ("cfa.example.com", "not a URL"),
            ("ftp://cfa.example.com", "the scheme must be http or https"),
            ("https://cfa.example.com/?token=hunter2", "it must have no query or fragment"),
            (
                "https://user:hunter2@cfa.example.com",
                "it must carry no credentials (the signature authenticates)",
            ),
        ] {
            let error = reporter(base, "srv-1").unwrap_err();
            assert!(
                matches!(error, ReporterError::ReceiverUrl { reason: r, .. } if r == reason),
                "{error}"
            );
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
        for server in ["", "a b", "x\r\ncfa-signature: forged", &"a".repeat(65)] {
            assert!(matches!(
                reporter("https://c.example", server),
                Err(ReporterError::ServerUuid { .. })
            ));
        }
    }
}

//! Client configuration: where Coolify is, the token, and the transport's limits.

use std::time::Duration;

use crate::ApiToken;

/// How to reach one Coolify instance. Build with [`CoolifyConfig::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct CoolifyConfig {
    /// The instance root, e.g. `https://coolify.example.com` (a trailing `/api` or `/api/v1` is
    /// accepted and dropped).
    pub base_url: String,
    pub token: ApiToken,
    /// The client-side budget: at most this many requests in any `rate_window` (Coolify's
    /// `API_RATE_LIMIT`, default 200 a minute, counted per client IP).
    pub requests_per_minute: u32,
    /// The server's throttle window; 60 s for Coolify. Tests shrink it together with the
    /// sandbox's window so budget tests finish in seconds.
    pub rate_window: Duration,
    /// Whole-request timeout (connect, send, read the body).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Retries after the first attempt (429 always; 5xx and transport errors on idempotent
    /// calls only).
    pub max_retries: u32,
    /// First backoff step; doubles per retry, with jitter, up to `max_retry_delay`.
    pub retry_base_delay: Duration,
    pub max_retry_delay: Duration,
}

impl CoolifyConfig {
    pub fn new(base_url: impl Into<String>, token: ApiToken) -> Self {
        Self {
            base_url: base_url.into(),
            token,
            requests_per_minute: 200,
            rate_window: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_retries: 5,
            retry_base_delay: Duration::from_millis(250),
            max_retry_delay: Duration::from_secs(60),
        }
    }
}

//! The controller's heartbeat, a dead-man's switch: a request to a configured URL every
//! interval while the controller is alive, so a service such as Healthchecks.io alerts when
//! the pings stop (a dead controller is otherwise silent).
//!
//! A failed ping is logged and the next one goes out on schedule; nothing here is fatal. The
//! URL usually holds the check's secret, so logs and errors show only its scheme and host.

use std::future::Future;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use crate::channel::{AlertsConfigError, error_chain, http_client, parse_http_url, redacted};
use crate::config::{HeartbeatConfig, HeartbeatMethod};

/// The default timeout of one ping (never more than the interval).
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);

/// A configured heartbeat.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    url: reqwest::Url,
    method: HeartbeatMethod,
    interval: Duration,
    timeout: Duration,
    client: reqwest::Client,
}

/// Why one ping failed. Shows the URL's scheme and host only.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    #[error("heartbeat to {target} failed")]
    Request {
        target: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("heartbeat to {target} answered {status}")]
    Status { target: String, status: reqwest::StatusCode },
}

impl Heartbeat {
    pub fn from_config(config: &HeartbeatConfig) -> Result<Heartbeat, AlertsConfigError> {
        if config.interval.is_zero() {
            return Err(AlertsConfigError::HeartbeatInterval);
        }
        Ok(Heartbeat {
            url: parse_http_url("heartbeat", "url", &config.url)?,
            method: config.method,
            interval: config.interval,
            timeout: config.timeout.unwrap_or(DEFAULT_HEARTBEAT_TIMEOUT).min(config.interval),
            client: http_client()?,
        })
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// One ping: any 2xx answer within the timeout counts.
    pub async fn beat(&self) -> Result<(), HeartbeatError> {
        let request = match self.method {
            HeartbeatMethod::Get => self.client.get(self.url.clone()),
            HeartbeatMethod::Post => self.client.post(self.url.clone()),
        };
        let response = request.timeout(self.timeout).send().await.map_err(|source| {
            HeartbeatError::Request { target: redacted(&self.url), source: source.without_url() }
        })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(HeartbeatError::Status { target: redacted(&self.url), status })
        }
    }

    /// Pings at once and then every interval until `shutdown` completes; a failure is logged
    /// (a warning) and the schedule goes on. A ping slower than the interval delays the next
    /// one rather than piling them up.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let beats = async {
            let mut failing = false;
            loop {
                ticks.tick().await;
                match self.beat().await {
                    Ok(()) => {
                        if failing {
                            tracing::info!(target_url = %redacted(&self.url), "heartbeat answered again");
                        }
                        failing = false;
                    }
                    Err(error) => {
                        failing = true;
                        tracing::warn!(error = %error_chain(&error), "heartbeat failed");
                    }
                }
            }
        };
        tokio::select! {
            () = shutdown => {}
            () = beats => {}
        }
    }
}

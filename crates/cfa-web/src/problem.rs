//! Every refusal the server answers: an HTTP status and a JSON body
//! `{"error": "...", "hint": "..."}` saying what failed and what to do, with `Retry-After`
//! when waiting helps.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A refusal or failure, as the client sees it.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub error: String,
    pub hint: Option<String>,
    pub retry_after: Option<Duration>,
}

impl Problem {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Problem {
        Problem { status, error: error.into(), hint: None, retry_after: None }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Problem {
        self.hint = Some(hint.into());
        self
    }

    pub fn retry_after(mut self, wait: Duration) -> Problem {
        self.retry_after = Some(wait);
        self
    }

    /// PocketBase or Coolify does not answer: the request changed nothing and can be sent again.
    pub fn unavailable(error: impl Into<String>) -> Problem {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, error)
            .hint("nothing was changed; try again in a minute")
            .retry_after(Duration::from_secs(30))
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.error, "hint": self.hint }));
        let mut response = (self.status, body).into_response();
        if let Some(wait) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

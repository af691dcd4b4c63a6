//! The one error type of the client: which operation failed, against which (redacted) URL, with
//! what status and parsed body, classified into a kind callers can match on.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// A failed Coolify call. `Display` never includes the source (kept as `source()`).
#[derive(Debug)]
pub struct CoolifyError {
    /// Coolify's operation id in snake case, e.g. `create_service`.
    pub operation: &'static str,
    /// The request URL without credentials or query values.
    pub url: String,
    pub status: Option<u16>,
    /// The response body parsed as JSON, when it was JSON.
    pub body: Option<serde_json::Value>,
    pub kind: CoolifyErrorKind,
    source: Option<Box<dyn StdError + Send + Sync>>,
    /// The request never left this host (connection refused): safe to repeat any call.
    pub(crate) never_sent: bool,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum CoolifyErrorKind {
    /// 401: no token, a bad token, or a token whose user left the team; also Coolify's 400
    /// "Invalid token." (`invalidTokenResponse()`, bootstrap/helpers/api.php: a token whose team
    /// cannot be resolved), which is a token problem, not a refused request.
    Unauthorized { message: String },
    /// 403: the API is off, the IP is not allowed, or the token lacks an ability or role.
    Forbidden { reason: ForbiddenReason, message: String },
    /// 404.
    NotFound { message: String },
    /// 409: a domain already in use (with the conflicting resources), a duplicate env key or
    /// environment name.
    Conflict { message: String, conflicts: Vec<serde_json::Value> },
    /// A 422; `errors` is free-form: Coolify sends a map of arrays, a map of strings, a bare
    /// array, or nothing, depending on the endpoint.
    Validation { message: String, errors: serde_json::Value },
    /// 400/405: Coolify refused the request (e.g. "Service is already running.").
    BadRequest { status: u16, message: String },
    /// 429 after all retries.
    RateLimited { retry_after: Option<Duration> },
    /// 5xx after all retries (or on a call that is not safe to retry).
    Server { status: u16 },
    /// The request never got an answer: connection refused, dropped, or timed out.
    Transport { detail: String },
    /// The answer was not what the operation expects.
    Decode { detail: String },
    /// The instance's `/version` is older than the feature needs.
    VersionTooOld { feature: &'static str, required: semver::Version, actual: semver::Version },
}

/// The cause of a 403, read from Coolify's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForbiddenReason {
    ApiDisabled,
    IpNotAllowed,
    MissingAbility {
        ability: String,
    },
    MissingTeamRole,
    /// A controller policy said no (e.g. creating a service needs an admin's token).
    Policy,
}

impl CoolifyError {
    pub(crate) fn new(operation: &'static str, url: &str, kind: CoolifyErrorKind) -> Self {
        Self {
            operation,
            url: redact_url(url),
            status: None,
            body: None,
            kind,
            source: None,
            never_sent: false,
        }
    }

    pub(crate) fn with_status(mut self, status: u16, body: Option<serde_json::Value>) -> Self {
        self.status = Some(status);
        self.body = body;
        self
    }

    pub(crate) fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What to do about it, in one line.
    pub fn hint(&self) -> Option<String> {
        self.kind.hint()
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self.kind, CoolifyErrorKind::NotFound { .. })
    }

    /// Coolify did not answer, or answered that it cannot now (429, or 502/503/504 from it or
    /// its proxy), after all retries: an outage of the platform, not a fault of the request or
    /// of one stack. A plain 500 is not one: it can be a single resource's.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self.kind,
            CoolifyErrorKind::Transport { .. }
                | CoolifyErrorKind::RateLimited { .. }
                | CoolifyErrorKind::Server { status: 502..=504 }
        )
    }

    /// Coolify's 400 "Service is already running." from `start` (ServicesController::
    /// action_deploy: the stored status contains `running`), and nothing else: any other 400
    /// is a real refusal.
    pub fn is_already_running(&self) -> bool {
        matches!(&self.kind, CoolifyErrorKind::BadRequest { status: 400, message }
            if message.contains("already running"))
    }

    /// Coolify's 400 "Service is already stopped." from `stop` (ServicesController::action_stop:
    /// the stored status contains `stopped` or `exited`, which lags the containers by up to a
    /// status run).
    pub fn is_already_stopped(&self) -> bool {
        matches!(&self.kind, CoolifyErrorKind::BadRequest { status: 400, message }
            if message.contains("already stopped"))
    }
}

impl CoolifyErrorKind {
    pub fn hint(&self) -> Option<String> {
        let hint = match self {
            Self::Unauthorized { .. } => {
                "the token was rejected: check CFA_COOLIFY_TOKEN (the whole `<id>|<secret>` string), that it has not expired, and that its user is still in the team"
                    .to_owned()
            }
            Self::Forbidden { reason, .. } => match reason {
                ForbiddenReason::ApiDisabled => {
                    "enable the API in Coolify: Settings > Advanced > API access".to_owned()
                }
                ForbiddenReason::IpNotAllowed => {
                    "add this host's IP to Coolify's API allow-list (Settings > Advanced), or use 0.0.0.0 for all".to_owned()
                }
                ForbiddenReason::MissingAbility { ability } => format!(
                    "create a token with the `{ability}` ability (or `root`); the provisioner needs read, write, deploy and read:sensitive"
                ),
                ForbiddenReason::MissingTeamRole | ForbiddenReason::Policy => {
                    "use a token created by an admin or owner of the team that owns the server".to_owned()
                }
            },
            Self::RateLimited { .. } => {
                "lower the client's requests_per_minute or raise API_RATE_LIMIT on the Coolify host".to_owned()
            }
            Self::Server { .. } => "Coolify failed; check its logs and retry later".to_owned(),
            Self::Transport { .. } => {
                "check that Coolify is reachable from this host (CFA_COOLIFY_URL) and retry".to_owned()
            }
            Self::VersionTooOld { required, .. } => format!("upgrade Coolify to {required} or newer"),
            Self::Decode { .. } => {
                "this Coolify version answers differently than expected; report it with the Coolify version".to_owned()
            }
            Self::NotFound { .. } | Self::Conflict { .. } | Self::Validation { .. } | Self::BadRequest { .. } => {
                return None;
            }
        };
        Some(hint)
    }
}

impl fmt::Display for CoolifyErrorKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unauthorized { message } => write!(formatter, "unauthorized ({message})"),
            Self::Forbidden { reason, message } => {
                let reason = match reason {
                    ForbiddenReason::ApiDisabled => "the API is disabled".to_owned(),
                    ForbiddenReason::IpNotAllowed => "this IP may not use the API".to_owned(),
                    ForbiddenReason::MissingAbility { ability } => {
                        format!("the token lacks the `{ability}` ability")
                    }
                    ForbiddenReason::MissingTeamRole => {
                        "the token's user lacks a team role".to_owned()
                    }
                    ForbiddenReason::Policy => "not allowed for this token's user".to_owned(),
                };
                write!(formatter, "forbidden: {reason} ({message})")
            }
            Self::NotFound { message } => write!(formatter, "not found ({message})"),
            Self::Conflict { message, conflicts } => {
                write!(formatter, "conflict ({message})")?;
                let domains: Vec<&str> = conflicts
                    .iter()
                    .filter_map(|conflict| {
                        conflict.get("domain").and_then(|domain| domain.as_str())
                    })
                    .collect();
                if !domains.is_empty() {
                    write!(formatter, ": {}", domains.join(", "))?;
                }
                Ok(())
            }
            Self::Validation { message, errors } => {
                write!(formatter, "rejected ({message}): {errors}")
            }
            Self::BadRequest { status, message } => {
                write!(formatter, "refused with {status} ({message})")
            }
            Self::RateLimited { retry_after } => match retry_after {
                Some(delay) => {
                    write!(formatter, "rate limited (retry after {} s)", delay.as_secs())
                }
                None => formatter.write_str("rate limited"),
            },
            Self::Server { status } => write!(formatter, "server error {status}"),
            Self::Transport { detail } => write!(formatter, "transport failure: {detail}"),
            Self::Decode { detail } => write!(formatter, "unexpected answer: {detail}"),
            Self::VersionTooOld { feature, required, actual } => write!(
                formatter,
                "{feature} needs Coolify {required} or newer, this instance runs {actual}"
            ),
        }
    }
}

impl fmt::Display for CoolifyError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "coolify {} failed at {}: {}", self.operation, self.url, self.kind)?;
        if let Some(hint) = self.hint() {
            write!(formatter, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl StdError for CoolifyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|source| source as &(dyn StdError + 'static))
    }
}

/// Classifies a non-success answer.
pub(crate) fn kind_from_response(
    status: u16,
    body: Option<&serde_json::Value>,
    retry_after: Option<Duration>,
) -> CoolifyErrorKind {
    let message = body
        .and_then(|body| body.get("message"))
        .and_then(|message| message.as_str())
        .unwrap_or("")
        .to_owned();
    match status {
        401 => CoolifyErrorKind::Unauthorized { message },
        400 if message == "Invalid token." => CoolifyErrorKind::Unauthorized { message },
        403 => CoolifyErrorKind::Forbidden { reason: forbidden_reason(&message), message },
        404 => CoolifyErrorKind::NotFound { message },
        409 => {
            let conflicts = body
                .and_then(|body| body.get("conflicts"))
                .and_then(|conflicts| conflicts.as_array())
                .cloned()
                .unwrap_or_default();
            CoolifyErrorKind::Conflict { message, conflicts }
        }
        422 => {
            let errors = body
                .and_then(|body| body.get("errors"))
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            CoolifyErrorKind::Validation { message, errors }
        }
        429 => CoolifyErrorKind::RateLimited { retry_after },
        500..=599 => CoolifyErrorKind::Server { status },
        _ => CoolifyErrorKind::BadRequest { status, message },
    }
}

fn forbidden_reason(message: &str) -> ForbiddenReason {
    if message.contains("API is disabled") {
        ForbiddenReason::ApiDisabled
    } else if message.contains("not allowed to access the API") {
        ForbiddenReason::IpNotAllowed
    } else if let Some(abilities) = message.strip_prefix("Missing required permissions: ") {
        ForbiddenReason::MissingAbility { ability: abilities.trim().to_owned() }
    } else if message.contains("Missing required team role") {
        ForbiddenReason::MissingTeamRole
    } else {
        ForbiddenReason::Policy
    }
}

/// Drops credentials and query values from a URL so it can be logged.
pub(crate) fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            let keys: Vec<String> = parsed.query_pairs().map(|(key, _)| key.into_owned()).collect();
            if keys.is_empty() {
                parsed.set_query(None);
            } else {
                let redacted: Vec<String> = keys.iter().map(|key| format!("{key}=_")).collect();
                parsed.set_query(Some(&redacted.join("&")));
            }
            parsed.to_string()
        }
        Err(_) => "<invalid url>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_messages_map_to_reasons() {
        let check = |message: &str, expected: ForbiddenReason| {
            let body = serde_json::json!({ "message": message });
            let kind = kind_from_response(403, Some(&body), None);
            assert_eq!(
                kind,
                CoolifyErrorKind::Forbidden { reason: expected, message: message.to_owned() }
            );
        };
        check("API is disabled.", ForbiddenReason::ApiDisabled);
        check("You are not allowed to access the API.", ForbiddenReason::IpNotAllowed);
        check(
            "Missing required permissions: deploy",
            ForbiddenReason::MissingAbility { ability: "deploy".to_owned() },
        );
        check("Missing required team role.", ForbiddenReason::MissingTeamRole);
        check("This action is unauthorized.", ForbiddenReason::Policy);
    }

    #[test]
    fn a_400_is_already_running_only_when_coolify_says_so() {
        let error = |status: u16, message: &str| {
            let body = serde_json::json!({ "message": message });
            CoolifyError::new(
                "start_service_by_uuid",
                "https://c.example/x",
                kind_from_response(status, Some(&body), None),
            )
        };
        assert!(error(400, "Service is already running.").is_already_running());
        assert!(!error(400, "UUID is required.").is_already_running());
        assert!(!error(409, "Service is already running.").is_already_running());
        // Coolify answers a token without a resolvable team with a 400: a token problem.
        let invalid = error(400, "Invalid token.");
        assert!(!invalid.is_already_running());
        assert!(matches!(invalid.kind, CoolifyErrorKind::Unauthorized { .. }), "{invalid}");
        assert!(invalid.to_string().contains("hint: the token was rejected"), "{invalid}");
    }

    #[test]
    fn urls_lose_credentials_and_query_values() {
        assert_eq!(
            redact_url(
                "https://user:pw@coolify.example/api/v1/services/x/stop?docker_cleanup=false"
            ),
            "https://coolify.example/api/v1/services/x/stop?docker_cleanup=_"
        );
    }

    #[test]
    fn display_has_hint_on_its_own_line_and_no_source() {
        let error = CoolifyError::new(
            "list_services",
            "https://c.example/api/v1/services",
            CoolifyErrorKind::Unauthorized { message: "Unauthenticated.".to_owned() },
        );
        let text = error.to_string();
        assert!(text.starts_with(
            "coolify list_services failed at https://c.example/api/v1/services: unauthorized"
        ));
        assert!(text.contains("\nhint: the token was rejected"));
    }
}

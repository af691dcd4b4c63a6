//! The one error type of the client: which operation failed, with what status, PocketBase's
//! message and its per-field validation errors, classified into a kind callers can match on.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;

/// A failed PocketBase call. `Display` never includes the source (kept as `source()`).
#[derive(Debug)]
pub struct PocketBaseError {
    /// What we tried, in `resource_verb` form, e.g. `stack_create`.
    pub operation: &'static str,
    pub status: Option<u16>,
    /// PocketBase's top-level `message`.
    pub message: String,
    /// PocketBase's `data`: field name -> (code, message), e.g. `stack_name` ->
    /// `validation_not_unique`.
    pub field_errors: BTreeMap<String, FieldError>,
    pub kind: PocketBaseErrorKind,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

/// One entry of PocketBase's `data` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub code: String,
    pub message: String,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PocketBaseErrorKind {
    /// 401, or a failed password login.
    Unauthorized,
    /// 403: e.g. a non-superuser on a superuser-only collection, or batch requests disabled.
    Forbidden,
    /// 404: not there, or not visible to the caller (rules answer 404 for other tenants').
    NotFound,
    /// 400 with `tenant_id.code = stack_limit_reached`: the tenant's `max_stacks` is used up.
    StackLimitReached,
    /// 400 with `validation_not_unique`: e.g. a `stack_name` already used in the tenant.
    NotUnique { fields: Vec<String> },
    /// Any other 400: a failed create rule (no details), a bad field value, a bad filter.
    BadRequest,
    /// 5xx.
    Server,
    /// No answer: connection refused, reset, or timed out.
    Transport,
    /// The answer was not what the operation expects.
    Decode,
    /// Refused before sending: a `config` key looks like a secret (secrets go to Coolify,
    /// never to PocketBase).
    SecretInConfig { key: String },
    /// The argument cannot be sent (e.g. an invalid value in a filter).
    InvalidInput,
    /// More records match what must name one (two tenants with one slug): nothing is chosen.
    Ambiguous,
    /// 409 `cfa_stale`: a conditional write found the record changed since it was read.
    Stale,
}

impl PocketBaseError {
    pub(crate) fn new(
        operation: &'static str,
        kind: PocketBaseErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            operation,
            status: None,
            message: message.into(),
            field_errors: BTreeMap::new(),
            kind,
            source: None,
        }
    }

    pub(crate) fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Builds the error from a non-2xx answer and its body (PocketBase's
    /// `{"status","message","data":{field:{"code","message"}}}`).
    pub(crate) fn from_response(operation: &'static str, status: u16, body: &[u8]) -> Self {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let message = parsed
            .as_ref()
            .and_then(|value| value.get("message"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
        let mut field_errors = BTreeMap::new();
        if let Some(data) = parsed
            .as_ref()
            .and_then(|value| value.get("data"))
            .and_then(serde_json::Value::as_object)
        {
            collect_field_errors("", data, &mut field_errors);
        }
        let kind = match status {
            401 => PocketBaseErrorKind::Unauthorized,
            403 => PocketBaseErrorKind::Forbidden,
            404 => PocketBaseErrorKind::NotFound,
            409 if field_errors.values().any(|error| error.code == "cfa_stale") => {
                PocketBaseErrorKind::Stale
            }
            500..=599 => PocketBaseErrorKind::Server,
            _ if field_errors.values().any(|error| error.code == "stack_limit_reached") => {
                PocketBaseErrorKind::StackLimitReached
            }
            _ if field_errors.values().any(|error| error.code == "validation_not_unique") => {
                PocketBaseErrorKind::NotUnique {
                    fields: field_errors
                        .iter()
                        .filter(|(_, error)| error.code == "validation_not_unique")
                        .map(|(field, _)| field.clone())
                        .collect(),
                }
            }
            // A failed password login is a 400 "Failed to authenticate.".
            400 if message == "Failed to authenticate." => PocketBaseErrorKind::Unauthorized,
            _ => PocketBaseErrorKind::BadRequest,
        };
        Self { operation, status: Some(status), message, field_errors, kind, source: None }
    }

    /// Whether `field` failed with PocketBase's error code `code`.
    pub fn has_field_error(&self, field: &str, code: &str) -> bool {
        self.field_errors.get(field).is_some_and(|error| error.code == code)
    }

    /// What to do about it, in one line.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match &self.kind {
            PocketBaseErrorKind::Unauthorized => {
                "check CFA_PB_EMAIL/CFA_PB_PASSWORD (a superuser: `pocketbase superuser upsert EMAIL PASSWORD`)"
            }
            PocketBaseErrorKind::Forbidden => {
                "the call needs a superuser, or a setting that is off (e.g. batch)"
            }
            PocketBaseErrorKind::NotFound => {
                "the record does not exist or the caller may not see it; the PocketBase schema check tells whether the collections exist"
            }
            PocketBaseErrorKind::StackLimitReached => {
                "the tenant's max_stacks is used up: delete a stack, or raise max_stacks/plan_tier as the operator"
            }
            PocketBaseErrorKind::NotUnique { .. } => {
                "pick another stack_name: names are unique per tenant"
            }
            PocketBaseErrorKind::BadRequest => {
                "a create/update rule refused it (no details given), or a field value is invalid"
            }
            PocketBaseErrorKind::Server => "see PocketBase's log; a hook may have failed",
            PocketBaseErrorKind::Transport => "is PocketBase running at CFA_PB_URL?",
            PocketBaseErrorKind::Decode => {
                "is CFA_PB_URL a PocketBase 0.40 server, with the platform's migrations installed?"
            }
            PocketBaseErrorKind::SecretInConfig { .. } => {
                "secrets go to Coolify's environment, never into PocketBase's `config`"
            }
            PocketBaseErrorKind::Ambiguous => {
                "give each tenant its own slug in PocketBase, then installing the platform's migrations adds the unique index"
            }
            PocketBaseErrorKind::Stale => {
                "someone changed the record meanwhile; read it again and decide again"
            }
            PocketBaseErrorKind::InvalidInput => return None,
        })
    }
}

fn collect_field_errors(
    prefix: &str,
    data: &serde_json::Map<String, serde_json::Value>,
    into: &mut BTreeMap<String, FieldError>,
) {
    for (field, value) in data {
        let name = if prefix.is_empty() { field.clone() } else { format!("{prefix}.{field}") };
        if let Some(code) = value.get("code").and_then(serde_json::Value::as_str) {
            let message =
                value.get("message").and_then(serde_json::Value::as_str).unwrap_or_default();
            into.insert(
                name.clone(),
                FieldError { code: code.to_owned(), message: message.to_owned() },
            );
        }
        // Batch answers nest: `requests.<index>.response.data.<field>`.
        if let Some(nested) = value.as_object() {
            let children: serde_json::Map<String, serde_json::Value> = nested
                .iter()
                .filter(|(key, child)| child.is_object() && key.as_str() != "params")
                .map(|(key, child)| (key.clone(), child.clone()))
                .collect();
            collect_field_errors(&name, &children, into);
        }
    }
}

impl fmt::Display for PocketBaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pocketbase `{}` failed", self.operation)?;
        if let Some(status) = self.status {
            write!(f, " with {status}")?;
        }
        match &self.kind {
            PocketBaseErrorKind::SecretInConfig { key } => {
                write!(f, ": config key `{key}` looks like a secret")?;
            }
            _ => {
                let message = self.message.trim_end_matches('.');
                if !message.is_empty() {
                    write!(f, ": {}", lowercase_first(message))?;
                }
            }
        }
        for (field, error) in &self.field_errors {
            write!(f, "; {field}: {} ({})", error.message.trim_end_matches('.'), error.code)?;
        }
        if let Some(hint) = self.hint() {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl StdError for PocketBaseError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|source| source as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_stack_name_is_not_unique_with_both_fields() {
        let body = br#"{"data":{"stack_name":{"code":"validation_not_unique","message":"Value must be unique."},"tenant_id":{"code":"validation_not_unique","message":"Value must be unique."}},"message":"Failed to create record.","status":400}"#;
        let error = PocketBaseError::from_response("stack_create", 400, body);
        assert_eq!(
            error.kind,
            PocketBaseErrorKind::NotUnique {
                fields: vec!["stack_name".to_owned(), "tenant_id".to_owned()]
            }
        );
        assert_eq!(
            error.to_string(),
            "pocketbase `stack_create` failed with 400: failed to create record; stack_name: Value must be unique (validation_not_unique); tenant_id: Value must be unique (validation_not_unique)\nhint: pick another stack_name: names are unique per tenant"
        );
    }

    #[test]
    fn batch_errors_are_flattened_and_classified() {
        let body = br#"{"data":{"requests":{"2":{"code":"batch_request_failed","message":"Batch request failed.","response":{"data":{"tenant_id":{"code":"stack_limit_reached","message":"Max_stacks (2) reached."}}}}}},"message":"Batch transaction failed.","status":400}"#;
        let error = PocketBaseError::from_response("stack_create_batch", 400, body);
        assert!(error.has_field_error("requests.2.response.data.tenant_id", "stack_limit_reached"));
        assert_eq!(error.kind, PocketBaseErrorKind::StackLimitReached);
    }

    #[test]
    fn non_json_body_keeps_its_start_as_message() {
        let error = PocketBaseError::from_response("tenant_view", 502, b"Bad Gateway");
        assert_eq!(error.kind, PocketBaseErrorKind::Server);
        assert_eq!(error.message, "Bad Gateway");
    }
}

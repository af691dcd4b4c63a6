//! Our records (`Tenant`, `AgentStack`, `AuditEntry`) and what we send (`NewStack`,
//! `StackPatch`, ...), converted from and to PocketBase's record JSON here and nowhere else.

use cfa_core::lifecycle::StackStatus;
use cfa_core::plan::PlanTier;
use cfa_core::resources::Resources;
use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::error::{PocketBaseError, PocketBaseErrorKind};

/// A tenant (`tenants` record). Fields of a pre-existing `tenants` collection that we do not
/// own are kept, untouched, in `other_fields`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub slug: String,
    /// The `users` record that owns the tenant.
    pub user_id: String,
    pub max_stacks: u32,
    pub plan_tier: PlanTier,
    /// A sovereign tenant's per-stack ceiling (CPU and memory); `None` is the platform's
    /// sovereign default. Other plans ignore it.
    pub resource_limits: Option<Resources>,
    pub other_fields: Map<String, Value>,
}

/// What the operator creates a tenant with; `None` leaves PocketBase's hook defaults
/// (`max_stacks` 1, `plan_tier` starter).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewTenant {
    pub name: String,
    pub slug: String,
    pub user_id: String,
    pub max_stacks: Option<u32>,
    pub plan_tier: Option<PlanTier>,
    pub resource_limits: Option<Resources>,
}

/// A partial update of a tenant: only the `Some` fields are sent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub user_id: Option<String>,
    pub max_stacks: Option<u32>,
    pub plan_tier: Option<PlanTier>,
    /// `Some(None)` clears the tenant's custom ceiling.
    pub resource_limits: Option<Option<Resources>>,
}

/// A `users` account, as tenant onboarding needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAccount {
    pub id: String,
    /// The account proved its e-mail (PocketBase's `verified`).
    pub verified: bool,
}

/// A stack (`agent_stacks` record).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentStack {
    pub id: String,
    pub tenant_id: String,
    pub template: String,
    pub stack_name: String,
    pub coolify_project_uuid: Option<String>,
    pub coolify_service_uuid: Option<String>,
    pub domain: Option<String>,
    pub status: StackStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Non-secret template parameters (`Value::Null` when unset).
    pub config: Value,
    pub resource_limits: Option<Value>,
    pub last_health_check: Option<Timestamp>,
    pub error_message: Option<String>,
    /// When the tenant asked for the stack's deletion (PocketBase's clock): the controller
    /// deletes it once the grace period has passed since then.
    pub delete_requested_at: Option<Timestamp>,
    /// The tenant, when the list/view asked to expand `tenant_id` and the caller may see it.
    pub tenant: Option<Box<Tenant>>,
}

/// A stack to create. A tenant may set only `tenant_id`, `template`, `stack_name`, `config`
/// and `status = pending`; the engine (a superuser) may set the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStack {
    pub tenant_id: String,
    pub template: String,
    pub stack_name: String,
    pub status: StackStatus,
    pub config: Value,
    pub coolify_project_uuid: Option<String>,
    pub coolify_service_uuid: Option<String>,
    pub domain: Option<String>,
    pub resource_limits: Option<Value>,
    pub last_health_check: Option<Timestamp>,
    pub error_message: Option<String>,
}

impl NewStack {
    /// A `pending` stack with no engine-owned fields: what a tenant may create.
    pub fn pending(tenant_id: &str, template: &str, stack_name: &str) -> NewStack {
        NewStack {
            tenant_id: tenant_id.to_owned(),
            template: template.to_owned(),
            stack_name: stack_name.to_owned(),
            status: StackStatus::Pending,
            config: Value::Null,
            coolify_project_uuid: None,
            coolify_service_uuid: None,
            domain: None,
            resource_limits: None,
            last_health_check: None,
            error_message: None,
        }
    }
}

/// A partial update of a stack: only the `Some` fields are sent. `Some("")` clears a text
/// field (e.g. `error_message` after a recovery).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StackPatch {
    pub tenant_id: Option<String>,
    pub template: Option<String>,
    pub stack_name: Option<String>,
    pub status: Option<StackStatus>,
    pub config: Option<Value>,
    pub coolify_project_uuid: Option<String>,
    pub coolify_service_uuid: Option<String>,
    pub domain: Option<String>,
    pub resource_limits: Option<Value>,
    pub last_health_check: Option<Timestamp>,
    pub error_message: Option<String>,
    /// Asks for the stack's deletion (what a tenant sends; the hook dates it by PocketBase's
    /// clock unless a superuser sends it).
    pub delete_requested_at: Option<Timestamp>,
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditOutcome {
    Ok,
    Failed,
    /// Refused by admission or a rule before anything changed.
    Refused,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Failed => "failed",
            AuditOutcome::Refused => "refused",
        }
    }

    pub fn parse(input: &str) -> Option<AuditOutcome> {
        [AuditOutcome::Ok, AuditOutcome::Failed, AuditOutcome::Refused]
            .into_iter()
            .find(|outcome| outcome.as_str() == input)
    }
}

/// One `audit_log` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: String,
    pub time: Timestamp,
    /// `cli:<operator>`, `controller`, `users:<id>` (a tenant's change, written by the hook).
    pub actor: String,
    /// `stack.provision`, `stack.suspend`, `stack.update` (hook), ...
    pub action: String,
    pub tenant: Option<String>,
    pub stack: Option<String>,
    /// Redacted snapshots (the caller redacts; the hook's snapshots hold no secrets since
    /// PocketBase holds none).
    pub before: Value,
    pub after: Value,
    pub outcome: AuditOutcome,
    pub error: Option<String>,
}

/// An entry to append (the time is the server's).
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    pub actor: String,
    pub action: String,
    pub tenant: Option<String>,
    pub stack: Option<String>,
    pub before: Value,
    pub after: Value,
    pub outcome: AuditOutcome,
    pub error: Option<String>,
}

/// A page of a list call.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: u32,
    pub per_page: u32,
    /// `None` when the list skipped the total (`skip_total`).
    pub total_items: Option<u64>,
}

/// Parses PocketBase's date format (`2026-11-22 13:20:58.933Z`, a space instead of `T`);
/// an empty string is "not set".
pub fn parse_pocketbase_date(text: &str) -> Result<Option<Timestamp>, jiff::Error> {
    if text.is_empty() {
        return Ok(None);
    }
    text.replacen(' ', "T", 1).parse::<Timestamp>().map(Some)
}

/// Formats a time the way PocketBase stores it (`YYYY-MM-DD HH:MM:SS.mmmZ`).
pub fn format_pocketbase_date(time: Timestamp) -> String {
    time.strftime("%Y-%m-%d %H:%M:%S%.3fZ").to_string()
}

// ---- wire conversion -------------------------------------------------------------------------

pub(crate) struct Fields<'a> {
    operation: &'static str,
    collection: &'static str,
    record: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(
        operation: &'static str,
        collection: &'static str,
        record: &'a Value,
    ) -> Result<Self, PocketBaseError> {
        let record = record.as_object().ok_or_else(|| {
            decode_error(operation, format!("a {collection} record is not an object"))
        })?;
        Ok(Fields { operation, collection, record })
    }

    fn error(&self, field: &str, expected: &str) -> PocketBaseError {
        let id = self.record.get("id").and_then(Value::as_str).unwrap_or("?");
        decode_error(
            self.operation,
            format!("{}.{field} of record `{id}` is not {expected}", self.collection),
        )
    }

    pub(crate) fn text(&self, field: &str) -> Result<String, PocketBaseError> {
        match self.record.get(field) {
            Some(Value::String(text)) => Ok(text.clone()),
            // A field missing from a pre-existing collection reads as empty.
            None | Some(Value::Null) => Ok(String::new()),
            Some(_) => Err(self.error(field, "text")),
        }
    }

    pub(crate) fn optional_text(&self, field: &str) -> Result<Option<String>, PocketBaseError> {
        self.text(field).map(|text| Some(text).filter(|text| !text.is_empty()))
    }

    pub(crate) fn date(&self, field: &str) -> Result<Option<Timestamp>, PocketBaseError> {
        let text = self.text(field)?;
        parse_pocketbase_date(&text)
            .map_err(|source| self.error(field, "a date").with_source(source))
    }

    pub(crate) fn required_date(&self, field: &str) -> Result<Timestamp, PocketBaseError> {
        self.date(field)?.ok_or_else(|| self.error(field, "a date"))
    }

    pub(crate) fn json(&self, field: &str) -> Value {
        self.record.get(field).cloned().unwrap_or(Value::Null)
    }
}

pub(crate) fn decode_error(operation: &'static str, detail: String) -> PocketBaseError {
    PocketBaseError::new(operation, PocketBaseErrorKind::Decode, detail)
}

const TENANT_FIELDS: [&str; 10] = [
    "id",
    "name",
    "slug",
    "user_id",
    "max_stacks",
    "plan_tier",
    "resource_limits",
    "collectionId",
    "collectionName",
    "expand",
];

pub(crate) fn tenant_from_record(
    operation: &'static str,
    record: &Value,
) -> Result<Tenant, PocketBaseError> {
    let fields = Fields::new(operation, "tenants", record)?;
    let max_stacks = match fields.record.get("max_stacks") {
        Some(Value::Number(number)) => number
            .as_f64()
            .filter(|value| *value >= 0.0 && *value <= f64::from(u32::MAX))
            .map(|value| value as u32)
            .ok_or_else(|| fields.error("max_stacks", "a count"))?,
        _ => {
            return Err(fields.error(
                "max_stacks",
                "a number (install the platform's migrations, then restart PocketBase)",
            ));
        }
    };
    let plan_text = fields.text("plan_tier")?;
    let plan_tier = PlanTier::parse(&plan_text)
        .map_err(|source| fields.error("plan_tier", "a plan tier").with_source(source))?;
    let resource_limits = match fields.record.get("resource_limits") {
        None | Some(Value::Null) => None,
        Some(value) => Some(limits_from_json(value).ok_or_else(|| {
            fields.error("resource_limits", r#"{"cpus": <number>, "memory_mb": <integer>}"#)
        })?),
    };
    let other_fields = fields
        .record
        .iter()
        .filter(|(key, _)| !TENANT_FIELDS.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    Ok(Tenant {
        id: fields.text("id")?,
        name: fields.text("name")?,
        slug: fields.text("slug")?,
        user_id: fields.text("user_id")?,
        max_stacks,
        plan_tier,
        resource_limits,
        other_fields,
    })
}

/// `{"cpus": 6, "memory_mb": 12288}` as CPU and memory (no disk).
fn limits_from_json(value: &Value) -> Option<Resources> {
    let object = value.as_object().filter(|object| object.len() == 2)?;
    let cpus = object.get("cpus")?.as_f64().filter(|cpus| *cpus > 0.0 && *cpus <= 1024.0)?;
    let memory_mb = u32::try_from(object.get("memory_mb")?.as_u64()?).ok()?;
    Some(Resources::new((cpus * 1000.0).round() as u32, memory_mb, 0))
}

fn limits_to_json(limits: Resources) -> Value {
    serde_json::json!({ "cpus": limits.cpus(), "memory_mb": limits.memory_mb })
}

pub(crate) fn stack_from_record(
    operation: &'static str,
    record: &Value,
) -> Result<AgentStack, PocketBaseError> {
    let fields = Fields::new(operation, "agent_stacks", record)?;
    let status_text = fields.text("status")?;
    let status =
        StackStatus::parse(&status_text).ok_or_else(|| fields.error("status", "a stack status"))?;
    let tenant = match record.get("expand").and_then(|expand| expand.get("tenant_id")) {
        Some(tenant) => Some(Box::new(tenant_from_record(operation, tenant)?)),
        None => None,
    };
    let resource_limits = Some(fields.json("resource_limits")).filter(|value| !value.is_null());
    Ok(AgentStack {
        id: fields.text("id")?,
        tenant_id: fields.text("tenant_id")?,
        template: fields.text("template")?,
        stack_name: fields.text("stack_name")?,
        coolify_project_uuid: fields.optional_text("coolify_project_uuid")?,
        coolify_service_uuid: fields.optional_text("coolify_service_uuid")?,
        domain: fields.optional_text("domain")?,
        status,
        created_at: fields.required_date("created_at")?,
        updated_at: fields.required_date("updated_at")?,
        config: fields.json("config"),
        resource_limits,
        last_health_check: fields.date("last_health_check")?,
        error_message: fields.optional_text("error_message")?,
        delete_requested_at: fields.date("delete_requested_at")?,
        tenant,
    })
}

pub(crate) fn audit_from_record(
    operation: &'static str,
    record: &Value,
) -> Result<AuditEntry, PocketBaseError> {
    let fields = Fields::new(operation, "audit_log", record)?;
    let outcome_text = fields.text("outcome")?;
    Ok(AuditEntry {
        id: fields.text("id")?,
        time: fields.required_date("time")?,
        actor: fields.text("actor")?,
        action: fields.text("action")?,
        tenant: fields.optional_text("tenant")?,
        stack: fields.optional_text("stack")?,
        before: fields.json("before"),
        after: fields.json("after"),
        outcome: AuditOutcome::parse(&outcome_text)
            .ok_or_else(|| fields.error("outcome", "an outcome"))?,
        error: fields.optional_text("error")?,
    })
}

fn put(body: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        body.insert(key.to_owned(), value);
    }
}

pub(crate) fn tenant_create_body(tenant: &NewTenant) -> Value {
    let mut body = Map::new();
    body.insert("name".into(), tenant.name.clone().into());
    body.insert("slug".into(), tenant.slug.clone().into());
    body.insert("user_id".into(), tenant.user_id.clone().into());
    put(&mut body, "max_stacks", tenant.max_stacks.map(Value::from));
    put(&mut body, "plan_tier", tenant.plan_tier.map(|tier| tier.as_str().into()));
    put(&mut body, "resource_limits", tenant.resource_limits.map(limits_to_json));
    Value::Object(body)
}

pub(crate) fn tenant_patch_body(patch: &TenantPatch) -> Value {
    let mut body = Map::new();
    put(&mut body, "name", patch.name.clone().map(Value::from));
    put(&mut body, "slug", patch.slug.clone().map(Value::from));
    put(&mut body, "user_id", patch.user_id.clone().map(Value::from));
    put(&mut body, "max_stacks", patch.max_stacks.map(Value::from));
    put(&mut body, "plan_tier", patch.plan_tier.map(|tier| tier.as_str().into()));
    put(
        &mut body,
        "resource_limits",
        patch.resource_limits.map(|limits| limits.map_or(Value::Null, limits_to_json)),
    );
    Value::Object(body)
}

pub(crate) fn stack_create_body(stack: &NewStack) -> Value {
    let mut body = Map::new();
    body.insert("tenant_id".into(), stack.tenant_id.clone().into());
    body.insert("template".into(), stack.template.clone().into());
    body.insert("stack_name".into(), stack.stack_name.clone().into());
    body.insert("status".into(), stack.status.as_str().into());
    if !stack.config.is_null() {
        body.insert("config".into(), stack.config.clone());
    }
    put(&mut body, "coolify_project_uuid", stack.coolify_project_uuid.clone().map(Value::from));
    put(&mut body, "coolify_service_uuid", stack.coolify_service_uuid.clone().map(Value::from));
    put(&mut body, "domain", stack.domain.clone().map(Value::from));
    put(&mut body, "resource_limits", stack.resource_limits.clone());
    put(
        &mut body,
        "last_health_check",
        stack.last_health_check.map(|time| format_pocketbase_date(time).into()),
    );
    put(&mut body, "error_message", stack.error_message.clone().map(Value::from));
    Value::Object(body)
}

pub(crate) fn stack_patch_body(patch: &StackPatch) -> Value {
    let mut body = Map::new();
    put(&mut body, "tenant_id", patch.tenant_id.clone().map(Value::from));
    put(&mut body, "template", patch.template.clone().map(Value::from));
    put(&mut body, "stack_name", patch.stack_name.clone().map(Value::from));
    put(&mut body, "status", patch.status.map(|status| status.as_str().into()));
    put(&mut body, "config", patch.config.clone());
    put(&mut body, "coolify_project_uuid", patch.coolify_project_uuid.clone().map(Value::from));
    put(&mut body, "coolify_service_uuid", patch.coolify_service_uuid.clone().map(Value::from));
    put(&mut body, "domain", patch.domain.clone().map(Value::from));
    put(&mut body, "resource_limits", patch.resource_limits.clone());
    put(
        &mut body,
        "last_health_check",
        patch.last_health_check.map(|time| format_pocketbase_date(time).into()),
    );
    put(&mut body, "error_message", patch.error_message.clone().map(Value::from));
    put(
        &mut body,
        "delete_requested_at",
        patch.delete_requested_at.map(|time| format_pocketbase_date(time).into()),
    );
    Value::Object(body)
}

pub(crate) fn audit_create_body(entry: &NewAuditEntry) -> Value {
    let mut body = Map::new();
    body.insert("actor".into(), entry.actor.clone().into());
    body.insert("action".into(), entry.action.clone().into());
    body.insert("tenant".into(), entry.tenant.clone().unwrap_or_default().into());
    body.insert("stack".into(), entry.stack.clone().unwrap_or_default().into());
    body.insert("before".into(), entry.before.clone());
    body.insert("after".into(), entry.after.clone());
    body.insert("outcome".into(), entry.outcome.as_str().into());
    body.insert("error".into(), entry.error.clone().unwrap_or_default().into());
    Value::Object(body)
}

/// Key fragments that mark a `config` entry as a secret (cheap, not exhaustive: the engine
/// filters by the template's parameter types before it writes).
const SECRET_KEY_FRAGMENTS: [&str; 7] =
    ["token", "secret", "password", "api_key", "apikey", "private_key", "credential"];

/// The first key (at any depth) of `config` that looks like a secret.
pub(crate) fn secret_looking_key(config: &Value) -> Option<String> {
    match config {
        Value::Object(map) => map.iter().find_map(|(key, value)| {
            let lowered = key.to_ascii_lowercase();
            if SECRET_KEY_FRAGMENTS.iter().any(|fragment| lowered.contains(fragment)) {
                Some(key.clone())
            } else {
                secret_looking_key(value)
            }
        }),
        Value::Array(items) => items.iter().find_map(secret_looking_key),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pocketbase_dates_parse_and_format_both_ways() {
        let time = parse_pocketbase_date("2026-11-22 13:20:58.933Z").unwrap().unwrap();
        assert_eq!(time.to_string(), "2026-11-22T13:20:58.933Z");
        assert_eq!(format_pocketbase_date(time), "2026-11-22 13:20:58.933Z");
        assert_eq!(parse_pocketbase_date("").unwrap(), None);
        assert!(parse_pocketbase_date("yesterday").is_err());
    }

    #[test]
    fn stack_record_converts_empty_strings_to_none() {
        let record = json!({
            "collectionId": "pbc_1", "collectionName": "agent_stacks", "id": "abc",
            "tenant_id": "t1", "template": "telegram-bot", "stack_name": "bot",
            "coolify_project_uuid": "", "coolify_service_uuid": "svc", "domain": "",
            "status": "running", "created_at": "2026-11-22 13:20:58.933Z", "updated_at": "2026-11-22 13:20:59.000Z",
            "config": {"chat_ids": [1]}, "resource_limits": null, "last_health_check": "", "error_message": ""
        });
        let stack = stack_from_record("stack_view", &record).unwrap();
        assert_eq!(stack.status, StackStatus::Running);
        assert_eq!(stack.coolify_project_uuid, None);
        assert_eq!(stack.coolify_service_uuid.as_deref(), Some("svc"));
        assert_eq!(stack.resource_limits, None);
        assert_eq!(stack.last_health_check, None);
        assert_eq!(stack.config, json!({"chat_ids": [1]}));
    }

    #[test]
    fn unknown_status_is_a_decode_error_naming_record_and_field() {
        let record = json!({"id": "abc", "status": "exploded", "created_at": "", "updated_at": ""});
        let error = stack_from_record("stack_view", &record).unwrap_err();
        assert_eq!(error.kind, PocketBaseErrorKind::Decode);
        assert!(error.message.contains("agent_stacks.status of record `abc`"), "{}", error.message);
    }

    #[test]
    fn tenant_keeps_fields_it_does_not_own() {
        let record = json!({"id": "t1", "name": "A", "slug": "a", "user_id": "u1", "max_stacks": 2,
            "plan_tier": "team", "router_url": "https://r.example", "collectionId": "x"});
        let tenant = tenant_from_record("tenant_view", &record).unwrap();
        assert_eq!(tenant.plan_tier, PlanTier::Team);
        assert_eq!(tenant.other_fields.keys().collect::<Vec<_>>(), ["router_url"]);
    }

    #[test]
    fn secret_looking_keys_are_found_at_any_depth() {
        assert_eq!(secret_looking_key(&json!({"chat_ids": [1], "model": "x"})), None);
        assert_eq!(
            secret_looking_key(&json!({"bot": {"Telegram_Bot_Token": "1:x"}})),
            Some("Telegram_Bot_Token".to_owned())
        );
        assert_eq!(
            secret_looking_key(&json!([{"router_api_key": "k"}])),
            Some("router_api_key".to_owned())
        );
    }
}

//! The JSON shapes of a stack and of an operation's outcome, as `--output json` and the JSON
//! API show them: plain data, one definition for every front end.

use super::*;

/// A stack record as the views show it (no secret is ever in a record).
pub fn stack_json(tenant_slug: &str, stack: &AgentStack) -> Value {
    json!({
        "tenant": tenant_slug,
        "stack": stack.stack_name,
        "template": stack.template,
        "status": stack.status.as_str(),
        "domain": stack.domain,
        "coolify_project_uuid": stack.coolify_project_uuid,
        "coolify_service_uuid": stack.coolify_service_uuid,
        "resource_limits": stack.resource_limits,
        "error_message": stack.error_message,
        "delete_requested_at": stack.delete_requested_at.map(|time| time.to_string()),
        "updated_at": stack.updated_at.to_string(),
    })
}

impl StackOutcome {
    /// What an operation left, as the views show it.
    pub fn to_json(&self) -> Value {
        json!({
            "tenant": self.tenant,
            "stack": self.stack,
            "record_id": self.record_id,
            "status": self.status.as_str(),
            "coolify_project_uuid": self.project_uuid,
            "coolify_service_uuid": self.service_uuid,
            "domain": self.domain,
            "server_uuid": self.server_uuid,
            "limits": self.limits.map(super::capacity::resources_json),
            "changed": self.changed,
        })
    }
}

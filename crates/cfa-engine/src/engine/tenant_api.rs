//! What a tenant does through the platform's own API (`cfa serve`), beside PocketBase: send
//! its stack's secret parameters and read its stack's generated credentials. Both go to and
//! come from Coolify's variables only, so no secret ever lands in PocketBase.
//!
//! The caller has proved who the tenant is (a PocketBase user token, checked by PocketBase);
//! here a user reaches only the stacks of the tenant it owns, and an unknown record and
//! another tenant's record answer the same, so ids cannot be probed.

use std::time::Duration;

use cfa_templates::manifest::ParameterType;

use super::*;

/// Why a tenant's request on its stack was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum TenantRequestError {
    /// An unknown record, or one of another tenant: the same answer for both.
    #[error("no stack with this id belongs to you")]
    NotFound,
    /// The controller has not created the stack's service yet (it does once the record is
    /// admitted): nothing to write the secrets to or read credentials from.
    #[error("the stack's service is being created; retry in {} seconds", retry_after.as_secs())]
    NotReady { retry_after: Duration },
    /// A deploy or another change of the stack is running, or it is being deleted.
    #[error("{reason}")]
    Busy { reason: String, retry_after: Option<Duration> },
    /// A parameter that is unknown, not a secret, or whose value is malformed.
    #[error("parameter `{name}`: {problem}")]
    Unprocessable { name: String, problem: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// When the secrets a tenant sent take effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsTakeEffect {
    /// The stack runs: [`Engine::apply_environment`] for `tenant`/`stack` restarts it (the
    /// caller starts it and does not wait for it).
    AfterRestart { tenant: String, stack: String },
    /// The stack waits for them, or for a retry: the controller deploys it next (its record
    /// was touched, which wakes the controller).
    AtDeploy,
    /// The stack is suspended: at its resume.
    AtResume,
}

/// How long a tenant waits before asking again for a service the controller creates.
const SERVICE_RETRY_AFTER: Duration = Duration::from_secs(5);

impl Engine {
    /// The user's stack with this record id, with its tenant.
    pub async fn tenant_stack(
        &self,
        user_id: &str,
        record_id: &str,
    ) -> Result<(AgentStack, Tenant), TenantRequestError> {
        let subject = Subject { tenant: format!("user {user_id}"), stack: record_id.to_owned() };
        let record = match self.inner.pocketbase.stack_view(record_id, true).await {
            Ok(record) => record,
            Err(error) if error.kind == PocketBaseErrorKind::NotFound => {
                return Err(TenantRequestError::NotFound);
            }
            // A malformed id is an unknown one.
            Err(error) if error.kind == PocketBaseErrorKind::InvalidInput => {
                return Err(TenantRequestError::NotFound);
            }
            Err(error) => return Err(subject.pocketbase(Step::RecordPending, error).into()),
        };
        let Some(tenant) = record.tenant.clone() else {
            return Err(TenantRequestError::NotFound);
        };
        if tenant.user_id != user_id {
            return Err(TenantRequestError::NotFound);
        }
        Ok((record, *tenant))
    }

    /// Writes a tenant's secret parameters to its stack's Coolify variables (merged with
    /// those already set), audited by name only, and says when they take effect.
    pub async fn set_tenant_secrets(
        &self,
        user_id: &str,
        record_id: &str,
        values: &BTreeMap<String, String>,
    ) -> Result<SecretsTakeEffect, TenantRequestError> {
        let (record, tenant) = self.tenant_stack(user_id, record_id).await?;
        let template = self.template(&record.template)?;
        let mut variables = Vec::new();
        for (name, value) in values {
            let declared = template.manifest.parameters.get(name).ok_or_else(|| {
                TenantRequestError::Unprocessable {
                    name: name.chars().take(60).collect(),
                    problem: format!(
                        "template `{}` has no such parameter (its secrets: {})",
                        template.name(),
                        secret_names(template).join(", ")
                    ),
                }
            })?;
            if declared.kind != ParameterType::Secret {
                return Err(TenantRequestError::Unprocessable {
                    name: name.clone(),
                    problem: "is not a secret; it belongs in the record's `config`".to_owned(),
                });
            }
            let value =
                cfa_templates::params::check_parameter(template, name, value).map_err(|error| {
                    TenantRequestError::Unprocessable {
                        name: name.clone(),
                        problem: error.to_string().lines().next().unwrap_or_default().to_owned(),
                    }
                })?;
            variables.push(EnvironmentVariableUpsert::new(
                cfa_templates::render::secret_variable_name(name),
                SecretValue::new(value),
            ));
        }
        if record.delete_requested_at.is_some() {
            return Err(TenantRequestError::Busy {
                reason: "the stack is being deleted, as you asked".to_owned(),
                retry_after: None,
            });
        }
        let Some(service_uuid) =
            record.coolify_service_uuid.clone().filter(|uuid| !uuid.is_empty())
        else {
            return Err(TenantRequestError::NotReady { retry_after: SERVICE_RETRY_AFTER });
        };
        let subject = Subject { tenant: tenant.slug.clone(), stack: record.stack_name.clone() };
        // A deploy in this process renders with the values it read when it began, and would
        // write them back over these: the tenant retries once it has finished.
        let lock = Self::lock_for(
            &self.inner.stack_locks,
            &format!("{}/{}", tenant.id, record.stack_name),
        );
        let busy = || TenantRequestError::Busy {
            reason:
                "a deploy of this stack is running; send the secrets again when it has finished"
                    .to_owned(),
            retry_after: Some(SERVICE_RETRY_AFTER),
        };
        let _guard = lock.try_lock().map_err(|_| busy())?;
        if record.status == StackStatus::Deploying {
            return Err(busy());
        }
        if !variables.is_empty() {
            self.inner
                .coolify
                .update_envs_by_service_uuid(&service_uuid, &variables)
                .await
                .map_err(|error| subject.coolify(Step::SetEnvironment, error))?;
        }
        let names: Vec<&String> = values.keys().collect();
        self.audit(
            &subject,
            "stack.secrets",
            Value::Null,
            json!({ "record": record.id, "parameters": names }),
            AuditOutcome::Ok,
            None,
        )
        .await;
        Ok(match record.status {
            StackStatus::Running => SecretsTakeEffect::AfterRestart {
                tenant: subject.tenant.clone(),
                stack: subject.stack.clone(),
            },
            StackStatus::Stopped => SecretsTakeEffect::AtResume,
            StackStatus::Pending | StackStatus::Error | StackStatus::Deploying => {
                if record.status == StackStatus::Pending {
                    // Any write wakes the controller (a realtime update); the waiting note it
                    // clears is written again if a secret is still missing.
                    let patch =
                        StackPatch { error_message: Some(String::new()), ..StackPatch::default() };
                    self.inner
                        .pocketbase
                        .stack_update(&record.id, &patch)
                        .await
                        .map_err(|error| subject.pocketbase(Step::RecordPending, error))?;
                }
                SecretsTakeEffect::AtDeploy
            }
        })
    }

    /// The generated credentials the stack's template declares, read from its Coolify
    /// variables (those Coolify has not generated yet are left out). The read is audited.
    pub async fn tenant_credentials(
        &self,
        user_id: &str,
        record_id: &str,
    ) -> Result<BTreeMap<String, String>, TenantRequestError> {
        let (record, tenant) = self.tenant_stack(user_id, record_id).await?;
        let template = self.template(&record.template)?;
        let subject = Subject { tenant: tenant.slug.clone(), stack: record.stack_name.clone() };
        if template.manifest.credentials.is_empty() {
            return Ok(BTreeMap::new());
        }
        let Some(service_uuid) =
            record.coolify_service_uuid.clone().filter(|uuid| !uuid.is_empty())
        else {
            return Err(TenantRequestError::NotReady { retry_after: SERVICE_RETRY_AFTER });
        };
        let values = self
            .service_values(&service_uuid)
            .await
            .map_err(|error| subject.coolify(Step::SetEnvironment, error))?;
        let credentials: BTreeMap<String, String> = template
            .manifest
            .credentials
            .iter()
            .filter_map(|(name, credential)| {
                let value = values.get(&credential.variable)?.as_ref()?;
                (!value.is_empty()).then(|| (name.clone(), value.clone()))
            })
            .collect();
        let names: Vec<&String> = credentials.keys().collect();
        self.audit(
            &subject,
            "stack.credentials",
            Value::Null,
            json!({ "record": record.id, "read": names }),
            AuditOutcome::Ok,
            None,
        )
        .await;
        Ok(credentials)
    }
}

fn secret_names(template: &Template) -> Vec<String> {
    template
        .manifest
        .parameters
        .iter()
        .filter(|(_, parameter)| parameter.kind == ParameterType::Secret)
        .map(|(name, _)| name.clone())
        .collect()
}

//! Tenants as the operator manages them: creating one (with its owner's account) and changing
//! its plan. The rules are `cfa_core::tenancy` and `cfa_core::onboarding`; this reads what
//! they need, writes the result and audits it.

use cfa_core::TenantSlug;
use cfa_core::onboarding::{ExistingAccount, OwnerDecision, owner_decision};
use cfa_core::plan::PlanTier;
use cfa_core::resources::Resources;
use cfa_core::tenancy::{StackNeeds, check_plan_change, plan_quota};
use cfa_pocketbase::{NewTenant, Password, TenantPatch};
use rand::distr::{Alphanumeric, SampleString};

use super::*;
use crate::error::TenantRefusal;

/// A tenant to create.
#[derive(Debug, Clone)]
pub struct TenantRequest {
    pub slug: String,
    /// The display name (default: the slug).
    pub name: Option<String>,
    pub owner_email: String,
    /// Take over an account with that e-mail that never verified it (its password is
    /// replaced; whoever registered it loses it).
    pub adopt_existing: bool,
    pub plan: PlanTier,
    /// The stack quota (default: the plan's).
    pub max_stacks: Option<u32>,
    /// A sovereign tenant's own per-stack ceiling (`cfa_core::tenancy::custom_ceiling`).
    pub ceiling: Option<Resources>,
}

/// A created tenant, and whether its owner's account was created with it.
#[derive(Debug, Clone)]
pub struct TenantCreated {
    pub tenant: Tenant,
    pub owner_created: bool,
}

/// A plan change: the plan, the quota (default: the plan's), and for a sovereign tenant its
/// ceiling (`None`: a sovereign tenant keeps its own; other plans have none).
#[derive(Debug, Clone, Copy)]
pub struct PlanChange {
    pub plan: PlanTier,
    pub max_stacks: Option<u32>,
    pub ceiling: Option<Resources>,
}

impl Engine {
    /// Creates a tenant and, when its e-mail has none, its owner's verified account with a
    /// password nobody is told (the owner sets one through PocketBase's password reset).
    pub async fn create_tenant(
        &self,
        request: &TenantRequest,
    ) -> Result<TenantCreated, EngineError> {
        let subject = Subject { tenant: request.slug.clone(), stack: String::new() };
        let refused = |reason, message: String, hint: &str| EngineError::TenantRefused {
            tenant: request.slug.clone(),
            reason,
            message,
            hint: hint.to_owned(),
        };
        let slug = TenantSlug::parse(&request.slug)
            .map_err(|error| subject.invalid_input(error.to_string()))?;
        let tenancy = |refusal| EngineError::Tenancy { tenant: request.slug.clone(), refusal };
        let max_stacks = plan_quota(&self.inner.settings.plans, request.plan, request.max_stacks)
            .map_err(tenancy)?;
        if request.ceiling.is_some() && request.plan != PlanTier::Sovereign {
            return Err(tenancy(cfa_core::tenancy::TenancyRefusal::CeilingNotForPlan {
                plan: request.plan,
            }));
        }
        let email = request.owner_email.as_str();
        if !email.contains('@') || email.len() > 254 || email.chars().any(char::is_control) {
            return Err(refused(
                TenantRefusal::BadEmail,
                format!("`{}` is not an e-mail address", email.escape_debug()),
                "give the owner's e-mail address",
            ));
        }
        let pocketbase = &self.inner.pocketbase;
        let failed = |error| subject.pocketbase(Step::RecordPending, error);
        match pocketbase.tenant_by_slug(slug.as_str()).await {
            Ok(_) => {
                return Err(refused(
                    TenantRefusal::Exists,
                    "already exists".to_owned(),
                    "change its plan instead, or choose another slug",
                ));
            }
            Err(error) if error.kind == PocketBaseErrorKind::NotFound => {}
            Err(error) => return Err(failed(error)),
        }
        self.check_new_tenant_slug(slug.as_str()).await?;
        let password = Password::new(Alphanumeric.sample_string(&mut rand::rng(), 32));
        let account = pocketbase.user_by_email(email).await.map_err(failed)?;
        let existing = match &account {
            None => ExistingAccount::None,
            Some(account) if account.verified => ExistingAccount::Verified,
            Some(_) => ExistingAccount::Unverified,
        };
        let (user_id, owner_created) = match (
            owner_decision(existing, request.adopt_existing),
            account,
        ) {
            (OwnerDecision::Adopt, Some(account)) => (account.id, false),
            (OwnerDecision::Claim, Some(account)) => {
                pocketbase.user_claim(&account.id, &password).await.map_err(failed)?;
                (account.id, false)
            }
            (OwnerDecision::Refuse, _) => {
                return Err(refused(
                    TenantRefusal::UnverifiedOwner,
                    format!(
                        "the PocketBase user `{email}` exists but never verified its e-mail: whoever registered it would own the tenant"
                    ),
                    "have the owner verify the e-mail first, or adopt the account explicitly (its password is replaced; the owner signs in through a password reset)",
                ));
            }
            _ => (pocketbase.user_create_verified(email, &password).await.map_err(failed)?, true),
        };
        let tenant = pocketbase
            .tenant_create(&NewTenant {
                name: request.name.clone().unwrap_or_else(|| slug.as_str().to_owned()),
                slug: slug.as_str().to_owned(),
                user_id,
                max_stacks: Some(max_stacks),
                plan_tier: Some(request.plan),
                resource_limits: request.ceiling,
            })
            .await
            .map_err(failed)?;
        self.audit(
            &subject,
            "tenant.create",
            Value::Null,
            tenant_json(&tenant),
            AuditOutcome::Ok,
            None,
        )
        .await;
        Ok(TenantCreated { tenant, owner_created })
    }

    /// Changes a tenant's plan, quota and ceiling, unless that would strand one of its
    /// stacks. Returns the tenant before and after. Running stacks keep their limits until
    /// their next upgrade.
    pub async fn set_tenant_plan(
        &self,
        slug: &str,
        change: PlanChange,
    ) -> Result<(Tenant, Tenant), EngineError> {
        let subject = Subject { tenant: slug.to_owned(), stack: String::new() };
        let tenant = self.tenant(&subject).await?;
        let tenancy = |refusal| EngineError::Tenancy { tenant: slug.to_owned(), refusal };
        let plans = &self.inner.settings.plans;
        let quota = plan_quota(plans, change.plan, change.max_stacks).map_err(tenancy)?;
        let ceiling = match (change.ceiling, change.plan) {
            (Some(_), plan) if plan != PlanTier::Sovereign => {
                return Err(tenancy(cfa_core::tenancy::TenancyRefusal::CeilingNotForPlan { plan }));
            }
            (Some(ceiling), _) => Some(ceiling),
            (None, PlanTier::Sovereign) => tenant.resource_limits,
            (None, _) => None,
        };
        let stacks = self
            .inner
            .pocketbase
            .stack_list_all(&StackFilter::tenant(&tenant.id), false)
            .await
            .map_err(|error| subject.pocketbase(Step::RecordPending, error))?;
        let needs: Vec<StackNeeds> = stacks
            .iter()
            .map(|stack| {
                let minimum =
                    self.template(&stack.template).map_or(Resources::default(), |template| {
                        let config = self.current_parameters(template, stack, &BTreeMap::new());
                        cfa_templates::recorded_requirements(template, &config).minimum
                    });
                StackNeeds {
                    stack: stack.stack_name.clone(),
                    template: stack.template.clone(),
                    minimum,
                }
            })
            .collect();
        check_plan_change(plans, change.plan, quota, ceiling, &needs).map_err(tenancy)?;
        let patch = TenantPatch {
            plan_tier: Some(change.plan),
            max_stacks: Some(quota),
            resource_limits: Some(ceiling),
            ..TenantPatch::default()
        };
        let updated = self
            .inner
            .pocketbase
            .tenant_update(&tenant.id, &patch)
            .await
            .map_err(|error| subject.pocketbase(Step::RecordPending, error))?;
        self.audit(
            &subject,
            "tenant.set_plan",
            tenant_json(&tenant),
            tenant_json(&updated),
            AuditOutcome::Ok,
            None,
        )
        .await;
        Ok((tenant, updated))
    }
}

/// A tenant as `--output json`, the JSON API and the audit log show it.
pub fn tenant_json(tenant: &Tenant) -> Value {
    json!({
        "id": tenant.id,
        "slug": tenant.slug,
        "name": tenant.name,
        "plan_tier": tenant.plan_tier.as_str(),
        "max_stacks": tenant.max_stacks,
        "resource_limits": tenant.resource_limits.map(|limits| json!({
            "cpus": limits.cpus(),
            "memory_mb": limits.memory_mb,
        })),
        "user_id": tenant.user_id,
    })
}

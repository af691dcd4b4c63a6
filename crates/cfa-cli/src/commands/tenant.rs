//! `cfa tenant create|list|show|set-plan`: tenants as the operator manages them in PocketBase.
//! Every change is audited; a plan change that would strand existing stacks is refused.
//! Sovereign tenants may get a custom per-stack ceiling (`--cpus` with `--memory-mb`).

use anyhow::Context;
use cfa_core::TenantSlug;
use cfa_core::onboarding::{ExistingAccount, OwnerDecision, owner_decision};
use cfa_core::plan::{PlanTable, PlanTier};
use cfa_core::resources::Resources;
use cfa_pocketbase::{
    AuditOutcome, ListOptions, NewAuditEntry, NewTenant, Password, StackFilter, Tenant, TenantPatch,
};
use clap::{Args, Subcommand};
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{Value, json};

use crate::args::{GlobalArgs, OutputFormat};
use crate::commands::stacks::tenant_by_slug;
use crate::platform::{Platform, engine_error};
use crate::{exit, output};

/// `max_stacks` for a plan without a count limit (PocketBase's number field needs a value).
const UNLIMITED_STACKS: u32 = 1000;

#[derive(Debug, Subcommand)]
pub(crate) enum TenantCommand {
    /// Create a tenant (and its owner's PocketBase user, when the e-mail has none).
    Create(CreateArgs),
    /// List the tenants.
    List,
    /// One tenant with its stacks.
    Show {
        /// The tenant's slug.
        slug: String,
    },
    /// Change a tenant's plan (and its stack quota, and a sovereign tenant's ceiling).
    SetPlan(SetPlanArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The tenant's slug: a DNS label of 1-22 characters, part of every stack's domain.
    pub(crate) slug: String,
    /// The display name (default: the slug).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// The owner's e-mail; their PocketBase user is created (verified) when missing.
    #[arg(long)]
    pub(crate) owner_email: String,
    /// Adopt an existing account with that e-mail that never verified it: its password is
    /// replaced and the owner signs in through a password reset (whoever registered it first
    /// loses it). Without this, such an account is refused.
    #[arg(long)]
    pub(crate) adopt_existing: bool,
    /// starter, team, business or sovereign.
    #[arg(long, default_value = "starter", value_parser = parse_plan)]
    pub(crate) plan: PlanTier,
    /// The stack quota (default: the plan's).
    #[arg(long)]
    pub(crate) max_stacks: Option<u32>,
    #[command(flatten)]
    pub(crate) limits: CustomLimitsArgs,
}

/// A sovereign tenant's per-stack ceiling; without it the plans file's sovereign default holds.
#[derive(Debug, Args)]
pub(crate) struct CustomLimitsArgs {
    /// Sovereign only: CPUs each stack may use (with --memory-mb).
    #[arg(long, requires = "memory_mb")]
    pub(crate) cpus: Option<f64>,
    /// Sovereign only: memory in MB each stack may use (with --cpus).
    #[arg(long, requires = "cpus")]
    pub(crate) memory_mb: Option<u32>,
}

impl CustomLimitsArgs {
    /// The ceiling asked for, checked against the plan and the range PocketBase accepts.
    pub(crate) fn resolve(&self, plan: PlanTier) -> anyhow::Result<Option<Resources>> {
        let (Some(cpus), Some(memory_mb)) = (self.cpus, self.memory_mb) else {
            return Ok(None);
        };
        if plan != PlanTier::Sovereign {
            return Err(exit::usage(anyhow::format_err!(
                "--cpus and --memory-mb set a sovereign tenant's ceiling; plan {plan} has a fixed one\nhint: `cfa plans` shows each plan's ceiling"
            )));
        }
        let cpus_ok = cpus > 0.0 && cpus <= 1024.0;
        if !cpus_ok || !(64..=4_194_304).contains(&memory_mb) {
            return Err(exit::usage(anyhow::format_err!(
                "--cpus {cpus} --memory-mb {memory_mb} is outside 0-1024 CPUs and 64-4194304 MB"
            )));
        }
        Ok(Some(Resources::new((cpus * 1000.0).round() as u32, memory_mb, 0)))
    }
}

#[derive(Debug, Args)]
pub(crate) struct SetPlanArgs {
    /// The tenant's slug.
    pub(crate) slug: String,
    /// The new plan.
    #[arg(value_parser = parse_plan)]
    pub(crate) plan: PlanTier,
    /// The stack quota (default: the plan's).
    #[arg(long)]
    pub(crate) max_stacks: Option<u32>,
    /// Without them a sovereign tenant keeps its ceiling; other plans clear it.
    #[command(flatten)]
    pub(crate) limits: CustomLimitsArgs,
}

fn parse_plan(input: &str) -> Result<PlanTier, String> {
    PlanTier::parse(input).map_err(|error| error.to_string())
}

fn plan_quota(plans: &PlanTable, plan: PlanTier, requested: Option<u32>) -> anyhow::Result<u32> {
    let rules = plans.plan(plan);
    let default = rules.max_stacks.unwrap_or(UNLIMITED_STACKS);
    let quota = requested.unwrap_or(default);
    let ceiling = rules.max_stacks_limit.or(rules.max_stacks).unwrap_or(UNLIMITED_STACKS);
    if quota == 0 || quota > ceiling {
        return Err(exit::usage(anyhow::format_err!(
            "--max-stacks {quota} is outside plan {plan}'s range 1..={ceiling}\nhint: choose a larger plan for more stacks"
        )));
    }
    Ok(quota)
}

fn tenant_json(tenant: &Tenant) -> Value {
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

/// The per-stack ceiling a tenant gets, for people: `6 CPU, 12 GB per stack (custom)`.
fn ceiling_text(plans: &PlanTable, tenant: &Tenant) -> String {
    match tenant.resource_limits.filter(|_| tenant.plan_tier == PlanTier::Sovereign) {
        Some(limits) => format!("{limits} per stack (custom)"),
        None => format!("{} per stack", plans.plan(tenant.plan_tier).ceiling_for(None)),
    }
}

pub(crate) async fn run(
    global: &GlobalArgs,
    platform: &Platform,
    command: TenantCommand,
) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create(args) => create(global, platform, args).await,
        TenantCommand::List => list(global, platform).await,
        TenantCommand::Show { slug } => show(global, platform, &slug).await,
        TenantCommand::SetPlan(args) => set_plan(global, platform, args).await,
    }
}

async fn audit(platform: &Platform, action: &str, slug: &str, before: Value, after: Value) {
    let entry = NewAuditEntry {
        actor: platform.config.actor(),
        action: action.to_owned(),
        tenant: Some(slug.to_owned()),
        stack: None,
        before,
        after,
        outcome: AuditOutcome::Ok,
        error: None,
    };
    if let Err(error) = platform.pocketbase.audit_append(&entry).await {
        tracing::warn!(tenant = slug, action, error = %error, "cannot append to the audit log");
    }
}

async fn create(global: &GlobalArgs, platform: &Platform, args: CreateArgs) -> anyhow::Result<()> {
    let slug = TenantSlug::parse(&args.slug).map_err(exit::usage)?;
    let plans = &platform.engine.settings().plans;
    let max_stacks = plan_quota(plans, args.plan, args.max_stacks)?;
    let resource_limits = args.limits.resolve(args.plan)?;
    if !args.owner_email.contains('@') || args.owner_email.len() > 254 {
        return Err(exit::usage(anyhow::format_err!(
            "`{}` is not an e-mail address",
            args.owner_email.escape_debug()
        )));
    }
    if platform.pocketbase.tenant_by_slug(slug.as_str()).await.is_ok() {
        return Err(exit::usage(anyhow::format_err!(
            "tenant `{slug}` already exists\nhint: `cfa tenant show {slug}`; `cfa tenant set-plan` changes its plan"
        )));
    }
    platform.engine.check_new_tenant_slug(slug.as_str()).await.map_err(engine_error)?;
    // The owner sets their own password through PocketBase's reset; this one is never shown.
    let initial_password = Password::new(Alphanumeric.sample_string(&mut rand::rng(), 32));
    let email = &args.owner_email;
    let account = platform
        .pocketbase
        .user_by_email(email)
        .await
        .with_context(|| format!("cannot look up the PocketBase user `{email}`"))?;
    let existing = match &account {
        None => ExistingAccount::None,
        Some(account) if account.verified => ExistingAccount::Verified,
        Some(_) => ExistingAccount::Unverified,
    };
    let (user_id, user_created) = match (owner_decision(existing, args.adopt_existing), account) {
        (OwnerDecision::Adopt, Some(account)) => (account.id, false),
        (OwnerDecision::Claim, Some(account)) => {
            platform
                .pocketbase
                .user_claim(&account.id, &initial_password)
                .await
                .with_context(|| format!("cannot claim the PocketBase user `{email}`"))?;
            (account.id, false)
        }
        (OwnerDecision::Refuse, _) => {
            return Err(exit::refused(anyhow::format_err!(
                "the PocketBase user `{email}` exists but never verified its e-mail: whoever registered it would own tenant `{slug}`\nhint: have the owner verify the e-mail first, or pass --adopt-existing to replace its password (the owner then signs in through a password reset)"
            )));
        }
        _ => {
            let id = platform
                .pocketbase
                .user_create_verified(email, &initial_password)
                .await
                .with_context(|| format!("cannot create the PocketBase user `{email}`"))?;
            (id, true)
        }
    };
    let tenant = platform
        .pocketbase
        .tenant_create(&NewTenant {
            name: args.name.unwrap_or_else(|| slug.as_str().to_owned()),
            slug: slug.as_str().to_owned(),
            user_id,
            max_stacks: Some(max_stacks),
            plan_tier: Some(args.plan),
            resource_limits,
        })
        .await
        .with_context(|| format!("cannot create tenant `{slug}` in PocketBase"))?;
    audit(platform, "tenant.create", slug.as_str(), Value::Null, tenant_json(&tenant)).await;
    match global.output {
        OutputFormat::Json => {
            let mut value = tenant_json(&tenant);
            value["owner_created"] = json!(user_created);
            output::print_json(&value)
        }
        OutputFormat::Text => {
            let mut text = format!(
                "created tenant {} (plan {}, up to {} stacks, {})\n",
                tenant.slug,
                tenant.plan_tier,
                tenant.max_stacks,
                ceiling_text(plans, &tenant)
            );
            if user_created {
                text.push_str(&format!(
                    "created the owner's PocketBase user {}: they set a password through PocketBase's password reset\n",
                    args.owner_email
                ));
            }
            output::print_text(&text)
        }
    }
}

async fn list(global: &GlobalArgs, platform: &Platform) -> anyhow::Result<()> {
    let mut tenants = Vec::new();
    let mut page = 1;
    loop {
        let options = ListOptions {
            page,
            per_page: 500,
            sort: Some("slug".to_owned()),
            expand_tenant: false,
            skip_total: true,
        };
        let batch =
            platform.pocketbase.tenant_list(&options).await.context("cannot list the tenants")?;
        let full = batch.items.len() == 500;
        tenants.extend(batch.items);
        if !full {
            break;
        }
        page += 1;
    }
    let stacks = platform
        .pocketbase
        .stack_list_all(&StackFilter::default(), false)
        .await
        .context("cannot list the stacks")?;
    let count =
        |tenant: &Tenant| stacks.iter().filter(|stack| stack.tenant_id == tenant.id).count();
    match global.output {
        OutputFormat::Json => output::print_json(&Value::Array(
            tenants
                .iter()
                .map(|tenant| {
                    let mut value = tenant_json(tenant);
                    value["stacks"] = json!(count(tenant));
                    value
                })
                .collect(),
        )),
        OutputFormat::Text => {
            if tenants.is_empty() {
                return output::print_text(
                    "no tenants\nhint: `cfa tenant create <slug> --owner-email ...`",
                );
            }
            let mut rows = vec![vec![
                "SLUG".to_owned(),
                "NAME".to_owned(),
                "PLAN".to_owned(),
                "STACKS".to_owned(),
            ]];
            for tenant in &tenants {
                rows.push(vec![
                    tenant.slug.clone(),
                    tenant.name.clone(),
                    tenant.plan_tier.to_string(),
                    format!("{}/{}", count(tenant), tenant.max_stacks),
                ]);
            }
            output::print_text(&output::table(&rows))
        }
    }
}

async fn show(global: &GlobalArgs, platform: &Platform, slug: &str) -> anyhow::Result<()> {
    let tenant = tenant_by_slug(platform, slug).await?;
    let stacks = platform
        .pocketbase
        .stack_list_all(&StackFilter::tenant(&tenant.id), false)
        .await
        .context("cannot list the tenant's stacks")?;
    match global.output {
        OutputFormat::Json => {
            let mut value = tenant_json(&tenant);
            value["stacks"] = Value::Array(
                stacks
                    .iter()
                    .map(|stack| {
                        json!({
                            "stack": stack.stack_name,
                            "template": stack.template,
                            "status": stack.status.as_str(),
                            "domain": stack.domain,
                        })
                    })
                    .collect(),
            );
            output::print_json(&value)
        }
        OutputFormat::Text => {
            let mut text = format!(
                "{} ({})\n  plan:   {} ({})\n  stacks: {} of {}\n",
                tenant.slug,
                tenant.name,
                tenant.plan_tier,
                ceiling_text(&platform.engine.settings().plans, &tenant),
                stacks.len(),
                tenant.max_stacks
            );
            for stack in &stacks {
                text.push_str(&format!(
                    "    {}  {}  {}\n",
                    stack.stack_name, stack.template, stack.status
                ));
            }
            output::print_text(&text)
        }
    }
}

async fn set_plan(
    global: &GlobalArgs,
    platform: &Platform,
    args: SetPlanArgs,
) -> anyhow::Result<()> {
    let plans = &platform.engine.settings().plans;
    let tenant = tenant_by_slug(platform, &args.slug).await?;
    let max_stacks = plan_quota(plans, args.plan, args.max_stacks)?;
    let resource_limits = match args.limits.resolve(args.plan)? {
        Some(limits) => Some(limits),
        None if args.plan == PlanTier::Sovereign => tenant.resource_limits,
        None => None,
    };
    let stacks = platform
        .pocketbase
        .stack_list_all(&StackFilter::tenant(&tenant.id), false)
        .await
        .context("cannot list the tenant's stacks")?;
    // A downgrade must not strand what runs: more stacks than the quota, or a template the new
    // plan does not offer, is refused with the stacks to remove first.
    if stacks.len() as u32 > max_stacks {
        return Err(exit::refused(anyhow::format_err!(
            "tenant `{}` has {} stacks, more than plan {}'s quota of {max_stacks}\nhint: delete stacks first (`cfa list --tenant {}`)",
            tenant.slug,
            stacks.len(),
            args.plan,
            tenant.slug
        )));
    }
    let plan = plans.plan(args.plan);
    let stranded: Vec<String> = stacks
        .iter()
        .filter(|stack| !plan.allows_template(&stack.template))
        .map(|stack| format!("{} ({})", stack.stack_name, stack.template))
        .collect();
    if !stranded.is_empty() {
        return Err(exit::refused(anyhow::format_err!(
            "plan {} does not offer the template of {} of tenant `{}`\nhint: delete or move those stacks first",
            args.plan,
            stranded.join(", "),
            tenant.slug
        )));
    }
    // Nor a ceiling below what a stack needs: its next upgrade would be refused.
    let ceiling = plan.ceiling_for(resource_limits);
    let catalogue = platform.engine.catalogue();
    let too_small: Vec<String> = stacks
        .iter()
        .filter_map(|stack| {
            let template = catalogue.get(&stack.template).ok()?;
            let config = stack
                .config
                .as_object()
                .map(|config| {
                    config
                        .iter()
                        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            let minimum = cfa_templates::recorded_requirements(template, &config).minimum;
            (!minimum.compute_fits_within(&ceiling)).then(|| {
                format!("{} ({}) needs at least {minimum}", stack.stack_name, stack.template)
            })
        })
        .collect();
    if !too_small.is_empty() {
        return Err(exit::refused(anyhow::format_err!(
            "plan {} allows {ceiling} per stack, less than {} of tenant `{}`\nhint: give a larger ceiling (--cpus, --memory-mb) or delete those stacks first",
            args.plan,
            too_small.join(", "),
            tenant.slug
        )));
    }
    let updated = platform
        .pocketbase
        .tenant_update(
            &tenant.id,
            &TenantPatch {
                plan_tier: Some(args.plan),
                max_stacks: Some(max_stacks),
                resource_limits: Some(resource_limits),
                ..TenantPatch::default()
            },
        )
        .await
        .with_context(|| format!("cannot update tenant `{}` in PocketBase", tenant.slug))?;
    audit(platform, "tenant.set_plan", &tenant.slug, tenant_json(&tenant), tenant_json(&updated))
        .await;
    match global.output {
        OutputFormat::Json => output::print_json(&tenant_json(&updated)),
        OutputFormat::Text => output::print_text(&format!(
            "tenant {}: plan {} -> {}, up to {} stacks, {}\nnote: running stacks keep their limits until `cfa upgrade`",
            updated.slug,
            tenant.plan_tier,
            updated.plan_tier,
            updated.max_stacks,
            ceiling_text(plans, &updated)
        )),
    }
}

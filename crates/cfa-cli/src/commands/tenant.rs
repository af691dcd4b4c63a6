//! `cfa tenant create|list|show|set-plan`: tenants as the operator manages them in PocketBase.
//! Every change is audited; a plan change that would strand existing stacks is refused.
//! Sovereign tenants may get a custom per-stack ceiling (`--cpus` with `--memory-mb`).

use anyhow::Context;
use cfa_core::plan::{PlanTable, PlanTier};
use cfa_core::resources::Resources;
use cfa_pocketbase::{ListOptions, StackFilter, Tenant};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::args::{GlobalArgs, OutputFormat};
use crate::commands::stacks::tenant_by_slug;
use crate::platform::{Platform, engine_error};
use crate::{exit, output};
use cfa_engine::{PlanChange, TenantRequest, tenant_json};

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
        cfa_core::tenancy::custom_ceiling(plan, cpus, memory_mb).map(Some).map_err(|refusal| {
            exit::usage(anyhow::format_err!("--cpus {cpus} --memory-mb {memory_mb}: {refusal}\nhint: {}; `cfa plans` shows each plan's", refusal.hint()))
        })
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

async fn create(global: &GlobalArgs, platform: &Platform, args: CreateArgs) -> anyhow::Result<()> {
    let plans = &platform.engine.settings().plans;
    let request = TenantRequest {
        slug: args.slug,
        name: args.name,
        owner_email: args.owner_email.clone(),
        adopt_existing: args.adopt_existing,
        plan: args.plan,
        max_stacks: args.max_stacks,
        ceiling: args.limits.resolve(args.plan)?,
    };
    let created = match platform.engine.create_tenant(&request).await {
        Ok(created) => created,
        Err(cfa_engine::EngineError::TenantRefused {
            reason: cfa_engine::TenantRefusal::UnverifiedOwner,
            message,
            tenant,
            ..
        }) => {
            return Err(exit::refused(anyhow::format_err!(
                "tenant `{tenant}`: {message}\nhint: have the owner verify the e-mail first, or pass --adopt-existing to replace its password (the owner then signs in through a password reset)"
            )));
        }
        Err(error) => return Err(engine_error(error)),
    };
    let (tenant, user_created) = (created.tenant, created.owner_created);
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
    let change = PlanChange {
        plan: args.plan,
        max_stacks: args.max_stacks,
        ceiling: args.limits.resolve(args.plan)?,
    };
    let (tenant, updated) =
        platform.engine.set_tenant_plan(&args.slug, change).await.map_err(engine_error)?;
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

//! `cfa templates list|show|render`: the catalogue, one template's contract, and a render as
//! Coolify would receive it.

use std::collections::BTreeMap;

use cfa_core::naming::{BaseDomain, StackName, TenantSlug};
use cfa_core::plan::PlanTier;
use cfa_core::resources::{Resources, format_cpus};
use cfa_templates::render::{RenderFailure, RenderRequest, RenderedStack, render, requirements};
use cfa_templates::{CatalogueError, Template};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use crate::args::{GlobalArgs, OutputFormat};
use crate::{exit, output, settings};

#[derive(Debug, Subcommand)]
pub(crate) enum TemplatesCommand {
    /// List the templates in the catalogue.
    List,
    /// Show a template: parameters, resources, and the plans that allow it.
    Show {
        /// Template name, e.g. `telegram-bot`.
        name: String,
    },
    /// Render a template for a tenant's stack: the compose Coolify receives (stdout), secrets
    /// redacted unless --show-secrets.
    Render(RenderArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
    /// Template name, e.g. `telegram-bot`.
    pub(crate) name: String,
    /// The tenant's plan tier.
    #[arg(long, value_parser = parse_plan)]
    pub(crate) plan: PlanTier,
    /// The tenant's slug (DNS label, 1-22 characters).
    #[arg(long)]
    pub(crate) tenant: String,
    /// The stack's name (DNS label, 1-40 characters).
    #[arg(long)]
    pub(crate) stack: String,
    /// A template parameter, `key=value`; repeat for each.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub(crate) parameters: Vec<String>,
    /// `yaml`: the compose document only; `json`: every part (compose, environment, url, limits).
    #[arg(long, value_enum, default_value_t = RenderFormat::Yaml)]
    pub(crate) format: RenderFormat,
    /// Print secret values instead of `***` (JSON format only; the compose never holds them).
    #[arg(long)]
    pub(crate) show_secrets: bool,
    /// The zone stacks' domains live under.
    #[arg(long, env = "CFA_BASE_DOMAIN", default_value = "cloudfreedom.de")]
    pub(crate) base_domain: String,
    /// A sovereign tenant's custom ceiling, as `cfa tenant set-plan` sets it.
    #[command(flatten)]
    pub(crate) limits: crate::commands::tenant::CustomLimitsArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RenderFormat {
    Yaml,
    Json,
}

fn parse_plan(input: &str) -> Result<PlanTier, String> {
    PlanTier::parse(input).map_err(|error| error.to_string())
}

pub(crate) fn run(global: &GlobalArgs, command: TemplatesCommand) -> anyhow::Result<()> {
    match command {
        TemplatesCommand::List => list(global),
        TemplatesCommand::Show { name } => show(global, &name),
        TemplatesCommand::Render(args) => render_command(global, args),
    }
}

fn list(global: &GlobalArgs) -> anyhow::Result<()> {
    let catalogue = settings::catalogue(global)?;
    let plans = settings::plans(global)?;
    let allowing = |template: &Template| -> Vec<String> {
        plans
            .plans()
            .filter(|plan| plan.allows_template(template.name()))
            .map(|plan| plan.tier.to_string())
            .collect()
    };
    match global.output {
        OutputFormat::Json => output::print_json(&json!(
            catalogue
                .templates()
                .map(|template| json!({
                    "name": template.name(),
                    "version": template.manifest.version,
                    "description": template.manifest.description,
                    "plans": allowing(template),
                }))
                .collect::<Vec<_>>()
        )),
        OutputFormat::Text => {
            let mut rows =
                vec![vec!["NAME".into(), "VERSION".into(), "PLANS".into(), "DESCRIPTION".into()]];
            for template in catalogue.templates() {
                rows.push(vec![
                    template.name().to_owned(),
                    template.manifest.version.clone(),
                    allowing(template).join(","),
                    template.manifest.description.clone(),
                ]);
            }
            output::print_text(&output::table(&rows))
        }
    }
}

fn resources_json(resources: Resources) -> serde_json::Value {
    json!({ "cpus": resources.cpus(), "memory_mb": resources.memory_mb, "disk_mb": resources.disk_mb })
}

fn show(global: &GlobalArgs, name: &str) -> anyhow::Result<()> {
    let catalogue = settings::catalogue(global)?;
    let plans = settings::plans(global)?;
    let template = catalogue.get(name).map_err(exit::usage)?;
    let manifest = &template.manifest;
    // Requirements with default parameters (an overlay may shrink them, e.g. without LiteLLM).
    let defaults: cfa_templates::params::ResolvedParameters = manifest
        .parameters
        .iter()
        .filter_map(|(name, parameter)| {
            parameter.default.as_ref().map(|value| {
                (
                    name.clone(),
                    cfa_templates::params::ParameterValue { value: value.clone(), secret: false },
                )
            })
        })
        .collect();
    let needs = requirements(template, &defaults);
    let per_plan: Vec<(String, Result<Resources, String>)> = plans
        .plans()
        .map(|plan| {
            let limits = cfa_core::admission::stack_limits(&plans, plan, None, &needs)
                .map_err(|error| error.to_string().lines().next().unwrap_or_default().to_owned());
            (plan.tier.to_string(), limits)
        })
        .collect();
    if global.output == OutputFormat::Json {
        return output::print_json(&json!({
            "name": manifest.name,
            "version": manifest.version,
            "description": manifest.description,
            "route": manifest.route.as_ref().map(|route| json!({"service": route.service, "port": route.port})),
            "services": manifest.services.iter().map(|(name, service)| json!({
                "name": name,
                "image": template.compose.services[name].image,
                "user": service.user,
                "runs_as_root": service.runs_as_root,
                "read_only": service.read_only,
                "minimum": { "cpus": service.minimum.cpus, "memory_mb": service.minimum.memory_mb },
                "profile": { "cpus": service.profile.cpus, "memory_mb": service.profile.memory_mb },
                "image_disk_mb": service.image_disk_mb,
            })).collect::<Vec<_>>(),
            "volumes": manifest.volumes.iter().map(|(name, volume)| json!({"name": name, "size_mb": volume.size_mb})).collect::<Vec<_>>(),
            "parameters": manifest.parameters.iter().map(|(name, parameter)| json!({
                "name": name,
                "type": format!("{:?}", parameter.kind).to_lowercase(),
                "required": parameter.required,
                "default": parameter.default,
                "values": parameter.values,
                "help": parameter.help,
            })).collect::<Vec<_>>(),
            "minimum": resources_json(needs.minimum),
            "profile": resources_json(needs.profile),
            "disk_mb": needs.disk_mb,
            "plans": per_plan.iter().map(|(tier, limits)| match limits {
                Ok(limits) => json!({"tier": tier, "allowed": true, "limits": resources_json(*limits)}),
                Err(reason) => json!({"tier": tier, "allowed": false, "reason": reason}),
            }).collect::<Vec<_>>(),
        }));
    }
    let mut text = format!("{} {}\n{}\n\n", manifest.name, manifest.version, manifest.description);
    match &manifest.route {
        Some(route) => text.push_str(&format!(
            "URL: https://<stack>-<tenant>.<base domain> -> {}:{}\n",
            route.service, route.port
        )),
        None => text.push_str("URL: none (nothing is exposed)\n"),
    }
    text.push_str("\nServices:\n");
    let mut rows = vec![vec![
        "NAME".into(),
        "IMAGE".into(),
        "USER".into(),
        "MINIMUM".into(),
        "PROFILE".into(),
        "IMAGE DISK".into(),
    ]];
    for (name, service) in &manifest.services {
        rows.push(vec![
            name.clone(),
            template.compose.services[name].image.clone(),
            service.user.clone().unwrap_or_else(|| "root (documented exception)".into()),
            format!("{} CPU, {} MB", service.minimum.cpus, service.minimum.memory_mb),
            format!("{} CPU, {} MB", service.profile.cpus, service.profile.memory_mb),
            format!("{} MB", service.image_disk_mb),
        ]);
    }
    text.push_str(&output::table(&rows));
    if !manifest.volumes.is_empty() {
        text.push_str("\nVolumes:\n");
        for (name, volume) in &manifest.volumes {
            text.push_str(&format!("  {name}: {} MB  {}\n", volume.size_mb, volume.description));
        }
    }
    text.push_str("\nParameters:\n");
    let mut rows = vec![vec![
        "NAME".into(),
        "TYPE".into(),
        "REQUIRED".into(),
        "DEFAULT".into(),
        "HELP".into(),
    ]];
    for (name, parameter) in &manifest.parameters {
        rows.push(vec![
            name.clone(),
            format!("{:?}", parameter.kind).to_lowercase(),
            if parameter.required { "yes".into() } else { "no".into() },
            parameter.default.clone().unwrap_or_default(),
            parameter.help.clone(),
        ]);
    }
    text.push_str(&output::table(&rows));
    text.push_str(&format!(
        "\nNeeds {} CPU, {} MB at least; uses up to {} CPU, {} MB; reserves {} MB disk, plus its images' disk once per server.\n\nPlans:\n",
        format_cpus(needs.minimum.millicpus),
        needs.minimum.memory_mb,
        format_cpus(needs.profile.millicpus),
        needs.profile.memory_mb,
        needs.disk_mb
    ));
    for (tier, limits) in per_plan {
        match limits {
            Ok(limits) => text.push_str(&format!("  {tier:<10} allowed: {limits}\n")),
            Err(reason) => text.push_str(&format!("  {tier:<10} refused: {reason}\n")),
        }
    }
    output::print_text(&text)
}

pub(crate) fn parse_parameters(raw: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut parameters = BTreeMap::new();
    for item in raw {
        let Some((key, value)) = item.split_once('=') else {
            return Err(exit::usage(anyhow::format_err!(
                "`--param {}` is not `key=value`",
                item.chars().take(60).collect::<String>()
            )));
        };
        if parameters.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(exit::usage(anyhow::format_err!("parameter `{key}` is given twice")));
        }
    }
    Ok(parameters)
}

fn render_command(global: &GlobalArgs, args: RenderArgs) -> anyhow::Result<()> {
    let catalogue = settings::catalogue(global)?;
    let plans = settings::plans(global)?;
    let template = catalogue.get(&args.name).map_err(|error: CatalogueError| exit::usage(error))?;
    let tenant = TenantSlug::parse(&args.tenant).map_err(exit::usage)?;
    let stack = StackName::parse(&args.stack).map_err(exit::usage)?;
    let base_domain = BaseDomain::parse(&args.base_domain).map_err(exit::usage)?;
    let parameters = parse_parameters(&args.parameters)?;
    let rendered = render(RenderRequest {
        template,
        plans: &plans,
        plan: args.plan,
        tenant_resource_limits: args.limits.resolve(args.plan)?,
        tenant: &tenant,
        stack: &stack,
        base_domain: &base_domain,
        parameters: &parameters,
        secrets_pending: false,
    })
    .map_err(|error| match *error.reason {
        RenderFailure::Parameter(_) | RenderFailure::Name(_) => exit::usage(error),
        RenderFailure::Refused(_) => exit::refused(error),
        RenderFailure::Guardrails(_) => anyhow::Error::new(error),
    })?;
    let as_json = args.format == RenderFormat::Json || global.output == OutputFormat::Json;
    if !as_json {
        return output::print_text(&rendered.compose_yaml);
    }
    output::print_json(&rendered_json(&rendered, &args, args.show_secrets))
}

/// The render's parts as one JSON object (the contract `scripts/conformance` reads).
fn rendered_json(
    rendered: &RenderedStack,
    args: &RenderArgs,
    show_secrets: bool,
) -> serde_json::Value {
    let environment =
        if show_secrets { rendered.environment.clone() } else { rendered.redacted_environment() };
    json!({
        "template": rendered.template,
        "template_version": rendered.template_version,
        "tenant": args.tenant,
        "stack": args.stack,
        "plan": args.plan.as_str(),
        "domain": rendered.domain,
        "url": rendered.url.as_ref().map(|url| json!({"service": url.service, "url": url.url})),
        "limits": resources_json(rendered.limits),
        "service_limits": rendered.service_limits.iter()
            .map(|(name, limits)| (name.clone(), json!({"cpus": limits.cpus(), "memory_mb": limits.memory_mb})))
            .collect::<serde_json::Map<_, _>>(),
        "environment": environment.iter()
            .map(|entry| json!({"name": entry.name, "value": entry.value, "secret": entry.secret}))
            .collect::<Vec<_>>(),
        "generated_variables": rendered.generated_variables,
        "config": rendered.config,
        "compose": rendered.compose.to_json_value(),
    })
}

//! Rendering: (template, tenant, plan, stack name, parameters) -> a Coolify-ready stack.
//!
//! The result is returned in parts, because they travel separately: the compose document
//! (`docker_compose_raw`), the environment set through Coolify's env API (secrets marked), the
//! `urls` entry, and the resources reserved. Tenant values only ever become values: non-secret
//! ones are written into `environment` with `$` escaped for compose, secret ones become a
//! `${NAME}` reference whose value goes through the env API, so the compose never holds one.

use std::collections::{BTreeMap, BTreeSet};

use cfa_core::AdmissionError;
use cfa_core::admission::{ImageFootprint, StackRequirements, stack_limits};
use cfa_core::naming::{BaseDomain, NameError, StackName, TenantSlug, stack_domain};
use cfa_core::plan::{PlanTable, PlanTier};
use cfa_core::resources::{Resources, format_cpus};
use indexmap::IndexMap;
use sha2::{Digest as _, Sha256};

use crate::catalogue::Template;
use crate::compose::{
    ComposeFile, Deploy, DeployLimits, DeployResources, Logging, LongVolume, ServiceVolume,
};
use crate::lint::{self, LintPolicy, Violation};
use crate::manifest::{ResourceFigures, StackFact, ValueSource};
use crate::params::{self, ParameterError, ResolvedParameters};

/// Log rotation on every container: at most 3 x 10 MB per container.
const LOG_MAX_SIZE: &str = "10m";
const LOG_MAX_FILE: &str = "3";
/// Label keys that identify a stack's containers on the host.
pub const LABEL_TENANT: &str = "cloudfreedom.tenant";
pub const LABEL_STACK: &str = "cloudfreedom.stack";
pub const LABEL_TEMPLATE: &str = "cloudfreedom.template";
pub const LABEL_MANAGED_BY: &str = "cloudfreedom.managed-by";

/// What to render.
#[derive(Debug, Clone, Copy)]
pub struct RenderRequest<'a> {
    pub template: &'a Template,
    pub plans: &'a PlanTable,
    pub plan: PlanTier,
    /// Sovereign tenants' custom ceiling.
    pub tenant_resource_limits: Option<Resources>,
    pub tenant: &'a TenantSlug,
    pub stack: &'a StackName,
    pub base_domain: &'a BaseDomain,
    pub parameters: &'a BTreeMap<String, String>,
    /// Renders without the secret parameters nobody has set yet: their `${VARIABLE}`
    /// references stay in the compose (which is then the same as with them), with no variable
    /// for Coolify. The controller creates a tenant's service this way before the tenant has
    /// sent its secrets, so that they have somewhere to go.
    pub secrets_pending: bool,
}

/// One variable for Coolify's env API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentEntry {
    pub name: String,
    pub value: String,
    pub secret: bool,
}

/// The `urls` entry of Coolify's service create/patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedUrl {
    /// The compose service Traefik routes to.
    pub service: String,
    /// `https://<domain>:<container port>`: Coolify needs the port to label the router.
    pub url: String,
}

/// A rendered stack, in the parts that travel separately.
#[derive(Debug, Clone)]
pub struct RenderedStack {
    pub template: String,
    pub template_version: String,
    pub compose: ComposeFile,
    /// The compose as YAML; it holds no secret values, only `${NAME}` references.
    pub compose_yaml: String,
    /// For Coolify's env bulk upsert: tenant secrets, marked.
    pub environment: Vec<EnvironmentEntry>,
    pub url: Option<RoutedUrl>,
    pub domain: Option<String>,
    /// Limits of the whole stack and its disk reservation.
    pub limits: Resources,
    pub service_limits: IndexMap<String, Resources>,
    pub requirements: StackRequirements,
    /// Coolify magic variables (`SERVICE_PASSWORD_*`, ...) the compose relies on.
    pub generated_variables: Vec<String>,
    /// Non-secret parameter values, what PocketBase's `config` may keep.
    pub config: BTreeMap<String, String>,
}

impl RenderedStack {
    /// The environment with secret values replaced by `***`.
    pub fn redacted_environment(&self) -> Vec<EnvironmentEntry> {
        self.environment
            .iter()
            .map(|entry| EnvironmentEntry {
                value: if entry.secret { "***".to_owned() } else { entry.value.clone() },
                ..entry.clone()
            })
            .collect()
    }
}

/// A render that failed: for which template, tenant and stack, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot render `{template}` for {tenant}/{stack}")]
pub struct RenderError {
    pub template: String,
    pub tenant: String,
    pub stack: String,
    #[source]
    pub reason: Box<RenderFailure>,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderFailure {
    /// A parameter is missing, unknown or malformed: the caller's input is wrong.
    #[error(transparent)]
    Parameter(ParameterError),
    /// The stack's domain would not be a valid DNS name.
    #[error(transparent)]
    Name(NameError),
    /// The plan does not allow the template, or its ceiling is below the template's minimum.
    #[error(transparent)]
    Refused(AdmissionError),
    /// The rendered document breaks the guardrails: a template bug, never deployed.
    #[error(
        "the result breaks the guardrails:\n{}\nhint: fix the template; a guardrail violation is never deployed",
        .0.iter().map(|violation| format!("  {violation}")).collect::<Vec<_>>().join("\n")
    )]
    Guardrails(Vec<Violation>),
}

/// The requirements of a template under the given parameters (overlays can remove services).
pub fn requirements(template: &Template, parameters: &ResolvedParameters) -> StackRequirements {
    requirements_without(template, &removed_services(template, parameters))
}

/// The requirements of a stack recorded with these non-secret parameter values (its `config`;
/// a missing value is the parameter's default): for checks that have only the record, such as
/// whether a smaller plan would strand the stack, or how many more stacks a server has room for.
pub fn recorded_requirements(
    template: &Template,
    config: &BTreeMap<String, String>,
) -> StackRequirements {
    let value_of = |name: &str| {
        config.get(name).cloned().or_else(|| {
            template.manifest.parameters.get(name).and_then(|parameter| parameter.default.clone())
        })
    };
    let removed: BTreeSet<String> = template
        .manifest
        .overlays
        .iter()
        .filter(|overlay| {
            value_of(&overlay.when.parameter).as_deref() == Some(&overlay.when.equals)
        })
        .flat_map(|overlay| overlay.remove_services.iter().cloned())
        .collect();
    requirements_without(template, &removed)
}

/// The requirements of the template's services but `removed`.
fn requirements_without(template: &Template, removed: &BTreeSet<String>) -> StackRequirements {
    let mut minimum = Resources::ZERO;
    let mut profile = Resources::ZERO;
    let mut disk_mb = 0;
    let mut counted_volumes = BTreeSet::new();
    let mut images = Vec::new();
    for (name, service) in &template.manifest.services {
        if removed.contains(name) {
            continue;
        }
        minimum = minimum.saturating_add(figures(service.minimum));
        profile = profile.saturating_add(figures(service.profile));
        images.push(ImageFootprint {
            image: template.compose.services[name].image.clone(),
            disk_mb: service.image_disk_mb,
        });
        for volume in &template.compose.services[name].volumes {
            if let ServiceVolume::Short(short) = volume {
                let source = short.split(':').next().unwrap_or_default().to_owned();
                if let Some(declared) = template.manifest.volumes.get(&source)
                    && counted_volumes.insert(source)
                {
                    disk_mb += declared.size_mb;
                }
            }
        }
    }
    StackRequirements { template: template.name().to_owned(), minimum, profile, disk_mb, images }
}

fn figures(figures: ResourceFigures) -> Resources {
    Resources::new((figures.cpus * 1000.0).round() as u32, figures.memory_mb, 0)
}

fn removed_services(template: &Template, parameters: &ResolvedParameters) -> BTreeSet<String> {
    active_overlays(template, parameters)
        .flat_map(|overlay| overlay.remove_services.iter().cloned())
        .collect()
}

fn active_overlays<'a>(
    template: &'a Template,
    parameters: &'a ResolvedParameters,
) -> impl Iterator<Item = &'a crate::manifest::Overlay> {
    template.manifest.overlays.iter().filter(|overlay| {
        parameters
            .get(&overlay.when.parameter)
            .is_some_and(|value| value.value == overlay.when.equals)
    })
}

/// Splits a stack's limits over its services: each gets its minimum plus the same fraction of
/// the way to its profile, per dimension, so the parts never exceed the whole.
fn split_limits(
    template: &Template,
    active: &[String],
    limits: Resources,
    requirements: &StackRequirements,
) -> IndexMap<String, Resources> {
    let fraction = |limit: u32, minimum: u32, profile: u32| {
        if profile <= minimum {
            0.0
        } else {
            f64::from(limit.saturating_sub(minimum)) / f64::from(profile - minimum)
        }
    };
    let cpu_fraction =
        fraction(limits.millicpus, requirements.minimum.millicpus, requirements.profile.millicpus)
            .min(1.0);
    let memory_fraction =
        fraction(limits.memory_mb, requirements.minimum.memory_mb, requirements.profile.memory_mb)
            .min(1.0);
    active
        .iter()
        .map(|name| {
            let service = &template.manifest.services[name];
            let (minimum, profile) = (figures(service.minimum), figures(service.profile));
            let share = |minimum: u32, profile: u32, fraction: f64| {
                minimum + (f64::from(profile - minimum) * fraction).floor() as u32
            };
            // Whole 10-millicore steps keep `cpus` short and exact in YAML.
            let millicpus = share(minimum.millicpus, profile.millicpus, cpu_fraction) / 10 * 10;
            let memory_mb = share(minimum.memory_mb, profile.memory_mb, memory_fraction);
            (name.clone(), Resources::new(millicpus.max(10), memory_mb, 0))
        })
        .collect()
}

/// Escapes `$` so compose does not interpolate a tenant's value.
/// Where a config file lands: a folder named by its content hash, on the host (`./config/…`,
/// under the service's Coolify directory) and in the container.
///
/// Coolify stores a file storage's `content` when its mount path first appears and keeps the
/// stored content for a mount path it already knows (bootstrap/helpers/parsers.php, the
/// LocalFileVolume branch): a changed file at the same path would never reach the stack. A
/// changed file gets a new path instead, so an upgrade delivers it.
pub fn content_addressed_paths(source: &str, target: &str, content: &str) -> (String, String) {
    let hash = Sha256::digest(content.as_bytes());
    let folder = format!("cfa-{}", &hex::encode(hash)[..12]);
    let (directory, file_name) = target.rsplit_once('/').unwrap_or(("", target));
    (format!("./config/{folder}/{source}"), format!("{directory}/{folder}/{file_name}"))
}

pub fn escape_for_compose(value: &str) -> String {
    value.replace('$', "$$")
}

/// The Coolify env variable that carries a secret parameter (`router_api_key` -> `ROUTER_API_KEY`).
pub fn secret_variable_name(parameter: &str) -> String {
    parameter.to_ascii_uppercase()
}

/// Renders a stack. Pure: the same request always gives the same result.
pub fn render(request: RenderRequest<'_>) -> Result<RenderedStack, RenderError> {
    let template = request.template;
    let fail = |reason: RenderFailure| RenderError {
        template: template.name().to_owned(),
        tenant: request.tenant.to_string(),
        stack: request.stack.to_string(),
        reason: Box::new(reason),
    };
    let parameters = params::resolve_with(template, request.parameters, request.secrets_pending)
        .map_err(|error| fail(RenderFailure::Parameter(error)))?;
    let requirements = requirements(template, &parameters);
    let limits = stack_limits(
        request.plans,
        request.plans.plan(request.plan),
        request.tenant_resource_limits,
        &requirements,
    )
    .map_err(|error| fail(RenderFailure::Refused(error)))?;
    let (domain, url) = match &template.manifest.route {
        Some(route) => {
            let domain = stack_domain(request.stack, request.tenant, request.base_domain)
                .map_err(|error| fail(RenderFailure::Name(error)))?;
            let url = RoutedUrl {
                service: route.service.clone(),
                url: format!("https://{domain}:{}", route.port),
            };
            (Some(domain), Some(url))
        }
        None => (None, None),
    };

    let removed = removed_services(template, &parameters);
    let active: Vec<String> =
        template.compose.services.keys().filter(|name| !removed.contains(*name)).cloned().collect();
    let service_limits = split_limits(template, &active, limits, &requirements);

    let mut environment_entries: BTreeMap<String, EnvironmentEntry> = BTreeMap::new();
    let mut compose = ComposeFile { services: IndexMap::new(), volumes: IndexMap::new() };
    for name in &active {
        let declared = &template.manifest.services[name];
        let mut service = template.compose.services[name].clone();
        service.depends_on.retain(|dependency, _| !removed.contains(dependency));

        let mut bindings: Vec<(&String, &ValueSource)> = Vec::new();
        if let Some(entries) = template.manifest.environment.get(name) {
            bindings.extend(entries.iter());
        }
        for overlay in active_overlays(template, &parameters) {
            if let Some(entries) = overlay.environment.get(name) {
                bindings.extend(entries.iter());
            }
        }
        let service_memory = service_limits[name].memory_mb;
        for (key, source) in bindings {
            let value = match source {
                ValueSource::Literal(text) => Some(text.clone()),
                ValueSource::Parameter { parameter }
                    if request.secrets_pending
                        && !parameters.contains_key(parameter)
                        && template.manifest.parameters.get(parameter).is_some_and(
                            |declared| declared.kind == crate::manifest::ParameterType::Secret,
                        ) =>
                {
                    Some(format!("${{{}}}", secret_variable_name(parameter)))
                }
                ValueSource::Parameter { parameter } => parameters.get(parameter).map(|value| {
                    if value.secret {
                        let variable = secret_variable_name(parameter);
                        environment_entries.insert(
                            variable.clone(),
                            EnvironmentEntry {
                                name: variable.clone(),
                                value: value.value.clone(),
                                secret: true,
                            },
                        );
                        format!("${{{variable}}}")
                    } else {
                        escape_for_compose(&value.value)
                    }
                }),
                ValueSource::Stack { stack } => match stack {
                    StackFact::Url => domain.as_ref().map(|domain| format!("https://{domain}")),
                    StackFact::Domain => domain.clone(),
                    StackFact::Name => Some(request.stack.to_string()),
                    StackFact::Tenant => Some(request.tenant.to_string()),
                },
                ValueSource::MemoryShare { memory_percent, prefix } => Some(format!(
                    "{prefix}{}",
                    u64::from(service_memory) * u64::from(*memory_percent) / 100
                )),
            };
            match value {
                Some(value) => {
                    service.environment.insert(key.clone(), value);
                }
                None => {
                    service.environment.shift_remove(key);
                }
            }
        }

        for file in template.manifest.files.iter().filter(|file| &file.service == name) {
            let content = &template.files[&file.source];
            let (source, target) = content_addressed_paths(&file.source, &file.target, content);
            // The program is told where its file is: the same path, now with the hash.
            for value in service.environment.values_mut() {
                if value.contains(file.target.as_str()) {
                    *value = value.replace(file.target.as_str(), &target);
                }
            }
            for argument in service.command.iter_mut().flatten() {
                if argument.contains(file.target.as_str()) {
                    *argument = argument.replace(file.target.as_str(), &target);
                }
            }
            service.volumes.push(ServiceVolume::Long(LongVolume {
                kind: "bind".to_owned(),
                source,
                target,
                // Coolify rewrites a long-form bind to `source:target` and drops this (parsers.php);
                // what keeps the file unwritable is that Coolify writes it as root, 0644, and the
                // services that get files run as non-root without capabilities.
                read_only: Some(true),
                content: Some(content.clone()),
                is_directory: None,
            }));
        }

        let limit = service_limits[name];
        let cpus = format_cpus(limit.millicpus);
        service.user = declared.user.clone();
        service.read_only = declared.read_only.then_some(true);
        service.cap_drop = vec!["ALL".to_owned()];
        service.security_opt = vec!["no-new-privileges:true".to_owned()];
        service.restart = Some("unless-stopped".to_owned());
        service.cpus = Some(limit.cpus());
        service.mem_limit = Some(format!("{}m", limit.memory_mb));
        service.pids_limit = Some(declared.pids_limit);
        service.deploy = Some(Deploy {
            resources: DeployResources {
                limits: DeployLimits {
                    cpus,
                    memory: format!("{}M", limit.memory_mb),
                    pids: declared.pids_limit,
                },
            },
        });
        service.logging = Some(Logging {
            driver: "json-file".to_owned(),
            options: IndexMap::from([
                ("max-size".to_owned(), LOG_MAX_SIZE.to_owned()),
                ("max-file".to_owned(), LOG_MAX_FILE.to_owned()),
            ]),
        });
        service.labels = IndexMap::from([
            (LABEL_MANAGED_BY.to_owned(), "cfa".to_owned()),
            (LABEL_TENANT.to_owned(), request.tenant.to_string()),
            (LABEL_STACK.to_owned(), request.stack.to_string()),
            (
                LABEL_TEMPLATE.to_owned(),
                format!("{}-{}", template.manifest.name, template.manifest.version),
            ),
        ]);
        if let Some(route) = &template.manifest.route
            && &route.service == name
        {
            service.expose = vec![route.port.to_string()];
        }
        compose.services.insert(name.clone(), service);
    }
    for (volume, definition) in &template.compose.volumes {
        let used = compose.services.values().any(|service| {
            service.volumes.iter().any(|mount| {
                matches!(mount, ServiceVolume::Short(short) if short.split(':').next() == Some(volume))
            })
        });
        if used {
            compose.volumes.insert(volume.clone(), definition.clone());
        }
    }

    let document = compose.to_json_value();
    // Secrets the tenant has yet to send will be variables like the others.
    let pending_secrets = template
        .manifest
        .parameters
        .iter()
        .filter(|(name, parameter)| {
            request.secrets_pending
                && parameter.kind == crate::manifest::ParameterType::Secret
                && !parameters.contains_key(*name)
        })
        .map(|(name, _)| secret_variable_name(name));
    let environment: Vec<EnvironmentEntry> = environment_entries.into_values().collect();
    let policy = LintPolicy {
        root_allowed: template
            .manifest
            .services
            .iter()
            .filter(|(_, service)| service.runs_as_root.is_some())
            .map(|(name, _)| name.clone())
            .collect(),
        known_variables: Some(
            environment.iter().map(|entry| entry.name.clone()).chain(pending_secrets).collect(),
        ),
    };
    let violations = lint::lint(&document, &policy);
    if !violations.is_empty() {
        return Err(fail(RenderFailure::Guardrails(violations)));
    }
    let mut references = BTreeSet::new();
    lint::collect_references(&document, &mut references);
    let generated_variables =
        references.into_iter().filter(|name| name.starts_with("SERVICE_")).collect();
    let config = parameters
        .iter()
        .filter(|(_, value)| !value.secret)
        .map(|(name, value)| (name.clone(), value.value.clone()))
        .collect();

    Ok(RenderedStack {
        template: template.manifest.name.clone(),
        template_version: template.manifest.version.clone(),
        compose_yaml: compose.to_yaml(),
        compose,
        environment,
        url,
        domain,
        limits,
        service_limits,
        requirements,
        generated_variables,
        config,
    })
}

//! The template catalogue: every `templates/<name>/` folder with a `template.toml` and a
//! `compose.yaml`, loaded and cross-checked once, so rendering never meets a broken template.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cfa_core::naming::StackName;
use indexmap::IndexMap;
use regex::Regex;

use crate::compose::{ComposeFile, ServiceVolume};
use crate::manifest::{ParameterType, TemplateManifest, ValueSource};
use crate::params;

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error(
        "cannot read the template catalogue at `{path}`\nhint: pass --templates-dir or set CFA_TEMPLATES_DIR"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("template `{template}` is broken: {problem}")]
    Invalid { template: String, problem: String },
    #[error("unknown template `{name}`\nhint: known templates: {known}")]
    UnknownTemplate { name: String, known: String },
}

/// A loaded, checked template.
#[derive(Debug, Clone)]
pub struct Template {
    pub manifest: TemplateManifest,
    pub compose: ComposeFile,
    /// Config files by their `source` name.
    pub files: BTreeMap<String, String>,
    pub(crate) patterns: BTreeMap<String, Regex>,
}

impl Template {
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Parses and checks a template from its texts (`files` keyed by source name).
    pub fn from_parts(
        manifest_toml: &str,
        compose_yaml: &str,
        files: BTreeMap<String, String>,
    ) -> Result<Template, CatalogueError> {
        let manifest = TemplateManifest::from_toml(manifest_toml).map_err(|error| {
            CatalogueError::Invalid {
                template: "?".into(),
                problem: format!("template.toml: {}", error.message()),
            }
        })?;
        let template_name = manifest.name.clone();
        let invalid =
            |problem: String| CatalogueError::Invalid { template: template_name.clone(), problem };
        let compose = ComposeFile::from_yaml(compose_yaml)
            .map_err(|error| invalid(format!("compose.yaml: {error}")))?;
        let mut patterns = BTreeMap::new();
        for (name, parameter) in &manifest.parameters {
            if let Some(pattern) = &parameter.pattern {
                let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|error| {
                    invalid(format!("parameter `{name}`: bad pattern: {error}"))
                })?;
                patterns.insert(name.clone(), regex);
            }
        }
        let template = Template { manifest, compose, files, patterns };
        template.check().map_err(invalid)?;
        Ok(template)
    }

    /// Cross-checks the manifest against the compose file; returns the first problem.
    fn check(&self) -> Result<(), String> {
        let manifest = &self.manifest;
        StackName::parse(&manifest.name).map_err(|_| "its name must be a DNS label".to_owned())?;
        let compose_names: std::collections::BTreeSet<&String> =
            self.compose.services.keys().collect();
        let manifest_names: std::collections::BTreeSet<&String> =
            manifest.services.keys().collect();
        if compose_names != manifest_names {
            return Err(format!(
                "compose.yaml services {compose_names:?} differ from template.toml services {manifest_names:?}"
            ));
        }
        for (name, service) in &self.compose.services {
            let declared = &manifest.services[name];
            let renderer_owned = [
                ("user", service.user.is_some()),
                ("read_only", service.read_only.is_some()),
                ("cap_drop", !service.cap_drop.is_empty()),
                ("cap_add", !service.cap_add.is_empty()),
                ("security_opt", !service.security_opt.is_empty()),
                ("cpus", service.cpus.is_some()),
                ("mem_limit", service.mem_limit.is_some()),
                ("pids_limit", service.pids_limit.is_some()),
                ("deploy", service.deploy.is_some()),
                ("logging", service.logging.is_some()),
                ("labels", !service.labels.is_empty()),
                ("restart", service.restart.is_some()),
                ("expose", !service.expose.is_empty()),
            ];
            if let Some((key, _)) = renderer_owned.iter().find(|(_, present)| *present) {
                return Err(format!(
                    "service `{name}` sets `{key}` in compose.yaml; the renderer sets it from template.toml"
                ));
            }
            if declared.user.is_none() && declared.runs_as_root.is_none() {
                return Err(format!(
                    "service `{name}` needs `user`, or `runs_as_root` with the reason"
                ));
            }
            if !declared.read_only && declared.writable_root_reason.is_none() {
                return Err(format!(
                    "service `{name}` needs `read_only = true`, or `writable_root_reason` with the reason"
                ));
            }
            let (minimum, profile) = (declared.minimum, declared.profile);
            if !(minimum.cpus > 0.0
                && minimum.cpus <= profile.cpus
                && minimum.memory_mb <= profile.memory_mb)
            {
                return Err(format!(
                    "service `{name}`: minimum must be positive and within profile"
                ));
            }
            for volume in &service.volumes {
                if let ServiceVolume::Short(short) = volume {
                    let source = short.split(':').next().unwrap_or_default();
                    if !self.compose.volumes.contains_key(source)
                        || !manifest.volumes.contains_key(source)
                    {
                        return Err(format!(
                            "service `{name}` mounts `{source}`, which is not a named volume declared in both compose.yaml and template.toml"
                        ));
                    }
                }
            }
            if service.healthcheck.is_none() && service.exclude_from_hc != Some(true) {
                return Err(format!("service `{name}` has no healthcheck"));
            }
        }
        for volume in manifest.volumes.keys() {
            if !self.compose.volumes.contains_key(volume) {
                return Err(format!(
                    "volume `{volume}` is in template.toml but not in compose.yaml"
                ));
            }
        }
        if let Some(route) = &manifest.route
            && !manifest.services.contains_key(&route.service)
        {
            return Err(format!("route names an unknown service `{}`", route.service));
        }
        for file in &manifest.files {
            if !manifest.services.contains_key(&file.service) {
                return Err(format!(
                    "file `{}` names an unknown service `{}`",
                    file.source, file.service
                ));
            }
            if !self.files.contains_key(&file.source) {
                return Err(format!("file `{}` is missing from the template folder", file.source));
            }
            if !file.target.starts_with('/') {
                return Err(format!("file `{}` needs an absolute target", file.source));
            }
            // Rendered files land at a path carrying their content hash (render.rs,
            // content_addressed_paths), so the program must be told the path.
            let service = self.compose.services.get(&file.service);
            let named = service.is_some_and(|service| {
                service.environment.values().any(|value| value.contains(file.target.as_str()))
                    || service
                        .command
                        .iter()
                        .flatten()
                        .any(|argument| argument.contains(file.target.as_str()))
            });
            if !named {
                return Err(format!(
                    "file `{}`: name its target `{}` in service `{}`'s command or environment (the \
                     renderer mounts it at a path carrying its content hash and rewrites that name)",
                    file.source, file.target, file.service
                ));
            }
        }
        let references = manifest.parameter_references();
        for (name, parameter) in &manifest.parameters {
            let conditional =
                manifest.overlays.iter().any(|overlay| &overlay.when.parameter == name);
            if !references.contains_key(name) && !conditional {
                return Err(format!("parameter `{name}` is never used"));
            }
            if !name
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
            {
                return Err(format!("parameter `{name}` must be lowercase snake_case"));
            }
            if parameter.kind == ParameterType::Secret && parameter.default.is_some() {
                return Err(format!("secret parameter `{name}` must not have a default"));
            }
            if parameter.kind == ParameterType::Enum && parameter.values.is_empty() {
                return Err(format!("enum parameter `{name}` needs `values`"));
            }
            if let Some(default) = &parameter.default {
                params::check_value(name, parameter, self.patterns.get(name), default)
                    .map_err(|error| format!("default of `{name}`: {error}"))?;
            }
        }
        for (parameter, places) in &references {
            if !manifest.parameters.contains_key(parameter) {
                return Err(format!(
                    "{} refers to an undeclared parameter `{parameter}`",
                    places[0]
                ));
            }
        }
        let check_environment = |environment: &IndexMap<String, IndexMap<String, ValueSource>>| {
            for service in environment.keys() {
                if !manifest.services.contains_key(service) {
                    return Err(format!("environment names an unknown service `{service}`"));
                }
            }
            Ok(())
        };
        check_environment(&manifest.environment)?;
        for overlay in &manifest.overlays {
            check_environment(&overlay.environment)?;
            if !manifest.parameters.contains_key(&overlay.when.parameter) {
                return Err(format!(
                    "overlay depends on an undeclared parameter `{}`",
                    overlay.when.parameter
                ));
            }
            for removed in &overlay.remove_services {
                if !manifest.services.contains_key(removed) {
                    return Err(format!("overlay removes an unknown service `{removed}`"));
                }
                if manifest.route.as_ref().is_some_and(|route| &route.service == removed) {
                    return Err(format!("overlay removes the routed service `{removed}`"));
                }
            }
        }
        self.check_credentials()
    }

    /// A credential is a value Coolify generates (`SERVICE_PASSWORD_*`) that the compose
    /// uses: never a tenant's secret parameter (the tenant knows it) nor a platform variable.
    fn check_credentials(&self) -> Result<(), String> {
        let mut referenced = std::collections::BTreeSet::new();
        for service in self.compose.services.values() {
            for value in service.environment.values() {
                referenced.extend(crate::lint::interpolated_names(value));
            }
        }
        for (name, credential) in &self.manifest.credentials {
            if !name.bytes().all(|byte| byte.is_ascii_lowercase() || byte == b'_') {
                return Err(format!("credential `{name}` must be lowercase snake_case"));
            }
            if !credential.variable.starts_with("SERVICE_PASSWORD_") {
                return Err(format!(
                    "credential `{name}` must name a variable Coolify generates (SERVICE_PASSWORD_*), not `{}`",
                    credential.variable
                ));
            }
            if !referenced.contains(&credential.variable) {
                return Err(format!(
                    "credential `{name}`: the compose never uses `{}`",
                    credential.variable
                ));
            }
        }
        Ok(())
    }
}

/// Every template, by name.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    templates: BTreeMap<String, Template>,
}

impl Catalogue {
    /// Loads every `<dir>/<name>/template.toml` with its `compose.yaml` and files.
    pub fn load(dir: &Path) -> Result<Catalogue, CatalogueError> {
        let read_error = |path: &Path| {
            let path = path.to_owned();
            move |source| CatalogueError::Read { path, source }
        };
        let mut templates = BTreeMap::new();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read_error(dir))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.join("template.toml").is_file())
            .collect();
        entries.sort();
        for folder in entries {
            let manifest_path = folder.join("template.toml");
            let compose_path = folder.join("compose.yaml");
            let manifest_text =
                std::fs::read_to_string(&manifest_path).map_err(read_error(&manifest_path))?;
            let compose_text =
                std::fs::read_to_string(&compose_path).map_err(read_error(&compose_path))?;
            let manifest = TemplateManifest::from_toml(&manifest_text).map_err(|error| {
                CatalogueError::Invalid {
                    template: folder.display().to_string(),
                    problem: format!("template.toml: {}", error.message()),
                }
            })?;
            let mut files = BTreeMap::new();
            for file in &manifest.files {
                let path = folder.join(&file.source);
                if file.source.contains('/') || file.source.starts_with('.') {
                    return Err(CatalogueError::Invalid {
                        template: manifest.name.clone(),
                        problem: format!("file `{}` must be a plain file name", file.source),
                    });
                }
                files.insert(
                    file.source.clone(),
                    std::fs::read_to_string(&path).map_err(read_error(&path))?,
                );
            }
            let template = Template::from_parts(&manifest_text, &compose_text, files)?;
            let folder_name = folder.file_name().and_then(|name| name.to_str()).unwrap_or_default();
            if template.name() != folder_name {
                return Err(CatalogueError::Invalid {
                    template: template.name().to_owned(),
                    problem: format!("its folder is `{folder_name}`; name and folder must match"),
                });
            }
            templates.insert(template.name().to_owned(), template);
        }
        Ok(Catalogue { templates })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.templates.keys().map(String::as_str)
    }

    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        self.templates.values()
    }

    pub fn get(&self, name: &str) -> Result<&Template, CatalogueError> {
        self.templates.get(name).ok_or_else(|| CatalogueError::UnknownTemplate {
            name: name.chars().take(60).flat_map(char::escape_debug).collect(),
            known: self.names().collect::<Vec<_>>().join(", "),
        })
    }
}

/// The catalogue folder of this repository (`<workspace>/templates`), for tests and the
/// default when running from a checkout.
///
/// Found from the running crate's manifest directory first (cargo sets it for tests and `cargo
/// run`; every crate sits in `crates/<name>`), else from where this crate was compiled: a build
/// cache shared between clones can hold this crate compiled in another clone, since gone.
pub fn repository_templates_dir() -> PathBuf {
    if let Some(manifest_dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        let templates = Path::new(&manifest_dir).join("../../templates");
        if templates.is_dir() {
            return templates;
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates")
}

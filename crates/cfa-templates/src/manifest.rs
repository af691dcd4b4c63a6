//! `template.toml`: what a template is, what it needs and which parameters it takes.
//!
//! The manifest is the template's contract with the platform; `compose.yaml` beside it holds
//! the containers. Parameters reach containers only through `[environment.<service>]`
//! bindings, as values.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateManifest {
    pub name: String,
    pub version: String,
    pub description: String,
    /// The one service Traefik routes to, and its container port; absent = no URL.
    #[serde(default)]
    pub route: Option<Route>,
    pub services: IndexMap<String, ServiceManifest>,
    #[serde(default)]
    pub volumes: IndexMap<String, VolumeManifest>,
    #[serde(default)]
    pub files: Vec<FileManifest>,
    #[serde(default)]
    pub parameters: IndexMap<String, ParameterManifest>,
    /// Per service: container environment key -> where its value comes from.
    #[serde(default)]
    pub environment: IndexMap<String, IndexMap<String, ValueSource>>,
    #[serde(default)]
    pub overlays: Vec<Overlay>,
    /// What the tenant may read back from its stack (`GET .../credentials`): values Coolify
    /// generates for the service (`SERVICE_PASSWORD_*`), never stored anywhere else.
    #[serde(default)]
    pub credentials: IndexMap<String, CredentialManifest>,
}

/// A generated value the tenant needs to use its stack (an admin password, a gateway token).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialManifest {
    /// The Coolify variable that holds it, a `SERVICE_PASSWORD_*` the compose references.
    pub variable: String,
    pub help: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub service: String,
    pub port: u16,
}

/// CPU in cores, memory in MiB.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceFigures {
    pub cpus: f64,
    pub memory_mb: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceManifest {
    /// `uid:gid` the container runs as. Required unless `runs_as_root` documents why not.
    #[serde(default)]
    pub user: Option<String>,
    /// A documented exception: the image must run as root, and why that is acceptable.
    #[serde(default)]
    pub runs_as_root: Option<String>,
    /// Whether the root filesystem can be read-only (the image writes only to volumes/tmpfs).
    #[serde(default)]
    pub read_only: bool,
    /// Why the root filesystem cannot be read-only, where it cannot.
    #[serde(default)]
    pub writable_root_reason: Option<String>,
    pub pids_limit: u32,
    /// Below this the service does not run.
    pub minimum: ResourceFigures,
    /// Above this the service gains nothing.
    pub profile: ResourceFigures,
    /// The disk its image takes once pulled and unpacked, reserved once per server.
    pub image_disk_mb: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeManifest {
    /// Reserved on the host's disk (Docker's local driver cannot cap a volume, so this is a
    /// reservation for admission, not an enforced quota).
    pub size_mb: u32,
    #[serde(default)]
    pub description: String,
}

/// A config file shipped with the template, mounted read-only into a service (Coolify writes
/// it from the bind mount's `content`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileManifest {
    pub service: String,
    /// File name inside the template folder.
    pub source: String,
    /// Absolute path inside the container.
    pub target: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParameterType {
    String,
    Int,
    Bool,
    Enum,
    Url,
    Secret,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterManifest {
    #[serde(rename = "type")]
    pub kind: ParameterType,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default: Option<String>,
    /// A regular expression the whole value must match.
    #[serde(default)]
    pub pattern: Option<String>,
    /// For `enum`.
    #[serde(default)]
    pub values: Vec<String>,
    /// For `int`.
    #[serde(default)]
    pub min: Option<i64>,
    #[serde(default)]
    pub max: Option<i64>,
    /// For `string` and `secret`: the longest value accepted (default 256).
    #[serde(default)]
    pub max_length: Option<usize>,
    /// For `string`: newlines allowed.
    #[serde(default)]
    pub multiline: bool,
    pub help: String,
}

/// Where an environment value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum ValueSource {
    /// A fixed value written by the template author.
    Literal(String),
    /// A tenant parameter; secrets become `${NAME}` references set through Coolify's env API.
    Parameter { parameter: String },
    /// A fact about the stack: `url`, `domain`, `name`, `tenant`.
    Stack { stack: StackFact },
    /// A share of the service's memory limit in MiB, e.g. a heap cap, written after `prefix`.
    MemoryShare { memory_percent: u32, prefix: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StackFact {
    Url,
    Domain,
    Name,
    Tenant,
}

/// Changes applied when a parameter has a given value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overlay {
    pub when: Condition,
    #[serde(default)]
    pub remove_services: Vec<String>,
    #[serde(default)]
    pub environment: IndexMap<String, IndexMap<String, ValueSource>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub parameter: String,
    pub equals: String,
}

impl TemplateManifest {
    pub fn from_toml(text: &str) -> Result<TemplateManifest, toml::de::Error> {
        toml::from_str(text)
    }

    /// Parameter names a binding or overlay refers to, with where.
    pub(crate) fn parameter_references(&self) -> BTreeMap<String, Vec<String>> {
        let mut references: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut note = |sources: &IndexMap<String, IndexMap<String, ValueSource>>,
                        context: &str| {
            for (service, entries) in sources {
                for (key, source) in entries {
                    if let ValueSource::Parameter { parameter } = source {
                        references
                            .entry(parameter.clone())
                            .or_default()
                            .push(format!("{context}environment.{service}.{key}"));
                    }
                }
            }
        };
        note(&self.environment, "");
        for (index, overlay) in self.overlays.iter().enumerate() {
            note(&overlay.environment, &format!("overlays[{index}]."));
        }
        references
    }
}

//! The guardrail linter: checks any compose document against DESIGN §3's rules.
//!
//! It reads the document as plain JSON values, not our typed model, so it judges exactly what
//! Coolify will receive, including keys our types would never produce. The renderer runs it on
//! every render and refuses on any violation.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

/// One rule of the guardrails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    NoHostPorts,
    NoPrivileged,
    NoHostNamespaces,
    NoHostMounts,
    NoDevices,
    NoCustomNetworks,
    CapDropAll,
    NoCapAdd,
    NoNewPrivileges,
    NoUnconfinedSecurity,
    NonRootUser,
    ResourceLimits,
    Healthcheck,
    LogRotation,
    PinnedImage,
    NoProxyLabels,
    NoMagicUrls,
    KnownVariables,
    NoCoolifyPlaceholders,
}

impl Rule {
    pub const ALL: [Rule; 19] = [
        Rule::NoHostPorts,
        Rule::NoPrivileged,
        Rule::NoHostNamespaces,
        Rule::NoHostMounts,
        Rule::NoDevices,
        Rule::NoCustomNetworks,
        Rule::CapDropAll,
        Rule::NoCapAdd,
        Rule::NoNewPrivileges,
        Rule::NoUnconfinedSecurity,
        Rule::NonRootUser,
        Rule::ResourceLimits,
        Rule::Healthcheck,
        Rule::LogRotation,
        Rule::PinnedImage,
        Rule::NoProxyLabels,
        Rule::NoMagicUrls,
        Rule::KnownVariables,
        Rule::NoCoolifyPlaceholders,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Rule::NoHostPorts => "no-host-ports",
            Rule::NoPrivileged => "no-privileged",
            Rule::NoHostNamespaces => "no-host-namespaces",
            Rule::NoHostMounts => "no-host-mounts",
            Rule::NoDevices => "no-devices",
            Rule::NoCustomNetworks => "no-custom-networks",
            Rule::CapDropAll => "cap-drop-all",
            Rule::NoCapAdd => "no-cap-add",
            Rule::NoNewPrivileges => "no-new-privileges",
            Rule::NoUnconfinedSecurity => "no-unconfined-security",
            Rule::NonRootUser => "non-root-user",
            Rule::ResourceLimits => "resource-limits",
            Rule::Healthcheck => "healthcheck",
            Rule::LogRotation => "log-rotation",
            Rule::PinnedImage => "pinned-image",
            Rule::NoProxyLabels => "no-proxy-labels",
            Rule::NoMagicUrls => "no-magic-urls",
            Rule::KnownVariables => "known-variables",
            Rule::NoCoolifyPlaceholders => "no-coolify-placeholders",
        }
    }
}

/// A broken rule, where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: Rule,
    /// The compose service, or empty for the document's top level.
    pub service: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.service.is_empty() {
            write!(f, "[{}] {}", self.rule.id(), self.message)
        } else {
            write!(f, "[{}] service `{}`: {}", self.rule.id(), self.service, self.message)
        }
    }
}

/// What the linter may accept beyond the rules.
#[derive(Debug, Clone, Default)]
pub struct LintPolicy {
    /// Services documented to run as root (`runs_as_root` in template.toml).
    pub root_allowed: BTreeSet<String>,
    /// Variables the document may reference besides Coolify's `SERVICE_*` magic ones; `None`
    /// skips the check (for linting a document whose environment is unknown).
    pub known_variables: Option<BTreeSet<String>>,
}

/// Checks a compose document; an empty list means it passes.
pub fn lint(document: &Value, policy: &LintPolicy) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut top = |rule, message: &str| {
        violations.push(Violation { rule, service: String::new(), message: message.to_owned() });
    };
    if document.get("networks").is_some() {
        top(
            Rule::NoCustomNetworks,
            "top-level `networks` is not allowed; Coolify gives each stack its own network",
        );
    }
    let Some(services) = document.get("services").and_then(Value::as_object) else {
        top(Rule::Healthcheck, "the document has no `services` map");
        return violations;
    };
    for (name, service) in services {
        lint_service(name, service, policy, &mut violations);
    }
    let mut placeholders = BTreeSet::new();
    collect_placeholders(document, &mut placeholders);
    for placeholder in placeholders {
        violations.push(Violation {
            rule: Rule::NoCoolifyPlaceholders,
            service: String::new(),
            message: format!(
                "`{placeholder}` is a Coolify shared-variable placeholder: Coolify would replace it with a team, project or environment variable"
            ),
        });
    }
    if let Some(known) = &policy.known_variables {
        let mut references = BTreeSet::new();
        collect_references(document, &mut references);
        for reference in references {
            if !reference.starts_with("SERVICE_") && !known.contains(&reference) {
                violations.push(Violation {
                    rule: Rule::KnownVariables,
                    service: String::new(),
                    message: format!("`${{{reference}}}` is neither set by the platform nor a Coolify magic variable"),
                });
            }
        }
    }
    violations
}

fn lint_service(name: &str, service: &Value, policy: &LintPolicy, violations: &mut Vec<Violation>) {
    let mut violate = |rule, message: String| {
        violations.push(Violation { rule, service: name.to_owned(), message });
    };
    let get = |key: &str| service.get(key);
    let strings = |key: &str| -> Vec<String> {
        match get(key) {
            Some(Value::Array(items)) => {
                items.iter().filter_map(|item| item.as_str().map(str::to_owned)).collect()
            }
            Some(Value::String(single)) => vec![single.clone()],
            _ => Vec::new(),
        }
    };

    if get("ports").is_some() {
        violate(
            Rule::NoHostPorts,
            "`ports` publishes on the host and bypasses Traefik; route with `urls`".into(),
        );
    }
    if get("privileged").and_then(Value::as_bool) == Some(true) {
        violate(Rule::NoPrivileged, "`privileged: true` gives the container the host".into());
    }
    for key in ["network_mode", "pid", "ipc", "userns_mode", "uts", "cgroup"] {
        if let Some(value) = get(key) {
            violate(
                Rule::NoHostNamespaces,
                format!("`{key}: {value}` is not allowed; stacks keep their own namespaces"),
            );
        }
    }
    for key in ["networks", "links", "external_links", "extra_hosts"] {
        if get(key).is_some() {
            violate(
                Rule::NoCustomNetworks,
                format!("`{key}` is not allowed; a stack talks only inside its own network"),
            );
        }
    }
    for key in ["devices", "device_cgroup_rules", "gpus"] {
        if get(key).is_some() {
            violate(Rule::NoDevices, format!("`{key}` passes host devices through"));
        }
    }
    if let Some(Value::Array(volumes)) = get("volumes") {
        for volume in volumes {
            if let Some(problem) = host_mount_problem(volume) {
                violate(Rule::NoHostMounts, problem);
            }
        }
    }
    if !strings("cap_drop").iter().any(|cap| cap.eq_ignore_ascii_case("ALL")) {
        violate(Rule::CapDropAll, "`cap_drop: [ALL]` is missing".into());
    }
    if !strings("cap_add").is_empty() {
        violate(Rule::NoCapAdd, format!("`cap_add: {:?}` is not allowed", strings("cap_add")));
    }
    let security = strings("security_opt");
    if !security.iter().any(|opt| opt == "no-new-privileges:true" || opt == "no-new-privileges") {
        violate(
            Rule::NoNewPrivileges,
            "`security_opt: [no-new-privileges:true]` is missing".into(),
        );
    }
    if security.iter().any(|opt| opt.contains("unconfined") || opt.starts_with("label:disable"))
        || get("sysctls").is_some()
    {
        violate(
            Rule::NoUnconfinedSecurity,
            "unconfined seccomp/apparmor profiles and `sysctls` are not allowed".into(),
        );
    }
    let user = get("user").and_then(Value::as_str).unwrap_or("");
    let user_name = user.split(':').next().unwrap_or("");
    if (user_name.is_empty() || user_name == "root" || user_name == "0")
        && !policy.root_allowed.contains(name)
    {
        violate(
            Rule::NonRootUser,
            format!("runs as root (`user: {user:?}`) without a documented exception"),
        );
    }
    check_limits(service, &mut violate);
    let healthcheck_ok = match get("healthcheck") {
        Some(check) => {
            let disabled = check.get("disable").and_then(Value::as_bool) == Some(true);
            let test = check.get("test");
            let none = match test {
                Some(Value::Array(items)) => items.first().and_then(Value::as_str) == Some("NONE"),
                Some(Value::String(text)) => text.is_empty(),
                _ => true,
            };
            !disabled && !none
        }
        None => false,
    };
    if !healthcheck_ok && get("exclude_from_hc").and_then(Value::as_bool) != Some(true) {
        violate(
            Rule::Healthcheck,
            "no working healthcheck: the stack would never read `running:healthy` (or mark it `exclude_from_hc`)".into(),
        );
    }
    let logging = get("logging");
    let driver = logging.and_then(|logging| logging.get("driver")).and_then(Value::as_str);
    let max_size = logging
        .and_then(|logging| logging.get("options"))
        .and_then(|options| options.get("max-size"));
    if !matches!(driver, Some("json-file" | "local")) || max_size.is_none() {
        violate(Rule::LogRotation, "logging must be json-file or local with `max-size`".into());
    }
    match get("image").and_then(Value::as_str) {
        Some(image) if image_is_pinned(image) => {}
        image => violate(
            Rule::PinnedImage,
            format!("image {image:?} must be pinned to a version tag or digest"),
        ),
    }
    for key in labels_of(service) {
        if key.starts_with("traefik.") || key.starts_with("caddy") || key.starts_with("coolify.") {
            violate(
                Rule::NoProxyLabels,
                format!("label `{key}` is reserved for Coolify; route with `urls`"),
            );
        }
    }
    for (key, value) in environment_of(service) {
        if key.contains("SERVICE_URL_")
            || key.contains("SERVICE_FQDN_")
            || value.contains("SERVICE_URL_")
            || value.contains("SERVICE_FQDN_")
        {
            violate(
                Rule::NoMagicUrls,
                format!(
                    "`{key}` uses a SERVICE_URL/FQDN magic variable, which routes a second URL"
                ),
            );
        }
    }
}

fn check_limits(service: &Value, violate: &mut impl FnMut(Rule, String)) {
    let cpus = service.get("cpus").and_then(number_or_string);
    let memory = service.get("mem_limit").and_then(Value::as_str).and_then(parse_memory_mb);
    let pids = service.get("pids_limit").and_then(Value::as_i64);
    let limits = service.pointer("/deploy/resources/limits");
    let deploy_cpus = limits.and_then(|limits| limits.get("cpus")).and_then(number_or_string);
    let deploy_memory = limits
        .and_then(|limits| limits.get("memory"))
        .and_then(Value::as_str)
        .and_then(parse_memory_mb);
    let deploy_pids = limits.and_then(|limits| limits.get("pids")).and_then(Value::as_i64);
    match (cpus, memory, pids) {
        (Some(cpus), Some(memory), Some(pids)) if cpus > 0.0 && memory > 0 && pids > 0 => {
            if deploy_cpus != Some(cpus)
                || deploy_memory != Some(memory)
                || deploy_pids != Some(pids)
            {
                violate(
                    Rule::ResourceLimits,
                    "`deploy.resources.limits` must match `cpus`, `mem_limit` and `pids_limit`"
                        .into(),
                );
            }
        }
        _ => violate(
            Rule::ResourceLimits,
            "`cpus`, `mem_limit` and `pids_limit` must all be set".into(),
        ),
    }
}

fn number_or_string(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

/// `256m`, `256M`, `1g`, `1GiB`... in MiB.
fn parse_memory_mb(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: u64 = number.parse().ok()?;
    match unit.trim_end_matches("ib").trim_end_matches('b') {
        "m" => Some(number),
        "g" => Some(number * 1024),
        "k" => Some(number / 1024),
        "" => Some(number / (1024 * 1024)),
        _ => None,
    }
}

fn host_mount_problem(volume: &Value) -> Option<String> {
    let (source, kind) = match volume {
        Value::String(short) => {
            let source = short.split(':').next().unwrap_or("");
            let kind =
                if source.starts_with('/') || source.starts_with('.') || source.starts_with('~') {
                    "bind"
                } else {
                    "volume"
                };
            (source.to_owned(), kind.to_owned())
        }
        Value::Object(long) => (
            long.get("source").and_then(Value::as_str).unwrap_or("").to_owned(),
            long.get("type").and_then(Value::as_str).unwrap_or("volume").to_owned(),
        ),
        _ => return Some("an unreadable volume entry".into()),
    };
    if source.contains("docker.sock") {
        return Some(format!("`{source}` mounts the Docker socket, which is root on the host"));
    }
    match kind.as_str() {
        "volume" | "tmpfs" => None,
        // Relative binds land under Coolify's per-service folder: our config files.
        "bind" if source.starts_with("./") && !source.contains("..") => None,
        _ => Some(format!(
            "`{source}` ({kind}) mounts a host path; use a named volume or a template file"
        )),
    }
}

/// Accepts `name:1.2.3`, `name:v1.2`, `name:2026.9.6-slim`, `name@sha256:...`; refuses no tag
/// and moving tags (`latest`, `main`, `stable`, ...).
pub fn image_is_pinned(image: &str) -> bool {
    if image.contains("@sha256:") {
        return true;
    }
    let last_segment = image.rsplit('/').next().unwrap_or(image);
    let Some((_, tag)) = last_segment.split_once(':') else {
        return false;
    };
    const MOVING: [&str; 8] =
        ["latest", "main", "stable", "dev", "nightly", "edge", "beta", "slim"];
    let moving = tag.split(['-', '.']).all(|part| MOVING.contains(&part));
    !moving && tag.bytes().any(|byte| byte.is_ascii_digit())
}

fn labels_of(service: &Value) -> Vec<String> {
    match service.get("labels") {
        Some(Value::Object(map)) => map.keys().cloned().collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|item| item.split('=').next().unwrap_or("").to_owned())
            .collect(),
        _ => Vec::new(),
    }
}

fn environment_of(service: &Value) -> Vec<(String, String)> {
    match service.get("environment") {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(key, value)| {
                (
                    key.clone(),
                    value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string()),
                )
            })
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|item| {
                let (key, value) = item.split_once('=').unwrap_or((item, ""));
                (key.to_owned(), value.to_owned())
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Every `${NAME}` / `$NAME` compose would interpolate, anywhere in the document (`$$` is an
/// escaped dollar and references nothing).
pub fn collect_references(value: &Value, references: &mut BTreeSet<String>) {
    match value {
        Value::String(text) => references.extend(interpolated_names(text)),
        Value::Array(items) => items.iter().for_each(|item| collect_references(item, references)),
        Value::Object(map) => {
            for (key, item) in map {
                // Coolify strips `content` before compose reads the file: not interpolated.
                if key != "content" {
                    collect_references(item, references);
                }
            }
        }
        _ => {}
    }
}

/// Every `{{...}}` Coolify's `resolveSharedEnvironmentVariables` would see, in keys and values.
fn collect_placeholders(value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::String(text) => found.extend(crate::params::coolify_placeholder(text)),
        Value::Array(items) => items.iter().for_each(|item| collect_placeholders(item, found)),
        Value::Object(map) => {
            for (key, item) in map {
                found.extend(crate::params::coolify_placeholder(key));
                collect_placeholders(item, found);
            }
        }
        _ => {}
    }
}

/// The variable names compose interpolates in one string.
pub fn interpolated_names(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut names = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] != b'$' {
            index += 1;
            continue;
        }
        match bytes.get(index + 1) {
            Some(b'$') => index += 2,
            Some(b'{') => {
                let rest = &text[index + 2..];
                let end = rest.find('}').unwrap_or(rest.len());
                let inner = &rest[..end];
                let name_end = inner.find([':', '-', '?', '+']).unwrap_or(inner.len());
                names.push(inner[..name_end].to_owned());
                index += 2 + end + 1;
            }
            Some(byte) if byte.is_ascii_alphabetic() || *byte == b'_' => {
                let rest = &text[index + 1..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                names.push(rest[..end].to_owned());
                index += 1 + end;
            }
            _ => index += 1,
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_images() {
        for pinned in [
            "ghcr.io/openclaw/openclaw:2026.9.6",
            "ghcr.io/open-webui/open-webui:v0.12.4",
            "ghcr.io/berriai/litellm-non_root:v1.83.0-stable",
            "localhost:5000/x:1.0",
            "x@sha256:abc",
        ] {
            assert!(image_is_pinned(pinned), "{pinned}");
        }
        for moving in
            ["x", "x:latest", "x:main-stable", "x:slim", "localhost:5000/x", "x:main-latest"]
        {
            assert!(!image_is_pinned(moving), "{moving}");
        }
    }

    #[test]
    fn interpolation_names_skip_escaped_dollars() {
        assert_eq!(interpolated_names("a ${A} $B $$C $${D} ${E:-x} sk-${F}"), ["A", "B", "E", "F"]);
        assert!(interpolated_names("price: 5$ and $$").is_empty());
    }

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory_mb("256m"), Some(256));
        assert_eq!(parse_memory_mb("256M"), Some(256));
        assert_eq!(parse_memory_mb("2g"), Some(2048));
        assert_eq!(parse_memory_mb("1GiB"), Some(1024));
        assert_eq!(parse_memory_mb("lots"), None);
    }
}

//! What Coolify does to a `docker_compose_raw` (`notes/coolify.md` §4.4, §5, §8): the base64
//! check, the injection checks, container and volume renaming, Coolify-only keys stripped,
//! health-check exclusion, and magic `SERVICE_*` variables with the underscore rule.

use base64::Engine as _;
use rand::Rng as _;
use rand::distr::Alphanumeric;
use serde_norway::{Mapping, Value};

/// Why a compose was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    /// 422 `errors.docker_compose_raw` (also for bytes that are not UTF-8).
    #[error("The docker_compose_raw should be base64 encoded.")]
    NotBase64,
    /// Coolify's `Yaml::parse` is outside try/catch: a 500.
    #[error("invalid yaml: {0}")]
    InvalidYaml(String),
    /// 422 `errors.docker_compose_raw` with Coolify's message.
    #[error("{0}")]
    Rejected(String),
}

/// `isBase64Encoded`: `base64_encode(base64_decode($s, true)) === $s`, then UTF-8.
pub fn decode_compose_base64(encoded: &str) -> Result<String, ComposeError> {
    let engine = base64::engine::general_purpose::STANDARD;
    let bytes = engine.decode(encoded).map_err(|_| ComposeError::NotBase64)?;
    if engine.encode(&bytes) != encoded {
        return Err(ComposeError::NotBase64);
    }
    String::from_utf8(bytes).map_err(|_| ComposeError::NotBase64)
}

/// One compose service after parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedContainer {
    pub name: String,
    pub image: String,
    pub is_database: bool,
    pub has_healthcheck: bool,
    /// `exclude_from_hc: true` or `restart: no`.
    pub excluded: bool,
    /// Set by a key-declared `SERVICE_URL_*`/`SERVICE_FQDN_*` in this service.
    pub fqdn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedVolume {
    pub container: String,
    /// `<service uuid>_<slug>`.
    pub name: String,
    pub mount_path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedFile {
    pub container: String,
    pub fs_path: String,
    pub mount_path: String,
    pub is_directory: bool,
    pub content: Option<String>,
}

/// A variable the parse creates with `firstOrCreate` (existing values win).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEnv {
    pub key: String,
    pub value: String,
    pub is_required: bool,
    /// `SERVICE_URL_*`/`SERVICE_FQDN_*` declared as keys are refreshed on every parse.
    pub refresh: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCompose {
    /// What Coolify stores as `docker_compose_raw`: re-dumped, comments and `content:` gone.
    pub raw: String,
    /// What Coolify stores as `docker_compose` and runs.
    pub rendered: String,
    pub containers: Vec<ParsedContainer>,
    pub volumes: Vec<ParsedVolume>,
    pub files: Vec<ParsedFile>,
    pub envs: Vec<ParsedEnv>,
}

/// Where generated URLs point: the server's wildcard domain, or `<ip>.sslip.io`.
#[derive(Debug, Clone)]
pub struct UrlBase {
    pub scheme: String,
    pub host: String,
}

impl UrlBase {
    pub fn for_server(ip: &str, wildcard_domain: Option<&str>) -> Self {
        match wildcard_domain.filter(|domain| !domain.is_empty()) {
            Some(domain) => {
                let (scheme, host) = match domain.split_once("://") {
                    Some((scheme, host)) => {
                        (scheme.to_owned(), host.trim_end_matches('/').to_owned())
                    }
                    None => ("http".to_owned(), domain.to_owned()),
                };
                Self { scheme, host }
            }
            None => Self { scheme: "http".to_owned(), host: format!("{ip}.sslip.io") },
        }
    }
}

const DATABASE_IMAGES: &[&str] = &[
    "postgres",
    "postgis",
    "redis",
    "keydb",
    "dragonfly",
    "mysql",
    "mariadb",
    "mongo",
    "clickhouse",
    "bitnami/",
];

/// Parses and transforms a decoded compose for service `service_uuid`.
pub fn parse_compose(
    yaml: &str,
    service_uuid: &str,
    url_base: &UrlBase,
) -> Result<ParsedCompose, ComposeError> {
    let document: Value = serde_norway::from_str(yaml)
        .map_err(|error| ComposeError::InvalidYaml(error.to_string()))?;
    validate_for_injection(&document)?;
    let Some(services) = document.get("services").and_then(Value::as_mapping) else {
        return Err(ComposeError::Rejected(
            "Docker Compose file must contain a \"services\" section".to_owned(),
        ));
    };

    let mut raw_document = document.clone();
    let mut rendered_document = document.clone();
    // serviceParser's `$parsed` (parseDockerVolumeString of the last short-form volume) is a
    // function-scope PHP variable: a later long-form bind reuses its `mode`.
    let mut last_short_mode: Option<String> = None;
    let mut containers = Vec::new();
    let mut volumes = Vec::new();
    let mut files = Vec::new();
    let mut envs: Vec<ParsedEnv> = Vec::new();
    let mut renamed_volumes: Vec<(String, String)> = Vec::new();

    for (name_value, definition) in services {
        let name = name_value.as_str().unwrap_or_default().to_owned();
        let image = definition.get("image").and_then(Value::as_str).unwrap_or_default().to_owned();
        let has_healthcheck = match definition.get("healthcheck") {
            Some(healthcheck) => {
                let disabled = healthcheck.get("disable").and_then(Value::as_bool).unwrap_or(false);
                let none_test = healthcheck
                    .get("test")
                    .and_then(Value::as_sequence)
                    .and_then(|test| test.first())
                    .and_then(Value::as_str)
                    == Some("NONE");
                !disabled && !none_test
            }
            None => false,
        };
        let restart_no = matches!(definition.get("restart"), Some(Value::String(text)) if text == "no")
            || matches!(definition.get("restart"), Some(Value::Bool(false)));
        let excluded = definition.get("exclude_from_hc").and_then(Value::as_bool).unwrap_or(false)
            || restart_no;
        let image_name = image.split(':').next().unwrap_or_default();
        let is_database = DATABASE_IMAGES.iter().any(|database| {
            image_name == *database
                || image_name.ends_with(&format!("/{database}"))
                || (database.ends_with('/') && image_name.starts_with(database))
        });
        let mut container = ParsedContainer {
            name: name.clone(),
            image,
            is_database,
            has_healthcheck,
            excluded,
            fqdn: None,
        };

        // Environment: magic variables and `${VAR}` references.
        let entries = environment_entries(definition.get("environment"));
        for (key, value) in &entries {
            if key.starts_with("SERVICE_") {
                declare_magic(key, true, &mut container, service_uuid, url_base, &mut envs);
            }
            if let Some(value) = value {
                let mut references = interpolations(value);
                // serviceParser: a value that starts with `$` is a variable reference whatever
                // escapes it (`$${X:-d}` included): the first balanced `${...}` becomes a
                // variable of the service (bootstrap/helpers/parsers.php, 4.3.11, the
                // `startsWith('$')` branch with `extractBalancedBraceContent`).
                if value.starts_with('$')
                    && let Some(reference) = leading_variable(value)
                    && !references.iter().any(|known| known.name == reference.name)
                {
                    references.push(reference);
                }
                for reference in references {
                    if reference.name.starts_with("SERVICE_") {
                        declare_magic(
                            &reference.name,
                            false,
                            &mut container,
                            service_uuid,
                            url_base,
                            &mut envs,
                        );
                    } else if !envs.iter().any(|env| env.key == reference.name) {
                        envs.push(ParsedEnv {
                            key: reference.name.clone(),
                            value: reference.default.clone().unwrap_or_default(),
                            is_required: reference.required,
                            refresh: false,
                        });
                    }
                }
            }
        }

        // Volumes: named volumes renamed, relative binds moved under the service directory.
        let mut raw_volumes = Vec::new();
        let mut rendered_volumes = Vec::new();
        if let Some(entries) = definition.get("volumes").and_then(Value::as_sequence) {
            for entry in entries {
                match entry {
                    Value::String(text) => {
                        let mut parts = text.splitn(3, ':');
                        let source = parts.next().unwrap_or_default().to_owned();
                        let target = parts.next().map(str::to_owned);
                        let mode = parts.next().map(str::to_owned);
                        last_short_mode = mode.clone();
                        let Some(target) = target else {
                            raw_volumes.push(entry.clone());
                            rendered_volumes.push(entry.clone());
                            continue;
                        };
                        let new_source = transform_source(
                            &source,
                            &target,
                            &name,
                            service_uuid,
                            false,
                            None,
                            &mut volumes,
                            &mut files,
                            &mut renamed_volumes,
                        );
                        let rendered = match &mode {
                            Some(mode) => format!("{new_source}:{target}:{mode}"),
                            None => format!("{new_source}:{target}"),
                        };
                        raw_volumes.push(entry.clone());
                        rendered_volumes.push(Value::String(rendered));
                    }
                    Value::Mapping(long) => {
                        let source = long
                            .get("source")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned();
                        let target = long
                            .get("target")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned();
                        let is_directory = long
                            .get("is_directory")
                            .or_else(|| long.get("isDirectory"))
                            .and_then(Value::as_bool)
                            .unwrap_or(false);
                        let content =
                            long.get("content").and_then(Value::as_str).map(str::to_owned);
                        let is_nfs = long
                            .get("volume")
                            .and_then(|volume| volume.get("driver_opts"))
                            .and_then(|options| options.get("type"))
                            .and_then(Value::as_str)
                            .is_some_and(|kind| kind == "nfs" || kind == "cifs");
                        let new_source = if source.is_empty() || is_nfs {
                            source.clone()
                        } else {
                            transform_source(
                                &source,
                                &target,
                                &name,
                                service_uuid,
                                is_directory,
                                content,
                                &mut volumes,
                                &mut files,
                                &mut renamed_volumes,
                            )
                        };
                        let mut raw_long = long.clone();
                        raw_long.remove("content");
                        raw_volumes.push(Value::Mapping(raw_long));
                        let is_bind =
                            long.get("type").and_then(Value::as_str) == Some("bind") && !is_nfs;
                        if is_bind && !new_source.is_empty() && !target.is_empty() {
                            // serviceParser (bootstrap/helpers/parsers.php, 4.3.11, the
                            // `$type->value() === 'bind'` branch): `$volume = "$source:$target"`,
                            // plus `:$parsed['mode']` only from a short-form entry; the long
                            // form's `read_only` is lost.
                            rendered_volumes.push(Value::String(match &last_short_mode {
                                Some(mode) => format!("{new_source}:{target}:{mode}"),
                                None => format!("{new_source}:{target}"),
                            }));
                            continue;
                        }
                        let mut rendered_long = long.clone();
                        for key in ["content", "is_directory", "isDirectory"] {
                            rendered_long.remove(key);
                        }
                        if !new_source.is_empty() {
                            rendered_long.insert(Value::from("source"), Value::from(new_source));
                        }
                        rendered_volumes.push(Value::Mapping(rendered_long));
                    }
                    other => {
                        raw_volumes.push(other.clone());
                        rendered_volumes.push(other.clone());
                    }
                }
            }
        }

        // The raw document keeps the user's compose, minus `content:`.
        if let Some(raw_service) = raw_document
            .get_mut("services")
            .and_then(|services| services.get_mut(name_value))
            .and_then(Value::as_mapping_mut)
            && !raw_volumes.is_empty()
        {
            raw_service.insert(Value::from("volumes"), Value::Sequence(raw_volumes));
        }
        if let Some(rendered_service) = rendered_document
            .get_mut("services")
            .and_then(|services| services.get_mut(name_value))
            .and_then(Value::as_mapping_mut)
        {
            render_service(rendered_service, &name, service_uuid, rendered_volumes, &container);
        }
        containers.push(container);
    }

    // Top-level named volumes follow their renamed users.
    if let Some(top_volumes) = rendered_document.get_mut("volumes").and_then(Value::as_mapping_mut)
    {
        let mut renamed = Mapping::new();
        for (key, value) in top_volumes.iter() {
            let old = key.as_str().unwrap_or_default();
            match renamed_volumes.iter().find(|(from, _)| from == old) {
                Some((_, to)) => {
                    let mut definition = match value {
                        Value::Mapping(mapping) => mapping.clone(),
                        _ => Mapping::new(),
                    };
                    definition.insert(Value::from("name"), Value::from(to.clone()));
                    renamed.insert(Value::from(to.clone()), Value::Mapping(definition));
                }
                None => {
                    renamed.insert(key.clone(), value.clone());
                }
            }
        }
        *top_volumes = renamed;
    }
    if let Some(root) = rendered_document.as_mapping_mut() {
        let mut network = Mapping::new();
        network.insert(Value::from("name"), Value::from(service_uuid));
        network.insert(Value::from("external"), Value::from(true));
        let networks =
            root.entry(Value::from("networks")).or_insert_with(|| Value::Mapping(Mapping::new()));
        if let Some(networks) = networks.as_mapping_mut() {
            networks.insert(Value::from(service_uuid), Value::Mapping(network));
        }
    }

    let raw = serde_norway::to_string(&raw_document)
        .map_err(|error| ComposeError::InvalidYaml(error.to_string()))?;
    let rendered = serde_norway::to_string(&rendered_document)
        .map_err(|error| ComposeError::InvalidYaml(error.to_string()))?;
    Ok(ParsedCompose { raw, rendered, containers, volumes, files, envs })
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site per volume syntax; a struct would only rename the arguments"
)]
fn transform_source(
    source: &str,
    target: &str,
    container: &str,
    service_uuid: &str,
    is_directory: bool,
    content: Option<String>,
    volumes: &mut Vec<ParsedVolume>,
    files: &mut Vec<ParsedFile>,
    renamed: &mut Vec<(String, String)>,
) -> String {
    if source.starts_with('/') || source.starts_with('$') || source.starts_with('~') {
        // Absolute host paths (including /var/run/docker.sock and /tmp) and variables pass.
        return source.to_owned();
    }
    if let Some(relative) = source
        .strip_prefix("./")
        .or_else(|| source.strip_prefix('.').filter(|rest| rest.is_empty()))
    {
        let fs_path = format!("/data/coolify/services/{service_uuid}/{relative}")
            .trim_end_matches('/')
            .to_owned();
        files.push(ParsedFile {
            container: container.to_owned(),
            fs_path: fs_path.clone(),
            mount_path: target.to_owned(),
            is_directory: is_directory || content.is_none(),
            content,
        });
        return fs_path;
    }
    let name = format!("{service_uuid}_{}", slug(source));
    if !renamed.iter().any(|(from, _)| from == source) {
        renamed.push((source.to_owned(), name.clone()));
    }
    volumes.push(ParsedVolume {
        container: container.to_owned(),
        name: name.clone(),
        mount_path: target.to_owned(),
    });
    name
}

fn slug(text: &str) -> String {
    let mut slug = String::new();
    for character in text.chars() {
        if character.is_ascii_alphanumeric() {
            slug.push(character.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_matches('-').to_owned()
}

fn render_service(
    service: &mut Mapping,
    name: &str,
    service_uuid: &str,
    volumes: Vec<Value>,
    container: &ParsedContainer,
) {
    {
        let key = "exclude_from_hc";
        service.remove(key);
    }
    service.insert(Value::from("container_name"), Value::from(format!("{name}-{service_uuid}")));
    if !service.contains_key("restart") {
        service.insert(Value::from("restart"), Value::from("unless-stopped"));
    }
    if !volumes.is_empty() {
        service.insert(Value::from("volumes"), Value::Sequence(volumes));
    }
    if !service.contains_key("network_mode") {
        let networks =
            service.entry(Value::from("networks")).or_insert_with(|| Value::Sequence(Vec::new()));
        match networks {
            Value::Sequence(list) => list.push(Value::from(service_uuid)),
            Value::Mapping(map) => {
                map.insert(Value::from(service_uuid), Value::Null);
            }
            _ => {}
        }
    }
    let env_file =
        service.entry(Value::from("env_file")).or_insert_with(|| Value::Sequence(Vec::new()));
    if let Value::Sequence(list) = env_file {
        list.push(Value::from(".env"));
    }
    let mut environment: Vec<Value> = environment_entries(service.get("environment"))
        .into_iter()
        .filter(|(key, _)| !key.starts_with("SERVICE_FQDN_"))
        .map(|(key, value)| {
            Value::from(match value {
                Some(value) => format!("{key}={value}"),
                None => key,
            })
        })
        .collect();
    environment.push(Value::from(format!("COOLIFY_RESOURCE_UUID={service_uuid}")));
    environment.push(Value::from(format!("COOLIFY_CONTAINER_NAME={name}-{service_uuid}")));
    if let Some(fqdn) = &container.fqdn {
        environment.push(Value::from(format!("COOLIFY_URL={fqdn}")));
    }
    service.insert(Value::from("environment"), Value::Sequence(environment));
    let sub_type = if container.is_database { "database" } else { "application" };
    let mut labels: Vec<Value> = match service.get("labels") {
        Some(Value::Sequence(list)) => list.clone(),
        Some(Value::Mapping(map)) => map
            .iter()
            .map(|(key, value)| {
                Value::from(format!("{}={}", key.as_str().unwrap_or_default(), scalar_text(value)))
            })
            .collect(),
        _ => Vec::new(),
    };
    for label in [
        "coolify.managed=true".to_owned(),
        "coolify.type=service".to_owned(),
        format!("coolify.service.subName={name}"),
        format!("coolify.service.subType={sub_type}"),
        format!("traefik.docker.network={service_uuid}"),
    ] {
        labels.push(Value::from(label));
    }
    service.insert(Value::from("labels"), Value::Sequence(labels));
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::Null => String::new(),
        other => serde_norway::to_string(other).unwrap_or_default().trim().to_owned(),
    }
}

/// `environment:` as a list (`K=V`, `K`) or a map.
fn environment_entries(environment: Option<&Value>) -> Vec<(String, Option<String>)> {
    match environment {
        Some(Value::Sequence(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(|entry| match entry.split_once('=') {
                Some((key, value)) => (key.trim().to_owned(), Some(value.to_owned())),
                None => (entry.trim().to_owned(), None),
            })
            .collect(),
        Some(Value::Mapping(map)) => map
            .iter()
            .map(|(key, value)| {
                let value = if value.is_null() { None } else { Some(scalar_text(value)) };
                (key.as_str().unwrap_or_default().to_owned(), value)
            })
            .collect(),
        _ => Vec::new(),
    }
}

struct Interpolation {
    name: String,
    default: Option<String>,
    required: bool,
}

/// `${VAR}`, `${VAR:-default}`, `${VAR:?}` and `$VAR` (not `$$`, compose's escape).
fn interpolations(value: &str) -> Vec<Interpolation> {
    let pattern = regex_lite();
    let mut found = Vec::new();
    for captures in pattern.captures_iter(value) {
        if let Some(braced) = captures.get(1) {
            found.push(split_reference(braced.as_str()));
        } else if let Some(bare) = captures.get(2) {
            found.push(Interpolation {
                name: bare.as_str().to_owned(),
                default: None,
                required: false,
            });
        }
    }
    found
}

/// The first `${...}` of a value that starts with `$`, split by [`split_reference`].
fn leading_variable(value: &str) -> Option<Interpolation> {
    let start = value.find("${")? + 2;
    let mut depth = 1;
    let mut end = None;
    for (offset, character) in value[start..].char_indices() {
        match character {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = Some(start + offset);
                    break;
                }
            }
            _ => {}
        }
    }
    let reference = split_reference(&value[start..end?]);
    let valid = !reference.name.is_empty()
        && reference
            .name
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || character == '_');
    valid.then_some(reference)
}

/// The inside of `${...}`: `NAME`, `NAME:-default`, `NAME-default`, `NAME:?` or `NAME?`
/// (Coolify's `splitOnOperatorOutsideNested`, compose's operators).
fn split_reference(content: &str) -> Interpolation {
    let (name, default, required) = if let Some((name, default)) = content.split_once(":-") {
        (name, Some(default.to_owned()), false)
    } else if let Some((name, _)) = content.split_once(":?").or_else(|| content.split_once('?')) {
        (name, None, true)
    } else if let Some((name, default)) = content.split_once('-') {
        (name, Some(default.to_owned()), false)
    } else {
        (content, None, false)
    };
    Interpolation { name: name.to_owned(), default, required }
}

fn regex_lite() -> &'static regex::Regex {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        regex::Regex::new(
            r"(?:^|[^$])\$(?:\{([A-Za-z_][A-Za-z0-9_]*(?:[:?-][^}]*)?)\}|([A-Za-z_][A-Za-z0-9_]*))",
        )
        .unwrap_or_else(|_| unreachable_regex())
    })
}

fn unreachable_regex() -> regex::Regex {
    // The pattern above is a constant; this keeps `expect` out of library code.
    regex::Regex::new("$^").unwrap_or_else(|_| std::process::abort())
}

/// `parseCommandFromMagicEnvVariable` + `generateEnvValue` for one `SERVICE_*` name.
fn declare_magic(
    key: &str,
    declared_as_key: bool,
    container: &mut ParsedContainer,
    service_uuid: &str,
    url_base: &UrlBase,
    envs: &mut Vec<ParsedEnv>,
) {
    let underscores = key.matches('_').count();
    let is_url = key.starts_with("SERVICE_URL_");
    let is_fqdn = key.starts_with("SERVICE_FQDN_");
    if is_url || is_fqdn {
        let rest = key
            .split_once('_')
            .map(|(_, rest)| rest)
            .and_then(|rest| rest.split_once('_'))
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        let (identifier, port) = match (underscores, rest.rsplit_once('_')) {
            (3, Some((identifier, port))) if port.parse::<u16>().is_ok() => {
                (identifier.to_owned(), Some(port.to_owned()))
            }
            (2, _) => (rest.to_owned(), None),
            _ => (rest.to_owned(), None),
        };
        let host = format!(
            "{}-{service_uuid}.{}",
            identifier.to_lowercase().replace('_', "-"),
            url_base.host
        );
        let url = format!("{}://{host}", url_base.scheme);
        let suffix = port.as_ref().map(|port| format!(":{port}")).unwrap_or_default();
        let (url_key, fqdn_key) = match &port {
            Some(port) => (
                format!("SERVICE_URL_{identifier}_{port}"),
                format!("SERVICE_FQDN_{identifier}_{port}"),
            ),
            None => (format!("SERVICE_URL_{identifier}"), format!("SERVICE_FQDN_{identifier}")),
        };
        upsert_env(envs, &url_key, &format!("{url}{suffix}"), declared_as_key);
        upsert_env(envs, &fqdn_key, &format!("{host}{suffix}"), declared_as_key);
        if declared_as_key && container.fqdn.is_none() {
            container.fqdn = Some(format!("{url}{suffix}"));
        }
        return;
    }
    let command = match underscores {
        2 | 3 => key
            .strip_prefix("SERVICE_")
            .and_then(|rest| rest.rsplit_once('_'))
            .map(|(command, _)| command)
            .unwrap_or_default(),
        _ => "",
    };
    let value = generate_value(command);
    upsert_env(envs, key, &value.unwrap_or_default(), false);
}

fn upsert_env(envs: &mut Vec<ParsedEnv>, key: &str, value: &str, refresh: bool) {
    if let Some(existing) = envs.iter_mut().find(|env| env.key == key) {
        existing.refresh |= refresh;
        return;
    }
    envs.push(ParsedEnv {
        key: key.to_owned(),
        value: value.to_owned(),
        is_required: false,
        refresh,
    });
}

fn random_alphanumeric(length: usize) -> String {
    rand::rng().sample_iter(&Alphanumeric).take(length).map(char::from).collect()
}

fn random_bytes(length: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; length];
    rand::rng().fill(bytes.as_mut_slice());
    bytes
}

fn password(length: usize, symbols: bool) -> String {
    if !symbols {
        return random_alphanumeric(length);
    }
    const ALPHABET: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!@#$%^&*()-_=+[]{};:,.<>?";
    let mut rng = rand::rng();
    (0..length).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect()
}

/// `generateEnvValue`: `None` for commands Coolify does not know (an empty variable).
pub fn generate_value(command: &str) -> Option<String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let value = match command {
        "PASSWORD" => password(32, false),
        "PASSWORD_64" => password(64, false),
        "PASSWORDWITHSYMBOLS" => password(32, true),
        "PASSWORDWITHSYMBOLS_64" => password(64, true),
        // Coolify: "This is not base64, it's just a random string".
        "BASE64" | "BASE64_32" => random_alphanumeric(32),
        "BASE64_64" => random_alphanumeric(64),
        "BASE64_128" => random_alphanumeric(128),
        "REALBASE64" | "REALBASE64_32" => engine.encode(random_bytes(32)),
        "REALBASE64_64" => engine.encode(random_bytes(64)),
        "REALBASE64_128" => engine.encode(random_bytes(128)),
        "HEX_32" => hex_string(16),
        "HEX_64" => hex_string(32),
        "HEX_128" => hex_string(64),
        "USER" => random_alphanumeric(16),
        "LOWERCASEUSER" => random_alphanumeric(16).to_lowercase(),
        _ => return None,
    };
    Some(value)
}

fn hex_string(bytes: usize) -> String {
    random_bytes(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `validateDockerComposeForInjection` (`parsers.php:27`).
fn validate_for_injection(document: &Value) -> Result<(), ComposeError> {
    let Some(services) = document.get("services").and_then(Value::as_mapping) else {
        return Err(ComposeError::Rejected(
            "Docker Compose file must contain a \"services\" section".to_owned(),
        ));
    };
    for (name, definition) in services {
        let name = name.as_str().unwrap_or_default();
        shell_safe(name, "service name").map_err(|reason| {
            ComposeError::Rejected(format!("Invalid Docker Compose service name: {reason} Service names must not contain shell metacharacters."))
        })?;
        let Some(volumes) = definition.get("volumes").and_then(Value::as_sequence) else {
            continue;
        };
        for volume in volumes {
            match volume {
                Value::String(text) => {
                    let (source, target) = split_volume(text);
                    if !is_allowed_variable_source(&source) {
                        shell_safe(&source, "volume source").map_err(volume_error)?;
                    }
                    if let Some(target) = target {
                        shell_safe(&target, "volume target").map_err(volume_error)?;
                    }
                }
                Value::Mapping(long) => {
                    if let Some(source) = long.get("source").and_then(Value::as_str)
                        && !is_allowed_variable_source(source)
                    {
                        shell_safe(source, "volume source").map_err(array_volume_error)?;
                    }
                    if let Some(target) = long.get("target").and_then(Value::as_str) {
                        shell_safe(target, "volume target").map_err(array_volume_error)?;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn volume_error(reason: String) -> ComposeError {
    ComposeError::Rejected(format!(
        "Invalid Docker volume definition: {reason} Please use safe path names without shell metacharacters."
    ))
}

fn array_volume_error(reason: String) -> ComposeError {
    ComposeError::Rejected(format!(
        "Invalid Docker volume definition (array syntax): {reason} Please use safe path names without shell metacharacters."
    ))
}

/// Splits `source:target[:mode]`, keeping a leading `${VAR:-default}` whole.
fn split_volume(text: &str) -> (String, Option<String>) {
    let text = text.trim();
    let variable_end = if text.starts_with("${") && text.contains(":-") {
        text.find('}').map(|end| end + 1)
    } else {
        None
    };
    let (source, rest) = match variable_end {
        Some(end) => (text[..end].to_owned(), text[end..].strip_prefix(':').map(str::to_owned)),
        None => match text.split_once(':') {
            Some((source, rest)) => (source.to_owned(), Some(rest.to_owned())),
            None => (text.to_owned(), None),
        },
    };
    let target = rest.map(|rest| rest.split(':').next().unwrap_or_default().to_owned());
    (source, target)
}

fn is_allowed_variable_source(source: &str) -> bool {
    static PATTERNS: std::sync::OnceLock<[regex::Regex; 3]> = std::sync::OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        [
            regex::Regex::new(r"^\$\{[a-zA-Z_][a-zA-Z0-9_]*\}$")
                .unwrap_or_else(|_| unreachable_regex()),
            regex::Regex::new(r"^\$\{[^}]+:-[^}]*\}$").unwrap_or_else(|_| unreachable_regex()),
            regex::Regex::new(r"^\$\{[a-zA-Z_][a-zA-Z0-9_]*\}[/\w.\-]*$")
                .unwrap_or_else(|_| unreachable_regex()),
        ]
    });
    patterns.iter().any(|pattern| pattern.is_match(source))
}

/// `validateShellSafePath`.
fn shell_safe(input: &str, context: &str) -> Result<(), String> {
    const DANGEROUS: &[(&str, &str)] = &[
        ("`", "backtick (command substitution)"),
        ("$(", "command substitution"),
        ("${", "variable substitution with potential command injection"),
        ("|", "pipe operator"),
        ("&", "background/AND operator"),
        (";", "command separator"),
        ("\n", "newline (command separator)"),
        ("\r", "carriage return"),
        ("\t", "tab (token separator)"),
        (">", "output redirection"),
        ("<", "input redirection"),
    ];
    for (needle, description) in DANGEROUS {
        if input.contains(needle) {
            return Err(format!(
                "Invalid {context}: contains forbidden character '{needle}' ({description}). Shell metacharacters are not allowed for security reasons."
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> UrlBase {
        UrlBase::for_server("1.2.3.4", None)
    }

    #[test]
    fn base64_must_round_trip() {
        assert_eq!(decode_compose_base64("c2VydmljZXM6IHt9"), Ok("services: {}".to_owned()));
        assert_eq!(decode_compose_base64("c2VydmljZXM6IHt9\n"), Err(ComposeError::NotBase64));
        assert_eq!(decode_compose_base64("services: {}"), Err(ComposeError::NotBase64));
        // Unpadded input decodes nowhere in PHP's round trip.
        assert_eq!(decode_compose_base64("YQ"), Err(ComposeError::NotBase64));
    }

    #[test]
    fn injection_is_rejected() {
        let bad_name = "services:\n  'a;rm -rf /':\n    image: x\n";
        assert!(
            matches!(parse_compose(bad_name, "u1", &base()), Err(ComposeError::Rejected(message)) if message.starts_with("Invalid Docker Compose service name"))
        );
        let bad_volume = "services:\n  a:\n    image: x\n    volumes:\n      - '$(id):/data'\n";
        assert!(matches!(parse_compose(bad_volume, "u1", &base()), Err(ComposeError::Rejected(_))));
        let variable_source =
            "services:\n  a:\n    image: x\n    volumes:\n      - '${DATA:-./data}:/data'\n";
        assert!(parse_compose(variable_source, "u1", &base()).is_ok());
        assert!(matches!(
            parse_compose("version: '3'\n", "u1", &base()),
            Err(ComposeError::Rejected(_))
        ));
        assert!(matches!(
            parse_compose("services: [\n", "u1", &base()),
            Err(ComposeError::InvalidYaml(_))
        ));
    }

    #[test]
    fn renames_containers_and_volumes_and_strips_coolify_keys() {
        let yaml = "services:\n  web:\n    image: nginx:1.27\n    volumes:\n      - data:/data\n      - type: bind\n        source: ./conf.yaml\n        target: /etc/conf.yaml\n        content: |\n          hello\n    exclude_from_hc: true\nvolumes:\n  data: {}\n";
        let parsed = parse_compose(yaml, "svc123", &base()).unwrap();
        assert!(parsed.rendered.contains("container_name: web-svc123"));
        assert!(parsed.rendered.contains("svc123_data:/data"));
        assert!(parsed.rendered.contains("/data/coolify/services/svc123/conf.yaml"));
        assert!(!parsed.rendered.contains("content"));
        assert!(!parsed.rendered.contains("exclude_from_hc"));
        assert!(!parsed.raw.contains("content"), "{}", parsed.raw);
        assert!(parsed.raw.contains("exclude_from_hc"));
        assert!(parsed.containers[0].excluded);
        assert_eq!(parsed.volumes[0].name, "svc123_data");
        assert_eq!(parsed.files[0].content.as_deref(), Some("hello\n"));
    }

    #[test]
    fn a_value_that_starts_with_a_dollar_becomes_a_variable_even_escaped() {
        let yaml = "services:\n  app:\n    image: ghcr.io/x/app:1\n    environment:\n      PROMPT: '$${HTTPS_PROXY:-http://attacker.example}'\n      SAFE: 'costs $$5'\n";
        let parsed = parse_compose(yaml, "svc1", &base()).unwrap();
        let proxy = parsed.envs.iter().find(|env| env.key == "HTTPS_PROXY").expect("a variable");
        assert_eq!(proxy.value, "http://attacker.example");
        assert_eq!(parsed.envs.len(), 1, "an escaped `$` inside a value stays text");
    }

    #[test]
    fn magic_variables_follow_the_underscore_rule() {
        let yaml = "services:\n  app:\n    image: ghcr.io/x/app:1\n    environment:\n      - SERVICE_URL_APP_8080\n      - DB_PASSWORD=${SERVICE_PASSWORD_DB}\n      - ADMIN=${SERVICE_PASSWORD_64_ADMIN}\n      - BROKEN=${SERVICE_PASSWORD_MY_DB}\n      - MODE=${MODE:-production}\n      - KEY=${API_KEY:?}\n  postgres:\n    image: postgres:16-alpine\n    environment:\n      POSTGRES_PASSWORD: $SERVICE_PASSWORD_DB\n";
        let parsed = parse_compose(yaml, "abc", &base()).unwrap();
        let env = |key: &str| {
            parsed
                .envs
                .iter()
                .find(|env| env.key == key)
                .unwrap_or_else(|| panic!("{key} missing: {:?}", parsed.envs))
        };
        assert_eq!(env("SERVICE_URL_APP_8080").value, "http://app-abc.1.2.3.4.sslip.io:8080");
        assert_eq!(env("SERVICE_FQDN_APP_8080").value, "app-abc.1.2.3.4.sslip.io:8080");
        assert_eq!(env("SERVICE_PASSWORD_DB").value.len(), 32);
        assert_eq!(env("SERVICE_PASSWORD_64_ADMIN").value.len(), 64);
        assert_eq!(
            env("SERVICE_PASSWORD_MY_DB").value,
            "",
            "an identifier with `_` yields an empty value"
        );
        assert_eq!(env("MODE").value, "production");
        assert!(env("API_KEY").is_required);
        assert_eq!(
            parsed.envs.iter().filter(|env| env.key == "SERVICE_PASSWORD_DB").count(),
            1,
            "shared across services"
        );
        assert_eq!(
            parsed.containers[0].fqdn.as_deref(),
            Some("http://app-abc.1.2.3.4.sslip.io:8080")
        );
        assert!(parsed.containers[1].is_database);
        assert!(!parsed.containers[0].is_database);
    }
}

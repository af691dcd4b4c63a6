//! What Coolify and docker compose do to a rendered stack before a container starts, emulated
//! for native runs, in one place: generated `SERVICE_PASSWORD_*` values, `${VAR}` interpolation
//! with `$$` escapes, config `content` written to files, and container paths and service DNS
//! names mapped to temp dirs and loopback ports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Deserialize;
use serde_json::Value;

/// A failure of the emulation: the rendered stack uses something Coolify or compose would not
/// accept, or the harness could not write its files.
#[derive(Debug, thiserror::Error)]
pub enum EmulationError {
    #[error(
        "`${{{name}}}` is neither in the stack's environment nor a generated value\nhint: compose would substitute an empty string; bind it in template.toml"
    )]
    UnknownVariable { name: String },
    #[error("unterminated `${{` in `{text}`\nhint: close the reference or escape `$` as `$$`")]
    UnterminatedReference { text: String },
    #[error(
        "Coolify generates no value for `{name}`\nhint: use SERVICE_PASSWORD_<ID> or SERVICE_PASSWORD_64_<ID>"
    )]
    UnknownMagicVariable { name: String },
    #[error("service `{service}` has a field the harness cannot read: {what}")]
    Shape { service: String, what: String },
    #[error("cannot write `{path}` for service `{service}`")]
    Write {
        service: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The JSON `cfa templates render --format json --show-secrets` prints.
#[derive(Debug, Clone, Deserialize)]
pub struct RenderedStack {
    pub template: String,
    pub plan: String,
    pub service_limits: BTreeMap<String, ServiceLimit>,
    pub environment: Vec<EnvironmentEntry>,
    pub generated_variables: Vec<String>,
    pub compose: Value,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ServiceLimit {
    pub cpus: f64,
    pub memory_mb: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EnvironmentEntry {
    pub name: String,
    pub value: String,
    pub secret: bool,
}

/// Coolify's generated values: `SERVICE_PASSWORD_<ID>` is 32 random alphanumerics,
/// `SERVICE_PASSWORD_64_<ID>` 64, `SERVICE_USER_<ID>` 16.
pub fn generate_magic_values(names: &[String]) -> Result<BTreeMap<String, String>, EmulationError> {
    let mut random = rand::rng();
    let mut values = BTreeMap::new();
    for name in names {
        let length = if name.starts_with("SERVICE_PASSWORD_64_") {
            64
        } else if name.starts_with("SERVICE_PASSWORD_") {
            32
        } else if name.starts_with("SERVICE_USER_") {
            16
        } else {
            return Err(EmulationError::UnknownMagicVariable { name: name.clone() });
        };
        let value: String =
            (&mut random).sample_iter(Alphanumeric).take(length).map(char::from).collect();
        values.insert(name.clone(), value);
    }
    Ok(values)
}

/// Compose interpolation: `$$` is a literal `$`; `${NAME}`, `${NAME:-default}`,
/// `${NAME-default}` and `$NAME` are replaced. An unknown name is an error here (compose would
/// warn and substitute an empty string, which is always a template bug for us).
pub fn interpolate(
    text: &str,
    variables: &BTreeMap<String, String>,
) -> Result<String, EmulationError> {
    let mut output = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(position) = rest.find('$') {
        output.push_str(&rest[..position]);
        let after = &rest[position + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            output.push('$');
            rest = stripped;
        } else if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| EmulationError::UnterminatedReference { text: text.to_owned() })?;
            let reference = &braced[..end];
            let (name, default) = match reference.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => match reference.split_once('-') {
                    Some((name, default)) => (name, Some(default)),
                    None => (reference, None),
                },
            };
            match (variables.get(name), default) {
                (Some(value), _) => output.push_str(value),
                (None, Some(default)) => output.push_str(default),
                (None, None) => {
                    return Err(EmulationError::UnknownVariable { name: name.to_owned() });
                }
            }
            rest = &braced[end + 1..];
        } else {
            let length = after
                .find(|character: char| !(character.is_ascii_alphanumeric() || character == '_'))
                .unwrap_or(after.len());
            if length == 0 {
                output.push('$');
                rest = after;
                continue;
            }
            let name = &after[..length];
            let value = variables
                .get(name)
                .ok_or_else(|| EmulationError::UnknownVariable { name: name.to_owned() })?;
            output.push_str(value);
            rest = &after[length..];
        }
    }
    output.push_str(rest);
    Ok(output)
}

/// Container paths and service addresses, and where they are on this machine.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    /// (container path, host path), longest container path first.
    paths: Vec<(String, PathBuf)>,
    /// (`service:container_port`, `127.0.0.1:host_port`).
    addresses: Vec<(String, String)>,
}

impl Mapping {
    pub fn add_path(&mut self, container: &str, host: &Path) {
        self.paths.push((container.trim_end_matches('/').to_owned(), host.to_path_buf()));
        self.paths.sort_by_key(|(container, _)| std::cmp::Reverse(container.len()));
    }

    pub fn add_address(&mut self, service: &str, container_port: u16, host_port: u16) {
        self.addresses
            .push((format!("{service}:{container_port}"), format!("127.0.0.1:{host_port}")));
    }

    /// The host path of an absolute container path, when one of its parents is mapped.
    pub fn host_path(&self, container: &str) -> Option<PathBuf> {
        self.paths.iter().find_map(|(prefix, host)| {
            if container == prefix {
                Some(host.clone())
            } else {
                container
                    .strip_prefix(prefix.as_str())
                    .and_then(|rest| rest.strip_prefix('/'))
                    .map(|rest| host.join(rest))
            }
        })
    }

    /// A value as the native process must see it: a mapped absolute path becomes its host
    /// path, `http://service:port` becomes a loopback address.
    pub fn translate(&self, value: &str) -> String {
        if value.starts_with('/')
            && let Some(host) = self.host_path(value)
        {
            return host.display().to_string();
        }
        let mut translated = value.to_owned();
        for (service_address, loopback) in &self.addresses {
            let pattern = format!("//{service_address}");
            let mut output = String::with_capacity(translated.len());
            let mut rest = translated.as_str();
            while let Some(position) = rest.find(&pattern) {
                let after = &rest[position + pattern.len()..];
                output.push_str(&rest[..position]);
                // `litellm:4000` must not match inside `litellm:40000`.
                if after.starts_with(|character: char| character.is_ascii_digit()) {
                    output.push_str(&pattern);
                } else {
                    output.push_str("//");
                    output.push_str(loopback);
                }
                rest = after;
            }
            output.push_str(rest);
            translated = output;
        }
        translated
    }
}

/// One rendered service, ready to become a native process.
#[derive(Debug, Clone)]
pub struct NativeService {
    pub name: String,
    pub image: String,
    /// After interpolation and mapping.
    pub environment: BTreeMap<String, String>,
    /// After interpolation; paths are not mapped here (the per-program translation does it).
    pub command: Option<Vec<String>>,
    pub memory_limit_mb: u32,
}

/// The whole stack after Coolify's and compose's part: values, files and directories in place.
#[derive(Debug)]
pub struct PreparedStack {
    pub services: BTreeMap<String, NativeService>,
    /// Every variable compose saw: the render's environment plus generated values.
    pub variables: BTreeMap<String, String>,
    pub mapping: Mapping,
}

fn shape(service: &str, what: impl Into<String>) -> EmulationError {
    EmulationError::Shape { service: service.to_owned(), what: what.into() }
}

fn create_dir(service: &str, path: &Path) -> Result<(), EmulationError> {
    std::fs::create_dir_all(path).map_err(|source| EmulationError::Write {
        service: service.to_owned(),
        path: path.to_path_buf(),
        source,
    })
}

/// Does Coolify's and compose's part for every service of `rendered`, under `work_dir`:
/// generates the magic values, writes each config `content` to a file, gives each volume,
/// tmpfs and `HOME` a directory, and interpolates and maps every environment value.
/// `ports` maps a service name to (container port, loopback port).
pub fn prepare(
    rendered: &RenderedStack,
    work_dir: &Path,
    ports: &BTreeMap<String, (u16, u16)>,
) -> Result<PreparedStack, EmulationError> {
    let mut variables = generate_magic_values(&rendered.generated_variables)?;
    for entry in &rendered.environment {
        variables.insert(entry.name.clone(), entry.value.clone());
    }
    let services = rendered
        .compose
        .get("services")
        .and_then(Value::as_object)
        .ok_or_else(|| shape("*", "no `services` object"))?;

    let mut mapping = Mapping::default();
    for (service, (container_port, host_port)) in ports {
        mapping.add_address(service, *container_port, *host_port);
    }
    // Directories and files first: every service's environment may name any of them.
    for (name, service) in services {
        for volume in service.get("volumes").and_then(Value::as_array).into_iter().flatten() {
            match volume {
                Value::String(short) => {
                    let mut parts = short.split(':');
                    let source = parts.next().unwrap_or_default();
                    let target =
                        parts.next().ok_or_else(|| shape(name, format!("volume `{short}`")))?;
                    let host = work_dir.join("volumes").join(source);
                    create_dir(name, &host)?;
                    mapping.add_path(target, &host);
                }
                Value::Object(long) => {
                    let target = long
                        .get("target")
                        .and_then(Value::as_str)
                        .ok_or_else(|| shape(name, "a long volume without `target`"))?;
                    let Some(content) = long.get("content").and_then(Value::as_str) else {
                        return Err(shape(
                            name,
                            format!("a long volume `{target}` without `content`"),
                        ));
                    };
                    let file_name = Path::new(target)
                        .file_name()
                        .ok_or_else(|| shape(name, format!("file target `{target}`")))?;
                    let directory = work_dir.join("files").join(name);
                    create_dir(name, &directory)?;
                    let host = directory.join(file_name);
                    // Coolify writes `content` as it is: the program reads its own `${NAME}`s.
                    std::fs::write(&host, content).map_err(|source| EmulationError::Write {
                        service: name.clone(),
                        path: host.clone(),
                        source,
                    })?;
                    mapping.add_path(target, &host);
                }
                other => return Err(shape(name, format!("volume {other}"))),
            }
        }
        for tmpfs in service.get("tmpfs").and_then(Value::as_array).into_iter().flatten() {
            let target = tmpfs.as_str().unwrap_or_default().split(':').next().unwrap_or_default();
            if target.is_empty() {
                return Err(shape(name, "tmpfs entry"));
            }
            let host = work_dir.join("tmpfs").join(name);
            create_dir(name, &host)?;
            mapping.add_path(&format!("{name}::{target}"), &host);
        }
    }

    let mut native = BTreeMap::new();
    for (name, service) in services {
        let image = service.get("image").and_then(Value::as_str).unwrap_or_default().to_owned();
        let mut environment = BTreeMap::new();
        let declared = service.get("environment").and_then(Value::as_object);
        for (key, value) in declared.into_iter().flatten() {
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                other => return Err(shape(name, format!("environment `{key}` = {other}"))),
            };
            environment.insert(key.clone(), interpolate(&text, &variables)?);
        }
        // HOME inside the image is part of the image's filesystem: give it a directory.
        if let Some(home) = environment.get("HOME").cloned()
            && mapping.host_path(&home).is_none()
        {
            let host = work_dir.join("home").join(name);
            create_dir(name, &host)?;
            mapping.add_path(&home, &host);
        }
        let command = match service.get("command") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|item| interpolate(item.as_str().unwrap_or_default(), &variables))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(other) => return Err(shape(name, format!("command {other} (use the list form)"))),
        };
        let memory_limit_mb = rendered
            .service_limits
            .get(name)
            .map(|limit| limit.memory_mb)
            .ok_or_else(|| shape(name, "no entry in `service_limits`"))?;
        native.insert(
            name.clone(),
            NativeService { name: name.clone(), image, environment, command, memory_limit_mb },
        );
    }
    for service in native.values_mut() {
        for value in service.environment.values_mut() {
            *value = mapping.translate(value);
        }
    }
    Ok(PreparedStack { services: native, variables, mapping })
}

impl PreparedStack {
    /// The host directory of a service's tmpfs at `target` (e.g. `/tmp`), when it has one.
    pub fn tmpfs(&self, service: &str, target: &str) -> Option<PathBuf> {
        self.mapping.host_path(&format!("{service}::{target}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variables(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
    }

    #[test]
    fn interpolation_follows_compose() {
        let known = variables(&[("KEY", "s3cret"), ("EMPTY", "")]);
        let check = |input: &str, expected: &str| {
            assert_eq!(interpolate(input, &known).expect(input), expected, "input {input:?}");
        };
        check("plain", "plain");
        check("sk-${KEY}", "sk-s3cret");
        check("$KEY/x", "s3cret/x");
        check("pa$$word", "pa$word");
        check("$${KEY}", "${KEY}");
        check("${MISSING:-fallback}", "fallback");
        check("${MISSING-fallback}", "fallback");
        check("a$ b", "a$ b");
        check("${EMPTY}", "");
        assert!(matches!(
            interpolate("${NOPE}", &known),
            Err(EmulationError::UnknownVariable { name }) if name == "NOPE"
        ));
        assert!(matches!(
            interpolate("${KEY", &known),
            Err(EmulationError::UnterminatedReference { .. })
        ));
    }

    #[test]
    fn magic_values_have_coolifys_lengths() {
        let names = vec![
            "SERVICE_PASSWORD_64_TOKEN".to_owned(),
            "SERVICE_PASSWORD_ADMIN".to_owned(),
            "SERVICE_USER_ADMIN".to_owned(),
        ];
        let values = generate_magic_values(&names).expect("known kinds");
        assert_eq!(values["SERVICE_PASSWORD_64_TOKEN"].len(), 64);
        assert_eq!(values["SERVICE_PASSWORD_ADMIN"].len(), 32);
        assert_eq!(values["SERVICE_USER_ADMIN"].len(), 16);
        assert!(values.values().all(|value| value.chars().all(|c| c.is_ascii_alphanumeric())));
        assert!(generate_magic_values(&["SERVICE_URL_X".to_owned()]).is_err());
    }

    #[test]
    fn mapping_translates_paths_and_service_addresses() {
        let mut mapping = Mapping::default();
        mapping.add_path("/home/node", Path::new("/w/home"));
        mapping.add_path("/home/node/.openclaw", Path::new("/w/state"));
        mapping.add_address("litellm", 4000, 41234);
        assert_eq!(mapping.translate("/home/node/.openclaw/workspace"), "/w/state/workspace");
        assert_eq!(mapping.translate("/home/node"), "/w/home");
        assert_eq!(mapping.translate("/home/nodes"), "/home/nodes");
        assert_eq!(mapping.translate("http://litellm:4000/v1"), "http://127.0.0.1:41234/v1");
        assert_eq!(mapping.translate("http://litellm:40000/v1"), "http://litellm:40000/v1");
        assert_eq!(mapping.translate("Admin"), "Admin");
    }

    #[test]
    fn prepare_writes_files_and_interpolates_environment() {
        let rendered: RenderedStack = serde_json::from_value(serde_json::json!({
            "template": "t", "plan": "business",
            "service_limits": { "app": { "cpus": 1.0, "memory_mb": 512 }, "db": { "cpus": 0.5, "memory_mb": 256 } },
            "environment": [{ "name": "API_KEY", "value": "k$y", "secret": true }],
            "generated_variables": ["SERVICE_PASSWORD_64_TOKEN"],
            "compose": { "services": {
                "app": {
                    "image": "example/app:1.0",
                    "command": ["serve", "--config", "/etc/app.yaml"],
                    "environment": {
                        "HOME": "/home/app", "TOKEN": "${SERVICE_PASSWORD_64_TOKEN}",
                        "KEY": "${API_KEY}", "PRICE": "5$$", "DB": "http://db:5432/x",
                        "DATA": "/data/sub",
                    },
                    "volumes": ["data:/data", { "type": "bind", "source": "./config/app.yaml",
                        "target": "/etc/app.yaml", "read_only": true, "content": "a: ${NOT_INTERPOLATED}\n" }],
                    "tmpfs": ["/tmp:size=8m"],
                },
                "db": { "image": "example/db:2" },
            }},
        }))
        .expect("valid render");
        let work = tempfile::tempdir().expect("temp dir");
        let ports = BTreeMap::from([("db".to_owned(), (5432, 45432))]);
        let prepared = prepare(&rendered, work.path(), &ports).expect("prepares");
        let app = &prepared.services["app"];
        assert_eq!(app.environment["TOKEN"].len(), 64);
        assert_eq!(app.environment["TOKEN"], prepared.variables["SERVICE_PASSWORD_64_TOKEN"]);
        assert_eq!(app.environment["KEY"], "k$y");
        assert_eq!(app.environment["PRICE"], "5$");
        assert_eq!(app.environment["DB"], "http://127.0.0.1:45432/x");
        assert_eq!(
            app.environment["DATA"],
            work.path().join("volumes/data/sub").display().to_string()
        );
        assert_eq!(app.environment["HOME"], work.path().join("home/app").display().to_string());
        assert_eq!(app.memory_limit_mb, 512);
        let config = prepared.mapping.host_path("/etc/app.yaml").expect("file mapped");
        assert_eq!(std::fs::read_to_string(config).expect("written"), "a: ${NOT_INTERPOLATED}\n");
        assert!(prepared.tmpfs("app", "/tmp").expect("tmpfs").is_dir());
        assert_eq!(
            app.command.as_deref(),
            Some(&["serve".to_owned(), "--config".to_owned(), "/etc/app.yaml".to_owned()][..])
        );
    }
}

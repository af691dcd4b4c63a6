//! Parameter validation: every tenant value is checked against its declared type before it
//! goes anywhere, and canonicalised (`TRUE` -> `true`, ` 42` refused).
//!
//! What is refused everywhere: NUL and other control characters (newline and tab only in
//! multiline strings), values over the declared length, and Coolify's shared-variable
//! placeholders (`{{team.X}}`, `{{project.X}}`, `{{environment.X}}`, any `{{...}}` on one
//! line: Coolify 4.3.11 replaces them in compose values, `resolveSharedEnvironmentVariables`,
//! and in env-API values whatever `is_literal` says, `EnvironmentVariable::realValue`, so a
//! tenant could read the business's shared secrets). Secrets are printable ASCII without
//! spaces, because they travel through Coolify's `.env` file. A string may not begin with `$`:
//! Coolify's service parser turns an environment value that starts with `$` into a Coolify
//! variable of the stack (bootstrap/helpers/parsers.php, `serviceParser`).

use std::collections::BTreeMap;

use regex::Regex;

use crate::catalogue::Template;
use crate::manifest::{ParameterManifest, ParameterType};

/// The default longest value of a `string` or `secret` parameter.
pub const DEFAULT_MAX_LENGTH: usize = 256;
const URL_MAX_LENGTH: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParameterError {
    #[error("unknown parameter `{name}`\nhint: template `{template}` takes: {known}")]
    Unknown { template: String, name: String, known: String },
    #[error("parameter `{name}` is required\nhint: {help}")]
    Missing { name: String, help: String },
    #[error("parameter `{name}` {problem}\nhint: {help}")]
    Invalid { name: String, problem: String, help: String },
}

/// A parameter's checked value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterValue {
    pub value: String,
    pub secret: bool,
}

/// All of a render's parameters, checked, defaults applied.
pub type ResolvedParameters = BTreeMap<String, ParameterValue>;

fn shown_name(name: &str) -> String {
    name.chars().take(60).flat_map(char::escape_debug).collect()
}

/// Checks the given values against the template's parameters and applies defaults.
pub fn resolve(
    template: &Template,
    given: &BTreeMap<String, String>,
) -> Result<ResolvedParameters, ParameterError> {
    resolve_with(template, given, false)
}

/// [`resolve`], where `secrets_pending` lets required secret parameters be missing (they are
/// left out of the result).
pub fn resolve_with(
    template: &Template,
    given: &BTreeMap<String, String>,
    secrets_pending: bool,
) -> Result<ResolvedParameters, ParameterError> {
    let declared = &template.manifest.parameters;
    for name in given.keys() {
        if !declared.contains_key(name) {
            return Err(ParameterError::Unknown {
                template: template.name().to_owned(),
                name: shown_name(name),
                known: declared.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        }
    }
    let mut resolved = ResolvedParameters::new();
    for (name, parameter) in declared {
        let raw = match (given.get(name), &parameter.default) {
            (Some(value), _) => value,
            (None, Some(default)) => default,
            (None, None) if secrets_pending && parameter.kind == ParameterType::Secret => continue,
            (None, None) if parameter.required => {
                return Err(ParameterError::Missing {
                    name: name.clone(),
                    help: parameter.help.clone(),
                });
            }
            (None, None) => continue,
        };
        let value = check_value(name, parameter, template.patterns.get(name), raw)?;
        resolved.insert(
            name.clone(),
            ParameterValue { value, secret: parameter.kind == ParameterType::Secret },
        );
    }
    Ok(resolved)
}

/// Checks one value; returns it canonicalised.
pub(crate) fn check_value(
    name: &str,
    parameter: &ParameterManifest,
    pattern: Option<&Regex>,
    value: &str,
) -> Result<String, ParameterError> {
    let invalid = |problem: String| ParameterError::Invalid {
        name: name.to_owned(),
        problem,
        help: parameter.help.clone(),
    };
    let max_length = parameter.max_length.unwrap_or(match parameter.kind {
        ParameterType::Url => URL_MAX_LENGTH,
        _ => DEFAULT_MAX_LENGTH,
    });
    if value.len() > max_length {
        return Err(invalid(format!(
            "is {} bytes long; at most {max_length} are allowed",
            value.len()
        )));
    }
    if let Some(placeholder) = coolify_placeholder(value) {
        return Err(invalid(format!(
            "contains `{placeholder}`, which Coolify would replace with one of the platform's shared variables"
        )));
    }
    let multiline = parameter.kind == ParameterType::String && parameter.multiline;
    if let Some(control) =
        value.chars().find(|c| c.is_control() && !(multiline && (*c == '\n' || *c == '\t')))
    {
        return Err(invalid(format!("contains the control character {:?}", control)));
    }
    let canonical = match parameter.kind {
        ParameterType::String => {
            if value.trim_start().starts_with('$') {
                return Err(invalid(
                    "begins with `$`, which Coolify reads as a variable reference".into(),
                ));
            }
            value.to_owned()
        }
        ParameterType::Secret => {
            if value.is_empty() {
                return Err(invalid("is empty".into()));
            }
            if !value.bytes().all(|byte| byte.is_ascii_graphic()) {
                return Err(invalid("may only contain printable ASCII without spaces".into()));
            }
            value.to_owned()
        }
        ParameterType::Int => {
            let number: i64 =
                value.parse().map_err(|_| invalid("must be a whole number".into()))?;
            if parameter.min.is_some_and(|min| number < min)
                || parameter.max.is_some_and(|max| number > max)
            {
                return Err(invalid(format!(
                    "must be between {} and {}",
                    parameter.min.map_or("-inf".into(), |min| min.to_string()),
                    parameter.max.map_or("inf".into(), |max| max.to_string())
                )));
            }
            number.to_string()
        }
        ParameterType::Bool => match value.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => "true".to_owned(),
            "false" | "no" | "0" => "false".to_owned(),
            _ => return Err(invalid("must be true or false".into())),
        },
        ParameterType::Enum => {
            if !parameter.values.iter().any(|allowed| allowed == value) {
                return Err(invalid(format!("must be one of: {}", parameter.values.join(", "))));
            }
            value.to_owned()
        }
        ParameterType::Url => check_url(value).map_err(|problem| invalid(problem.to_owned()))?,
    };
    if let Some(pattern) = pattern
        && !pattern.is_match(&canonical)
    {
        return Err(invalid("does not have the expected form".into()));
    }
    Ok(canonical)
}

/// Checks one value of one of `template`'s parameters exactly as a render does; the canonical
/// value on success.
pub fn check_parameter(
    template: &Template,
    name: &str,
    value: &str,
) -> Result<String, ParameterError> {
    let Some(parameter) = template.manifest.parameters.get(name) else {
        return Err(ParameterError::Unknown {
            template: template.name().to_owned(),
            name: shown_name(name),
            known: template.manifest.parameters.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    };
    check_value(name, parameter, template.patterns.get(name), value)
}

/// What PocketBase's `config` hook (`pocketbase/pb_hooks/cfa/config.js`) checks, from the one
/// definition (the catalogue): per template, each non-secret parameter's type, longest value,
/// multiline flag, enum values, integer range and pattern. Secrets are absent, so a `config`
/// naming one is refused.
pub fn config_rules(catalogue: &crate::Catalogue) -> serde_json::Value {
    let mut templates = serde_json::Map::new();
    for template in catalogue.templates() {
        let mut parameters = serde_json::Map::new();
        for (name, parameter) in &template.manifest.parameters {
            let kind = match parameter.kind {
                ParameterType::Secret => continue,
                ParameterType::String => "string",
                ParameterType::Int => "int",
                ParameterType::Bool => "bool",
                ParameterType::Enum => "enum",
                ParameterType::Url => "url",
            };
            let max_length = parameter.max_length.unwrap_or(match parameter.kind {
                ParameterType::Url => URL_MAX_LENGTH,
                _ => DEFAULT_MAX_LENGTH,
            });
            parameters.insert(
                name.clone(),
                serde_json::json!({
                    "type": kind,
                    "max_length": max_length,
                    "multiline": parameter.kind == ParameterType::String && parameter.multiline,
                    "values": parameter.values,
                    "min": parameter.min,
                    "max": parameter.max,
                    "pattern": parameter.pattern,
                }),
            );
        }
        templates.insert(template.name().to_owned(), serde_json::Value::Object(parameters));
    }
    serde_json::Value::Object(templates)
}

/// Refuses a `url` parameter (given, or its default) whose origin (`scheme://host[:port]`) is
/// not one of `allowed` (each a URL or an origin; paths are ignored). The programs connect to
/// these URLs from inside the platform's network: without the allow-list a tenant could point
/// them at the cloud metadata address, loopback, private ranges or the Coolify host.
pub fn check_url_origins(
    template: &Template,
    given: &BTreeMap<String, String>,
    allowed: &[String],
) -> Result<(), ParameterError> {
    let allowed: Vec<String> = allowed
        .iter()
        .filter_map(|entry| url::Url::parse(entry).ok())
        .map(|url| url.origin().ascii_serialization())
        .filter(|origin| origin != "null")
        .collect();
    for (name, parameter) in &template.manifest.parameters {
        if parameter.kind != ParameterType::Url {
            continue;
        }
        let Some(value) = given.get(name).or(parameter.default.as_ref()) else { continue };
        let Ok(url) = url::Url::parse(value) else { continue };
        let origin = url.origin().ascii_serialization();
        if !allowed.contains(&origin) {
            let help = if allowed.is_empty() {
                "no Router origin is configured: the operator sets [platform] router_url or router_origins".to_owned()
            } else {
                format!("a URL on {}", allowed.join(" or "))
            };
            return Err(ParameterError::Invalid {
                name: name.clone(),
                problem: format!(
                    "points at {}, which is not one of the platform's Router origins",
                    origin.chars().take(100).collect::<String>()
                ),
                help,
            });
        }
    }
    Ok(())
}

/// The first match of Coolify's `/{{(.*?)}}/` (PCRE without `s`: not across a line break),
/// shortened for the error message.
pub fn coolify_placeholder(value: &str) -> Option<String> {
    value.lines().find_map(|line| {
        let start = line.find("{{")?;
        let end = line[start + 2..].find("}}")? + start + 4;
        Some(line[start..end].chars().take(60).flat_map(char::escape_debug).collect())
    })
}

fn check_url(value: &str) -> Result<String, &'static str> {
    let url = url::Url::parse(value).map_err(|_| "is not a valid URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("needs a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; pass the key as its own parameter");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment");
    }
    // Keep what the tenant wrote (trailing slash and all) unless parsing normalised it, so a
    // base URL like `https://router/v1` is not turned into `https://router/v1/`.
    let normalised = url.as_str();
    Ok(if normalised.trim_end_matches('/') == value.trim_end_matches('/') {
        value.to_owned()
    } else {
        normalised.to_owned()
    })
}

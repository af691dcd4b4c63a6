//! What a create or update does to the world: `urls` (`applyServiceUrls`, domain conflicts), compose errors as answers, and storing a parse.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::compose::{ComposeError, ParsedCompose};
use crate::state::{ContainerRecord, EnvRecord, StorageRecord, World, new_uuid, now_ms};

use super::helpers::{message, reply, validation};

/// `urls` items as `(name, url)`, validated for shape.
pub(super) fn parse_urls(
    body: &Map<String, Value>,
    errors: &mut Map<String, Value>,
) -> Option<Vec<(Option<String>, Option<String>)>> {
    match body.get("urls") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|item| {
                    (
                        item.get("name").and_then(Value::as_str).map(str::to_owned),
                        item.get("url").and_then(Value::as_str).map(str::to_owned),
                    )
                })
                .collect(),
        ),
        Some(_) => {
            errors.insert("urls".into(), json!(["The urls field must be an array."]));
            None
        }
    }
}

pub(super) fn url_host(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once(':').map_or(authority, |(host, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) { host } else { authority }
    });
    let valid = !host.is_empty()
        && host.chars().all(|character| {
            character.is_ascii_alphanumeric() || character == '.' || character == '-'
        });
    valid.then(|| host.to_ascii_lowercase())
}

pub(super) fn split_urls(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

pub(super) enum UrlFailure {
    Errors(Vec<String>),
    Conflicts(Vec<Value>),
}

/// `applyServiceUrls`.
pub(super) fn apply_urls(
    world: &mut World,
    service_uuid: &str,
    urls: &[(Option<String>, Option<String>)],
    force: bool,
) -> Result<(), UrlFailure> {
    let mut errors = Vec::new();
    let all: Vec<String> =
        urls.iter().filter_map(|(_, url)| url.as_deref()).flat_map(split_urls).collect();
    for url in &all {
        if url_host(url).is_none() {
            errors.push(format!("Invalid URL: {url}"));
        }
    }
    let mut seen = std::collections::HashSet::new();
    let duplicates: Vec<&String> = all.iter().filter(|url| !seen.insert(url.as_str())).collect();
    if !duplicates.is_empty() && !force {
        let list: Vec<&str> = duplicates.iter().map(|url| url.as_str()).collect();
        errors.push(format!(
            "The current request contains conflicting URLs across containers: {}. Use force_domain_override=true to proceed.",
            list.join(", ")
        ));
    }
    if !errors.is_empty() {
        return Err(UrlFailure::Errors(errors));
    }
    let mut conflicts = Vec::new();
    for (name, url) in urls {
        let Some(name) = name else {
            errors.push("Service container name is required to apply URLs.".to_owned());
            continue;
        };
        let Some(service) = world.services.get(service_uuid) else { continue };
        let Some(container_uuid) = service
            .containers
            .iter()
            .find(|container| !container.is_database && &container.name == name)
            .map(|container| container.uuid.clone())
        else {
            errors.push(format!("Service container with '{name}' not found."));
            continue;
        };
        let list = url.as_deref().map(split_urls).unwrap_or_default();
        if !list.is_empty() && !force {
            let mut found = Vec::new();
            for url in &list {
                let Some(host) = url_host(url) else { continue };
                for other in world.services.values() {
                    for container in &other.containers {
                        if container.uuid == container_uuid {
                            continue;
                        }
                        let used = container.fqdn.as_deref().map(split_urls).unwrap_or_default();
                        if used.iter().any(|used| url_host(used).as_deref() == Some(host.as_str()))
                        {
                            found.push(json!({
                                "domain": host,
                                "resource_name": other.name,
                                "resource_uuid": other.uuid,
                                "resource_type": "service",
                                "message": format!("Domain {host} is already in use by service '{}'", other.name),
                            }));
                        }
                    }
                }
            }
            if !found.is_empty() {
                conflicts.extend(found);
                continue;
            }
        }
        if let Some(service) = world.services.get_mut(service_uuid)
            && let Some(container) =
                service.containers.iter_mut().find(|container| container.uuid == container_uuid)
        {
            container.fqdn = if list.is_empty() { None } else { Some(list.join(",")) };
        }
    }
    if !errors.is_empty() {
        return Err(UrlFailure::Errors(errors));
    }
    if !conflicts.is_empty() {
        return Err(UrlFailure::Conflicts(conflicts));
    }
    Ok(())
}

pub(super) fn url_failure_response(failure: UrlFailure) -> Response {
    match failure {
        UrlFailure::Errors(errors) => validation(json!(errors)),
        UrlFailure::Conflicts(conflicts) => reply(
            StatusCode::CONFLICT,
            json!({
                "message": "Domain conflicts detected. Use force_domain_override=true to proceed.",
                "conflicts": conflicts,
                "warning": "Using the same domain for multiple resources can cause routing conflicts and unpredictable behavior.",
            }),
        ),
    }
}

pub(super) fn compose_failure(error: ComposeError) -> Response {
    match error {
        ComposeError::NotBase64 => validation(
            json!({ "docker_compose_raw": "The docker_compose_raw should be base64 encoded." }),
        ),
        // Coolify's `Yaml::parse` sits outside try/catch.
        ComposeError::InvalidYaml(_) => message(StatusCode::INTERNAL_SERVER_ERROR, "Server Error"),
        ComposeError::Rejected(reason) => validation(json!({ "docker_compose_raw": reason })),
    }
}

/// Stores a parse: containers keep their uuid by name, envs are `firstOrCreate` (declared URL
/// keys refreshed), storages keep their uuid by path.
pub(super) fn apply_compose(world: &mut World, service_uuid: &str, parsed: ParsedCompose) {
    let now = now_ms();
    let mut ids: Vec<u64> = (0..parsed.containers.len()
        + parsed.envs.len()
        + parsed.volumes.len()
        + parsed.files.len())
        .map(|_| world.next_id())
        .collect();
    let Some(service) = world.services.get_mut(service_uuid) else { return };
    let mut containers = Vec::new();
    for parsed_container in parsed.containers {
        let existing =
            service.containers.iter().find(|container| container.name == parsed_container.name);
        containers.push(ContainerRecord {
            id: existing.map_or_else(|| ids.pop().unwrap_or_default(), |container| container.id),
            uuid: existing.map_or_else(new_uuid, |container| container.uuid.clone()),
            fqdn: existing.and_then(|container| container.fqdn.clone()).or(parsed_container.fqdn),
            name: parsed_container.name,
            image: parsed_container.image,
            is_database: parsed_container.is_database,
            has_healthcheck: parsed_container.has_healthcheck,
            excluded: parsed_container.excluded,
            status: existing.and_then(|container| container.status.clone()),
        });
    }
    service.containers = containers;
    for env in parsed.envs {
        match service.envs.get_mut(&env.key) {
            Some(existing) if env.refresh => {
                existing.value = Some(env.value);
                existing.updated_at = now;
            }
            Some(_) => {}
            None => {
                service.envs.insert(
                    env.key.clone(),
                    EnvRecord {
                        id: ids.pop().unwrap_or_default(),
                        uuid: new_uuid(),
                        key: env.key,
                        value: Some(env.value),
                        is_required: env.is_required,
                        is_literal: false,
                        is_multiline: false,
                        is_shown_once: false,
                        comment: None,
                        created_at: now,
                        updated_at: now,
                    },
                );
            }
        }
    }
    let container_uuid = |name: &str| {
        service
            .containers
            .iter()
            .find(|container| container.name == name)
            .map(|container| container.uuid.clone())
            .unwrap_or_default()
    };
    let mut storages = Vec::new();
    for volume in parsed.volumes {
        let existing = service
            .storages
            .iter()
            .find(|storage| storage.volume_name.as_deref() == Some(&volume.name));
        storages.push(StorageRecord {
            id: existing.map_or_else(|| ids.pop().unwrap_or_default(), |storage| storage.id),
            uuid: existing.map_or_else(new_uuid, |storage| storage.uuid.clone()),
            container_uuid: container_uuid(&volume.container),
            mount_path: volume.mount_path,
            volume_name: Some(volume.name),
            fs_path: None,
            is_directory: false,
            content: None,
            backup: existing.and_then(|storage| storage.backup.clone()),
            created_at: existing.map_or(now, |storage| storage.created_at),
        });
    }
    for file in parsed.files {
        // serviceParser (bootstrap/helpers/parsers.php, 4.3.11): `fileStorages()->whereMountPath`
        // of the sub-resource; a found storage keeps its `content` and `is_directory`.
        let file_container = container_uuid(&file.container);
        let existing = service.storages.iter().find(|storage| {
            storage.fs_path.is_some()
                && storage.mount_path == file.mount_path
                && storage.container_uuid == file_container
        });
        storages.push(StorageRecord {
            id: existing.map_or_else(|| ids.pop().unwrap_or_default(), |storage| storage.id),
            uuid: existing.map_or_else(new_uuid, |storage| storage.uuid.clone()),
            container_uuid: container_uuid(&file.container),
            mount_path: file.mount_path,
            volume_name: None,
            fs_path: Some(file.fs_path),
            is_directory: existing.map_or(file.is_directory, |storage| storage.is_directory),
            // Write-once: existing content wins (notes §4.5).
            content: match existing {
                Some(storage) => storage.content.clone(),
                None => file.content,
            },
            backup: existing.and_then(|storage| storage.backup.clone()),
            created_at: existing.map_or(now, |storage| storage.created_at),
        });
    }
    service.storages = storages;
    service.raw = parsed.raw;
    service.rendered = parsed.rendered;
    service.updated_at = now;
}

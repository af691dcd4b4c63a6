//! Storages and their volume backup schedules (`ServicesController::storages`, `VolumeBackupsController`).

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use crate::config::Ability;
use crate::handle::lock;
use crate::state::{BackupRecord, StorageRecord, new_uuid, now_ms, timestamp};

use super::chain::Caller;
use super::helpers::{json_body, message, optional_bool, optional_string, reply, validation};
use super::services::find_service;
use super::{ApiResult, AppState};

// ------------------------------------------------------------------ storages and backups

pub(super) async fn list_storages(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
) -> ApiResult {
    caller.require(Ability::Read)?;
    let world = lock(&shared.world);
    let service = find_service(&world, &uuid)?;
    let mut persistent = Vec::new();
    let mut files = Vec::new();
    for storage in &service.storages {
        let container =
            service.containers.iter().find(|container| container.uuid == storage.container_uuid);
        let resource_type = if container.is_some_and(|container| container.is_database) {
            "database"
        } else {
            "application"
        };
        let resource_id = container.map_or(0, |container| container.id);
        match (&storage.volume_name, &storage.fs_path) {
            (Some(name), _) => persistent.push(json!({
                "id": storage.id,
                "uuid": storage.uuid,
                "name": name,
                "mount_path": storage.mount_path,
                "host_path": null,
                "container_id": null,
                "resource_id": resource_id,
                "resource_type": resource_type,
                "resource_uuid": storage.container_uuid,
                "is_preview_suffix_enabled": true,
                "created_at": timestamp(storage.created_at),
                "updated_at": timestamp(storage.created_at),
            })),
            (None, Some(fs_path)) => {
                let mut file = json!({
                    "id": storage.id,
                    "uuid": storage.uuid,
                    "fs_path": fs_path,
                    "mount_path": storage.mount_path,
                    "is_directory": storage.is_directory,
                    "is_host_file": false,
                    "is_based_on_git": false,
                    "chown": null,
                    "chmod": null,
                    "resource_id": resource_id,
                    "resource_type": resource_type,
                    "resource_uuid": storage.container_uuid,
                    "is_preview_suffix_enabled": true,
                    "created_at": timestamp(storage.created_at),
                    "updated_at": timestamp(storage.created_at),
                });
                if caller.sensitive
                    && let Some(object) = file.as_object_mut()
                {
                    object.insert("content".into(), json!(storage.content));
                }
                files.push(file);
            }
            (None, None) => {}
        }
    }
    Ok(reply(StatusCode::OK, json!({ "persistent_storages": persistent, "file_storages": files })))
}

/// `ScheduledVolumeBackup::DEFAULT_TIMEOUT` and the column's default since 4.3.9.
const DEFAULT_TIMEOUT: i64 = 36_000;

pub(super) const BACKUP_FIELDS: &[&str] = &[
    "frequency",
    "enabled",
    "save_s3",
    "disable_local_backup",
    "stop_during_backup",
    "s3_storage_uuid",
    "retention_amount_locally",
    "retention_days_locally",
    "retention_max_storage_locally",
    "retention_amount_s3",
    "retention_days_s3",
    "retention_max_storage_s3",
    "timeout",
];

pub(super) fn valid_frequency(frequency: &str) -> bool {
    let human = [
        "every_minute",
        "hourly",
        "daily",
        "weekly",
        "monthly",
        "yearly",
        "@hourly",
        "@daily",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
    ];
    if human.contains(&frequency) {
        return true;
    }
    let fields: Vec<&str> = frequency.split_whitespace().collect();
    fields.len() == 5
        && fields.iter().all(|field| {
            field.chars().all(|character| character.is_ascii_digit() || "*/,-".contains(character))
        })
}

pub(super) fn backup_json(backup: &BackupRecord, storage: &StorageRecord, created: bool) -> Value {
    json!({
        "uuid": backup.uuid,
        "message": if created { "Storage backup schedule created." } else { "Storage backup schedule updated." },
        "storage_uuid": storage.uuid,
        "storage_type": if storage.volume_name.is_some() { "persistent" } else { "directory" },
        "frequency": backup.frequency,
        "enabled": backup.enabled,
        "save_s3": backup.save_s3,
        "disable_local_backup": backup.disable_local_backup,
        "stop_during_backup": backup.stop_during_backup,
        "s3_storage_uuid": backup.s3_storage_uuid,
        "retention_amount_locally": backup.retention_amount_locally,
        "retention_days_locally": backup.retention_days_locally,
        "retention_max_storage_locally": backup.retention_max_storage_locally,
        "retention_amount_s3": backup.retention_amount_s3,
        "retention_days_s3": backup.retention_days_s3,
        "retention_max_storage_s3": backup.retention_max_storage_s3,
        "timeout": backup.timeout,
    })
}

pub(super) fn integer_field(
    body: &Map<String, Value>,
    field: &str,
    default: i64,
    range: (i64, i64),
    errors: &mut Map<String, Value>,
) -> i64 {
    match body.get(field) {
        None => default,
        Some(value) => match value.as_i64() {
            Some(number) if number >= range.0 && number <= range.1 => number,
            Some(_) => {
                errors.insert(
                    field.into(),
                    json!([format!(
                        "The {} field must be between {} and {}.",
                        field.replace('_', " "),
                        range.0,
                        range.1
                    )]),
                );
                default
            }
            None => {
                errors.insert(
                    field.into(),
                    json!([format!("The {} field must be an integer.", field.replace('_', " "))]),
                );
                default
            }
        },
    }
}

pub(super) async fn upsert_backup(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((uuid, storage_uuid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    caller.require(Ability::Write)?;
    let body = json_body(&headers, &body)?;
    let mut world = lock(&shared.world);
    let service = find_service(&world, &uuid)?;
    let Some(storage) = service.storages.iter().find(|storage| storage.uuid == storage_uuid) else {
        return Err(message(StatusCode::NOT_FOUND, "Storage not found."));
    };
    let mut errors = Map::new();
    let frequency = optional_string(&body, "frequency", &mut errors);
    match &frequency {
        None if !errors.contains_key("frequency") => {
            errors.insert("frequency".into(), json!(["The frequency field is required."]));
        }
        Some(frequency) if !valid_frequency(frequency) => {
            errors.insert(
                "frequency".into(),
                json!(["The frequency must be a valid cron or human expression."]),
            );
        }
        _ => {}
    }
    let enabled = optional_bool(&body, "enabled", &mut errors).unwrap_or(true);
    let save_s3 = optional_bool(&body, "save_s3", &mut errors).unwrap_or(false);
    let disable_local = optional_bool(&body, "disable_local_backup", &mut errors).unwrap_or(false);
    let stop_during = optional_bool(&body, "stop_during_backup", &mut errors).unwrap_or(false);
    let s3_uuid = optional_string(&body, "s3_storage_uuid", &mut errors);
    let retention_amount_locally =
        integer_field(&body, "retention_amount_locally", 7, (0, 10_000), &mut errors);
    let retention_days_locally =
        integer_field(&body, "retention_days_locally", 0, (0, 2_147_483_647), &mut errors);
    let retention_amount_s3 =
        integer_field(&body, "retention_amount_s3", 7, (0, 10_000), &mut errors);
    let retention_days_s3 =
        integer_field(&body, "retention_days_s3", 0, (0, 2_147_483_647), &mut errors);
    let timeout = integer_field(&body, "timeout", DEFAULT_TIMEOUT, (60, 36_000), &mut errors);
    for key in body.keys() {
        if !BACKUP_FIELDS.contains(&key.as_str()) {
            errors.insert(key.clone(), json!(["This field is not allowed."]));
        }
    }
    if disable_local && !save_s3 {
        errors.insert(
            "disable_local_backup".into(),
            json!(["Local backups can only be disabled when S3 backups are enabled."]),
        );
    }
    // validateUpsertRequest: the team's storage with `is_usable`.
    let usable = world.s3_storages.iter().any(|candidate| {
        candidate.is_usable && Some(candidate.uuid.as_str()) == s3_uuid.as_deref()
    });
    if save_s3 && !usable {
        errors.insert(
            "s3_storage_uuid".into(),
            json!(["Select a usable S3 storage owned by your team."]),
        );
    }
    if storage.volume_name.is_none() && !storage.is_directory {
        errors.insert(
            "storage_uuid".into(),
            json!(["Only directory file storages can be backed up."]),
        );
    }
    if !errors.is_empty() {
        return Err(validation(Value::Object(errors)));
    }
    let float_field = |field: &str| body.get(field).and_then(Value::as_f64).unwrap_or(0.0);
    let Some(storage) = world.services.get_mut(&uuid).and_then(|service| {
        service.storages.iter_mut().find(|storage| storage.uuid == storage_uuid)
    }) else {
        return Err(message(StatusCode::NOT_FOUND, "Storage not found."));
    };
    let created = storage.backup.is_none();
    let backup_uuid = storage.backup.as_ref().map_or_else(new_uuid, |backup| backup.uuid.clone());
    // The column's default (migration 2026_08_15 increase_default_volume_backup_timeout).
    let previous_timeout = storage.backup.as_ref().map_or(DEFAULT_TIMEOUT, |backup| backup.timeout);
    let backup = BackupRecord {
        uuid: backup_uuid,
        frequency: frequency.unwrap_or_default(),
        enabled,
        save_s3,
        s3_storage_uuid: if save_s3 { s3_uuid } else { None },
        disable_local_backup: save_s3 && disable_local,
        stop_during_backup: stop_during,
        retention_amount_locally,
        retention_days_locally,
        retention_max_storage_locally: float_field("retention_max_storage_locally"),
        retention_amount_s3,
        retention_days_s3,
        retention_max_storage_s3: float_field("retention_max_storage_s3"),
        timeout: if body.contains_key("timeout") { timeout } else { previous_timeout },
    };
    storage.backup = Some(backup.clone());
    let mut answer = backup_json(&backup, storage, created);
    // persistSchedule (VolumeBackupsController, since 4.3.9) sets `timeout` only when sent, and
    // `updateOrCreate` does not reload the row: a created schedule answers `"timeout": null`.
    if created
        && shared.config.backup_timeout_null_on_create
        && !body.contains_key("timeout")
        && let Some(object) = answer.as_object_mut()
    {
        object.insert("timeout".into(), Value::Null);
    }
    Ok(reply(if created { StatusCode::CREATED } else { StatusCode::OK }, answer))
}

pub(super) async fn delete_backup(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((uuid, storage_uuid)): Path<(String, String)>,
) -> ApiResult {
    caller.require(Ability::Write)?;
    let uploaded = {
        let mut world = lock(&shared.world);
        let now = now_ms();
        let running = world.backup_executions.iter().any(|execution| {
            execution.storage_uuid == storage_uuid && execution.finished_at_ms > now
        });
        let Some(service) = world.services.get_mut(&uuid) else {
            return Err(message(StatusCode::NOT_FOUND, "Resource not found."));
        };
        let Some(storage) =
            service.storages.iter_mut().find(|storage| storage.uuid == storage_uuid)
        else {
            return Err(message(StatusCode::NOT_FOUND, "Storage not found."));
        };
        if storage.backup.is_none() {
            return Err(message(StatusCode::NOT_FOUND, "Storage backup schedule not found."));
        }
        if running {
            return Err(message(
                StatusCode::CONFLICT,
                "A backup is still running for this storage.",
            ));
        }
        storage.backup = None;
        let uploaded = crate::jobs::uploaded_archives(&world, |execution| {
            execution.storage_uuid == storage_uuid
        });
        world.backup_executions.retain(|execution| execution.storage_uuid != storage_uuid);
        uploaded
    };
    for (s3, keys) in uploaded {
        s3.delete(&keys).await;
    }
    Ok(message(StatusCode::OK, "Storage backup schedule and archives deleted."))
}

/// `VolumeBackupsController::run`: queues `VolumeBackupJob` (crons queue).
pub(super) async fn run_backup(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((uuid, storage_uuid)): Path<(String, String)>,
) -> ApiResult {
    caller.require(Ability::Write)?;
    let world = lock(&shared.world);
    let service = find_service(&world, &uuid)?;
    let Some(storage) = service.storages.iter().find(|storage| storage.uuid == storage_uuid) else {
        return Err(message(StatusCode::NOT_FOUND, "Storage not found."));
    };
    let Some(backup) = storage.backup.clone() else {
        return Err(message(StatusCode::NOT_FOUND, "Storage backup schedule not found."));
    };
    shared.jobs.dispatch(crate::jobs::Job::VolumeBackup { service_uuid: uuid, storage_uuid });
    Ok(reply(StatusCode::OK, json!({ "message": "Storage backup queued.", "uuid": backup.uuid })))
}

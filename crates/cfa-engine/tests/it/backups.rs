//! Backups that are proven, on the real PocketBase, the sandbox and a real S3 API (moto): the
//! provision records a stateful stack's volumes; `backup run` makes an archive the bucket holds
//! and `backup list` shows it; the monitor's backup check opens `backup_shrunk`, then
//! `backup_empty`, then `backup_missing` from what the bucket holds, resolves each once, looks
//! up the volumes of a stack recorded without them, and a bucket that does not answer is one
//! platform `backup_failed`. A restore needs the server's Docker engine and is refused without
//! one (the docker suite restores for real).

use std::time::Duration;

use bytes::Bytes;
use cfa_backup_store::layout::coolify_volume_archive_key;
use cfa_core::PlanTier;
use cfa_engine::{Engine, EngineError, RestoreChoice};
use cfa_pocketbase::StackPatch;
use serde_json::Value;

use crate::harness::{World, bot_request, openclaw_request};

/// An engine whose monitor checks the bucket on every pass.
fn checking_every_pass(world: &World) -> Engine {
    let mut settings = world.settings.clone();
    settings.monitor.backup_check_interval = Duration::ZERO;
    world.engine_with(settings)
}

fn volumes_of(record: &cfa_pocketbase::AgentStack) -> Vec<(String, String)> {
    record.resource_limits.as_ref().unwrap()["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|volume| {
            let text = |key: &str| volume[key].as_str().unwrap().to_owned();
            (text("name"), text("storage_uuid"))
        })
        .collect()
}

fn open_kinds(report: &cfa_engine::MonitorReport) -> Vec<String> {
    report.opened.iter().map(|key| key.rsplit('/').next().unwrap_or_default().to_owned()).collect()
}

#[tokio::test]
async fn the_bucket_proves_each_stacks_backups_and_the_monitor_alerts_on_what_it_lacks() {
    let world = World::start().await;
    world.tenant("vault", PlanTier::Business, 3).await;
    let engine = checking_every_pass(&world);
    engine.provision(&openclaw_request("vault", "agent")).await.unwrap();
    let record = engine.stack("vault", "agent").await.unwrap();
    let volumes = volumes_of(&record);
    assert!(!volumes.is_empty(), "the provision records the volumes: {:?}", record.resource_limits);
    assert!(record.resource_limits.as_ref().unwrap()["backups_due_since_ms"].is_i64());
    let (volume, storage_uuid) = volumes[0].clone();

    // Nothing is due yet: the first pass lists the bucket and opens nothing.
    let first = engine.monitor_pass().await.unwrap();
    assert!(first.opened.is_empty(), "{first:?}");
    assert_eq!(first.coolify_calls, 1, "the volumes come from the record");

    // A backup now: the archive is in the bucket and listed.
    let made = engine.backup_run("vault", "agent").await.unwrap();
    assert_eq!(made.len(), volumes.len());
    assert!(made.iter().all(|volume| volume.archives[0].size_bytes > 0), "{made:?}");
    let listed = engine.backup_list("vault", "agent").await.unwrap();
    let ours = listed.volumes.iter().find(|listed| listed.volume == volume).unwrap();
    assert_eq!(ours.archives.len(), 1, "{listed:?}");
    assert_eq!(ours.archives[0].key, made[0].archives[0].key);
    let audit = world.pb.audit_list(&cfa_pocketbase::AuditQuery::default()).await.unwrap();
    assert!(audit.iter().any(|entry| entry.action == "stack.backup"), "the run is audited");

    // Coolify's next runs, as the bucket gets them: a big one, then one under half its size.
    let store = world.moto.store().unwrap();
    let now = jiff::Timestamp::now().as_second().cast_unsigned();
    let key =
        |seconds: u64| coolify_volume_archive_key("Root Team", 0, &storage_uuid, &volume, seconds);
    store.put(&key(now + 10), Bytes::from(vec![7u8; 10_000])).await.unwrap();
    store.put(&key(now + 20), Bytes::from(vec![7u8; 4_000])).await.unwrap();
    let shrunk = engine.monitor_pass().await.unwrap();
    assert_eq!(open_kinds(&shrunk), ["backup_shrunk"], "{shrunk:?}");
    assert_eq!(engine.monitor_pass().await.unwrap().writes(), 0, "nothing new, nothing written");

    // An empty one after it: empty opens, shrunk resolves (an empty archive is not "smaller").
    store.put(&key(now + 30), Bytes::new()).await.unwrap();
    let empty = engine.monitor_pass().await.unwrap();
    assert_eq!(open_kinds(&empty), ["backup_empty"], "{empty:?}");
    assert_eq!(empty.resolved.len(), 1, "{empty:?}");
    let incidents = world.pb.incident_list(true, 10).await.unwrap();
    assert_eq!(incidents.len(), 1);
    let detail = incidents[0].detail.clone().unwrap_or_default();
    assert!(detail.starts_with(&format!("volume {volume}: ")), "{detail}");

    // A good one resolves it; a day and its grace later with nothing new, the backup is missing.
    store.put(&key(now + 40), Bytes::from(vec![7u8; 9_000])).await.unwrap();
    let good = engine.monitor_pass().await.unwrap();
    assert!(good.opened.is_empty() && good.resolved.len() == 1, "{good:?}");
    // Later, nothing newer than a day and its grace (here a second and none) is missing.
    let mut late = world.settings.clone();
    late.monitor.backup_check_interval = Duration::ZERO;
    late.monitor.backups.period = Duration::from_secs(1);
    late.monitor.backups.grace = Duration::ZERO;
    let late = world.engine_with(late);
    for seconds in [now + 10, now + 20, now + 30, now + 40] {
        store.delete(&key(seconds)).await.unwrap();
    }
    for made in &made {
        store.delete(&made.archives[0].key).await.unwrap();
    }
    store.put(&key(now - 100), Bytes::from(vec![7u8; 9_000])).await.unwrap();
    let missing = late.monitor_pass().await.unwrap();
    assert_eq!(open_kinds(&missing), ["backup_missing"], "{missing:?}");
}

#[tokio::test]
async fn a_stack_recorded_without_volumes_is_looked_up_and_a_silent_bucket_is_one_incident() {
    let world = World::start().await;
    world.tenant("older", PlanTier::Business, 3).await;
    let engine = checking_every_pass(&world);
    engine.provision(&openclaw_request("older", "agent")).await.unwrap();
    engine.provision(&bot_request("older", "bot")).await.unwrap();
    // As a record written before volumes were recorded.
    let record = engine.stack("older", "agent").await.unwrap();
    let mut limits: Value = record.resource_limits.clone().unwrap();
    let recorded_volumes = limits["volumes"].clone();
    limits.as_object_mut().unwrap().remove("volumes");
    limits.as_object_mut().unwrap().remove("backups_due_since_ms");
    let patch = StackPatch { resource_limits: Some(limits), ..StackPatch::default() };
    world.pb.stack_update(&record.id, &patch).await.unwrap();

    let bot = engine.stack("older", "bot").await.unwrap();
    // The bot keeps no data (no disk reserved): no volumes to record or look up.
    assert_eq!(bot.resource_limits.as_ref().unwrap()["volumes"], Value::Null, "{bot:?}");
    let pass = engine.monitor_pass().await.unwrap();
    assert!(pass.opened.is_empty(), "{pass:?}");
    assert_eq!(pass.coolify_calls, 1 + 1, "one list of services, one lookup of the volumes");
    let record = engine.stack("older", "agent").await.unwrap();
    assert_eq!(record.resource_limits.as_ref().unwrap()["volumes"], recorded_volumes);
    let again = engine.monitor_pass().await.unwrap();
    assert_eq!(again.coolify_calls, 1, "recorded now: {again:?}");

    // The bucket goes away: one platform incident, not one per stack; back, it resolves.
    let mut settings = world.settings.clone();
    settings.monitor.backup_check_interval = Duration::ZERO;
    let mut unreachable = world.moto.settings().clone();
    unreachable.endpoint = "http://127.0.0.1:9".to_owned();
    let backups = settings.final_backups.as_mut().unwrap();
    backups.store = cfa_backup_store::BackupStore::connect(&unreachable).unwrap();
    let blind = world.engine_with(settings);
    let down = blind.monitor_pass().await.unwrap();
    assert_eq!(down.opened, ["platform/backup_failed"], "{down:?}");
    let up = engine.monitor_pass().await.unwrap();
    assert_eq!(up.resolved, ["platform/backup_failed"], "{up:?}");
}

#[tokio::test]
async fn backups_are_refused_where_they_cannot_be_made_or_restored() {
    let world = World::start().await;
    world.tenant("free", PlanTier::Starter, 2).await;
    world.tenant("paid", PlanTier::Business, 2).await;
    let engine = world.engine();
    engine.provision(&bot_request("free", "agent")).await.unwrap();
    engine.provision(&openclaw_request("paid", "agent")).await.unwrap();

    let error = engine.backup_run("free", "agent").await.unwrap_err();
    assert!(matches!(error, EngineError::BackupRefused { .. }), "{error}");
    assert!(error.to_string().contains("plan `starter` has no volume backups"), "{error}");

    // No Docker engine configured for the server: a restore cannot be done, and nothing stops.
    engine.backup_run("paid", "agent").await.unwrap();
    let error = engine.backup_restore("paid", "agent", RestoreChoice::default()).await.unwrap_err();
    assert!(matches!(error, EngineError::BackupRefused { .. }), "{error}");
    assert!(error.to_string().contains("docker_host"), "{error}");
    let record = engine.stack("paid", "agent").await.unwrap();
    assert_eq!(record.status, cfa_core::StackStatus::Running, "nothing was stopped");

    let error = engine.backup_list("paid", "nothing").await.unwrap_err();
    assert!(matches!(error, EngineError::UnknownStack { .. }), "{error}");
}

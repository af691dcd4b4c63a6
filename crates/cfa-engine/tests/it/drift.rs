//! Drift and orphans from one list of services and one of records: a service with our marker
//! that no record claims is reported, recorded as seen, and removed only after the grace
//! period; a template that renders differently is reported for `cfa upgrade`, never applied
//! by the controller; containers running under a `stopped` record are the controller's.

use std::time::Duration;

use cfa_coolify::SecretValue;
use cfa_coolify::types::EnvironmentVariableUpsert;
use cfa_core::{PlanTier, StackStatus};
use cfa_engine::{DriftKind, DriftOptions, Healing};
use cfa_pocketbase::StackPatch;
use serde_json::json;

use crate::harness::{World, bot_request};

#[tokio::test]
async fn orphans_are_reported_then_removed_after_the_grace_period_and_drift_is_named() {
    let world = World::start().await;
    world.tenant("drifty", PlanTier::Team, 3).await;
    let engine = world.engine();
    let ghost = engine.provision(&bot_request("drifty", "ghost")).await.unwrap();
    let ghost_uuid = ghost.service_uuid.clone().unwrap();
    engine.provision(&bot_request("drifty", "kept")).await.unwrap();

    // Someone removes the ghost's record by hand (first unlinking it, as the hook demands):
    // its service carries our marker and no record claims it.
    let record = engine.stack("drifty", "ghost").await.unwrap();
    let unlink = StackPatch { coolify_service_uuid: Some(String::new()), ..StackPatch::default() };
    world.pb.stack_update(&record.id, &unlink).await.unwrap();
    world.pb.stack_delete(&record.id).await.unwrap();

    let report = engine.drift(DriftOptions::default()).await.unwrap();
    assert_eq!(report.orphans.len(), 1, "{report:?}");
    assert_eq!(report.orphans[0].service_uuid, ghost_uuid);
    assert_eq!(
        (report.orphans[0].tenant.as_str(), report.orphans[0].stack.as_str()),
        ("drifty", "ghost")
    );
    assert_eq!(report.orphans[0].first_seen, None);
    assert!(report.drift.is_empty(), "{:?}", report.drift);

    // A controller pass sees it first; within the grace period nothing is removed.
    let mut backoffs = cfa_engine::Backoffs::new(cfa_core::Backoff::CONTROLLER);
    let pass = engine.reconcile_pass(2, &mut backoffs).await.unwrap();
    assert_eq!((pass.orphans, pass.orphans_removed.len()), (1, 0));
    let seen =
        engine.drift(DriftOptions::default()).await.unwrap().orphans[0].first_seen.expect("seen");
    engine.reconcile_pass(2, &mut backoffs).await.unwrap();
    assert!(world.coolify.get_service_by_uuid(&ghost_uuid).await.is_ok(), "kept in its grace");

    // Past the grace period: removed, audited; the record's stack is untouched.
    let mut settings = world.settings.clone();
    settings.orphan_grace = Duration::ZERO;
    let removed = world
        .engine_with(settings)
        .drift(DriftOptions { remove_orphans: true, ..DriftOptions::default() })
        .await
        .unwrap();
    assert_eq!(removed.removed, vec![ghost_uuid.clone()]);
    assert_eq!(removed.orphans[0].first_seen, Some(seen), "the first sighting counts");
    // Coolify deletes in a queued job: gone shortly after.
    let mut gone = false;
    for _ in 0..100 {
        if world
            .coolify
            .get_service_by_uuid(&ghost_uuid)
            .await
            .is_err_and(|error| error.is_not_found())
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the orphan's service is deleted");
    assert_eq!(engine.stack("drifty", "kept").await.unwrap().status, StackStatus::Running);
    let audit = world.pb.audit_list(&cfa_pocketbase::AuditQuery::default()).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|entry| entry.action == "coolify.orphan_removed"
                && entry.after["volumes"] == "kept")
    );

    // Drift of a stack that has a record: deployed with another compose (a template change),
    // and suspended on the record while its containers run.
    let kept = engine.stack("drifty", "kept").await.unwrap();
    let mut limits = kept.resource_limits.clone().unwrap();
    limits["compose_sha256"] = json!("0".repeat(64));
    let older = StackPatch {
        resource_limits: Some(limits),
        status: Some(StackStatus::Stopped),
        ..StackPatch::default()
    };
    world.pb.stack_update(&kept.id, &older).await.unwrap();
    let report = engine.drift(DriftOptions::default()).await.unwrap();
    let kinds: Vec<(DriftKind, Healing)> =
        report.drift.iter().map(|drift| (drift.kind, drift.healing)).collect();
    assert!(kinds.contains(&(DriftKind::TemplateChanged, Healing::Upgrade)), "{kinds:?}");
    assert!(kinds.contains(&(DriftKind::RunsWhileStopped, Healing::Controller)), "{kinds:?}");
    // The controller stops the containers but never applies the template.
    engine.reconcile_pass(2, &mut backoffs).await.unwrap();
    let report = engine.drift(DriftOptions::default()).await.unwrap();
    let kinds: Vec<DriftKind> = report.drift.iter().map(|drift| drift.kind).collect();
    assert_eq!(kinds, vec![DriftKind::TemplateChanged], "{report:?}");
}

/// With `environment`, a required secret emptied in Coolify and a variable added there by hand
/// are reported by name, for the operator; their values never appear in the report.
#[tokio::test]
async fn environment_drift_names_a_lost_secret_and_a_foreign_variable() {
    let world = World::start().await;
    world.tenant("envy", PlanTier::Team, 1).await;
    let engine = world.engine();
    let outcome = engine.provision(&bot_request("envy", "bot")).await.unwrap();
    let service_uuid = outcome.service_uuid.unwrap();
    let environment = DriftOptions { environment: true, ..DriftOptions::default() };
    assert!(engine.drift(environment).await.unwrap().drift.is_empty(), "in step after a provision");

    let by_hand = [
        EnvironmentVariableUpsert::new(
            "DEBUG_TOKEN".to_owned(),
            SecretValue::new("hand-set-1234".to_owned()),
        ),
        EnvironmentVariableUpsert::new(
            "ROUTER_API_KEY".to_owned(),
            SecretValue::new(String::new()),
        ),
    ];
    world.coolify.update_envs_by_service_uuid(&service_uuid, &by_hand).await.unwrap();
    assert!(engine.drift(DriftOptions::default()).await.unwrap().drift.is_empty(), "not asked");
    let report = engine.drift(environment).await.unwrap();
    let found: Vec<(DriftKind, Healing)> =
        report.drift.iter().map(|drift| (drift.kind, drift.healing)).collect();
    assert_eq!(
        found,
        [
            (DriftKind::SecretMissing, Healing::Operator),
            (DriftKind::EnvironmentExtra, Healing::Operator)
        ]
    );
    assert!(report.drift[0].detail.contains("`ROUTER_API_KEY`"), "{:?}", report.drift[0]);
    assert!(report.drift[1].detail.contains("`DEBUG_TOKEN`"), "{:?}", report.drift[1]);
    let json = report.to_json().to_string();
    assert!(!json.contains("hand-set-1234") && !json.contains(crate::harness::BOT_TOKEN), "{json}");
}

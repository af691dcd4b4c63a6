//! Full lifecycles: provision (idempotent), suspend, resume, upgrade, delete, per template.

use std::time::Duration;

use cfa_core::{PlanTier, StackStatus};
use cfa_engine::{DeleteOptions, EngineError, ErrorClass, ProvisionRequest};
use cfa_pocketbase::AuditQuery;
use coolify_sandbox::Fault;

use crate::harness::{
    BOT_TOKEN, ROUTER_KEY, SKIP_GRACE, World, assert_coolify_archives_gone,
    assert_final_backup_kept, assert_no_secret_anywhere, base_llm_request, bot_request,
    openclaw_request,
};

#[tokio::test]
async fn telegram_bot_provisions_to_running_and_a_rerun_changes_nothing() {
    let world = World::start().await;
    let tenant_id = world.tenant("acme", PlanTier::Starter, 1).await;
    let engine = world.engine();

    let first = engine.provision(&bot_request("acme", "bot")).await.unwrap();
    assert_eq!(first.status, StackStatus::Running);
    assert!(first.service_uuid.is_some() && first.project_uuid.is_some());
    assert_eq!(first.domain, None, "the long-polling bot has no URL");
    assert_eq!(world.coolify_counts("acme", "bot").await, (1, 1));

    let service =
        world.coolify.get_service_by_uuid(first.service_uuid.as_deref().unwrap()).await.unwrap();
    assert_eq!(service.status, "running:healthy");
    let envs = world.coolify.list_envs_by_service_uuid(&service.uuid).await.unwrap();
    let token = envs
        .iter()
        .find(|env| env.key == "TELEGRAM_BOT_TOKEN")
        .expect("token set through the env API");
    assert!(token.is_literal, "secrets are literal so `$` is not interpolated");

    let second = engine.provision(&bot_request("acme", "bot")).await.unwrap();
    assert_eq!(second.service_uuid, first.service_uuid);
    assert_eq!(second.project_uuid, first.project_uuid);
    assert_eq!(world.coolify_counts("acme", "bot").await, (1, 1));
    assert_eq!(world.all_services().await, 1);

    let stacks = world.stacks_of(&tenant_id).await;
    assert_eq!(stacks.len(), 1);
    let record = &stacks[0];
    assert_eq!(record.status, StackStatus::Running);
    assert_eq!(record.error_message, None);
    let limits = record.resource_limits.as_ref().unwrap();
    assert_eq!(limits["server_uuid"], world.sandbox.server_uuid());
    assert_eq!(limits["millicpus"], 250, "starter ceiling: 0.25 CPU");
    assert_eq!(limits["memory_mb"], 256);
    let config = serde_json::to_string(&record.config).unwrap();
    assert!(!config.contains(BOT_TOKEN) && !config.contains(ROUTER_KEY), "{config}");
    assert!(
        config.contains("router.cloudfreedom.test"),
        "non-secret parameters are kept: {config}"
    );

    let audit = world
        .pb
        .audit_list(&AuditQuery { tenant: Some("acme".into()), ..AuditQuery::default() })
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|entry| entry.action.as_str()).collect();
    for action in ["stack.create", "stack.deploying", "stack.service", "stack.provision"] {
        assert!(actions.contains(&action), "{action} missing from {actions:?}");
    }
    assert!(
        audit.iter().all(|entry| entry.actor == "test"
            || entry.actor.starts_with("users:")
            || entry.actor.is_empty()
            || entry.actor == "system"),
        "{audit:?}"
    );
}

async fn full_lifecycle(world: &World, request: ProvisionRequest, expect_domain: bool) {
    let engine = world.engine();
    let tenant = request.tenant.clone();
    let stack = request.stack.clone();
    let provisioned = engine.provision(&request).await.unwrap();
    assert_eq!(provisioned.status, StackStatus::Running);
    assert_eq!(provisioned.domain.is_some(), expect_domain);
    if let Some(domain) = &provisioned.domain {
        assert_eq!(domain, &format!("{stack}-{tenant}.cloudfreedom.test"));
    }
    let service_uuid = provisioned.service_uuid.clone().unwrap();

    let suspended = engine.suspend(&tenant, &stack).await.unwrap();
    assert_eq!(suspended.status, StackStatus::Stopped);
    assert_eq!(
        world.sandbox.last_stop_docker_cleanup(&service_uuid),
        Some(false),
        "suspend keeps volumes"
    );
    let service = world.coolify.get_service_by_uuid(&service_uuid).await.unwrap();
    assert!(service.status.starts_with("exited"), "{}", service.status);
    // Suspending twice is a no-op.
    assert_eq!(engine.suspend(&tenant, &stack).await.unwrap().status, StackStatus::Stopped);

    let resumed = engine.resume(&tenant, &stack).await.unwrap();
    assert_eq!(resumed.status, StackStatus::Running);
    assert_eq!(resumed.service_uuid.as_deref(), Some(service_uuid.as_str()));

    // Same parameters: nothing to patch, nothing restarted.
    let unchanged = engine.upgrade(&tenant, &stack, Some(&request.parameters)).await.unwrap();
    assert!(!unchanged.changed);
    let mut parameters = request.parameters.clone();
    parameters.insert("model".to_owned(), "gpt-4o".to_owned());
    let upgraded = engine.upgrade(&tenant, &stack, Some(&parameters)).await.unwrap();
    assert!(upgraded.changed);
    assert_eq!(upgraded.status, StackStatus::Running);
    // Kept parameters: secrets read back from Coolify, the rest from PocketBase.
    let again = engine.upgrade(&tenant, &stack, None).await.unwrap();
    assert!(!again.changed, "{again:?}");

    engine.delete(&tenant, &stack, SKIP_GRACE).await.unwrap();
    assert!(world.coolify.get_service_by_uuid(&service_uuid).await.unwrap_err().is_not_found());
    assert_eq!(
        world.coolify_counts(&tenant, &stack).await,
        (0, 0),
        "the empty project is deleted too"
    );
    let tenant_record = world.pb.tenant_by_slug(&tenant).await.unwrap();
    assert!(world.stacks_of(&tenant_record.id).await.is_empty());
}

#[tokio::test]
async fn telegram_bot_full_lifecycle() {
    let world = World::start().await;
    world.tenant("bots", PlanTier::Team, 3).await;
    full_lifecycle(&world, bot_request("bots", "helper"), false).await;
}

#[tokio::test]
async fn openclaw_agent_full_lifecycle_with_backups_and_probe() {
    let world = World::start_with(|config| config.record_exchanges = true).await;
    world.tenant("claw", PlanTier::Business, 3).await;
    let engine = world.engine();
    let provisioned = engine.provision(&openclaw_request("claw", "agent")).await.unwrap();
    let service_uuid = provisioned.service_uuid.clone().unwrap();
    let storages = world.coolify.list_storages_by_service_uuid(&service_uuid).await.unwrap();
    assert!(!storages.persistent.is_empty(), "openclaw keeps state in a volume");
    // The delete takes a final backup of each volume and keeps it under the platform's prefix.
    engine.delete("claw", "agent", SKIP_GRACE).await.unwrap();
    assert_final_backup_kept(&world, "claw", "agent", &service_uuid).await;
    assert_coolify_archives_gone(&world, &service_uuid).await;
    assert_eq!(world.coolify_counts("claw", "agent").await, (0, 0));

    full_lifecycle(&world, openclaw_request("claw", "agent2"), true).await;
}

#[tokio::test]
async fn base_llm_full_lifecycle() {
    let world = World::start().await;
    world.tenant("sov", PlanTier::Sovereign, 5).await;
    full_lifecycle(&world, base_llm_request("sov", "webui"), true).await;
}

#[tokio::test]
async fn a_stack_with_a_url_is_not_running_until_the_probe_answers() {
    let world = World::start().await;
    let tenant_id = world.tenant("probe", PlanTier::Business, 3).await;
    world.router.broken.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut settings = world.settings.clone();
    settings.deploy_timeout = std::time::Duration::from_secs(2);
    let engine = world.engine_with(settings);
    let error = engine.provision(&openclaw_request("probe", "agent")).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("did not become ready"), "{message}");
    assert!(
        message.contains("running:healthy"),
        "coolify said healthy, the probe did not: {message}"
    );
    let record = &world.stacks_of(&tenant_id).await[0];
    assert_eq!(record.status, StackStatus::Error);
    assert!(record.error_message.as_deref().unwrap().contains("hint:"), "{record:?}");

    // Fixed: a rerun converges on the same service.
    world.router.broken.store(false, std::sync::atomic::Ordering::Relaxed);
    let outcome = world.engine().provision(&openclaw_request("probe", "agent")).await.unwrap();
    assert_eq!(outcome.status, StackStatus::Running);
    assert_eq!(outcome.service_uuid, record.coolify_service_uuid);
    assert_eq!(world.coolify_counts("probe", "agent").await, (1, 1));

    // Health after the fact judges Coolify and the probe together, like readiness does.
    let record = world.stacks_of(&tenant_id).await.remove(0);
    let health = world.engine().health(&record).await;
    assert_eq!(health.coolify_status, "running:healthy");
    assert_eq!(health.judgement.verdict, cfa_core::HealthVerdict::Healthy, "{health:?}");
    world.router.broken.store(true, std::sync::atomic::Ordering::Relaxed);
    let health = world.engine().health(&record).await;
    assert_eq!(health.judgement.verdict, cfa_core::HealthVerdict::Unhealthy, "{health:?}");
    assert!(health.judgement.reason.contains("502"), "{}", health.judgement.reason);
}

#[tokio::test]
async fn no_secret_reaches_pocketbase_or_the_logs() {
    let world = World::start().await;
    world.tenant("secret", PlanTier::Business, 5).await;
    let engine = world.engine();
    engine.provision(&bot_request("secret", "bot")).await.unwrap();
    engine.provision(&openclaw_request("secret", "agent")).await.unwrap();
    engine.suspend("secret", "bot").await.unwrap();
    engine.resume("secret", "bot").await.unwrap();
    let mut parameters = bot_request("secret", "bot").parameters;
    parameters.insert("model".into(), "other-model".into());
    engine.upgrade("secret", "bot", Some(&parameters)).await.unwrap();
    engine.delete("secret", "agent", SKIP_GRACE).await.unwrap();
    // A failure path too: its message goes to the record and the logs.
    let mut broken = bot_request("secret", "bot2");
    broken.parameters.insert("telegram_bot_token".into(), format!("{BOT_TOKEN} not a token"));
    let error = engine.provision(&broken).await.unwrap_err();
    assert!(!error.to_string().contains(BOT_TOKEN), "{error}");

    let provisions = AuditQuery { action: Some("stack.provision".into()), ..AuditQuery::default() };
    assert!(!world.pb.audit_list(&provisions).await.unwrap().is_empty(), "the audit log is read");
    assert_no_secret_anywhere(&world, &[error.to_string()]).await;
}

/// Without a backup store, a stack whose plan has backups is not deleted (Coolify would delete
/// every archive with it) unless the caller gives its data up; nothing changes on refusal.
#[tokio::test]
async fn delete_without_a_backup_store_refuses_unless_the_data_is_given_up() {
    let world = World::start().await;
    let tenant_id = world.tenant("nobucket", PlanTier::Business, 2).await;
    let provisioned =
        world.engine().provision(&openclaw_request("nobucket", "agent")).await.unwrap();
    let mut settings = world.settings.clone();
    settings.final_backups = None;
    let engine = world.engine_with(settings);
    let refused = engine.delete("nobucket", "agent", SKIP_GRACE).await.unwrap_err();
    assert!(matches!(refused, EngineError::NoFinalBackupStore { .. }), "{refused}");
    assert_eq!(refused.class(), ErrorClass::Refused);
    assert!(refused.to_string().contains("--without-final-backup"), "{refused}");
    let service_uuid = provisioned.service_uuid.unwrap();
    assert!(world.coolify.get_service_by_uuid(&service_uuid).await.is_ok(), "the service stays");
    assert_eq!(world.stacks_of(&tenant_id).await.len(), 1, "the record stays");

    let given_up = DeleteOptions { without_final_backup: true, ..SKIP_GRACE };
    engine.delete("nobucket", "agent", given_up).await.unwrap();
    assert_eq!(world.coolify_counts("nobucket", "agent").await, (0, 0));
}

/// A final backup that never reaches the bucket stops the delete: service, record and the
/// tenant's data stay, and the error names the volume and what to look at.
#[tokio::test]
async fn a_failed_final_backup_deletes_nothing() {
    let world = World::start().await;
    let tenant_id = world.tenant("failing", PlanTier::Business, 2).await;
    let provisioned =
        world.engine().provision(&openclaw_request("failing", "agent")).await.unwrap();
    let service_uuid = provisioned.service_uuid.unwrap();
    world.sandbox.inject(Fault::BackupFails { service_uuid: Some(service_uuid.clone()) });
    let mut settings = world.settings.clone();
    if let Some(final_backups) = settings.final_backups.as_mut() {
        final_backups.timeout = Duration::from_millis(500);
    }
    let error =
        world.engine_with(settings).delete("failing", "agent", SKIP_GRACE).await.unwrap_err();
    assert!(matches!(error, EngineError::FinalBackup { .. }), "{error}");
    let text = error.to_string();
    assert!(text.contains("nothing was deleted") && text.contains("failing/agent"), "{text}");
    assert!(world.coolify.get_service_by_uuid(&service_uuid).await.is_ok(), "the service stays");
    assert_eq!(world.stacks_of(&tenant_id).await.len(), 1, "the record stays");

    // Fixed, the same command finishes.
    world.sandbox.clear_faults();
    world.engine().delete("failing", "agent", SKIP_GRACE).await.unwrap();
    assert_eq!(world.coolify_counts("failing", "agent").await, (0, 0));
}

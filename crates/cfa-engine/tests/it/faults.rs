//! Crash safety, upstream faults and concurrency.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cfa_core::{PlanTier, StackStatus};
use cfa_engine::{EngineError, ErrorClass, Failpoint, Injected, Step};
use cfa_pocketbase::TenantPatch;
use coolify_sandbox::Fault;

use crate::harness::{
    CoolifyLink, ROUTER_KEY_ROTATED, SKIP_GRACE, World, assert_final_backup_kept,
    assert_no_secret_anywhere, bot_request, coolify_client_at, openclaw_request,
};

/// A failpoint that "crashes" the engine right after `crash_after` completes for the stack.
fn crash_after(crash_after: Step) -> Failpoint {
    Arc::new(
        move |_tenant: &str, _stack: &str, step: Step| {
            if step == crash_after { Err(Injected) } else { Ok(()) }
        },
    )
}

/// Kill the engine after each step of a provision, then rerun with a healthy engine: it
/// converges to one project, one service and one `running` record, every time.
#[tokio::test]
async fn a_crash_after_any_provision_step_converges_on_rerun_without_twins() {
    let world = World::start().await;
    let steps = [
        Step::RecordPending,
        Step::RecordDeploying,
        Step::EnsureProject,
        Step::EnsureEnvironment,
        Step::CreateService,
        Step::RecordService,
        Step::SetBackupSchedule,
        Step::SetEnvironment,
        Step::StartService,
        Step::WaitReady,
    ];
    for (index, step) in steps.into_iter().enumerate() {
        let tenant = format!("crash{index}");
        let tenant_id = world.tenant(&tenant, PlanTier::Business, 3).await;
        // The openclaw agent on business runs every step, backups included.
        let request = openclaw_request(&tenant, "agent");
        let crashed = world.engine_with_failpoint(crash_after(step)).provision(&request).await;
        assert!(crashed.is_err(), "the failpoint after {step} must stop the engine");

        let converged = world.engine().provision(&request).await.unwrap_or_else(|error| {
            panic!("rerun after a crash after {step} must converge: {error}")
        });
        assert_eq!(converged.status, StackStatus::Running, "after {step}");
        assert_eq!(world.coolify_counts(&tenant, "agent").await, (1, 1), "after {step}");
        let stacks = world.stacks_of(&tenant_id).await;
        assert_eq!(stacks.len(), 1, "one record after {step}");
        assert_eq!(stacks[0].coolify_service_uuid.as_deref(), converged.service_uuid.as_deref());
        assert_eq!(stacks[0].error_message, None, "after {step}");
    }
}

/// PocketBase going away mid-provision gives a clear error, and a rerun once it is back
/// finishes the stack without a twin.
#[tokio::test]
async fn a_provision_survives_pocketbase_restarting_between_runs() {
    let mut world = World::start().await;
    let tenant_id = world.tenant("restart", PlanTier::Starter, 1).await;
    let request = bot_request("restart", "bot");
    let crashed =
        world.engine_with_failpoint(crash_after(Step::CreateService)).provision(&request).await;
    assert!(crashed.is_err());

    world.pocketbase.stop();
    let error = world.engine().provision(&request).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("PocketBase") && message.contains("hint:"), "{message}");
    assert_eq!(world.coolify_counts("restart", "bot").await, (1, 1), "no twin while PB is down");

    world.pocketbase.restart().await.unwrap();
    let converged = world.engine().provision(&request).await.unwrap();
    assert_eq!(converged.status, StackStatus::Running);
    assert_eq!(world.coolify_counts("restart", "bot").await, (1, 1));
    assert_eq!(world.stacks_of(&tenant_id).await.len(), 1);
}

/// A failpoint that never stops the engine but runs `action` after each step (to inject a
/// fault at an exact point of the saga).
fn on_step(action: impl Fn(Step) + Send + Sync + 'static) -> Failpoint {
    Arc::new(move |_tenant: &str, _stack: &str, step: Step| {
        action(step);
        Ok(())
    })
}

/// Runs `action` the first time `at` completes, never again (so the rerun is not hit).
fn once_after(at: Step, action: impl Fn() + Send + Sync + 'static) -> Failpoint {
    let armed = AtomicBool::new(true);
    on_step(move |step| {
        if step == at && armed.swap(false, Ordering::SeqCst) {
            action();
        }
    })
}

#[tokio::test]
async fn a_429_storm_and_5xx_bursts_during_a_provision_still_converge() {
    let world = World::start().await;
    let tenant_id = world.tenant("stormy", PlanTier::Team, 2).await;
    let sandbox = world.sandbox.clone();
    // Each burst hits the GETs that follow the step (the long-polling bot has no URL to
    // probe, so this provision is the sandbox's only client): retried within the run.
    let engine = world.engine_with_failpoint(on_step(move |step| match step {
        Step::RecordDeploying => {
            sandbox.inject(Fault::ServerError { requests: 3, status: 503, service_uuid: None })
        }
        Step::EnsureEnvironment => sandbox.inject(Fault::RateLimitStorm {
            requests: 5,
            retry_after_seconds: 1,
            service_uuid: None,
        }),
        Step::StartService => {
            sandbox.inject(Fault::ServerError { requests: 4, status: 502, service_uuid: None })
        }
        _ => {}
    }));
    let outcome = engine.provision(&bot_request("stormy", "bot")).await.unwrap();
    assert_eq!(outcome.status, StackStatus::Running);
    assert_eq!(world.sandbox.stats().faulted, 3 + 5 + 4, "every injected answer was met");
    assert_eq!(world.coolify_counts("stormy", "bot").await, (1, 1));
    let stacks = world.stacks_of(&tenant_id).await;
    assert_eq!(stacks.len(), 1);
    assert_eq!(stacks[0].status, StackStatus::Running);
    assert_eq!(stacks[0].error_message, None);
    assert_no_secret_anywhere(&world, &[]).await;
}

#[tokio::test]
async fn coolify_down_mid_provision_is_a_clear_recorded_error_and_a_rerun_converges() {
    let world = World::start().await;
    let tenant_id = world.tenant("down", PlanTier::Team, 2).await;
    let link = Arc::new(CoolifyLink::start(world.sandbox.address()).await);
    let client =
        coolify_client_at(&link.base_url, world.sandbox.token(), |config| config.max_retries = 2);
    let mut settings = world.settings.clone();
    settings.failpoint = Some(once_after(Step::EnsureEnvironment, {
        let link = link.clone();
        move || link.set_down(true)
    }));
    let engine = world.engine_with_coolify(client, settings);
    let request = bot_request("down", "bot");

    let error = engine.provision(&request).await.unwrap_err();
    let message = error.to_string();
    assert_eq!(error.class(), ErrorClass::Failure, "{message}");
    for part in ["Coolify failed at `create_service`", "`down/bot`", "hint:", "CFA_COOLIFY_URL"] {
        assert!(message.contains(part), "`{part}` missing from: {message}");
    }
    // An outage is not the stack's failure: the record stays `deploying` (nothing to retry by
    // hand; the next activation resumes it) and says what happened.
    let record = &world.stacks_of(&tenant_id).await[0];
    assert_eq!(record.status, StackStatus::Deploying);
    assert_eq!(record.error_message.as_deref(), Some(error.record_message().as_str()));
    assert!(error.is_platform_outage());
    // The tenant reads `error_message`: the step, not Coolify's address or its answer; the
    // operator's audit entry keeps the whole error.
    let tenant_reads = record.error_message.clone().unwrap_or_default();
    assert!(tenant_reads.contains("`create_service`"), "{tenant_reads}");
    for internal in [link.base_url.as_str(), "CFA_COOLIFY_URL", "Coolify"] {
        assert!(
            !tenant_reads.contains(internal),
            "`{internal}` leaks to the tenant: {tenant_reads}"
        );
    }
    let audit = world
        .pb
        .audit_list(&cfa_pocketbase::AuditQuery {
            tenant: Some("down".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        audit.iter().any(|entry| entry
            .error
            .as_deref()
            .is_some_and(|error| error.contains("CFA_COOLIFY_URL"))),
        "the operator's audit entry keeps the detail"
    );
    // Nothing else changed: the project made before the cut, no service.
    assert_eq!(world.coolify_counts("down", "bot").await, (1, 0));
    assert_eq!(world.all_services().await, 0);

    // Still down: the rerun fails at its first Coolify call, says so, and changes nothing.
    let again = engine.provision(&request).await.unwrap_err();
    assert!(again.to_string().contains("`ensure_project`"), "{again}");
    let record = &world.stacks_of(&tenant_id).await[0];
    assert_eq!(record.status, StackStatus::Deploying);
    assert_eq!(record.error_message.as_deref(), Some(again.record_message().as_str()));
    assert_eq!(world.coolify_counts("down", "bot").await, (1, 0));

    link.set_down(false);
    let converged = engine.provision(&request).await.unwrap();
    assert_eq!(converged.status, StackStatus::Running);
    assert_eq!(world.coolify_counts("down", "bot").await, (1, 1));
    let stacks = world.stacks_of(&tenant_id).await;
    assert_eq!(stacks.len(), 1);
    assert_eq!(stacks[0].error_message, None);
    assert_no_secret_anywhere(&world, &[message, again.to_string()]).await;
}

#[tokio::test]
async fn a_coolify_timeout_while_waiting_is_recorded_and_a_rerun_converges() {
    let world = World::start().await;
    let tenant_id = world.tenant("slow", PlanTier::Team, 2).await;
    let client = coolify_client_at(&world.sandbox.base_url(), world.sandbox.token(), |config| {
        config.timeout = Duration::from_millis(300);
        config.max_retries = 1;
    });
    let mut settings = world.settings.clone();
    settings.failpoint = Some(once_after(Step::StartService, {
        let sandbox = world.sandbox.clone();
        move || sandbox.inject(Fault::Latency { millis: 1_500, service_uuid: None })
    }));
    let engine = world.engine_with_coolify(client, settings);
    let request = bot_request("slow", "bot");

    let error = engine.provision(&request).await.unwrap_err();
    let message = error.to_string();
    for part in ["`wait_ready`", "`slow/bot`", "timed out", "hint:"] {
        assert!(message.contains(part), "`{part}` missing from: {message}");
    }
    world.sandbox.clear_faults();
    // A Coolify that does not answer in time is an outage: the record keeps `deploying`.
    let record = &world.stacks_of(&tenant_id).await[0];
    assert_eq!(record.status, StackStatus::Deploying);
    assert_eq!(record.error_message.as_deref(), Some(error.record_message().as_str()));
    assert_eq!(world.coolify_counts("slow", "bot").await, (1, 1));

    let converged = engine.provision(&request).await.unwrap();
    assert_eq!(converged.status, StackStatus::Running);
    assert_eq!(converged.service_uuid, record.coolify_service_uuid);
    assert_eq!(world.coolify_counts("slow", "bot").await, (1, 1));
    assert_no_secret_anywhere(&world, &[message]).await;
}

#[tokio::test]
async fn a_deploy_that_never_becomes_healthy_ends_in_error_and_a_rerun_converges() {
    let world = World::start().await;
    let tenant_id = world.tenant("stuck", PlanTier::Team, 2).await;
    world.sandbox.inject(Fault::DeployNeverFinishes { service_uuid: None });
    let mut settings = world.settings.clone();
    settings.deploy_timeout = Duration::from_secs(1);
    let request = bot_request("stuck", "bot");

    let error = world.engine_with(settings).provision(&request).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, EngineError::NotReady { .. }), "{message}");
    for part in
        ["`stuck/bot` did not become ready", "starting", "hint:", "read the logs of `stuck/bot`"]
    {
        assert!(message.contains(part), "`{part}` missing from: {message}");
    }
    // The hint as data, for each front end to word (the CLI names `cfa logs stuck/bot`).
    let stack = cfa_core::StackRef::new("stuck", "bot");
    assert_eq!(error.remedy(), Some(cfa_core::Remedy::ReadLogsThenRetry { stack }));
    let record = &world.stacks_of(&tenant_id).await[0];
    assert_eq!(record.status, StackStatus::Error);
    assert_eq!(record.error_message.as_deref(), Some(error.record_message().as_str()));
    assert_eq!(world.coolify_counts("stuck", "bot").await, (1, 1));

    world.sandbox.clear_faults();
    let converged = world.engine().provision(&request).await.unwrap();
    assert_eq!(converged.status, StackStatus::Running);
    assert_eq!(converged.service_uuid, record.coolify_service_uuid);
    assert_eq!(world.coolify_counts("stuck", "bot").await, (1, 1));
    assert_eq!(world.stacks_of(&tenant_id).await[0].error_message, None);
    assert_no_secret_anywhere(&world, &[message]).await;
}

/// The one record of `tenant`/`stack`, its Coolify counts and the service's status.
async fn settled(
    world: &World,
    tenant: &str,
    stack: &str,
) -> (StackStatus, (usize, usize), String) {
    let tenant_record = world.pb.tenant_by_slug(tenant).await.unwrap();
    let stacks = world.stacks_of(&tenant_record.id).await;
    assert_eq!(stacks.len(), 1, "exactly one record for {tenant}/{stack}");
    let service_uuid = stacks[0].coolify_service_uuid.clone().unwrap();
    let service = world.coolify.get_service_by_uuid(&service_uuid).await.unwrap();
    (stacks[0].status, world.coolify_counts(tenant, stack).await, service.status)
}

#[tokio::test]
async fn a_crash_after_any_suspend_or_resume_step_converges_on_rerun() {
    let world = World::start().await;
    for (index, step) in
        [Step::StopService, Step::WaitStopped, Step::RecordStopped].into_iter().enumerate()
    {
        let tenant = format!("susp{index}");
        world.tenant(&tenant, PlanTier::Team, 2).await;
        let provisioned = world.engine().provision(&bot_request(&tenant, "bot")).await.unwrap();
        let crashed = world.engine_with_failpoint(crash_after(step)).suspend(&tenant, "bot").await;
        assert!(matches!(crashed, Err(EngineError::Injected { .. })), "after {step}: {crashed:?}");
        let rerun = world.engine().suspend(&tenant, "bot").await.unwrap();
        assert_eq!(rerun.status, StackStatus::Stopped, "after {step}");
        let (status, counts, service_status) = settled(&world, &tenant, "bot").await;
        assert_eq!((status, counts), (StackStatus::Stopped, (1, 1)), "after {step}");
        assert!(service_status.starts_with("exited"), "after {step}: {service_status}");
        let service_uuid = provisioned.service_uuid.unwrap();
        assert_eq!(world.sandbox.last_stop_docker_cleanup(&service_uuid), Some(false));
    }
    for (index, step) in
        [Step::RecordDeploying, Step::StartService, Step::WaitReady].into_iter().enumerate()
    {
        let tenant = format!("resu{index}");
        world.tenant(&tenant, PlanTier::Team, 2).await;
        world.engine().provision(&bot_request(&tenant, "bot")).await.unwrap();
        world.engine().suspend(&tenant, "bot").await.unwrap();
        let crashed = world.engine_with_failpoint(crash_after(step)).resume(&tenant, "bot").await;
        assert!(matches!(crashed, Err(EngineError::Injected { .. })), "after {step}: {crashed:?}");
        let rerun = world.engine().resume(&tenant, "bot").await.unwrap();
        assert_eq!(rerun.status, StackStatus::Running, "after {step}");
        let (status, counts, service_status) = settled(&world, &tenant, "bot").await;
        assert_eq!((status, counts), (StackStatus::Running, (1, 1)), "after {step}");
        assert_eq!(service_status, "running:healthy", "after {step}");
    }
    assert_no_secret_anywhere(&world, &[]).await;
}

#[tokio::test]
async fn a_crash_after_any_upgrade_step_converges_on_rerun() {
    let world = World::start().await;
    for (index, step) in
        [Step::UpdateService, Step::SetEnvironment, Step::RestartService].into_iter().enumerate()
    {
        let tenant = format!("upg{index}");
        let tenant_id = world.tenant(&tenant, PlanTier::Starter, 1).await;
        let request = bot_request(&tenant, "bot");
        let provisioned = world.engine().provision(&request).await.unwrap();
        // A plan change and a new model (the compose changes) and a rotated key (the env).
        let patch = TenantPatch { plan_tier: Some(PlanTier::Team), ..TenantPatch::default() };
        world.pb.tenant_update(&tenant_id, &patch).await.unwrap();
        let mut parameters = request.parameters.clone();
        parameters.insert("model".to_owned(), "gpt-4o".to_owned());
        parameters.insert("router_api_key".to_owned(), ROUTER_KEY_ROTATED.to_owned());

        let crashed = world
            .engine_with_failpoint(crash_after(step))
            .upgrade(&tenant, "bot", Some(&parameters))
            .await;
        assert!(matches!(crashed, Err(EngineError::Injected { .. })), "after {step}: {crashed:?}");
        let rerun = world.engine().upgrade(&tenant, "bot", Some(&parameters)).await.unwrap();
        assert_eq!((rerun.status, rerun.changed), (StackStatus::Running, true), "after {step}");
        assert_eq!(rerun.service_uuid, provisioned.service_uuid, "after {step}");
        assert_eq!(rerun.limits.map(|limits| limits.millicpus), Some(500), "team limits");
        // Everything was applied: one more run has nothing to do.
        let again = world.engine().upgrade(&tenant, "bot", Some(&parameters)).await.unwrap();
        assert!(!again.changed, "after {step}: {again:?}");
        let (status, counts, service_status) = settled(&world, &tenant, "bot").await;
        assert_eq!((status, counts), (StackStatus::Running, (1, 1)), "after {step}");
        assert_eq!(service_status, "running:healthy", "after {step}");
        let service_uuid = provisioned.service_uuid.as_deref().unwrap();
        let envs = world.coolify.list_envs_by_service_uuid(service_uuid).await.unwrap();
        let key = envs.iter().find(|env| env.key == "ROUTER_API_KEY").unwrap();
        assert_eq!(key.value.as_ref().map(|value| value.expose()), Some(ROUTER_KEY_ROTATED));
        let service = world.coolify.get_service_by_uuid(service_uuid).await.unwrap();
        let compose = service.docker_compose_raw.unwrap_or_default();
        assert!(compose.contains("ROUTER_MODEL: gpt-4o\n"), "{compose}");
    }
    assert_no_secret_anywhere(&world, &[]).await;
}

#[tokio::test]
async fn a_crash_after_any_delete_step_converges_on_rerun_with_nothing_left() {
    let world = World::start_with(|config| config.record_exchanges = true).await;
    let steps = [Step::FinalBackup, Step::DeleteService, Step::WaitDeleted, Step::DeleteProject];
    for (index, step) in steps.into_iter().enumerate() {
        let tenant = format!("del{index}");
        let tenant_id = world.tenant(&tenant, PlanTier::Business, 2).await;
        // Business and a volume: the delete takes a final backup first.
        let provisioned =
            world.engine().provision(&openclaw_request(&tenant, "agent")).await.unwrap();
        let crashed = world
            .engine_with_failpoint(crash_after(step))
            .delete(&tenant, "agent", SKIP_GRACE)
            .await;
        assert!(matches!(crashed, Err(EngineError::Injected { .. })), "after {step}: {crashed:?}");
        assert_eq!(world.stacks_of(&tenant_id).await.len(), 1, "the record outlives the crash");
        world.engine().delete(&tenant, "agent", SKIP_GRACE).await.unwrap();
        assert_eq!(world.coolify_counts(&tenant, "agent").await, (0, 0), "after {step}");
        assert!(world.stacks_of(&tenant_id).await.is_empty(), "after {step}");
        assert_final_backup_kept(
            &world,
            &tenant,
            "agent",
            provisioned.service_uuid.as_deref().unwrap(),
        )
        .await;
    }
    assert_eq!((world.all_projects().await, world.all_services().await), (0, 0));
    assert_no_secret_anywhere(&world, &[]).await;
}

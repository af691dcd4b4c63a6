//! The engine against a sandbox that lags as Coolify does: container statuses are stored only
//! by Coolify's status job (here run by the test), so after a start the API reads `exited`,
//! `starting:unhealthy` while the start job runs, then the stale `exited` again until the next
//! status run. Nothing in these tests depends on wall-clock races: the status job runs when
//! the test says so.

use std::sync::Arc;
use std::time::Duration;

use cfa_core::{PlanTier, StackStatus};
use cfa_engine::{Completion, Failpoint, Injected, Reconciled, Step};

use crate::harness::{World, bot_request, openclaw_request};

/// A sandbox whose status job never runs by itself during a test.
async fn lagging_world() -> World {
    World::start_with(|config| {
        config.status_interval = Duration::from_secs(3600);
        config.record_exchanges = true;
    })
    .await
}

/// Waits until Coolify's start job for the only service has run and ended: its activity is
/// logged and the status no longer reads `starting` (the stale stored `exited` shows again).
async fn until_the_start_job_ended(world: &World) -> String {
    for _ in 0..400 {
        let services = world.coolify.list_services().await.unwrap();
        if let Some(service) = services.first()
            && world.sandbox.activity_log(&service.uuid).is_some()
        {
            world.sandbox.wait_for_jobs().await;
            let status = world.coolify.get_service_by_uuid(&service.uuid).await.unwrap().status;
            if !status.starts_with("starting") {
                return service.uuid.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("Coolify's start job never ended");
}

fn starts_sent(world: &World) -> usize {
    world
        .sandbox
        .exchanges()
        .iter()
        .filter(|exchange| exchange.method == "POST" && exchange.path.ends_with("/start"))
        .count()
}

#[tokio::test]
async fn a_start_survives_the_stale_exited_until_coolifys_next_status_run() {
    let world = lagging_world().await;
    world.tenant("lag", PlanTier::Starter, 1).await;
    let mut settings = world.settings.clone();
    settings.status_lag = Duration::from_secs(30);
    let engine = world.engine_with(settings);
    let provision = tokio::spawn(async move { engine.provision(&bot_request("lag", "bot")).await });

    let service_uuid = until_the_start_job_ended(&world).await;
    let stale = world.coolify.get_service_by_uuid(&service_uuid).await.unwrap().status;
    assert!(stale.starts_with("exited"), "the stored status is still the old one: {stale}");
    // The engine polls the stale `exited` many times (every 50 ms) and must keep waiting.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!provision.is_finished(), "the engine gave up on a stale status");

    world.sandbox.run_status_job().await;
    let outcome = provision.await.unwrap().expect("ready once Coolify has looked");
    assert_eq!(outcome.status, StackStatus::Running);
    assert_eq!(starts_sent(&world), 1);
}

#[tokio::test]
async fn exited_fails_a_start_once_coolify_has_looked_after_its_job() {
    let world = lagging_world().await;
    world.tenant("dead", PlanTier::Starter, 1).await;
    let mut settings = world.settings.clone();
    settings.status_lag = Duration::from_millis(300);
    let engine = world.engine_with(settings);
    let provision =
        tokio::spawn(async move { engine.provision(&bot_request("dead", "bot")).await });
    let service_uuid = until_the_start_job_ended(&world).await;
    // The containers die before Coolify's next status run sees them.
    world.sandbox.inject(coolify_sandbox::Fault::ContainerExited {
        service_uuid: Some(service_uuid.clone()),
        container: None,
    });
    world.sandbox.run_status_job().await;
    let error = provision.await.unwrap().expect_err("a start whose containers exited fails");
    let message = error.to_string();
    assert!(message.contains("failed to start") && message.contains("exited"), "{message}");
}

#[tokio::test]
async fn a_rerun_during_the_lag_does_not_start_the_service_again() {
    let world = lagging_world().await;
    world.tenant("rerun", PlanTier::Starter, 1).await;
    let mut settings = world.settings.clone();
    settings.status_lag = Duration::from_secs(30);
    let crash_after_start: Failpoint =
        Arc::new(
            |_tenant: &str, _stack: &str, step: Step| {
                if step == Step::StartService { Err(Injected) } else { Ok(()) }
            },
        );
    let mut crashing = settings.clone();
    crashing.failpoint = Some(crash_after_start);
    let crashed = world.engine_with(crashing).provision(&bot_request("rerun", "bot")).await;
    assert!(crashed.is_err(), "the failpoint stops the first run after the start");
    let service_uuid = until_the_start_job_ended(&world).await;
    let stale = world.coolify.get_service_by_uuid(&service_uuid).await.unwrap().status;
    assert!(stale.starts_with("exited"), "{stale}");

    // The rerun sees `exited`, but the audit log says a start was queued moments ago.
    let engine = world.engine_with(settings);
    let rerun = tokio::spawn(async move { engine.provision(&bot_request("rerun", "bot")).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    world.sandbox.run_status_job().await;
    let outcome = rerun.await.unwrap().expect("the rerun waits for the queued start");
    assert_eq!(outcome.status, StackStatus::Running);
    assert_eq!(starts_sent(&world), 1, "Coolify would redeploy on a second start");
}

/// A server on loopback that answers 200 to everything: a stack whose URL answers at once.
async fn always_answering() -> url::Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async { "ok" });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{address}").parse().unwrap()
}

#[tokio::test]
async fn a_suspend_during_the_lag_stops_the_containers_coolify_does_not_see_yet() {
    let world = lagging_world().await;
    world.tenant("pause", PlanTier::Business, 1).await;
    let mut settings = world.settings.clone();
    settings.status_lag = Duration::from_secs(30);
    settings.probe.base_url = Some(always_answering().await);
    let engine = world.engine_with(settings);
    // Ready by our probe while Coolify's stored status still says `exited`.
    let provisioned = engine.provision(&openclaw_request("pause", "agent")).await.unwrap();
    let service_uuid = provisioned.service_uuid.clone().unwrap();
    until_the_start_job_ended(&world).await;

    // Coolify answers "Service is already stopped." now; the engine must wait and stop again.
    let suspend = tokio::spawn(async move { engine.suspend("pause", "agent").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    world.sandbox.run_status_job().await;
    let outcome = suspend.await.unwrap().expect("suspended");
    assert_eq!(outcome.status, StackStatus::Stopped);
    world.sandbox.wait_for_jobs().await;
    world.sandbox.run_status_job().await;
    let status = world.coolify.get_service_by_uuid(&service_uuid).await.unwrap().status;
    assert!(status.starts_with("exited"), "the containers still run after a suspend: {status}");
}

/// An upgrade queued by one process (`cfa upgrade --no-wait`) is finished by another (the
/// controller, `cfa reconcile`) that never queued anything: not before Coolify has stored the
/// new containers' status. (The audit log tells that process it waits for a restart; this
/// sandbox stores `exited` when its restart job stops the old containers, so the case that
/// needs it, a stale `running:healthy` after a quick restart, is judged in
/// `cfa_core::readiness`'s tests.)
#[tokio::test]
async fn another_process_finishes_a_restart_queued_without_waiting() {
    let world = lagging_world().await;
    world.tenant("up", PlanTier::Starter, 1).await;
    let mut settings = world.settings.clone();
    settings.status_lag = Duration::from_secs(1);
    let engine = world.engine_with(settings.clone());
    let request = bot_request("up", "bot");
    let provision = {
        let (engine, request) = (engine.clone(), request.clone());
        tokio::spawn(async move { engine.provision(&request).await })
    };
    until_the_start_job_ended(&world).await;
    world.sandbox.run_status_job().await;
    assert_eq!(provision.await.unwrap().unwrap().status, StackStatus::Running);

    let mut parameters = request.parameters.clone();
    parameters.insert("model".to_owned(), "gpt-4o".to_owned());
    let queued = engine
        .upgrade_with("up", "bot", Some(&parameters), Completion::Queued)
        .await
        .expect("restart queued");
    assert_eq!(queued.status, StackStatus::Deploying);
    world.sandbox.wait_for_jobs().await;

    let other = world.engine_with(settings);
    let first = other.reconcile_once("up", "bot").await.unwrap();
    assert!(
        matches!(first, Reconciled::InProgress { .. }),
        "ready before any status run: {first:?}"
    );
    // Ready once the new containers' status is stored (a status run before each look).
    for _ in 0..100 {
        world.sandbox.run_status_job().await;
        match other.reconcile_once("up", "bot").await.unwrap() {
            Reconciled::InProgress { .. } => tokio::time::sleep(Duration::from_millis(50)).await,
            Reconciled::Acted { outcome, .. } => {
                assert_eq!(outcome.status, StackStatus::Running);
                return;
            }
            other => panic!("unexpected activation: {other:?}"),
        }
    }
    panic!("the restarted stack never became ready");
}

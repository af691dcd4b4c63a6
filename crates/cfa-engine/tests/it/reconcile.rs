//! What a tenant asks through PocketBase, with its own (verified) user's token, is carried out
//! by one reconcile activation: a suspend (`stopped`), a resume and a retry (`pending`), and a
//! stack it created itself waits, saying which secret is missing. An activation with nothing
//! asked changes nothing.

use cfa_core::{PlanTier, StackStatus};
use cfa_engine::Reconciled;
use cfa_pocketbase::{NewStack, NewTenant, StackPatch};
use serde_json::json;

use crate::harness::{World, bot_request};

/// The Coolify calls that change something, so far.
fn mutations(world: &World) -> usize {
    world.sandbox.exchanges().iter().filter(|exchange| exchange.method != "GET").count()
}

#[tokio::test]
async fn a_tenants_requests_through_pocketbase_are_carried_out() {
    let world = World::start_with(|config| config.record_exchanges = true).await;
    let (user_id, tenant) = world.pocketbase.user("owner@self.test").await.unwrap();
    let tenant_record = world
        .pb
        .tenant_create(&NewTenant {
            name: "Self Service".to_owned(),
            slug: "self".to_owned(),
            user_id,
            max_stacks: Some(2),
            plan_tier: Some(PlanTier::Team),
            resource_limits: None,
        })
        .await
        .unwrap();
    let engine = world.engine();
    let running = engine.provision(&bot_request("self", "bot")).await.unwrap();
    let service_uuid = running.service_uuid.clone().unwrap();

    // Nothing asked: no Coolify mutation, no PocketBase write.
    let calls = mutations(&world);
    let before = engine.stack("self", "bot").await.unwrap();
    let converged = engine.reconcile("self", "bot").await.unwrap();
    assert!(matches!(converged, Reconciled::Converged { status: StackStatus::Running }));
    assert_eq!(mutations(&world), calls);
    assert_eq!(engine.stack("self", "bot").await.unwrap(), before);

    // The tenant suspends: it writes `stopped`, the activation stops the containers.
    let stop = StackPatch { status: Some(StackStatus::Stopped), ..StackPatch::default() };
    tenant.stack_update(&before.id, &stop).await.unwrap();
    let suspended = engine.reconcile("self", "bot").await.unwrap();
    assert!(matches!(suspended, Reconciled::Acted { operation: "suspend", .. }), "{suspended:?}");
    let status = world.coolify.get_service_by_uuid(&service_uuid).await.unwrap().status;
    assert!(status.starts_with("exited"), "{status}");
    let again = engine.reconcile("self", "bot").await.unwrap();
    assert!(matches!(again, Reconciled::Converged { status: StackStatus::Stopped }), "{again:?}");

    // The tenant resumes: `pending` on a stopped stack deploys it again, with its secrets.
    let resume = StackPatch { status: Some(StackStatus::Pending), ..StackPatch::default() };
    tenant.stack_update(&before.id, &resume).await.unwrap();
    let resumed = engine.reconcile("self", "bot").await.unwrap();
    let Reconciled::Acted { operation: "provision", outcome } = resumed else {
        panic!("{resumed:?}")
    };
    assert_eq!(outcome.status, StackStatus::Running);
    assert_eq!(outcome.service_uuid.as_deref(), Some(service_uuid.as_str()), "no twin");
    assert_eq!(world.all_services().await, 1);

    // A failed stack, retried by the tenant.
    let failed = StackPatch {
        status: Some(StackStatus::Error),
        error_message: Some("the deploy timed out".to_owned()),
        ..StackPatch::default()
    };
    world.pb.stack_update(&before.id, &failed).await.unwrap();
    assert!(matches!(
        engine.reconcile("self", "bot").await.unwrap(),
        Reconciled::Converged { status: StackStatus::Error }
    ));
    tenant.stack_update(&before.id, &resume).await.unwrap();
    let retried = engine.reconcile("self", "bot").await.unwrap();
    assert!(matches!(retried, Reconciled::Acted { operation: "provision", .. }), "{retried:?}");
    let record = engine.stack("self", "bot").await.unwrap();
    assert_eq!((record.status, record.error_message), (StackStatus::Running, None));

    // A stack the tenant created itself has no secrets: it waits and says which, once.
    let mut new_stack = NewStack::pending(&tenant_record.id, "telegram-bot", "helper");
    new_stack.config = json!({ "router_base_url": "https://router.cloudfreedom.test/v1" });
    let created = tenant.stack_create(&new_stack).await.unwrap();
    let calls = mutations(&world);
    let waiting = engine.reconcile("self", "helper").await.unwrap();
    let Reconciled::Waiting { reason } = waiting else { panic!("{waiting:?}") };
    assert!(
        reason.contains("`router_api_key`") && reason.contains("`telegram_bot_token`"),
        "{reason}"
    );
    let record = tenant.stack_view(&created.id, false).await.unwrap();
    assert_eq!(record.status, StackStatus::Pending);
    assert_eq!(record.error_message.as_deref(), Some(reason.as_str()), "the tenant reads why");
    // Its service exists, not started, so that the secrets have somewhere to go.
    assert!(mutations(&world) > calls, "the service is created");
    let prepared = record.coolify_service_uuid.clone().expect("the service is recorded");
    let status = world.coolify.get_service_by_uuid(&prepared).await.unwrap().status;
    assert!(!status.starts_with("running"), "never started: {status}");
    assert!(reason.contains(&format!("/api/v1/tenant/stacks/{}/secrets", created.id)), "{reason}");
    let calls = mutations(&world);
    engine.reconcile("self", "helper").await.unwrap();
    assert_eq!(mutations(&world), calls, "prepared once");
    assert_eq!(
        engine.stack("self", "helper").await.unwrap().updated_at,
        record.updated_at,
        "said once"
    );
}

/// A stack whose activations keep failing is left alone, doubling, so a request that cannot
/// be carried out (or a tenant flipping `error -> pending` in a loop) costs one attempt per
/// backoff, not one per pass.
#[tokio::test]
async fn a_stack_that_keeps_failing_is_left_alone_for_a_while() {
    let world = World::start_with(|config| config.record_exchanges = true).await;
    world.tenant("flaky", PlanTier::Team, 2).await;
    let engine = world.engine();
    let running = engine.provision(&bot_request("flaky", "bot")).await.unwrap();
    let service_uuid = running.service_uuid.unwrap();
    let record = engine.stack("flaky", "bot").await.unwrap();
    let retry = StackPatch { status: Some(StackStatus::Pending), ..StackPatch::default() };
    world.pb.stack_update(&record.id, &retry).await.unwrap();
    world.sandbox.inject(coolify_sandbox::Fault::ServerError {
        requests: 100_000,
        status: 500,
        service_uuid: Some(service_uuid.clone()),
    });

    let policy = cfa_core::Backoff {
        base: std::time::Duration::from_secs(60),
        cap: std::time::Duration::from_secs(600),
    };
    let mut backoffs = cfa_engine::Backoffs::new(policy);
    let first = engine.reconcile_pass(2, &mut backoffs).await.unwrap();
    assert_eq!(first.failures(), 1, "{first:?}");
    // Coolify failed before the deploy began (reading the service's secrets): the request stands.
    assert_eq!(engine.stack("flaky", "bot").await.unwrap().status, StackStatus::Pending);

    // The next pass leaves it alone and sends Coolify nothing for it.
    let calls = world.sandbox.exchanges().len();
    let second = engine.reconcile_pass(2, &mut backoffs).await.unwrap();
    assert!(second.activations.is_empty(), "{second:?}");
    let (tenant, stack, failures, wait) = &second.backing_off[0];
    assert_eq!((tenant.as_str(), stack.as_str(), *failures), ("flaky", "bot", 1));
    assert!(*wait > std::time::Duration::from_secs(50), "{wait:?}");
    let sent: Vec<String> = world.sandbox.exchanges()[calls..]
        .iter()
        .map(|exchange| format!("{} {}", exchange.method, exchange.path))
        .collect();
    assert_eq!(sent, ["GET /api/v1/services"], "the pass's one list, nothing for the stack");
    assert_eq!(engine.stack("flaky", "bot").await.unwrap().status, StackStatus::Pending);

    // A fresh controller (no memory) tries; once Coolify answers again it converges.
    world.sandbox.clear_faults();
    let mut fresh = cfa_engine::Backoffs::new(policy);
    let third = engine.reconcile_pass(2, &mut fresh).await.unwrap();
    assert_eq!(third.failures(), 0, "{third:?}");
    assert_eq!(engine.stack("flaky", "bot").await.unwrap().status, StackStatus::Running);
}

/// Coolify down is one platform incident: the pass says so once and touches no stack (no
/// `error`, no backoff); when Coolify is back, the next pass carries the requests out.
#[tokio::test]
async fn coolify_down_fails_the_pass_once_and_flips_no_stack() {
    let world = World::start().await;
    world.tenant("down", PlanTier::Team, 3).await;
    let engine = world.engine();
    engine.provision(&bot_request("down", "bot")).await.unwrap();
    let record = engine.stack("down", "bot").await.unwrap();
    let stop = StackPatch { status: Some(StackStatus::Stopped), ..StackPatch::default() };
    world.pb.stack_update(&record.id, &stop).await.unwrap();
    world.sandbox.inject(coolify_sandbox::Fault::ServerError {
        requests: 100_000,
        status: 503,
        service_uuid: None,
    });

    let mut backoffs = cfa_engine::Backoffs::new(cfa_core::Backoff::CONTROLLER);
    let error = engine.reconcile_pass(2, &mut backoffs).await.unwrap_err();
    assert!(matches!(error, cfa_engine::EngineError::CoolifyUnavailable { .. }), "{error}");
    assert!(error.to_string().contains("no stack was touched"), "{error}");
    let untouched = engine.stack("down", "bot").await.unwrap();
    assert_eq!((untouched.status, untouched.error_message), (StackStatus::Stopped, None));

    world.sandbox.clear_faults();
    let pass = engine.reconcile_pass(2, &mut backoffs).await.unwrap();
    assert_eq!(pass.activations.len(), 1, "not backing off: {pass:?}");
    assert_eq!(pass.failures(), 0, "{pass:?}");
}

/// A tenant asks for a delete by setting `delete_requested_at` (it cannot delete the record:
/// the record must outlive the service). PocketBase dates the request by its own clock, the
/// tenant cannot take it back or resume the stack, nothing happens during the grace period,
/// and then one activation takes the final backup, deletes the service and, last, the record,
/// which gives the quota slot back.
#[tokio::test]
async fn a_tenants_delete_request_runs_after_the_grace_period_with_the_final_backup() {
    let world = World::start_with(|config| config.record_exchanges = true).await;
    let (user_id, tenant) = world.pocketbase.user("owner@leaving.test").await.unwrap();
    let tenant_record = world
        .pb
        .tenant_create(&NewTenant {
            name: "Leaving".to_owned(),
            slug: "leaving".to_owned(),
            user_id,
            max_stacks: Some(1),
            plan_tier: Some(PlanTier::Business),
            resource_limits: None,
        })
        .await
        .unwrap();
    let engine = world.engine();
    let provisioned =
        engine.provision(&crate::harness::openclaw_request("leaving", "agent")).await.unwrap();
    let service_uuid = provisioned.service_uuid.unwrap();
    let record = engine.stack("leaving", "agent").await.unwrap();

    let long_ago: jiff::Timestamp = "2001-01-01T00:00:00Z".parse().unwrap();
    let ask = StackPatch { delete_requested_at: Some(long_ago), ..StackPatch::default() };
    tenant.stack_update(&record.id, &ask).await.unwrap();
    let asked = tenant.stack_view(&record.id, false).await.unwrap();
    let requested = asked.delete_requested_at.expect("the request is on the record");
    let age = jiff::Timestamp::now().duration_since(requested);
    assert!(age.as_secs() < 60, "dated by PocketBase's clock, not the tenant's: {requested}");

    // Set once: not taken back, not moved, and the stack is no longer resumed or suspended.
    let cleared = json!({ "delete_requested_at": "" });
    let path = format!("/api/collections/agent_stacks/records/{}", record.id);
    let patch = reqwest::Method::PATCH;
    assert!(tenant.call_raw(patch.clone(), &path, Some(&cleared)).await.is_err(), "taken back");
    let moved = StackPatch { delete_requested_at: Some(long_ago), ..StackPatch::default() };
    tenant.stack_update(&record.id, &moved).await.unwrap_err();
    let stop = StackPatch { status: Some(StackStatus::Stopped), ..StackPatch::default() };
    tenant.stack_update(&record.id, &stop).await.unwrap_err();
    assert_eq!(
        tenant.stack_view(&record.id, false).await.unwrap().delete_requested_at,
        Some(requested)
    );

    // During the grace period: nothing reaches Coolify, nothing is written.
    let calls = mutations(&world);
    let scheduled = engine.reconcile("leaving", "agent").await.unwrap();
    let Reconciled::DeleteScheduled { due } = scheduled else { panic!("{scheduled:?}") };
    assert_eq!(due.duration_since(requested).as_secs(), 3600);
    assert_eq!(mutations(&world), calls);
    assert_eq!(engine.stack("leaving", "agent").await.unwrap(), asked);

    // The grace period over: the delete with its final backup, the record last.
    let mut settings = world.settings.clone();
    settings.tenant_delete_grace = std::time::Duration::ZERO;
    let deleted = world.engine_with(settings).reconcile("leaving", "agent").await.unwrap();
    assert!(matches!(deleted, Reconciled::Deleted), "{deleted:?}");
    crate::harness::assert_final_backup_kept(&world, "leaving", "agent", &service_uuid).await;
    assert_eq!(world.coolify_counts("leaving", "agent").await, (0, 0));
    assert!(world.stacks_of(&tenant_record.id).await.is_empty());
    // The slot is free again, and nobody creates a record that asks for its own deletion.
    let create = "/api/collections/agent_stacks/records";
    let mut born = json!({
        "tenant_id": tenant_record.id, "template": "telegram-bot", "stack_name": "other",
        "status": "pending", "config": {}, "delete_requested_at": "2030-01-01 00:00:00.000Z",
    });
    let post = reqwest::Method::POST;
    assert!(tenant.call_raw(post.clone(), create, Some(&born)).await.is_err(), "born deleting");
    born.as_object_mut().unwrap().remove("delete_requested_at");
    tenant.call_raw(post, create, Some(&born)).await.unwrap();
}

/// An engine write never overwrites a request it has not read: a tenant's `stopped` written
/// while an operation runs stops that operation at its next record write (the record keeps
/// `stopped`), and the next activation carries the stop out.
#[tokio::test]
async fn a_request_written_during_an_operation_is_not_overwritten() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let world = World::start().await;
    let (user_id, _) = world.pocketbase.user("owner@race.test").await.unwrap();
    world
        .pb
        .tenant_create(&NewTenant {
            name: "Race".to_owned(),
            slug: "race".to_owned(),
            user_id,
            max_stacks: Some(1),
            plan_tier: Some(PlanTier::Team),
            resource_limits: None,
        })
        .await
        .unwrap();
    world.engine().provision(&bot_request("race", "bot")).await.unwrap();
    let record = world.engine().stack("race", "bot").await.unwrap();

    // The operator's idempotent rerun checks readiness, then records `running`; in between,
    // the tenant asks for a stop (from its own process and connection).
    let url = world.pocketbase.url().to_owned();
    let record_id = record.id.clone();
    let armed = AtomicBool::new(true);
    let failpoint: cfa_engine::Failpoint = Arc::new(move |_: &str, _: &str, step| {
        if step == cfa_engine::Step::WaitReady && armed.swap(false, Ordering::SeqCst) {
            let (url, record_id) = (url.clone(), record_id.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
                runtime.unwrap().block_on(async {
                    let password =
                        cfa_pocketbase::Password::new(cfa_pocketbase::testing::USER_PASSWORD);
                    let tenant = cfa_pocketbase::PocketBaseClient::connect(
                        &url,
                        "users",
                        "owner@race.test",
                        password,
                    )
                    .await
                    .unwrap();
                    let stop =
                        StackPatch { status: Some(StackStatus::Stopped), ..StackPatch::default() };
                    tenant.stack_update(&record_id, &stop).await.unwrap();
                });
            })
            .join()
            .unwrap();
        }
        Ok(())
    });
    let error = world
        .engine_with_failpoint(failpoint)
        .provision(&bot_request("race", "bot"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, cfa_engine::EngineError::Superseded { status: StackStatus::Stopped, .. }),
        "{error}"
    );
    let after = world.engine().stack("race", "bot").await.unwrap();
    assert_eq!(after.status, StackStatus::Stopped, "the tenant's request stands");
    assert_eq!(after.error_message, None, "and is not marked as a failure");

    let carried_out = world.engine().reconcile("race", "bot").await.unwrap();
    assert!(
        matches!(carried_out, Reconciled::Acted { operation: "suspend", .. }),
        "{carried_out:?}"
    );
}

/// The controller's activation never waits for readiness: a resume it starts is in progress
/// (the record `deploying`), the next activations look again without starting twice, and one
/// of them records `running`.
#[tokio::test]
async fn an_activation_that_does_not_wait_leaves_the_deploy_in_progress_for_the_next() {
    let world = World::start_with(|config| {
        config.record_exchanges = true;
        config.deploy_delay = std::time::Duration::from_millis(800);
    })
    .await;
    world.tenant("patient", PlanTier::Team, 2).await;
    let engine = world.engine();
    let running = engine.provision(&bot_request("patient", "bot")).await.unwrap();
    let service_uuid = running.service_uuid.unwrap();
    engine.suspend("patient", "bot").await.unwrap();
    let record = engine.stack("patient", "bot").await.unwrap();
    let resume = StackPatch { status: Some(StackStatus::Pending), ..StackPatch::default() };
    world.pb.stack_update(&record.id, &resume).await.unwrap();

    let started = std::time::Instant::now();
    let first = engine.reconcile_once("patient", "bot").await.unwrap();
    assert!(matches!(first, Reconciled::InProgress { operation: "provision" }), "{first:?}");
    assert!(started.elapsed() < std::time::Duration::from_millis(800), "it did not wait");
    assert_eq!(engine.stack("patient", "bot").await.unwrap().status, StackStatus::Deploying);
    let mut activations = 1;
    let outcome = loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        activations += 1;
        match engine.reconcile_once("patient", "bot").await.unwrap() {
            Reconciled::InProgress { .. } => assert!(activations < 100, "never ready"),
            Reconciled::Acted { outcome, .. } => break outcome,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(outcome.status, StackStatus::Running);
    let starts = world
        .sandbox
        .exchanges()
        .iter()
        .filter(|exchange| exchange.path == format!("/api/v1/services/{service_uuid}/start"))
        .count();
    assert_eq!(starts, 2, "one start for the provision, one for the resume: never a second one");
}

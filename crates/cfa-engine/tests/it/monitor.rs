//! The health monitor on the real PocketBase and the sandbox: a stack that turns unhealthy
//! opens one incident once its pending checks have passed, flips its record to `error`, queues
//! one message per channel, and resolves once with one more each when it recovers; a pass in
//! which nothing changed writes nothing; Coolify down is one platform incident and no stack
//! flips; 500 stacks failing at once make one grouped message per channel.

use std::time::Duration;

use cfa_core::incidents::{AlertPolicy, IncidentKind};
use cfa_core::{PlanTier, StackStatus};
use cfa_engine::Engine;
use cfa_pocketbase::{IncidentStatus, NewHostEvent, NewStack};
use coolify_sandbox::Fault;
use futures::StreamExt;

use crate::harness::{World, bot_request};

/// An engine whose monitor queues to two channels and fires `kind` after `checks` checks.
fn monitoring(world: &World, kind: IncidentKind, checks: u32) -> Engine {
    let mut settings = world.settings.clone();
    settings.monitor.channels = vec!["webhook:ops".to_owned(), "email:ops".to_owned()];
    let mut policy = AlertPolicy::default_for(kind);
    policy.pending_for = Duration::ZERO;
    policy.consecutive_failures = checks;
    settings.monitor.policies.set(kind, policy).unwrap();
    world.engine_with(settings)
}

#[tokio::test]
async fn an_unhealthy_stack_opens_one_incident_flips_to_error_and_resolves_once() {
    let world = World::start().await;
    world.tenant("mon", PlanTier::Team, 2).await;
    let engine = monitoring(&world, IncidentKind::Unhealthy, 2);
    let sick = engine.provision(&bot_request("mon", "bot")).await.unwrap();
    let uuid = sick.service_uuid.clone().unwrap();
    engine.provision(&bot_request("mon", "quiet")).await.unwrap();
    let quiet_before = engine.stack("mon", "quiet").await.unwrap();

    let calm = engine.monitor_pass().await.unwrap();
    assert_eq!((calm.stacks_checked, calm.coolify_calls, calm.writes()), (2, 1, 0), "{calm:?}");

    world.sandbox.inject(Fault::ContainerUnhealthy { service_uuid: Some(uuid), container: None });
    let pending = engine.monitor_pass().await.unwrap();
    assert!(pending.opened.is_empty() && pending.messages.is_empty(), "{pending:?}");
    assert_eq!(pending.track_writes, 1, "the pending run is remembered");
    assert_eq!(engine.stack("mon", "bot").await.unwrap().status, StackStatus::Running);

    let fired = engine.monitor_pass().await.unwrap();
    assert_eq!(fired.opened.len(), 1, "{fired:?}");
    assert_eq!((fired.messages.len(), fired.outbox_writes), (1, 2), "one message, two channels");
    assert!(fired.messages[0].title().contains("mon/bot"), "{}", fired.messages[0].title());
    let record = engine.stack("mon", "bot").await.unwrap();
    assert_eq!(record.status, StackStatus::Error);
    let message = record.error_message.clone().unwrap_or_default();
    assert!(message.starts_with("health: coolify reports running:unhealthy"), "{message}");
    assert!(record.last_health_check.is_some());
    let firing = world.pb.incident_list(true, 10).await.unwrap();
    assert_eq!(firing.len(), 1);
    assert_eq!((firing[0].kind.as_str(), firing[0].stack.as_deref()), ("unhealthy", Some("bot")));

    let steady = engine.monitor_pass().await.unwrap();
    assert_eq!(steady.writes(), 0, "nothing changed, nothing written: {steady:?}");

    world.sandbox.clear_faults();
    let recovered = engine.monitor_pass().await.unwrap();
    assert_eq!((recovered.resolved.len(), recovered.record_writes), (1, 1), "{recovered:?}");
    assert_eq!(recovered.outbox_writes, 2);
    let record = engine.stack("mon", "bot").await.unwrap();
    assert_eq!(record.status, StackStatus::Running);
    assert_eq!(record.error_message, None);
    let incident = world.pb.incident_view(&firing[0].id).await.unwrap();
    assert_eq!(incident.status, IncidentStatus::Resolved);
    let queued = world.pb.outbox_undelivered(10).await.unwrap();
    let statuses: Vec<&str> =
        queued.iter().filter_map(|entry| entry.payload["status"].as_str()).collect();
    assert_eq!(statuses, ["firing", "firing", "resolved", "resolved"]);
    assert!(queued.iter().all(|entry| entry.payload["incidents"][0]["stack"] == "bot"));

    assert_eq!(engine.monitor_pass().await.unwrap().writes(), 0);
    let quiet_after = engine.stack("mon", "quiet").await.unwrap();
    assert_eq!(quiet_after.updated_at, quiet_before.updated_at, "a healthy stack is never written");
}

#[tokio::test]
async fn coolify_down_is_one_platform_incident_and_no_stack_flips() {
    let world = World::start().await;
    world.tenant("down", PlanTier::Team, 1).await;
    let engine = monitoring(&world, IncidentKind::CoolifyUnreachable, 1);
    engine.provision(&bot_request("down", "bot")).await.unwrap();

    world.sandbox.inject(Fault::ServerError { requests: 10_000, status: 503, service_uuid: None });
    let outage = engine.monitor_pass().await.unwrap();
    assert!(outage.coolify_unreachable.is_some(), "{outage:?}");
    assert_eq!(outage.opened, ["platform/coolify_unreachable"]);
    assert_eq!(outage.stacks_checked, 0);
    assert_eq!(engine.stack("down", "bot").await.unwrap().status, StackStatus::Running);

    world.sandbox.clear_faults();
    let back = engine.monitor_pass().await.unwrap();
    assert_eq!(back.resolved, ["platform/coolify_unreachable"]);
    assert_eq!(back.stacks_checked, 1);
    assert_eq!(engine.stack("down", "bot").await.unwrap().status, StackStatus::Running);
}

#[tokio::test]
async fn five_hundred_stacks_failing_at_once_make_one_message_per_channel() {
    const STACKS: usize = 500;
    let world = World::start().await;
    let tenant_id = world.tenant("storm", PlanTier::Sovereign, 510).await;
    let engine = monitoring(&world, IncidentKind::Unhealthy, 1);
    world.sandbox.seed_services(STACKS);
    let services = world.coolify.list_services().await.unwrap();
    assert_eq!(services.len(), STACKS);
    futures::stream::iter(services.iter().enumerate())
        .map(|(index, service)| {
            let mut stack = NewStack::pending(&tenant_id, "telegram-bot", &format!("bot-{index}"));
            stack.status = StackStatus::Running;
            stack.coolify_service_uuid = Some(service.uuid.clone());
            let pb = world.pb.clone();
            async move { pb.stack_create(&stack).await.unwrap() }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert_eq!(engine.monitor_pass().await.unwrap().writes(), 0);

    world.sandbox.inject(Fault::ContainerUnhealthy { service_uuid: None, container: None });
    let storm = engine.monitor_pass().await.unwrap();
    assert_eq!(storm.opened.len(), STACKS);
    assert_eq!(storm.messages.len(), 1, "one grouped message");
    assert_eq!(storm.outbox_writes, 2, "once per channel");
    let message = &storm.messages[0];
    assert_eq!(message.count(), STACKS);
    assert!(message.text().contains("and 480 more"), "{}", message.text());
}

/// What the test's webhook receiver got: each body whose signature checked out.
#[derive(Clone, Default)]
struct Received {
    bodies: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

const WEBHOOK_SECRET: &str = "monitor-test-webhook-secret";

async fn receive(
    axum::extract::State(received): axum::extract::State<Received>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or("");
    let verified = cfa_alerts::signature::verify_signature(
        WEBHOOK_SECRET.as_bytes(),
        header(cfa_alerts::signature::TIMESTAMP_HEADER),
        header(cfa_alerts::signature::SIGNATURE_HEADER),
        &body,
        std::time::SystemTime::now(),
        cfa_alerts::signature::DEFAULT_MAX_AGE,
    );
    if verified.is_err() {
        return axum::http::StatusCode::UNAUTHORIZED;
    }
    received.bodies.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
    axum::http::StatusCode::NO_CONTENT
}

/// The monitor's messages go out from the PocketBase outbox: the open and then the resolve of
/// an incident reach a webhook receiver, signed, once each, and nothing is left undelivered.
#[tokio::test]
async fn an_incidents_open_and_resolve_reach_a_webhook_from_the_pocketbase_outbox() {
    use std::os::unix::fs::PermissionsExt;
    let world = World::start().await;
    world.tenant("hook", PlanTier::Team, 1).await;
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/alerts", axum::routing::post(receive))
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("webhook.secret");
    std::fs::write(&secret_file, WEBHOOK_SECRET).unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config: cfa_alerts::AlertsConfig = toml::from_str(&format!(
        "[[webhook]]\nname = \"ops\"\nurl = \"{url}\"\nsecret_file = \"{}\"\n",
        secret_file.display()
    ))
    .unwrap();
    let channels = cfa_alerts::channels_from_config(&config).unwrap();
    let outbox = cfa_engine::PocketBaseOutbox::new(world.pb.clone());
    let dispatcher =
        cfa_alerts::Dispatcher::new(channels, outbox, cfa_alerts::RetryPolicy::default());

    let mut settings = world.settings.clone();
    settings.monitor.channels = vec!["ops".to_owned()];
    let mut policy = AlertPolicy::default_for(IncidentKind::Unhealthy);
    policy.pending_for = Duration::ZERO;
    policy.consecutive_failures = 1;
    settings.monitor.policies.set(IncidentKind::Unhealthy, policy).unwrap();
    let engine = world.engine_with(settings);
    let uuid = engine.provision(&bot_request("hook", "bot")).await.unwrap().service_uuid.unwrap();

    world.sandbox.inject(Fault::ContainerUnhealthy { service_uuid: Some(uuid), container: None });
    assert_eq!(engine.monitor_pass().await.unwrap().outbox_writes, 1);
    dispatcher.deliver_due().await;
    world.sandbox.clear_faults();
    assert_eq!(engine.monitor_pass().await.unwrap().outbox_writes, 1);
    dispatcher.deliver_due().await;

    let bodies = received.bodies.lock().unwrap().clone();
    let statuses: Vec<&str> = bodies.iter().filter_map(|body| body["status"].as_str()).collect();
    assert_eq!(statuses, ["firing", "resolved"], "{bodies:?}");
    assert_eq!(bodies[0]["incidents"][0]["stack"], "bot");
    assert_eq!(bodies[0]["incidents"][0]["kind"], "unhealthy");
    assert!(world.pb.outbox_undelivered(10).await.unwrap().is_empty(), "all delivered");
}

/// A server whose reserved memory crosses its threshold is one `capacity_low` incident, and a
/// service with our marker that no record claims is one `orphan_service` incident, resolved
/// once the service is gone; neither costs a Coolify call beyond the pass's list.
#[tokio::test]
async fn a_full_server_and_an_orphan_service_are_incidents_of_their_own() {
    use cfa_core::Resources;
    use cfa_engine::ServerSettings;
    let world = World::start().await;
    world.tenant("full", PlanTier::Team, 2).await;
    let mut settings = world.settings.clone();
    // 256 MB stacks on a box with 540 MB allocatable after the 2 GB system reserve: one stack
    // is 47% of it, two are 95%, past the 90% threshold.
    settings.servers.insert(
        world.sandbox.server_uuid(),
        ServerSettings::new("tiny box", Resources::new(4000, 2048 + 540, 50_000)),
    );
    let engine = world.engine_with(settings.clone());
    engine.provision(&bot_request("full", "one")).await.unwrap();
    let calm = engine.monitor_pass().await.unwrap();
    assert!(calm.opened.is_empty(), "{calm:?}");
    let ghost = engine.provision(&bot_request("full", "two")).await.unwrap();
    let full = engine.monitor_pass().await.unwrap();
    let server_key = format!("server:{}/capacity_low", world.sandbox.server_uuid());
    assert_eq!(full.opened, std::slice::from_ref(&server_key), "{full:?}");

    // The second stack's record removed by hand: its service is an orphan, and the server has
    // room again.
    let record = engine.stack("full", "two").await.unwrap();
    let unlink = cfa_pocketbase::StackPatch {
        coolify_service_uuid: Some(String::new()),
        ..cfa_pocketbase::StackPatch::default()
    };
    world.pb.stack_update(&record.id, &unlink).await.unwrap();
    world.pb.stack_delete(&record.id).await.unwrap();
    let orphaned = engine.monitor_pass().await.unwrap();
    let ghost_uuid = ghost.service_uuid.unwrap();
    assert_eq!(orphaned.opened, [format!("service:{ghost_uuid}/orphan_service")]);
    assert_eq!(orphaned.resolved, [server_key]);

    let removal = cfa_coolify::types::DeleteServiceOptions::default();
    world.coolify.delete_service_by_uuid(&ghost_uuid, removal).await.unwrap();
    for _ in 0..100 {
        if world.coolify.get_service_by_uuid(&ghost_uuid).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let gone = engine.monitor_pass().await.unwrap();
    assert_eq!(gone.resolved, [format!("service:{ghost_uuid}/orphan_service")]);
}

#[tokio::test]
async fn a_controller_that_stops_renewing_its_lease_is_one_incident_and_a_release_is_none() {
    let world = World::start().await;
    let engine = world.engine();
    let ttl = Duration::from_secs(1);
    let first = engine.monitor_under_lease("host-a:1", ttl).await.unwrap();
    assert!(matches!(first, cfa_engine::MonitorPass::Ran(ref report) if report.opened.is_empty()));
    // host-a dies without releasing: once its lease has run out, host-b takes over and says so.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let cfa_engine::MonitorPass::Ran(taken) =
        engine.monitor_under_lease("host-b:2", ttl).await.unwrap()
    else {
        panic!("host-a's lease ran out: host-b takes it");
    };
    assert_eq!(taken.opened, ["platform/controller_lease_lost"], "{taken:?}");
    let incidents = world.pb.incident_list(true, 10).await.unwrap();
    let detail = incidents[0].detail.clone().unwrap_or_default();
    assert!(detail.starts_with("controller `host-a:1` stopped renewing its lease"), "{detail}");
    let cfa_engine::MonitorPass::Ran(next) =
        engine.monitor_under_lease("host-b:2", ttl).await.unwrap()
    else {
        panic!("host-b renews its own lease");
    };
    assert_eq!(next.resolved, ["platform/controller_lease_lost"], "{next:?}");

    // A clean handover (host-b releases, host-c takes it) is no incident.
    engine.controller_release("host-b:2").await;
    let cfa_engine::MonitorPass::Ran(handed) =
        engine.monitor_under_lease("host-c:3", ttl).await.unwrap()
    else {
        panic!("a released lease is free");
    };
    assert!(handed.opened.is_empty(), "{handed:?}");
}

/// A `die` the host agent reported for `tenant/stack`, `seconds_ago` seconds ago.
fn died(tenant: &str, stack: &str, id: &str, exit_code: i64, seconds_ago: i64) -> NewHostEvent {
    NewHostEvent {
        event_id: id.to_owned(),
        server: "server-1".to_owned(),
        container_name: format!("bot-{stack}"),
        tenant: tenant.to_owned(),
        stack: stack.to_owned(),
        kind: "died".to_owned(),
        exit_code: Some(exit_code),
        healthy: None,
        at_ns: (jiff::Timestamp::now().as_second() - seconds_ago) * 1_000_000_000,
    }
}

#[tokio::test]
async fn three_crashes_in_ten_minutes_are_a_restart_loop_though_coolify_says_running() {
    let world = World::start().await;
    world.tenant("loop", PlanTier::Team, 2).await;
    let engine = monitoring(&world, IncidentKind::RestartLoop, 1);
    engine.provision(&bot_request("loop", "bot")).await.unwrap();

    // Two crashes near the end of the ten minutes, a clean stop (143) and an older crash that
    // do not count: one short of a loop.
    let events = [
        died("loop", "bot", "e1", 1, 592),
        died("loop", "bot", "e2", 143, 20),
        died("loop", "bot", "e3", 1, 15 * 60),
        died("loop", "bot", "e4", 2, 591),
    ];
    engine.record_host_events(&events).await.unwrap();
    let two = engine.monitor_pass().await.unwrap();
    assert!(!two.opened.iter().any(|key| key.ends_with("/restart_loop")), "{two:?}");
    // A third crash within the ten minutes: a restart loop, and the record says so.
    engine.record_host_events(&[died("loop", "bot", "e5", 1, 590)]).await.unwrap();
    let three = engine.monitor_pass().await.unwrap();
    let looping: Vec<&String> =
        three.opened.iter().filter(|key| key.ends_with("/restart_loop")).collect();
    assert_eq!(looping.len(), 1, "{three:?}");
    let record = engine.stack("loop", "bot").await.unwrap();
    assert_eq!(record.status, StackStatus::Error);
    let message = record.error_message.unwrap_or_default();
    assert!(message.contains("crashed 3 times in the last 10 min"), "{message}");
    // No new crash, but three still in the window: the loop stays open (no flapping).
    let still = engine.monitor_pass().await.unwrap();
    let about_the_loop = |keys: &[String]| keys.iter().any(|key| key.ends_with("/restart_loop"));
    assert!(!about_the_loop(&still.resolved) && !about_the_loop(&still.opened), "{still:?}");
    assert_eq!(engine.stack("loop", "bot").await.unwrap().status, StackStatus::Error);
    // Once they have left the window, Coolify's `running:healthy` decides: resolved.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let calm = engine.monitor_pass().await.unwrap();
    assert!(about_the_loop(&calm.resolved), "{calm:?}");
    assert_eq!(engine.stack("loop", "bot").await.unwrap().status, StackStatus::Running);
}

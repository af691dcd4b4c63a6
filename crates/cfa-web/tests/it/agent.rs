//! `POST /api/v1/agent/events`, as a host agent sends it: a signed batch is stored once (a
//! resend stores nothing twice) and wakes the monitor, whose next pass opens one OOM incident
//! for the stack; a wrong secret, an unknown server, a stale timestamp, or a batch naming
//! another server than its signed header is refused, and nothing is stored.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cfa_core::PlanTier;
use cfa_engine::ProvisionRequest;
use cfa_host_agent::signature::{SERVER_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use cfa_host_agent::{EVENTS_PATH, EventBatch, EventKind, HostEvent, sign};

use crate::harness::{AGENT_SECRET, ROUTER_URL, World};

fn event(server: &str, id: &str, kind: EventKind) -> HostEvent {
    HostEvent {
        id: id.to_owned(),
        server: server.to_owned(),
        container_id: "c0ffee".to_owned(),
        container_name: "bot-abc123".to_owned(),
        tenant: "oomco".to_owned(),
        stack: "bot".to_owned(),
        kind,
        at: 1_764_000_000_000_000_000,
    }
}

/// Sends `batch` as server `server` signed with `secret`, `age` seconds ago.
async fn send(world: &World, server: &str, secret: &[u8], batch: &EventBatch, age: u64) -> u16 {
    let body = serde_json::to_vec(batch).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let timestamp = now - age;
    world
        .http
        .post(format!("{}{EVENTS_PATH}", world.base_url))
        .header(SERVER_HEADER, server)
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, sign(secret, timestamp, &body))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_signed_oom_report_is_stored_once_and_opens_one_incident() {
    let world = World::start().await;
    let owner = world.owner("oomco", PlanTier::Team).await;
    let _ = owner;
    let request = ProvisionRequest {
        tenant: "oomco".to_owned(),
        stack: "bot".to_owned(),
        template: "telegram-bot".to_owned(),
        parameters: [
            ("telegram_bot_token", "123456789:AAagentTestTokenValue-abcdefghij"),
            ("router_base_url", ROUTER_URL),
            ("router_api_key", "sk-agent-test-router-key-0123456789"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect(),
        preferred_server: None,
    };
    world.engine.provision(&request).await.unwrap();
    let server = world.sandbox.server_uuid();
    let batch = EventBatch {
        server: server.clone(),
        events: vec![
            event(&server, "ev-oom-1", EventKind::Oom),
            event(&server, "ev-die-1", EventKind::Died { exit_code: 137 }),
        ],
        dropped: 0,
    };

    // Refused: nothing stored, the monitor not woken.
    assert_eq!(send(&world, &server, b"not-the-secret-at-all", &batch, 0).await, 401);
    assert_eq!(send(&world, "another-server", AGENT_SECRET, &batch, 0).await, 401);
    assert_eq!(send(&world, &server, AGENT_SECRET, &batch, 3600).await, 401, "stale");
    let mut forged = batch.clone();
    forged.server = "another-server".to_owned();
    assert_eq!(send(&world, &server, AGENT_SECRET, &forged, 0).await, 401);
    assert!(world.pb.host_events_unseen().await.unwrap().is_empty());

    // Accepted, and a resend after an outage stores nothing twice.
    assert_eq!(send(&world, &server, AGENT_SECRET, &batch, 0).await, 204);
    assert_eq!(send(&world, &server, AGENT_SECRET, &batch, 0).await, 204);
    assert_eq!(world.pb.host_events_unseen().await.unwrap().len(), 2);
    tokio::time::timeout(Duration::from_secs(1), world.monitor_wake.notified())
        .await
        .expect("the monitor is woken");

    let report = world.engine.monitor_pass().await.unwrap();
    let keys: Vec<&str> = report.opened.iter().map(String::as_str).collect();
    assert_eq!(keys.len(), 1, "one OOM incident, the exit 137 is part of it: {keys:?}");
    assert!(
        keys[0].starts_with("stack:oomco/bot#") && keys[0].ends_with("/oom_killed"),
        "{keys:?}"
    );
    assert_eq!(report.events_seen, 2);
    assert!(world.pb.host_events_unseen().await.unwrap().is_empty(), "folded in once");
    let incidents = world.pb.incident_list(true, 10).await.unwrap();
    let detail = incidents[0].detail.clone().unwrap_or_default();
    assert!(detail.contains("bot-abc123") && detail.contains("OOM"), "{detail}");

    // Healthy by Coolify's word, but not restarted since the kill: still open.
    let stale = world.engine.monitor_pass().await.unwrap();
    assert!(stale.resolved.is_empty(), "{stale:?}");
    // The agent saw the container start again: the OOM incident resolves.
    let mut started = event(&server, "ev-start-1", EventKind::Started);
    started.at += 1_000_000_000;
    let restart = EventBatch { server: server.clone(), events: vec![started], dropped: 0 };
    assert_eq!(send(&world, &server, AGENT_SECRET, &restart, 0).await, 204);
    let recovered = world.engine.monitor_pass().await.unwrap();
    assert_eq!(recovered.resolved, keys);
}

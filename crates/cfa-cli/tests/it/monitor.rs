//! `cfa monitor --once` and `cfa alerts`, the real binary: a stack turned unhealthy opens an
//! incident that `cfa alerts list` shows and a configured webhook receives, signed; `cfa
//! alerts ack` holds its reminders back and is audited; the recovery resolves it, and the
//! webhook gets the resolve.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

use coolify_sandbox::Fault;
use serde_json::Value;

use crate::lifecycle::{World, bot_args, cfa_owned};

const SECRET: &str = "cli-monitor-test-webhook-secret";

async fn receive(
    axum::extract::State(bodies): axum::extract::State<Arc<Mutex<Vec<Value>>>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or("");
    let verified = cfa_alerts::signature::verify_signature(
        SECRET.as_bytes(),
        header(cfa_alerts::signature::TIMESTAMP_HEADER),
        header(cfa_alerts::signature::SIGNATURE_HEADER),
        &body,
        std::time::SystemTime::now(),
        cfa_alerts::signature::DEFAULT_MAX_AGE,
    );
    if verified.is_err() {
        return axum::http::StatusCode::UNAUTHORIZED;
    }
    bodies.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
    axum::http::StatusCode::NO_CONTENT
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_is_listed_acknowledged_and_delivered_to_a_webhook() {
    let world = World::start().await;
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/alerts", axum::routing::post(receive))
        .with_state(bodies.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // The secret file sits next to cfa.toml and is named relative to it.
    let secret_file = world.config.with_file_name("webhook.secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut config = std::fs::read_to_string(&world.config).unwrap();
    config.push_str(&format!(
        "[monitor.kinds.unhealthy]\npending = \"0s\"\nchecks = 1\n\
         [[alerts.webhook]]\nname = \"ops\"\nurl = \"{url}\"\nsecret_file = \"webhook.secret\"\n"
    ));
    std::fs::write(&world.config, config).unwrap();

    let created = world.cfa(&["tenant", "create", "acme", "--owner-email", "ops@acme.test"]).await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let provisioned = cfa_owned(&world, &bot_args("acme", "bot", &["--output", "json"])).await;
    assert_eq!(provisioned.code, 0, "{}", provisioned.stderr);
    let uuid = provisioned.json()["coolify_service_uuid"].as_str().unwrap().to_owned();

    let calm = world.cfa(&["monitor", "--once", "--output", "json"]).await;
    assert_eq!(calm.code, 0, "{}", calm.stderr);
    assert_eq!(
        (calm.json()["stacks_checked"].as_u64(), calm.json()["writes"].as_u64()),
        (Some(1), Some(0))
    );

    world.sandbox.inject(Fault::ContainerUnhealthy { service_uuid: Some(uuid), container: None });
    let fired = world.cfa(&["monitor", "--once"]).await;
    assert_eq!(fired.code, 0, "{}", fired.stderr);
    assert!(
        fired.stdout.contains("1 incidents opened") && fired.stdout.contains("acme/bot"),
        "{}",
        fired.stdout
    );
    assert_eq!(bodies.lock().unwrap().len(), 1, "delivered in the same run");
    assert_eq!(bodies.lock().unwrap()[0]["status"], "firing");

    let listed = world.cfa(&["alerts", "list", "--output", "json"]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let incident = listed.json()["incidents"][0].clone();
    assert_eq!(
        (incident["kind"].as_str(), incident["stack"].as_str()),
        (Some("unhealthy"), Some("bot"))
    );
    assert_eq!(listed.json()["undelivered_messages"], 0);
    let status = world.cfa(&["status", "acme/bot", "--output", "json"]).await;
    assert!(status.stdout.contains("\"error\""), "the record turned error: {}", status.stdout);

    let id = incident["id"].as_str().unwrap();
    let acked = world.cfa(&["alerts", "ack", id, "--for", "2h"]).await;
    assert_eq!(acked.code, 0, "{}", acked.stderr);
    assert!(acked.stdout.contains("acknowledged for 2h"), "{}", acked.stdout);
    let audit = world.cfa(&["audit", "--output", "json"]).await;
    assert!(audit.stdout.contains("incident.acknowledge"), "{}", audit.stdout);
    let unknown = world.cfa(&["alerts", "ack", "nosuchincident00"]).await;
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);

    world.sandbox.clear_faults();
    let recovered = world.cfa(&["monitor", "--once"]).await;
    assert_eq!(recovered.code, 0, "{}", recovered.stderr);
    assert!(recovered.stdout.contains("1 resolved"), "{}", recovered.stdout);
    let statuses: Vec<String> = bodies
        .lock()
        .unwrap()
        .iter()
        .map(|body| body["status"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(statuses, ["firing", "resolved"]);
    let firing = world.cfa(&["alerts", "list", "--output", "json"]).await;
    assert_eq!(firing.json()["incidents"], serde_json::json!([]));
}

//! The lifecycle against `--runtime simulated --status-interval 30s` with `[engine]
//! status_lag = "30s"`: after each start Coolify reads `exited` (the stored status of a new or
//! stopped service) until its next status run, and no step is failed by it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use coolify_sandbox::RuntimeKind;

use crate::lifecycle::{BOT_TOKEN, ROUTER_KEY};
use crate::world::{Setup, World};

/// Every status Coolify's API showed for any service while `cfa` ran.
fn watch_statuses(world: &World) -> (Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let url = format!("{}/api/v1/services", world.sandbox.base_url());
    let token = world.sandbox.token().to_owned();
    let record = seen.clone();
    let watcher = tokio::spawn(async move {
        let client = reqwest::Client::new();
        loop {
            if let Ok(answer) = client.get(&url).bearer_auth(&token).send().await
                && let Ok(services) = answer.json::<Vec<serde_json::Value>>().await
            {
                for service in services {
                    if let Some(status) = service["status"].as_str() {
                        record.lock().unwrap().push(status.to_owned());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    (seen, watcher)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lifecycle_across_a_30_s_status_lag_is_never_falsely_failed() {
    let world = World::start(Setup {
        runtime: RuntimeKind::Simulated,
        status_interval: Duration::from_secs(30),
        status_lag: Duration::from_secs(30),
        poll_interval: Duration::from_millis(500),
        tag: format!("simulated-{}", std::process::id()),
    })
    .await;
    let created =
        world.cfa(&["tenant", "create", "lagco", "--owner-email", "ops@lagco.test"]).await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let (seen, watcher) = watch_statuses(&world);
    let params = |model: &str| -> Vec<String> {
        [
            "router_base_url=https://router.agents.test/v1".to_owned(),
            format!("router_api_key={ROUTER_KEY}"),
            format!("telegram_bot_token={BOT_TOKEN}"),
            format!("model={model}"),
        ]
        .into_iter()
        .flat_map(|param| ["--param".to_owned(), param])
        .collect()
    };
    let mut provision: Vec<String> = [
        "provision",
        "--tenant",
        "lagco",
        "--template",
        "telegram-bot",
        "--stack",
        "bot",
        "--output",
        "json",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    provision.extend(params("gpt-4o-mini"));
    let provisioned = world.cfa_owned(&provision).await;
    assert_eq!(provisioned.code, 0, "provision: {}", provisioned.stderr);
    assert_eq!(provisioned.json()["status"], "running");
    assert!(
        seen.lock().unwrap().iter().any(|status| status.starts_with("exited")),
        "Coolify never showed the stale exited, so the lag was not crossed: {:?}",
        seen.lock().unwrap()
    );

    let suspended = world.cfa(&["suspend", "lagco/bot", "--output", "json"]).await;
    assert_eq!(suspended.code, 0, "suspend: {}", suspended.stderr);
    assert_eq!(suspended.json()["status"], "stopped");

    seen.lock().unwrap().clear();
    let resumed = world.cfa(&["resume", "lagco/bot", "--output", "json"]).await;
    assert_eq!(resumed.code, 0, "resume: {}", resumed.stderr);
    assert_eq!(resumed.json()["status"], "running");
    assert!(
        seen.lock().unwrap().iter().any(|status| status.starts_with("exited")),
        "the resume crossed the stale exited: {:?}",
        seen.lock().unwrap()
    );

    let mut upgrade: Vec<String> =
        ["upgrade", "lagco/bot", "--output", "json"].iter().map(|arg| (*arg).to_owned()).collect();
    upgrade.extend(params("gpt-4o-upgraded"));
    let upgraded = world.cfa_owned(&upgrade).await;
    assert_eq!(upgraded.code, 0, "upgrade: {}", upgraded.stderr);
    assert_eq!(upgraded.json()["status"], "running");

    let status = world.cfa(&["status", "lagco/bot", "--output", "json"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert_eq!(status.json()[0]["status"], "running", "{}", status.stdout);

    let deleted = world.cfa(&["delete", "lagco/bot", "--force"]).await;
    assert_eq!(deleted.code, 0, "delete: {}", deleted.stderr);
    let listed = world.cfa(&["list", "--output", "json"]).await;
    assert_eq!(listed.json().as_array().unwrap().len(), 0);
    watcher.abort();
}

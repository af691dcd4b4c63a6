//! `--no-wait`: provision, resume and upgrade return once Coolify has the start or restart
//! queued, the stack `deploying`; each `cfa reconcile --no-wait` is one activation that looks
//! once and returns, and one of them finishes the deploy, as the controller's would. The
//! upgrade's restart is judged as a restart by a process that did not queue it (the audit
//! log says so), so the old containers are never taken for the new ones.

use std::time::Duration;

use serde_json::Value;

use crate::lifecycle::{BOT_TOKEN, ROUTER_KEY, World, bot_args, cfa_owned};

/// Runs `cfa reconcile <stack> --no-wait` until an activation is not `in_progress`; returns
/// how many were, and the last activation.
async fn reconcile_until_done(world: &World, stack: &str) -> (usize, Value) {
    for in_progress in 0..200 {
        let run = world.cfa(&["reconcile", stack, "--no-wait", "--output", "json"]).await;
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        let activation = run.json();
        if activation["result"] != "in_progress" {
            return (in_progress, activation);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("`{stack}` still in progress after 200 activations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_wait_returns_once_queued_and_activations_finish_the_deploy() {
    // Coolify stores container statuses every 2 s: right after the restart is queued it still
    // reports the old container `running:healthy`.
    let world = World::start_with_status_lag(Duration::from_secs(4), Duration::from_secs(2)).await;
    let created = world.cfa(&["tenant", "create", "acme", "--owner-email", "ops@acme.test"]).await;
    assert_eq!(created.code, 0, "{}", created.stderr);

    // Provision: back before the containers run.
    let provisioned =
        cfa_owned(&world, &bot_args("acme", "bot", &["--no-wait", "--output", "json"])).await;
    assert_eq!(provisioned.code, 0, "{}", provisioned.stderr);
    assert_eq!(provisioned.json()["status"], "deploying", "{}", provisioned.stdout);
    let (looks, done) = reconcile_until_done(&world, "acme/bot").await;
    assert!(looks > 0, "the first activation came before the 4 s deploy ended: {done}");
    assert_eq!(done["result"], "acted", "{done}");
    assert_eq!(done["status"], "running", "{done}");

    // Resume: the same, from a suspended stack.
    let suspended = world.cfa(&["suspend", "acme/bot"]).await;
    assert_eq!(suspended.code, 0, "{}", suspended.stderr);
    let resumed = world.cfa(&["resume", "acme/bot", "--no-wait", "--output", "json"]).await;
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(resumed.json()["status"], "deploying", "{}", resumed.stdout);
    let text = world.cfa(&["status", "acme/bot"]).await;
    assert!(text.stdout.contains("deploying"), "{}", text.stdout);
    let (looks, done) = reconcile_until_done(&world, "acme/bot").await;
    assert!(looks > 0, "{done}");
    assert_eq!(done["status"], "running", "{done}");

    // Upgrade: the restart is queued, the old container still runs; another process's
    // activation knows from the audit log that it waits for a restart.
    let token = format!("telegram_bot_token={BOT_TOKEN}");
    let key = format!("router_api_key={ROUTER_KEY}");
    let upgraded = world
        .cfa(&[
            "upgrade",
            "acme/bot",
            "--no-wait",
            "--output",
            "json",
            "--param",
            "router_base_url=https://router.agents.test/v1",
            "--param",
            &token,
            "--param",
            &key,
            "--param",
            "model=gpt-4o",
        ])
        .await;
    assert_eq!(upgraded.code, 0, "{}", upgraded.stderr);
    assert_eq!(upgraded.json()["status"], "deploying", "{}", upgraded.stdout);
    assert_eq!(upgraded.json()["changed"], true, "{}", upgraded.stdout);
    let (looks, done) = reconcile_until_done(&world, "acme/bot").await;
    assert!(looks > 0, "the old container was taken for the restarted one: {done}");
    assert_eq!(done["status"], "running", "{done}");

    // `--wait` is the default and may be said; the last of the two flags wins.
    let waited = world.cfa(&["resume", "acme/bot", "--no-wait", "--wait"]).await;
    assert_eq!(waited.code, 0, "{}", waited.stderr);
    assert!(waited.stdout.contains("resumed: running"), "{}", waited.stdout);
}

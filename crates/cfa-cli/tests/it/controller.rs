//! `cfa controller --once` and `cfa reconcile`: what records ask for is carried out with no
//! operator verb, a stack without its secrets waits and says so, a pass with a failure exits 1
//! (the next pass retries), and a controller that finds the lease held exits 3, naming who.

use cfa_core::StackStatus;
use cfa_pocketbase::{NewStack, StackFilter, StackPatch};
use coolify_sandbox::Fault;
use serde_json::json;

use crate::lifecycle::{World, bot_args, cfa_owned};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_carries_out_what_records_ask_for() {
    let world = World::start().await;
    let created = world
        .cfa(&["tenant", "create", "acme", "--owner-email", "ops@acme.test", "--max-stacks", "2"])
        .await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let provisioned = cfa_owned(&world, &bot_args("acme", "bot", &[])).await;
    assert_eq!(provisioned.code, 0, "{}", provisioned.stderr);
    let pb = world.pocketbase.superuser().await.unwrap();
    let record = pb.stack_list_all(&StackFilter::default(), false).await.unwrap().remove(0);

    // Another controller holds the lease: exit 3, naming it; released, this one runs.
    let ttl = std::time::Duration::from_secs(30);
    assert!(pb.lease_acquire("controller", "other-host:7", ttl).await.unwrap().acquired);
    let held = world.cfa(&["controller", "--once"]).await;
    assert_eq!(held.code, 3, "{}\n{}", held.stdout, held.stderr);
    assert!(held.stderr.contains("other-host:7"), "{}", held.stderr);
    pb.lease_release("controller", "other-host:7").await.unwrap();

    // Nothing asked.
    let idle = world.cfa(&["controller", "--once", "--output", "json"]).await;
    assert_eq!(idle.code, 0, "{}", idle.stderr);
    assert_eq!(idle.json()["stacks_seen"], 1);
    assert_eq!(idle.json()["activations"], json!([]));

    // `stopped` written by someone else (the tenant, the business's frontend).
    let stop = StackPatch { status: Some(StackStatus::Stopped), ..StackPatch::default() };
    pb.stack_update(&record.id, &stop).await.unwrap();
    let pass = world.cfa(&["controller", "--once", "--output", "json"]).await;
    assert_eq!(pass.code, 0, "{}", pass.stderr);
    let activation = &pass.json()["activations"][0];
    assert_eq!(activation["result"], "acted", "{activation}");
    assert_eq!(activation["operation"], "suspend");
    let service = record.coolify_service_uuid.clone().unwrap();
    let coolify_status = world.cfa(&["status", "acme/bot", "--output", "json"]).await;
    assert!(coolify_status.stdout.contains("exited"), "{}", coolify_status.stdout);

    // A record created without its secrets waits, and says which.
    let mut helper = NewStack::pending(&record.tenant_id, "telegram-bot", "helper");
    helper.config = json!({ "router_base_url": "https://router.agents.test/v1" });
    pb.stack_create(&helper).await.unwrap();
    let waiting = world.cfa(&["reconcile", "acme/helper"]).await;
    assert_eq!(waiting.code, 0, "{}", waiting.stderr);
    assert!(
        waiting.stdout.contains("waiting") && waiting.stdout.contains("`telegram_bot_token`"),
        "{}",
        waiting.stdout
    );

    // Coolify failing: the pass says which stack failed and exits 1.
    let resume = StackPatch { status: Some(StackStatus::Pending), ..StackPatch::default() };
    pb.stack_update(&record.id, &resume).await.unwrap();
    world.sandbox.inject(Fault::ServerError {
        requests: 1000,
        status: 500,
        service_uuid: Some(service),
    });
    let failing = world.cfa(&["controller", "--once"]).await;
    assert_eq!(failing.code, 1, "{}\n{}", failing.stdout, failing.stderr);
    assert!(failing.stdout.contains("acme/bot: failed"), "{}", failing.stdout);
    // What the last pass saw and did stays on the lease.
    let status = world.cfa(&["status", "--controller"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(status.stdout.contains("not running"), "{}", status.stdout);
    assert!(
        status.stdout.contains("2 stacks seen") && status.stdout.contains("1 failed"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("failed: acme/bot:"), "{}", status.stdout);
    let status = world.cfa(&["status", "--controller", "--output", "json"]).await;
    assert_eq!(status.json()["last_pass"]["failed"], 1, "{}", status.stdout);
    // Each --once run gave the lease up: another controller takes it at once.
    assert!(pb.lease_acquire("controller", "other-host:7", ttl).await.unwrap().acquired);
}

/// A running controller (its resync an hour away) is woken by PocketBase's realtime event and
/// carries a `stopped` out within seconds; a second controller meanwhile exits 3, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_controller_is_woken_by_a_request() {
    let world = World::start().await;
    let created = world.cfa(&["tenant", "create", "live", "--owner-email", "ops@live.test"]).await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let provisioned = cfa_owned(&world, &bot_args("live", "bot", &[])).await;
    assert_eq!(provisioned.code, 0, "{}", provisioned.stderr);
    let pb = world.pocketbase.superuser().await.unwrap();
    let record = pb.stack_list_all(&StackFilter::default(), false).await.unwrap().remove(0);

    let mut controller = tokio::process::Command::new(env!("CARGO_BIN_EXE_cfa"))
        .args(["controller", "--interval-seconds", "3600"])
        .env("CFA_CONFIG", &world.config)
        .env("CFA_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Its first pass has nothing to do; wait until it holds the lease.
    let pid = format!(":{}", controller.id().unwrap());
    let mut held = false;
    for _ in 0..100 {
        let status = world.cfa(&["status", "--controller", "--output", "json"]).await;
        let lease = status.json();
        if lease["held"] == true
            && lease["holder"].as_str().is_some_and(|holder| holder.ends_with(&pid))
        {
            held = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(held, "the running controller took the lease");
    let second = world.cfa(&["controller", "--once"]).await;
    assert_eq!(second.code, 3, "{}\n{}", second.stdout, second.stderr);
    assert!(second.stderr.contains(&pid), "{}", second.stderr);

    let stop = StackPatch { status: Some(StackStatus::Stopped), ..StackPatch::default() };
    pb.stack_update(&record.id, &stop).await.unwrap();
    let mut stopped = false;
    for _ in 0..150 {
        let status = world.cfa(&["status", "live/bot", "--output", "json"]).await;
        if status.stdout.contains("exited") {
            stopped = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(stopped, "the controller did not carry the request out within 15 s");
    controller.kill().await.unwrap();
}

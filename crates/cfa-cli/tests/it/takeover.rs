//! The controller as a process that can die: killed in the middle of a provision, the next
//! controller takes the lease over once it expires and finishes the work, with no twin; and a
//! running controller outlives a PocketBase restart (it resubscribes and resyncs).

use std::time::Duration;

use cfa_core::StackStatus;
use cfa_pocketbase::{StackFilter, StackPatch};
use serde_json::json;

use crate::lifecycle::{World, bot_args, cfa_owned};
use crate::support::eventually;

fn controller(world: &World, lease_seconds: &str) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_cfa"))
        .args(["controller", "--interval-seconds", "1", "--lease-seconds", lease_seconds])
        .env("CFA_CONFIG", &world.config)
        .env("CFA_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_mid_provision_leaves_work_the_next_one_finishes_without_a_twin() {
    // Every start takes 4 s in Coolify: long enough to kill the controller while it waits.
    let world = World::start_with_deploy_delay(Duration::from_secs(4)).await;
    let created =
        world.cfa(&["tenant", "create", "crash", "--owner-email", "ops@crash.test"]).await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let pb = world.pocketbase.superuser().await.unwrap();

    let mut first = Some(controller(&world, "3"));
    // The operator starts a provision and it dies while the deploy runs, and so does the
    // controller (which holds the lease): the record is left `deploying`.
    let provision_args = bot_args("crash", "bot", &[]);
    let world_config = world.config.clone();
    let background = tokio::spawn(async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_cfa"))
            .args(&provision_args)
            .env("CFA_CONFIG", world_config)
            .kill_on_drop(true)
            .output()
            .await
            .unwrap()
    });
    let deploying = eventually(20, "the stack is deploying", || {
        let pb = pb.clone();
        async move {
            let records = pb.stack_list_all(&StackFilter::default(), false).await.ok()?;
            records.into_iter().find(|record| {
                record.status == StackStatus::Deploying && record.coolify_service_uuid.is_some()
            })
        }
    })
    .await;
    // The operator's command dies, and so does the controller; the record says `deploying`.
    background.abort();
    if let Some(mut child) = first.take() {
        child.kill().await.unwrap();
    }
    assert_eq!(pb.stack_view(&deploying.id, false).await.unwrap().status, StackStatus::Deploying);

    // A second controller waits for the dead one's lease to expire, then finishes the deploy.
    let mut second = controller(&world, "3");
    let running = eventually(40, "the stack runs", || {
        let pb = pb.clone();
        let id = deploying.id.clone();
        async move {
            let record = pb.stack_view(&id, false).await.ok()?;
            (record.status == StackStatus::Running).then_some(record)
        }
    })
    .await;
    assert_eq!(running.coolify_service_uuid, deploying.coolify_service_uuid, "no twin");
    let listed = world.cfa(&["drift", "--output", "json"]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert_eq!(listed.json()["services_seen"], 1, "{}", listed.stdout);
    assert_eq!(listed.json()["orphans"], json!([]), "{}", listed.stdout);
    second.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_controller_outlives_a_pocketbase_restart() {
    let mut world = World::start().await;
    let created =
        world.cfa(&["tenant", "create", "phoenix", "--owner-email", "ops@phx.test"]).await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let provisioned = cfa_owned(&world, &bot_args("phoenix", "bot", &[])).await;
    assert_eq!(provisioned.code, 0, "{}", provisioned.stderr);
    let mut running = tokio::process::Command::new(env!("CARGO_BIN_EXE_cfa"))
        .args(["controller", "--interval-seconds", "3600"])
        .env("CFA_CONFIG", &world.config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;

    world.pocketbase.restart().await.unwrap();
    let pb = world.pocketbase.superuser().await.unwrap();
    let record = pb.stack_list_all(&StackFilter::default(), false).await.unwrap().remove(0);
    // The resync interval is an hour away: only a resubscribed realtime stream (or the full
    // pass after a reconnect) can carry this out.
    let stop = StackPatch { status: Some(StackStatus::Stopped), ..StackPatch::default() };
    pb.stack_update(&record.id, &stop).await.unwrap();
    eventually(30, "the containers stop after PocketBase came back", || {
        let world = &world;
        async move {
            let status = world.cfa(&["status", "phoenix/bot", "--output", "json"]).await;
            status.stdout.contains("exited").then_some(())
        }
    })
    .await;
    running.kill().await.unwrap();
}

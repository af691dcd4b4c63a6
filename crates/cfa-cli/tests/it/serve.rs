//! Tenant self-service end to end, with only `cfa serve` running: the tenant, with its own
//! PocketBase token, creates a stack in PocketBase, sends its secrets to `cfa serve`'s API,
//! and the stack runs; it suspends, resumes and deletes it the same way. No operator command.

use std::time::Duration;

use cfa_pocketbase::NewTenant;
use cfa_pocketbase::testing::USER_PASSWORD;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::lifecycle::World;
use crate::support::eventually;

const BOT_TOKEN: &str = "123456789:AAserveSecretBotToken-0123456789abc";
const ROUTER_KEY: &str = "sk-serve-router-secret-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_runs_its_stack_with_only_cfa_serve_running() {
    let world = World::start().await;
    let pb = world.pocketbase.superuser().await.unwrap();
    let (user_id, _) = world.pocketbase.user("owner@solo.test").await.unwrap();
    let tenant = pb
        .tenant_create(&NewTenant {
            name: "Solo".to_owned(),
            slug: "solo".to_owned(),
            user_id,
            max_stacks: Some(1),
            plan_tier: Some(cfa_core::PlanTier::Team),
            resource_limits: None,
        })
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{}/api/collections/users/auth-with-password", world.pocketbase.url()))
        .json(&json!({ "identity": "owner@solo.test", "password": USER_PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();

    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_cfa"))
        .args(["serve", "--listen", "127.0.0.1:0", "--interval-seconds", "3600"])
        .env("CFA_CONFIG", &world.config)
        .env("CFA_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(world.config.with_file_name("serve.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(serve.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("cfa serve says where it listens")
        .unwrap()
        .unwrap();
    let api = first.strip_prefix("listening on ").expect(&first).to_owned();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let health: Value =
        http.get(format!("{api}/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");

    // The tenant creates its stack in PocketBase, as its frontend would.
    let records = format!("{}/api/collections/agent_stacks/records", world.pocketbase.url());
    let created: Value = http
        .post(&records)
        .header("Authorization", &token)
        .json(&json!({
            "tenant_id": tenant.id, "template": "telegram-bot", "stack_name": "assistant",
            "status": "pending", "config": { "model": "gpt-4o-mini" },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let record_id = created["id"].as_str().unwrap_or_else(|| panic!("{created}")).to_owned();
    let record_url = format!("{records}/{record_id}");
    let read = || {
        let (http, url, token) = (http.clone(), record_url.clone(), token.clone());
        async move {
            let response = http.get(&url).header("Authorization", &token).send().await.unwrap();
            match response.status().as_u16() {
                200 => Some(response.json::<Value>().await.unwrap()),
                _ => None,
            }
        }
    };

    // Its secrets go to cfa serve once the controller created the service (409 until then).
    let secrets = json!({ "telegram_bot_token": BOT_TOKEN, "router_api_key": ROUTER_KEY });
    let takes_effect = eventually(20, "the secrets are accepted", || {
        let request = http
            .put(format!("{api}/api/v1/tenant/stacks/{record_id}/secrets"))
            .header("Authorization", format!("Bearer {token}"))
            .json(&secrets);
        async move {
            let response = request.send().await.unwrap();
            match response.status().as_u16() {
                204 => Some(response.headers()["cfa-takes-effect"].to_str().unwrap().to_owned()),
                409 => None,
                other => panic!("{other}: {}", response.text().await.unwrap()),
            }
        }
    })
    .await;
    assert_eq!(takes_effect, "deploy");
    let running = eventually(30, "the stack runs", || {
        let read = read();
        async move { read.await.filter(|record| record["status"] == "running") }
    })
    .await;
    assert_eq!(running["error_message"], "");
    let service_uuid = running["coolify_service_uuid"].as_str().unwrap().to_owned();
    assert!(!running.to_string().contains(ROUTER_KEY), "no secret in the record");

    // Suspend, resume: the tenant writes the status, the controller carries it out.
    let patch = |body: Value| {
        let request = http.patch(&record_url).header("Authorization", &token).json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        }
    };
    patch(json!({ "status": "stopped" })).await;
    let coolify_service = |http: reqwest::Client| {
        let url = format!("{}/api/v1/services/{service_uuid}", world.sandbox.base_url());
        let token = world.sandbox.token().to_owned();
        async move {
            let response = http.get(url).bearer_auth(token).send().await.unwrap();
            match response.status().as_u16() {
                404 => None,
                _ => Some(response.json::<Value>().await.unwrap()),
            }
        }
    };
    eventually(30, "the containers stop", || {
        let service = coolify_service(http.clone());
        async move {
            let status = service.await?["status"].as_str()?.to_owned();
            status.starts_with("exited").then_some(())
        }
    })
    .await;
    patch(json!({ "status": "pending" })).await;
    eventually(30, "the stack runs again", || {
        let read = read();
        async move { read.await.filter(|record| record["status"] == "running") }
    })
    .await;

    // Delete: asked on the record, carried out after the grace period (1 s here); the record
    // goes last, and with it the quota slot.
    patch(json!({ "delete_requested_at": "2001-01-01 00:00:00.000Z" })).await;
    eventually(30, "the record is gone", || {
        let read = read();
        async move { read.await.is_none().then_some(()) }
    })
    .await;
    assert!(coolify_service(http.clone()).await.is_none(), "the service is gone");
    serve.kill().await.unwrap();
}

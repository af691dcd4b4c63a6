//! The tenant API as a tenant and as an attacker uses it: only its own stacks, only the
//! secrets its template declares, values only into Coolify (never PocketBase), credentials
//! out, and a record nobody prepared yet answered with 409 and `Retry-After`.

use cfa_core::{PlanTier, StackStatus};
use cfa_engine::Reconciled;
use serde_json::{Value, json};

use crate::harness::World;

const BOT_TOKEN: &str = "123456789:AAtenantApiSecretBotToken-0123456789";
const ROUTER_KEY: &str = "sk-tenant-api-router-key-0123456789";
const ROUTER_KEY_ROTATED: &str = "sk-tenant-api-rotated-key-9876543210";

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_sends_its_secrets_and_its_stack_deploys_with_them() {
    let world = World::start().await;
    let owner = world.owner("selfserve", PlanTier::Team).await;
    let other = world.owner("nosy", PlanTier::Team).await;
    let record_id = world.tenant_creates_stack(&owner, "telegram-bot", "helper", json!({})).await;
    let both = json!({ "telegram_bot_token": BOT_TOKEN, "router_api_key": ROUTER_KEY }).to_string();

    // Who: no token, a malformed one, a forged one, a superuser's, another tenant's.
    let (status, body) = error_of(world.put_secrets(None, &record_id, &both).await).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["hint"].as_str().unwrap().contains("Bearer"), "{body}");
    let response = world.put_secrets(Some("not a token; drop table"), &record_id, &both).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let forged = format!("{}x", &owner.token[..owner.token.len() - 1]);
    assert_eq!(world.put_secrets(Some(&forged), &record_id, &both).await.status(), 401);
    let superuser = world.token(cfa_pocketbase::testing::SUPERUSER_EMAIL, "_superusers").await;
    assert_eq!(world.put_secrets(Some(&superuser), &record_id, &both).await.status(), 401);
    let (status, body) =
        error_of(world.put_secrets(Some(&other.token), &record_id, &both).await).await;
    assert_eq!(status, 404, "another tenant's record is not found: {body}");
    let (status, _) =
        error_of(world.put_secrets(Some(&owner.token), "zzzzzzzzzzzzzzz", &both).await).await;
    assert_eq!(status, 404, "the same answer as for an unknown record");
    assert_eq!(world.put_secrets(Some(&owner.token), "../../x", &both).await.status(), 404);

    // Before the controller prepared the record: 409, retry later.
    let response = world.put_secrets(Some(&owner.token), &record_id, &both).await;
    assert_eq!(response.status(), 409);
    assert!(response.headers().contains_key("retry-after"));

    // The controller's activation creates the service, not started, and waits.
    let waiting = world.engine.reconcile("selfserve", "helper").await.unwrap();
    assert!(matches!(waiting, Reconciled::Waiting { .. }), "{waiting:?}");
    let record = world.engine.stack("selfserve", "helper").await.unwrap();
    let service_uuid = record.coolify_service_uuid.clone().expect("prepared");

    // What: only the template's secret parameters, well-formed, as strings.
    for (body, expected) in [
        (json!({ "model": "gpt-4o" }), "not a secret"),
        (json!({ "admin_password": "x" }), "no such parameter"),
        (json!({ "telegram_bot_token": "not-a-token" }), "telegram_bot_token"),
        // Coolify would replace a shared-variable placeholder even in a literal variable.
        (json!({ "router_api_key": "sk-{{team.STRIPE_KEY}}" }), "router_api_key"),
        (json!({ "router_api_key": 42 }), "not a string"),
        (json!({}), "no parameter"),
        (json!(["router_api_key"]), "not a JSON object"),
    ] {
        let (status, answer) =
            error_of(world.put_secrets(Some(&owner.token), &record_id, &body.to_string()).await)
                .await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(expected), "{body}: {answer}");
    }
    let huge = json!({ "router_api_key": "k".repeat(100_000) }).to_string();
    assert_eq!(world.put_secrets(Some(&owner.token), &record_id, &huge).await.status(), 413);
    let unset = world.variables(&service_uuid).await;
    assert!(
        unset.iter().all(|(key, value)| !key.ends_with("_KEY") || value.is_empty()),
        "nothing refused was written: {unset:?}"
    );

    // One secret, then the other: merged, 204, the deploy follows.
    let first = json!({ "telegram_bot_token": BOT_TOKEN }).to_string();
    let response = world.put_secrets(Some(&owner.token), &record_id, &first).await;
    assert_eq!(response.status(), 204);
    assert_eq!(response.headers()[cfa_web::TAKES_EFFECT_HEADER], "deploy");
    let still = world.engine.reconcile("selfserve", "helper").await.unwrap();
    let Reconciled::Waiting { reason } = still else { panic!("{still:?}") };
    assert!(reason.contains("`router_api_key`") && !reason.contains("telegram"), "{reason}");
    let second = json!({ "router_api_key": ROUTER_KEY }).to_string();
    assert_eq!(world.put_secrets(Some(&owner.token), &record_id, &second).await.status(), 204);
    let deployed = world.engine.reconcile("selfserve", "helper").await.unwrap();
    let Reconciled::Acted { operation: "provision", outcome } = deployed else {
        panic!("{deployed:?}")
    };
    assert_eq!(outcome.status, StackStatus::Running);
    assert_eq!(outcome.service_uuid.as_deref(), Some(service_uuid.as_str()), "no twin");
    let variables = world.variables(&service_uuid).await;
    assert!(variables.contains(&("TELEGRAM_BOT_TOKEN".to_owned(), BOT_TOKEN.to_owned())));
    assert!(variables.contains(&("ROUTER_API_KEY".to_owned(), ROUTER_KEY.to_owned())));

    // A running stack: the new value is stored, and an audited restart applies it.
    let rotated = json!({ "router_api_key": ROUTER_KEY_ROTATED }).to_string();
    let response = world.put_secrets(Some(&owner.token), &record_id, &rotated).await;
    assert_eq!(response.status(), 204);
    assert_eq!(response.headers()[cfa_web::TAKES_EFFECT_HEADER], "restart");
    let mut restarted = false;
    for _ in 0..100 {
        let audit = world.pb.audit_list(&cfa_pocketbase::AuditQuery::default()).await.unwrap();
        if audit.iter().any(|entry| entry.action == "stack.upgrade") {
            restarted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(restarted, "the running stack was restarted for its new secret");
    let restarts = world
        .sandbox
        .exchanges()
        .iter()
        .filter(|exchange| exchange.path.ends_with(&format!("{service_uuid}/restart")))
        .count();
    assert!(restarts <= 1, "{restarts}");
    let variables = world.variables(&service_uuid).await;
    assert!(variables.contains(&("ROUTER_API_KEY".to_owned(), ROUTER_KEY_ROTATED.to_owned())));

    // No value ever reached PocketBase: not the record, not the audit log.
    let record = world.pb.stack_view(&record_id, false).await.unwrap();
    let audit = world.pb.audit_list(&cfa_pocketbase::AuditQuery::default()).await.unwrap();
    let everything = format!("{record:?} {audit:?}");
    for secret in [BOT_TOKEN, ROUTER_KEY, ROUTER_KEY_ROTATED] {
        assert!(!everything.contains(secret), "a secret value reached PocketBase");
    }
    assert!(
        audit.iter().any(|entry| entry.action == "stack.secrets"
            && entry.after["parameters"] == json!(["router_api_key"])),
        "the change is audited by name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_reads_its_generated_credentials_and_nobody_elses() {
    let world = World::start().await;
    let owner = world.owner("claw", PlanTier::Business).await;
    let other = world.owner("peek", PlanTier::Business).await;
    let record_id = world.tenant_creates_stack(&owner, "openclaw-agent", "agent", json!({})).await;
    let response = world.get_credentials(&owner.token, &record_id).await;
    assert_eq!(response.status(), 409, "no service yet");

    world.engine.reconcile("claw", "agent").await.unwrap();
    let record = world.engine.stack("claw", "agent").await.unwrap();
    let service_uuid = record.coolify_service_uuid.unwrap();
    let response = world.get_credentials(&owner.token, &record_id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let variables = world.variables(&service_uuid).await;
    let value_of = |key: &str| {
        variables.iter().find(|(name, _)| name == key).map(|(_, value)| value.clone()).unwrap()
    };
    assert_eq!(
        body["credentials"],
        json!({
            "gateway_token": value_of("SERVICE_PASSWORD_64_GATEWAYTOKEN"),
            "hooks_token": value_of("SERVICE_PASSWORD_64_HOOKSTOKEN"),
        })
    );
    assert_eq!(body["credentials"]["gateway_token"].as_str().unwrap().len(), 64);

    assert_eq!(world.get_credentials(&other.token, &record_id).await.status(), 404);
    let audit = world.pb.audit_list(&cfa_pocketbase::AuditQuery::default()).await.unwrap();
    let read = audit.iter().find(|entry| entry.action == "stack.credentials").expect("audited");
    assert_eq!(read.after["read"], json!(["gateway_token", "hooks_token"]));
    assert!(!format!("{audit:?}").contains(&value_of("SERVICE_PASSWORD_64_GATEWAYTOKEN")));

    let health: Value = world
        .http
        .get(format!("{}/healthz", world.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
}

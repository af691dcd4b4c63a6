//! `cfa status` over many stacks: one list of Coolify's services, not one call per stack.

use cfa_core::{HealthVerdict, PlanTier};

use crate::harness::{World, bot_request};

#[tokio::test]
async fn the_health_of_many_stacks_costs_one_coolify_call() {
    let world = World::start_with(|config| config.record_exchanges = true).await;
    let tenant_id = world.tenant("many", PlanTier::Team, 4).await;
    let engine = world.engine();
    for stack in ["one", "two", "three"] {
        engine.provision(&bot_request("many", stack)).await.unwrap();
    }
    let records = world.stacks_of(&tenant_id).await;
    assert_eq!(records.len(), 3);
    let before = world.sandbox.exchanges().len();
    let healths = engine.health_of_all(&records).await;
    let calls: Vec<String> = world.sandbox.exchanges()[before..]
        .iter()
        .map(|exchange| format!("{} {}", exchange.method, exchange.path))
        .collect();
    assert_eq!(calls, ["GET /api/v1/services"], "one list call for three stacks");
    assert_eq!(healths.len(), 3);
    assert!(healths.iter().all(|health| health.judgement.verdict == HealthVerdict::Healthy));
    assert!(healths.iter().all(|health| health.coolify_status.starts_with("running")));

    // One stack alone is asked for by itself.
    let before = world.sandbox.exchanges().len();
    let single = engine.health_of_all(&records[..1]).await;
    let path = &world.sandbox.exchanges()[before].path;
    assert_eq!(
        path,
        &format!("/api/v1/services/{}", records[0].coolify_service_uuid.clone().unwrap())
    );
    assert_eq!(single[0].judgement.verdict, HealthVerdict::Healthy);
}

//! Concurrency: many tenants at once, the same stack twice at once (one engine and two
//! engines, as two processes would be), and the quota under parallel creates.

use cfa_core::{PlanTier, StackStatus};
use cfa_engine::{EngineError, ErrorClass};
use cfa_pocketbase::AuditQuery;
use futures::future::join_all;

use crate::harness::{World, assert_no_secret_anywhere, bot_request, coolify_client, provision};

#[tokio::test]
async fn fifty_tenants_provisioned_in_parallel_all_reach_running() {
    let world = World::start().await;
    let tenants: Vec<String> = (0..50).map(|index| format!("par{index}")).collect();
    join_all(tenants.iter().map(|tenant| world.tenant(tenant, PlanTier::Starter, 1))).await;
    let engine = world.engine();
    let outcomes =
        join_all(tenants.iter().map(|tenant| provision(&engine, bot_request(tenant, "bot")))).await;
    for (tenant, outcome) in tenants.iter().zip(&outcomes) {
        let outcome = outcome.as_ref().unwrap_or_else(|error| panic!("{tenant}: {error}"));
        assert_eq!(outcome.status, StackStatus::Running, "{tenant}");
        assert_eq!(world.coolify_counts(tenant, "bot").await, (1, 1), "{tenant}");
    }
    assert_eq!((world.all_projects().await, world.all_services().await), (50, 50));
    let records = world.pb.stack_list_all(&Default::default(), false).await.unwrap();
    assert_eq!(records.len(), 50);
    assert!(records.iter().all(|record| record.status == StackStatus::Running));
    assert_no_secret_anywhere(&world, &[]).await;
}

#[tokio::test]
async fn the_same_stack_provisioned_twice_at_once_yields_one_service_and_one_record() {
    let world = World::start().await;
    let tenant_id = world.tenant("twice", PlanTier::Team, 3).await;
    let engine = world.engine();
    let (first, second) = tokio::join!(
        provision(&engine, bot_request("twice", "bot")),
        provision(&engine, bot_request("twice", "bot")),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.service_uuid, second.service_uuid);
    assert_eq!(first.record_id, second.record_id);
    assert_eq!(world.coolify_counts("twice", "bot").await, (1, 1));
    assert_eq!(world.stacks_of(&tenant_id).await.len(), 1);
}

/// Two engines share no lock (two `cfa` processes, or the CLI and the controller): racing the
/// same stacks, they still end with one project per tenant, one service per stack and one
/// record each. Several tenants and stacks race at once to give interleavings a chance.
#[tokio::test]
async fn two_engines_racing_the_same_stacks_make_no_twins() {
    let world = World::start().await;
    let tenants = ["race0", "race1", "race2", "race3"];
    for tenant in tenants {
        world.tenant(tenant, PlanTier::Team, 3).await;
    }
    // Each engine has its own Coolify client too (its own rate budget, its own connections).
    let engines = [
        world.engine_with_coolify(coolify_client(&world.sandbox), world.settings.clone()),
        world.engine_with_coolify(coolify_client(&world.sandbox), world.settings.clone()),
        world.engine_with_coolify(coolify_client(&world.sandbox), world.settings.clone()),
    ];
    let mut runs = Vec::new();
    for tenant in tenants {
        for stack in ["a", "b"] {
            for engine in &engines {
                runs.push(provision(engine, bot_request(tenant, stack)));
            }
        }
    }
    let outcomes = join_all(runs).await;
    for outcome in &outcomes {
        let outcome = outcome.as_ref().unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(outcome.status, StackStatus::Running);
    }
    for tenant in tenants {
        let tenant_id = world.pb.tenant_by_slug(tenant).await.unwrap().id;
        let stacks = world.stacks_of(&tenant_id).await;
        assert_eq!(stacks.len(), 2, "{tenant}");
        for stack in ["a", "b"] {
            let (projects, services) = world.coolify_counts(tenant, stack).await;
            assert_eq!((projects, services), (1, 1), "{tenant}/{stack}");
            let record = stacks.iter().find(|record| record.stack_name == stack).unwrap();
            let agreed: Vec<_> = outcomes
                .iter()
                .flatten()
                .filter(|outcome| outcome.tenant == tenant && outcome.stack == stack)
                .map(|outcome| outcome.service_uuid.clone())
                .collect();
            assert_eq!(agreed.len(), 3);
            assert!(agreed.iter().all(|uuid| *uuid == record.coolify_service_uuid), "{agreed:?}");
        }
    }
    assert_eq!(world.all_projects().await, tenants.len());
    assert_eq!(world.all_services().await, tenants.len() * 2);
    // Every creation is audited (racers that lost removed theirs).
    let audit = world
        .pb
        .audit_list(&AuditQuery { limit: Some(1000), ..AuditQuery::default() })
        .await
        .unwrap();
    let created = audit.iter().filter(|entry| entry.action.starts_with("coolify.")).count();
    assert!(created >= tenants.len() * 3, "{created} creations audited");
}

async fn check_quota_under_parallel_creates(world: &World, tenant: &str, engines: usize) {
    let tenant_id = world.tenant(tenant, PlanTier::Team, 2).await;
    let engines: Vec<_> = (0..engines)
        .map(|_| world.engine_with_coolify(coolify_client(&world.sandbox), world.settings.clone()))
        .collect();
    let stacks: Vec<String> = (0..6).map(|index| format!("s{index}")).collect();
    let outcomes = join_all(stacks.iter().enumerate().map(|(index, stack)| {
        provision(&engines[index % engines.len()], bot_request(tenant, stack))
    }))
    .await;
    let mut running = Vec::new();
    let mut refused = Vec::new();
    for (stack, outcome) in stacks.iter().zip(outcomes) {
        match outcome {
            Ok(outcome) => {
                assert_eq!(outcome.status, StackStatus::Running);
                running.push(stack.clone());
            }
            Err(error) => {
                assert!(matches!(error, EngineError::Refused { .. }), "{stack}: {error}");
                assert_eq!(error.class(), ErrorClass::Refused);
                assert!(error.to_string().contains("quota"), "{error}");
                refused.push(stack.clone());
            }
        }
    }
    assert_eq!((running.len(), refused.len()), (2, 4), "{tenant}: {running:?} {refused:?}");
    let records = world.stacks_of(&tenant_id).await;
    assert_eq!(records.len(), 2);
    for stack in &refused {
        assert_eq!(world.coolify_counts(tenant, stack).await, (1, 0), "nothing for {stack}");
        assert!(records.iter().all(|record| &record.stack_name != stack));
    }
    for stack in &running {
        assert_eq!(world.coolify_counts(tenant, stack).await, (1, 1), "{stack}");
    }
}

#[tokio::test]
async fn parallel_provisions_at_the_quota_limit_never_exceed_it() {
    let world = World::start().await;
    // One engine: its admission lock serializes; three engines: PocketBase's quota hook does.
    check_quota_under_parallel_creates(&world, "quota1", 1).await;
    check_quota_under_parallel_creates(&world, "quota3", 3).await;
    assert_eq!(world.all_services().await, 4);
}

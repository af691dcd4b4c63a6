//! The per-tenant quota (`max_stacks`), under concurrency, for tenants, superusers and
//! batch requests; and the per-tenant unique stack name.

use cfa_pocketbase::{PocketBaseErrorKind, StackFilter};
use reqwest::Method;
use serde_json::json;

use crate::common::{pending, world};

#[tokio::test]
async fn twenty_rounds_of_twenty_parallel_creates_leave_exactly_max_stacks() {
    let world = world(2).await;
    for round in 0..20 {
        let creates = (0..20).map(|index| {
            let client = world.a.clone();
            let stack = pending(&world.tenant_a, &format!("r{round}-s{index}"));
            tokio::spawn(async move { client.stack_create(&stack).await })
        });
        let results = futures::future::join_all(creates).await;
        let mut created = 0;
        for result in results {
            match result.unwrap() {
                Ok(_) => created += 1,
                Err(error) => assert_eq!(
                    error.kind,
                    PocketBaseErrorKind::StackLimitReached,
                    "round {round}: {error}"
                ),
            }
        }
        assert_eq!(created, 2, "round {round}: creates answered 200");
        let stacks = world
            .superuser
            .stack_list_all(&StackFilter::tenant(&world.tenant_a.id), false)
            .await
            .unwrap();
        assert_eq!(stacks.len(), 2, "round {round}: stacks stored");
        for stack in stacks {
            world.superuser.stack_delete(&stack.id).await.unwrap();
        }
    }
}

#[tokio::test]
async fn superusers_and_batch_requests_are_held_to_the_quota_too() {
    let world = world(2).await;
    world.superuser.stack_create(&pending(&world.tenant_a, "one")).await.unwrap();
    world.superuser.stack_create(&pending(&world.tenant_a, "two")).await.unwrap();
    let error = world.superuser.stack_create(&pending(&world.tenant_a, "three")).await.unwrap_err();
    assert_eq!(error.kind, PocketBaseErrorKind::StackLimitReached);
    assert!(error.to_string().contains("max_stacks"), "{error}");
    assert_eq!(world.stack_count(&world.tenant_a.id).await, 2);

    // Batch: off by default; once on, a batch over the quota fails whole.
    let settings =
        json!({"batch": {"enabled": true, "maxRequests": 50, "timeout": 3, "maxBodySize": 0}});
    world.superuser.call_raw(Method::PATCH, "api/settings", Some(&settings)).await.unwrap();
    let request = |name: &str| {
        json!({"method": "POST", "url": "/api/collections/agent_stacks/records",
               "body": {"tenant_id": world.tenant_b.id, "template": "telegram-bot", "stack_name": name, "status": "pending"}})
    };
    let over: Vec<_> = (0..6).map(|index| request(&format!("batch-{index}"))).collect();
    let error = world
        .b
        .call_raw(Method::POST, "api/batch", Some(&json!({"requests": over})))
        .await
        .unwrap_err();
    assert_eq!(error.kind, PocketBaseErrorKind::StackLimitReached, "{error}");
    assert_eq!(world.stack_count(&world.tenant_b.id).await, 0, "a failed batch writes nothing");
    let within: Vec<_> = (0..5).map(|index| request(&format!("batch-{index}"))).collect();
    world.b.call_raw(Method::POST, "api/batch", Some(&json!({"requests": within}))).await.unwrap();
    assert_eq!(world.stack_count(&world.tenant_b.id).await, 5);
}

#[tokio::test]
async fn a_duplicate_stack_name_fails_clearly_in_one_tenant_and_works_in_another() {
    let world = world(3).await;
    world.a.stack_create(&pending(&world.tenant_a, "bot")).await.unwrap();
    let error = world.a.stack_create(&pending(&world.tenant_a, "bot")).await.unwrap_err();
    match &error.kind {
        PocketBaseErrorKind::NotUnique { fields } => {
            assert!(fields.contains(&"stack_name".to_owned()), "{fields:?}")
        }
        other => panic!("expected NotUnique, got {other:?}: {error}"),
    }
    assert!(error.has_field_error("stack_name", "validation_not_unique"));
    assert!(error.to_string().contains("stack_name"), "{error}");
    assert!(error.to_string().contains("hint: pick another stack_name"), "{error}");
    world.b.stack_create(&pending(&world.tenant_b, "bot")).await.unwrap();
    assert_eq!(world.stack_count(&world.tenant_a.id).await, 1);
    assert_eq!(world.stack_count(&world.tenant_b.id).await, 1);
}

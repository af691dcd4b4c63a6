//! The client's own behaviour against the real server: paging, filters (escaped), expand,
//! lookups, the realtime subscription, and refusing secrets in `config`.

use std::time::Duration;

use cfa_core::lifecycle::StackStatus;
use cfa_pocketbase::{ListOptions, PocketBaseErrorKind, StackChange, StackFilter, StackPatch};
use serde_json::json;

use crate::common::{pending, world};

#[tokio::test]
async fn lists_page_filter_escape_and_expand() {
    let world = world(10).await;
    for index in 0..5 {
        world
            .superuser
            .stack_create(&pending(&world.tenant_a, &format!("s{index}")))
            .await
            .unwrap();
    }
    let stacks = world
        .superuser
        .stack_list_all(&StackFilter::tenant(&world.tenant_a.id), false)
        .await
        .unwrap();
    world
        .superuser
        .stack_update(
            &stacks[0].id,
            &StackPatch { status: Some(StackStatus::Running), ..StackPatch::default() },
        )
        .await
        .unwrap();

    let options = ListOptions {
        page: 2,
        per_page: 2,
        sort: Some("stack_name".into()),
        expand_tenant: true,
        skip_total: false,
    };
    let page =
        world.a.stack_list(&StackFilter::tenant(&world.tenant_a.id), &options).await.unwrap();
    assert_eq!(page.total_items, Some(5));
    assert_eq!(
        page.items.iter().map(|stack| stack.stack_name.as_str()).collect::<Vec<_>>(),
        ["s2", "s3"]
    );
    // The tenant user may view its tenant, so the expand is there.
    assert_eq!(page.items[0].tenant.as_ref().map(|tenant| tenant.slug.as_str()), Some("tenant-a"));

    let running = world
        .a
        .stack_list(
            &StackFilter::tenant(&world.tenant_a.id).status(StackStatus::Running),
            &ListOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(running.items.len(), 1);
    // A value that tries to widen the filter is just a (non-matching) literal.
    let injection =
        StackFilter { stack_name: Some("x' || stack_name != '".into()), ..StackFilter::default() };
    assert!(world.superuser.stack_list_all(&injection, false).await.unwrap().is_empty());

    assert_eq!(world.superuser.tenant_by_slug("tenant-b").await.unwrap().id, world.tenant_b.id);
    assert_eq!(
        world.superuser.tenant_by_slug("nobody").await.unwrap_err().kind,
        PocketBaseErrorKind::NotFound
    );
    let tenants = world.superuser.tenant_list(&ListOptions::default()).await.unwrap();
    assert_eq!(tenants.total_items, Some(2));
}

#[tokio::test]
async fn secret_looking_config_is_refused_before_sending() {
    let world = world(2).await;
    let mut stack = pending(&world.tenant_a, "leaky");
    stack.config = json!({"telegram_bot_token": "123:abc"});
    let error = world.a.stack_create(&stack).await.unwrap_err();
    assert_eq!(
        error.kind,
        PocketBaseErrorKind::SecretInConfig { key: "telegram_bot_token".into() }
    );
    assert!(!error.to_string().contains("123:abc"), "{error}");
    assert_eq!(world.stack_count(&world.tenant_a.id).await, 0);
}

#[tokio::test]
async fn realtime_delivers_only_the_callers_stack_changes() {
    let world = world(2).await;
    let mut tenant_events = world.a.stack_subscribe().await.unwrap();
    let mut operator_events = world.superuser.stack_subscribe().await.unwrap();
    let b_stack = world.superuser.stack_create(&pending(&world.tenant_b, "b-bot")).await.unwrap();
    let a_stack = world.superuser.stack_create(&pending(&world.tenant_a, "a-bot")).await.unwrap();
    let updated = world
        .superuser
        .stack_update(
            &a_stack.id,
            &StackPatch { status: Some(StackStatus::Deploying), ..StackPatch::default() },
        )
        .await
        .unwrap();

    assert_eq!(
        next_change(&mut tenant_events).await,
        StackChange::Created(a_stack.clone()),
        "B's stack is not A's business"
    );
    assert_eq!(next_change(&mut tenant_events).await, StackChange::Updated(updated.clone()));
    assert_eq!(next_change(&mut operator_events).await, StackChange::Created(b_stack));
    assert_eq!(next_change(&mut operator_events).await, StackChange::Created(a_stack));
    assert_eq!(next_change(&mut operator_events).await, StackChange::Updated(updated));
}

#[tokio::test]
async fn a_subscription_reconnects_after_a_restart_and_says_so() {
    let mut world = world(2).await;
    let mut events = world.superuser.stack_subscribe().await.unwrap();
    world.server.restart().await.unwrap();
    // The old stream ended; the next call re-opens it (retrying while the port comes back).
    let mut reconnected = false;
    for _ in 0..50 {
        match tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an answer within 10 s")
        {
            Ok(StackChange::Reconnected) => {
                reconnected = true;
                break;
            }
            Ok(other) => panic!("expected Reconnected, got {other:?}"),
            Err(error) => {
                assert_eq!(error.kind, PocketBaseErrorKind::Transport, "{error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(reconnected);
    let stack =
        world.superuser.stack_create(&pending(&world.tenant_a, "after-restart")).await.unwrap();
    assert_eq!(next_change(&mut events).await, StackChange::Created(stack));
}

async fn next_change(subscription: &mut cfa_pocketbase::StackSubscription) -> StackChange {
    tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("an event within 10 s")
        .unwrap()
}

#[tokio::test]
async fn a_token_near_expiry_is_refreshed_without_logging_in_again() {
    let world = world(1).await;
    // Superuser tokens now live 60 s, inside the client's refresh margin: every call refreshes.
    let short = json!({"authToken": {"duration": 60}});
    world
        .superuser
        .call_raw(reqwest::Method::PATCH, "api/collections/_superusers", Some(&short))
        .await
        .unwrap();
    let client = world.server.superuser().await.unwrap();
    for _ in 0..3 {
        let tenants = client.tenant_list(&ListOptions::default()).await.unwrap();
        assert_eq!(tenants.total_items, Some(2));
    }
    // PocketBase's request log shows refreshes, not new password logins (it is written in
    // batches, so wait for it).
    let count = |url: &'static str| {
        let superuser = world.superuser.clone();
        async move {
            let path = format!("api/logs?perPage=1&filter=(data.url~'{url}')");
            let answer =
                superuser.call_raw(reqwest::Method::GET, &path, None).await.unwrap().unwrap();
            answer["totalItems"].as_i64().unwrap()
        }
    };
    let mut refreshes = 0;
    for _ in 0..100 {
        refreshes = count("auth-refresh").await;
        if refreshes >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refreshes >= 3, "{refreshes} refreshes logged");
    // One login per client made: the world's superuser, a superuser and a login for each of
    // users a and b, and this client; a failed refresh would have added a login per call.
    assert_eq!(count("auth-with-password").await, 6);
}

/// A conditional write lands only over the record as it was read: a change written in between
/// (here the tenant's suspend) makes it `Stale` and nothing of it is written; read again, it
/// lands. Tenants cannot use it to bypass their rules.
#[tokio::test]
async fn a_conditional_write_never_overwrites_a_change_it_has_not_read() {
    let world = crate::common::world(2).await;
    let mut running = crate::common::pending(&world.tenant_a, "cas");
    running.status = cfa_core::StackStatus::Running;
    let read = world.superuser.stack_create(&running).await.unwrap();

    let stop = StackPatch { status: Some(cfa_core::StackStatus::Stopped), ..StackPatch::default() };
    world.a.stack_update(&read.id, &stop).await.unwrap();
    let error_patch = StackPatch {
        status: Some(cfa_core::StackStatus::Error),
        error_message: Some("unhealthy".to_owned()),
        ..StackPatch::default()
    };
    let stale =
        world.superuser.stack_update_if(&read.id, read.updated_at, &error_patch).await.unwrap_err();
    assert_eq!(stale.kind, PocketBaseErrorKind::Stale, "{stale}");
    let now = world.superuser.stack_view(&read.id, false).await.unwrap();
    assert_eq!((now.status, now.error_message.clone()), (cfa_core::StackStatus::Stopped, None));

    let written =
        world.superuser.stack_update_if(&read.id, now.updated_at, &error_patch).await.unwrap();
    assert_eq!(written.status, cfa_core::StackStatus::Error);

    // A tenant's conditional write is still held to the tenant's rules.
    let engine_field =
        StackPatch { domain: Some("evil.example".to_owned()), ..StackPatch::default() };
    world.a.stack_update_if(&read.id, written.updated_at, &engine_field).await.unwrap_err();
}

//! The API rules, tried the way an attacker would: another tenant's stacks, and a tenant
//! raising its own quota, moving a stack, or writing engine-owned fields.

use cfa_core::lifecycle::StackStatus;
use cfa_core::plan::PlanTier;
use cfa_core::resources::Resources;
use cfa_pocketbase::{
    ListOptions, NewStack, PocketBaseErrorKind, StackFilter, StackPatch, TenantPatch,
};
use reqwest::Method;
use serde_json::json;

use crate::common::{pending, world};

#[tokio::test]
async fn another_tenant_cannot_list_view_update_delete_or_create_under_a() {
    let world = world(3).await;
    let stack = world.a.stack_create(&pending(&world.tenant_a, "a-bot")).await.unwrap();

    let listed =
        world.b.stack_list(&StackFilter::default(), &ListOptions::default()).await.unwrap();
    assert!(listed.items.is_empty(), "B listed {:?}", listed.items);
    let listed = world
        .b
        .stack_list(&StackFilter::tenant(&world.tenant_a.id), &ListOptions::default())
        .await
        .unwrap();
    assert!(listed.items.is_empty());

    let view = world.b.stack_view(&stack.id, false).await.unwrap_err();
    assert_eq!(view.kind, PocketBaseErrorKind::NotFound);
    let update = world
        .b
        .stack_update(
            &stack.id,
            &StackPatch { status: Some(StackStatus::Stopped), ..StackPatch::default() },
        )
        .await
        .unwrap_err();
    assert_eq!(update.kind, PocketBaseErrorKind::NotFound);
    let delete = world.b.stack_delete(&stack.id).await.unwrap_err();
    assert_eq!(delete.kind, PocketBaseErrorKind::Forbidden);
    let create = world.b.stack_create(&pending(&world.tenant_a, "planted")).await.unwrap_err();
    assert_eq!(create.kind, PocketBaseErrorKind::BadRequest);

    assert_eq!(world.superuser.stack_view(&stack.id, false).await.unwrap(), stack);
    assert_eq!(world.stack_count(&world.tenant_a.id).await, 1);
    // B cannot see A's tenant either.
    assert_eq!(
        world.b.tenant_view(&world.tenant_a.id).await.unwrap_err().kind,
        PocketBaseErrorKind::NotFound
    );
    assert_eq!(world.a.tenant_view(&world.tenant_a.id).await.unwrap().slug, "tenant-a");
}

#[tokio::test]
async fn a_tenant_cannot_raise_its_quota_change_its_plan_or_give_its_tenant_away() {
    let world = world(1).await;
    let (user_c, _) = world.server.user("c@tenant.test").await.unwrap();
    let attempts = [
        TenantPatch { max_stacks: Some(100), ..TenantPatch::default() },
        TenantPatch { plan_tier: Some(PlanTier::Sovereign), ..TenantPatch::default() },
        TenantPatch { user_id: Some(user_c), ..TenantPatch::default() },
        TenantPatch {
            name: Some("renamed".into()),
            max_stacks: Some(100),
            ..TenantPatch::default()
        },
        // A bigger custom ceiling, or clearing it (null), is the operator's too.
        TenantPatch {
            resource_limits: Some(Some(Resources::new(64_000, 262_144, 0))),
            ..TenantPatch::default()
        },
        TenantPatch { resource_limits: Some(None), ..TenantPatch::default() },
    ];
    for attempt in &attempts {
        let error = world.a.tenant_update(&world.tenant_a.id, attempt).await.unwrap_err();
        assert_eq!(error.kind, PocketBaseErrorKind::NotFound, "{attempt:?}");
    }
    // Modifier keys (`max_stacks+`) are folded into the body and caught the same way.
    let path = format!("api/collections/tenants/records/{}", world.tenant_a.id);
    let error = world
        .a
        .call_raw(Method::PATCH, &path, Some(&json!({"max_stacks+": 10})))
        .await
        .unwrap_err();
    assert_eq!(error.kind, PocketBaseErrorKind::NotFound);
    let error = world
        .a
        .call_raw(
            Method::POST,
            "api/collections/tenants/records",
            Some(
                &json!({"name": "mine", "slug": "mine", "user_id": world.user_a, "max_stacks": 50}),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind, PocketBaseErrorKind::Forbidden);

    let error = world
        .a
        .call_raw(
            Method::POST,
            "api/collections/tenants/records",
            Some(&json!({"name": "mine", "slug": "mine", "user_id": world.user_a, "resource_limits": {"cpus": 64, "memory_mb": 262144}})),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind, PocketBaseErrorKind::Forbidden);

    let tenant = world.superuser.tenant_view(&world.tenant_a.id).await.unwrap();
    assert_eq!(
        (tenant.max_stacks, tenant.plan_tier, tenant.user_id.as_str(), tenant.resource_limits),
        (1, PlanTier::Starter, world.user_a.as_str(), None)
    );

    // What an owner may do: rename its tenant.
    let renamed = world
        .a
        .tenant_update(
            &world.tenant_a.id,
            &TenantPatch { name: Some("A GmbH".into()), ..TenantPatch::default() },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "A GmbH");
}

#[tokio::test]
async fn a_tenant_cannot_move_a_stack_or_write_engine_owned_fields() {
    let world = world(3).await;
    let stack = world.a.stack_create(&pending(&world.tenant_a, "a-bot")).await.unwrap();
    let attempts = [
        (
            "move to B",
            StackPatch { tenant_id: Some(world.tenant_b.id.clone()), ..StackPatch::default() },
        ),
        (
            "service uuid",
            StackPatch {
                coolify_service_uuid: Some("b-service-uuid".into()),
                ..StackPatch::default()
            },
        ),
        (
            "project uuid",
            StackPatch {
                coolify_project_uuid: Some("b-project-uuid".into()),
                ..StackPatch::default()
            },
        ),
        (
            "domain",
            StackPatch { domain: Some("evil.cloudfreedom.de".into()), ..StackPatch::default() },
        ),
        ("running", StackPatch { status: Some(StackStatus::Running), ..StackPatch::default() }),
        ("deploying", StackPatch { status: Some(StackStatus::Deploying), ..StackPatch::default() }),
        (
            "limits",
            StackPatch {
                resource_limits: Some(json!({"cpus": 12, "memory_mb": 31000})),
                ..StackPatch::default()
            },
        ),
        (
            "error cleared",
            StackPatch { error_message: Some("fine".into()), ..StackPatch::default() },
        ),
        ("renamed", StackPatch { stack_name: Some("other".into()), ..StackPatch::default() }),
        ("template", StackPatch { template: Some("base-llm".into()), ..StackPatch::default() }),
        (
            "stopped while pending",
            StackPatch { status: Some(StackStatus::Stopped), ..StackPatch::default() },
        ),
    ];
    for (what, attempt) in &attempts {
        let error = world.a.stack_update(&stack.id, attempt).await.unwrap_err();
        assert_eq!(error.kind, PocketBaseErrorKind::NotFound, "{what}");
    }
    assert_eq!(
        world.superuser.stack_view(&stack.id, false).await.unwrap(),
        stack,
        "nothing changed"
    );

    // Creating with engine-owned fields or another status is refused, and nothing is created.
    let mut running = pending(&world.tenant_a, "runner");
    running.status = StackStatus::Running;
    let mut with_domain = pending(&world.tenant_a, "domained");
    with_domain.domain = Some("evil.cloudfreedom.de".into());
    let mut with_uuid: NewStack = pending(&world.tenant_a, "uuided");
    with_uuid.coolify_service_uuid = Some("b-service-uuid".into());
    let mut with_limits = pending(&world.tenant_a, "limited");
    with_limits.resource_limits = Some(json!({"cpus": 12}));
    for attempt in [running, with_domain, with_uuid, with_limits] {
        let error = world.a.stack_create(&attempt).await.unwrap_err();
        assert_eq!(error.kind, PocketBaseErrorKind::BadRequest, "{}", attempt.stack_name);
    }
    assert_eq!(world.stack_count(&world.tenant_a.id).await, 1);

    // What a tenant may do: change its config, suspend a running stack, resume it.
    let engine = StackPatch {
        status: Some(StackStatus::Running),
        domain: Some("a-bot-tenant-a.cloudfreedom.de".into()),
        ..StackPatch::default()
    };
    world.superuser.stack_update(&stack.id, &engine).await.unwrap();
    let config = world
        .a
        .stack_update(
            &stack.id,
            &StackPatch {
                config: Some(json!({"allowed_chat_ids": "42"})),
                ..StackPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(config.config, json!({"allowed_chat_ids": "42"}));
    let suspended = world
        .a
        .stack_update(
            &stack.id,
            &StackPatch { status: Some(StackStatus::Stopped), ..StackPatch::default() },
        )
        .await
        .unwrap();
    assert_eq!(suspended.status, StackStatus::Stopped);
    let resumed = world
        .a
        .stack_update(
            &stack.id,
            &StackPatch { status: Some(StackStatus::Pending), ..StackPatch::default() },
        )
        .await
        .unwrap();
    assert_eq!(resumed.status, StackStatus::Pending);
    assert_eq!(resumed.domain.as_deref(), Some("a-bot-tenant-a.cloudfreedom.de"));
}

/// A custom ceiling is empty or exactly `{"cpus", "memory_mb"}`: a typo is refused at write
/// time (the engine would read it as the stack ceiling), for superusers too.
#[tokio::test]
async fn a_custom_ceiling_must_be_well_formed() {
    let world = world(1).await;
    let path = format!("api/collections/tenants/records/{}", world.tenant_a.id);
    for bad in [
        json!({"cpus": 4}),
        json!({"cpus": 4, "memory": 8192}),
        json!({"cpus": "4", "memory_mb": 8192}),
        json!({"cpus": 0, "memory_mb": 8192}),
        json!({"cpus": 4, "memory_mb": 8192.5}),
        json!({"cpus": 4, "memory_mb": 8192, "disk_mb": 1}),
        json!([4, 8192]),
        json!("4 CPU"),
    ] {
        let error = world
            .superuser
            .call_raw(Method::PATCH, &path, Some(&json!({ "resource_limits": bad })))
            .await
            .unwrap_err();
        assert!(
            error.has_field_error("resource_limits", "invalid_resource_limits"),
            "{bad}: {error}"
        );
    }
    let limits = Resources::new(6500, 12_288, 0);
    let updated = world
        .superuser
        .tenant_update(
            &world.tenant_a.id,
            &TenantPatch { resource_limits: Some(Some(limits)), ..TenantPatch::default() },
        )
        .await
        .unwrap();
    assert_eq!(updated.resource_limits, Some(limits));
    let cleared = world
        .superuser
        .tenant_update(
            &world.tenant_a.id,
            &TenantPatch { resource_limits: Some(None), ..TenantPatch::default() },
        )
        .await
        .unwrap();
    assert_eq!(cleared.resource_limits, None);
}

/// While a stack's Coolify service exists its record stays, whoever deletes: the tenant
/// (superusers only may delete), a superuser or the dashboard (the hook refuses a record that
/// names a service), or the deletion of its tenant (no cascade). It keeps counting against the
/// quota until the engine has cleared the service and deleted it.
#[tokio::test]
async fn the_record_of_a_deployed_stack_cannot_be_deleted_by_anyone() {
    let world = world(1).await;
    let stack = world.a.stack_create(&pending(&world.tenant_a, "deployed")).await.unwrap();
    let recorded = StackPatch {
        coolify_service_uuid: Some("svc-deployed".into()),
        status: Some(StackStatus::Running),
        ..StackPatch::default()
    };
    world.superuser.stack_update(&stack.id, &recorded).await.unwrap();

    let by_tenant = world.a.stack_delete(&stack.id).await.unwrap_err();
    assert_eq!(by_tenant.kind, PocketBaseErrorKind::Forbidden, "{by_tenant}");
    let by_superuser = world.superuser.stack_delete(&stack.id).await.unwrap_err();
    assert!(by_superuser.to_string().contains("service still exists"), "{by_superuser}");
    let path = format!("api/collections/tenants/records/{}", world.tenant_a.id);
    let tenant_gone = world.superuser.call_raw(Method::DELETE, &path, None).await;
    assert!(tenant_gone.is_err(), "deleting a tenant with stacks must be refused");
    assert_eq!(world.stack_count(&world.tenant_a.id).await, 1, "the record outlives every try");
    let second = world.a.stack_create(&pending(&world.tenant_a, "second")).await.unwrap_err();
    assert_eq!(second.kind, PocketBaseErrorKind::StackLimitReached, "it still counts");

    // The engine's way: the service is gone, the record stops naming it, then goes.
    let cleared = StackPatch { coolify_service_uuid: Some(String::new()), ..StackPatch::default() };
    world.superuser.stack_update(&stack.id, &cleared).await.unwrap();
    world.superuser.stack_delete(&stack.id).await.unwrap();
    assert_eq!(world.stack_count(&world.tenant_a.id).await, 0);
}

/// A slug names a tenant's Coolify project and domains: no second tenant gets it and no write
/// changes it, superusers included.
#[tokio::test]
async fn slugs_are_unique_and_never_change() {
    let world = world(1).await;
    let (user_c, _) = world.server.user("c@tenant.test").await.unwrap();
    let twin = world
        .superuser
        .tenant_create(&cfa_pocketbase::NewTenant {
            name: "Twin".into(),
            slug: "tenant-a".into(),
            user_id: user_c,
            max_stacks: None,
            plan_tier: None,
            resource_limits: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            twin.kind,
            PocketBaseErrorKind::BadRequest | PocketBaseErrorKind::NotUnique { .. }
        ),
        "{twin}"
    );
    for slug in ["tenant-a", "tenant-b2"] {
        let renamed = world
            .superuser
            .tenant_update(
                &world.tenant_b.id,
                &TenantPatch { slug: Some(slug.into()), ..TenantPatch::default() },
            )
            .await
            .unwrap_err();
        assert!(renamed.to_string().contains("slug"), "{renamed}");
    }
    assert_eq!(world.superuser.tenant_by_slug("tenant-b").await.unwrap().id, world.tenant_b.id);
}

/// Sign-up is open and unverified: an account made by whoever registered an e-mail first is
/// nobody's owner. Even made a tenant's owner, it sees and changes nothing.
#[tokio::test]
async fn an_unverified_account_sees_and_changes_nothing_even_as_owner() {
    let world = world(3).await;
    let email = "squatter@tenant.test";
    let password = "squatter-Passw0rd!";
    let signup = reqwest::Client::new()
        .post(format!("{}/api/collections/users/records", world.server.url()))
        .json(&json!({ "email": email, "password": password, "passwordConfirm": password }))
        .send()
        .await
        .unwrap();
    assert!(signup.status().is_success(), "sign-up is open: {}", signup.status());
    let squatter_id =
        signup.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let tenant = world
        .superuser
        .tenant_create(&cfa_pocketbase::NewTenant {
            name: "Victim".into(),
            slug: "victim".into(),
            user_id: squatter_id,
            max_stacks: Some(3),
            plan_tier: None,
            resource_limits: None,
        })
        .await
        .unwrap();
    let squatter = cfa_pocketbase::PocketBaseClient::connect(
        world.server.url(),
        "users",
        email,
        cfa_pocketbase::Password::new(password),
    )
    .await
    .expect("PocketBase lets an unverified account sign in");
    assert_eq!(
        squatter.tenant_view(&tenant.id).await.unwrap_err().kind,
        PocketBaseErrorKind::NotFound
    );
    let listed =
        squatter.stack_list(&StackFilter::default(), &ListOptions::default()).await.unwrap();
    assert!(listed.items.is_empty());
    let create = squatter.stack_create(&pending(&tenant, "mine")).await.unwrap_err();
    assert_eq!(create.kind, PocketBaseErrorKind::BadRequest, "{create}");
    let rename = squatter
        .tenant_update(
            &tenant.id,
            &TenantPatch { name: Some("Mine now".into()), ..TenantPatch::default() },
        )
        .await
        .unwrap_err();
    assert_eq!(rename.kind, PocketBaseErrorKind::NotFound, "{rename}");
    assert_eq!(world.stack_count(&tenant.id).await, 0);
}

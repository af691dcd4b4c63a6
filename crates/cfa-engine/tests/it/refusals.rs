//! Every refusal changes nothing in Coolify or PocketBase's stacks, and says why.

use cfa_core::{PlanTier, Resources};
use cfa_engine::{DryRunAdmission, EngineError, ErrorClass, ServerSettings};
use cfa_pocketbase::TenantPatch;

use crate::harness::{World, base_llm_request, bot_request, openclaw_request};

async fn assert_nothing_changed(world: &World, tenant_id: &str, stacks_before: usize) {
    assert_eq!(world.stacks_of(tenant_id).await.len(), stacks_before);
}

#[tokio::test]
async fn refusals_change_nothing() {
    let world = World::start().await;
    let tenant_id = world.tenant("small", PlanTier::Starter, 1).await;
    let engine = world.engine();

    // Bad names and unknown things: usage errors, before any call that changes something.
    for (tenant, stack, template) in [
        ("small", "Bad_Name", "telegram-bot"),
        ("small", "a: b", "telegram-bot"),
        ("nobody", "bot", "telegram-bot"),
        ("small", "bot", "no-such-template"),
    ] {
        let mut request = bot_request(tenant, stack);
        request.template = template.to_owned();
        let error = engine.provision(&request).await.unwrap_err();
        assert_eq!(error.class(), ErrorClass::Usage, "{error}");
        assert!(error.to_string().contains("hint:"), "{error}");
    }
    // A missing secret parameter.
    let mut missing = bot_request("small", "bot");
    missing.parameters.remove("telegram_bot_token");
    assert_eq!(engine.provision(&missing).await.unwrap_err().class(), ErrorClass::Usage);

    // The plan does not allow the template.
    let error = engine.provision(&openclaw_request("small", "agent")).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Refused, "{error}");
    assert!(error.to_string().contains("business"), "names the plan needed: {error}");
    assert_eq!(world.all_projects().await, 0);
    assert_eq!(world.all_services().await, 0);
    assert_nothing_changed(&world, &tenant_id, 0).await;

    // The quota: one stack, the second is refused.
    engine.provision(&bot_request("small", "bot")).await.unwrap();
    let error = engine.provision(&bot_request("small", "bot2")).await.unwrap_err();
    assert!(matches!(error, EngineError::Refused { .. }), "{error}");
    assert!(error.to_string().contains("quota"), "{error}");
    assert_nothing_changed(&world, &tenant_id, 1).await;
    assert_eq!(world.all_services().await, 1);
    assert_eq!(world.all_projects().await, 1);
}

#[tokio::test]
async fn no_capacity_is_a_refusal_that_names_the_shortfall() {
    let world = World::start().await;
    let tenant_id = world.tenant("big", PlanTier::Business, 10).await;
    let mut settings = world.settings.clone();
    // A small machine: room for one 1 GB openclaw stack, not two.
    settings.servers.insert(
        world.sandbox.server_uuid(),
        ServerSettings::new("small box", Resources::new(4000, 2048 + 1500, 2048 + 5000)),
    );
    let engine = world.engine_with(settings);
    engine.provision(&openclaw_request("big", "one")).await.unwrap();
    let error = engine.provision(&openclaw_request("big", "two")).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Refused, "{error}");
    assert!(error.to_string().contains("small box"), "{error}");
    assert_nothing_changed(&world, &tenant_id, 1).await;
    assert_eq!(world.all_services().await, 1);
}

/// A stack reserves its images' disk once per server: two OpenClaw stacks share one pulled
/// image, and the third finds no disk left.
#[tokio::test]
async fn an_image_takes_disk_once_per_server() {
    let world = World::start().await;
    let tenant_id = world.tenant("disk", PlanTier::Business, 10).await;
    let mut settings = world.settings.clone();
    // After the 2 GB system reserve: two 2 GB volumes and one 1.5 GB OpenClaw image.
    settings.servers.insert(
        world.sandbox.server_uuid(),
        ServerSettings::new("disk box", Resources::new(12_000, 32_768, 2048 + 2 * 2048 + 1536)),
    );
    let engine = world.engine_with(settings);
    let first = engine.dry_run_provision(&openclaw_request("disk", "one")).await.unwrap();
    assert!(
        matches!(first.admission, DryRunAdmission::Admitted { image_disk_mb: 1536, .. }),
        "{:?}",
        first.admission
    );
    engine.provision(&openclaw_request("disk", "one")).await.unwrap();
    let second = engine.dry_run_provision(&openclaw_request("disk", "two")).await.unwrap();
    assert!(
        matches!(second.admission, DryRunAdmission::Admitted { image_disk_mb: 0, .. }),
        "the image is pulled already: {:?}",
        second.admission
    );
    engine.provision(&openclaw_request("disk", "two")).await.unwrap();
    let servers = engine.capacity().await.unwrap();
    assert_eq!(servers[0].reserved.disk_mb, 2 * 2048 + 1536);
    assert_eq!(servers[0].images.len(), 1, "{:?}", servers[0].images);
    assert_eq!(servers[0].free().disk_mb, 0);

    let error = engine.provision(&openclaw_request("disk", "three")).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Refused, "{error}");
    assert!(error.to_string().contains("short of disk"), "{error}");
    assert_nothing_changed(&world, &tenant_id, 2).await;
}

/// A sovereign tenant's custom ceiling (the operator's `tenants.resource_limits`) sets its
/// stacks' limits; one below the template's minimum is a refusal that says how to raise it.
#[tokio::test]
async fn a_sovereign_tenants_custom_ceiling_sets_its_limits() {
    let world = World::start().await;
    let tenant_id = world.tenant("sov", PlanTier::Sovereign, 5).await;
    let set_ceiling = |limits: Resources| {
        let patch = TenantPatch { resource_limits: Some(Some(limits)), ..TenantPatch::default() };
        let pb = world.pb.clone();
        let tenant_id = tenant_id.clone();
        async move { pb.tenant_update(&tenant_id, &patch).await.unwrap() }
    };
    set_ceiling(Resources::new(1000, 2048, 0)).await;
    let engine = world.engine();
    let error = engine.provision(&base_llm_request("sov", "chat")).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Refused, "{error}");
    assert!(
        error.to_string().contains("the tenant's custom ceiling is 1 CPU, 2 GB per stack")
            && error.to_string().contains("a ceiling of 2 CPU and 3072 MB per stack"),
        "{error}"
    );
    assert_eq!(
        error.remedy(),
        Some(cfa_core::Remedy::SetPlan {
            tier: PlanTier::Sovereign,
            cpus: Some("2".to_owned()),
            memory_mb: Some(3072),
        })
    );
    assert_nothing_changed(&world, &tenant_id, 0).await;

    // Between base-llm's minimum (2 CPU, 3 GB) and its profile (3 CPU, 5 GB): exactly that.
    set_ceiling(Resources::new(2500, 4096, 0)).await;
    let outcome = engine.provision(&base_llm_request("sov", "chat")).await.unwrap();
    assert_eq!(outcome.limits, Some(Resources::new(2500, 4096, 5120)));
}

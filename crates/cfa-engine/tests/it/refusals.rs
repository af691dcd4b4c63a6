//! Every refusal changes nothing in Coolify or PocketBase's stacks, and says why.

use cfa_core::{PlanTier, Resources};
use cfa_engine::{DryRunAdmission, EngineError, ErrorClass, ServerSettings};

use crate::harness::{World, bot_request, openclaw_request};

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

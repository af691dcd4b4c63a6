//! A tenant is an attacker: it names its stacks and sets its parameters to take what is not its
//! own. Each test plays one attack against the real PocketBase and the sandbox, and checks
//! nothing reached Coolify.

use cfa_core::PlanTier;
use cfa_engine::{EngineError, ErrorClass};

use crate::harness::{World, bot_request, openclaw_request};

/// `corp` naming a stack `support-acme` would take `support-acme-corp`, the domain of
/// `acme-corp`'s `support`: refused before any Coolify call. The longer slug keeps its
/// domains; the shorter one keeps every other stack name.
#[tokio::test]
async fn a_stack_name_cannot_take_another_tenants_domain() {
    let world = World::start().await;
    world.tenant("acme-corp", PlanTier::Business, 3).await;
    world.tenant("corp", PlanTier::Business, 3).await;
    let engine = world.engine();

    let squat = engine.provision(&openclaw_request("corp", "support-acme")).await.unwrap_err();
    assert!(matches!(squat, EngineError::DomainTaken { .. }), "{squat}");
    assert_eq!(squat.class(), ErrorClass::Refused);
    assert!(squat.to_string().contains("support-acme-corp"), "{squat}");
    assert_eq!(world.all_services().await, 0, "nothing reached Coolify");

    engine.provision(&openclaw_request("acme-corp", "support")).await.unwrap();
    engine.provision(&openclaw_request("corp", "support")).await.unwrap();
}

/// The other order: `corp` took `support-acme` before `acme-corp` existed. A new tenant with
/// that slug is refused, so it never meets a domain it cannot have.
#[tokio::test]
async fn a_new_slug_cannot_end_another_tenants_domain() {
    let world = World::start().await;
    world.tenant("corp", PlanTier::Business, 3).await;
    let engine = world.engine();
    engine.provision(&openclaw_request("corp", "support-acme")).await.unwrap();

    let clash = engine.check_new_tenant_slug("acme-corp").await.unwrap_err();
    assert!(matches!(clash, EngineError::SlugClash { .. }), "{clash}");
    assert!(clash.to_string().contains("support-acme-corp"), "{clash}");
    engine.check_new_tenant_slug("acme").await.unwrap();
    // A slug that a longer one ends in is no clash: `b-corp`'s stacks are refused instead.
    engine.check_new_tenant_slug("b-corp").await.unwrap();
}

/// The Router belongs to the platform: a tenant pointing `router_base_url` at the metadata
/// address, loopback, a private range, or a look-alike host is refused before any call.
#[tokio::test]
async fn router_urls_outside_the_platforms_origins_are_refused() {
    let world = World::start().await;
    world.tenant("probe", PlanTier::Team, 3).await;
    let engine = world.engine();
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:8000/v1",
        "http://10.0.0.5/v1",
        "https://router.cloudfreedom.test.attacker.example/v1",
        "http://router.cloudfreedom.test/v1",
        "https://router.cloudfreedom.test:8443/v1",
    ] {
        let mut request = bot_request("probe", "bot");
        request.parameters.insert("router_base_url".to_owned(), url.to_owned());
        let error = engine.provision(&request).await.unwrap_err();
        assert!(matches!(error, EngineError::InvalidInput { .. }), "{url}: {error}");
        assert!(error.to_string().contains("router_base_url"), "{url}: {error}");
    }
    assert_eq!(world.all_services().await, 0, "nothing reached Coolify");
    engine.provision(&bot_request("probe", "bot")).await.unwrap();
}

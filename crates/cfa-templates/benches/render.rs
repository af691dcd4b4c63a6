//! Rendering speed: one template for one tenant, end to end (parameters, limits, hardening,
//! the guardrail linter and YAML serialization). Target: under 5 ms per render.
//!
//! Run with `cargo bench -p cfa-templates --bench render`.

use std::collections::BTreeMap;

use cfa_core::naming::{BaseDomain, StackName, TenantSlug};
use cfa_core::plan::{PlanTable, PlanTier};
use cfa_templates::{Catalogue, RenderRequest, render, repository_templates_dir};
use criterion::{Criterion, criterion_group, criterion_main};

fn parameters(template: &str) -> BTreeMap<String, String> {
    let mut parameters = BTreeMap::from([
        ("router_base_url".to_owned(), "https://router.cloudfreedom.de/v1".to_owned()),
        ("router_api_key".to_owned(), "sk-bench".to_owned()),
    ]);
    match template {
        "telegram-bot" => {
            parameters.insert(
                "telegram_bot_token".into(),
                "123456789:AAEhBP0av28x-bench-token-value".into(),
            );
        }
        "base-llm" => {
            parameters.insert("admin_email".into(), "admin@acme.example".into());
        }
        _ => {}
    }
    parameters
}

fn bench_render(criterion: &mut Criterion) {
    let catalogue = Catalogue::load(&repository_templates_dir()).unwrap();
    let plans = PlanTable::builtin();
    let tenant = TenantSlug::parse("acme").unwrap();
    let stack = StackName::parse("bench").unwrap();
    let base_domain = BaseDomain::parse("cloudfreedom.de").unwrap();
    for (template, plan) in [
        ("telegram-bot", PlanTier::Starter),
        ("openclaw-agent", PlanTier::Business),
        ("base-llm", PlanTier::Sovereign),
    ] {
        let parameters = parameters(template);
        let template_ref = catalogue.get(template).unwrap();
        criterion.bench_function(&format!("render/{template}"), |bencher| {
            bencher.iter(|| {
                render(RenderRequest {
                    template: template_ref,
                    plans: &plans,
                    plan,
                    tenant_resource_limits: None,
                    tenant: &tenant,
                    stack: &stack,
                    base_domain: &base_domain,
                    parameters: &parameters,
                    secrets_pending: false,
                })
                .unwrap()
            })
        });
    }
    criterion.bench_function("catalogue/load", |bencher| {
        bencher.iter(|| Catalogue::load(&repository_templates_dir()).unwrap())
    });
}

criterion_group!(benches, bench_render);
criterion_main!(benches);

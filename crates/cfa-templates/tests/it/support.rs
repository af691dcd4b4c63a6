//! Shared fixtures: the real catalogue, sample parameters, one `render_with` helper.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use cfa_core::naming::{BaseDomain, StackName, TenantSlug};
use cfa_core::plan::{PlanTable, PlanTier};
use cfa_templates::{Catalogue, RenderError, RenderRequest, RenderedStack, render};

pub(crate) fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        Catalogue::load(&cfa_templates::repository_templates_dir())
            .expect("the repository's templates load")
    })
}

pub(crate) const TELEGRAM_TOKEN: &str = "123456789:AAEhBP0av28x-test-token-value_xyz";
pub(crate) const ROUTER_KEY: &str = "sk-tenant-router-key-0123456789";

/// Parameters a tenant would give for each template.
pub(crate) fn sample_parameters(template: &str) -> BTreeMap<String, String> {
    let mut parameters = BTreeMap::from([
        ("router_base_url".to_owned(), "https://router.cloudfreedom.de/v1".to_owned()),
        ("router_api_key".to_owned(), ROUTER_KEY.to_owned()),
    ]);
    match template {
        "telegram-bot" => {
            parameters.insert("telegram_bot_token".to_owned(), TELEGRAM_TOKEN.to_owned());
        }
        "base-llm" => {
            parameters.insert("admin_email".to_owned(), "admin@acme.example".to_owned());
        }
        _ => {}
    }
    parameters
}

pub(crate) fn render_with(
    template: &str,
    plan: PlanTier,
    stack: &str,
    parameters: &BTreeMap<String, String>,
) -> Result<RenderedStack, RenderError> {
    let plans = PlanTable::builtin();
    render(RenderRequest {
        template: catalogue().get(template).expect("known template"),
        plans: &plans,
        plan,
        tenant_resource_limits: None,
        tenant: &TenantSlug::parse("acme").unwrap(),
        stack: &StackName::parse(stack).unwrap(),
        base_domain: &BaseDomain::parse("cloudfreedom.de").unwrap(),
        parameters,
        secrets_pending: false,
    })
}

/// The full error chain, as the CLI prints it.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

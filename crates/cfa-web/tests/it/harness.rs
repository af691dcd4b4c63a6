//! The test world: a real PocketBase with our schema, the Coolify sandbox, an engine, and the
//! server on a loopback port; tenants with their own PocketBase tokens.

use std::time::Duration;

use cfa_coolify::{ApiToken, CoolifyClient, CoolifyConfig};
use cfa_core::{BaseDomain, PlanTable, PlanTier};
use cfa_engine::{Engine, EngineSettings};
use cfa_pocketbase::testing::{TestPocketBase, USER_PASSWORD};
use cfa_pocketbase::{NewTenant, PocketBaseClient};
use cfa_templates::{Catalogue, repository_templates_dir};
use coolify_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use serde_json::{Value, json};

pub(crate) const ROUTER_URL: &str = "https://router.cloudfreedom.test/v1";
/// The sandbox server's host agent secret.
pub(crate) const AGENT_SECRET: &[u8] = b"test-agent-secret-0123456789abcdef";

pub(crate) struct World {
    pub(crate) pocketbase: TestPocketBase,
    pub(crate) pb: PocketBaseClient,
    pub(crate) sandbox: SandboxHandle,
    pub(crate) coolify: CoolifyClient,
    pub(crate) engine: Engine,
    /// `http://127.0.0.1:<port>`
    pub(crate) base_url: String,
    pub(crate) http: reqwest::Client,
    /// Rung when a host agent's events arrive.
    pub(crate) monitor_wake: std::sync::Arc<tokio::sync::Notify>,
}

/// A tenant's owner: its tenant record and its own PocketBase token.
pub(crate) struct Owner {
    pub(crate) tenant_id: String,
    pub(crate) token: String,
}

impl World {
    pub(crate) async fn start() -> World {
        let pocketbase = TestPocketBase::start().await.unwrap();
        let pb = pocketbase.superuser().await.unwrap();
        let sandbox = Sandbox::start(SandboxConfig {
            deploy_delay: Duration::from_millis(200),
            delete_delay: Duration::from_millis(100),
            rate_limit: 100_000,
            ..SandboxConfig::default()
        })
        .await
        .unwrap();
        let mut config = CoolifyConfig::new(sandbox.base_url(), ApiToken::new(sandbox.token()));
        config.requests_per_minute = 100_000;
        config.retry_base_delay = Duration::from_millis(20);
        config.timeout = Duration::from_secs(5);
        let coolify = CoolifyClient::new(config).unwrap();
        let mut settings = EngineSettings::new(
            BaseDomain::parse("cloudfreedom.test").unwrap(),
            PlanTable::builtin(),
        );
        settings.actor = "test".to_owned();
        settings.poll_interval = Duration::from_millis(50);
        settings.probe_interval = Duration::from_millis(50);
        settings.status_lag = Duration::ZERO;
        settings.deploy_timeout = Duration::from_secs(20);
        settings.operation_timeout = Duration::from_secs(20);
        settings.url_origins = vec![ROUTER_URL.to_owned()];
        settings.platform_parameters.insert("router_base_url".to_owned(), ROUTER_URL.to_owned());
        let catalogue = Catalogue::load(&repository_templates_dir()).unwrap();
        let engine = Engine::new(coolify.clone(), pb.clone(), catalogue, settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let agent_secrets = [(sandbox.server_uuid(), AGENT_SECRET.to_vec())].into_iter().collect();
        let state = cfa_web::AppState {
            agent_secrets: std::sync::Arc::new(agent_secrets),
            ..cfa_web::AppState::new(engine.clone(), pb.clone())
        };
        let monitor_wake = state.monitor_wake.clone();
        tokio::spawn(cfa_web::serve(listener, state, std::future::pending()));
        let http = reqwest::Client::new();
        World { pocketbase, pb, sandbox, coolify, engine, base_url, http, monitor_wake }
    }

    /// A verified owner of a new tenant on `plan`.
    pub(crate) async fn owner(&self, slug: &str, plan: PlanTier) -> Owner {
        let email = format!("owner@{slug}.test");
        let (user_id, _) = self.pocketbase.user(&email).await.unwrap();
        let tenant = self
            .pb
            .tenant_create(&NewTenant {
                name: format!("Tenant {slug}"),
                slug: slug.to_owned(),
                user_id,
                max_stacks: Some(3),
                plan_tier: Some(plan),
                resource_limits: None,
            })
            .await
            .unwrap();
        Owner { tenant_id: tenant.id, token: self.token(&email, "users").await }
    }

    /// A token from PocketBase's own login, as a tenant's frontend gets one.
    pub(crate) async fn token(&self, email: &str, collection: &str) -> String {
        let password = match collection {
            "users" => USER_PASSWORD,
            _ => cfa_pocketbase::testing::SUPERUSER_PASSWORD,
        };
        let answer: Value = self
            .http
            .post(format!(
                "{}/api/collections/{collection}/auth-with-password",
                self.pocketbase.url()
            ))
            .json(&json!({ "identity": email, "password": password }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["token"].as_str().unwrap_or_else(|| panic!("no token: {answer}")).to_owned()
    }

    /// A stack record the owner creates itself through PocketBase, as its frontend would.
    pub(crate) async fn tenant_creates_stack(
        &self,
        owner: &Owner,
        template: &str,
        stack: &str,
        config: Value,
    ) -> String {
        let answer: Value = self
            .http
            .post(format!("{}/api/collections/agent_stacks/records", self.pocketbase.url()))
            .header("Authorization", &owner.token)
            .json(&json!({
                "tenant_id": owner.tenant_id, "template": template, "stack_name": stack,
                "status": "pending", "config": config,
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["id"].as_str().unwrap_or_else(|| panic!("not created: {answer}")).to_owned()
    }

    pub(crate) async fn put_secrets(
        &self,
        token: Option<&str>,
        record_id: &str,
        body: &str,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .put(format!("{}/api/v1/tenant/stacks/{record_id}/secrets", self.base_url))
            .header("Content-Type", "application/json")
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        request.send().await.unwrap()
    }

    pub(crate) async fn get_credentials(&self, token: &str, record_id: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/api/v1/tenant/stacks/{record_id}/credentials", self.base_url))
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap()
    }

    /// The service's variables, as Coolify holds them.
    pub(crate) async fn variables(&self, service_uuid: &str) -> Vec<(String, String)> {
        self.coolify
            .list_envs_by_service_uuid(service_uuid)
            .await
            .unwrap()
            .into_iter()
            .map(|variable| {
                let value = variable
                    .value
                    .as_ref()
                    .or(variable.real_value.as_ref())
                    .map(|value| value.expose().to_owned())
                    .unwrap_or_default();
                (variable.key, value)
            })
            .collect()
    }
}

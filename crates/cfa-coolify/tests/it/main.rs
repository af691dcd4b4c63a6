//! Integration tests for the Coolify client against the in-process sandbox; every exchange is
//! checked against Coolify's OpenAPI spec at the end of each test.

mod contract;
mod errors;
mod live;
mod operations;
mod retries;
mod status;

use std::time::Duration;

use cfa_coolify::types::{CreateServiceRequest, EnvironmentRef, Service, ServiceUrl};
use cfa_coolify::{ApiToken, CoolifyClient, CoolifyConfig};
use coolify_sandbox::{Sandbox, SandboxConfig, SandboxHandle};

/// A sandbox recording its exchanges and a client pointed at it.
pub(crate) struct Fixture {
    pub(crate) sandbox: SandboxHandle,
    pub(crate) client: CoolifyClient,
}

pub(crate) async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

pub(crate) async fn fixture_with(configure: impl FnOnce(&mut SandboxConfig)) -> Fixture {
    let mut config = SandboxConfig {
        deploy_delay: Duration::from_millis(150),
        delete_delay: Duration::from_millis(1_000),
        // Functional tests poll; the budget tests set their own limits.
        rate_limit: 10_000,
        backup_duration: Duration::from_millis(50),
        record_exchanges: true,
        ..SandboxConfig::default()
    };
    configure(&mut config);
    let sandbox = Sandbox::start(config).await.expect("sandbox starts");
    let client = client_for(&sandbox, sandbox.token(), |_| {});
    Fixture { sandbox, client }
}

pub(crate) fn client_for(
    sandbox: &SandboxHandle,
    token: &str,
    configure: impl FnOnce(&mut CoolifyConfig),
) -> CoolifyClient {
    let mut config = CoolifyConfig::new(sandbox.base_url(), ApiToken::new(token));
    config.retry_base_delay = Duration::from_millis(20);
    config.max_retry_delay = Duration::from_secs(2);
    config.timeout = Duration::from_secs(10);
    config.requests_per_minute = 10_000;
    configure(&mut config);
    CoolifyClient::new(config).expect("client builds")
}

impl Fixture {
    /// Fails the test if any request or answer so far broke Coolify's spec.
    pub(crate) fn assert_contract(&self) {
        let exchanges = self.sandbox.exchanges();
        assert!(!exchanges.is_empty(), "no exchanges were recorded");
        let violations = contract::violations(&exchanges);
        assert!(violations.is_empty(), "contract violations:\n{}", violations.join("\n"));
    }

    /// A project with its `production` environment.
    pub(crate) async fn project(&self, name: &str) -> String {
        let request = cfa_coolify::types::CreateProjectRequest {
            name: name.to_owned(),
            description: Some("test".to_owned()),
        };
        self.client.create_project(&request).await.expect("project created")
    }

    pub(crate) fn service_request(
        &self,
        project_uuid: &str,
        name: &str,
        compose: &str,
    ) -> CreateServiceRequest {
        CreateServiceRequest {
            project_uuid: project_uuid.to_owned(),
            environment: EnvironmentRef::Name("production".to_owned()),
            server_uuid: self.sandbox.server_uuid(),
            destination_uuid: self.sandbox.destination_uuids().first().cloned(),
            name: name.to_owned(),
            description: None,
            compose_yaml: compose.to_owned(),
            urls: Vec::new(),
            instant_deploy: false,
            force_domain_override: false,
        }
    }

    /// Creates a service from `compose` in a fresh project; returns its uuid.
    pub(crate) async fn service(&self, compose: &str) -> String {
        let project = self.project("status-tests").await;
        self.client
            .create_service(&self.service_request(&project, "svc", compose))
            .await
            .expect("service created")
            .uuid
    }

    /// Polls until the service's status satisfies `done` (5 s at most).
    pub(crate) async fn wait_for(
        &self,
        service_uuid: &str,
        done: impl Fn(&Service) -> bool,
    ) -> Service {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let service =
                self.client.get_service_by_uuid(service_uuid).await.expect("service readable");
            if done(&service) || tokio::time::Instant::now() > deadline {
                return service;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub(crate) const WEB_COMPOSE: &str = "services:
  web:
    image: nginx:1.27-alpine
    environment:
      - SERVICE_URL_WEB_80
      - ADMIN_PASSWORD=${SERVICE_PASSWORD_ADMIN}
      - MODE=${MODE:-production}
    volumes:
      - web-data:/usr/share/nginx/html
    healthcheck:
      test: [\"CMD\", \"wget\", \"-q\", \"-O-\", \"http://127.0.0.1\"]
      interval: 5s
volumes:
  web-data: {}
";

pub(crate) fn url(compose_service: &str, url: &str) -> ServiceUrl {
    ServiceUrl { compose_service: compose_service.to_owned(), url: url.to_owned() }
}

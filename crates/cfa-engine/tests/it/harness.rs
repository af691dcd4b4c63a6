//! The test world: a real PocketBase, an in-process Coolify sandbox, a stand-in for Traefik
//! that answers only for domains of services the sandbox really runs, and an engine on top.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use cfa_backup_store::layout::DEFAULT_FINAL_PREFIX;
use cfa_backup_store::testing::MotoServer;
use cfa_coolify::{ApiToken, CoolifyClient, CoolifyConfig};
use cfa_core::{BaseDomain, PlanTable, PlanTier};
use cfa_engine::{
    DeleteOptions, Engine, EngineSettings, Failpoint, FinalBackupSettings, ProvisionRequest,
};
use cfa_pocketbase::testing::TestPocketBase;
use cfa_pocketbase::{NewTenant, PocketBaseClient, StackFilter};
use cfa_templates::{Catalogue, repository_templates_dir};
use coolify_sandbox::{Ability, Sandbox, SandboxConfig, SandboxHandle, SandboxToken};
use serde_json::json;

pub(crate) const BOT_TOKEN: &str = "123456789:AAsecretBotTokenValue-abcdefghij";
pub(crate) const ROUTER_KEY: &str = "sk-router-secret-key-0123456789";
/// The Router key after a rotation (an upgrade that changes a secret).
pub(crate) const ROUTER_KEY_ROTATED: &str = "sk-router-rotated-key-9876543210";

/// Every log line of every test, for the secrets check (our crates at TRACE).
pub(crate) fn captured_logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| Mutex::new(Vec::new()))
}

struct CaptureWriter;

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        captured_logs().lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn install_log_capture() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::new(
            "info,cfa_engine=trace,cfa_coolify=trace,cfa_pocketbase=trace,cfa_templates=trace",
        );
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(|| CaptureWriter)
            .with_ansi(false)
            .try_init();
    });
}

/// Traefik's stand-in: 200 for a Host that a running sandbox service routes, 404 otherwise
/// (no route), 502 while `broken`.
#[derive(Clone)]
pub(crate) struct Router {
    coolify: CoolifyClient,
    pub(crate) broken: Arc<AtomicBool>,
}

async fn route(State(router): State<Router>, headers: HeaderMap) -> StatusCode {
    if router.broken.load(Ordering::Relaxed) {
        return StatusCode::BAD_GATEWAY;
    }
    let host = headers.get("host").and_then(|host| host.to_str().ok()).unwrap_or("").to_owned();
    let Ok(services) = router.coolify.list_services().await else {
        return StatusCode::BAD_GATEWAY;
    };
    for summary in services.iter().filter(|service| service.status.starts_with("running")) {
        if let Ok(service) = router.coolify.get_service_by_uuid(&summary.uuid).await
            && service.applications.iter().any(|app| {
                app.fqdn.as_deref().is_some_and(|fqdn| fqdn.contains(&format!("//{host}")))
            })
        {
            return StatusCode::OK;
        }
    }
    StatusCode::NOT_FOUND
}

/// The id of the engine's Coolify token (the sandbox's default `1|...`): its calls are the
/// engine's. Traefik's stand-in reads Coolify with a token of its own.
pub(crate) const ENGINE_TOKEN_ID: &str = "1";
const ROUTER_TOKEN: &str = "2|router-stand-in-token";

/// A delete without the grace period.
pub(crate) const SKIP_GRACE: DeleteOptions =
    DeleteOptions { skip_grace: true, without_final_backup: false };

pub(crate) struct World {
    pub(crate) pocketbase: TestPocketBase,
    /// Shared so failpoint closures can inject faults mid-operation.
    pub(crate) sandbox: Arc<SandboxHandle>,
    pub(crate) pb: PocketBaseClient,
    pub(crate) coolify: CoolifyClient,
    pub(crate) router: Router,
    pub(crate) settings: EngineSettings,
    /// The platform's bucket (moto): Coolify's volume backups upload here, final backups stay.
    pub(crate) moto: MotoServer,
}

pub(crate) fn coolify_client(sandbox: &SandboxHandle) -> CoolifyClient {
    coolify_client_at(&sandbox.base_url(), sandbox.token(), |_| {})
}

/// A client for `base_url` with the tests' settings, adjusted by `adjust`.
pub(crate) fn coolify_client_at(
    base_url: &str,
    token: &str,
    adjust: impl FnOnce(&mut CoolifyConfig),
) -> CoolifyClient {
    let mut config = CoolifyConfig::new(base_url, ApiToken::new(token));
    config.requests_per_minute = 100_000;
    config.retry_base_delay = Duration::from_millis(20);
    config.max_retry_delay = Duration::from_millis(200);
    config.timeout = Duration::from_secs(5);
    adjust(&mut config);
    CoolifyClient::new(config).unwrap()
}

impl World {
    pub(crate) async fn start() -> World {
        World::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(adjust: impl FnOnce(&mut SandboxConfig)) -> World {
        install_log_capture();
        let pocketbase = TestPocketBase::start().await.unwrap();
        let pb = pocketbase.superuser().await.unwrap();
        let mut config = SandboxConfig {
            deploy_delay: Duration::from_millis(200),
            delete_delay: Duration::from_millis(100),
            backup_duration: Duration::from_millis(50),
            rate_limit: 100_000,
            ..SandboxConfig::default()
        };
        adjust(&mut config);
        let sandbox = Arc::new(Sandbox::start(config).await.unwrap());
        let coolify = coolify_client(&sandbox);
        sandbox.add_token(SandboxToken::new(ROUTER_TOKEN, &[Ability::Root]));
        let router_coolify = coolify_client_at(&sandbox.base_url(), ROUTER_TOKEN, |_| {});
        let router = Router { coolify: router_coolify, broken: Arc::new(AtomicBool::new(false)) };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let router_address = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(route).with_state(router.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let mut settings = EngineSettings::new(
            BaseDomain::parse("cloudfreedom.test").unwrap(),
            PlanTable::builtin(),
        );
        settings.actor = "test".to_owned();
        settings.poll_interval = Duration::from_millis(50);
        settings.probe_interval = Duration::from_millis(50);
        // The sandbox stores statuses as soon as its start job ends (`status_interval` 0).
        settings.status_lag = Duration::ZERO;
        settings.deploy_timeout = Duration::from_secs(20);
        settings.operation_timeout = Duration::from_secs(20);
        settings.delete_grace = Duration::ZERO;
        settings.probe.base_url = Some(format!("http://{router_address}").parse().unwrap());
        settings.probe.timeout = Duration::from_secs(2);
        settings.url_origins = vec!["https://router.cloudfreedom.test".to_owned()];
        let moto = MotoServer::start("platform-backups").await.unwrap();
        let coolify_s3_storage_uuid = sandbox.add_s3_storage("platform", moto.settings());
        settings.final_backups = Some(FinalBackupSettings {
            store: moto.store().unwrap(),
            coolify_s3_storage_uuid,
            prefix: DEFAULT_FINAL_PREFIX.to_owned(),
            timeout: Duration::from_secs(20),
        });
        World { pocketbase, sandbox, pb, coolify, router, settings, moto }
    }

    pub(crate) fn engine(&self) -> Engine {
        self.engine_with(self.settings.clone())
    }

    pub(crate) fn engine_with(&self, settings: EngineSettings) -> Engine {
        self.engine_with_coolify(self.coolify.clone(), settings)
    }

    /// An engine with its own Coolify client (a second process, a proxy, other timeouts).
    pub(crate) fn engine_with_coolify(
        &self,
        coolify: CoolifyClient,
        settings: EngineSettings,
    ) -> Engine {
        let catalogue = Catalogue::load(&repository_templates_dir()).unwrap();
        Engine::new(coolify, self.pb.clone(), catalogue, settings)
    }

    pub(crate) fn engine_with_failpoint(&self, failpoint: Failpoint) -> Engine {
        let mut settings = self.settings.clone();
        settings.failpoint = Some(failpoint);
        self.engine_with(settings)
    }

    pub(crate) async fn tenant(&self, slug: &str, plan: PlanTier, max_stacks: u32) -> String {
        let user = self
            .pb
            .call_raw(
                reqwest::Method::POST,
                "api/collections/users/records",
                Some(&json!({
                    "email": format!("{slug}@example.com"),
                    "password": "tenant-Passw0rd!",
                    "passwordConfirm": "tenant-Passw0rd!",
                })),
            )
            .await
            .unwrap()
            .unwrap();
        let tenant = self
            .pb
            .tenant_create(&NewTenant {
                name: format!("Tenant {slug}"),
                slug: slug.to_owned(),
                user_id: user["id"].as_str().unwrap().to_owned(),
                max_stacks: Some(max_stacks),
                plan_tier: Some(plan),
                resource_limits: None,
            })
            .await
            .unwrap();
        tenant.id
    }

    /// Coolify's projects named for the tenant and services named for the stack.
    pub(crate) async fn coolify_counts(&self, tenant: &str, stack: &str) -> (usize, usize) {
        let projects = self.coolify.list_projects().await.unwrap();
        let projects =
            projects.iter().filter(|project| project.name == format!("cfa-{tenant}")).count();
        let services = self.coolify.list_services().await.unwrap();
        let services = services
            .iter()
            .filter(|service| {
                service.name == format!("cfa-{stack}")
                    && service.description.as_deref().is_some_and(|description| {
                        description.contains(&format!("tenant={tenant} stack={stack}"))
                    })
            })
            .count();
        (projects, services)
    }

    pub(crate) async fn all_services(&self) -> usize {
        self.coolify.list_services().await.unwrap().len()
    }

    pub(crate) async fn all_projects(&self) -> usize {
        self.coolify.list_projects().await.unwrap().len()
    }

    pub(crate) async fn stacks_of(&self, tenant_id: &str) -> Vec<cfa_pocketbase::AgentStack> {
        self.pb.stack_list_all(&StackFilter::tenant(tenant_id), false).await.unwrap()
    }
}

pub(crate) fn bot_request(tenant: &str, stack: &str) -> ProvisionRequest {
    ProvisionRequest {
        tenant: tenant.to_owned(),
        stack: stack.to_owned(),
        template: "telegram-bot".to_owned(),
        parameters: [
            ("telegram_bot_token", BOT_TOKEN),
            ("router_base_url", "https://router.cloudfreedom.test/v1"),
            ("router_api_key", ROUTER_KEY),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect(),
        preferred_server: None,
    }
}

pub(crate) fn openclaw_request(tenant: &str, stack: &str) -> ProvisionRequest {
    ProvisionRequest {
        template: "openclaw-agent".to_owned(),
        parameters: [
            ("router_base_url", "https://router.cloudfreedom.test/v1"),
            ("router_api_key", ROUTER_KEY),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect(),
        ..bot_request(tenant, stack)
    }
}

pub(crate) fn base_llm_request(tenant: &str, stack: &str) -> ProvisionRequest {
    ProvisionRequest {
        template: "base-llm".to_owned(),
        parameters: [
            ("router_base_url", "https://router.cloudfreedom.test/v1"),
            ("router_api_key", ROUTER_KEY),
            ("admin_email", "admin@example.com"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect(),
        ..bot_request(tenant, stack)
    }
}

/// A TCP stand-in for the network between the engine and Coolify: while `down`, it cuts every
/// open connection and every new one, as an unreachable Coolify would.
pub(crate) struct CoolifyLink {
    pub(crate) base_url: String,
    down: tokio::sync::watch::Sender<bool>,
}

impl CoolifyLink {
    pub(crate) async fn start(upstream: std::net::SocketAddr) -> CoolifyLink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let (down, _) = tokio::sync::watch::channel(false);
        let down_for_loop = down.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut down = down_for_loop.subscribe();
                if *down.borrow() {
                    drop(inbound);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = down.wait_for(|down| *down) => {}
                    }
                });
            }
        });
        CoolifyLink { base_url, down }
    }

    pub(crate) fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
}

/// No secret value in any stack record, any audit entry or any log line captured so far.
/// Asserts a final backup run was queued for `service_uuid` before its delete was sent
/// (needs `record_exchanges`), and that it outlived the delete: under the platform's prefix
/// for `tenant/stack`, not empty, while Coolify's own archives of the service are gone
/// (`DeleteScheduledVolumeBackup`).
pub(crate) async fn assert_final_backup_kept(
    world: &World,
    tenant: &str,
    stack: &str,
    service_uuid: &str,
) {
    let exchanges = world.sandbox.exchanges();
    let position =
        |wanted: &dyn Fn(&coolify_sandbox::Exchange) -> bool| exchanges.iter().position(wanted);
    let backup = position(&|exchange| {
        exchange.method == "POST"
            && exchange.path.contains(service_uuid)
            && exchange.path.ends_with("/backups/run")
    });
    let delete = position(&|exchange| {
        exchange.method == "DELETE" && exchange.path == format!("/api/v1/services/{service_uuid}")
    });
    match (backup, delete) {
        (Some(backup), Some(delete)) => assert!(backup < delete, "the backup ran after the delete"),
        other => panic!("a final backup and a delete of {service_uuid}: {other:?}"),
    }
    let store = world.moto.store().unwrap();
    let kept = store.list(&format!("{DEFAULT_FINAL_PREFIX}/{tenant}/{stack}")).await.unwrap();
    assert!(!kept.is_empty(), "no final backup kept for {tenant}/{stack}");
    assert!(kept.iter().all(|archive| archive.size_bytes > 0), "{kept:?}");
}

/// Coolify's own archives of the deleted service are gone (`DeleteScheduledVolumeBackup`), so
/// the platform's copy is the only one left.
pub(crate) async fn assert_coolify_archives_gone(world: &World, service_uuid: &str) {
    let executions: Vec<_> = world
        .sandbox
        .backup_executions()
        .into_iter()
        .filter(|execution| execution.service_uuid == service_uuid)
        .collect();
    assert!(executions.is_empty(), "Coolify forgot the executions: {executions:?}");
    let left = world.moto.store().unwrap().list("data/coolify/backups/volumes").await.unwrap();
    assert!(
        !left.iter().any(|archive| archive.key.contains(service_uuid)),
        "Coolify's copies should be gone with the service: {left:?}"
    );
}

pub(crate) async fn assert_no_secret_anywhere(world: &World, errors: &[String]) {
    let stacks = world
        .pb
        .call_raw(reqwest::Method::GET, "api/collections/agent_stacks/records?perPage=500", None)
        .await
        .unwrap()
        .unwrap()
        .to_string();
    let audit = world
        .pb
        .call_raw(reqwest::Method::GET, "api/collections/audit_log/records?perPage=500", None)
        .await
        .unwrap()
        .unwrap()
        .to_string();
    assert!(audit.contains("stack."), "the audit log is read: {audit}");
    let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
    assert!(logs.contains("TELEGRAM_BOT_TOKEN"), "env keys are logged, so logs are captured");
    for secret in [BOT_TOKEN, ROUTER_KEY, ROUTER_KEY_ROTATED] {
        assert!(!stacks.contains(secret), "secret in agent_stacks");
        assert!(!audit.contains(secret), "secret in audit_log");
        assert!(!logs.contains(secret), "secret in the logs");
        for error in errors {
            assert!(!error.contains(secret), "secret in an error: {error}");
        }
    }
}

/// `engine.provision` owning its request, for `join_all` over many.
pub(crate) async fn provision(
    engine: &Engine,
    request: ProvisionRequest,
) -> Result<cfa_engine::StackOutcome, cfa_engine::EngineError> {
    engine.provision(&request).await
}

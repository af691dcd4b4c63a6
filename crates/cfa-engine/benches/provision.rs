//! Provisioning figures against the real PocketBase and the in-process Coolify sandbox:
//! (a) the platform's own share of one provision (total minus the sandbox's deploy delay),
//! (b) Coolify calls per provision, by route, against the minimum the flow needs,
//! (c) 100 tenants provisioned at once under the client's rate budget, with the peak number
//! of requests the sandbox saw in any budget window.
//! Run: `cargo bench -p cfa-engine` (PocketBase 0.40.6 on PATH: `source scripts/env.sh`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cfa_coolify::{ApiToken, CoolifyClient, CoolifyConfig};
use cfa_core::{BaseDomain, PlanTable, PlanTier};
use cfa_engine::{Engine, EngineSettings, ProvisionRequest};
use cfa_pocketbase::testing::TestPocketBase;
use cfa_pocketbase::{NewTenant, PocketBaseClient};
use cfa_templates::{Catalogue, repository_templates_dir};
use coolify_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use criterion::{Criterion, SamplingMode};
use futures::future::join_all;
use tokio::runtime::Runtime;

/// How long the sandbox takes to "pull and start" containers: not the platform's time.
const DEPLOY_DELAY: Duration = Duration::from_millis(300);

#[expect(clippy::print_stdout, reason = "a bench binary reports on stdout")]
fn report(line: &str) {
    println!("{line}");
}

struct Setup {
    pocketbase: TestPocketBase,
    pb: PocketBaseClient,
    sandbox: Arc<SandboxHandle>,
    /// A clone of the engine's client: clones share the rate budget.
    coolify: CoolifyClient,
    engine: Engine,
}

async fn setup(
    sandbox_config: SandboxConfig,
    adjust_client: impl FnOnce(&mut CoolifyConfig),
    poll_interval: Duration,
) -> Setup {
    let pocketbase = TestPocketBase::start().await.expect("pocketbase (source scripts/env.sh)");
    let pb = pocketbase.superuser().await.expect("superuser");
    let sandbox = Arc::new(Sandbox::start(sandbox_config).await.expect("sandbox"));
    let mut config = CoolifyConfig::new(sandbox.base_url(), ApiToken::new(sandbox.token()));
    adjust_client(&mut config);
    let coolify = CoolifyClient::new(config).expect("client");
    let mut settings = EngineSettings::new(
        BaseDomain::parse("cloudfreedom.test").expect("domain"),
        PlanTable::builtin(),
    );
    settings.actor = "bench".to_owned();
    settings.poll_interval = poll_interval;
    settings.probe_interval = poll_interval;
    settings.status_lag = Duration::ZERO;
    settings.deploy_timeout = Duration::from_secs(600);
    settings.operation_timeout = Duration::from_secs(600);
    settings.delete_grace = Duration::ZERO;
    settings.url_origins = vec!["https://router.cloudfreedom.test".to_owned()];
    let catalogue = Catalogue::load(&repository_templates_dir()).expect("templates");
    let engine = Engine::new(coolify.clone(), pb.clone(), catalogue, settings);
    Setup { pocketbase, pb, sandbox, coolify, engine }
}

fn sandbox_config() -> SandboxConfig {
    SandboxConfig {
        deploy_delay: DEPLOY_DELAY,
        delete_delay: Duration::from_millis(100),
        rate_limit: u32::MAX,
        ..SandboxConfig::default()
    }
}

/// An unthrottled client: (a) and (b) measure the platform, not the budget.
fn unthrottled(config: &mut CoolifyConfig) {
    config.requests_per_minute = u32::MAX / 2;
}

async fn tenant(setup: &Setup, slug: &str, plan: PlanTier, max_stacks: u32) {
    let (user_id, _) =
        setup.pocketbase.user(&format!("{slug}@bench.test")).await.expect("tenant user");
    setup
        .pb
        .tenant_create(&NewTenant {
            name: format!("Tenant {slug}"),
            slug: slug.to_owned(),
            user_id,
            max_stacks: Some(max_stacks),
            plan_tier: Some(plan),
            resource_limits: None,
        })
        .await
        .expect("tenant");
}

fn bot_request(tenant: &str, stack: &str) -> ProvisionRequest {
    ProvisionRequest {
        tenant: tenant.to_owned(),
        stack: stack.to_owned(),
        template: "telegram-bot".to_owned(),
        parameters: [
            ("telegram_bot_token", "123456789:AAbenchBotTokenValue-abcdefghij"),
            ("router_base_url", "https://router.cloudfreedom.test/v1"),
            ("router_api_key", "sk-bench-router-key-0123456789"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect(),
        preferred_server: None,
    }
}

async fn provision(engine: &Engine, request: ProvisionRequest) {
    let outcome = engine.provision(&request).await.expect("provision");
    assert_eq!(outcome.status, cfa_core::StackStatus::Running);
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime")
}

/// (a) One new tenant's first stack (project + service), end to end.
fn platform_share(criterion: &mut Criterion) {
    let runtime = runtime();
    let setup = runtime.block_on(setup(sandbox_config(), unthrottled, Duration::from_millis(50)));
    let totals: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let mut counter = 0u32;
    let mut group = criterion.benchmark_group("provision");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("telegram-bot, new tenant (total)", |bencher| {
        bencher.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                counter += 1;
                let slug = format!("share{counter}");
                runtime.block_on(tenant(&setup, &slug, PlanTier::Starter, 1));
                let started = Instant::now();
                runtime.block_on(provision(&setup.engine, bot_request(&slug, "bot")));
                let elapsed = started.elapsed();
                totals.lock().expect("totals").push(elapsed);
                total += elapsed;
            }
            total
        });
    });
    group.finish();
    let mut totals = totals.lock().expect("totals").clone();
    totals.sort();
    let share = |total: Duration| total.saturating_sub(DEPLOY_DELAY).as_secs_f64() * 1000.0;
    let mean = totals.iter().sum::<Duration>() / u32::try_from(totals.len()).unwrap_or(1);
    report(&format!(
        "(a) platform share of one provision = total - {} ms deploy delay, over {} provisions: mean {:.0} ms, median {:.0} ms, max {:.0} ms (readiness polled every 50 ms)",
        DEPLOY_DELAY.as_millis(),
        totals.len(),
        share(mean),
        share(totals[totals.len() / 2]),
        share(totals[totals.len() - 1]),
    ));
}

/// The calls the sandbox saw from `from` on, counted by `METHOD route`.
fn calls_since(sandbox: &SandboxHandle, from: usize) -> (usize, BTreeMap<String, usize>) {
    let exchanges = sandbox.exchanges();
    let mut by_route = BTreeMap::new();
    for exchange in &exchanges[from..] {
        let route = exchange.route.clone().unwrap_or_else(|| exchange.path.clone());
        *by_route.entry(format!("{} {route}", exchange.method)).or_insert(0) += 1;
    }
    (exchanges.len() - from, by_route)
}

/// (b) Coolify calls per provision, by route.
fn calls_per_provision() {
    let runtime = runtime();
    let config = SandboxConfig { record_exchanges: true, ..sandbox_config() };
    let setup = runtime.block_on(setup(config, unthrottled, Duration::from_millis(50)));
    runtime.block_on(async {
        // Warm up: the client asks Coolify's version once per process.
        tenant(&setup, "warm", PlanTier::Starter, 1).await;
        provision(&setup.engine, bot_request("warm", "bot")).await;
        tenant(&setup, "calls", PlanTier::Team, 3).await;
        for (label, stack) in [
            ("new tenant, first stack (creates the project)", "first"),
            ("same tenant, second stack (project exists)", "second"),
            ("rerun of the running second stack (idempotent check)", "second"),
        ] {
            let from = setup.sandbox.exchanges().len();
            provision(&setup.engine, bot_request("calls", stack)).await;
            let (total, by_route) = calls_since(&setup.sandbox, from);
            let polls = by_route.get("GET /api/v1/services/{uuid}").copied().unwrap_or(0);
            report(&format!(
                "(b) {label}: {total} Coolify calls ({polls} of them GET /services/{{uuid}} readiness polls)"
            ));
            for (route, count) in by_route {
                report(&format!("      {count:>3}  {route}"));
            }
        }
    });
}

/// (c) 100 tenants at once; the sandbox enforces the same budget as a fixed window and a
/// sampler records its request counter, so the peak of any window is measured, not assumed.
fn budget_run() {
    const TENANTS: usize = 100;
    const BUDGET: u32 = 300;
    const WINDOW: Duration = Duration::from_secs(10);
    let runtime = runtime();
    let config =
        SandboxConfig { rate_limit: BUDGET, rate_limit_window: WINDOW, ..sandbox_config() };
    let client = |config: &mut CoolifyConfig| {
        config.requests_per_minute = BUDGET;
        config.rate_window = WINDOW;
    };
    let setup = runtime.block_on(setup(config, client, Duration::from_millis(250)));
    runtime.block_on(async {
        let slugs: Vec<String> = (0..TENANTS).map(|index| format!("budget{index}")).collect();
        for slug in &slugs {
            tenant(&setup, slug, PlanTier::Starter, 1).await;
        }
        let samples: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
        let sampler = {
            let samples = samples.clone();
            let sandbox = setup.sandbox.clone();
            samples.lock().expect("samples").push((Instant::now(), sandbox.stats().requests));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let requests = sandbox.stats().requests;
                    samples.lock().expect("samples").push((Instant::now(), requests));
                }
            })
        };
        let started = Instant::now();
        join_all(slugs.iter().map(|slug| provision(&setup.engine, bot_request(slug, "bot")))).await;
        let elapsed = started.elapsed();
        sampler.abort();
        let stats = setup.sandbox.stats();
        let samples = samples.lock().expect("samples").clone();
        let mut peak = 0u64;
        let mut start = 0;
        for end in 0..samples.len() {
            while samples[end].0.duration_since(samples[start].0) > WINDOW {
                start += 1;
            }
            // Requests counted after sample `start - 1` may already be inside the window.
            let base = samples[start.saturating_sub(1)].1;
            peak = peak.max(samples[end].1 - base);
        }
        let budget = setup.coolify.rate_budget().waited();
        report(&format!(
            "(c) {TENANTS} tenants provisioned at once in {:.1} s under a budget of {BUDGET} requests per {} s: {} Coolify requests, peak {peak} in any {} s window (sampled every 20 ms, upper bound), {} throttled by the sandbox (same limit, fixed window), {budget} requests waited for the budget",
            elapsed.as_secs_f64(),
            WINDOW.as_secs(),
            stats.requests,
            WINDOW.as_secs(),
            stats.rate_limited,
        ));
        assert_eq!(stats.rate_limited, 0, "the sandbox throttled: the budget was exceeded");
        assert!(peak <= u64::from(BUDGET), "peak {peak} over the budget {BUDGET}");
    });
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    platform_share(&mut criterion);
    criterion.final_summary();
    calls_per_provision();
    budget_run();
}

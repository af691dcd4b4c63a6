//! Controller figures against the real PocketBase and the in-process Coolify sandbox:
//! (a) a resync pass over 10,000 stacks with nothing to do (8,000 running, 1,000 stopped,
//! 1,000 failed): its time, its Coolify calls (target: at most one list), its PocketBase writes
//! (target: none), and the bench process's peak RSS;
//! (b) from a record's change in PocketBase to the controller's first Coolify call, with the
//! controller waiting on PocketBase's realtime events and reconciling the record the event
//! names (target: under 1 s).
//! Run: `cargo bench -p cfa-engine --bench controller` (PocketBase on PATH: `source
//! scripts/env.sh`).

use std::time::{Duration, Instant};

use cfa_coolify::{ApiToken, CoolifyClient, CoolifyConfig};
use cfa_core::{Backoff, BaseDomain, PlanTable, PlanTier, StackStatus};
use cfa_engine::{
    Backoffs, ControllerPass, Engine, EngineSettings, PassFocus, ProvisionRequest, Woken,
};
use cfa_pocketbase::testing::TestPocketBase;
use cfa_pocketbase::{NewStack, NewTenant, StackFilter, StackPatch};
use cfa_templates::{Catalogue, repository_templates_dir};
use coolify_sandbox::{Sandbox, SandboxConfig};
use futures::StreamExt;

const STACKS: usize = 10_000;

#[expect(clippy::print_stdout, reason = "a bench binary reports on stdout")]
fn report(line: &str) {
    println!("{line}");
}

/// The process's peak resident set (`VmHWM`), in MB.
fn peak_rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

fn main() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let pocketbase = TestPocketBase::start().await.expect("pocketbase (source scripts/env.sh)");
    let pb = pocketbase.superuser().await.expect("superuser");
    let sandbox = Sandbox::start(SandboxConfig {
        deploy_delay: Duration::from_millis(100),
        rate_limit: u32::MAX,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    let mut config = CoolifyConfig::new(sandbox.base_url(), ApiToken::new(sandbox.token()));
    config.requests_per_minute = u32::MAX / 2;
    let coolify = CoolifyClient::new(config).expect("client");
    let mut settings = EngineSettings::new(
        BaseDomain::parse("cloudfreedom.test").expect("domain"),
        PlanTable::builtin(),
    );
    settings.actor = "bench".to_owned();
    settings.poll_interval = Duration::from_millis(50);
    settings.status_lag = Duration::ZERO;
    settings.url_origins = vec!["https://router.cloudfreedom.test".to_owned()];
    let catalogue = Catalogue::load(&repository_templates_dir()).expect("templates");
    let engine = Engine::new(coolify, pb.clone(), catalogue, settings);

    let (user_id, _) = pocketbase.user("fleet@bench.test").await.expect("user");
    let tenant = pb
        .tenant_create(&NewTenant {
            name: "Fleet".to_owned(),
            slug: "fleet".to_owned(),
            user_id,
            max_stacks: Some(u32::try_from(STACKS).unwrap_or(u32::MAX) + 10),
            plan_tier: Some(PlanTier::Sovereign),
            resource_limits: None,
        })
        .await
        .expect("tenant");

    let created = Instant::now();
    let tenant_id = tenant.id.clone();
    futures::stream::iter(0..STACKS)
        .map(|index| {
            let pb = pb.clone();
            let tenant_id = tenant_id.clone();
            async move {
                let status = match index % 10 {
                    0 => StackStatus::Stopped,
                    1 => StackStatus::Error,
                    _ => StackStatus::Running,
                };
                let mut stack =
                    NewStack::pending(&tenant_id, "telegram-bot", &format!("bot-{index}"));
                stack.status = status;
                stack.coolify_service_uuid = Some(format!("gone{index:08}"));
                pb.stack_create(&stack).await.expect("stack");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    report(&format!("created {STACKS} records in {:.1} s", created.elapsed().as_secs_f64()));

    // (a) passes with nothing to do.
    let before: Vec<_> = pb.stack_list_all(&StackFilter::default(), false).await.expect("list");
    for run in 1..=3 {
        let mut backoffs = Backoffs::new(Backoff::CONTROLLER);
        let calls = sandbox.stats().requests;
        let started = Instant::now();
        let pass = engine.reconcile_pass(4, &mut backoffs).await.expect("pass");
        let took = started.elapsed();
        assert_eq!(pass.stacks_seen, STACKS);
        assert!(pass.activations.is_empty(), "nothing asks: {:?}", pass.activations.len());
        report(&format!(
            "(a) pass {run}: {STACKS} stacks seen in {:.0} ms, {} Coolify calls, {} actions",
            took.as_secs_f64() * 1000.0,
            sandbox.stats().requests - calls,
            pass.activations.len()
        ));
    }
    let after: Vec<_> = pb.stack_list_all(&StackFilter::default(), false).await.expect("list");
    let written = before
        .iter()
        .zip(&after)
        .filter(|(before, after)| before.id != after.id || before.updated_at != after.updated_at)
        .count();
    report(&format!("(a) PocketBase records written by the passes: {written}"));
    report(&format!(
        "(a) bench process peak RSS (PocketBase client, engine, in-process sandbox): {} MB",
        peak_rss_mb()
    ));

    // (b) a running stack, a waiting controller, then a `stopped` written to PocketBase.
    let request = ProvisionRequest {
        tenant: "fleet".to_owned(),
        stack: "live".to_owned(),
        template: "telegram-bot".to_owned(),
        parameters: [
            ("telegram_bot_token", "123456789:AAbenchTokenValue-abcdefghijklmno"),
            ("router_base_url", "https://router.cloudfreedom.test/v1"),
            ("router_api_key", "sk-bench-router-key-0123456789"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect(),
        preferred_server: None,
    };
    let outcome = engine.provision(&request).await.expect("provision");
    let waiter = async {
        let mut subscription = None;
        // Subscribe first (a pass would), then wait as the controller does.
        let _ = engine.wait_for_request(&mut subscription, Duration::from_millis(10)).await;
        let woken = engine.wait_for_request(&mut subscription, Duration::from_secs(60)).await;
        let Woken::Request(record) = woken else { panic!("not woken by the write: {woken:?}") };
        let mut backoffs = Backoffs::new(Backoff::CONTROLLER);
        let pass = engine
            .controller_pass(
                "bench:1",
                Duration::from_secs(60),
                4,
                &mut backoffs,
                &PassFocus::Record(record),
            )
            .await
            .expect("pass");
        let ControllerPass::Ran(report) = pass else { panic!("the lease is free") };
        report
    };
    let writer = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let calls = sandbox.stats().requests;
        let record = engine.stack("fleet", "live").await.expect("record");
        let written = Instant::now();
        let stop = StackPatch { status: Some(StackStatus::Stopped), ..StackPatch::default() };
        pb.stack_update(&record.id, &stop).await.expect("stop");
        while sandbox.stats().requests == calls {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        written.elapsed()
    };
    let (pass, first_call) = tokio::join!(waiter, writer);
    assert_eq!(pass.activations.len(), 1, "the stopped stack was carried out");
    report(&format!(
        "(b) from the PocketBase write to the first Coolify call: {:.0} ms (among {} records); service {} stopped",
        first_call.as_secs_f64() * 1000.0,
        STACKS + 1,
        outcome.service_uuid.unwrap_or_default()
    ));
}

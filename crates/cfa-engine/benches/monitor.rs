//! Monitor figures against the real PocketBase and the in-process Coolify sandbox, with
//! 10,000 running stacks on 10,000 seeded services:
//! (a) a monitor pass over healthy stacks with nothing changed: its time (target under 5 s),
//! its Coolify calls (target: one list), its PocketBase writes (target: none, by the report
//! and by every record's `updated` stamp), and RSS (target under 64 MB);
//! (b) the same with 1,000 of the stacks routed and probed over HTTP (a local server that
//! answers 200), `monitor.concurrency` at its default;
//! (c) a storm: every container turns unhealthy at once, the pass that opens 10,000 incidents
//! (one grouped message, one outbox write for the one channel), then the next passes.
//!
//! RSS is read from `/proc/self/status`; the kernel's peak is reset before each measured step
//! (`5` into `/proc/self/clear_refs`), so a step's peak is its own. This process also holds the
//! sandbox's 10,000 services and serves their list, so (a), (b) and the pass after the storm
//! are measured a second time in a child process (this binary again, `CFA_MONITOR_BENCH_CHILD`)
//! that holds only what `cfa serve` would: the PocketBase client and the engine; further
//! children measure a pass's reads alone (Coolify's list, the stack records, the stored
//! tracks), each on a fresh heap.
//! Should the one-channel storm fail, (c) runs it again with no channel.
//!
//! Run: `cargo bench -p cfa-engine --bench monitor` (PocketBase on PATH: `source
//! scripts/env.sh`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cfa_coolify::{ApiToken, CoolifyClient, CoolifyConfig};
use cfa_core::incidents::{AlertPolicy, IncidentKind};
use cfa_core::{BaseDomain, PlanTable, PlanTier, StackStatus};
use cfa_engine::{Engine, EngineSettings, MonitorReport};
use cfa_pocketbase::testing::{SUPERUSER_EMAIL, SUPERUSER_PASSWORD, TestPocketBase};
use cfa_pocketbase::{NewStack, NewTenant, Password, PocketBaseClient, StackFilter, StackPatch};
use cfa_templates::{Catalogue, repository_templates_dir};
use coolify_sandbox::{Fault, Sandbox, SandboxConfig, SandboxHandle};
use futures::StreamExt;

const STACKS: usize = 10_000;
/// Every tenth stack gets a domain in (b).
const ROUTED_EVERY: usize = 10;
/// Set in the child: what it measures (see [`child`]). With
/// `CFA_MONITOR_BENCH_{PB,COOLIFY,TOKEN,PROBE}`.
const CHILD: &str = "CFA_MONITOR_BENCH_CHILD";

#[expect(clippy::print_stdout, reason = "a bench binary reports on stdout")]
fn report(line: &str) {
    println!("{line}");
}

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`), in MB.
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches(" kB").trim().parse::<u32>().ok())
        .map_or(0.0, |kb| f64::from(kb) / 1024.0)
}

/// The process's peak RSS over its whole life, although each step resets the kernel's.
#[derive(Debug, Default)]
struct PeakRss {
    lifetime_mb: f64,
}

impl PeakRss {
    /// Resets the kernel's peak (`VmHWM`) to the current RSS; answers the RSS now.
    fn reset(&mut self) -> f64 {
        self.lifetime_mb = self.lifetime_mb.max(status_mb("VmHWM"));
        // Linux 4.0 and later: "5" resets the peak RSS to the current RSS.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        status_mb("VmRSS")
    }

    /// The peak since the last reset.
    fn since_reset(&mut self) -> f64 {
        let peak = status_mb("VmHWM");
        self.lifetime_mb = self.lifetime_mb.max(peak);
        peak
    }
}

/// The machine the figures come from.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let ram_gb = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|value| value.trim().trim_end_matches(" kB").trim().parse::<u32>().ok())
        .map_or(0.0, |kb| f64::from(kb) / 1024.0 / 1024.0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|value| value.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    format!("{cores} cores ({model}), {ram_gb:.1} GB RAM")
}

/// The engine's settings: probes through `probe_url`, unhealthy firing on the first failed
/// check, messages to `channels`.
fn settings(probe_url: &str, channels: &[&str]) -> EngineSettings {
    let mut settings = EngineSettings::new(
        BaseDomain::parse("cloudfreedom.test").expect("domain"),
        PlanTable::builtin(),
    );
    settings.actor = "bench".to_owned();
    settings.status_lag = Duration::ZERO;
    settings.url_origins = vec!["https://router.cloudfreedom.test".to_owned()];
    settings.probe.base_url = Some(probe_url.parse().expect("probe url"));
    settings.probe.timeout = Duration::from_secs(2);
    settings.monitor.channels = channels.iter().map(|&channel| channel.to_owned()).collect();
    let mut policy = AlertPolicy::default_for(IncidentKind::Unhealthy);
    policy.pending_for = Duration::ZERO;
    policy.consecutive_failures = 1;
    settings.monitor.policies.set(IncidentKind::Unhealthy, policy).expect("policy");
    settings
}

fn coolify_client(base_url: &str, token: &str) -> CoolifyClient {
    let mut config = CoolifyConfig::new(base_url, ApiToken::new(token));
    config.requests_per_minute = u32::MAX / 2;
    CoolifyClient::new(config).expect("client")
}

fn engine(coolify: &CoolifyClient, pb: &PocketBaseClient, settings: EngineSettings) -> Engine {
    let catalogue = Catalogue::load(&repository_templates_dir()).expect("templates");
    Engine::new(coolify.clone(), pb.clone(), catalogue, settings)
}

/// Every record's `updated` stamp, by id.
async fn updated_stamps(pb: &PocketBaseClient) -> HashMap<String, jiff::Timestamp> {
    let records = pb.stack_list_all(&StackFilter::default(), false).await.expect("list");
    records.into_iter().map(|record| (record.id, record.updated_at)).collect()
}

/// How many records were written (or appeared, or went) between two snapshots.
fn changed(
    before: &HashMap<String, jiff::Timestamp>,
    after: &HashMap<String, jiff::Timestamp>,
) -> usize {
    let written = after.iter().filter(|(id, stamp)| before.get(*id) != Some(*stamp)).count();
    written + before.keys().filter(|id| !after.contains_key(*id)).count()
}

/// A monitor pass, timed, with the peak RSS it reached.
struct Measured {
    outcome: Result<MonitorReport, cfa_engine::EngineError>,
    took: Duration,
    rss_before_mb: f64,
    peak_mb: f64,
}

impl Measured {
    fn report(&self) -> &MonitorReport {
        self.outcome.as_ref().expect("monitor pass")
    }

    fn millis(&self) -> f64 {
        self.took.as_secs_f64() * 1000.0
    }
}

async fn measured_pass(engine: &Engine, peak: &mut PeakRss) -> Measured {
    let rss_before_mb = peak.reset();
    let started = Instant::now();
    let outcome = engine.monitor_pass().await;
    let took = started.elapsed();
    let peak_mb = peak.since_reset();
    Measured { outcome, took, rss_before_mb, peak_mb }
}

/// Reports a storm pass: what it opened, grouped, queued and wrote.
fn report_storm(label: &str, storm: &Measured) {
    let storm_report = storm.report();
    let counted = storm_report.messages.iter().map(|message| message.count()).sum::<usize>();
    let payload_bytes = storm_report
        .messages
        .iter()
        .map(|message| {
            serde_json::to_vec(&cfa_alerts::AlertMessage::from_grouped(message))
                .map_or(0, |bytes| bytes.len())
        })
        .max()
        .unwrap_or(0);
    report(&format!(
        "{label}: {} incidents opened in {:.1} s; {} grouped message(s) counting {counted} stacks \
         (largest payload {:.2} MB), {} outbox write(s); {} records, {} tracks written ({} \
         PocketBase writes in all); {} probes; peak RSS {:.0} MB",
        storm_report.opened.len(),
        storm.took.as_secs_f64(),
        storm_report.messages.len(),
        payload_bytes as f64 / 1024.0 / 1024.0,
        storm_report.outbox_writes,
        storm_report.record_writes,
        storm_report.track_writes,
        storm_report.writes(),
        storm_report.probes,
        storm.peak_mb
    ));
    if let Some(message) = storm_report.messages.first() {
        report(&format!("{label}, the message: {}", message.title()));
    }
}

fn main() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    match std::env::var(CHILD) {
        Ok(mode) => runtime.block_on(child(&mode)),
        Err(_) => runtime.block_on(run()),
    }
}

/// What a child measures: `pass:N` (N monitor passes), or one of the pass's reads alone
/// (`services`, `records`, `tracks`), each in a fresh process so none inherits another's heap.
async fn child(mode: &str) {
    let variable = |name: &str| std::env::var(name).expect(name);
    let rss_started = status_mb("VmRSS");
    let pb = PocketBaseClient::connect_superuser(
        &variable("CFA_MONITOR_BENCH_PB"),
        SUPERUSER_EMAIL,
        Password::new(SUPERUSER_PASSWORD),
    )
    .await
    .expect("superuser");
    let coolify_url = variable("CFA_MONITOR_BENCH_COOLIFY");
    let token = variable("CFA_MONITOR_BENCH_TOKEN");
    let coolify = coolify_client(&coolify_url, &token);
    let engine = engine(&coolify, &pb, settings(&variable("CFA_MONITOR_BENCH_PROBE"), &[]));
    let mut peak = PeakRss::default();
    let rss_ready = status_mb("VmRSS");
    let alone = |what: &str, count: usize, rss_before: f64, peak: f64| {
        format!("{what} alone: {count} items, RSS {rss_before:.0} MB before, peak {peak:.0} MB")
    };
    match mode {
        "services" => {
            let rss_before = peak.reset();
            let services = coolify.list_services().await.expect("services");
            let line = alone("GET /services", services.len(), rss_before, peak.since_reset());
            drop(services);
            let body = reqwest::Client::new()
                .get(format!("{coolify_url}/api/v1/services"))
                .bearer_auth(&token)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .expect("GET /services");
            let bytes = body.bytes().await.expect("body").len();
            report(&format!("{line}; the JSON body is {:.1} MB", bytes as f64 / 1024.0 / 1024.0));
        }
        "records" => {
            let rss_before = peak.reset();
            let records = pb.stack_list_all(&StackFilter::default(), true).await.expect("records");
            let line = alone(
                "the stack records (with their tenant)",
                records.len(),
                rss_before,
                peak.since_reset(),
            );
            report(&line);
        }
        "tracks" => {
            let rss_before = peak.reset();
            let tracks = pb.track_list_all().await.expect("tracks");
            report(&alone("the stored tracks", tracks.len(), rss_before, peak.since_reset()));
        }
        passes => {
            let passes: usize =
                passes.strip_prefix("pass:").and_then(|n| n.parse().ok()).expect("mode");
            report(&format!("RSS {rss_started:.0} MB at start, {rss_ready:.0} MB with the engine"));
            for run in 1..=passes {
                let pass = measured_pass(&engine, &mut peak).await;
                report(&format!(
                    "pass {run}: {} stacks in {:.0} ms, {} probes, {} PocketBase writes; RSS \
                     {:.0} MB before, peak {:.0} MB during",
                    pass.report().stacks_checked,
                    pass.millis(),
                    pass.report().probes,
                    pass.report().writes(),
                    pass.rss_before_mb,
                    pass.peak_mb
                ));
            }
            peak.reset();
            report(&format!("peak RSS of the process: {:.0} MB", peak.lifetime_mb));
        }
    }
}

/// Runs `mode` (see [`child`]) in a child process holding only the PocketBase client and the
/// engine, as `cfa serve` does; answers its lines.
fn monitor_alone(
    pocketbase: &TestPocketBase,
    sandbox: &SandboxHandle,
    probe_url: &str,
    mode: &str,
) -> Vec<String> {
    let output = std::process::Command::new(std::env::current_exe().expect("this binary"))
        .env(CHILD, mode)
        .env("CFA_MONITOR_BENCH_PB", pocketbase.url())
        .env("CFA_MONITOR_BENCH_COOLIFY", sandbox.base_url())
        .env("CFA_MONITOR_BENCH_TOKEN", sandbox.token())
        .env("CFA_MONITOR_BENCH_PROBE", probe_url)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("child");
    assert!(output.status.success(), "the child failed: {}", output.status);
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect()
}

async fn run() {
    let mut peak = PeakRss::default();
    report(&format!("machine: {}", machine()));
    let pocketbase = TestPocketBase::start().await.expect("pocketbase (source scripts/env.sh)");
    let pb = pocketbase.superuser().await.expect("superuser");
    let sandbox = Sandbox::start(SandboxConfig {
        deploy_delay: Duration::from_millis(100),
        rate_limit: u32::MAX,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    let coolify = coolify_client(&sandbox.base_url(), sandbox.token());

    // The probes' target: a local server answering 200 to every request, as a proxy in front
    // of a healthy stack does; it counts what it answered.
    let probed = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let probe_url = format!("http://{}", listener.local_addr().expect("address"));
    let counter = probed.clone();
    let app = axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        async { "ok" }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let engine_one_channel = engine(&coolify, &pb, settings(&probe_url, &["ops"]));
    let concurrency = engine_one_channel.settings().monitor.concurrency;
    let rss_started = status_mb("VmRSS");
    sandbox.seed_services(STACKS);
    let services = coolify.list_services().await.expect("services");
    assert_eq!(services.len(), STACKS);
    let rss_seeded = status_mb("VmRSS");

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
    futures::stream::iter(services.iter().enumerate())
        .map(|(index, service)| {
            let pb = pb.clone();
            let mut stack = NewStack::pending(&tenant_id, "telegram-bot", &format!("bot-{index}"));
            stack.status = StackStatus::Running;
            stack.coolify_service_uuid = Some(service.uuid.clone());
            async move { pb.stack_create(&stack).await.expect("stack") }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    drop(services);
    report(&format!(
        "created {STACKS} running records on {STACKS} seeded services in {:.1} s",
        created.elapsed().as_secs_f64()
    ));
    report(&format!(
        "RSS: {rss_started:.0} MB with PocketBase's client, the engine and an empty sandbox; \
         {rss_seeded:.0} MB once the sandbox holds {STACKS} services; {:.0} MB before the first \
         pass",
        status_mb("VmRSS")
    ));

    // (a) healthy stacks, nothing changed.
    let before = updated_stamps(&pb).await;
    for run in 1..=3 {
        let requests = sandbox.stats().requests;
        let pass = measured_pass(&engine_one_channel, &mut peak).await;
        let report_ = pass.report();
        assert_eq!(report_.stacks_checked, STACKS);
        report(&format!(
            "(a) pass {run}: {STACKS} stacks in {:.0} ms, {} Coolify calls (sandbox count; report \
             says {}), {} probes, {} PocketBase writes; RSS {:.0} MB before, peak {:.0} MB during",
            pass.millis(),
            sandbox.stats().requests - requests,
            report_.coolify_calls,
            report_.probes,
            report_.writes(),
            pass.rss_before_mb,
            pass.peak_mb,
        ));
    }
    let requests = sandbox.stats().requests;
    for line in monitor_alone(&pocketbase, &sandbox, &probe_url, "pass:3") {
        report(&format!("(a) monitor alone (child process): {line}"));
    }
    report(&format!(
        "(a) monitor alone: {} Coolify calls over its 3 passes",
        sandbox.stats().requests - requests
    ));
    for mode in ["services", "records"] {
        for line in monitor_alone(&pocketbase, &sandbox, &probe_url, mode) {
            report(&format!("(a) a pass's read (child process): {line}"));
        }
    }
    let after = updated_stamps(&pb).await;
    report(&format!(
        "(a) records whose `updated` changed over the 6 passes: {}",
        changed(&before, &after)
    ));

    // (b) every tenth stack routed, probed through the local server.
    let records = pb.stack_list_all(&StackFilter::default(), false).await.expect("list");
    let ids: HashMap<&str, &str> =
        records.iter().map(|record| (record.stack_name.as_str(), record.id.as_str())).collect();
    for index in (0..STACKS).step_by(ROUTED_EVERY) {
        let name = format!("bot-{index}");
        let patch = StackPatch {
            domain: Some(format!("{name}.fleet.cloudfreedom.test")),
            ..StackPatch::default()
        };
        pb.stack_update(ids[name.as_str()], &patch).await.expect("domain");
    }
    drop(ids);
    drop(records);
    let before = updated_stamps(&pb).await;
    for run in 1..=3 {
        let answered = probed.load(Ordering::Relaxed);
        let requests = sandbox.stats().requests;
        let pass = measured_pass(&engine_one_channel, &mut peak).await;
        let report_ = pass.report();
        assert_eq!(report_.probes, STACKS / ROUTED_EVERY);
        report(&format!(
            "(b) pass {run}: {STACKS} stacks, {} probed ({} answered by the server, {concurrency} \
             at a time), in {:.0} ms, {} Coolify calls, {} PocketBase writes; RSS {:.0} MB \
             before, peak {:.0} MB during",
            report_.probes,
            probed.load(Ordering::Relaxed) - answered,
            pass.millis(),
            sandbox.stats().requests - requests,
            report_.writes(),
            pass.rss_before_mb,
            pass.peak_mb
        ));
    }
    for line in monitor_alone(&pocketbase, &sandbox, &probe_url, "pass:3") {
        report(&format!("(b) monitor alone (child process): {line}"));
    }
    let after = updated_stamps(&pb).await;
    report(&format!(
        "(b) records whose `updated` changed over the 6 passes: {}",
        changed(&before, &after)
    ));

    // (c) a storm: every container unhealthy at once, one channel configured.
    sandbox.inject(Fault::ContainerUnhealthy { service_uuid: None, container: None });
    let before = updated_stamps(&pb).await;
    let storm = measured_pass(&engine_one_channel, &mut peak).await;
    let engine_no_channel = engine(&coolify, &pb, settings(&probe_url, &[]));
    let steady_engine = match storm.outcome {
        Ok(_) => {
            report_storm("(c) storm pass, one channel", &storm);
            &engine_one_channel
        }
        Err(ref error) => {
            report(&format!(
                "(c) storm pass, one channel: FAILED after {:.1} s: {error}",
                storm.took.as_secs_f64()
            ));
            let retry = measured_pass(&engine_one_channel, &mut peak).await;
            if let Err(error) = &retry.outcome {
                report(&format!(
                    "(c) its retry: FAILED after {:.1} s: {error}",
                    retry.took.as_secs_f64()
                ));
            }
            // The same storm with no channel (messages only logged): what the pass costs.
            let storm = measured_pass(&engine_no_channel, &mut peak).await;
            report_storm("(c) storm pass, no channel", &storm);
            &engine_no_channel
        }
    };
    let after = updated_stamps(&pb).await;
    let outbox = pb.outbox_undelivered(100).await.expect("outbox");
    let firing = pb.incident_list(true, 1_000).await.expect("incidents");
    report(&format!(
        "(c) after it: {} records written, {} deliveries in the outbox, {} incidents firing (one \
         page: at most 1,000)",
        changed(&before, &after),
        outbox.len(),
        firing.len()
    ));
    let before = updated_stamps(&pb).await;
    for run in 1..=2 {
        let pass = measured_pass(steady_engine, &mut peak).await;
        report(&format!(
            "(c) next pass {run}, nothing changed: {:.0} ms, {} PocketBase writes, {} opened, {} \
             messages; peak RSS {:.0} MB",
            pass.millis(),
            pass.report().writes(),
            pass.report().opened.len(),
            pass.report().messages.len(),
            pass.peak_mb
        ));
    }
    for mode in ["pass:2", "tracks"] {
        for line in monitor_alone(&pocketbase, &sandbox, &probe_url, mode) {
            report(&format!("(c) after the storm, monitor alone (child process): {line}"));
        }
    }
    let after = updated_stamps(&pb).await;
    report(&format!(
        "(c) records whose `updated` changed over those passes: {}",
        changed(&before, &after)
    ));

    peak.reset();
    report(&format!(
        "bench process peak RSS (PocketBase client, engine, in-process sandbox with {STACKS} \
         services, probe server): {:.0} MB",
        peak.lifetime_mb
    ));
}

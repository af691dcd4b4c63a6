//! `scripts/bench-docker`: from `cfa provision` to `running` on the docker runtime with
//! Coolify's 60 s status interval, for a stack with a URL (openclaw-agent: the probe through
//! the front decides at once) and one without (the bot: bounded by the status interval), and
//! the Coolify calls each provision made. Ignored by default (it takes a few minutes).

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coolify_sandbox::RuntimeKind;

use crate::lifecycle::{Case, Leftovers, StandIns, cases, provision_args};
use crate::world::{Setup, World, docker};

/// When each way of reaching the stack's URL first answered 200, since the provision began.
#[derive(Debug, Default, Clone, Copy)]
struct FirstAnswers {
    front: Option<Duration>,
    container: Option<Duration>,
}

/// Polls `path` every 100 ms through the front (with the stack's Host) and on the container's
/// own address, as soon as it has one.
fn watch_url(
    world: &World,
    tenant: &'static str,
    host: String,
    port: u16,
    path: &'static str,
    began: Instant,
) -> (Arc<Mutex<FirstAnswers>>, tokio::task::JoinHandle<()>) {
    let first = Arc::new(Mutex::new(FirstAnswers::default()));
    let record = first.clone();
    let front = world.sandbox.probe_url().unwrap();
    let watcher = tokio::spawn(async move {
        let client =
            reqwest::Client::builder().timeout(Duration::from_millis(900)).build().unwrap();
        let mut container_ip: Option<String> = None;
        loop {
            let tick = Instant::now();
            let mut seen = *record.lock().unwrap();
            if seen.front.is_none()
                && let Ok(answer) =
                    client.get(format!("{front}{path}")).header("host", &host).send().await
                && answer.status().as_u16() == 200
            {
                seen.front = Some(began.elapsed());
            }
            if container_ip.is_none() {
                let filter = format!("label=cloudfreedom.tenant={tenant}");
                let ids = docker(&["ps", "-q", "--filter", &filter]).unwrap_or_default();
                if let Some(id) = ids.split_whitespace().next() {
                    container_ip = docker(&[
                        "inspect",
                        id,
                        "--format",
                        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                    ])
                    .ok()
                    .and_then(|ips| ips.split_whitespace().next().map(str::to_owned));
                }
            }
            if seen.container.is_none()
                && let Some(ip) = &container_ip
                && let Ok(answer) = client.get(format!("http://{ip}:{port}{path}")).send().await
                && answer.status().as_u16() == 200
            {
                seen.container = Some(began.elapsed());
            }
            *record.lock().unwrap() = seen;
            if seen.front.is_some() && seen.container.is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100).saturating_sub(tick.elapsed())).await;
        }
    });
    (first, watcher)
}

/// One row of the table.
#[derive(Debug)]
struct Row {
    template: &'static str,
    provision: Duration,
    first: FirstAnswers,
    calls: usize,
    status_reads: usize,
    routes: Vec<String>,
}

async fn measure(mut case: Case) -> Row {
    case.status_interval = Duration::from_secs(60);
    let tag = format!("bench-{}-{}", case.template, std::process::id());
    let _leftovers = Leftovers(case.tenant, tag.clone());
    let world = World::start(Setup {
        runtime: RuntimeKind::Docker,
        status_interval: case.status_interval,
        status_lag: case.status_interval,
        poll_interval: Duration::from_secs(5),
        tag,
    })
    .await;
    let standins = StandIns::start(&world).await;
    world.set_router_url(&standins.router_url);
    if case.template == "telegram-bot" {
        world.set_operator_env("TELEGRAM_API_URL", &standins.telegram_url);
    }
    let mut tenant = vec!["tenant", "create", case.tenant, "--owner-email", "ops@bench.test"];
    tenant.extend(case.plan);
    let created = world.cfa(&tenant).await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let began = Instant::now();
    let watcher = case.url.then(|| {
        let host = format!("{}-{}.agents.test", case.stack, case.tenant);
        watch_url(&world, case.tenant, host, 18789, "/healthz", began)
    });
    let before = world.calls().len();
    let provisioned = world.cfa_owned(&provision_args(&case, &standins.router_url, &[])).await;
    let provision = began.elapsed();
    assert_eq!(provisioned.code, 0, "{}: {}", case.template, provisioned.stderr);
    assert_eq!(provisioned.json()["status"], "running");
    let calls: Vec<_> = world.calls().into_iter().skip(before).collect();
    let first = match watcher {
        Some((first, watcher)) => {
            // The front routes a stack only after a status run; give it one interval.
            let _ = tokio::time::timeout(Duration::from_secs(70), watcher).await;
            *first.lock().unwrap()
        }
        None => FirstAnswers::default(),
    };
    let address = format!("{}/{}", case.tenant, case.stack);
    let deleted = world.cfa(&["delete", &address, "--force"]).await;
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    Row {
        template: case.template,
        provision,
        first,
        status_reads: calls
            .iter()
            .filter(|call| call.method == "GET" && call.route == "/api/v1/services/{uuid}")
            .count(),
        calls: calls.len(),
        routes: calls.iter().map(|call| format!("{} {}", call.method, call.route)).collect(),
    }
}

fn seconds(duration: Option<Duration>) -> String {
    duration.map_or_else(|| "-".to_owned(), |duration| format!("{:.1} s", duration.as_secs_f64()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark: scripts/bench-docker"]
async fn provision_to_running() {
    if !crate::engine_or_skip() {
        return;
    }
    let mut chosen: Vec<Case> = cases()
        .into_iter()
        .filter(|case| matches!(case.template, "openclaw-agent" | "telegram-bot"))
        .collect();
    for case in &mut chosen {
        if case.template == "openclaw-agent" {
            case.tenant = "benchclaw";
            case.plan = &["--plan", "business"];
        } else {
            case.tenant = "benchbot";
        }
    }
    let tasks: Vec<_> = chosen.into_iter().map(|case| tokio::spawn(measure(case))).collect();
    let mut rows = Vec::new();
    for task in tasks {
        rows.push(task.await.unwrap());
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "\nruntime docker, Coolify status interval 60 s, [engine] status_lag 60s, poll_interval 5s, probe_interval 200ms\n"
    );
    let _ = writeln!(
        out,
        "| template | provision -> running (cfa returned) | URL 200 on the container | URL 200 through the front | running minus front | Coolify calls (status reads) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for row in &rows {
        let delta = row
            .first
            .front
            .map(|front| format!("{:+.1} s", row.provision.as_secs_f64() - front.as_secs_f64()));
        let _ = writeln!(
            out,
            "| {} | {:.1} s | {} | {} | {} | {} ({}) |",
            row.template,
            row.provision.as_secs_f64(),
            seconds(row.first.container),
            seconds(row.first.front),
            delta.unwrap_or_else(|| "no URL".to_owned()),
            row.calls,
            row.status_reads,
        );
    }
    for row in &rows {
        let _ = writeln!(out, "\n{} calls: {}", row.template, row.routes.join(", "));
    }
}

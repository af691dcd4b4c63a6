//! The issue's crown demonstration, end to end on the real engine: a stack's container killed
//! by its memory limit opens an OOM incident, delivered to a webhook receiver (its signature
//! verified), a Telegram Bot API stand-in and a real SMTP server (aiosmtpd) on loopback; the
//! stack's recovery (Docker's restart policy brings the container back) resolves it on each.
//! Prints the time from Docker's `oom` event to the webhook. The test asserts the issue's whole
//! claim: exactly one incident, one message of each kind per channel, resolved after the
//! restart, under 5 s with the default delivery settings.
//!
//! What runs: the docker world (real PocketBase, the sandbox's docker runtime), `cfa provision`
//! of the `telegram-bot` template, `cfa serve` (the agent receiver, the controller's and the
//! monitor's passes, the alert dispatcher), and `cfa_host_agent::agent::run` following the
//! engine's events with the server's secret. The world's copy of the template swaps the bot's
//! image (distroless: no shell to drive it over its limit) for a `FROM scratch` busybox that
//! waits for `/tmp/hog` and then `exec`s a 512 MB `dd` under the rendered 256 MB limit, so the
//! kernel kills the container's main process, as a leaking agent would be. The renderer still
//! adds the limits, hardening, restart policy and the `cloudfreedom.*` labels the agent follows.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cfa_host_agent::event::{LABEL_MANAGED_BY, LABEL_STACK, LABEL_TENANT, MANAGED_BY_VALUE};
use coolify_sandbox::RuntimeKind;
use serde_json::Value;

use crate::lifecycle::{BOT_TOKEN, Leftovers, ROUTER_KEY, report};
use crate::world::{Setup, World, docker, docker_host};

mod receivers;

use receivers::*;

const TENANT: &str = "oomco";
const STACK: &str = "hog";
/// A labelled container of the same tenant whose stack has no record: its events prove the
/// agent follows the engine and reaches `cfa serve`, and the monitor ignores them.
const CANARY_STACK: &str = "agent-canary";
const AGENT_SECRET: &str = "docker-suite-agent-secret-7c41e0";
const WEBHOOK_SECRET: &str = "docker-suite-webhook-secret-52aa";
const ALERT_BOT_TOKEN: &str = "424242:docker-suite-alerts-token";
const ALERT_CHAT_ID: &str = "-100200300";
/// The aiosmtpd release `scripts/install-deps` installs under `$CFA_CACHE_DIR`.
const AIOSMTPD_VERSION: &str = "1.4.6";

/// Polls `check` every 100 ms until it gives a value, or panics after `limit` naming `what`
/// (and what `context` says about the processes then).
async fn eventually<T>(
    what: &str,
    limit: Duration,
    context: impl Fn() -> String,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let began = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            began.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The image and the template

/// `FROM scratch` plus the host's static busybox; removed on drop.
struct HogImage {
    tag: String,
}

impl HogImage {
    fn build() -> HogImage {
        let busybox = Path::new("/bin/busybox");
        assert!(busybox.exists(), "/bin/busybox is missing (Debian's busybox-static)");
        let context = tempfile::tempdir().unwrap();
        std::fs::copy(busybox, context.path().join("busybox")).unwrap();
        std::fs::write(
            context.path().join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\n",
        )
        .unwrap();
        // A version tag: the linter wants images pinned.
        let tag = format!("cfa-docker-suite/oom-hog:1.0.{}", std::process::id());
        docker(&["build", "-q", "-t", &tag, &context.path().to_string_lossy()])
            .unwrap_or_else(|error| panic!("build {tag}: {error}"));
        HogImage { tag }
    }
}

impl Drop for HogImage {
    fn drop(&mut self) {
        let _ = docker(&["rmi", "-f", &self.tag]);
    }
}

/// The world's `telegram-bot` template with the hog in the bot's place: same service, same
/// parameters (so PocketBase's rules for the template hold), another image and command.
fn swap_in_the_hog(world: &World, image: &str) {
    let compose = format!(
        r#"# The docker suite's OOM test: busybox waits for /tmp/hog, then its main process
# allocates 512 MB under the rendered limit.
services:
  bot:
    image: {image}
    command:
      - /bin/busybox
      - sh
      - -c
      - trap 'exit 0' TERM; while [ ! -e /tmp/hog ]; do /bin/busybox sleep 0.2; done; exec /bin/busybox dd if=/dev/zero of=/dev/null bs=512M count=1
    tmpfs:
      - /tmp:size=8m,mode=1777
    stop_grace_period: 2s
    healthcheck:
      test: ["CMD", "/bin/busybox", "true"]
      interval: 1s
      timeout: 1s
      retries: 1
"#
    );
    std::fs::write(world.templates.join("telegram-bot/compose.yaml"), compose).unwrap();
}

// ---------------------------------------------------------------------------------------------
// The receivers

/// Serves `router` on 127.0.0.1 until the test ends; answers the address.
/// A secret file next to `cfa.toml` that only its owner reads (the agent and `cfa serve`
/// refuse others).
fn secret_file(world: &World, name: &str, content: &str) -> PathBuf {
    let path = world.config.with_file_name(name);
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Every host event `cfa serve` stored, oldest first (all pages: one kill under the CPU limit
/// can raise hundreds of `oom` events).
async fn host_events(pocketbase: &cfa_pocketbase::PocketBaseClient) -> Vec<Value> {
    let mut events = Vec::new();
    for page in 1.. {
        let answer = pocketbase
            .call_raw(
                reqwest::Method::GET,
                &format!(
                    "api/collections/cfa_host_events/records?perPage=500&page={page}&sort=at_ns"
                ),
                None,
            )
            .await
            .expect("list cfa_host_events")
            .unwrap_or_default();
        let items = answer["items"].as_array().cloned().unwrap_or_default();
        let full = items.len() == 500;
        events.extend(items);
        if !full {
            break;
        }
    }
    events
}

/// One line per stored host event of the stack: kind, exit code, Docker's time and PocketBase's
/// `created` (when `cfa serve` stored it), for failure messages.
fn describe_events(events: &[Value]) -> String {
    events
        .iter()
        .filter(|event| event["stack"] == STACK)
        .map(|event| {
            format!(
                "  {} exit={} at_ns={} stored={}",
                event["kind"].as_str().unwrap_or_default(),
                event["exit_code"],
                at_ns(event),
                event["created"].as_str().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn at_ns(event: &Value) -> i128 {
    event["at_ns"]
        .as_i64()
        .map(i128::from)
        .or_else(|| event["at_ns"].as_f64().map(|at| at as i128))
        .expect("at_ns")
}

fn nanos(time: SystemTime) -> i128 {
    i128::try_from(time.duration_since(UNIX_EPOCH).unwrap().as_nanos()).unwrap()
}

fn milliseconds(nanos: i128) -> f64 {
    nanos as f64 / 1e6
}

/// PocketBase's `created` (`2026-12-01 05:12:25.052Z`) or an RFC 3339 time, in nanoseconds.
fn parse_ns(text: &str) -> Option<i128> {
    let timestamp: jiff::Timestamp = text.replacen(' ', "T", 1).parse().ok()?;
    Some(timestamp.as_nanosecond())
}

/// Everything the scenario saw, for the tests to judge.
struct Outcome {
    hooks: Vec<Hook>,
    refused: Vec<String>,
    /// `sendMessage` bodies, in arrival order.
    telegram: Vec<Value>,
    /// E-mail subjects, in arrival order.
    subjects: Vec<String>,
    /// `cfa alerts list --all --output json`.
    listed: Value,
    /// The stack's host events as `cfa serve` stored them.
    events: Vec<Value>,
    /// `RestartCount State.Status` of the container at the end.
    container_state: String,
    serve_output: String,
    /// Docker's `oom` event, in Unix nanoseconds.
    oom_at: i128,
    /// The webhook's first firing and first resolved OOM message.
    firing: Hook,
    resolved: Hook,
}

impl Outcome {
    fn context(&self) -> String {
        let titles: Vec<&str> =
            self.hooks.iter().map(|hook| hook.body["title"].as_str().unwrap_or_default()).collect();
        format!(
            "webhook titles: {titles:?}\ntelegram: {:?}\ne-mail: {:?}\nincidents: {:#}\nhost events of the stack:\n{}\ncfa serve:\n{}",
            self.telegram.iter().map(|body| body["text"].clone()).collect::<Vec<_>>(),
            self.subjects,
            self.listed["incidents"],
            describe_events(&self.events),
            self.serve_output
        )
    }

    /// Each channel's message titles in arrival order: webhook, Telegram, e-mail.
    fn titles(&self) -> [(&'static str, Vec<String>); 3] {
        [
            ("webhook", webhook_titles(&self.hooks)),
            ("telegram", telegram_titles(&self.telegram)),
            ("e-mail", self.subjects.clone()),
        ]
    }

    /// When the container came back after the kill (its `started` event), in Unix nanoseconds.
    fn restarted_at(&self) -> Option<i128> {
        self.events
            .iter()
            .filter(|event| event["stack"] == STACK && event["kind"] == "started")
            .map(at_ns)
            .find(|at| *at > self.oom_at)
    }
}

fn oom_hooks(hooks: &[Hook]) -> Vec<Hook> {
    hooks.iter().filter(|hook| hook.body["kind"] == "oom_killed").cloned().collect()
}

fn webhook_titles(hooks: &[Hook]) -> Vec<String> {
    hooks.iter().map(|hook| hook.body["title"].as_str().unwrap_or_default().to_owned()).collect()
}

/// The first line of each `sendMessage` text: the message's title.
fn telegram_titles(sent: &[Value]) -> Vec<String> {
    sent.iter()
        .map(|body| body["text"].as_str().unwrap_or_default().lines().next().unwrap_or_default())
        .map(str::to_owned)
        .collect()
}

/// Per incident kind as titles name it (`OOM kill`, `unexpected exit`, `flapping`): how many
/// were opened and how many resolved. Every channel renders the same title.
fn tally(titles: &[String]) -> BTreeMap<String, (usize, usize)> {
    let mut tally: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for title in titles {
        let (opened, rest) = match title.split_once(": ") {
            Some(("opened", rest)) => (true, rest),
            Some(("resolved", rest)) => (false, rest),
            _ => panic!("an unexpected message: {title}"),
        };
        let kind = rest.split(" on stack ").next().unwrap_or_default().to_owned();
        let entry = tally.entry(kind).or_default();
        if opened {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    tally
}

/// Every incident opened on this channel is resolved, and the OOM kill is among them.
fn settled(titles: &[String]) -> bool {
    let tally = tally(titles);
    tally.get("OOM kill").is_some_and(|(opened, _)| *opened > 0)
        && tally.values().all(|(opened, resolved)| opened == resolved)
}

/// The default of `[alerts.delivery] poll_interval`: how often an idle lane reads the outbox.
const DEFAULT_DELIVERY_POLL: Duration = Duration::from_secs(10);

/// The whole scenario: the world, the stack, `cfa serve`, the agent, the kill, and every
/// channel's OOM messages (firing, then resolved); `None` when the engine or aiosmtpd is
/// missing (outside CI). `delivery_poll` sets `[alerts.delivery] poll_interval` (else the
/// default).
async fn oom_scenario(delivery_poll: Option<Duration>) -> Option<Outcome> {
    if !crate::engine_or_skip() {
        return None;
    }
    let smtp = SmtpServer::start_or_skip().await?;
    let began = Instant::now();
    let image = HogImage::build();
    let tag = format!("oom-{}", std::process::id());
    let _leftovers = Leftovers(TENANT, tag.clone());
    let world = World::start(Setup {
        runtime: RuntimeKind::Docker,
        status_interval: Duration::from_secs(1),
        // A margin over the interval: a status run may land just before the start job ends.
        status_lag: Duration::from_secs(3),
        poll_interval: Duration::from_millis(500),
        tag,
    })
    .await;
    swap_in_the_hog(&world, &image.tag);

    // The receivers, on loopback.
    let hooks = Arc::new(Webhooks::default());
    let webhook_address = serve_loopback(
        axum::Router::new().route("/hook", axum::routing::post(webhook)).with_state(hooks.clone()),
    )
    .await;
    let telegram_sent: Arc<Mutex<Vec<Value>>> = Arc::default();
    let telegram_address = serve_loopback(
        axum::Router::new()
            .route("/{bot}/{method}", axum::routing::post(telegram))
            .with_state(telegram_sent.clone()),
    )
    .await;

    // cfa.toml: the server's agent secret (its `[[servers]]` table is the file's last), a
    // monitor pass every 2 s, and the three channels.
    let agent_secret = secret_file(&world, "agent.secret", AGENT_SECRET);
    secret_file(&world, "webhook.secret", WEBHOOK_SECRET);
    secret_file(&world, "telegram.token", ALERT_BOT_TOKEN);
    let mut config = std::fs::read_to_string(&world.config).unwrap();
    config.push_str(&format!(
        "agent_secret_file = \"agent.secret\"\n\
         [monitor]\ninterval = \"2s\"\n\
         [[alerts.webhook]]\nname = \"ops-webhook\"\nurl = \"http://{webhook_address}/hook\"\n\
         secret_file = \"webhook.secret\"\n\
         [[alerts.telegram]]\nname = \"ops-telegram\"\ntoken_file = \"telegram.token\"\n\
         chat_id = {ALERT_CHAT_ID}\napi_base = \"http://{telegram_address}\"\n\
         [[alerts.email]]\nname = \"ops-mail\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\n\
         tls = \"none\"\nfrom = \"CloudFreedom alerts <alerts@cfa.test>\"\nto = [\"ops@cfa.test\"]\n",
        smtp.port
    ));
    if let Some(poll) = delivery_poll {
        config
            .push_str(&format!("[alerts.delivery]\npoll_interval = \"{}ms\"\n", poll.as_millis()));
    }
    std::fs::write(&world.config, config).unwrap();

    // The stack, through the platform.
    let created = world.cfa(&["tenant", "create", TENANT, "--owner-email", "ops@oomco.test"]).await;
    assert_eq!(created.code, 0, "tenant create: {}", created.stderr);
    let provisioned = world
        .cfa(&[
            "provision",
            "--tenant",
            TENANT,
            "--template",
            "telegram-bot",
            "--stack",
            STACK,
            "--output",
            "json",
            "--param",
            "router_base_url=https://router.agents.test/v1",
            "--param",
            &format!("router_api_key={ROUTER_KEY}"),
            "--param",
            &format!("telegram_bot_token={BOT_TOKEN}"),
        ])
        .await;
    assert_eq!(provisioned.code, 0, "provision: {}", provisioned.stderr);
    assert_eq!(provisioned.json()["status"], "running", "{}", provisioned.stdout);
    let filter_tenant = format!("label={LABEL_TENANT}={TENANT}");
    let filter_stack = format!("label={LABEL_STACK}={STACK}");
    let container = docker(&["ps", "-q", "--filter", &filter_tenant, "--filter", &filter_stack])
        .unwrap()
        .trim()
        .to_owned();
    assert!(!container.is_empty() && !container.contains('\n'), "one container: {container:?}");
    let limit = docker(&["inspect", "--format", "{{.HostConfig.Memory}}", &container]).unwrap();
    assert_eq!(limit.trim(), (256 << 20).to_string(), "the rendered memory limit");

    // cfa serve, then the host agent pointed at it with the server's secret.
    let serve = Serve::start(&world).await;
    let spool = tempfile::tempdir().unwrap();
    let mut settings = cfa_host_agent::agent::AgentSettings::new(
        world.sandbox.server_uuid(),
        serve.url.clone(),
        cfa_host_agent::AgentSecret::from_file(&agent_secret).expect("the agent's secret"),
        spool.path(),
    );
    settings.docker_host = docker_host();
    let (stop_agent, agent_stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(cfa_host_agent::agent::run(settings, async move {
        let _ = agent_stopped.await;
    }));
    let pocketbase = world.pocketbase().await;
    let context = || format!("cfa serve:\n{}", serve.output());

    // The canary: once `cfa serve` has stored its events, the agent follows the engine.
    let labels = [
        format!("{LABEL_MANAGED_BY}={MANAGED_BY_VALUE}"),
        format!("{LABEL_TENANT}={TENANT}"),
        format!("{LABEL_STACK}={CANARY_STACK}"),
    ];
    // A canary started before the agent follows is never reported: run one, give it 2 s to be
    // stored, and run another if it was not.
    let mut canaries = 0;
    let canary_seen = Instant::now();
    eventually(
        "the canary's events stored by cfa serve",
        Duration::from_secs(30),
        context,
        async || {
            let mut run = vec!["run", "--rm", "--network", "none"];
            for label in &labels {
                run.extend(["--label", label.as_str()]);
            }
            run.extend([image.tag.as_str(), "/bin/busybox", "true"]);
            docker(&run).expect("run the canary");
            canaries += 1;
            let ran = Instant::now();
            while ran.elapsed() < Duration::from_secs(2) {
                let events = host_events(&pocketbase).await;
                if events.iter().any(|event| event["stack"] == CANARY_STACK) {
                    return Some(());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None
        },
    )
    .await;
    let canary_seen = canary_seen.elapsed();

    // Over the limit: the container's main process allocates 512 MB under 256 MB.
    docker(&["exec", &container, "/bin/busybox", "touch", "/tmp/hog"]).expect("trigger the hog");
    let firing =
        eventually("the OOM's firing webhook", Duration::from_secs(30), context, async || {
            oom_hooks(&hooks.accepted.lock().unwrap())
                .into_iter()
                .find(|hook| hook.body["status"] == "firing")
        })
        .await;
    let events = host_events(&pocketbase).await;
    let oom = events
        .iter()
        .find(|event| event["stack"] == STACK && event["kind"] == "oom")
        .unwrap_or_else(|| panic!("no oom event stored: {events:#?}"));
    let oom_at = at_ns(oom);
    let stored = oom["created"].as_str().and_then(parse_ns).unwrap_or(oom_at);
    let opened =
        firing.body["incidents"][0]["opened_at"].as_str().and_then(parse_ns).unwrap_or(oom_at);
    let arrived = nanos(firing.arrived);
    report(&format!(
        "OOM kill to the webhook on the real engine: {:.0} ms (Docker's oom event -> stored by cfa serve {:.0} ms -> incident opened {:.0} ms -> webhook {:.0} ms; delivery poll {} s; target under 5 s)",
        milliseconds(arrived - oom_at),
        milliseconds(stored - oom_at),
        milliseconds(opened - stored),
        milliseconds(arrived - opened),
        delivery_poll.unwrap_or(DEFAULT_DELIVERY_POLL).as_secs_f64(),
    ));

    // The other two channels, then the recovery: Docker's restart policy brings the container
    // back, the monitor sees the stack healthy with no new event, and every incident opened
    // is resolved on every channel.
    let channels = || {
        [
            webhook_titles(&hooks.accepted.lock().unwrap()),
            telegram_titles(&telegram_sent.lock().unwrap()),
            smtp.subjects(),
        ]
    };
    let all_settled = || {
        let [webhook, telegram, email] = channels();
        (settled(&webhook)
            && tally(&webhook) == tally(&telegram)
            && tally(&webhook) == tally(&email))
        .then_some(())
    };
    let opened_title = format!("opened: OOM kill on stack {TENANT}/{STACK}");
    eventually(
        "the OOM's firing message on every channel",
        Duration::from_secs(30),
        context,
        async || channels().iter().all(|titles| titles.contains(&opened_title)).then_some(()),
    )
    .await;
    eventually(
        "every incident resolved on every channel",
        Duration::from_secs(60),
        context,
        async || all_settled(),
    )
    .await;
    // Time for a duplicate or another incident to show up: two monitor passes, and a lane's
    // poll of the outbox; then whatever came is settled too.
    let poll = delivery_poll.unwrap_or(DEFAULT_DELIVERY_POLL);
    tokio::time::sleep(Duration::from_secs(5) + poll).await;
    eventually(
        "every incident resolved on every channel, again",
        Duration::from_secs(60),
        context,
        async || all_settled(),
    )
    .await;

    let _ = stop_agent.send(());
    let summary = agent.await.unwrap().expect("the agent ran");
    let listed = world.cfa(&["alerts", "list", "--all", "--output", "json"]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let container_state =
        docker(&["inspect", "--format", "{{.RestartCount}} {{.State.Status}}", &container])
            .unwrap()
            .trim()
            .to_owned();
    let hooks_seen = hooks.accepted.lock().unwrap().clone();
    let resolved = oom_hooks(&hooks_seen)
        .into_iter()
        .find(|hook| hook.body["status"] == "resolved")
        .expect("a resolved OOM message");
    let events = host_events(&pocketbase).await;
    let ooms =
        events.iter().filter(|event| event["stack"] == STACK && event["kind"] == "oom").count();
    report(&format!(
        "OOM kill resolved {:.1} s after it; {} incident(s), {} message(s) per channel; Docker sent {ooms} oom event(s); the agent delivered {} events (canaries: {canaries}, stored after {:.1} s); scenario {:.1} s",
        milliseconds(nanos(resolved.arrived) - oom_at) / 1000.0,
        listed.json()["incidents"].as_array().map_or(0, Vec::len),
        hooks_seen.len(),
        summary.delivered,
        canary_seen.as_secs_f64(),
        began.elapsed().as_secs_f64(),
    ));
    let refused = hooks.refused.lock().unwrap().clone();
    let telegram = telegram_sent.lock().unwrap().clone();
    Some(Outcome {
        hooks: hooks_seen,
        refused,
        telegram,
        subjects: smtp.subjects(),
        listed: listed.json(),
        events,
        container_state,
        serve_output: serve.output(),
        oom_at,
        firing,
        resolved,
    })
}

/// Docker's `oom` event to the webhook's firing message: under 5 s.
fn check_the_latency(outcome: &Outcome) {
    let latency = nanos(outcome.firing.arrived) - outcome.oom_at;
    assert!(
        latency < 5_000_000_000,
        "OOM to webhook took {:.0} ms (target under 5 s)\n{}",
        milliseconds(latency),
        outcome.context()
    );
}

/// What holds on every run today: the kill's OOM incident is the first message on every
/// channel (the webhook's signed), every incident the episode opened is resolved once the
/// container is back, with the same messages on every channel, and nothing is left undelivered.
fn check_the_oom_incident(outcome: &Outcome) {
    let context = outcome.context();
    assert!(outcome.refused.is_empty(), "webhook signatures refused: {:?}", outcome.refused);
    for body in &outcome.telegram {
        assert_eq!(body["chat_id"].to_string().trim_matches('"'), ALERT_CHAT_ID, "{body}");
    }
    let first = &outcome.hooks[0];
    let incident = &first.body["incidents"][0];
    assert_eq!(
        (first.body["kind"].as_str(), first.body["status"].as_str(), first.body["count"].as_u64()),
        (Some("oom_killed"), Some("firing"), Some(1)),
        "{context}"
    );
    assert_eq!(
        (incident["tenant"].as_str(), incident["stack"].as_str()),
        (Some(TENANT), Some(STACK)),
        "{context}"
    );
    let detail = incident["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("OOM") && detail.contains("container bot-"), "{detail}");
    assert_eq!(outcome.resolved.body["resolution"], "recovered", "{:#}", outcome.resolved.body);
    let opened_title = format!("opened: OOM kill on stack {TENANT}/{STACK}");
    let [(_, webhook), _, _] = outcome.titles();
    for (channel, titles) in outcome.titles() {
        assert_eq!(titles.first(), Some(&opened_title), "{channel}: the first message\n{context}");
        assert!(settled(&titles), "{channel}: every incident opened is resolved\n{context}");
        assert_eq!(titles.len(), webhook.len(), "{channel}: the webhook's messages\n{context}");
    }
    let incidents = outcome.listed["incidents"].as_array().cloned().unwrap_or_default();
    assert!(
        incidents.iter().any(|incident| incident["kind"] == "oom_killed"),
        "an OOM incident\n{context}"
    );
    for incident in &incidents {
        assert_eq!(
            (incident["status"].as_str(), incident["tenant"].as_str(), incident["stack"].as_str()),
            (Some("resolved"), Some(TENANT), Some(STACK)),
            "{context}"
        );
    }
    assert_eq!(outcome.listed["undelivered_messages"], 0, "{context}");
    let (restarts, state) = outcome.container_state.split_once(' ').unwrap_or_default();
    assert!(
        restarts != "0" && state == "running",
        "the kernel killed the container and its restart policy brought it back: {}",
        outcome.container_state
    );
}

/// The issue's whole claim, with the default delivery settings: the kill reaches the webhook
/// in under 5 s (the controller wakes the dispatcher after a monitor pass that queued
/// messages), it is the only incident (Docker's `die` with exit 137, which comes 0.5 to 4 s
/// after its `oom` and is often folded in the next pass, is matched to the kill by container
/// and time), with one firing and one resolved message on each channel, and it resolves only
/// once the container was restarted (Coolify's stored status still shows the killed one, and
/// one kill can raise several `oom` events over seconds under the rendered CPU limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oom_kill_is_the_only_incident_and_resolves_after_the_restart() {
    let Some(outcome) = oom_scenario(None).await else {
        return;
    };
    check_the_oom_incident(&outcome);
    let context = outcome.context();
    let incidents = outcome.listed["incidents"].as_array().cloned().unwrap_or_default();
    assert_eq!(incidents.len(), 1, "the OOM kill is the only incident\n{context}");
    for (channel, titles) in outcome.titles() {
        assert_eq!(titles.len(), 2, "{channel}: one firing, one resolved\n{context}");
    }
    let resolved_at = outcome.resolved.body["incidents"][0]["at"]
        .as_str()
        .and_then(parse_ns)
        .expect("the resolve's time");
    let restarted_at = outcome.restarted_at().expect("the container's restart event");
    assert!(
        resolved_at >= restarted_at,
        "the OOM resolved {:.0} ms before the container was restarted\n{context}",
        milliseconds(restarted_at - resolved_at)
    );
    check_the_latency(&outcome);
}

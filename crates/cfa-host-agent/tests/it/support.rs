//! The integration tests' helpers: a receiver that checks signatures and records what it gets,
//! the Docker engine (or a printed skip, a failure under `CI=true`), a `FROM scratch` busybox
//! image built here, labelled containers that are removed when the test ends.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig};
use bollard::query_parameters::CreateContainerOptions;
use cfa_host_agent::event::{LABEL_MANAGED_BY, LABEL_STACK, LABEL_TENANT, MANAGED_BY_VALUE};
use cfa_host_agent::signature::{
    DEFAULT_MAX_AGE, SERVER_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature,
};
use cfa_host_agent::{EVENTS_PATH, EventBatch, EventKind, HostEvent};
use futures::StreamExt;

pub(crate) const SECRET: &str = "integration-test-secret-3f9a1c";

pub(crate) fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

pub(crate) fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

pub(crate) fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned())
}

/// The engine, or `None` with one printed line (a failure under `CI=true`), as the cfa-cli
/// docker suite decides.
pub(crate) async fn engine_or_skip() -> Option<Docker> {
    match cfa_host_agent::docker::connect(&docker_host()).await {
        Ok(docker) => Some(docker),
        Err(error) => {
            assert!(!in_ci(), "CI=true and no Docker engine answers: {error}");
            report(&format!(
                "skipping: no Docker engine at {} (run scripts/install-docker): {error}",
                docker_host()
            ));
            None
        }
    }
}

/// Polls `check` every 50 ms until it gives a value, or panics after `limit` naming `what`.
pub(crate) async fn eventually<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let began = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(began.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One event as the receiver got it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) event: HostEvent,
    pub(crate) received_at: SystemTime,
}

#[derive(Debug, Default)]
struct Log {
    received: Vec<Received>,
    dropped: u64,
    refusals: Vec<String>,
}

#[derive(Debug, Clone)]
struct ReceiverState {
    secret: Arc<Vec<u8>>,
    log: Arc<Mutex<Log>>,
}

/// A stand-in for `cfa serve`'s endpoint: verifies every request as the real receiver must
/// (`verify_signature`, the server header equal to the body's), records events without
/// dropping duplicates (so the tests see any), answers 200.
#[derive(Debug)]
pub(crate) struct Receiver {
    address: SocketAddr,
    log: Arc<Mutex<Log>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    pub(crate) async fn start(address: SocketAddr, secret: &str) -> Receiver {
        let log = Arc::new(Mutex::new(Log::default()));
        let state =
            ReceiverState { secret: Arc::new(secret.as_bytes().to_vec()), log: log.clone() };
        let router =
            Router::new().route(EVENTS_PATH, axum::routing::post(receive)).with_state(state);
        let listener = tokio::net::TcpListener::bind(address).await.expect("bind the receiver");
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("the receiver serves");
        });
        Receiver { address, log, stop: Some(stop), task: Some(task) }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().received.clone()
    }

    pub(crate) fn refusals(&self) -> Vec<String> {
        self.log.lock().unwrap().refusals.clone()
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.log.lock().unwrap().dropped
    }

    /// The events about one container, in arrival order.
    pub(crate) fn of(&self, container_id: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|received| received.event.container_id == container_id)
            .collect()
    }

    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

async fn receive(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or("");
    let refuse = |why: String, status: StatusCode| {
        state.log.lock().unwrap().refusals.push(why);
        status
    };
    if let Err(error) = verify_signature(
        &state.secret,
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        SystemTime::now(),
        DEFAULT_MAX_AGE,
    ) {
        return refuse(error.to_string(), StatusCode::UNAUTHORIZED);
    }
    let batch: EventBatch = match serde_json::from_slice(&body) {
        Ok(batch) => batch,
        Err(error) => return refuse(format!("bad body: {error}"), StatusCode::BAD_REQUEST),
    };
    if header(SERVER_HEADER) != batch.server
        || batch.events.iter().any(|event| event.server != batch.server)
    {
        return refuse("server header and body disagree".to_owned(), StatusCode::BAD_REQUEST);
    }
    let received_at = SystemTime::now();
    let mut log = state.log.lock().unwrap();
    log.dropped += batch.dropped;
    log.received.extend(batch.events.into_iter().map(|event| Received { event, received_at }));
    StatusCode::OK
}

/// A loopback address nothing listens on (yet): the receiver "down".
pub(crate) fn free_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The shared secret as a file the agent accepts (mode 600).
pub(crate) fn secret_file(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("agent-secret");
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn docker_cli(arguments: &[&str]) -> Result<String, String> {
    let output = Command::new("docker")
        .args(arguments)
        .env("DOCKER_HOST", docker_host())
        .output()
        .map_err(|error| format!("cannot run docker: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(format!("docker {arguments:?}: {}", String::from_utf8_lossy(&output.stderr).trim()))
    }
}

/// `FROM scratch` plus the host's static busybox, built here (no registry is reachable);
/// removed on drop.
#[derive(Debug)]
pub(crate) struct TestImage {
    pub(crate) tag: String,
}

impl TestImage {
    pub(crate) fn build(name: &str) -> TestImage {
        let busybox = Path::new("/bin/busybox");
        assert!(busybox.exists(), "/bin/busybox is missing (Debian's busybox-static)");
        let context = tempfile::tempdir().unwrap();
        std::fs::copy(busybox, context.path().join("busybox")).unwrap();
        std::fs::write(
            context.path().join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\n",
        )
        .unwrap();
        let tag = format!("cfa-host-agent-test/busybox:{}-{name}", std::process::id());
        docker_cli(&["build", "-q", "-t", &tag, &context.path().to_string_lossy()])
            .expect("build the test image");
        TestImage { tag }
    }
}

impl Drop for TestImage {
    fn drop(&mut self) {
        let _ = docker_cli(&["rmi", "-f", &self.tag]);
    }
}

/// What a test container is: labelled as the renderer labels a stack's containers.
#[derive(Debug, Clone)]
pub(crate) struct Spec<'a> {
    pub(crate) name: &'a str,
    pub(crate) stack: &'a str,
    pub(crate) command: &'a [&'a str],
    pub(crate) memory_bytes: Option<i64>,
    /// A healthcheck that always passes, every 200 ms.
    pub(crate) healthcheck: bool,
}

/// The containers one test created; all removed on drop.
#[derive(Debug)]
pub(crate) struct Containers {
    docker: Docker,
    image: String,
    created: Vec<String>,
}

impl Containers {
    pub(crate) fn new(docker: &Docker, image: &TestImage) -> Containers {
        Containers { docker: docker.clone(), image: image.tag.clone(), created: Vec::new() }
    }

    /// Creates and starts one; returns its id.
    pub(crate) async fn run(&mut self, spec: Spec<'_>) -> String {
        let tenant = format!("test-{}", std::process::id());
        let labels = HashMap::from([
            (LABEL_MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
            (LABEL_TENANT.to_owned(), tenant),
            (LABEL_STACK.to_owned(), spec.stack.to_owned()),
            ("cfa-host-agent-test".to_owned(), std::process::id().to_string()),
        ]);
        let healthcheck = spec.healthcheck.then(|| HealthConfig {
            test: Some(vec!["CMD".to_owned(), "/bin/busybox".to_owned(), "true".to_owned()]),
            interval: Some(200_000_000),
            timeout: Some(1_000_000_000),
            retries: Some(1),
            start_period: None,
            start_interval: None,
        });
        let body = ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: Some(spec.command.iter().map(|part| (*part).to_owned()).collect()),
            labels: Some(labels),
            healthcheck,
            host_config: Some(HostConfig {
                // Swap equal to memory: the container cannot swap, so going over is an OOM kill.
                memory: spec.memory_bytes,
                memory_swap: spec.memory_bytes,
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = format!("cfa-host-agent-test-{}-{}", std::process::id(), spec.name);
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions { name: Some(name), ..Default::default() }),
                body,
            )
            .await
            .expect("create the test container");
        self.created.push(created.id.clone());
        self.docker.start_container(&created.id, None).await.expect("start the test container");
        created.id
    }

    /// Waits until the container has exited; returns its exit code.
    pub(crate) async fn wait_exit(&self, id: &str) -> i64 {
        let mut wait = self.docker.wait_container(id, None);
        match wait.next().await {
            Some(Ok(response)) => response.status_code,
            // bollard reports a non-zero exit as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            other => panic!("waiting for {id}: {other:?}"),
        }
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        // The CLI, since a drop has no async runtime to call the engine API from.
        for id in &self.created {
            let _ = docker_cli(&["rm", "-f", id]);
        }
    }
}

/// The kinds of a container's events, in arrival order.
pub(crate) fn kinds(received: &[Received]) -> Vec<EventKind> {
    received.iter().map(|received| received.event.kind).collect()
}

/// Panics if any event id arrived twice.
pub(crate) fn assert_no_duplicates(received: &[Received]) {
    let mut seen = HashMap::new();
    for received in received {
        if let Some(earlier) = seen.insert(received.event.id.clone(), received.event.clone()) {
            panic!("event delivered twice: {earlier:?}");
        }
    }
}

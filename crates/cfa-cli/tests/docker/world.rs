//! One world per template run: the real PocketBase, `coolify-sandbox` (docker or simulated
//! runtime) behind a recording pass-through, a temp copy of `templates/`, a `cfa.toml`, and the
//! real `cfa` binary.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cfa_backup_store::testing::MotoServer;
use cfa_pocketbase::testing::{SUPERUSER_EMAIL, SUPERUSER_PASSWORD, TestPocketBase};
use coolify_sandbox::{RuntimeKind, Sandbox, SandboxConfig, SandboxHandle, SandboxServerConfig};
use serde_json::{Value, json};

pub(crate) const DEFAULT_DOCKER_HOST: &str = "unix:///run/cfa-docker/docker.sock";

/// What one `cfa` run printed and how it ended.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

impl Run {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}\n{}", self.stdout, self.stderr))
    }
}

/// One Coolify API request `cfa` sent, as the pass-through saw it.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) method: String,
    /// The path with uuids replaced by `{uuid}`.
    pub(crate) route: String,
}

/// A recording pass-through between `cfa` and the sandbox. With `operator_env`, it plays the
/// operator who set one extra variable on the service in Coolify before each start: one
/// `PATCH /services/{uuid}/envs/bulk` of its own, not counted as `cfa`'s.
#[derive(Debug)]
struct PassThrough {
    upstream: String,
    token: String,
    client: reqwest::Client,
    calls: Mutex<Vec<Call>>,
    operator_env: Mutex<Option<(String, String)>>,
}

fn route_of(path: &str) -> String {
    let mut route = Vec::new();
    let mut previous = "";
    for segment in path.split('/') {
        let is_name = matches!(
            previous,
            "services" | "projects" | "servers" | "applications" | "databases" | "deployments"
        ) && !matches!(segment, "" | "envs" | "start" | "stop" | "restart");
        route.push(if is_name { "{uuid}" } else { segment });
        previous = segment;
    }
    route.join("/")
}

async fn forward(
    State(pass): State<Arc<PassThrough>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    pass.calls.lock().unwrap().push(Call { method: method.to_string(), route: route_of(&path) });
    let operator_env = pass.operator_env.lock().unwrap().clone();
    if let Some((key, value)) = &operator_env
        && method == Method::POST
        && path.starts_with("/api/v1/services/")
        && path.ends_with("/start")
    {
        let service = path.trim_start_matches("/api/v1/services/").trim_end_matches("/start");
        let answer = pass
            .client
            .patch(format!("{}/api/v1/services/{service}/envs/bulk", pass.upstream))
            .bearer_auth(&pass.token)
            .json(&json!({"data": [{"key": key, "value": value}]}))
            .send()
            .await
            .expect("the operator's env update reaches the sandbox");
        assert!(answer.status().is_success(), "operator env update: {}", answer.status());
    }
    let target = format!(
        "{}{}",
        pass.upstream,
        uri.path_and_query().map_or(path.as_str(), |pq| pq.as_str())
    );
    let mut request = pass.client.request(method, target).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
            let mut response = Response::builder().status(status);
            for (name, value) in answer.headers() {
                if name != "content-length" && name != "transfer-encoding" {
                    response = response.header(name, value);
                }
            }
            let bytes = answer.bytes().await.unwrap_or_default();
            response.body(Body::from(bytes)).unwrap()
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    }
}

/// Everything one template's run needs; dropping it stops the servers.
#[derive(Debug)]
pub(crate) struct World {
    pocketbase: TestPocketBase,
    pub(crate) sandbox: SandboxHandle,
    pass: Arc<PassThrough>,
    _dir: tempfile::TempDir,
    pub(crate) config: PathBuf,
    pub(crate) templates: PathBuf,
    /// The host address containers reach (the gateway of the sandbox's destination network).
    pub(crate) host_ip: IpAddr,
    /// The platform's bucket (moto): Coolify's backups upload here, final backups stay here.
    pub(crate) moto: MotoServer,
    /// `CFA_ROUTER_URL` for every later command: the Router stand-in, whose origin is allowed.
    router_url: Mutex<Option<String>>,
}

/// How a world is set up.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub(crate) runtime: RuntimeKind,
    pub(crate) status_interval: Duration,
    /// `[engine] status_lag`.
    pub(crate) status_lag: Duration,
    pub(crate) poll_interval: Duration,
    /// An unique name: the sandbox's destination network.
    pub(crate) tag: String,
}

pub(crate) fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| DEFAULT_DOCKER_HOST.to_owned())
}

pub(crate) fn docker(arguments: &[&str]) -> Result<String, String> {
    let output = Command::new("docker")
        .args(arguments)
        .env("DOCKER_HOST", docker_host())
        .output()
        .map_err(|error| error.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn humantime(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

impl World {
    pub(crate) async fn start(setup: Setup) -> World {
        let pocketbase = TestPocketBase::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let network = format!("cfa-it-{}", setup.tag);
        let sandbox = Sandbox::start(SandboxConfig {
            deploy_delay: Duration::from_millis(500),
            delete_delay: Duration::from_millis(200),
            backup_duration: Duration::from_millis(50),
            rate_limit: 100_000,
            status_interval: setup.status_interval,
            runtime: setup.runtime,
            servers: vec![SandboxServerConfig {
                destinations: vec![network.clone()],
                ..SandboxServerConfig::default()
            }],
            docker_host: Some(docker_host()),
            docker_work_dir: dir.path().join("services"),
            docker_backup_dir: dir.path().join("backups"),
            ..SandboxConfig::default()
        })
        .await
        .unwrap();
        let host_ip = if setup.runtime == RuntimeKind::Docker {
            docker(&[
                "network",
                "inspect",
                &network,
                "--format",
                "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
            ])
            .unwrap()
            .trim()
            .parse()
            .expect("the destination network's gateway")
        } else {
            IpAddr::from([127, 0, 0, 1])
        };
        let pass = Arc::new(PassThrough {
            upstream: sandbox.base_url(),
            token: sandbox.token().to_owned(),
            client: reqwest::Client::new(),
            calls: Mutex::new(Vec::new()),
            operator_env: Mutex::new(None),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pass_url = format!("http://{}", listener.local_addr().unwrap());
        let routes = axum::Router::new().fallback(forward).with_state(pass.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, routes).await;
        });
        let templates = dir.path().join("templates");
        copy_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates"), &templates);
        let probe =
            sandbox.probe_url().map(|url| format!("probe_url = \"{url}\"\n")).unwrap_or_default();
        let moto = MotoServer::start("platform-backups").await.unwrap();
        let s3_storage = sandbox.add_s3_storage("platform", moto.settings());
        let backups = format!(
            "[backups]\ncoolify_s3_storage = \"{s3_storage}\"\nendpoint = \"{}\"\nbucket = \"{}\"\n\
             region = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\nfinal_timeout = \"5m\"\n",
            moto.settings().endpoint,
            moto.settings().bucket,
            moto.settings().region,
            moto.settings().access_key_id,
            moto.settings().secret_access_key,
        );
        let config = dir.path().join("cfa.toml");
        std::fs::write(
            &config,
            format!(
                "[coolify]\nurl = \"{pass_url}\"\ntoken = \"{}\"\nrequests_per_minute = 100000\n\
                 [pocketbase]\nurl = \"{}\"\nemail = \"{SUPERUSER_EMAIL}\"\npassword = \"{SUPERUSER_PASSWORD}\"\n\
                 [platform]\nbase_domain = \"agents.test\"\ntemplates_dir = \"{}\"\n{probe}\
                 router_origins = [\"https://router.agents.test\"]\n\
                 [engine]\npoll_interval = \"{}\"\nprobe_interval = \"200ms\"\nstatus_lag = \"{}\"\n\
                 deploy_timeout = \"10m\"\ndelete_grace = \"0s\"\n{backups}\
                 [[servers]]\nuuid = \"{}\"\ncores = 12\nmemory_gb = 31\nfree_disk_gb = 24\n\
                 docker_host = \"{}\"\n",
                sandbox.token(),
                pocketbase.url(),
                templates.display(),
                humantime(setup.poll_interval),
                humantime(setup.status_lag),
                sandbox.server_uuid(),
                docker_host(),
            ),
        )
        .unwrap();
        World {
            pocketbase,
            sandbox,
            pass,
            _dir: dir,
            config,
            templates,
            host_ip,
            moto,
            router_url: Mutex::new(None),
        }
    }

    /// Runs the real `cfa` with this world's configuration.
    pub(crate) async fn cfa(&self, args: &[&str]) -> Run {
        let mut command = self.cfa_command(args);
        command.kill_on_drop(true);
        let started = Instant::now();
        let output = match tokio::time::timeout(Duration::from_secs(420), command.output()).await {
            Ok(output) => output.unwrap(),
            Err(_) => panic!("cfa {args:?} ran for 7 minutes\n{}", self.hang_report()),
        };
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }

    /// The real `cfa` with this world's configuration and environment, not started: for a
    /// long-running `cfa serve`.
    pub(crate) fn cfa_command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_cfa"));
        command.args(args).env("CFA_ACTOR", "cli:docker-suite").env("CFA_CONFIG", &self.config);
        for variable in [
            "CFA_COOLIFY_URL",
            "CFA_COOLIFY_TOKEN",
            "CFA_PB_URL",
            "CFA_PB_EMAIL",
            "CFA_PB_PASSWORD",
            "CFA_BASE_DOMAIN",
            "CFA_ROUTER_URL",
            "CFA_TEMPLATES_DIR",
            "CFA_PLANS_FILE",
            "CFA_PROBE_URL",
            "CFA_BACKUPS_SECRET_ACCESS_KEY",
            "CFA_LOG",
        ] {
            command.env_remove(variable);
        }
        if let Some(router_url) = self.router_url.lock().unwrap().clone() {
            command.env("CFA_ROUTER_URL", router_url);
        }
        command
    }

    /// A superuser client of this world's PocketBase, to read what the platform stored.
    pub(crate) async fn pocketbase(&self) -> cfa_pocketbase::PocketBaseClient {
        self.pocketbase.superuser().await.expect("a superuser client of the test PocketBase")
    }

    /// What a hung command leaves to read: its last Coolify calls and the containers.
    fn hang_report(&self) -> String {
        let calls = self.calls();
        let last: Vec<String> = calls
            .iter()
            .rev()
            .take(20)
            .rev()
            .map(|call| format!("  {} {}", call.method, call.route))
            .collect();
        let containers = docker(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"])
            .unwrap_or_else(|error| error);
        format!(
            "its last Coolify calls ({} in all):\n{}\ncontainers:\n{containers}",
            calls.len(),
            last.join("\n")
        )
    }

    pub(crate) async fn cfa_owned(&self, args: &[String]) -> Run {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.cfa(&args).await
    }

    /// From now on, `cfa` runs with `CFA_ROUTER_URL` set: the Router the platform allows.
    pub(crate) fn set_router_url(&self, url: &str) {
        *self.router_url.lock().unwrap() = Some(url.to_owned());
    }

    /// From now on, before each start the operator sets `key` on the service in Coolify.
    pub(crate) fn set_operator_env(&self, key: &str, value: &str) {
        *self.pass.operator_env.lock().unwrap() = Some((key.to_owned(), value.to_owned()));
    }

    /// `cfa`'s Coolify calls so far.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.pass.calls.lock().unwrap().clone()
    }
}

/// Forwards `0.0.0.0:<free port>` to a loopback-only server, so containers reach it.
pub(crate) async fn expose(loopback: SocketAddr) -> u16 {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(loopback).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    port
}

impl World {
    /// The entries of each final backup kept for `tenant/stack` (gunzipped tar), by key.
    pub(crate) async fn final_backups(
        &self,
        tenant: &str,
        stack: &str,
    ) -> Vec<(String, Vec<String>)> {
        let store = self.moto.store().unwrap();
        let prefix = format!("{}/{tenant}/{stack}", cfa_backup_store::layout::DEFAULT_FINAL_PREFIX);
        let mut kept = Vec::new();
        for object in store.list(&prefix).await.unwrap() {
            let bytes = store.get(&object.key).await.unwrap();
            let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
            let entries = archive
                .entries()
                .unwrap()
                .map(|entry| entry.unwrap().path().unwrap().display().to_string())
                .collect();
            kept.push((object.key, entries));
        }
        kept
    }
}

//! The integration tests' receivers, all on 127.0.0.1: a webhook endpoint that checks the
//! signature and records what it accepts, a Telegram Bot API stand-in with scripted answers, a
//! listener that accepts connections and never answers, and a real SMTP server (aiosmtpd from
//! PyPI, or a printed skip, a failure under `CI=true`). Plus the config and message fixtures.

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{any, post};
use cfa_alerts::config::{EmailConfig, EmailTls, TelegramConfig, TelegramFormat, WebhookConfig};
use cfa_alerts::signature::{
    DEFAULT_MAX_AGE, MESSAGE_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature,
};
use cfa_alerts::{AlertMessage, AlertsConfig, Channel, RetryPolicy, channels_from_config};
use cfa_core::incidents::{
    IncidentKind, IncidentSubject, Notification, NotificationKind, Resolution, group_notifications,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub(crate) const WEBHOOK_SECRET: &str = "webhook-test-secret-5d1e";
pub(crate) const BOT_TOKEN: &str = "123456:test-token-ABC";
pub(crate) const CHAT_ID: &str = "-100200300";

/// The aiosmtpd release `scripts/install-deps` installs under `$CFA_CACHE_DIR`.
const AIOSMTPD_VERSION: &str = "1.4.6";

pub(crate) fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

pub(crate) fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Polls `check` every 10 ms until it gives a value, or panics after `limit` naming `what`.
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
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Fast retries for tests: 100 ms doubling to 1 s, lanes polled every 100 ms.
pub(crate) fn quick_policy() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        give_up_after: Duration::from_secs(60),
        poll_interval: Duration::from_millis(100),
        batch_limit: 100,
    }
}

// ---------------------------------------------------------------------------------------------
// Messages

pub(crate) fn stack(tenant: &str, name: &str) -> IncidentSubject {
    IncidentSubject::Stack {
        tenant_slug: tenant.to_owned(),
        stack_name: name.to_owned(),
        record_id: format!("rec{tenant}{name}"),
    }
}

/// An OOM kill on acme/bot, opened (or, with `resolved`, resolved two minutes later).
pub(crate) fn oom_message(resolved: bool) -> AlertMessage {
    let opened_at = SystemTime::now() - Duration::from_secs(120);
    let (notification_kind, at) = if resolved {
        (NotificationKind::Resolved(Resolution::Recovered), opened_at + Duration::from_secs(120))
    } else {
        (NotificationKind::Opened, opened_at)
    };
    let notification = Notification {
        incident_kind: IncidentKind::OomKilled,
        flapping_of: None,
        notification_kind,
        opened_at,
        at,
        detail: Some(if resolved { "running again" } else { "exit code 137" }.to_owned()),
    };
    let grouped = group_notifications(vec![(stack("acme", "bot"), notification)], 20);
    AlertMessage::from_grouped(&grouped[0])
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// A directory of secret files (mode 0600) and the config sections that name them.
pub(crate) struct Secrets {
    pub(crate) dir: tempfile::TempDir,
}

impl Secrets {
    pub(crate) fn new() -> Secrets {
        let secrets = Secrets { dir: tempfile::tempdir().expect("temporary directory") };
        secrets.write("webhook.secret", &format!("{WEBHOOK_SECRET}\n"));
        secrets.write("telegram.token", BOT_TOKEN);
        secrets
    }

    pub(crate) fn write(&self, name: &str, content: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).expect("write a secret file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    pub(crate) fn webhook(&self, url: &str, timeout: Duration) -> WebhookConfig {
        WebhookConfig {
            name: "ops-webhook".to_owned(),
            url: url.to_owned(),
            secret_file: self.dir.path().join("webhook.secret"),
            timeout: Some(timeout),
        }
    }

    pub(crate) fn telegram(&self, api_base: &str, format: TelegramFormat) -> TelegramConfig {
        TelegramConfig {
            name: "ops-telegram".to_owned(),
            token_file: self.dir.path().join("telegram.token"),
            chat_id: CHAT_ID.to_owned(),
            api_base: Some(api_base.to_owned()),
            format,
            timeout: Some(Duration::from_secs(2)),
        }
    }
}

pub(crate) fn email_config(port: u16) -> EmailConfig {
    EmailConfig {
        name: "ops-mail".to_owned(),
        smtp_host: "127.0.0.1".to_owned(),
        smtp_port: Some(port),
        tls: EmailTls::None,
        username: None,
        password_file: None,
        from: "CloudFreedom alerts <alerts@cfa.test>".to_owned(),
        to: vec!["ops@cfa.test".to_owned(), "oncall@cfa.test".to_owned()],
        timeout: Some(Duration::from_secs(3)),
    }
}

pub(crate) fn channels(config: &AlertsConfig) -> Vec<Channel> {
    channels_from_config(config).expect("channels from the test config")
}

// ---------------------------------------------------------------------------------------------
// Webhook receiver

/// One request the webhook receiver accepted.
#[derive(Debug, Clone)]
pub(crate) struct WebhookRequest {
    pub(crate) body: serde_json::Value,
    pub(crate) message_id_header: String,
    pub(crate) received_at: Instant,
}

#[derive(Debug, Default)]
struct WebhookState {
    secret: String,
    accepted: Mutex<Vec<WebhookRequest>>,
    refused: Mutex<Vec<String>>,
    /// Statuses to answer instead of 200, in order, for requests that pass the signature check.
    scripted: Mutex<VecDeque<StatusCode>>,
}

/// An axum endpoint on 127.0.0.1 that verifies every request's signature with its secret.
pub(crate) struct WebhookReceiver {
    pub(crate) address: SocketAddr,
    state: Arc<WebhookState>,
    task: JoinHandle<()>,
}

impl WebhookReceiver {
    pub(crate) async fn start(secret: &str) -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the webhook receiver");
        WebhookReceiver::serve(listener, secret)
    }

    /// On a port chosen before (a receiver that comes back where it was).
    pub(crate) async fn start_at(address: SocketAddr, secret: &str) -> WebhookReceiver {
        let listener = TcpListener::bind(address).await.expect("bind the webhook receiver again");
        WebhookReceiver::serve(listener, secret)
    }

    fn serve(listener: TcpListener, secret: &str) -> WebhookReceiver {
        let address = listener.local_addr().unwrap();
        let state = Arc::new(WebhookState { secret: secret.to_owned(), ..WebhookState::default() });
        let router = Router::new().route("/hook", post(webhook)).with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("serve the webhook receiver");
        });
        WebhookReceiver { address, state, task }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/hook", self.address)
    }

    pub(crate) fn accepted(&self) -> Vec<WebhookRequest> {
        self.state.accepted.lock().unwrap().clone()
    }

    pub(crate) fn refused(&self) -> Vec<String> {
        self.state.refused.lock().unwrap().clone()
    }

    pub(crate) fn script(&self, statuses: impl IntoIterator<Item = StatusCode>) {
        self.state.scripted.lock().unwrap().extend(statuses);
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn webhook(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or("");
    if let Err(error) = verify_signature(
        state.secret.as_bytes(),
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        SystemTime::now(),
        DEFAULT_MAX_AGE,
    ) {
        state.refused.lock().unwrap().push(error.to_string());
        return StatusCode::UNAUTHORIZED;
    }
    if let Some(status) = state.scripted.lock().unwrap().pop_front() {
        return status;
    }
    let body = serde_json::from_slice(&body).expect("the webhook body is JSON");
    state.accepted.lock().unwrap().push(WebhookRequest {
        body,
        message_id_header: header(MESSAGE_ID_HEADER).to_owned(),
        received_at: Instant::now(),
    });
    StatusCode::OK
}

/// A TCP listener that accepts connections and never answers: a receiver that hangs.
pub(crate) struct BlackHole {
    pub(crate) address: SocketAddr,
    task: JoinHandle<()>,
}

impl BlackHole {
    pub(crate) async fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the black hole");
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((connection, _)) = listener.accept().await {
                held.push(connection);
            }
        });
        BlackHole { address, task }
    }

    /// Stops listening and drops every held connection (they are reset).
    pub(crate) async fn stop(self) -> SocketAddr {
        self.task.abort();
        let _ = self.task.await;
        self.address
    }
}

// ---------------------------------------------------------------------------------------------
// Telegram Bot API stand-in

/// One `sendMessage` call.
#[derive(Debug, Clone)]
pub(crate) struct TelegramCall {
    pub(crate) body: serde_json::Value,
    pub(crate) received_at: Instant,
    pub(crate) answered: StatusCode,
}

#[derive(Debug, Default)]
struct TelegramState {
    calls: Mutex<Vec<TelegramCall>>,
    /// Answers to give instead of `{"ok":true}`, in order.
    scripted: Mutex<VecDeque<(StatusCode, serde_json::Value)>>,
}

/// `POST /bot<token>/sendMessage` answering like the Bot API; anything else is a 404.
pub(crate) struct TelegramStandIn {
    pub(crate) address: SocketAddr,
    state: Arc<TelegramState>,
    task: JoinHandle<()>,
}

impl TelegramStandIn {
    pub(crate) async fn start() -> TelegramStandIn {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the Telegram stand-in");
        let address = listener.local_addr().unwrap();
        let state = Arc::new(TelegramState::default());
        let router =
            Router::new().route("/{bot}/{method}", any(telegram)).with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("serve the Telegram stand-in");
        });
        TelegramStandIn { address, state, task }
    }

    pub(crate) fn api_base(&self) -> String {
        format!("http://{}", self.address)
    }

    pub(crate) fn calls(&self) -> Vec<TelegramCall> {
        self.state.calls.lock().unwrap().clone()
    }

    /// The calls it answered with success.
    pub(crate) fn delivered(&self) -> Vec<TelegramCall> {
        self.calls().into_iter().filter(|call| call.answered == StatusCode::OK).collect()
    }

    pub(crate) fn script(&self, answer: (StatusCode, serde_json::Value)) {
        self.state.scripted.lock().unwrap().push_back(answer);
    }
}

impl Drop for TelegramStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn telegram(
    State(state): State<Arc<TelegramState>>,
    UrlPath((bot, method)): UrlPath<(String, String)>,
    body: Bytes,
) -> (StatusCode, axum::Json<serde_json::Value>) {
    if bot != format!("bot{BOT_TOKEN}") || method != "sendMessage" {
        let answer =
            serde_json::json!({"ok": false, "error_code": 404, "description": "Not Found"});
        return (StatusCode::NOT_FOUND, axum::Json(answer));
    }
    let body: serde_json::Value = serde_json::from_slice(&body).expect("sendMessage takes JSON");
    let (status, answer) = state.scripted.lock().unwrap().pop_front().unwrap_or_else(|| {
        let answer = serde_json::json!({
            "ok": true,
            "result": {"message_id": 1, "date": 0, "chat": {"id": body["chat_id"]}, "text": body["text"]},
        });
        (StatusCode::OK, answer)
    });
    state.calls.lock().unwrap().push(TelegramCall {
        body,
        received_at: Instant::now(),
        answered: status,
    });
    (status, axum::Json(answer))
}

pub(crate) fn too_many_requests(retry_after: u64) -> (StatusCode, serde_json::Value) {
    let answer = serde_json::json!({
        "ok": false,
        "error_code": 429,
        "description": format!("Too Many Requests: retry after {retry_after}"),
        "parameters": {"retry_after": retry_after},
    });
    (StatusCode::TOO_MANY_REQUESTS, answer)
}

// ---------------------------------------------------------------------------------------------
// SMTP server (aiosmtpd)

/// One e-mail in the Maildir.
#[derive(Debug, Clone)]
pub(crate) struct Mail {
    pub(crate) subject: String,
    pub(crate) to: String,
    pub(crate) body: String,
}

/// aiosmtpd's `Mailbox` handler on a loopback port, writing into a Maildir; killed on drop.
pub(crate) struct SmtpServer {
    pub(crate) port: u16,
    child: Child,
    maildir: tempfile::TempDir,
}

/// `CFA_AIOSMTPD_BIN`, else `aiosmtpd` on PATH, else where `scripts/install-deps` puts it.
fn aiosmtpd_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CFA_AIOSMTPD_BIN") {
        return Some(PathBuf::from(path)).filter(|path| path.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = std::env::split_paths(&path).map(|dir| dir.join("aiosmtpd"));
    let cache_dir = std::env::var_os("CFA_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/cfa")));
    let installed =
        cache_dir.map(|dir| dir.join(format!("aiosmtpd-{AIOSMTPD_VERSION}/bin/aiosmtpd")));
    on_path.chain(installed).find(|candidate| candidate.is_file())
}

impl SmtpServer {
    /// The server, or `None` with one printed line when aiosmtpd is not installed (a failure
    /// under `CI=true`).
    pub(crate) async fn start_or_skip() -> Option<SmtpServer> {
        let Some(binary) = aiosmtpd_binary() else {
            assert!(
                !in_ci(),
                "CI=true and aiosmtpd is not installed (run scripts/install-deps, or set CFA_AIOSMTPD_BIN)"
            );
            report("skipping: aiosmtpd is not installed (run scripts/install-deps)");
            return None;
        };
        let maildir = tempfile::tempdir().expect("temporary maildir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free port");
        let child = Command::new(&binary)
            .args(["-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("mail"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
        let server = SmtpServer { port, child, maildir };
        let began = Instant::now();
        // Ready once it greets with 220 (Python takes a moment to start).
        loop {
            if let Ok(stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                let mut greeting = [0u8; 3];
                let ready = tokio::time::timeout(Duration::from_secs(2), async {
                    use tokio::io::AsyncReadExt;
                    let mut stream = stream;
                    stream.read_exact(&mut greeting).await.map(|_| greeting == *b"220")
                })
                .await;
                if matches!(ready, Ok(Ok(true))) {
                    return Some(server);
                }
            }
            assert!(began.elapsed() < Duration::from_secs(15), "aiosmtpd did not start on {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every e-mail received so far, in no particular order.
    pub(crate) fn mails(&self) -> Vec<Mail> {
        let new = self.maildir.path().join("mail/new");
        let Ok(entries) = std::fs::read_dir(&new) else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
            .map(|text| parse_mail(&text))
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Headers (unfolded) and body of a stored message; enough for ASCII subjects.
fn parse_mail(text: &str) -> Mail {
    let text = text.replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let unfolded = head.replace("\n ", " ").replace("\n\t", " ");
    let header = |name: &str| {
        unfolded
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
            })
            .unwrap_or_default()
    };
    Mail { subject: header("Subject"), to: header("To"), body: body.to_owned() }
}

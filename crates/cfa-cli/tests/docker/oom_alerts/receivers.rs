//! The loopback receivers of the OOM test: a webhook that checks signatures, a Telegram Bot
//! API stand-in, a real SMTP server (aiosmtpd), and `cfa serve` as a child process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};

use super::*;

pub(super) async fn serve_loopback(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    address
}

/// One webhook request whose signature checked out.
#[derive(Debug, Clone)]
pub(super) struct Hook {
    pub(super) body: Value,
    pub(super) arrived: SystemTime,
}

#[derive(Debug, Default)]
pub(super) struct Webhooks {
    pub(super) accepted: Mutex<Vec<Hook>>,
    pub(super) refused: Mutex<Vec<String>>,
}

pub(super) async fn webhook(
    State(hooks): State<Arc<Webhooks>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let arrived = SystemTime::now();
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or("");
    if let Err(error) = cfa_alerts::signature::verify_signature(
        WEBHOOK_SECRET.as_bytes(),
        header(cfa_alerts::signature::TIMESTAMP_HEADER),
        header(cfa_alerts::signature::SIGNATURE_HEADER),
        &body,
        SystemTime::now(),
        cfa_alerts::signature::DEFAULT_MAX_AGE,
    ) {
        hooks.refused.lock().unwrap().push(error.to_string());
        return StatusCode::UNAUTHORIZED;
    }
    let body = serde_json::from_slice(&body).expect("the webhook body is JSON");
    hooks.accepted.lock().unwrap().push(Hook { body, arrived });
    StatusCode::NO_CONTENT
}

/// The Bot API's `sendMessage` for the alerts' bot: records the chat and text, answers ok.
pub(super) async fn telegram(
    State(sent): State<Arc<Mutex<Vec<Value>>>>,
    UrlPath((bot, method)): UrlPath<(String, String)>,
    body: Bytes,
) -> (StatusCode, axum::Json<Value>) {
    if bot != format!("bot{ALERT_BOT_TOKEN}") || method != "sendMessage" {
        let answer = json!({"ok": false, "error_code": 404, "description": "Not Found"});
        return (StatusCode::NOT_FOUND, axum::Json(answer));
    }
    let body: Value = serde_json::from_slice(&body).expect("sendMessage takes JSON");
    let answer = json!({
        "ok": true,
        "result": {"message_id": 1, "date": 0, "chat": {"id": body["chat_id"]}, "text": body["text"]},
    });
    sent.lock().unwrap().push(body);
    (StatusCode::OK, axum::Json(answer))
}

/// aiosmtpd's `Mailbox` handler on a loopback port, writing into a Maildir; killed on drop.
pub(super) struct SmtpServer {
    pub(super) port: u16,
    pub(super) child: std::process::Child,
    pub(super) maildir: tempfile::TempDir,
}

/// `CFA_AIOSMTPD_BIN`, else `aiosmtpd` on PATH, else where `scripts/install-deps` puts it.
pub(super) fn aiosmtpd_binary() -> Option<PathBuf> {
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
    pub(super) async fn start_or_skip() -> Option<SmtpServer> {
        let Some(binary) = aiosmtpd_binary() else {
            assert!(
                !crate::in_ci(),
                "CI=true and aiosmtpd is not installed (run scripts/install-deps, or set CFA_AIOSMTPD_BIN)"
            );
            report("skipping: aiosmtpd is not installed (run scripts/install-deps)");
            return None;
        };
        let maildir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(&binary)
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
            if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                use tokio::io::AsyncReadExt as _;
                let mut greeting = [0u8; 3];
                let read =
                    tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut greeting))
                        .await;
                if matches!(read, Ok(Ok(_))) && greeting == *b"220" {
                    return Some(server);
                }
            }
            assert!(began.elapsed() < Duration::from_secs(15), "aiosmtpd did not start on {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The subject of every e-mail received so far, in arrival order: Python's Maildir names a
    /// message `<secs>.M<usecs>P<pid>Q<counter>.<host>`, the counter counting up per process.
    pub(super) fn subjects(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.path().join("mail/new")) else {
            return Vec::new();
        };
        let mut mails: Vec<(u64, String)> = entries
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let name = path.file_name()?.to_string_lossy().into_owned();
                let counter = name.split_once('Q')?.1.split('.').next()?.parse().ok()?;
                Some((counter, std::fs::read_to_string(&path).ok()?))
            })
            .map(|(counter, text)| {
                let text = text.replace("\r\n", "\n");
                let head = text.split_once("\n\n").map_or(text.as_str(), |(head, _)| head);
                let subject = head
                    .replace("\n ", " ")
                    .lines()
                    .find_map(|line| {
                        line.strip_prefix("Subject:").map(|subject| subject.trim().to_owned())
                    })
                    .unwrap_or_default();
                (counter, subject)
            })
            .collect();
        mails.sort();
        mails.into_iter().map(|(_, subject)| subject).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// cfa serve and the host agent

/// `cfa serve` on a loopback port, its output collected; killed on drop.
pub(super) struct Serve {
    pub(super) url: String,
    pub(super) output: Arc<Mutex<Vec<String>>>,
    pub(super) _child: tokio::process::Child,
}

impl Serve {
    pub(super) async fn start(world: &World) -> Serve {
        let mut command = world.cfa_command(&["serve", "--listen", "127.0.0.1:0"]);
        command
            .env("CFA_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("start cfa serve");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = tokio::sync::oneshot::channel();
        let stdout = child.stdout.take().unwrap();
        let lines = output.clone();
        tokio::spawn(async move {
            let mut address_tx = Some(address_tx);
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Some(address) = line.strip_prefix("listening on ")
                    && let Some(address_tx) = address_tx.take()
                {
                    let _ = address_tx.send(address.trim().to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let stderr = child.stderr.take().unwrap();
        let lines = output.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                lines.lock().unwrap().push(format!("stderr: {line}"));
            }
        });
        let url = tokio::time::timeout(Duration::from_secs(30), address_rx)
            .await
            .unwrap_or_else(|_| {
                panic!("cfa serve printed no address:\n{}", output.lock().unwrap().join("\n"))
            })
            .expect("cfa serve stopped before it listened");
        Serve { url, output, _child: child }
    }

    pub(super) fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }
}

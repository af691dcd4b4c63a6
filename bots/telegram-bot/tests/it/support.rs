//! The harness: stand-ins on loopback plus the real `telegram-bot` binary as a child process,
//! with its stdout and stderr captured line by line.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use telegram_bot::testing::{RouterStandIn, TelegramStandIn};

pub(crate) const TOKEN: &str = "123456789:SECRETtokenPART_abcdefghijkl";
pub(crate) const API_KEY: &str = "sk-router-SECRET-key-0042";
pub(crate) const WAIT: Duration = Duration::from_secs(15);

pub(crate) fn bot_binary() -> &'static str {
    env!("CARGO_BIN_EXE_telegram-bot")
}

pub(crate) fn free_loopback_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A running bot process.
pub(crate) struct BotProcess {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    pub(crate) health: SocketAddr,
}

impl BotProcess {
    pub(crate) fn start(environment: &[(&str, String)]) -> Self {
        let health = free_loopback_address();
        let mut command = Command::new(bot_binary());
        command
            .env_clear()
            .env("HEALTH_LISTEN", health.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in environment {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start telegram-bot");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for stream in [Box::new(stdout) as Box<dyn std::io::Read + Send>, Box::new(stderr)] {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Self { child, lines, health }
    }

    pub(crate) fn logs(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until a log line contains `fragment`.
    pub(crate) async fn wait_for_log(&self, fragment: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(line) = self.logs().into_iter().find(|line| line.contains(fragment)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {fragment:?}; logs:\n{}",
                self.logs().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// GET on the health listener: `(status, body)`.
    pub(crate) async fn get(&self, path: &str) -> Option<(u16, String)> {
        let response = reqwest::get(format!("http://{}{path}", self.health)).await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.unwrap_or_default()))
    }

    pub(crate) async fn wait_ready(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some((200, _)) = self.get("/readyz").await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "bot never became ready; logs:\n{}",
                self.logs().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn terminate(&self) {
        let status =
            Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
    }

    pub(crate) async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads drain the last lines.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Asserts that no log line holds the token, the key, or any of `texts`.
    pub(crate) fn assert_logs_hold_no_secret_or_text(&self, texts: &[&str]) {
        let logs = self.logs();
        assert!(!logs.is_empty());
        let token_secret_part = TOKEN.split_once(':').unwrap().1;
        for line in &logs {
            assert!(!line.contains(token_secret_part), "token in log: {line}");
            assert!(!line.contains(API_KEY), "api key in log: {line}");
            for text in texts {
                assert!(!line.contains(text), "message text {text:?} in log: {line}");
            }
        }
    }
}

impl Drop for BotProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stand-ins and a bot wired to them.
pub(crate) struct Harness {
    pub(crate) telegram: TelegramStandIn,
    pub(crate) router: RouterStandIn,
    pub(crate) bot: BotProcess,
}

impl Harness {
    /// Starts stand-ins and a bot with the required settings plus `extra`; waits until ready.
    pub(crate) async fn start(extra: &[(&str, &str)]) -> Self {
        let harness = Self::start_unready(extra).await;
        harness.bot.wait_ready().await;
        harness
    }

    pub(crate) async fn start_unready(extra: &[(&str, &str)]) -> Self {
        let telegram = TelegramStandIn::start(TOKEN).await;
        let router = RouterStandIn::start(API_KEY).await;
        let mut environment = vec![
            ("TELEGRAM_BOT_TOKEN", TOKEN.to_owned()),
            ("TELEGRAM_API_URL", telegram.api_url()),
            ("ROUTER_BASE_URL", router.base_url()),
            ("ROUTER_API_KEY", API_KEY.to_owned()),
            ("LOG_FORMAT", "json".to_owned()),
        ];
        for (name, value) in extra {
            environment.retain(|(existing, _)| existing != name);
            environment.push((name, (*value).to_owned()));
        }
        let bot = BotProcess::start(&environment);
        Self { telegram, router, bot }
    }

    /// Messages sent to `chat_id`, in order.
    pub(crate) fn sent_to(&self, chat_id: i64) -> Vec<String> {
        self.telegram
            .sent()
            .into_iter()
            .filter(|message| message.chat_id == chat_id)
            .map(|message| message.text)
            .collect()
    }
}

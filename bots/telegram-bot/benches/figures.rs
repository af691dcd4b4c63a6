//! The bot's figures for the README: binary size, idle RSS, RSS after 1,000 messages across
//! 100 chats, and the latency the bot adds per message over the Router's own time.
//!
//! Run: `cargo bench -p telegram-bot --bench figures`. It measures the bench-profile binary;
//! set `TELEGRAM_BOT_BIN` to measure another build, e.g. the image's:
//! `cargo build --profile bot-release -p telegram-bot --bin telegram-bot` then
//! `TELEGRAM_BOT_BIN=$CARGO_TARGET_DIR/bot-release/telegram-bot cargo bench -p telegram-bot --bench figures`.
//! The bot runs as a real process against the loopback stand-ins; RSS comes from /proc.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use telegram_bot::testing::{RouterReply, RouterStandIn, TelegramStandIn};

const TOKEN: &str = "123456789:BenchTokenBenchTokenBench";
const API_KEY: &str = "sk-bench";

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
        .unwrap()
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: measure only when benching.
    if !std::env::args().any(|argument| argument == "--bench") {
        return;
    }
    let binary = std::env::var("TELEGRAM_BOT_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_telegram-bot").to_owned());
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    runtime.block_on(measure(&binary));
}

async fn measure(binary: &str) {
    let mut out = std::io::stdout();
    let binary_bytes = std::fs::metadata(binary).unwrap().len();

    let telegram = TelegramStandIn::start(TOKEN).await;
    let router = RouterStandIn::start(API_KEY).await;
    let health = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut bot: Child = Command::new(binary)
        .env_clear()
        .env("TELEGRAM_BOT_TOKEN", TOKEN)
        .env("TELEGRAM_API_URL", telegram.api_url())
        .env("ROUTER_BASE_URL", router.base_url())
        .env("ROUTER_API_KEY", API_KEY)
        .env("HEALTH_LISTEN", health.to_string())
        .env("HISTORY_TURNS", "8")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = bot.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = reqwest::get(format!("http://{health}/readyz"))
            .await
            .is_ok_and(|response| response.status().is_success());
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "the bot did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = rss_kib(pid, "VmRSS:");

    // Added latency: one message at a time, each to a fresh chat, 100 ms apart so neither the
    // per-chat nor the overall send pacing (34 ms) waits; the Router stand-in echoes.
    let mut added = Vec::new();
    for index in 0..200 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = telegram.sent().len();
        let update_id = telegram.push_text(10_000 + index, "what is the added latency?");
        let sent = telegram.wait_for_sent(before + 1, Duration::from_secs(10)).await;
        let queued_at = telegram.queued_at(update_id).unwrap();
        let end_to_end = sent[before].received_at - queued_at;
        let router_own = router.completions().last().unwrap().handling;
        added.push(end_to_end.saturating_sub(router_own));
    }
    added.sort();

    // Load: 1,000 messages across 100 chats (10 each), 200-character questions and
    // 800-character answers, so each chat's history fills up.
    router.set_default_reply(RouterReply::Text("An answer of some length. ".repeat(31)));
    let question = "A question of about two hundred characters, as users write them. ".repeat(3);
    let before = telegram.sent().len();
    let load_started = Instant::now();
    for round in 0..10 {
        for chat in 0..100 {
            telegram.push_text(20_000 + chat, &format!("{round} {question}"));
        }
    }
    let sent = telegram.wait_for_sent(before + 1_000, Duration::from_secs(180)).await;
    assert_eq!(sent.len(), before + 1_000, "not every message was answered");
    let load_seconds = load_started.elapsed().as_secs_f64();
    let loaded_rss = rss_kib(pid, "VmRSS:");
    let peak_rss = rss_kib(pid, "VmHWM:");
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let _ = bot.wait();

    let mib = |kib: u64| kib as f64 / 1024.0;
    let _ = writeln!(out, "telegram-bot figures ({binary})");
    let _ = writeln!(out, "| figure | value |");
    let _ = writeln!(out, "|---|---|");
    let _ = writeln!(out, "| binary size | {:.2} MiB |", binary_bytes as f64 / 1024.0 / 1024.0);
    let _ = writeln!(out, "| idle RSS (ready, 2 s after start) | {:.1} MiB |", mib(idle_rss));
    let _ = writeln!(
        out,
        "| RSS after 1,000 messages across 100 chats (history 8) | {:.1} MiB (peak {:.1} MiB) |",
        mib(loaded_rss),
        mib(peak_rss)
    );
    let _ = writeln!(
        out,
        "| time for those 1,000 messages (paced: 1/s per chat, 30/s overall) | {load_seconds:.1} s |"
    );
    let _ = writeln!(
        out,
        "| added latency per message over the Router's own (200 messages) | median {:.2} ms, p95 {:.2} ms, max {:.2} ms |",
        percentile(&added, 0.5).as_secs_f64() * 1000.0,
        percentile(&added, 0.95).as_secs_f64() * 1000.0,
        added.last().unwrap().as_secs_f64() * 1000.0
    );
}

//! Start-up configuration errors and graceful shutdown.

use std::process::Command;
use std::time::{Duration, Instant};

use telegram_bot::testing::RouterReply;

use crate::support::{Harness, WAIT, bot_binary};

fn start_with(environment: &[(&str, &str)]) -> (i32, String, String) {
    let output =
        Command::new(bot_binary()).env_clear().envs(environment.iter().copied()).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_missing_or_malformed_setting_stops_the_bot_with_one_line_naming_it() {
    let complete = [
        ("TELEGRAM_BOT_TOKEN", "123:abc"),
        ("ROUTER_BASE_URL", "http://127.0.0.1:9/v1"),
        ("ROUTER_API_KEY", "sk-x"),
    ];
    let cases: &[(&str, Option<&str>)] = &[
        ("TELEGRAM_BOT_TOKEN", None),
        ("ROUTER_BASE_URL", None),
        ("ROUTER_API_KEY", None),
        ("ROUTER_BASE_URL", Some("not a url")),
        ("ALLOWED_CHAT_IDS", Some("12,x")),
        ("HISTORY_TURNS", Some("many")),
        ("LOG_FORMAT", Some("yaml")),
        ("HEALTH_LISTEN", Some("localhost")),
    ];
    for (variable, value) in cases {
        let mut environment: Vec<(&str, &str)> =
            complete.iter().copied().filter(|(name, _)| name != variable).collect();
        if let Some(value) = value {
            environment.push((variable, value));
        }
        let (code, stdout, stderr) = start_with(&environment);
        assert_eq!(code, 2, "{variable}: {stderr}");
        assert!(stdout.is_empty());
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(
            lines[0].starts_with(&format!("telegram-bot: configuration error: {variable} ")),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn sigterm_finishes_the_reply_in_flight_and_exits_quickly() {
    let mut harness = Harness::start(&[]).await;
    harness
        .router
        .script([RouterReply::Delayed(Duration::from_secs(2), Box::new(RouterReply::Echo))]);
    let update_id = harness.telegram.push_text(12, "slow question");
    // Wait until the reply is in flight (the Router has the request), then stop the bot.
    let deadline = Instant::now() + WAIT;
    while harness.telegram.highest_offset() != Some(update_id + 1)
        && harness.telegram.call_count("getUpdates") < 2
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = Instant::now();
    harness.bot.terminate();
    let status =
        harness.bot.wait_exit(Duration::from_secs(12)).await.expect("the bot did not exit");
    assert!(status.success(), "{status:?}");
    // Behavioural bound from the issue (Docker's grace), not a performance figure.
    assert!(stopping.elapsed() < Duration::from_secs(10));
    assert_eq!(harness.sent_to(12), ["echo: slow question"]);
    // The handled update was confirmed, so a restart does not answer it again.
    assert_eq!(harness.telegram.highest_offset(), Some(update_id + 1));
    harness.bot.wait_for_log("telegram-bot stopped").await;
    harness.bot.assert_logs_hold_no_secret_or_text(&["slow question"]);
}

#[tokio::test]
async fn sigterm_while_idle_exits_at_once() {
    let mut harness = Harness::start(&[("LOG_FORMAT", "text")]).await;
    harness.bot.terminate();
    let status =
        harness.bot.wait_exit(Duration::from_secs(10)).await.expect("the bot did not exit");
    assert!(status.success());
    let logs = harness.bot.logs();
    assert!(logs.iter().any(|line| line.contains("SIGTERM")));
    assert!(logs.iter().all(|line| !line.starts_with('{')), "text format expected");
}

#[tokio::test]
async fn a_refused_token_stops_the_bot_with_a_clear_error() {
    let telegram = telegram_bot::testing::TelegramStandIn::start("999:other-token").await;
    let mut bot = crate::support::BotProcess::start(&[
        ("TELEGRAM_BOT_TOKEN", crate::support::TOKEN.to_owned()),
        ("TELEGRAM_API_URL", telegram.api_url()),
        ("ROUTER_BASE_URL", "http://127.0.0.1:9/v1".to_owned()),
        ("ROUTER_API_KEY", crate::support::API_KEY.to_owned()),
    ]);
    let status = bot.wait_exit(WAIT).await.expect("the bot should stop");
    assert_eq!(status.code(), Some(1));
    let line = bot.wait_for_log("stopped with an error").await;
    assert!(line.contains("TELEGRAM_BOT_TOKEN"), "{line}");
    bot.assert_logs_hold_no_secret_or_text(&[]);
}

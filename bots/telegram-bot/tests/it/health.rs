//! `/healthz`, `/readyz` and the `healthcheck` subcommand.

use std::process::Command;

use crate::support::{BotProcess, Harness, bot_binary, free_loopback_address};

fn healthcheck(health_listen: &str) -> (bool, String) {
    let output = Command::new(bot_binary())
        .arg("healthcheck")
        .env_clear()
        .env("HEALTH_LISTEN", health_listen)
        .output()
        .unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test]
async fn a_ready_bot_passes_the_health_endpoints_and_the_subcommand() {
    let harness = Harness::start(&[]).await;
    let (status, body) = harness.bot.get("/healthz").await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("alive"));
    let (status, body) = harness.bot.get("/readyz").await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, r#"{"ready":true,"telegram":"ok","router":"ok"}"#);
    // No message answered yet: the Router was checked with the light probe.
    assert!(harness.router.models_calls() >= 1);

    // As the image does it: HEALTH_LISTEN on 0.0.0.0 is probed on loopback.
    let port = harness.bot.health.port();
    let (healthy, output) = healthcheck(&format!("0.0.0.0:{port}"));
    assert!(healthy, "{output}");
    assert_eq!(output.trim(), "healthy");
}

#[tokio::test]
async fn a_refused_router_key_makes_the_bot_unready_but_alive() {
    let mut harness = Harness::start_unready(&[]).await;
    // Restart the bot with a wrong key against the same stand-ins.
    drop(std::mem::replace(
        &mut harness.bot,
        BotProcess::start(&[
            ("TELEGRAM_BOT_TOKEN", crate::support::TOKEN.to_owned()),
            ("TELEGRAM_API_URL", harness.telegram.api_url()),
            ("ROUTER_BASE_URL", harness.router.base_url()),
            ("ROUTER_API_KEY", "sk-wrong".to_owned()),
        ]),
    ));
    harness.bot.wait_for_log("connected to telegram").await;
    let (status, _) = harness.bot.get("/healthz").await.unwrap();
    assert_eq!(status, 200);
    let (status, body) = harness.bot.get("/readyz").await.unwrap();
    assert_eq!(status, 503);
    assert!(body.contains(r#""router":"key refused""#), "{body}");
    let (healthy, output) = healthcheck(&harness.bot.health.to_string());
    assert!(!healthy);
    assert!(output.contains("/readyz answered 503"), "{output}");
}

#[tokio::test]
async fn the_subcommand_fails_when_nothing_listens() {
    let (healthy, output) = healthcheck(&free_loopback_address().to_string());
    assert!(!healthy);
    assert!(output.starts_with("unhealthy: /healthz"), "{output}");
    let (healthy, output) = healthcheck("not-an-address");
    assert!(!healthy);
    assert!(output.contains("HEALTH_LISTEN"), "{output}");
}

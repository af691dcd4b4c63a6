//! Webhook mode: setWebhook with the secret, and requests without it refused.

use serde_json::json;

use crate::support::{Harness, WAIT};

const SECRET: &str = "webhook_SECRET-value-77";

#[tokio::test]
async fn webhook_requests_need_the_secret_token_header() {
    let harness = Harness::start(&[
        ("WEBHOOK_URL", "https://bot-acme.cloudfreedom.de/telegram/hook"),
        ("WEBHOOK_SECRET", SECRET),
    ])
    .await;
    assert_eq!(
        harness.telegram.webhook(),
        Some(("https://bot-acme.cloudfreedom.de/telegram/hook".to_owned(), SECRET.to_owned()))
    );
    assert_eq!(harness.telegram.call_count("getUpdates"), 0, "no polling in webhook mode");

    let hook = format!("http://{}/telegram/hook", harness.bot.health);
    let update = json!({
        "update_id": 500,
        "message": { "message_id": 1, "date": 1, "chat": { "id": 77, "type": "private" }, "text": "via webhook" }
    });
    let client = reqwest::Client::new();
    let without = client.post(&hook).json(&update).send().await.unwrap();
    assert_eq!(without.status().as_u16(), 401);
    let wrong = client
        .post(&hook)
        .header("X-Telegram-Bot-Api-Secret-Token", "webhook_SECRET-value-78")
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(harness.router.completions().is_empty());

    let right = client
        .post(&hook)
        .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status().as_u16(), 200);
    let sent = harness.telegram.wait_for_sent(1, WAIT).await;
    assert_eq!(sent[0].text, "echo: via webhook");
    assert_eq!(harness.router.completions().len(), 1);

    let line = harness.bot.wait_for_log("without the right secret token").await;
    assert!(line.contains("\"secret_header_present\":false"), "{line}");
    harness.bot.assert_logs_hold_no_secret_or_text(&["via webhook", SECRET]);
}

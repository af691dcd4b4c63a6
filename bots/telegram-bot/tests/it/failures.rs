//! Router failures (retries, apology) and Telegram 429 handling.

use std::time::Duration;

use telegram_bot::app::APOLOGY_TEXT;
use telegram_bot::testing::RouterReply;

use crate::support::{Harness, WAIT};

#[tokio::test]
async fn router_errors_are_retried_and_then_succeed() {
    let harness = Harness::start(&[]).await;
    harness.router.script([
        RouterReply::Status(502),
        RouterReply::TooManyRequests { retry_after_seconds: Some(1) },
    ]);
    harness.telegram.push_text(1, "flaky");
    let sent = harness.telegram.wait_for_sent(1, WAIT).await;
    assert_eq!(sent[0].text, "echo: flaky");
    let completions = harness.router.completions();
    assert_eq!(completions.len(), 3);
    // The 429's Retry-After of 1 s was honoured before the third attempt.
    assert!(completions[2].answered_at - completions[1].answered_at >= Duration::from_secs(1));
    let line = harness.bot.wait_for_log("\"answered\"").await;
    assert!(line.contains("\"router_attempts\":3"), "{line}");
}

#[tokio::test]
async fn persistent_router_errors_end_in_an_apology_and_the_bot_keeps_going() {
    let harness = Harness::start(&[]).await;
    harness.router.script([
        RouterReply::Status(500),
        RouterReply::Status(503),
        RouterReply::Status(500),
    ]);
    harness.telegram.push_text(2, "first");
    let sent = harness.telegram.wait_for_sent(1, WAIT).await;
    assert_eq!(sent[0].text, APOLOGY_TEXT);
    assert_eq!(harness.router.completions().len(), 3);
    let line = harness.bot.wait_for_log("sending an apology").await;
    assert!(line.contains("HTTP 500"), "{line}");

    harness.telegram.push_text(2, "second");
    let sent = harness.telegram.wait_for_sent(2, WAIT).await;
    assert_eq!(sent[1].text, "echo: second");
    // A failed exchange is not remembered.
    assert_eq!(harness.router.completions()[3].messages.len(), 2);
    harness.bot.assert_logs_hold_no_secret_or_text(&["first", "second"]);
}

#[tokio::test]
async fn a_refused_key_is_not_retried() {
    let harness = Harness::start(&[]).await;
    harness.router.script([RouterReply::Status(401)]);
    harness.telegram.push_text(2, "hello");
    let sent = harness.telegram.wait_for_sent(1, WAIT).await;
    assert_eq!(sent[0].text, APOLOGY_TEXT);
    assert_eq!(harness.router.completions().len(), 1);
    harness.bot.wait_for_log("ROUTER_API_KEY").await;
}

#[tokio::test]
async fn router_timeouts_are_retried_then_apologised_for() {
    let harness = Harness::start(&[("ROUTER_TIMEOUT_SECS", "1")]).await;
    let slow = || RouterReply::Delayed(Duration::from_secs(3), Box::new(RouterReply::Echo));
    harness.router.script([slow(), slow(), slow()]);
    harness.telegram.push_text(4, "are you there");
    let sent = harness.telegram.wait_for_sent(1, WAIT).await;
    assert_eq!(sent[0].text, APOLOGY_TEXT);
    let line = harness.bot.wait_for_log("sending an apology").await;
    assert!(line.contains("within 1 s"), "{line}");
    assert!(line.contains("\"router_attempts\":3"), "{line}");
}

#[tokio::test]
async fn telegram_429_retry_after_is_respected() {
    let harness = Harness::start(&[]).await;
    harness.telegram.fail_next_sends_with_429(1, 2);
    harness.telegram.push_text(6, "hi");
    let sent = harness.telegram.wait_for_sent(1, WAIT).await;
    assert_eq!(sent[0].text, "echo: hi");
    let completion = &harness.router.completions()[0];
    // Two sendMessage calls: the refused one, then one after at least retry_after.
    assert_eq!(harness.telegram.call_count("sendMessage"), 2);
    assert!(sent[0].received_at - completion.answered_at >= Duration::from_secs(2));
    let line = harness.bot.wait_for_log("telegram asked to slow down").await;
    assert!(line.contains("\"retry_after_seconds\":2"), "{line}");
}

#[tokio::test]
async fn sends_to_one_chat_are_paced() {
    let harness = Harness::start(&[]).await;
    for index in 0..3 {
        harness.telegram.push_text(9, &format!("m{index}"));
    }
    let sent = harness.telegram.wait_for_sent(3, WAIT).await;
    let texts: Vec<&str> = sent.iter().map(|message| message.text.as_str()).collect();
    assert_eq!(texts, ["echo: m0", "echo: m1", "echo: m2"], "answered in order");
    // About one message a second per chat (Telegram's guidance); allow timer slack.
    for pair in sent.windows(2) {
        assert!(pair[1].received_at - pair[0].received_at >= Duration::from_millis(900));
    }
}

//! Telegram: `sendMessage` to the configured chat, 429s honoured, MarkdownV2 escaped.

use std::sync::Arc;
use std::time::Duration;

use cfa_alerts::config::TelegramFormat;
use cfa_alerts::{AlertsConfig, DeliveryStatus, Dispatcher, MemoryOutbox};

use crate::support::{
    CHAT_ID, Secrets, TelegramStandIn, channels, eventually, oom_message, quick_policy, report,
    too_many_requests,
};

fn telegram_dispatcher(
    secrets: &Secrets,
    stand_in: &TelegramStandIn,
    format: TelegramFormat,
) -> Dispatcher<MemoryOutbox> {
    let config = AlertsConfig {
        telegram: vec![secrets.telegram(&stand_in.api_base(), format)],
        ..AlertsConfig::default()
    };
    Dispatcher::new(channels(&config), MemoryOutbox::new(), quick_policy())
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_and_delivered_once() {
    let stand_in = TelegramStandIn::start().await;
    stand_in.script(too_many_requests(1));
    let secrets = Secrets::new();
    let dispatcher = Arc::new(telegram_dispatcher(&secrets, &stand_in, TelegramFormat::Plain));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let dispatcher = Arc::clone(&dispatcher);
        async move { dispatcher.run(async { stopped.await.unwrap_or_default() }).await }
    });

    let message = oom_message(false);
    dispatcher.enqueue(&message).await.expect("outbox");
    let calls = eventually("the retried sendMessage", Duration::from_secs(5), || {
        Some(stand_in.calls()).filter(|calls| calls.len() >= 2)
    })
    .await;
    let waited = calls[1].received_at - calls[0].received_at;
    report(&format!("telegram: 429 with retry_after 1, retried after {waited:?}"));
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}, before retry_after");
    assert!(waited < Duration::from_millis(1800), "retried only after {waited:?}");
    assert_eq!(calls[0].answered.as_u16(), 429);
    assert_eq!(calls[1].body["chat_id"], CHAT_ID);
    assert_eq!(calls[1].body["text"], message.text.as_str());
    assert!(calls[1].body.get("parse_mode").is_none(), "plain text: {}", calls[1].body);

    // Nothing more goes out: delivered once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stand_in.delivered().len(), 1);
    let delivery = &dispatcher.outbox().deliveries()[0];
    assert_eq!((delivery.status, delivery.attempts), (DeliveryStatus::Delivered, 1));
    assert!(delivery.last_error.as_deref().unwrap().contains("retry after 1"));
    assert!(!delivery.last_error.as_deref().unwrap().contains("test-token"), "no token in errors");
    stop.send(()).unwrap();
    running.await.unwrap();
}

#[tokio::test]
async fn markdown_v2_goes_out_escaped_with_its_parse_mode() {
    let stand_in = TelegramStandIn::start().await;
    let secrets = Secrets::new();
    let dispatcher = telegram_dispatcher(&secrets, &stand_in, TelegramFormat::MarkdownV2);
    let reports = dispatcher.dispatch(&oom_message(true)).await.expect("outbox");
    assert!(reports[0].delivered_all(), "{reports:?}");
    let call = &stand_in.calls()[0];
    assert_eq!(call.body["parse_mode"], "MarkdownV2");
    assert_eq!(call.body["text"], "*resolved: OOM kill on stack acme/bot after 2m*\nrunning again",);
}

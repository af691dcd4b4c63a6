//! A webhook receiver that hangs, then is gone, then comes back: Telegram and e-mail are not
//! delayed meanwhile, and the webhook catches up in order with nothing delivered twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cfa_alerts::{AlertsConfig, DeliveryStatus, Dispatcher, MemoryOutbox};

use crate::support::{
    BlackHole, Secrets, SmtpServer, TelegramStandIn, WEBHOOK_SECRET, WebhookReceiver, channels,
    email_config, eventually, oom_message, quick_policy, report,
};

/// Below the webhook's timeout: had the hanging webhook held the others up, they would have
/// arrived after it. (They take tens of milliseconds; the margin is for a loaded machine.)
const BOUND: Duration = Duration::from_millis(2000);
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(3);

#[tokio::test]
async fn a_hanging_webhook_delays_no_other_channel_and_catches_up_when_it_returns() {
    let black_hole = BlackHole::start().await;
    let telegram = TelegramStandIn::start().await;
    // Without aiosmtpd (outside CI) the test still runs, with Telegram alone beside the webhook.
    let smtp = SmtpServer::start_or_skip().await;
    let secrets = Secrets::new();
    let config = AlertsConfig {
        webhook: vec![
            secrets.webhook(&format!("http://{}/hook", black_hole.address), WEBHOOK_TIMEOUT),
        ],
        telegram: vec![secrets.telegram(&telegram.api_base(), Default::default())],
        email: smtp.iter().map(|smtp| email_config(smtp.port)).collect(),
        ..AlertsConfig::default()
    };
    let dispatcher =
        Arc::new(Dispatcher::new(channels(&config), MemoryOutbox::new(), quick_policy()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let dispatcher = Arc::clone(&dispatcher);
        async move { dispatcher.run(async { stopped.await.unwrap_or_default() }).await }
    });
    let mails = || smtp.as_ref().map_or(0, |smtp| smtp.mails().len());
    let expected_mails = |count: usize| if smtp.is_some() { count } else { 0 };

    // The open: the webhook's attempt hangs, the others arrive at once.
    let began = Instant::now();
    let opened = oom_message(false);
    dispatcher.enqueue(&opened).await.expect("outbox");
    let first = arrivals(&telegram, smtp.as_ref(), 1, began).await;

    // The resolve, while the webhook's first attempt still hangs.
    let resolved_at = Instant::now();
    let resolved = oom_message(true);
    dispatcher.enqueue(&resolved).await.expect("outbox");
    let second = arrivals(&telegram, smtp.as_ref(), 2, resolved_at).await;
    report(&format!(
        "outage: with the webhook hanging, the open reached Telegram after {:?} and e-mail after {:?}; the resolve after {:?} and {:?}",
        first.0, first.1, second.0, second.1
    ));
    assert!(began.elapsed() < WEBHOOK_TIMEOUT, "the others waited for the webhook's timeout");

    // The receiver goes away (its hanging connections reset), then comes back where it was.
    let address = black_hole.stop().await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    let receiver = WebhookReceiver::start_at(address, WEBHOOK_SECRET).await;
    let back = Instant::now();
    let caught_up = eventually("the webhook catching up", Duration::from_secs(5), || {
        Some(receiver.accepted()).filter(|accepted| accepted.len() >= 2)
    })
    .await;
    report(&format!(
        "outage: the webhook caught up (both messages) {:?} after its receiver came back",
        caught_up[1].received_at.saturating_duration_since(back)
    ));
    let statuses: Vec<&str> =
        caught_up.iter().map(|request| request.body["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["firing", "resolved"], "in order");
    assert_eq!(caught_up[0].body["message_id"], opened.message_id.as_str());
    assert_eq!(caught_up[1].body["message_id"], resolved.message_id.as_str());

    // Nothing is delivered twice, anywhere.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.accepted().len(), 2);
    assert_eq!(telegram.delivered().len(), 2);
    assert_eq!(mails(), expected_mails(2));
    let deliveries = dispatcher.outbox().deliveries();
    assert_eq!(deliveries.len(), if smtp.is_some() { 6 } else { 4 });
    assert!(deliveries.iter().all(|delivery| delivery.status == DeliveryStatus::Delivered));
    let webhook_attempts: Vec<u32> = deliveries
        .iter()
        .filter(|delivery| delivery.channel == "ops-webhook")
        .map(|delivery| delivery.attempts)
        .collect();
    assert!(
        webhook_attempts[0] >= 1,
        "the open failed before it went through: {webhook_attempts:?}"
    );
    stop.send(()).unwrap();
    running.await.unwrap();
}

/// Waits (at most [`BOUND`]) until Telegram has delivered `count` messages and, with an SMTP
/// server, `count` e-mails are stored; returns how long each took from `since`.
async fn arrivals(
    telegram: &TelegramStandIn,
    smtp: Option<&SmtpServer>,
    count: usize,
    since: Instant,
) -> (Duration, Option<Duration>) {
    let mut telegram_at = None;
    let mut email_at = None;
    loop {
        if telegram_at.is_none() && telegram.delivered().len() >= count {
            telegram_at = Some(since.elapsed());
        }
        if email_at.is_none() && smtp.is_some_and(|smtp| smtp.mails().len() >= count) {
            email_at = Some(since.elapsed());
        }
        if let Some(telegram_at) = telegram_at
            && (smtp.is_none() || email_at.is_some())
        {
            return (telegram_at, email_at);
        }
        assert!(
            since.elapsed() < BOUND,
            "message {count} not on every other channel within {BOUND:?} (Telegram after {telegram_at:?}, e-mail after {email_at:?})"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

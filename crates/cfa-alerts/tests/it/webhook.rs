//! The webhook: signed, one request per grouped message, refused signatures and bodies.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use cfa_alerts::{
    AlertMessage, AlertsConfig, AttemptOutcome, DeliveryStatus, Dispatcher, MemoryOutbox,
};
use cfa_core::incidents::{IncidentKind, Notification, NotificationKind, group_notifications};

use crate::support::{
    Secrets, WEBHOOK_SECRET, WebhookReceiver, channels, oom_message, quick_policy, stack,
};

fn webhook_dispatcher(secrets: &Secrets, url: &str) -> Dispatcher<MemoryOutbox> {
    let config = AlertsConfig {
        webhook: vec![secrets.webhook(url, Duration::from_secs(2))],
        ..AlertsConfig::default()
    };
    Dispatcher::new(channels(&config), MemoryOutbox::new(), quick_policy())
}

#[tokio::test]
async fn five_hundred_stacks_failing_at_once_arrive_as_one_signed_request_listing_them_all() {
    let receiver = WebhookReceiver::start(WEBHOOK_SECRET).await;
    let secrets = Secrets::new();
    let dispatcher = webhook_dispatcher(&secrets, &receiver.url());
    let now = SystemTime::now();
    let pass = (0..500)
        .map(|index| {
            let notification = Notification {
                incident_kind: IncidentKind::Unhealthy,
                flapping_of: None,
                notification_kind: NotificationKind::Opened,
                opened_at: now,
                at: now,
                detail: Some("coolify reports exited".to_owned()),
            };
            (stack(&format!("tenant-{index:03}"), "bot"), notification)
        })
        .collect();
    let grouped = group_notifications(pass, 20);
    assert_eq!(grouped.len(), 1, "one grouped message");
    let message = AlertMessage::from_grouped(&grouped[0]);

    let reports = dispatcher.dispatch(&message).await.expect("outbox");
    assert!(reports[0].delivered_all(), "{reports:?}");

    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1, "one request for the storm");
    assert!(receiver.refused().is_empty(), "{:?}", receiver.refused());
    let body = &accepted[0].body;
    assert_eq!(body["version"], 1);
    assert_eq!(body["kind"], "unhealthy");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["count"], 500);
    assert_eq!(body["title"], "opened: unhealthy on 500 stacks");
    assert_eq!(body["message_id"], message.message_id.as_str());
    assert_eq!(accepted[0].message_id_header, message.message_id);
    let incidents = body["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 500);
    let tenants: BTreeSet<&str> =
        incidents.iter().map(|incident| incident["tenant"].as_str().unwrap()).collect();
    assert_eq!(tenants.len(), 500, "every stack listed once");
    assert_eq!(incidents[0]["id"], "stack:tenant-000/bot#rectenant-000bot/unhealthy");
    assert_eq!(incidents[0]["status"], "firing");
    assert_eq!(incidents[0]["stack"], "bot");
    // The text names the first 20 and counts the rest.
    assert!(body["text"].as_str().unwrap().ends_with("and 480 more"));
    let delivery = &dispatcher.outbox().deliveries()[0];
    assert_eq!((delivery.status, delivery.attempts), (DeliveryStatus::Delivered, 0));
}

#[tokio::test]
async fn a_wrong_secret_is_refused_by_the_receiver_and_the_delivery_stays_pending() {
    let receiver = WebhookReceiver::start("the-receivers-other-secret").await;
    let secrets = Secrets::new();
    let dispatcher = webhook_dispatcher(&secrets, &receiver.url());

    let reports = dispatcher.dispatch(&oom_message(false)).await.expect("outbox");
    let attempt = &reports[0].attempts[0];
    match &attempt.outcome {
        AttemptOutcome::Retrying { error, .. } => {
            assert!(error.contains("answered 401"), "{error}");
            assert!(!error.contains("/hook"), "no URL path in errors: {error}");
        }
        other => panic!("expected a retry, got {other:?}"),
    }
    assert!(receiver.accepted().is_empty());
    assert_eq!(
        receiver.refused(),
        [
            "the signature does not match the body and timestamp\nhint: check that the sender and the receiver hold the same secret"
        ]
    );
    let delivery = &dispatcher.outbox().deliveries()[0];
    assert_eq!((delivery.status, delivery.attempts), (DeliveryStatus::Pending, 1));
    assert!(reports[0].paused_until.is_some(), "the lane waits for its backoff");
}

#[tokio::test]
async fn a_refused_body_is_abandoned_and_does_not_hold_up_the_next_message() {
    let receiver = WebhookReceiver::start(WEBHOOK_SECRET).await;
    receiver.script([StatusCode::UNPROCESSABLE_ENTITY]);
    let secrets = Secrets::new();
    let dispatcher = webhook_dispatcher(&secrets, &receiver.url());
    dispatcher.enqueue(&oom_message(false)).await.expect("outbox");
    dispatcher.enqueue(&oom_message(true)).await.expect("outbox");

    let reports = dispatcher.deliver_due().await;
    let outcomes: Vec<&AttemptOutcome> =
        reports[0].attempts.iter().map(|attempt| &attempt.outcome).collect();
    assert!(matches!(outcomes[0], AttemptOutcome::Abandoned { error } if error.contains("422")));
    assert_eq!(outcomes[1], &AttemptOutcome::Delivered);
    assert_eq!(receiver.accepted().len(), 1);
    assert_eq!(receiver.accepted()[0].body["status"], "resolved");
    let statuses: Vec<DeliveryStatus> =
        dispatcher.outbox().deliveries().iter().map(|delivery| delivery.status).collect();
    assert_eq!(statuses, [DeliveryStatus::Abandoned, DeliveryStatus::Delivered]);
}

//! The spool outbox across a crash: what was queued and not delivered goes out once after the
//! restart, and nothing that went out is sent again.

use std::sync::Arc;
use std::time::Duration;

use cfa_alerts::{AlertsConfig, AttemptOutcome, Dispatcher, SpoolOutbox};

use crate::support::{
    Secrets, WEBHOOK_SECRET, WebhookReceiver, channels, eventually, oom_message, quick_policy,
};

#[tokio::test]
async fn an_undelivered_notification_survives_a_crash_and_is_delivered_once() {
    let spool_dir = tempfile::tempdir().expect("spool directory");
    let secrets = Secrets::new();
    // A port nobody listens on (yet): the receiver is down before the crash.
    let address = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let config = AlertsConfig {
        webhook: vec![secrets.webhook(&format!("http://{address}/hook"), Duration::from_secs(2))],
        ..AlertsConfig::default()
    };
    let opened = oom_message(false);
    let resolved = oom_message(true);
    {
        let outbox = SpoolOutbox::open(spool_dir.path()).expect("open the spool");
        let dispatcher = Dispatcher::new(channels(&config), outbox, quick_policy());
        // The open is attempted and fails; the resolve is queued but never attempted.
        let reports = dispatcher.dispatch(&opened).await.expect("spool");
        assert!(
            matches!(reports[0].attempts[0].outcome, AttemptOutcome::Retrying { .. }),
            "{reports:?}"
        );
        dispatcher.enqueue(&resolved).await.expect("spool");
        assert_eq!(dispatcher.outbox().pending().len(), 2);
        // The crash: the dispatcher and its outbox are dropped without any shutdown.
    }

    let receiver = WebhookReceiver::start_at(address, WEBHOOK_SECRET).await;
    let outbox = SpoolOutbox::open(spool_dir.path()).expect("reopen the spool");
    let pending = outbox.pending();
    assert_eq!(pending.len(), 2, "both survived the crash");
    assert_eq!(pending[0].attempts, 1, "the failed attempt is remembered");
    let dispatcher = Arc::new(Dispatcher::new(channels(&config), outbox, quick_policy()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let dispatcher = Arc::clone(&dispatcher);
        async move { dispatcher.run(async { stopped.await.unwrap_or_default() }).await }
    });
    let accepted = eventually("both messages after the restart", Duration::from_secs(5), || {
        Some(receiver.accepted()).filter(|accepted| accepted.len() >= 2)
    })
    .await;
    let ids: Vec<&str> =
        accepted.iter().map(|request| request.body["message_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [opened.message_id.as_str(), resolved.message_id.as_str()]);

    // Enqueuing the same messages again (a monitor pass repeated after the crash) sends nothing.
    dispatcher.enqueue(&opened).await.expect("spool");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver.accepted().len(), 2, "nothing delivered twice");
    assert!(dispatcher.outbox().pending().is_empty());
    stop.send(()).unwrap();
    running.await.unwrap();
    drop(dispatcher);

    // And after another restart: nothing left to send, the settled ids still remembered.
    let outbox = SpoolOutbox::open(spool_dir.path()).expect("reopen the spool again");
    assert!(outbox.pending().is_empty());
    let dispatcher = Dispatcher::new(channels(&config), outbox, quick_policy());
    dispatcher.enqueue(&resolved).await.expect("spool");
    let reports = dispatcher.deliver_due().await;
    assert!(reports[0].attempts.is_empty(), "{reports:?}");
    assert_eq!(receiver.accepted().len(), 2);
}

//! E-mail through a real SMTP server (aiosmtpd): the open and the resolve both arrive, each
//! with its title as the subject, to every recipient.

use std::time::{Duration, Instant};

use cfa_alerts::{AlertsConfig, Dispatcher, MemoryOutbox};

use crate::support::{
    SmtpServer, channels, email_config, eventually, oom_message, quick_policy, report,
};

#[tokio::test]
async fn a_firing_and_a_resolved_email_arrive_with_their_subjects() {
    let Some(smtp) = SmtpServer::start_or_skip().await else {
        return;
    };
    let config = AlertsConfig { email: vec![email_config(smtp.port)], ..AlertsConfig::default() };
    let dispatcher = Dispatcher::new(channels(&config), MemoryOutbox::new(), quick_policy());

    let began = Instant::now();
    let opened = oom_message(false);
    let reports = dispatcher.dispatch(&opened).await.expect("outbox");
    assert!(reports[0].delivered_all(), "{reports:?}");
    let resolved = oom_message(true);
    let reports = dispatcher.dispatch(&resolved).await.expect("outbox");
    assert!(reports[0].delivered_all(), "{reports:?}");

    // The Mailbox handler stores one copy per message (both recipients in `To`).
    let mails = eventually("two e-mails in the maildir", Duration::from_secs(5), || {
        Some(smtp.mails()).filter(|mails| mails.len() >= 2)
    })
    .await;
    report(&format!(
        "email: firing and resolved stored by aiosmtpd {:?} after the first send",
        began.elapsed()
    ));
    let mut subjects: Vec<&str> = mails.iter().map(|mail| mail.subject.as_str()).collect();
    subjects.sort_unstable();
    assert_eq!(
        subjects,
        ["opened: OOM kill on stack acme/bot", "resolved: OOM kill on stack acme/bot after 2m"]
    );
    for mail in &mails {
        assert!(
            mail.to.contains("ops@cfa.test") && mail.to.contains("oncall@cfa.test"),
            "{}",
            mail.to
        );
        assert!(mail.body.contains(&mail.subject), "the text starts with the title: {}", mail.body);
    }
    let resolve_mail = mails.iter().find(|mail| mail.subject.starts_with("resolved")).unwrap();
    assert!(resolve_mail.body.contains("running again"), "{}", resolve_mail.body);
    assert!(resolve_mail.body.contains(&resolved.message_id), "{}", resolve_mail.body);
    assert_eq!(mails.len(), 2, "nothing sent twice");
}

//! The reporter against the receiver stand-in, no Docker: a signed batch is accepted, a batch
//! signed with another secret is refused (and the agent sees a refusal it will retry).

use std::time::Duration;

use cfa_host_agent::report::{ReportError, Reporter};
use cfa_host_agent::{AgentSecret, EventKind, HostEvent};

use crate::support::{Receiver, SECRET, free_address};

fn event(id: &str) -> HostEvent {
    HostEvent {
        id: id.to_owned(),
        server: "srv-delivery".to_owned(),
        container_id: "c0ffee".to_owned(),
        container_name: "agent-abc".to_owned(),
        tenant: "acme".to_owned(),
        stack: "support-bot".to_owned(),
        kind: EventKind::Oom,
        at: 1,
    }
}

#[tokio::test]
async fn signed_batches_are_accepted_and_forged_ones_refused() {
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap(), SECRET).await;
    let timeout = Duration::from_secs(5);
    let good =
        Reporter::new(&receiver.url(), "srv-delivery", AgentSecret::new(SECRET), timeout).unwrap();
    good.send(&[event("e1")], 2).await.unwrap();
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(receiver.dropped(), 2);

    let forged =
        Reporter::new(&receiver.url(), "srv-delivery", AgentSecret::new("guess"), timeout).unwrap();
    let error = forged.send(&[event("e2")], 0).await.unwrap_err();
    assert!(matches!(error, ReportError::Refused { status: 401, .. }), "{error}");
    assert!(error.to_string().contains("hint: the receiver refused the signature"), "{error}");
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(
        receiver.refusals(),
        [
            "the signature does not match the body and timestamp\nhint: check that the sender and the receiver hold the same secret"
        ]
    );
    receiver.stop().await;

    // Nobody listening: unreachable, and the message names the endpoint only.
    let down = Reporter::new(
        &format!("http://{}", free_address()),
        "srv-delivery",
        AgentSecret::new(SECRET),
        timeout,
    )
    .unwrap();
    let error = down.send(&[event("e3")], 0).await.unwrap_err();
    assert!(matches!(error, ReportError::Unreachable { .. }), "{error}");
    assert!(!error.to_string().contains(SECRET));
}

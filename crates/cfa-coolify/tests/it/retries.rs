//! Retries (429 with `Retry-After`, 5xx and dropped connections on idempotent calls only) and
//! the shared rate budget.

use std::time::Duration;

use cfa_coolify::CoolifyErrorKind;
use cfa_coolify::types::CreateProjectRequest;
use coolify_sandbox::Fault;

use crate::{client_for, fixture, fixture_with};

#[tokio::test]
async fn rate_limit_storm_is_retried_after_retry_after() {
    let fixture = fixture().await;
    fixture.sandbox.inject(Fault::RateLimitStorm {
        requests: 2,
        retry_after_seconds: 1,
        service_uuid: None,
    });
    let projects = fixture.client.list_projects().await.unwrap();
    assert!(projects.is_empty());
    assert_eq!(fixture.sandbox.stats().faulted, 2);
    // Retry-After paused the shared budget: the third attempt had to wait for it.
    assert!(fixture.client.rate_budget().waited() >= 1);
    // 429 is retried even for a POST: the throttle answers before any handler runs.
    fixture.sandbox.inject(Fault::RateLimitStorm {
        requests: 1,
        retry_after_seconds: 1,
        service_uuid: None,
    });
    let request = CreateProjectRequest { name: "after-storm".to_owned(), description: None };
    fixture.client.create_project(&request).await.unwrap();
    assert_eq!(fixture.sandbox.stats().faulted, 3);
    fixture.assert_contract();
}

#[tokio::test]
async fn server_errors_are_retried_only_when_idempotent() {
    let fixture = fixture().await;
    fixture.sandbox.inject(Fault::ServerError { requests: 2, status: 503, service_uuid: None });
    assert!(fixture.client.list_servers().await.is_ok());
    assert_eq!(fixture.sandbox.stats().faulted, 2);

    let service_uuid = fixture.service(crate::WEB_COMPOSE).await;
    fixture.sandbox.inject(Fault::ServerError {
        requests: 1,
        status: 502,
        service_uuid: Some(service_uuid.clone()),
    });
    let error = fixture.client.start_service_by_uuid(&service_uuid).await.unwrap_err();
    assert_eq!(error.kind, CoolifyErrorKind::Server { status: 502 });
    assert!(error.to_string().contains("hint: Coolify failed"));
    // Targeted: other services are untouched, and the next start goes through.
    fixture.client.start_service_by_uuid(&service_uuid).await.unwrap();
    fixture.assert_contract();
}

#[tokio::test]
async fn dropped_connections_are_retried_only_when_idempotent() {
    let fixture = fixture().await;
    fixture.sandbox.inject(Fault::DropConnection { requests: 1, service_uuid: None });
    assert!(fixture.client.list_projects().await.is_ok());
    fixture.sandbox.inject(Fault::DropConnection { requests: 1, service_uuid: None });
    let request = CreateProjectRequest { name: "dropped".to_owned(), description: None };
    let error = fixture.client.create_project(&request).await.unwrap_err();
    assert!(matches!(error.kind, CoolifyErrorKind::Transport { .. }), "{error}");
    assert!(std::error::Error::source(&error).is_some(), "the reqwest error is kept as the source");
    assert_eq!(fixture.sandbox.stats().faulted, 2);
    fixture.assert_contract();
}

#[tokio::test]
async fn timeouts_are_transport_errors() {
    let fixture = fixture().await;
    fixture.sandbox.inject(Fault::Latency { millis: 1_000, service_uuid: None });
    let client = client_for(&fixture.sandbox, fixture.sandbox.token(), |config| {
        config.timeout = Duration::from_millis(200);
        config.max_retries = 1;
    });
    let error = client.list_projects().await.unwrap_err();
    assert_eq!(
        error.kind,
        CoolifyErrorKind::Transport { detail: "the request timed out".to_owned() }
    );
}

#[tokio::test]
async fn unreachable_coolify_is_a_transport_error() {
    let fixture = fixture().await;
    let address = fixture.sandbox.address();
    drop(fixture);
    let client = cfa_coolify::CoolifyClient::new({
        let mut config = cfa_coolify::CoolifyConfig::new(
            format!("http://{address}"),
            cfa_coolify::ApiToken::new("1|x"),
        );
        config.max_retries = 1;
        config.retry_base_delay = Duration::from_millis(10);
        config
    })
    .unwrap();
    let error = client.list_servers().await.unwrap_err();
    assert!(matches!(error.kind, CoolifyErrorKind::Transport { .. }), "{error}");
    assert!(error.to_string().contains("hint: check that Coolify is reachable"));
}

/// 300 calls from 20 tasks against a sandbox that allows 100 requests a second, with a client
/// budget of the same size: nobody sees a 429, and the calls spread over the windows the budget
/// needs (10 at once, then 90 a second: about 4 windows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_budget_keeps_concurrent_work_under_the_limit() {
    let fixture = fixture_with(|config| {
        config.rate_limit = 100;
        config.rate_limit_window = Duration::from_secs(1);
        config.record_exchanges = false;
    })
    .await;
    let client = client_for(&fixture.sandbox, fixture.sandbox.token(), |config| {
        config.requests_per_minute = 100;
        config.rate_window = Duration::from_secs(1);
    });
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut failures = 0;
                for _ in 0..15 {
                    if client.list_projects().await.is_err() {
                        failures += 1;
                    }
                }
                failures
            })
        })
        .collect();
    let mut failures = 0;
    for task in tasks {
        failures += task.await.unwrap();
    }
    assert_eq!(failures, 0, "callers saw errors");
    assert_eq!(client.rate_budget().granted(), 300 + fixture.sandbox.stats().rate_limited);
    let stats = fixture.sandbox.stats();
    // Arrival jitter may push a request across a window edge; the budget keeps it rare.
    assert!(stats.rate_limited <= 3, "the server throttled {} requests", stats.rate_limited);
    assert!(
        (3..=6).contains(&stats.rate_windows_opened),
        "windows opened: {}",
        stats.rate_windows_opened
    );
}

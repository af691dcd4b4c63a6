//! The heartbeat: a ping every interval, failures logged and survived, the URL kept out of
//! errors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::any;
use cfa_alerts::Heartbeat;
use cfa_alerts::config::{HeartbeatConfig, HeartbeatMethod};

#[derive(Default)]
struct Pings {
    count: AtomicUsize,
    methods: Mutex<Vec<Method>>,
    at: Mutex<Vec<Instant>>,
}

/// Answers 500 to the first two pings, then 200.
async fn ping(State(pings): State<Arc<Pings>>, method: Method) -> StatusCode {
    pings.methods.lock().unwrap().push(method);
    pings.at.lock().unwrap().push(Instant::now());
    if pings.count.fetch_add(1, Ordering::SeqCst) < 2 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

#[tokio::test]
async fn pings_every_interval_and_keeps_going_after_failures() {
    let pings = Arc::new(Pings::default());
    let router = Router::new().route("/ping/{check}", any(ping)).with_state(Arc::clone(&pings));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let heartbeat = Heartbeat::from_config(&HeartbeatConfig {
        url: format!("http://{address}/ping/check-uuid-secret"),
        interval: Duration::from_millis(100),
        timeout: None,
        method: HeartbeatMethod::Post,
    })
    .unwrap();
    let error = heartbeat.beat().await.unwrap_err().to_string();
    assert_eq!(error, format!("heartbeat to http://{address} answered 500 Internal Server Error"));

    heartbeat.run(tokio::time::sleep(Duration::from_millis(550))).await;
    let count = pings.count.load(Ordering::SeqCst);
    assert!((6..=8).contains(&count), "one at once and one per 100 ms, whatever failed: {count}");
    assert!(pings.methods.lock().unwrap().iter().all(|method| method == Method::POST));
    let at = pings.at.lock().unwrap().clone();
    let gaps: Vec<Duration> = at.windows(2).skip(1).map(|pair| pair[1] - pair[0]).collect();
    assert!(gaps.iter().all(|gap| *gap >= Duration::from_millis(80)), "{gaps:?}");
}

#[tokio::test]
async fn an_unreachable_heartbeat_fails_without_showing_its_path() {
    let address = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let heartbeat = Heartbeat::from_config(&HeartbeatConfig {
        url: format!("http://{address}/ping/check-uuid-secret"),
        interval: Duration::from_secs(60),
        timeout: Some(Duration::from_secs(1)),
        method: HeartbeatMethod::Get,
    })
    .unwrap();
    let error = heartbeat.beat().await.unwrap_err();
    let chain = cfa_alerts::channel::error_chain(&error);
    assert!(chain.starts_with(&format!("heartbeat to http://{address} failed")), "{chain}");
    assert!(!chain.contains("check-uuid-secret"), "{chain}");
    // A run against it returns at shutdown, not with an error.
    heartbeat.run(tokio::time::sleep(Duration::from_millis(50))).await;
}

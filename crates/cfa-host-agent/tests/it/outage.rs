//! Events while the receiver is down, and while the agent itself is down, arrive once the
//! receiver is back: each exactly once, across three agent runs on one spool.

use std::path::Path;
use std::time::Duration;

use cfa_host_agent::agent::{self, AgentSettings, RunSummary};
use cfa_host_agent::spool::Spool;
use cfa_host_agent::{AgentSecret, EventKind};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support::{
    Containers, Receiver, SECRET, Spec, TestImage, assert_no_duplicates, docker_host,
    engine_or_skip, eventually, free_address, kinds,
};

/// One `agent::run` as a task, stopped on demand.
struct RunningAgent {
    stop: oneshot::Sender<()>,
    task: JoinHandle<RunSummary>,
}

impl RunningAgent {
    fn start(receiver_url: &str, spool_dir: &Path) -> RunningAgent {
        let mut settings = AgentSettings::new(
            "srv-outage-test",
            receiver_url,
            AgentSecret::new(SECRET),
            spool_dir,
        );
        settings.docker_host = docker_host();
        settings.initial_backoff = Duration::from_millis(100);
        settings.max_backoff = Duration::from_millis(400);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            agent::run(settings, async {
                let _ = stopped.await;
            })
            .await
            .expect("the agent runs")
        });
        RunningAgent { stop, task }
    }

    async fn stop(self) -> RunSummary {
        let _ = self.stop.send(());
        self.task.await.expect("the agent task ends")
    }
}

fn pending_kinds(spool_dir: &Path, container_id: &str) -> Vec<EventKind> {
    Spool::inspect(spool_dir)
        .map(|snapshot| {
            snapshot
                .pending
                .into_iter()
                .filter(|event| event.container_id == container_id)
                .map(|event| event.kind)
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the agent on `spool_dir` has spooled `kind` for `container_id`.
async fn spooled(spool_dir: &Path, container_id: &str, kind: EventKind) {
    eventually(
        &format!("{kind:?} of {container_id} in the spool"),
        Duration::from_secs(10),
        || pending_kinds(spool_dir, container_id).contains(&kind).then_some(()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_during_outages_arrive_once() {
    let Some(docker) = engine_or_skip().await else {
        return;
    };
    let image = TestImage::build("outage");
    let mut containers = Containers::new(&docker, &image);
    let work = tempfile::tempdir().unwrap();
    let spool_dir = work.path().join("spool");
    // The receiver's address, with nothing listening yet: it is down.
    let address = free_address();
    let url = format!("http://{address}");

    // Agent 1, receiver down. A fresh spool follows from the moment the agent connects, so
    // first make sure it does: a container's exit shows up in the spool.
    let first = RunningAgent::start(&url, &spool_dir);
    let mut sentinel = None;
    for attempt in 0..10 {
        let id = containers
            .run(Spec {
                name: &format!("sentinel-{attempt}"),
                stack: "sentinel",
                command: &["/bin/busybox", "true"],
                memory_bytes: None,
                healthcheck: false,
            })
            .await;
        containers.wait_exit(&id).await;
        // Both its events: an agent that connected between the two would have only the exit.
        let seen = tokio::time::timeout(
            Duration::from_secs(1),
            spooled(&spool_dir, &id, EventKind::Died { exit_code: 0 }),
        )
        .await;
        if seen.is_ok() && pending_kinds(&spool_dir, &id).contains(&EventKind::Started) {
            sentinel = Some(id);
            break;
        }
    }
    let sentinel = sentinel.expect("agent 1 never followed Docker's events");

    // While the receiver is down: a healthy container that then exits 3.
    let healthy = containers
        .run(Spec {
            name: "healthy",
            stack: "healthy-then-exit",
            command: &["/bin/busybox", "sh", "-c", "sleep 2; exit 3"],
            memory_bytes: None,
            healthcheck: true,
        })
        .await;
    assert_eq!(containers.wait_exit(&healthy).await, 3);
    spooled(&spool_dir, &healthy, EventKind::Died { exit_code: 3 }).await;
    let summary = first.stop().await;
    assert_eq!(summary.delivered, 0, "{summary:?}");

    // While the agent is down too: Docker keeps the events, the next agent asks from its cursor.
    let unwatched = containers
        .run(Spec {
            name: "unwatched",
            stack: "while-the-agent-was-down",
            command: &["/bin/busybox", "sh", "-c", "exit 4"],
            memory_bytes: None,
            healthcheck: false,
        })
        .await;
    assert_eq!(containers.wait_exit(&unwatched).await, 4);

    // Agent 2 resumes, still without a receiver, then the receiver comes up.
    let second = RunningAgent::start(&url, &spool_dir);
    spooled(&spool_dir, &unwatched, EventKind::Died { exit_code: 4 }).await;
    let receiver = Receiver::start(address, SECRET).await;
    let expected = [
        (&sentinel, vec![EventKind::Started, EventKind::Died { exit_code: 0 }]),
        (
            &healthy,
            vec![
                EventKind::Started,
                EventKind::Health { healthy: true },
                EventKind::Died { exit_code: 3 },
            ],
        ),
        (&unwatched, vec![EventKind::Started, EventKind::Died { exit_code: 4 }]),
    ];
    eventually("every event at the receiver", Duration::from_secs(10), || {
        expected.iter().all(|(id, kinds)| receiver.of(id).len() >= kinds.len()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let summary = second.stop().await;
    for (id, expected) in &expected {
        assert_eq!(&kinds(&receiver.of(id)), expected, "{id}");
    }
    assert_no_duplicates(&receiver.received());
    assert!(receiver.refusals().is_empty(), "{:?}", receiver.refusals());
    // Agent 2 asked Docker from before agent 1's events: it read them again and dropped them.
    assert!(summary.duplicates >= 3, "{summary:?}");
    let delivered_before_restart = receiver.received().len();
    let snapshot = Spool::inspect(&spool_dir).unwrap();
    assert!(snapshot.cursor.acknowledged_through.is_some());

    // Agent 3, receiver up: Docker replays from the cursor, nothing acknowledged goes out again.
    let third = RunningAgent::start(&receiver.url(), &spool_dir);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let summary = third.stop().await;
    for (id, expected) in &expected {
        assert_eq!(&kinds(&receiver.of(id)), expected, "{id} after agent 3");
    }
    assert_no_duplicates(&receiver.received());
    report_summary(delivered_before_restart, &receiver, summary);
    receiver.stop().await;
}

fn report_summary(before: usize, receiver: &Receiver, summary: RunSummary) {
    crate::support::report(&format!(
        "cfa-host-agent outage: {before} events delivered once after the outage; agent 3 re-read {} from Docker and sent {} (other labelled containers on this engine only)",
        summary.duplicates,
        receiver.received().len() - before,
    ));
}

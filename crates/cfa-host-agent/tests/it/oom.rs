//! The proof: a container over its memory limit is reported as an OOM kill. The built
//! `cfa-host-agent` binary follows the real engine; a labelled busybox container under a 16 MB
//! limit (no swap) allocates 64 MB; the receiver gets exactly one signed `oom` and one `died`
//! with 137 for it, and the test prints the time from Docker's `oom` event to the receiver.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

use cfa_host_agent::EventKind;

use crate::support::{
    Containers, Receiver, SECRET, Spec, TestImage, assert_no_duplicates, docker_host,
    engine_or_skip, eventually, kinds, report, secret_file,
};

/// The agent process; killed if the test fails before it stops it.
struct AgentProcess(Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_kill_reaches_the_receiver_once_and_signed() {
    let Some(docker) = engine_or_skip().await else {
        return;
    };
    let image = TestImage::build("oom");
    let mut containers = Containers::new(&docker, &image);
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap(), SECRET).await;
    let work = tempfile::tempdir().unwrap();
    let secret_path = secret_file(work.path());
    let log_path = work.path().join("agent.log");
    let spool_dir = work.path().join("spool");
    let server = "srv-oom-test";

    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_cfa-host-agent"))
        .args(["--server-uuid", server, "--receiver-url", &receiver.url()])
        .arg("--secret-file")
        .arg(&secret_path)
        .arg("--spool-dir")
        .arg(&spool_dir)
        .args(["--docker-host", &docker_host()])
        .env("CFA_AGENT_LOG", "debug,hyper=info,bollard=info,reqwest=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start cfa-host-agent");
    let mut agent = AgentProcess(child);
    let agent_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    // A fresh spool follows from the moment of connecting: start the container after that.
    eventually("the agent to follow Docker's events", Duration::from_secs(10), || {
        agent_log().contains("following Docker's events").then_some(())
    })
    .await;

    // `dd bs=64M` allocates its 64 MB block at once; 16 MB with no swap cannot hold it.
    let id = containers
        .run(Spec {
            name: "oom",
            stack: "memory-hog",
            command: &["/bin/busybox", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
            memory_bytes: Some(16 * 1024 * 1024),
            healthcheck: false,
        })
        .await;
    assert_eq!(containers.wait_exit(&id).await, 137, "the container was not killed");
    eventually("the receiver to get the container's exit", Duration::from_secs(10), || {
        receiver
            .of(&id)
            .iter()
            .any(|received| matches!(received.event.kind, EventKind::Died { .. }))
            .then_some(())
    })
    .await;
    // Time for a duplicate to show up, if the agent were to send one.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let received = receiver.of(&id);
    assert_eq!(
        kinds(&received),
        [EventKind::Started, EventKind::Oom, EventKind::Died { exit_code: 137 }],
        "{received:#?}\n{}",
        agent_log()
    );
    assert_no_duplicates(&receiver.received());
    assert!(receiver.refusals().is_empty(), "{:?}", receiver.refusals());
    let oom = &received[1];
    assert_eq!(oom.event.server, server);
    assert_eq!(oom.event.stack, "memory-hog");
    assert_eq!(oom.event.tenant, format!("test-{}", std::process::id()));
    assert_eq!(oom.event.container_name, format!("cfa-host-agent-test-{}-oom", std::process::id()));
    let arrived = oom.received_at.duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64;
    let latency = Duration::from_nanos(u64::try_from(arrived - oom.event.at).unwrap());
    report(&format!(
        "cfa-host-agent: Docker's oom event to the receiver in {:.1} ms (target: under 5 s)",
        latency.as_secs_f64() * 1000.0
    ));
    assert!(latency < Duration::from_secs(5), "{latency:?}");

    // SIGTERM: a clean stop, nothing pending, and the secret in no log line.
    let pid = agent.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status =
        eventually("the agent to stop", Duration::from_secs(10), || agent.0.try_wait().unwrap())
            .await;
    let log = agent_log();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("cfa-host-agent stopped"), "{log}");
    assert!(!log.contains(SECRET), "the secret is in the log:\n{log}");
    receiver.stop().await;
}

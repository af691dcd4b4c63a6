//! Native processes under watch: each program starts in its own process group (so it and
//! every child it spawns are ended together, also on failure), with its peak memory sampled
//! over the group and every descendant (as its container's cgroup would count them) and its
//! output kept in a log file.
//!
//! Memory is sampled two ways: the sum of RSS (shared pages such as the Node or Python binary
//! counted once per process) and the sum of PSS (each shared page split between its sharers,
//! so the group's total counts it once, as a container's memory cgroup does). The limit check
//! uses PSS; both are reported.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::Failure;

/// How often RSS is sampled.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(200);
/// How long a program has to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What to start.
#[derive(Debug, Clone)]
pub struct Launch {
    pub label: String,
    pub program: PathBuf,
    pub arguments: Vec<String>,
    /// The whole environment: nothing is inherited but what is listed here.
    pub environment: BTreeMap<String, String>,
    pub working_dir: PathBuf,
    pub log_file: PathBuf,
}

/// A started program. Dropping it ends its whole process group.
#[derive(Debug)]
pub struct Running {
    pub label: String,
    pub log_file: PathBuf,
    child: Child,
    started: Instant,
    peak_rss_kb: Arc<AtomicU64>,
    peak_pss_kb: Arc<AtomicU64>,
    sampling: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn start(launch: Launch) -> Result<Self, Failure> {
        let log = std::fs::File::create(&launch.log_file).map_err(|error| {
            Failure::new(format!("cannot create `{}`: {error}", launch.log_file.display()))
        })?;
        let log_for_stderr = log.try_clone().map_err(|error| Failure::new(error.to_string()))?;
        let child = Command::new(&launch.program)
            .args(&launch.arguments)
            .env_clear()
            .envs(&launch.environment)
            .current_dir(&launch.working_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr)
            .process_group(0)
            .spawn()
            .map_err(|error| {
                Failure::new(format!(
                    "cannot start {} (`{}`): {error}\nhint: run scripts/conformance, which installs it",
                    launch.label,
                    launch.program.display()
                ))
            })?;
        let process_group = child.id();
        let peak_rss_kb = Arc::new(AtomicU64::new(0));
        let peak_pss_kb = Arc::new(AtomicU64::new(0));
        let sampling = Arc::new(AtomicBool::new(true));
        let sampler = {
            let peak_rss = Arc::clone(&peak_rss_kb);
            let peak_pss = Arc::clone(&peak_pss_kb);
            let sampling = Arc::clone(&sampling);
            std::thread::spawn(move || {
                while sampling.load(Ordering::Relaxed) {
                    let sample = group_memory_kb(process_group);
                    peak_rss.fetch_max(sample.rss, Ordering::Relaxed);
                    peak_pss.fetch_max(sample.pss, Ordering::Relaxed);
                    std::thread::sleep(SAMPLE_INTERVAL);
                }
            })
        };
        Ok(Self {
            label: launch.label,
            log_file: launch.log_file,
            child,
            started: Instant::now(),
            peak_rss_kb,
            peak_pss_kb,
            sampling,
            sampler: Some(sampler),
        })
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The highest summed RSS of the whole process group seen so far, in MB.
    pub fn peak_rss_mb(&self) -> u64 {
        self.peak_rss_kb.load(Ordering::Relaxed).div_ceil(1024)
    }

    /// The highest summed PSS of the whole process group seen so far, in MB.
    pub fn peak_pss_mb(&self) -> u64 {
        self.peak_pss_kb.load(Ordering::Relaxed).div_ceil(1024)
    }

    /// Fails when the program has exited.
    pub fn check_alive(&mut self) -> Result<(), Failure> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Failure::new(format!(
                "{} exited with {status}; its last output:\n{}",
                self.label,
                tail(&self.log_file, 40)
            ))),
            Err(error) => Err(Failure::new(format!("cannot watch {}: {error}", self.label))),
        }
    }

    /// Ends the process group: SIGTERM, then SIGKILL after a grace period.
    pub fn stop(&mut self) {
        let group = format!("-{}", self.child.id());
        // Descendants that left the group are found while their parent still lives.
        let escaped: Vec<String> = program_processes(self.child.id())
            .into_iter()
            .filter(|pid| *pid != self.child.id())
            .map(|pid| pid.to_string())
            .collect();
        let _ = Command::new("kill").args(["-TERM", "--", &group]).stderr(Stdio::null()).status();
        if !escaped.is_empty() {
            let _ = Command::new("kill").arg("-TERM").args(&escaped).stderr(Stdio::null()).status();
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_)))
                && group_memory_kb(self.child.id()).rss == 0
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        if !escaped.is_empty() {
            let _ = Command::new("kill").arg("-KILL").args(&escaped).stderr(Stdio::null()).status();
        }
        let _ = self.child.wait();
        self.sampling.store(false, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.sampler.is_some() {
            self.stop();
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct MemorySample {
    rss: u64,
    pss: u64,
}

fn field_kb(text: &str, field: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
}

/// `(pid, parent pid, process group)` of every live process.
fn process_table() -> Vec<(u32, u32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut table = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Fields after the `(comm)`: state, ppid, pgrp, ...
        let Some(after_comm) = stat.rsplit_once(')').map(|(_, rest)| rest) else { continue };
        let mut fields = after_comm.split_whitespace().skip(1);
        let parent = fields.next().and_then(|field| field.parse::<u32>().ok());
        let group = fields.next().and_then(|field| field.parse::<u32>().ok());
        if let (Some(parent), Some(group)) = (parent, group) {
            table.push((pid, parent, group));
        }
    }
    table
}

/// Every live process of the program started as `root` (its process group is `root`): the
/// group's members and their descendants, including those that left the group with
/// `setsid` (OpenClaw's spawn broker does), as a container's cgroup would hold them.
fn program_processes(root: u32) -> Vec<u32> {
    let table = process_table();
    let mut members: Vec<u32> =
        table.iter().filter(|(_, _, group)| *group == root).map(|(pid, _, _)| *pid).collect();
    let mut index = 0;
    while index < members.len() {
        let parent = members[index];
        for (pid, _, _) in table.iter().filter(|(_, ppid, _)| *ppid == parent) {
            if !members.contains(pid) {
                members.push(*pid);
            }
        }
        index += 1;
    }
    members
}

/// The summed RSS and PSS (kB) of every live process of the program started as `root`.
fn group_memory_kb(root: u32) -> MemorySample {
    let mut total = MemorySample::default();
    for pid in program_processes(root) {
        let Ok(rollup) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
            continue;
        };
        total.rss += field_kb(&rollup, "Rss:");
        total.pss += field_kb(&rollup, "Pss:");
    }
    total
}

/// The last `lines` lines of a log file, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Polls `urls` until each answers 200, within `timeout`; fails early when the program exits.
pub async fn wait_healthy(
    running: &mut Running,
    client: &reqwest::Client,
    urls: &[String],
    timeout: Duration,
) -> Result<Duration, Failure> {
    let deadline = Instant::now() + timeout;
    for url in urls {
        loop {
            running.check_alive()?;
            let status = client
                .get(url)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .ok()
                .map(|response| response.status().as_u16());
            if status == Some(200) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Failure::new(format!(
                    "{} was not healthy at {url} within {}s (last answer: {status:?}); its last output:\n{}",
                    running.label,
                    timeout.as_secs(),
                    tail(&running.log_file, 40)
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(running.elapsed())
}

/// A free loopback port (bound and released; the program binds it right after).
pub fn free_port() -> Result<u16, Failure> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| Failure::new(format!("cannot find a free loopback port: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_group_is_sampled_and_ended_with_its_children() {
        let work = tempfile::tempdir().expect("temp dir");
        let mut running = Running::start(Launch {
            label: "sleeper".to_owned(),
            program: PathBuf::from("/bin/sh"),
            // One child stays in the group, one leaves it with setsid (as OpenClaw's does).
            arguments: vec!["-c".to_owned(), "sleep 30 & setsid sleep 31 & sleep 30".to_owned()],
            environment: BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())]),
            working_dir: work.path().to_path_buf(),
            log_file: work.path().join("log"),
        })
        .expect("starts");
        let group = running.child.id();
        std::thread::sleep(Duration::from_millis(600));
        running.check_alive().expect("still running");
        assert!(running.peak_rss_mb() > 0, "RSS was sampled");
        assert!(running.peak_pss_mb() > 0, "PSS was sampled");
        assert!(running.peak_pss_mb() <= running.peak_rss_mb());
        let processes = program_processes(group);
        assert_eq!(processes.len(), 4, "sh, two sleeps and the setsid one: {processes:?}");
        let escaped: Vec<u32> = process_table()
            .into_iter()
            .filter(|(pid, _, pgrp)| processes.contains(pid) && *pgrp != group)
            .map(|(pid, _, _)| pid)
            .collect();
        assert_eq!(escaped.len(), 1, "the setsid child is counted though outside the group");
        running.stop();
        assert_eq!(group_memory_kb(group).rss, 0, "no process of the group is left");
        // Ended: gone, or a zombie waiting for whoever inherited it.
        let state =
            std::fs::read_to_string(format!("/proc/{}/stat", escaped[0])).ok().and_then(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned))
            });
        assert!(
            matches!(state.as_deref(), None | Some("Z")),
            "the child that left the group was ended too: {state:?}"
        );
    }
}

//! The agent's loop: one task follows Docker's events into the spool, one delivers the spool to
//! the receiver. [`run`] is the whole agent; the binary only parses flags and calls it.
//!
//! Design notes:
//! - An event counts as taken once it is synced into the spool; only then does the watcher move
//!   its resume point past it. A failed spool write ends the stream, and the reconnect asks
//!   Docker again from the last event that was taken, so the event is read again, not lost.
//! - The deliverer sends the oldest pending events as soon as one arrives (after
//!   [`LINGER`], so an `oom` and the `die` Docker sends a few milliseconds later travel in one
//!   request), and after a failure waits out its backoff before it tries again, however many new
//!   events arrive meanwhile: a dead receiver is not hammered.
//! - Spool operations are short synchronous file writes under a mutex: an fsync per Docker event
//!   is cheap at the rate containers die and start.
//! - Stopping ([`run`]'s `shutdown`) cancels both tasks at an await point; the spool is never
//!   half-written by it, and a request cut off after the receiver took it is simply sent again
//!   (the receiver drops duplicates by id).

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use tokio::sync::Notify;

use crate::AgentSecret;
use crate::backoff::Backoff;
use crate::docker;
use crate::report::{Reporter, ReporterError};
use crate::spool::{Appended, Spool, SpoolError};

/// How long the deliverer waits after waking before it takes a batch.
pub const LINGER: Duration = Duration::from_millis(20);

/// Everything [`run`] needs. [`AgentSettings::new`] fills in the defaults.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// The Coolify server's uuid; names the server in every event and request.
    pub server_uuid: String,
    /// The base URL of `cfa serve`.
    pub receiver_url: String,
    pub secret: AgentSecret,
    pub spool_dir: PathBuf,
    /// `unix:///var/run/docker.sock` by default.
    pub docker_host: String,
    /// At most this many unacknowledged events are kept; beyond, the oldest are dropped.
    pub max_spool_events: usize,
    /// At most this many events per request.
    pub max_batch_events: usize,
    /// The first wait after a failed delivery; it doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// The bound on one request to the receiver.
    pub request_timeout: Duration,
    /// For tests: return once nothing is pending and no event came for this long.
    pub once_until_idle: Option<Duration>,
}

/// Defaults of [`AgentSettings::new`].
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";
pub const DEFAULT_MAX_SPOOL_EVENTS: usize = 10_000;
pub const DEFAULT_MAX_BATCH_EVENTS: usize = 500;
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(500);
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl AgentSettings {
    pub fn new(
        server_uuid: impl Into<String>,
        receiver_url: impl Into<String>,
        secret: AgentSecret,
        spool_dir: impl Into<PathBuf>,
    ) -> Self {
        AgentSettings {
            server_uuid: server_uuid.into(),
            receiver_url: receiver_url.into(),
            secret,
            spool_dir: spool_dir.into(),
            docker_host: DEFAULT_DOCKER_HOST.to_owned(),
            max_spool_events: DEFAULT_MAX_SPOOL_EVENTS,
            max_batch_events: DEFAULT_MAX_BATCH_EVENTS,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            once_until_idle: None,
        }
    }
}

/// What one [`run`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Events written to the spool.
    pub spooled: u64,
    /// Events refused as already pending or acknowledged (Docker's replays).
    pub duplicates: u64,
    /// Events acknowledged by the receiver.
    pub delivered: u64,
    /// Events dropped because the spool was full.
    pub dropped: u64,
}

/// Why the agent cannot run at all (everything after start is retried, not returned).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Settings(#[from] ReporterError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

struct Shared {
    spool: Mutex<Spool>,
    wake: Notify,
    last_activity: Mutex<Instant>,
    spooled: AtomicU64,
    duplicates: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
}

impl Shared {
    fn spool(&self) -> std::sync::MutexGuard<'_, Spool> {
        // A panic while holding the lock leaves the spool as consistent as its files: go on.
        self.spool.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn touch(&self) {
        *self.last_activity.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_activity.lock().unwrap_or_else(std::sync::PoisonError::into_inner).elapsed()
    }

    fn summary(&self) -> RunSummary {
        RunSummary {
            spooled: self.spooled.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Runs the agent until `shutdown` completes (or, with `once_until_idle`, until it is idle).
/// Fails only when it cannot start (bad settings, a spool it cannot open or that another agent
/// holds); Docker or the receiver being away is logged and retried.
pub async fn run(
    settings: AgentSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, AgentError> {
    let reporter = Reporter::new(
        &settings.receiver_url,
        &settings.server_uuid,
        settings.secret.clone(),
        settings.request_timeout,
    )?;
    let spool = Spool::open(&settings.spool_dir, settings.max_spool_events)?;
    if spool.unreadable_lines() > 0 {
        tracing::warn!(
            lines = spool.unreadable_lines(),
            "spool lines could not be read (cut short by a crash?); those events are lost"
        );
    }
    tracing::info!(
        server = %settings.server_uuid,
        receiver = %reporter.endpoint(),
        spool = %settings.spool_dir.display(),
        pending = spool.pending_len(),
        resume_since = ?spool.resume_since().map(docker::docker_timestamp),
        "cfa-host-agent starting"
    );
    let shared = Arc::new(Shared {
        spool: Mutex::new(spool),
        wake: Notify::new(),
        last_activity: Mutex::new(Instant::now()),
        spooled: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
    });
    // Something may be pending from the last run: deliver it at once.
    shared.wake.notify_one();
    tokio::select! {
        () = shutdown => tracing::info!("stopping"),
        () = watch(&shared, &settings) => {}
        () = deliver(&shared, &reporter, &settings) => tracing::info!("idle: stopping"),
    }
    let summary = shared.summary();
    tracing::info!(
        spooled = summary.spooled,
        duplicates = summary.duplicates,
        delivered = summary.delivered,
        dropped = summary.dropped,
        pending = shared.spool().pending_len(),
        "cfa-host-agent stopped"
    );
    Ok(summary)
}

/// Follows Docker's events into the spool, forever: reconnects after any failure.
async fn watch(shared: &Shared, settings: &AgentSettings) {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(15));
    let mut since = shared.spool().resume_since();
    loop {
        let docker = match docker::connect(&settings.docker_host).await {
            Ok(docker) => docker,
            Err(error) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %chain(&error), retry_in = ?delay, "Docker is not reachable");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        // Without a resume point, events from now on; and if the stream breaks before the first
        // one, the reconnect still asks from here.
        let from = since.unwrap_or_else(now_nanos);
        tracing::info!(since = %docker::docker_timestamp(from), "following Docker's events");
        let mut stream = docker::events(&docker, Some(from));
        since = Some(from);
        while let Some(item) = stream.next().await {
            let message = match item {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(error = %chain(&error), "Docker's event stream failed");
                    break;
                }
            };
            backoff.reset();
            let Some(event) = docker::host_event(&settings.server_uuid, &message) else {
                continue;
            };
            let appended = shared.spool().append(&event);
            match appended {
                Ok(Appended::Added { dropped }) => {
                    shared.spooled.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        kind = event.kind.name(),
                        container = %event.container_name,
                        tenant = %event.tenant,
                        stack = %event.stack,
                        "container event"
                    );
                    if dropped > 0 {
                        shared.dropped.fetch_add(dropped, Ordering::Relaxed);
                        let unreported = shared.spool().cursor().dropped_unreported;
                        tracing::warn!(
                            dropped,
                            unreported,
                            max = settings.max_spool_events,
                            "the spool is full: dropped its oldest events"
                        );
                    }
                    shared.touch();
                    shared.wake.notify_one();
                }
                Ok(Appended::Duplicate) => {
                    shared.duplicates.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(id = %event.id, "already spooled or delivered");
                }
                Err(error) => {
                    // Not taken: reconnect and read it again from `since`.
                    tracing::error!(error = %chain(&error), "cannot write the spool");
                    break;
                }
            }
            since = Some(since.map_or(event.at, |since| since.max(event.at)));
        }
        let delay = backoff.next_delay();
        tracing::info!(retry_in = ?delay, "Docker's event stream ended; reconnecting");
        tokio::time::sleep(delay).await;
    }
}

/// Delivers the spool to the receiver; returns only when idle with `once_until_idle`.
async fn deliver(shared: &Shared, reporter: &Reporter, settings: &AgentSettings) {
    let mut backoff = Backoff::new(settings.initial_backoff, settings.max_backoff);
    loop {
        if !shared.spool().has_news() {
            match settings.once_until_idle {
                None => shared.wake.notified().await,
                Some(idle) => {
                    let quiet = shared.idle_for();
                    if quiet >= idle {
                        return;
                    }
                    let _ = tokio::time::timeout(idle - quiet, shared.wake.notified()).await;
                }
            }
            continue;
        }
        tokio::time::sleep(LINGER).await;
        let outgoing = shared.spool().outgoing(settings.max_batch_events);
        match reporter.send(&outgoing.events, outgoing.dropped).await {
            Ok(()) => {
                backoff.reset();
                let acknowledged = shared.spool().acknowledge(&outgoing);
                if let Err(error) = acknowledged {
                    // The receiver has them; they will be sent again and dropped there as duplicates.
                    tracing::error!(error = %chain(&error), "cannot record the acknowledgement");
                }
                shared.delivered.fetch_add(outgoing.events.len() as u64, Ordering::Relaxed);
                shared.touch();
                tracing::info!(
                    events = outgoing.events.len(),
                    dropped = outgoing.dropped,
                    pending = shared.spool().pending_len(),
                    "delivered"
                );
            }
            Err(error) => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    error = %chain(&error),
                    pending = shared.spool().pending_len(),
                    retry_in = ?delay,
                    "delivery failed"
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |now| i64::try_from(now.as_nanos()).unwrap_or(i64::MAX))
}

/// An error and its sources, `: `-separated, for one log field.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.replace("\nhint: ", "; hint: ")
}

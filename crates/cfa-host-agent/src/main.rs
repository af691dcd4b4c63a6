//! The `cfa-host-agent` binary: flags (or `CFA_AGENT_*` variables), logging, then
//! [`cfa_host_agent::agent::run`] until SIGINT or SIGTERM.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use cfa_host_agent::AgentSecret;
use cfa_host_agent::agent::{self, AgentSettings};
use clap::Parser;

/// Follows Docker's events for the platform's containers on this server (OOM kills, exits,
/// restarts, starts, health changes) and reports them, signed, to `cfa serve`. Only reads Docker.
#[derive(Debug, Parser)]
#[command(name = "cfa-host-agent", version)]
struct AgentArgs {
    /// This Coolify server's uuid.
    #[arg(long, env = "CFA_AGENT_SERVER_UUID")]
    server_uuid: String,
    /// The base URL of `cfa serve`; events go to `<URL>/api/v1/agent/events`.
    #[arg(long, env = "CFA_AGENT_RECEIVER_URL")]
    receiver_url: String,
    /// A file holding the secret shared with the receiver (mode 600; trailing whitespace is
    /// not part of it). Never pass the secret itself.
    #[arg(long, env = "CFA_AGENT_SECRET_FILE")]
    secret_file: PathBuf,
    /// Where events wait for the receiver (created if missing; one agent per directory).
    #[arg(long, env = "CFA_AGENT_SPOOL_DIR")]
    spool_dir: PathBuf,
    /// The Docker engine to follow.
    #[arg(long, env = "DOCKER_HOST", default_value = agent::DEFAULT_DOCKER_HOST)]
    docker_host: String,
    /// At most this many unacknowledged events are kept (the oldest are dropped beyond).
    /// At least 256: Docker replays up to its last 256 events after a restart, and the spool's
    /// dedup relies on holding that many.
    #[arg(long, env = "CFA_AGENT_MAX_SPOOL_EVENTS", default_value_t = agent::DEFAULT_MAX_SPOOL_EVENTS as u64,
          value_parser = clap::value_parser!(u64).range(256..=10_000_000))]
    max_spool_events: u64,
    /// The longest wait between two delivery attempts while the receiver is away.
    #[arg(long, env = "CFA_AGENT_MAX_BACKOFF_SECONDS", default_value_t = agent::DEFAULT_MAX_BACKOFF.as_secs())]
    max_backoff_seconds: u64,
    /// For tests: exit once nothing is pending and no event came for this many seconds.
    #[arg(long, value_name = "SECONDS")]
    once_until_idle: Option<u64>,
    /// Log lines as JSON (for a log collector) instead of text.
    #[arg(long, env = "CFA_AGENT_LOG_JSON")]
    log_json: bool,
}

fn main() -> ExitCode {
    let args = AgentArgs::parse();
    init_logging(args.log_json);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "cfa-host-agent: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: AgentArgs) -> anyhow::Result<()> {
    let secret = AgentSecret::from_file(&args.secret_file)?;
    let mut settings =
        AgentSettings::new(args.server_uuid, args.receiver_url, secret, args.spool_dir);
    settings.docker_host = args.docker_host;
    settings.max_spool_events = usize::try_from(args.max_spool_events)
        .context("--max-spool-events does not fit this machine")?;
    settings.max_backoff = Duration::from_secs(args.max_backoff_seconds.max(1));
    settings.once_until_idle = args.once_until_idle.map(Duration::from_secs);
    // One thread: the agent waits on two sockets and writes a few lines; it should stay small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        agent::run(settings, shutdown_signal()).await?;
        Ok(())
    })
}

/// SIGINT or SIGTERM (what systemd and `docker stop` send).
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CFA_AGENT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

//! The `coolify-sandbox` binary: starts the sandbox and prints `listening on http://ADDR`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use coolify_sandbox::{
    Ability, Fault, RuntimeKind, Sandbox, SandboxConfig, SandboxServerConfig, SandboxToken,
};

/// A Coolify-4.3-compatible API server for tests and the local demo.
#[derive(Debug, Parser)]
#[command(name = "coolify-sandbox", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// The root API token clients must send (`Authorization: Bearer TOKEN`).
    #[arg(long, env = "COOLIFY_SANDBOX_TOKEN")]
    token: String,
    /// How long a start takes before containers run (e.g. `2s`, `500ms`).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    deploy_delay: Duration,
    /// How long containers with a healthcheck stay `running:starting` after the deploy.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    healthcheck_delay: Duration,
    /// How long a deleted service stays visible.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    delete_delay: Duration,
    /// How often the status job (`GetContainersStatus`) stores container statuses, e.g. `60s`
    /// (Coolify's ServerManagerJob). Default: 60s with `--runtime docker`, 0s (written when read)
    /// with the simulated runtime.
    #[arg(long, value_parser = humantime::parse_duration)]
    status_interval: Option<Duration>,
    /// What runs the containers: `simulated` (no containers) or `docker` (DOCKER_HOST).
    #[arg(long, default_value = "simulated", value_parser = ["simulated", "docker"])]
    runtime: String,
    /// Docker runtime: the services' work directories.
    #[arg(long)]
    docker_work_dir: Option<PathBuf>,
    /// Docker runtime: where the front (Traefik's stand-in) listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    front_listen: SocketAddr,
    /// Persist the state as JSON in this file (loaded at start when present).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Requests per rate window (Coolify's API_RATE_LIMIT).
    #[arg(long, default_value_t = 200)]
    rate_limit: u32,
    /// The server's IP (generated URLs are `<id>-<uuid>.<ip>.sslip.io`).
    #[arg(long, default_value = "10.0.0.10")]
    server_ip: String,
    /// The server's wildcard domain, e.g. `https://apps.example.com`.
    #[arg(long)]
    wildcard_domain: Option<String>,
    /// Destination networks of the server (repeat for several).
    #[arg(long = "destination", default_value = "coolify")]
    destinations: Vec<String>,
    /// Start with the API disabled (403 "API is disabled.").
    #[arg(long)]
    api_disabled: bool,
    /// Add latency to every API request (e.g. `200ms`).
    #[arg(long, value_parser = humantime::parse_duration)]
    latency: Option<Duration>,
    /// Inject a fault, as the JSON `POST /_sandbox/faults` takes (repeatable), e.g.
    /// '{"kind":"container_unhealthy","service_uuid":null,"container":"web"}'.
    #[arg(long = "fault")]
    faults: Vec<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut faults = Vec::new();
    for text in &args.faults {
        match serde_json::from_str::<Fault>(text) {
            Ok(fault) => faults.push(fault),
            Err(error) => {
                #[expect(clippy::print_stderr, reason = "the binary reports bad flags on stderr")]
                {
                    eprintln!("error: invalid --fault {text}: {error}");
                }
                return std::process::ExitCode::from(2);
            }
        }
    }
    if let Some(latency) = args.latency {
        faults.push(Fault::Latency {
            millis: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            service_uuid: None,
        });
    }
    let runtime =
        if args.runtime == "docker" { RuntimeKind::Docker } else { RuntimeKind::Simulated };
    let status_interval = args.status_interval.unwrap_or(match runtime {
        RuntimeKind::Docker => Duration::from_secs(60),
        RuntimeKind::Simulated => Duration::ZERO,
    });
    let defaults = SandboxConfig::default();
    let config = SandboxConfig {
        runtime,
        status_interval,
        docker_work_dir: args.docker_work_dir.unwrap_or(defaults.docker_work_dir.clone()),
        front_listen: args.front_listen,
        listen: args.listen,
        tokens: vec![SandboxToken::new(args.token, &[Ability::Root])],
        servers: vec![SandboxServerConfig {
            name: "localhost".to_owned(),
            ip: args.server_ip,
            wildcard_domain: args.wildcard_domain,
            destinations: args.destinations,
        }],
        deploy_delay: args.deploy_delay,
        healthcheck_delay: args.healthcheck_delay,
        delete_delay: args.delete_delay,
        rate_limit: args.rate_limit,
        api_enabled: !args.api_disabled,
        state_file: args.state,
        ..defaults
    };
    let handle = match Sandbox::start(config).await {
        Ok(handle) => handle,
        Err(error) => {
            #[expect(clippy::print_stderr, reason = "the binary reports start failures on stderr")]
            {
                eprintln!("error: {error}");
            }
            return std::process::ExitCode::FAILURE;
        }
    };
    for fault in faults {
        handle.inject(fault);
    }
    #[expect(clippy::print_stdout, reason = "the one line callers wait for")]
    {
        println!("listening on {}", handle.base_url());
        if let Some(front) = handle.probe_url() {
            println!("front on {front}");
        }
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => handle.shutdown().await,
    }
    std::process::ExitCode::SUCCESS
}

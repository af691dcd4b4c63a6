//! `cfa serve`: the platform as one long-running process: the HTTP server (`GET /healthz`, the
//! tenant API for secrets and credentials; see `cfa_web`) and the controller's passes, until
//! Ctrl-C. Platform values (the Router's URL) come from the configuration, as for every path.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Args;

use crate::args::GlobalArgs;
use crate::output;
use crate::platform::Platform;

use super::controller::{PassArgs, run_passes};

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The address the HTTP server listens on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    #[command(flatten)]
    pub(crate) passes: PassArgs,
}

pub(crate) async fn serve(
    global: &GlobalArgs,
    platform: &Platform,
    args: ServeArgs,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr().context("the listener has no address")?;
    output::print_text(&format!("listening on http://{address}\n"))?;
    let state = cfa_web::AppState {
        agent_secrets: std::sync::Arc::new(platform.config.agent_secrets()?),
        ..cfa_web::AppState::new(platform.engine.clone(), platform.pocketbase.clone())
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let monitor_wake = state.monitor_wake.clone();
    let server = cfa_web::serve(listener, state, shutdown);
    // The controller returns on Ctrl-C (its lease released); the server drains and returns.
    let (served, controlled) =
        tokio::join!(server, run_passes(global, platform, &args.passes, false, Some(monitor_wake)));
    served.context("the HTTP server stopped")?;
    controlled
}

//! The `telegram-bot` binary: runs the bot, or `healthcheck` probes a running one.

use std::io::Write;
use std::process::ExitCode;

use telegram_bot::config::{ENV_VARS, Settings};
use telegram_bot::healthcheck::{self, HealthcheckOutcome};

fn main() -> ExitCode {
    let first_argument = std::env::args_os().nth(1);
    match first_argument.as_ref().map(|argument| argument.to_string_lossy()).as_deref() {
        None => run_bot(),
        Some("healthcheck") => run_healthcheck(),
        Some("--version" | "-V") => {
            let _ = writeln!(std::io::stdout(), "telegram-bot {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("--help" | "-h" | "help") => {
            let mut usage = String::from(
                "telegram-bot: answers Telegram chats through an OpenAI-compatible Router\n\n\
                 usage: telegram-bot              run the bot (configured by the environment)\n       \
                 telegram-bot healthcheck  probe a running bot's /healthz and /readyz (exit 0/1)\n\n\
                 environment:\n",
            );
            for (name, meaning) in ENV_VARS {
                usage.push_str(&format!("  {name:<20} {meaning}\n"));
            }
            let _ = write!(std::io::stdout(), "{usage}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            let _ = writeln!(
                std::io::stderr(),
                "telegram-bot: unknown argument `{other}`; hint: run `telegram-bot --help`"
            );
            ExitCode::from(2)
        }
    }
}

fn run_bot() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            // One line naming the variable; logging is not set up yet (LOG_FORMAT may be the
            // broken setting).
            let _ = writeln!(
                std::io::stderr(),
                "telegram-bot: configuration error: {}",
                error.one_line()
            );
            return ExitCode::from(2);
        }
    };
    telegram_bot::logging::init(settings.log_format);
    // One thread is plenty for a chat bot, and keeps the resident memory small.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(error = %error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(telegram_bot::run(settings, shutdown_signal()));
    // Blocking DNS lookups still running must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %telegram_bot::app::error_chain(&error), "telegram-bot stopped with an error");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM (docker stop) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = terminate => tracing::info!(signal = "SIGTERM", "shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutting down"),
    }
}

fn run_healthcheck() -> ExitCode {
    let health_listen = std::env::var("HEALTH_LISTEN").ok();
    let address = match healthcheck::probe_address(health_listen.as_deref()) {
        Ok(address) => address,
        Err(problem) => {
            let _ = writeln!(std::io::stdout(), "unhealthy: {problem}");
            return ExitCode::FAILURE;
        }
    };
    match healthcheck::check(address) {
        HealthcheckOutcome::Healthy => {
            let _ = writeln!(std::io::stdout(), "healthy");
            ExitCode::SUCCESS
        }
        HealthcheckOutcome::Unhealthy(reason) => {
            let _ = writeln!(std::io::stdout(), "unhealthy: {reason}");
            ExitCode::FAILURE
        }
    }
}

//! Exit codes, error reporting and log setup: the only place that decides how `cfa` ends.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | failure (an upstream error, a failed deploy, anything unexpected) |
//! | 2 | usage (bad flags, bad names, bad parameter values, unknown tenant/template) |
//! | 3 | refused by admission (quota, plan, template not allowed, capacity) |

use std::io::Write;

use crate::args::{GlobalArgs, LogFormat};

pub(crate) const SUCCESS: u8 = 0;
pub(crate) const FAILURE: u8 = 1;
pub(crate) const USAGE: u8 = 2;
pub(crate) const REFUSED: u8 = 3;

/// An error that picks its own exit code; anything else exits with [`FAILURE`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The input was wrong: the user can fix it by changing the command.
    #[error(transparent)]
    Usage(anyhow::Error),
    /// Admission refused the request (quota, plan, capacity).
    #[error(transparent)]
    Refused(anyhow::Error),
}

pub(crate) fn usage(error: impl Into<anyhow::Error>) -> anyhow::Error {
    CliError::Usage(error.into()).into()
}

pub(crate) fn refused(error: impl Into<anyhow::Error>) -> anyhow::Error {
    CliError::Refused(error.into()).into()
}

/// Prints the whole error chain on stderr and chooses the exit code.
pub(crate) fn report(error: &anyhow::Error) -> std::process::ExitCode {
    for cause in error.chain() {
        if let Some(io_error) = cause.downcast_ref::<std::io::Error>()
            && io_error.kind() == std::io::ErrorKind::BrokenPipe
        {
            return std::process::ExitCode::from(SUCCESS);
        }
    }
    let code = match error.downcast_ref::<CliError>() {
        Some(CliError::Usage(_)) => USAGE,
        Some(CliError::Refused(_)) => REFUSED,
        None => FAILURE,
    };
    let text = crate::output::neutralise(&format!("{error:#}"), true);
    let _ = writeln!(std::io::stderr().lock(), "error: {text}");
    std::process::ExitCode::from(code)
}

pub(crate) fn init_logging(global: &GlobalArgs) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CFA_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if global.verbose { "debug" } else { "warn" })
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match global.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.without_time().with_target(false).init(),
    }
}

//! Log setup: JSON (or text) lines on stdout, our events at info, dependencies at warn.
//!
//! The level is fixed on purpose (no `RUST_LOG`): at debug and trace, HTTP libraries log
//! request details, and a request URL to the Bot API holds the token.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = Targets::new()
        .with_target("telegram_bot", LevelFilter::INFO)
        .with_default(LevelFilter::WARN);
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_target(false)
                    .with_writer(std::io::stdout),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_target(false)
                    .with_writer(std::io::stdout),
            )
            .try_init(),
    };
    // A second init (tests running the bot in-process) keeps the first subscriber.
    drop(result);
}

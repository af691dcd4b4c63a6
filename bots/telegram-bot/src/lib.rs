//! The telegram-bot: answers a tenant's Telegram chats through its CloudFreedom Router.
//!
//! `main.rs` dispatches; `config` reads the environment, `app` runs the bot, `telegram` and
//! `router` are the two HTTP clients, `conversation` is the pure part (history, commands,
//! splitting), `health` serves `/healthz`, `/readyz` and the webhook, and `healthcheck` is the
//! subcommand that probes them. `testing` (feature `test-support`) holds loopback stand-ins
//! for the Bot API and the Router.

pub mod app;
pub mod config;
pub mod conversation;
pub mod health;
pub mod healthcheck;
pub mod logging;
pub mod router;
pub mod telegram;
#[cfg(feature = "test-support")]
pub mod testing;

pub use app::run;
pub use config::Settings;

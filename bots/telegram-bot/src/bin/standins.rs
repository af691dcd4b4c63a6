//! `telegram-bot-standins TOKEN API_KEY`: runs the Telegram and Router stand-ins on loopback
//! until killed, for conformance runs that start the real bot natively.
//!
//! Prints one JSON line: `{"telegram_api_url": ..., "router_base_url": ...}`. Feed messages with
//! `POST {telegram_api_url}/control/messages {"chat_id":1,"text":"hi"}` and read the answers at
//! `GET {telegram_api_url}/control/sent`; the Router echoes `echo: <text>`.

use std::io::Write;
use std::process::ExitCode;

use telegram_bot::testing::{RouterStandIn, TelegramStandIn};

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [token, api_key] = arguments.as_slice() else {
        let _ = writeln!(std::io::stderr(), "usage: telegram-bot-standins TOKEN API_KEY");
        return ExitCode::from(2);
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async {
        let telegram = TelegramStandIn::start(token).await;
        let router = RouterStandIn::start(api_key).await;
        let line = serde_json::json!({
            "telegram_api_url": telegram.api_url(),
            "router_base_url": router.base_url(),
        });
        let _ = writeln!(std::io::stdout(), "{line}");
        let _ = std::io::stdout().flush();
        let _ = tokio::signal::ctrl_c().await;
    });
    ExitCode::SUCCESS
}

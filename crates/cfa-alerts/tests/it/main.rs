//! cfa-alerts against real receivers on loopback: a webhook endpoint that checks signatures,
//! a Telegram Bot API stand-in, a real SMTP server (aiosmtpd), and the spool on disk.

mod email;
mod heartbeat;
mod outage;
mod spool;
mod support;
mod telegram;
mod webhook;

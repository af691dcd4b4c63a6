//! Integration tests: the real `telegram-bot` binary against loopback stand-ins for the
//! Telegram Bot API and the Router.

mod conversation;
mod failures;
mod health;
mod image;
mod lifecycle;
mod support;
mod webhook;

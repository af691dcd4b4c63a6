//! End-to-end tests of the `cfa` binary: real process, real catalogue, exit codes and output.

mod controller;
mod lifecycle;
mod monitor;
mod no_wait;
mod serve;
mod support;
mod takeover;
mod templates;
mod tidy;

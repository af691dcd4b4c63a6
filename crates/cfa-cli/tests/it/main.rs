//! End-to-end tests of the `cfa` binary: real process, real catalogue, exit codes and output.

mod controller;
mod lifecycle;
mod templates;
mod tidy;

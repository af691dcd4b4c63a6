//! `cfa`: the CloudFreedom Agent Platform command line.
//!
//! This file only parses arguments, dispatches to `commands::*` and maps the outcome to an exit
//! code. Every command is a free function in `commands/` that returns `anyhow::Result<()>`.

mod args;
mod commands;
mod config;
mod exit;
mod output;
mod platform;
mod remedies;
mod settings;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    exit::init_logging(&cli.global);
    match commands::run(cli) {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(error) => exit::report(&error),
    }
}

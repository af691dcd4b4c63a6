//! One module per command family; `run` dispatches.

pub(crate) mod pb;
pub(crate) mod plans;
pub(crate) mod templates;

use crate::args::{Cli, Command};

pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Templates(command) => templates::run(&cli.global, command),
        Command::Plans => plans::run(&cli.global),
        Command::Pb(command) => pb::run(&cli.global, command),
    }
}

//! `cfa templates list|show|render`.

use clap::Subcommand;

use crate::args::GlobalArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum TemplatesCommand {
    /// List the templates in the catalogue.
    List,
}

pub(crate) fn run(_global: &GlobalArgs, _command: TemplatesCommand) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}

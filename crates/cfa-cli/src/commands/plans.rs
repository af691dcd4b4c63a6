//! `cfa plans`: the plan table in use.

use crate::args::GlobalArgs;

pub(crate) fn run(_global: &GlobalArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}

//! Resolves global arguments into what commands use: the template catalogue and the plan table.
//!
//! Lookup order for the catalogue: `--templates-dir`/`CFA_TEMPLATES_DIR`, then `./templates`,
//! then the `templates/` of the checkout this binary was built from.

use std::path::PathBuf;

use anyhow::Context;
use cfa_core::plan::PlanTable;
use cfa_templates::Catalogue;

use crate::args::GlobalArgs;

pub(crate) fn templates_dir(global: &GlobalArgs) -> PathBuf {
    if let Some(dir) = &global.templates_dir {
        return dir.clone();
    }
    let local = PathBuf::from("templates");
    if local.join("telegram-bot").join("template.toml").is_file() {
        return local;
    }
    cfa_templates::repository_templates_dir()
}

pub(crate) fn catalogue(global: &GlobalArgs) -> anyhow::Result<Catalogue> {
    let dir = templates_dir(global);
    Catalogue::load(&dir)
        .with_context(|| format!("failed to load the template catalogue from `{}`", dir.display()))
}

pub(crate) fn plans(global: &GlobalArgs) -> anyhow::Result<PlanTable> {
    match &global.plans_file {
        None => Ok(PlanTable::builtin()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("failed to read the plans file `{}`", path.display()))?;
            PlanTable::with_overrides(&text)
                .with_context(|| format!("failed to load the plans file `{}`", path.display()))
        }
    }
}

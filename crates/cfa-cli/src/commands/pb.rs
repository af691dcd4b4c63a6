//! `cfa pb install|check`: write our PocketBase migrations and hooks into a PocketBase
//! directory, and compare a live PocketBase's collections, fields and rules with ours.

use std::path::PathBuf;

use anyhow::Context;
use cfa_pocketbase::schema;
use cfa_pocketbase::{Password, PocketBaseClient};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::args::{GlobalArgs, OutputFormat};
use crate::{output, settings};

#[derive(Debug, Subcommand)]
pub(crate) enum PbCommand {
    /// Write our migrations and hooks (and the template values of the catalogue) into a
    /// PocketBase directory; restart PocketBase to apply them. Running it twice changes nothing.
    Install(InstallArgs),
    /// Compare a live PocketBase's tenants, agent_stacks and audit_log with ours; exits 1 on drift.
    Check(ConnectionArgs),
}

#[derive(Debug, Args)]
pub(crate) struct InstallArgs {
    /// The PocketBase directory (where `pb_data/` lives); `pb_migrations/` and `pb_hooks/`
    /// are written next to it.
    #[arg(long)]
    pub(crate) pb_dir: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct ConnectionArgs {
    /// PocketBase's base URL.
    #[arg(long, env = "CFA_PB_URL", default_value = "http://127.0.0.1:8090")]
    pub(crate) url: String,
    /// A superuser's e-mail.
    #[arg(long, env = "CFA_PB_EMAIL")]
    pub(crate) email: String,
    /// The superuser's password.
    #[arg(long, env = "CFA_PB_PASSWORD", hide_env_values = true)]
    pub(crate) password: String,
}

pub(crate) fn run(global: &GlobalArgs, command: PbCommand) -> anyhow::Result<()> {
    let catalogue = settings::catalogue(global)?;
    let template_names: Vec<String> = catalogue.names().map(str::to_owned).collect();
    match command {
        PbCommand::Install(args) => install(
            global,
            &args,
            &template_names,
            &cfa_templates::params::config_rules(&catalogue),
        ),
        PbCommand::Check(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("failed to start the async runtime")?;
            runtime.block_on(check(global, args, &template_names))
        }
    }
}

fn install(
    global: &GlobalArgs,
    args: &InstallArgs,
    template_names: &[String],
    config_rules: &serde_json::Value,
) -> anyhow::Result<()> {
    let report =
        schema::install(&args.pb_dir, template_names, config_rules).with_context(|| {
            format!("failed to install the PocketBase schema into `{}`", args.pb_dir.display())
        })?;
    let paths =
        |paths: &[PathBuf]| paths.iter().map(|path| path.display().to_string()).collect::<Vec<_>>();
    match global.output {
        OutputFormat::Json => output::print_json(&json!({
            "written": paths(&report.written),
            "unchanged": paths(&report.unchanged),
            "removed": paths(&report.removed),
            "templates": template_names,
        })),
        OutputFormat::Text => {
            let mut text = String::new();
            for path in paths(&report.written) {
                text.push_str(&format!("wrote     {path}\n"));
            }
            for path in paths(&report.removed) {
                text.push_str(&format!("removed   {path}\n"));
            }
            text.push_str(&format!(
                "{} written, {} unchanged, {} removed; template values: {}\n",
                report.written.len(),
                report.unchanged.len(),
                report.removed.len(),
                template_names.join(", ")
            ));
            if !report.written.is_empty() || !report.removed.is_empty() {
                text.push_str("restart PocketBase to apply the migrations\n");
            }
            output::print_text(&text)
        }
    }
}

async fn check(
    global: &GlobalArgs,
    args: ConnectionArgs,
    template_names: &[String],
) -> anyhow::Result<()> {
    let client =
        PocketBaseClient::connect_superuser(&args.url, &args.email, Password::new(args.password))
            .await
            .with_context(|| {
                format!("failed to log in to PocketBase at `{}` as `{}`", args.url, args.email)
            })?;
    let drift = schema::check(&client, template_names)
        .await
        .with_context(|| format!("failed to read the collections of `{}`", args.url))?;
    match global.output {
        OutputFormat::Json => output::print_json(&json!({
            "url": args.url,
            "drift": drift.iter().map(|item| json!({
                "collection": item.collection, "subject": item.subject,
                "expected": item.expected, "actual": item.actual,
            })).collect::<Vec<_>>(),
        }))?,
        OutputFormat::Text => {
            let mut text = String::new();
            for item in &drift {
                text.push_str(&format!("drift  {item}\n"));
            }
            if drift.is_empty() {
                text.push_str(&format!(
                    "{}: tenants, agent_stacks and audit_log match\n",
                    args.url
                ));
            }
            output::print_text(&text)?;
        }
    }
    if drift.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} difference(s) between `{}` and our schema\nhint: run `cfa pb install --pb-dir <dir>` and restart PocketBase; rules edited in the dashboard must be restored by hand",
            drift.len(),
            args.url
        )
    }
}

//! Command-line arguments (clap types only; no I/O happens while they are parsed).

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "cfa", version, about = "Provision and operate tenant AI-agent stacks on Coolify")]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct GlobalArgs {
    /// Output format of the command's result on stdout.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub(crate) output: OutputFormat,
    /// Format of log lines on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "CFA_LOG_FORMAT")]
    pub(crate) log_format: LogFormat,
    /// Log debug details on stderr (CFA_LOG=... overrides with a tracing filter).
    #[arg(long, short, global = true)]
    pub(crate) verbose: bool,
    /// Template catalogue folder.
    #[arg(long, global = true, env = "CFA_TEMPLATES_DIR")]
    pub(crate) templates_dir: Option<std::path::PathBuf>,
    /// Plans file overriding the built-in plan table.
    #[arg(long, global = true, env = "CFA_PLANS_FILE")]
    pub(crate) plans_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The template catalogue: list, show, render.
    #[command(subcommand)]
    Templates(crate::commands::templates::TemplatesCommand),
    /// The plan table in use.
    Plans,
    /// PocketBase schema: install our migrations and hooks, check a live instance for drift.
    #[command(subcommand)]
    Pb(crate::commands::pb::PbCommand),
    /// Tenants: create, list, show, set-plan.
    #[command(subcommand)]
    Tenant(crate::commands::tenant::TenantCommand),
    /// Provision a stack for a tenant (idempotent: rerun to resume after a failure).
    Provision(crate::commands::stacks::ProvisionArgs),
    /// Stop a stack, keeping its volumes.
    Suspend(crate::commands::stacks::StackOperationArgs),
    /// Start a suspended stack and wait until it is ready.
    Resume(crate::commands::stacks::ResumeArgs),
    /// Re-render a stack (new template version, plan or parameters) and restart it.
    Upgrade(crate::commands::stacks::UpgradeArgs),
    /// Delete a stack: final backup on paid plans, service, empty project, record.
    Delete(crate::commands::stacks::DeleteArgs),
    /// Volume backups of a stack: list the archives, run one now, restore.
    #[command(subcommand)]
    Backup(crate::commands::backup::BackupCommand),
    /// Stacks with their recorded status and what Coolify says now.
    Status(crate::commands::stacks::StatusArgs),
    /// The stacks PocketBase records.
    List(crate::commands::stacks::ListArgs),
    /// The last log lines of a stack's container.
    Logs(crate::commands::stacks::LogsArgs),
    /// Each Coolify server's capacity as admission sees it.
    Capacity,
    /// The audit log, newest first.
    Audit(crate::commands::ops::AuditArgs),
    /// Check configuration, PocketBase (login, schema) and Coolify (version, servers).
    Doctor,
    /// Carry out what one stack's record asks for (`pending`: deploy; `stopped`: stop).
    Reconcile(crate::commands::controller::ReconcileArgs),
    /// Carry out what every stack's record asks for, every --interval-seconds (or --once).
    Controller(crate::commands::controller::ControllerArgs),
    /// Health passes over every stack (incidents, alerts), every [monitor] interval or --once.
    Monitor(crate::commands::monitor::MonitorArgs),
    /// Incidents: list, acknowledge, silence.
    #[command(subcommand)]
    Alerts(crate::commands::monitor::AlertsCommand),
    /// Where Coolify, the records and the templates disagree: orphans and drift.
    Drift(crate::commands::drift::DriftArgs),
    /// Run the platform: the HTTP server (health, the tenant API) and the controller.
    Serve(crate::commands::serve::ServeArgs),
    /// Start a local PocketBase and Coolify sandbox and provision a demo stack end to end.
    Demo(crate::commands::demo::DemoArgs),
}

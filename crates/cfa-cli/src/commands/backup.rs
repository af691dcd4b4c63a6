//! `cfa backup list|run|restore <tenant>/<stack>`: a stack's volume archives in the platform's
//! bucket, one made now, and a restore. The engine does the work; this prints.

use clap::{Args, Subcommand};
use serde_json::json;

use crate::args::{GlobalArgs, OutputFormat};
use crate::output;
use crate::platform::{Platform, engine_error, split_stack_path, with_progress};

#[derive(Debug, Subcommand)]
pub(crate) enum BackupCommand {
    /// The stack's volumes with their archives in the bucket, and the final backups kept for it.
    List(BackupStackArgs),
    /// Back every volume up now and wait until each archive is in the bucket.
    Run(BackupStackArgs),
    /// Replace every volume with its newest archive (or the newest at or before --at): the
    /// stack is stopped, restored through the server's Docker engine, and started again if it
    /// was running.
    Restore(BackupRestoreArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BackupStackArgs {
    /// The stack, `<tenant>/<stack>`.
    pub(crate) stack: String,
}

#[derive(Debug, Args)]
pub(crate) struct BackupRestoreArgs {
    /// The stack, `<tenant>/<stack>`.
    pub(crate) stack: String,
    /// Restore the newest archive made at or before this time: unix seconds, or RFC 3339
    /// (`2026-12-01T10:00:00Z`).
    #[arg(long, value_parser = parse_time)]
    pub(crate) at: Option<i64>,
    /// Needed: the restore replaces the volumes' current data.
    #[arg(long)]
    pub(crate) force: bool,
}

fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    text.parse::<jiff::Timestamp>()
        .map(|time| time.as_second())
        .map_err(|error| format!("not unix seconds or an RFC 3339 time: {error}"))
}

pub(crate) async fn backup(
    global: &GlobalArgs,
    platform: &Platform,
    command: BackupCommand,
) -> anyhow::Result<()> {
    match command {
        BackupCommand::List(args) => {
            let (tenant, stack) = split_stack_path(&args.stack)?;
            let listed =
                platform.engine.backup_list(&tenant, &stack).await.map_err(engine_error)?;
            match global.output {
                OutputFormat::Json => output::print_json(&serde_json::to_value(&listed)?),
                OutputFormat::Text => {
                    let mut rows = vec![vec![
                        "VOLUME".to_owned(),
                        "ARCHIVE".to_owned(),
                        "BYTES".to_owned(),
                        "UPLOADED".to_owned(),
                    ]];
                    for volume in &listed.volumes {
                        if volume.archives.is_empty() {
                            rows.push(vec![
                                volume.volume.clone(),
                                "(none)".to_owned(),
                                String::new(),
                                String::new(),
                            ]);
                        }
                        for archive in &volume.archives {
                            rows.push(archive_row(&volume.volume, archive));
                        }
                    }
                    for archive in &listed.final_backups {
                        rows.push(archive_row("(final)", archive));
                    }
                    output::print_text(&format!(
                        "{}/{} in bucket {}\n{}",
                        listed.tenant,
                        listed.stack,
                        listed.bucket,
                        output::table(&rows)
                    ))
                }
            }
        }
        BackupCommand::Run(args) => {
            let (tenant, stack) = split_stack_path(&args.stack)?;
            let what = format!("backing up {tenant}/{stack}");
            let made = with_progress(&what, platform.engine.backup_run(&tenant, &stack))
                .await
                .map_err(engine_error)?;
            match global.output {
                OutputFormat::Json => output::print_json(&json!({
                    "tenant": tenant, "stack": stack, "volumes": made,
                })),
                OutputFormat::Text => {
                    let lines: Vec<String> = made
                        .iter()
                        .flat_map(|volume| {
                            volume.archives.iter().map(|archive| {
                                format!(
                                    "{}: {} ({} bytes)",
                                    volume.volume, archive.key, archive.size_bytes
                                )
                            })
                        })
                        .collect();
                    let text = match lines.is_empty() {
                        true => format!("{tenant}/{stack} keeps no data in volumes"),
                        false => format!("backed up {tenant}/{stack}\n{}", lines.join("\n")),
                    };
                    output::print_text(&text)
                }
            }
        }
        BackupCommand::Restore(args) => {
            let (tenant, stack) = split_stack_path(&args.stack)?;
            if !args.force {
                return Err(crate::exit::usage(anyhow::format_err!(
                    "a restore replaces the data in every volume of `{tenant}/{stack}` with an archive\nhint: `cfa backup list {tenant}/{stack}` shows what it would use; add --force to restore"
                )));
            }
            let choice = cfa_engine::RestoreChoice { at_or_before_unix_seconds: args.at };
            let what = format!("restoring {tenant}/{stack}");
            let report =
                with_progress(&what, platform.engine.backup_restore(&tenant, &stack, choice))
                    .await
                    .map_err(engine_error)?;
            match global.output {
                OutputFormat::Json => output::print_json(&serde_json::to_value(&report)?),
                OutputFormat::Text => {
                    let mut text = format!("restored {tenant}/{stack}");
                    for volume in &report.volumes {
                        text.push_str(&format!(
                            "\n{}: {} ({} bytes)",
                            volume.volume, volume.archive_key, volume.archive_bytes
                        ));
                    }
                    if report.restarted {
                        text.push_str("\nstarted again");
                    }
                    output::print_text(&text)
                }
            }
        }
    }
}

fn archive_row(volume: &str, archive: &cfa_engine::VolumeArchive) -> Vec<String> {
    let uploaded = jiff::Timestamp::from_millisecond(archive.last_modified_unix_ms)
        .map(|time| time.strftime("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_default();
    vec![volume.to_owned(), archive.key.clone(), archive.size_bytes.to_string(), uploaded]
}

//! `cfa-conformance [TEMPLATE...]`: runs the conformance of the named templates (all three by
//! default) and prints what was checked and a figures table; exit 1 when any check fails.
//! `scripts/conformance` builds what it needs and calls it; the variables it reads:
//! `CFA_CONFORMANCE_CFA` (the `cfa` binary), `CFA_CONFORMANCE_BOT` (the `telegram-bot` binary),
//! `CFA_CACHE_DIR` (installs, `~/.cache/cfa` by default), `CFA_CONFORMANCE_WORK` (work dirs and
//! logs), `CFA_CONFORMANCE_RESULTS` (a JSON file for the figures).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use cfa_conformance::programs::Toolchain;
use cfa_conformance::scenarios::{self, Context};
use cfa_conformance::{Failure, TemplateOutcome};

const TEMPLATES: [&str; 3] = ["telegram-bot", "openclaw-agent", "base-llm"];

fn variable(name: &str) -> Result<PathBuf, Failure> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .ok_or_else(|| Failure::new(format!("{name} is not set\nhint: run scripts/conformance")))
}

fn context() -> Result<Context, Failure> {
    let cache = std::env::var_os("CFA_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/cfa")))
        .ok_or_else(|| Failure::new("neither CFA_CACHE_DIR nor HOME is set"))?;
    let repository = std::env::current_dir()
        .map_err(|error| Failure::new(format!("cannot read the current directory: {error}")))?;
    Ok(Context {
        cfa: variable("CFA_CONFORMANCE_CFA")?,
        repository,
        toolchain: Toolchain {
            cache: cache.join("conformance"),
            bot_binary: variable("CFA_CONFORMANCE_BOT")?,
        },
        work_root: variable("CFA_CONFORMANCE_WORK")?,
    })
}

async fn run(context: &Context, template: &str) -> Result<TemplateOutcome, Failure> {
    match template {
        "telegram-bot" => scenarios::telegram_bot(context).await,
        "openclaw-agent" => scenarios::openclaw_agent(context).await,
        "base-llm" => scenarios::base_llm(context).await,
        other => Err(Failure::new(format!(
            "no conformance run for `{other}`\nhint: one of {}",
            TEMPLATES.join(", ")
        ))),
    }
}

fn main() -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    let requested: Vec<String> = std::env::args().skip(1).collect();
    let templates: Vec<String> =
        if requested.is_empty() { TEMPLATES.map(str::to_owned).to_vec() } else { requested };
    let context = match context() {
        Ok(context) => context,
        Err(failure) => {
            let _ = writeln!(std::io::stderr(), "error: {failure}");
            return ExitCode::from(2);
        }
    };
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread().enable_all().build() else {
        let _ = writeln!(std::io::stderr(), "error: cannot start the async runtime");
        return ExitCode::FAILURE;
    };
    let mut outcomes = Vec::new();
    let mut failures = 0;
    for template in &templates {
        let _ = writeln!(stdout, "== conformance: {template}");
        let _ = stdout.flush();
        match runtime.block_on(run(&context, template)) {
            Ok(outcome) => {
                for check in &outcome.checks {
                    let _ = writeln!(stdout, "ok   {check}");
                }
                let over: Vec<String> =
                    outcome.figures.iter().filter_map(|figure| figure.limit_failure()).collect();
                if over.is_empty() {
                    let _ = writeln!(
                        stdout,
                        "ok   {template}: every program within its rendered memory limit"
                    );
                } else {
                    failures += 1;
                    for failure in over {
                        let _ = writeln!(stdout, "FAIL {template}: {failure}");
                    }
                }
                outcomes.push(outcome);
            }
            Err(failure) => {
                failures += 1;
                let _ = writeln!(stdout, "FAIL {template}: {failure}");
            }
        }
        let _ = stdout.flush();
    }
    let _ = writeln!(
        stdout,
        "\n| template | variant | program | plan | time to healthy | peak PSS (RSS) | limit |\n|---|---|---|---|---|---|---|"
    );
    for figure in outcomes.iter().flat_map(|outcome| &outcome.figures) {
        let _ = writeln!(
            stdout,
            "| {} | {} | {} | {} | {:.1} s | {} MB ({} MB) | {} MB |",
            figure.template,
            if figure.variant.is_empty() { "-" } else { &figure.variant },
            figure.program,
            figure.plan,
            figure.seconds_to_healthy,
            figure.peak_pss_mb,
            figure.peak_rss_mb,
            figure.memory_limit_mb
        );
    }
    if let Some(path) = std::env::var_os("CFA_CONFORMANCE_RESULTS") {
        let json = serde_json::to_string_pretty(&outcomes).unwrap_or_default();
        if let Err(error) = std::fs::write(&path, json) {
            let _ = writeln!(std::io::stderr(), "warning: cannot write {path:?}: {error}");
        }
    }
    let passed = templates.len() - failures;
    let _ = writeln!(stdout, "\nconformance: {passed} passed, {failures} failed");
    if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

//! Conformance: each template's real programs, installed natively, started with the
//! configuration `cfa templates render` produces, checked on the path a tenant uses, and
//! measured (time to healthy, peak RSS against the rendered memory limit).
//!
//! `emulation` does what Coolify and compose would; `programs` turns an image's command into
//! a native one; `process` starts, samples and ends processes; `router` is the Router
//! stand-in; `scenarios` holds one run per template.

pub mod emulation;
pub mod process;
pub mod programs;
pub mod router;
pub mod scenarios;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use crate::emulation::RenderedStack;

/// A conformance check that failed: what, for which template, and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    message: String,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }
}

impl From<emulation::EmulationError> for Failure {
    fn from(error: emulation::EmulationError) -> Self {
        Failure::new(error.to_string())
    }
}

/// The figures of one program in one run.
#[derive(Debug, Clone, Serialize)]
pub struct ProgramFigures {
    pub template: String,
    /// e.g. `with_litellm=false`; empty for the default parameters.
    pub variant: String,
    pub service: String,
    pub program: String,
    pub plan: String,
    pub seconds_to_healthy: f64,
    /// Summed RSS of the process group (shared pages counted once per process).
    pub peak_rss_mb: u64,
    /// Summed PSS of the process group: what its memory cgroup would be charged, page cache
    /// aside. Compared with the limit.
    pub peak_pss_mb: u64,
    pub memory_limit_mb: u32,
}

impl ProgramFigures {
    pub fn within_limit(&self) -> bool {
        self.peak_pss_mb <= u64::from(self.memory_limit_mb)
    }

    /// Why the figure fails conformance, when it does.
    pub fn limit_failure(&self) -> Option<String> {
        (!self.within_limit()).then(|| {
            format!(
                "{} ({}) peaked at {} MB (PSS; {} MB RSS), above the {} MB limit the template renders for plan {}\nhint: raise the template's `minimum`/`profile`, cap its heap, or gate it to a bigger plan",
                self.program, self.template, self.peak_pss_mb, self.peak_rss_mb, self.memory_limit_mb, self.plan
            )
        })
    }
}

/// What a template's run showed.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateOutcome {
    pub template: String,
    pub checks: Vec<String>,
    pub figures: Vec<ProgramFigures>,
}

/// The smallest limits a sovereign tenant's custom ceiling may give a stack: CPUs and MB.
#[derive(Debug, Clone, Copy)]
pub struct CustomCeiling {
    pub cpus: f64,
    pub memory_mb: u32,
}

/// Renders `template` for the conformance tenant through the real `cfa` binary, under `plan`
/// (and a sovereign tenant's `ceiling`, when given).
pub fn render(
    cfa: &Path,
    repository: &Path,
    template: &str,
    (plan, ceiling): (&str, Option<CustomCeiling>),
    stack: &str,
    parameters: &[(&str, String)],
) -> Result<RenderedStack, Failure> {
    let mut command = Command::new(cfa);
    command
        .current_dir(repository)
        .args(["templates", "render", template, "--plan", plan, "--tenant", "conformance"])
        .args(["--stack", stack, "--format", "json", "--show-secrets"]);
    if let Some(ceiling) = ceiling {
        command
            .arg("--cpus")
            .arg(ceiling.cpus.to_string())
            .arg("--memory-mb")
            .arg(ceiling.memory_mb.to_string());
    }
    for (name, value) in parameters {
        command.arg("--param").arg(format!("{name}={value}"));
    }
    let output = command.output().map_err(|error| {
        Failure::new(format!(
            "cannot run `{}`: {error}\nhint: build it with `cargo build -p cfa-cli`",
            cfa.display()
        ))
    })?;
    if !output.status.success() {
        return Err(Failure::new(format!(
            "`cfa templates render {template} --plan {plan}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    serde_json::from_slice(&output.stdout).map_err(|error| {
        Failure::new(format!("`cfa templates render {template}` printed unexpected JSON: {error}"))
    })
}

/// How long each program may take to become healthy (first run on a busy 2-core machine
/// included); a run past it fails.
pub fn health_timeout(program: &str) -> Duration {
    match program {
        "open-webui" => Duration::from_secs(420),
        "openclaw" => Duration::from_secs(300),
        "litellm" => Duration::from_secs(180),
        _ => Duration::from_secs(60),
    }
}

//! Connecting to the platform: PocketBase (as a superuser), Coolify, and the engine over both,
//! from `cfa.toml` and the environment. Also the mapping of engine errors to exit codes and the
//! progress line long waits show.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Context;
use cfa_coolify::{ApiToken, CoolifyClient, CoolifyConfig};
use cfa_core::BaseDomain;
use cfa_engine::{Engine, EngineError, EngineSettings, ErrorClass};
use cfa_pocketbase::{Password, PocketBaseClient};

use crate::args::GlobalArgs;
use crate::config::Config;
use crate::{exit, settings};

/// The clients and the engine a command works with.
#[derive(Debug)]
pub(crate) struct Platform {
    pub(crate) config: Config,
    pub(crate) pocketbase: PocketBaseClient,
    pub(crate) coolify: CoolifyClient,
    pub(crate) engine: Engine,
}

/// The async runtime the commands that talk to the platform run on.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("failed to start the async runtime")
}

pub(crate) async fn pocketbase(config: &Config) -> anyhow::Result<PocketBaseClient> {
    let url = config.pocketbase_url()?;
    let email = config.pocketbase_email()?;
    let password = Password::new(config.pocketbase_password()?);
    PocketBaseClient::connect_superuser(&url, &email, password).await.with_context(|| {
        format!(
            "cannot log in to PocketBase at {url} as superuser `{email}`\nhint: check CFA_PB_URL, CFA_PB_EMAIL and CFA_PB_PASSWORD, and that PocketBase runs (`cfa doctor`)"
        )
    })
}

pub(crate) fn coolify(config: &Config) -> anyhow::Result<CoolifyClient> {
    let url = config.coolify_url()?;
    let mut coolify_config =
        CoolifyConfig::new(url.clone(), ApiToken::new(config.coolify_token()?));
    if let Some(budget) = config.file.coolify.requests_per_minute {
        coolify_config.requests_per_minute = budget;
    }
    CoolifyClient::new(coolify_config)
        .map_err(|error| exit::usage(anyhow::Error::new(error)))
        .with_context(|| format!("cannot use Coolify's URL `{url}`"))
}

pub(crate) fn engine_settings(
    global: &GlobalArgs,
    config: &Config,
) -> anyhow::Result<EngineSettings> {
    let base_domain = config.base_domain();
    let base_domain = BaseDomain::parse(&base_domain).map_err(|error| {
        exit::usage(anyhow::format_err!("CFA_BASE_DOMAIN `{base_domain}`: {error}"))
    })?;
    let mut engine_settings = EngineSettings::new(base_domain, settings::plans(global)?);
    engine_settings.actor = config.actor();
    engine_settings.servers = config.servers();
    let engine_section = &config.file.engine;
    if let Some(timeout) = engine_section.deploy_timeout {
        engine_settings.deploy_timeout = timeout;
    }
    if let Some(interval) = engine_section.poll_interval {
        engine_settings.poll_interval = interval;
    }
    if let Some(grace) = engine_section.delete_grace {
        engine_settings.delete_grace = grace;
    }
    if let Some(grace) = engine_section.tenant_delete_grace {
        engine_settings.tenant_delete_grace = grace;
    }
    if let Some(grace) = engine_section.orphan_grace {
        engine_settings.orphan_grace = grace;
    }
    if let Some(lag) = engine_section.status_lag {
        engine_settings.status_lag = lag;
    }
    if let Some(interval) = engine_section.probe_interval {
        engine_settings.probe_interval = interval;
    }
    engine_settings.final_backups = config.final_backups()?;
    engine_settings.monitor = monitor_settings(config)?;
    engine_settings.url_origins = config.url_origins();
    if let Some(router_url) = config.router_url() {
        engine_settings.platform_parameters.insert("router_base_url".to_owned(), router_url);
    }
    if let Some(probe_url) = config.probe_url() {
        let parsed = probe_url.parse().map_err(|error| {
            exit::usage(anyhow::format_err!("CFA_PROBE_URL `{probe_url}` is not a URL: {error}"))
        })?;
        engine_settings.probe.base_url = Some(parsed);
    }
    Ok(engine_settings)
}

/// Loads the configuration (global flags win over `[platform]` paths of the file).
pub(crate) fn load_config(global: &mut GlobalArgs) -> anyhow::Result<Config> {
    let config = Config::load()?;
    if global.templates_dir.is_none() {
        global.templates_dir = config.templates_dir();
    }
    if global.plans_file.is_none() {
        global.plans_file = config.plans_file();
    }
    Ok(config)
}

pub(crate) async fn connect(global: &GlobalArgs, config: Config) -> anyhow::Result<Platform> {
    let catalogue = settings::catalogue(global)?;
    let engine_settings = engine_settings(global, &config)?;
    let coolify = coolify(&config)?;
    let pocketbase = pocketbase(&config).await?;
    let engine = Engine::new(coolify.clone(), pocketbase.clone(), catalogue, engine_settings);
    Ok(Platform { config, pocketbase, coolify, engine })
}

/// An engine error with the exit code its class asks for (usage 2, refused 3, failure 1).
pub(crate) fn engine_error(error: EngineError) -> anyhow::Error {
    let class = error.class();
    let error = crate::remedies::worded(error);
    match class {
        ErrorClass::Usage => exit::usage(error),
        ErrorClass::Refused => exit::refused(error),
        ErrorClass::Failure => error,
    }
}

/// `tenant/stack` as two names (validated later by the engine).
pub(crate) fn split_stack_path(path: &str) -> anyhow::Result<(String, String)> {
    match path.split_once('/') {
        Some((tenant, stack))
            if !tenant.is_empty() && !stack.is_empty() && !stack.contains('/') =>
        {
            Ok((tenant.to_owned(), stack.to_owned()))
        }
        _ => Err(exit::usage(anyhow::format_err!(
            "`{}` is not `<tenant>/<stack>`\nhint: e.g. `acme/support-bot`; `cfa list` shows the stacks",
            path.escape_debug()
        ))),
    }
}

/// Runs `work` while telling the operator it is waiting: a ticking line on a terminal, one
/// plain line at the start and one at the end otherwise (logs and CI stay readable).
pub(crate) async fn with_progress<T>(what: &str, work: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let ticker = if terminal {
        let what = what.to_owned();
        Some(tokio::spawn(async move {
            let frames = ['|', '/', '-', '\\'];
            let mut frame = 0;
            loop {
                eprint_progress(&format!(
                    "\r{} {what} ({:.0}s)",
                    frames[frame % frames.len()],
                    started.elapsed().as_secs_f64()
                ));
                frame += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }))
    } else {
        eprint_progress(&format!("{what} ...\n"));
        None
    };
    let result = work.await;
    if let Some(ticker) = ticker {
        ticker.abort();
        eprint_progress("\r\x1b[2K");
    } else {
        eprint_progress(&format!("{what}: done in {:.1}s\n", started.elapsed().as_secs_f64()));
    }
    result
}

fn eprint_progress(text: &str) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
}

/// The monitor's settings from `[monitor]`, and the channels `[alerts]` names.
fn monitor_settings(config: &Config) -> anyhow::Result<cfa_engine::MonitorSettings> {
    use cfa_core::incidents::IncidentKind;
    let section = &config.file.monitor;
    let mut monitor = cfa_engine::MonitorSettings::default();
    if let Some(concurrency) = section.concurrency {
        monitor.concurrency = concurrency.clamp(1, 1024);
    }
    if let Some(stuck_after) = section.stuck_after {
        monitor.stuck_after = stuck_after;
    }
    if let Some(interval) = section.backup_check_interval {
        monitor.backup_check_interval = interval;
    }
    if let Some(grace) = section.backup_grace {
        monitor.backups.grace = grace;
    }
    for (name, kind_section) in &section.kinds {
        let kind = IncidentKind::parse(name)
            .map_err(|error| exit::usage(anyhow::format_err!("[monitor.kinds.{name}]: {error}")))?;
        let mut policy = monitor.policies.get(kind);
        if let Some(pending) = kind_section.pending {
            policy.pending_for = pending;
        }
        if let Some(checks) = kind_section.checks {
            policy.consecutive_failures = checks.max(1);
        }
        if let Some(repeat) = kind_section.repeat {
            policy.repeat_every = repeat;
        }
        monitor
            .policies
            .set(kind, policy)
            .map_err(|error| exit::usage(anyhow::format_err!("[monitor.kinds.{name}]: {error}")))?;
    }
    if let Some(alerts) = &config.file.alerts {
        monitor.channels = alerts.channel_names().into_iter().map(str::to_owned).collect();
        monitor.listed_per_message = alerts.max_listed();
    }
    Ok(monitor)
}

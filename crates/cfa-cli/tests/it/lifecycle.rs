//! The operator's `cfa` against the real PocketBase and the Coolify sandbox: tenants, the
//! stack lifecycle, dry runs, refusals and their exit codes, and that no secret value reaches
//! any output, log line or PocketBase record. Also `cfa demo --once`, twice.

use std::path::Path;
use std::time::Duration;

use cfa_pocketbase::testing::{SUPERUSER_EMAIL, SUPERUSER_PASSWORD, TestPocketBase};
use coolify_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use serde_json::{Value, json};

pub(crate) const BOT_TOKEN: &str = "123456789:AAlifecycleSecretBotToken-0123456789";
pub(crate) const ROUTER_KEY: &str = "sk-lifecycle-router-secret-9876543210";

/// What one `cfa` run printed and how it ended.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}\n{}", self.stdout, self.stderr))
    }
}

pub(crate) struct World {
    pub(crate) pocketbase: TestPocketBase,
    pub(crate) sandbox: SandboxHandle,
    _dir: tempfile::TempDir,
    pub(crate) config: std::path::PathBuf,
    /// Every byte every command printed, for the secrets check.
    transcript: std::sync::Mutex<String>,
}

impl World {
    pub(crate) async fn start() -> World {
        World::start_with_deploy_delay(Duration::from_millis(300)).await
    }

    /// A world whose sandbox takes `deploy_delay` for every start.
    pub(crate) async fn start_with_deploy_delay(deploy_delay: Duration) -> World {
        World::start_with_status_lag(deploy_delay, Duration::ZERO).await
    }

    /// A world whose sandbox takes `deploy_delay` for every start and, as Coolify does,
    /// stores container statuses only every `status_interval` (zero: at once); the engine is
    /// told so.
    pub(crate) async fn start_with_status_lag(
        deploy_delay: Duration,
        status_interval: Duration,
    ) -> World {
        let pocketbase = TestPocketBase::start().await.unwrap();
        let sandbox = Sandbox::start(SandboxConfig {
            deploy_delay,
            status_interval,
            delete_delay: Duration::from_millis(100),
            backup_duration: Duration::from_millis(50),
            rate_limit: 100_000,
            ..SandboxConfig::default()
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("cfa.toml");
        std::fs::write(
            &config,
            format!(
                "[coolify]\nurl = \"{}\"\ntoken = \"{}\"\n\
                 [pocketbase]\nurl = \"{}\"\nemail = \"{SUPERUSER_EMAIL}\"\npassword = \"{SUPERUSER_PASSWORD}\"\n\
                 [platform]\nbase_domain = \"agents.test\"\nrouter_url = \"https://router.agents.test/v1\"\n\
                 [engine]\npoll_interval = \"100ms\"\nstatus_lag = \"{}ms\"\ndeploy_timeout = \"20s\"\ndelete_grace = \"0s\"\n\
                 tenant_delete_grace = \"1s\"\n\
                 [[servers]]\nuuid = \"{}\"\ncores = 12\nmemory_gb = 31\nfree_disk_gb = 24\n",
                sandbox.base_url(),
                sandbox.token(),
                pocketbase.url(),
                status_interval.as_millis(),
                sandbox.server_uuid(),
            ),
        )
        .unwrap();
        World {
            pocketbase,
            sandbox,
            _dir: dir,
            config,
            transcript: std::sync::Mutex::new(String::new()),
        }
    }

    pub(crate) async fn cfa(&self, args: &[&str]) -> Run {
        run_cfa(args, Some(&self.config), &self.transcript).await
    }
}

async fn run_cfa(
    args: &[&str],
    config: Option<&Path>,
    transcript: &std::sync::Mutex<String>,
) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_cfa"));
    command.args(args).env("CFA_LOG", "debug").env("CFA_ACTOR", "cli:test");
    for variable in [
        "CFA_COOLIFY_URL",
        "CFA_COOLIFY_TOKEN",
        "CFA_PB_URL",
        "CFA_PB_EMAIL",
        "CFA_PB_PASSWORD",
        "CFA_BASE_DOMAIN",
        "CFA_ROUTER_URL",
        "CFA_TEMPLATES_DIR",
        "CFA_PLANS_FILE",
        "CFA_PROBE_URL",
    ] {
        command.env_remove(variable);
    }
    match config {
        Some(config) => command.env("CFA_CONFIG", config),
        None => command.env_remove("CFA_CONFIG"),
    };
    let output = command.output().await.unwrap();
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    let mut all = transcript.lock().unwrap();
    all.push_str(&run.stdout);
    all.push_str(&run.stderr);
    run
}

pub(crate) fn bot_args<'a>(tenant: &'a str, stack: &'a str, extra: &[&'a str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "provision",
        "--tenant",
        tenant,
        "--template",
        "telegram-bot",
        "--stack",
        stack,
        "--param",
        "router_base_url=https://router.agents.test/v1",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    args.extend(["--param".to_owned(), format!("telegram_bot_token={BOT_TOKEN}")]);
    args.extend(["--param".to_owned(), format!("router_api_key={ROUTER_KEY}")]);
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args
}

pub(crate) async fn cfa_owned(world: &World, args: &[String]) -> Run {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    world.cfa(&args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_a_stack_through_its_whole_life() {
    let world = World::start().await;

    let created = world
        .cfa(&["tenant", "create", "acme", "--owner-email", "ops@acme.test", "--output", "json"])
        .await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    assert_eq!(created.json()["plan_tier"], "starter");
    assert_eq!(created.json()["owner_created"], true);
    let twice = world.cfa(&["tenant", "create", "acme", "--owner-email", "ops@acme.test"]).await;
    assert_eq!(twice.code, 2, "a second create is a usage error: {}", twice.stderr);

    // Dry run: the decision and the calls, no secret, nothing recorded.
    let dry = cfa_owned(&world, &bot_args("acme", "bot", &["--dry-run", "--output", "json"])).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let plan = dry.json();
    assert_eq!(plan["admission"]["decision"], "admitted");
    assert!(
        plan["calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|call| call["method"] == "POST" && call["route"] == "/api/v1/services")
    );
    assert!(plan["compose"].as_str().unwrap().contains("ghcr.io/cloudfreedom/telegram-bot"));
    let listed = world.cfa(&["list", "--output", "json"]).await;
    assert_eq!(listed.json().as_array().unwrap().len(), 0, "a dry run records nothing");

    // Provision, then again: one service.
    let first = cfa_owned(&world, &bot_args("acme", "bot", &["--output", "json"])).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.json()["status"], "running");
    let again = cfa_owned(&world, &bot_args("acme", "bot", &["--output", "json"])).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.json()["coolify_service_uuid"], first.json()["coolify_service_uuid"]);

    // Refusals and usage errors: their exit codes, and nothing changes.
    let over_quota = cfa_owned(&world, &bot_args("acme", "second", &[])).await;
    assert_eq!(over_quota.code, 3, "quota is a refusal: {}", over_quota.stderr);
    assert!(over_quota.stderr.contains("hint:"), "{}", over_quota.stderr);
    let refused_dry = cfa_owned(&world, &bot_args("acme", "second", &["--dry-run"])).await;
    assert_eq!(refused_dry.code, 3, "{}", refused_dry.stderr);
    assert!(refused_dry.stdout.contains("REFUSED"), "{}", refused_dry.stdout);
    let bad_name = cfa_owned(&world, &bot_args("acme", "Bad_Name", &[])).await;
    assert_eq!(bad_name.code, 2, "{}", bad_name.stderr);
    let nobody = cfa_owned(&world, &bot_args("nobody", "bot", &[])).await;
    assert_eq!(nobody.code, 2, "{}", nobody.stderr);
    assert!(nobody.stderr.contains("tenant `nobody` does not exist"), "{}", nobody.stderr);
    let not_allowed = world
        .cfa(&[
            "provision",
            "--tenant",
            "acme",
            "--template",
            "openclaw-agent",
            "--stack",
            "agent",
            "--param",
            "router_base_url=https://router.agents.test/v1",
            "--param",
            "router_api_key=x",
        ])
        .await;
    assert_eq!(not_allowed.code, 3, "{}", not_allowed.stderr);
    assert!(
        not_allowed.stderr.contains("business"),
        "names the plan needed: {}",
        not_allowed.stderr
    );
    let listed = world.cfa(&["list", "--output", "json"]).await;
    assert_eq!(listed.json().as_array().unwrap().len(), 1);

    // Suspend, resume, status, logs, upgrade.
    let suspended = world.cfa(&["suspend", "acme/bot", "--output", "json"]).await;
    assert_eq!(suspended.code, 0, "{}", suspended.stderr);
    assert_eq!(suspended.json()["status"], "stopped");
    let status = world.cfa(&["status", "acme/bot", "--output", "json"]).await;
    assert_eq!(status.json()[0]["status"], "stopped");
    assert!(
        status.json()[0]["coolify_status"].as_str().unwrap().starts_with("exited"),
        "{}",
        status.stdout
    );
    let resumed = world.cfa(&["resume", "acme/bot", "--output", "json"]).await;
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(resumed.json()["status"], "running");
    let status = world.cfa(&["status", "acme", "--output", "json"]).await;
    assert_eq!(status.json()[0]["health"], "healthy", "{}", status.stdout);
    let logs = world.cfa(&["logs", "acme/bot", "--lines", "20"]).await;
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    assert!(logs.stdout.contains("started"), "{}", logs.stdout);
    let no_service = world.cfa(&["logs", "acme/bot", "--service", "nope"]).await;
    assert_eq!(no_service.code, 2, "{}", no_service.stderr);
    let upgraded = cfa_owned(&world, &{
        let mut args = vec![
            "upgrade".to_owned(),
            "acme/bot".to_owned(),
            "--output".to_owned(),
            "json".to_owned(),
        ];
        args.extend(["--param".to_owned(), format!("telegram_bot_token={BOT_TOKEN}")]);
        args.extend(["--param".to_owned(), format!("router_api_key={ROUTER_KEY}")]);
        args.extend([
            "--param".to_owned(),
            "router_base_url=https://router.agents.test/v1".to_owned(),
        ]);
        args.extend(["--param".to_owned(), "model=gpt-4o-mini".to_owned()]);
        args
    })
    .await;
    assert_eq!(upgraded.code, 0, "{}", upgraded.stderr);
    assert_eq!(upgraded.json()["status"], "running");

    // Plan changes: a downgrade that would strand a stack is refused.
    let upgraded_plan = world.cfa(&["tenant", "set-plan", "acme", "business"]).await;
    assert_eq!(upgraded_plan.code, 0, "{}", upgraded_plan.stderr);
    let shown = world.cfa(&["tenant", "show", "acme", "--output", "json"]).await;
    assert_eq!(shown.json()["plan_tier"], "business");
    assert_eq!(shown.json()["stacks"].as_array().unwrap().len(), 1);
    let too_small =
        world.cfa(&["tenant", "set-plan", "acme", "starter", "--max-stacks", "0"]).await;
    assert_eq!(too_small.code, 2, "{}", too_small.stderr);

    // Operator views.
    let capacity = world.cfa(&["capacity", "--output", "json"]).await;
    assert_eq!(capacity.code, 0, "{}", capacity.stderr);
    assert_eq!(capacity.json()[0]["reserved"]["memory_mb"], 256, "{}", capacity.stdout);
    // Room for more, at each template's smallest plan: the bot's 256 MB and 16 MB image are taken.
    let room: Vec<(String, u64)> = capacity.json()[0]["room"]
        .as_array()
        .unwrap()
        .iter()
        .map(|room| {
            (room["template"].as_str().unwrap().to_owned(), room["stacks"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        room,
        [
            ("base-llm".to_owned(), 2),
            ("openclaw-agent".to_owned(), 10),
            ("telegram-bot".to_owned(), 115)
        ],
        "{}",
        capacity.stdout
    );
    let text = world.cfa(&["capacity"]).await;
    assert!(
        text.stdout.contains(
            "2 base-llm (sovereign), 10 openclaw-agent (business), 115 telegram-bot (starter)"
        ),
        "{}",
        text.stdout
    );
    let audit = world.cfa(&["audit", "--tenant", "acme", "--output", "json"]).await;
    let actions: Vec<String> = audit
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["action"].as_str().unwrap().to_owned())
        .collect();
    for action in
        ["tenant.create", "stack.create", "stack.provision", "stack.suspend", "tenant.set_plan"]
    {
        assert!(actions.iter().any(|seen| seen == action), "{action} not in {actions:?}");
    }
    let doctor = world.cfa(&["doctor"]).await;
    assert_eq!(doctor.code, 0, "{}\n{}", doctor.stdout, doctor.stderr);

    // Delete: dry run first, then for real; nothing is left.
    let delete_plan = world.cfa(&["delete", "acme/bot", "--dry-run"]).await;
    assert_eq!(delete_plan.code, 0, "{}", delete_plan.stderr);
    assert!(delete_plan.stdout.contains("DELETE /api/v1/services/"), "{}", delete_plan.stdout);
    let deleted = world.cfa(&["delete", "acme/bot", "--force"]).await;
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    let listed = world.cfa(&["list", "--output", "json"]).await;
    assert_eq!(listed.json().as_array().unwrap().len(), 0);
    let gone = world.cfa(&["status", "acme/bot"]).await;
    assert_eq!(gone.code, 2, "{}", gone.stderr);

    // No secret value in any output or debug log line of any command.
    let transcript = world.transcript.lock().unwrap().clone();
    assert!(transcript.contains("DEBUG"), "the transcript holds the debug logs too");
    for secret in [BOT_TOKEN, ROUTER_KEY, SUPERUSER_PASSWORD] {
        assert!(!transcript.contains(secret), "a secret reached the output");
    }
}

/// A sovereign tenant's per-stack ceiling is the operator's: set at create or set-plan, shown,
/// used by admission (a stack above it is refused with the command that raises it), refused
/// for other plans, never lowered below what a stack needs, and cleared by leaving sovereign.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sets_a_sovereign_tenants_ceiling() {
    let world = World::start().await;
    let created = world
        .cfa(&[
            "tenant",
            "create",
            "sov",
            "--owner-email",
            "ops@sov.test",
            "--plan",
            "sovereign",
            "--cpus",
            "1",
            "--memory-mb",
            "2048",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    assert_eq!(created.json()["resource_limits"], json!({"cpus": 1.0, "memory_mb": 2048}));
    let not_sovereign = world
        .cfa(&[
            "tenant",
            "create",
            "small",
            "--owner-email",
            "ops@small.test",
            "--cpus",
            "1",
            "--memory-mb",
            "1024",
        ])
        .await;
    assert_eq!(not_sovereign.code, 2, "{}", not_sovereign.stderr);
    assert!(
        not_sovereign.stderr.contains("plan starter has a fixed one"),
        "{}",
        not_sovereign.stderr
    );
    let half = world.cfa(&["tenant", "set-plan", "sov", "sovereign", "--cpus", "4"]).await;
    assert_eq!(half.code, 2, "{}", half.stderr);

    let llm = world
        .cfa(&[
            "provision",
            "--tenant",
            "sov",
            "--template",
            "base-llm",
            "--stack",
            "chat",
            "--param",
            "router_base_url=https://router.agents.test/v1",
            "--param",
            "admin_email=admin@sov.test",
            "--param",
            &format!("router_api_key={ROUTER_KEY}"),
        ])
        .await;
    assert_eq!(llm.code, 3, "{}", llm.stderr);
    assert!(
        llm.stderr.contains("custom ceiling is 1 CPU, 2 GB per stack")
            && llm
                .stderr
                .contains("cfa tenant set-plan <tenant> sovereign --cpus 2 --memory-mb 3072"),
        "{}",
        llm.stderr
    );
    let bot = cfa_owned(&world, &bot_args("sov", "bot", &[])).await;
    assert_eq!(bot.code, 0, "{}", bot.stderr);

    let below = world
        .cfa(&["tenant", "set-plan", "sov", "sovereign", "--cpus", "0.05", "--memory-mb", "64"])
        .await;
    assert_eq!(below.code, 3, "{}", below.stderr);
    assert!(
        below.stderr.contains("bot (telegram-bot) needing at least 0.1 CPU, 64 MB"),
        "{}",
        below.stderr
    );
    let raised = world
        .cfa(&["tenant", "set-plan", "sov", "sovereign", "--cpus", "2.5", "--memory-mb", "4096"])
        .await;
    assert_eq!(raised.code, 0, "{}", raised.stderr);
    assert!(raised.stdout.contains("2.5 CPU, 4 GB per stack (custom)"), "{}", raised.stdout);
    let kept = world.cfa(&["tenant", "set-plan", "sov", "sovereign", "--max-stacks", "5"]).await;
    assert_eq!(kept.code, 0, "{}", kept.stderr);
    let shown = world.cfa(&["tenant", "show", "sov", "--output", "json"]).await;
    assert_eq!(shown.json()["resource_limits"], json!({"cpus": 2.5, "memory_mb": 4096}));
    assert_eq!(shown.json()["max_stacks"], 5);

    let team = world.cfa(&["tenant", "set-plan", "sov", "team"]).await;
    assert_eq!(team.code, 0, "{}", team.stderr);
    let shown = world.cfa(&["tenant", "show", "sov", "--output", "json"]).await;
    assert_eq!(shown.json()["resource_limits"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_configuration_is_a_clear_error() {
    let world = World::start().await;
    let broken = world.config.with_file_name("broken.toml");
    let text = std::fs::read_to_string(&world.config).unwrap();
    std::fs::write(&broken, text.replace(SUPERUSER_PASSWORD, "wrong-password")).unwrap();
    let transcript = std::sync::Mutex::new(String::new());
    let doctor = run_cfa(&["doctor"], Some(&broken), &transcript).await;
    assert_eq!(doctor.code, 1, "{}", doctor.stdout);
    assert!(doctor.stdout.contains("FAIL  pocketbase"), "{}", doctor.stdout);
    let listed = run_cfa(&["list"], Some(&broken), &transcript).await;
    assert_eq!(listed.code, 1);
    assert!(
        listed.stderr.contains("cannot log in to PocketBase") && listed.stderr.contains("hint:"),
        "{}",
        listed.stderr
    );

    let missing = world.config.with_file_name("empty.toml");
    std::fs::write(&missing, "").unwrap();
    let unconfigured = run_cfa(&["list"], Some(&missing), &transcript).await;
    assert_eq!(unconfigured.code, 2, "{}", unconfigured.stderr);
    assert!(
        unconfigured.stderr.contains("CFA_COOLIFY_URL")
            || unconfigured.stderr.contains("CFA_PB_URL"),
        "{}",
        unconfigured.stderr
    );

    std::fs::write(&missing, "[coolify]\nurll = 1\n").unwrap();
    let typo = run_cfa(&["list"], Some(&missing), &transcript).await;
    assert_eq!(typo.code, 2, "{}", typo.stderr);
    assert!(typo.stderr.contains("unknown field"), "{}", typo.stderr);
    assert!(!transcript.lock().unwrap().contains("wrong-password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_provisions_once_and_a_rerun_converges_to_the_same_stack() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let data_arg = data.to_str().unwrap();
    let transcript = std::sync::Mutex::new(String::new());
    let args =
        ["demo", "--once", "--data-dir", data_arg, "--deploy-delay", "200ms", "--output", "json"];
    let first = run_cfa(&args, None, &transcript).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.json()["status"], "running");
    let second = run_cfa(&args, None, &transcript).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.json()["coolify_service_uuid"], first.json()["coolify_service_uuid"]);
    let state = std::fs::read_to_string(data.join("coolify-sandbox.json")).unwrap();
    assert_eq!(state.matches("\"cfa-assistant\"").count(), 1, "one service after two runs");
    let credentials = std::fs::read_to_string(data.join("credentials.json")).unwrap();
    let password: Value = serde_json::from_str(&credentials).unwrap();
    assert!(
        !transcript.lock().unwrap().contains(password["pocketbase_password"].as_str().unwrap())
    );

    let reset = run_cfa(
        &[
            "demo",
            "--once",
            "--reset",
            "--data-dir",
            data_arg,
            "--deploy-delay",
            "200ms",
            "--output",
            "json",
        ],
        None,
        &transcript,
    )
    .await;
    assert_eq!(reset.code, 0, "{}", reset.stderr);
    assert_ne!(
        reset.json()["coolify_service_uuid"],
        first.json()["coolify_service_uuid"],
        "--reset starts over"
    );
}

/// `cfa pb install` writes our schema once (a second run changes nothing), and `cfa pb check`
/// passes on a migrated PocketBase and exits 1 naming the rule an operator loosened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_is_installed_once_and_drift_is_reported() {
    let world = World::start().await;
    let pb_dir = tempfile::tempdir().unwrap();
    let pb_dir = pb_dir.path().to_str().unwrap();
    let first = world.cfa(&["pb", "install", "--pb-dir", pb_dir, "--output", "json"]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let written = first.json()["written"].as_array().unwrap().len();
    assert!(written >= 8, "migrations, the template values and the hooks: {}", first.stdout);
    let second = world.cfa(&["pb", "install", "--pb-dir", pb_dir, "--output", "json"]).await;
    assert_eq!(second.json()["written"], json!([]), "{}", second.stdout);
    assert_eq!(second.json()["unchanged"].as_array().unwrap().len(), written);

    let url = world.pocketbase.url().to_string();
    let check = |extra: &[&str]| -> Vec<String> {
        ["pb", "check", "--url", &url, "--email", SUPERUSER_EMAIL, "--password", SUPERUSER_PASSWORD]
            .iter()
            .chain(extra)
            .map(|arg| (*arg).to_owned())
            .collect()
    };
    let clean = cfa_owned(&world, &check(&["--output", "json"])).await;
    assert_eq!(clean.code, 0, "{}\n{}", clean.stdout, clean.stderr);
    assert_eq!(clean.json()["drift"], json!([]));

    // The seed's update rule: ownership only, the hole that lets a tenant move a stack.
    let superuser = world.pocketbase.superuser().await.unwrap();
    let loose =
        json!({"updateRule": "@request.auth.id != '' && tenant_id.user_id = @request.auth.id"});
    superuser
        .call_raw(reqwest::Method::PATCH, "api/collections/agent_stacks", Some(&loose))
        .await
        .unwrap();
    let drifted = cfa_owned(&world, &check(&[])).await;
    assert_eq!(drifted.code, 1, "{}\n{}", drifted.stdout, drifted.stderr);
    assert!(
        drifted.stdout.contains("agent_stacks") && drifted.stdout.contains("updateRule"),
        "{}",
        drifted.stdout
    );
    assert!(drifted.stderr.contains("1 difference(s)"), "{}", drifted.stderr);
}

/// `[backups]`: doctor proves cfa reaches the bucket with its own key and that Coolify's S3
/// storage is usable and on the same bucket; a wrong bucket is a FAIL naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_the_backup_bucket_and_coolifys_s3_storage() {
    let world = World::start().await;
    let moto = cfa_backup_store::testing::MotoServer::start("platform-backups").await.unwrap();
    let storage = world.sandbox.add_s3_storage("platform", moto.settings());
    let base = std::fs::read_to_string(&world.config).unwrap();
    let with_backups = |bucket: &str| {
        format!(
            "{base}[backups]\ncoolify_s3_storage = \"{storage}\"\nendpoint = \"{}\"\nbucket = \"{bucket}\"\n\
             region = \"us-east-1\"\naccess_key_id = \"cfa-test\"\nsecret_access_key = \"cfa-test-secret\"\n",
            moto.settings().endpoint
        )
    };
    let good = world.config.with_file_name("backups.toml");
    std::fs::write(&good, with_backups("platform-backups")).unwrap();
    let transcript = std::sync::Mutex::new(String::new());
    let doctor = run_cfa(&["doctor"], Some(&good), &transcript).await;
    assert_eq!(doctor.code, 0, "{}\n{}", doctor.stdout, doctor.stderr);
    let line = |stdout: &str, state: &str, check: &str| {
        stdout.lines().any(|line| line.starts_with(state) && line.contains(check))
    };
    assert!(line(&doctor.stdout, "ok", "backups bucket"), "{}", doctor.stdout);
    assert!(line(&doctor.stdout, "ok", "backups in coolify"), "{}", doctor.stdout);

    let wrong = world.config.with_file_name("wrong-bucket.toml");
    std::fs::write(&wrong, with_backups("nosuch-bucket")).unwrap();
    let doctor = run_cfa(&["doctor"], Some(&wrong), &transcript).await;
    assert_eq!(doctor.code, 1, "{}", doctor.stdout);
    assert!(line(&doctor.stdout, "FAIL", "backups bucket"), "{}", doctor.stdout);
    assert!(doctor.stdout.contains("uploads to bucket `platform-backups`"), "{}", doctor.stdout);
    assert!(!transcript.lock().unwrap().contains("cfa-test-secret"), "the secret was printed");

    // Without [backups], doctor warns what it means for deletes.
    let doctor = world.cfa(&["doctor"]).await;
    assert!(line(&doctor.stdout, "warn", "backups"), "{}", doctor.stdout);
}

/// Sign-up is open: whoever registers the owner's e-mail first must not get the tenant. The
/// operator's `tenant create` refuses an unverified account, and `--adopt-existing` claims it
/// (the registrant's password stops working; the owner signs in through a password reset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_never_given_to_whoever_registered_its_email_first() {
    let world = World::start().await;
    let email = "owner@victim.test";
    let password = "squatter-Passw0rd!";
    let signup = reqwest::Client::new()
        .post(format!("{}/api/collections/users/records", world.pocketbase.url()))
        .json(&json!({ "email": email, "password": password, "passwordConfirm": password }))
        .send()
        .await
        .unwrap();
    assert!(signup.status().is_success(), "{}", signup.status());

    let refused = world.cfa(&["tenant", "create", "victim", "--owner-email", email]).await;
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(refused.stderr.contains("--adopt-existing"), "{}", refused.stderr);
    let listed = world.cfa(&["tenant", "list", "--output", "json"]).await;
    assert!(!listed.stdout.contains("victim"), "{}", listed.stdout);

    let adopted = world
        .cfa(&["tenant", "create", "victim", "--owner-email", email, "--adopt-existing"])
        .await;
    assert_eq!(adopted.code, 0, "{}", adopted.stderr);
    let squatter = cfa_pocketbase::PocketBaseClient::connect(
        world.pocketbase.url(),
        "users",
        email,
        cfa_pocketbase::Password::new(password),
    )
    .await;
    assert!(squatter.is_err(), "the registrant's password still works");
}

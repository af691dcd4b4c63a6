//! One run per template: render for a sample tenant, start the real programs natively with
//! what was rendered, wait for their health endpoints, then exercise what a tenant uses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::Rng;
use rand::distr::Alphanumeric;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::emulation::{PreparedStack, RenderedStack, prepare};
use crate::process::{Running, free_port, wait_healthy};
use crate::programs::{self, Toolchain};
use crate::router::{ANSWER, RouterStandIn};
use crate::{CustomCeiling, Failure, ProgramFigures, TemplateOutcome, health_timeout, render};

/// The model id every run asks for (the templates' default).
const MODEL: &str = "gpt-4o-mini";
const ADMIN_EMAIL: &str = "admin@conformance.example";
/// Agent runs after the first, so OpenClaw's memory is measured on a gateway that has worked.
const AGENT_RUNS: u32 = 20;

/// What every run needs.
#[derive(Debug, Clone)]
pub struct Context {
    pub cfa: PathBuf,
    pub repository: PathBuf,
    pub toolchain: Toolchain,
    /// Where runs keep their work dirs and logs (kept after a failure for reading).
    pub work_root: PathBuf,
}

fn nonce(prefix: &str) -> String {
    let random: String = rand::rng().sample_iter(Alphanumeric).take(12).map(char::from).collect();
    format!("{prefix}-{random}")
}

fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), Failure> {
    if condition { Ok(()) } else { Err(Failure::new(message())) }
}

fn client() -> Result<reqwest::Client, Failure> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(180))
        .build()
        .map_err(|error| Failure::new(format!("cannot build an HTTP client: {error}")))
}

fn work_dir(context: &Context, name: &str) -> Result<PathBuf, Failure> {
    let directory = context.work_root.join(name);
    if directory.exists() {
        std::fs::remove_dir_all(&directory).map_err(|error| {
            Failure::new(format!("cannot clear `{}`: {error}", directory.display()))
        })?;
    }
    std::fs::create_dir_all(&directory).map_err(|error| {
        Failure::new(format!("cannot create `{}`: {error}", directory.display()))
    })?;
    Ok(directory)
}

fn figures(
    rendered: &RenderedStack,
    variant: &str,
    service: &str,
    running: &Running,
    healthy_after: Duration,
    limit_mb: u32,
) -> ProgramFigures {
    ProgramFigures {
        template: rendered.template.clone(),
        variant: variant.to_owned(),
        service: service.to_owned(),
        program: running.label.clone(),
        plan: rendered.plan.clone(),
        seconds_to_healthy: (healthy_after.as_secs_f64() * 10.0).round() / 10.0,
        peak_rss_mb: running.peak_rss_mb(),
        peak_pss_mb: running.peak_pss_mb(),
        memory_limit_mb: limit_mb,
    }
}

/// The Router received a completion with the tenant's key, the configured model and `marker`
/// in one of its messages.
fn check_router_saw(
    router: &RouterStandIn,
    key: &str,
    model: &str,
    marker: &str,
) -> Result<(), Failure> {
    let completions = router.completions();
    let matching = completions
        .iter()
        .find(|request| request.messages.iter().any(|message| message.contains(marker)));
    let Some(request) = matching else {
        return Err(Failure::new(format!(
            "no completion carrying `{marker}` reached the Router stand-in ({} completions arrived)",
            completions.len()
        )));
    };
    ensure(request.api_key.as_deref() == Some(key), || {
        "the Router stand-in received a completion without the tenant's Router key".to_owned()
    })?;
    ensure(request.model.as_deref() == Some(model), || {
        format!("the Router stand-in was asked for model {:?}, not `{model}`", request.model)
    })
}

/// Ends every process and returns the final figures (the caller judges them against limits).
fn finish(
    mut figures: Vec<ProgramFigures>,
    running: Vec<(usize, Running)>,
) -> Result<Vec<ProgramFigures>, Failure> {
    for (index, mut process) in running {
        process.stop();
        figures[index].peak_rss_mb = process.peak_rss_mb();
        figures[index].peak_pss_mb = process.peak_pss_mb();
    }
    Ok(figures)
}

// ---------------------------------------------------------------------------------------------
// base-llm

/// base-llm, with and without LiteLLM.
pub async fn base_llm(context: &Context) -> Result<TemplateOutcome, Failure> {
    let mut checks = Vec::new();
    let mut all_figures = Vec::new();
    for with_litellm in [true, false] {
        let (mut run_checks, figures) = base_llm_variant(context, with_litellm).await?;
        checks.append(&mut run_checks);
        all_figures.extend(figures);
    }
    Ok(TemplateOutcome { template: "base-llm".to_owned(), checks, figures: all_figures })
}

async fn base_llm_variant(
    context: &Context,
    with_litellm: bool,
) -> Result<(Vec<String>, Vec<ProgramFigures>), Failure> {
    let variant = format!("with_litellm={with_litellm}");
    let router = RouterStandIn::start(MODEL)
        .await
        .map_err(|error| Failure::new(format!("cannot start the Router stand-in: {error}")))?;
    let router_key = nonce("sk-router");
    // The smallest ceiling admission lets a sovereign tenant have for this variant (the
    // template's minimum), so every program is judged against the tightest limit it can get.
    let minimum_ceiling = if with_litellm {
        CustomCeiling { cpus: 2.0, memory_mb: 3072 }
    } else {
        CustomCeiling { cpus: 1.5, memory_mb: 2048 }
    };
    let rendered = render(
        &context.cfa,
        &context.repository,
        "base-llm",
        ("sovereign", Some(minimum_ceiling)),
        "chat",
        &[
            ("router_base_url", router.base_url()),
            ("router_api_key", router_key.clone()),
            ("admin_email", ADMIN_EMAIL.to_owned()),
            ("with_litellm", with_litellm.to_string()),
        ],
    )?;
    let work = work_dir(context, &format!("base-llm-{with_litellm}"))?;
    let webui_port = free_port()?;
    let mut ports = BTreeMap::from([("open-webui".to_owned(), (8080, webui_port))]);
    let litellm_present = rendered.compose["services"].get("litellm").is_some();
    ensure(litellm_present == with_litellm, || {
        format!("with_litellm={with_litellm} rendered litellm: {litellm_present}")
    })?;
    if with_litellm {
        ports.insert("litellm".to_owned(), (4000, free_port()?));
    }
    let prepared = prepare(&rendered, &work, &ports)?;
    let http = client()?;
    let mut checks = Vec::new();
    let mut figures = Vec::new();
    let mut running = Vec::new();

    if with_litellm {
        let service = &prepared.services["litellm"];
        let port = ports["litellm"].1;
        let mut litellm = Running::start(programs::litellm(
            &context.toolchain,
            &prepared,
            service,
            &work,
            port,
        )?)?;
        let base = format!("http://127.0.0.1:{port}");
        let healthy = wait_healthy(
            &mut litellm,
            &http,
            &[format!("{base}/health/liveliness"), format!("{base}/health/readiness")],
            health_timeout("litellm"),
        )
        .await?;
        checks.push(format!("base-llm ({variant}): LiteLLM healthy (/health/liveliness, /health/readiness) after {:.0}s", healthy.as_secs_f64()));
        let unauthenticated = http
            .post(format!("{base}/v1/chat/completions"))
            .json(&json!({ "model": MODEL, "messages": [{ "role": "user", "content": "x" }] }))
            .send()
            .await
            .map_err(|error| Failure::new(format!("LiteLLM did not answer: {error}")))?;
        ensure(unauthenticated.status() == StatusCode::UNAUTHORIZED, || {
            format!(
                "LiteLLM answered {} to a completion without its master key",
                unauthenticated.status()
            )
        })?;
        checks.push(format!("base-llm ({variant}): LiteLLM refuses calls without its master key"));
        figures.push(figures_for(
            &rendered,
            &variant,
            "litellm",
            &litellm,
            healthy,
            service.memory_limit_mb,
        ));
        running.push((figures.len() - 1, litellm));
    }

    let service = &prepared.services["open-webui"];
    let mut webui =
        Running::start(programs::open_webui(&context.toolchain, service, &work, webui_port)?)?;
    let base = format!("http://127.0.0.1:{webui_port}");
    let healthy =
        wait_healthy(&mut webui, &http, &[format!("{base}/health")], health_timeout("open-webui"))
            .await?;
    checks.push(format!(
        "base-llm ({variant}): Open WebUI healthy (/health) after {:.0}s",
        healthy.as_secs_f64()
    ));
    figures.push(figures_for(
        &rendered,
        &variant,
        "open-webui",
        &webui,
        healthy,
        service.memory_limit_mb,
    ));
    running.push((figures.len() - 1, webui));

    let result = open_webui_checks(&http, &base, &prepared, &router, &router_key, &variant).await;
    match result {
        Ok(mut more) => checks.append(&mut more),
        Err(failure) => {
            let logs = running
                .iter()
                .map(|(_, process)| {
                    format!(
                        "--- {}:\n{}",
                        process.label,
                        crate::process::tail(&process.log_file, 30)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            return Err(Failure::new(format!("base-llm ({variant}): {failure}\n{logs}")));
        }
    }
    let mut figures = finish(figures, running)?;
    for figure in &mut figures {
        figure.plan = format!(
            "sovereign at its minimum ceiling ({} CPU, {} MB)",
            minimum_ceiling.cpus, minimum_ceiling.memory_mb
        );
    }
    Ok((checks, figures))
}

fn figures_for(
    rendered: &RenderedStack,
    variant: &str,
    service: &str,
    running: &Running,
    healthy: Duration,
    limit_mb: u32,
) -> ProgramFigures {
    figures(rendered, variant, service, running, healthy, limit_mb)
}

async fn open_webui_checks(
    http: &reqwest::Client,
    base: &str,
    prepared: &PreparedStack,
    router: &RouterStandIn,
    router_key: &str,
    variant: &str,
) -> Result<Vec<String>, Failure> {
    let mut checks = Vec::new();
    let environment = &prepared.services["open-webui"].environment;
    let email = environment
        .get("WEBUI_ADMIN_EMAIL")
        .ok_or_else(|| Failure::new("WEBUI_ADMIN_EMAIL is not rendered"))?;
    let password = environment
        .get("WEBUI_ADMIN_PASSWORD")
        .ok_or_else(|| Failure::new("WEBUI_ADMIN_PASSWORD is not rendered"))?;
    let signin = http
        .post(format!("{base}/api/v1/auths/signin"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .map_err(|error| Failure::new(format!("Open WebUI sign-in did not answer: {error}")))?;
    let status = signin.status();
    let body: Value = signin.json().await.unwrap_or(Value::Null);
    let token =
        body.get("token").and_then(Value::as_str).filter(|_| status.is_success()).ok_or_else(
            || {
                Failure::new(format!(
                    "the admin could not sign in with the rendered credentials: {status} {body}"
                ))
            },
        )?;
    ensure(body.get("role").and_then(Value::as_str) == Some("admin"), || {
        format!("the rendered admin signed in with role {:?}", body.get("role"))
    })?;
    checks.push(format!(
        "base-llm ({variant}): the admin signs in with the rendered e-mail and generated password"
    ));

    let marker = nonce("conformance-ping");
    let answer = http
        .post(format!("{base}/api/chat/completions"))
        .bearer_auth(token)
        .json(&json!({ "model": MODEL, "stream": false, "messages": [{ "role": "user", "content": marker }] }))
        .send()
        .await
        .map_err(|error| Failure::new(format!("Open WebUI chat did not answer: {error}")))?;
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    let content = body["choices"][0]["message"]["content"].as_str().unwrap_or_default();
    ensure(status.is_success() && content.contains(ANSWER), || {
        format!(
            "a chat completion through Open WebUI did not bring the Router's answer: {status} {body}"
        )
    })?;
    check_router_saw(router, router_key, MODEL, &marker)?;
    checks.push(format!(
        "base-llm ({variant}): a chat completion through Open WebUI{} reaches the Router with the tenant's key and model and brings its answer back",
        if variant.ends_with("true") { " and LiteLLM" } else { "" }
    ));

    let signup = http
        .post(format!("{base}/api/v1/auths/signup"))
        .json(&json!({ "name": "Second", "email": "second@conformance.example", "password": nonce("Pw1") }))
        .send()
        .await
        .map_err(|error| Failure::new(format!("Open WebUI sign-up did not answer: {error}")))?;
    ensure(signup.status() == StatusCode::FORBIDDEN, || {
        format!("a second user's sign-up got {}, expected 403 (sign-up closed)", signup.status())
    })?;
    checks.push(format!("base-llm ({variant}): sign-up is closed for a second user (403)"));
    Ok(checks)
}

// ---------------------------------------------------------------------------------------------
// openclaw-agent

pub async fn openclaw_agent(context: &Context) -> Result<TemplateOutcome, Failure> {
    let router = RouterStandIn::start(MODEL)
        .await
        .map_err(|error| Failure::new(format!("cannot start the Router stand-in: {error}")))?;
    let router_key = nonce("sk-router");
    let rendered = render(
        &context.cfa,
        &context.repository,
        "openclaw-agent",
        ("business", None),
        "agent",
        &[("router_base_url", router.base_url()), ("router_api_key", router_key.clone())],
    )?;
    let work = work_dir(context, "openclaw-agent")?;
    let port = free_port()?;
    let ports = BTreeMap::from([("openclaw".to_owned(), (18789, port))]);
    let prepared = prepare(&rendered, &work, &ports)?;
    let service = &prepared.services["openclaw"];
    let launch = programs::openclaw(&context.toolchain, &prepared, service, &work, port)?;
    let cli_environment = launch.environment.clone();
    let cli_node = launch.program.clone();
    let cli_script = launch.arguments[0].clone();
    let mut gateway = Running::start(launch)?;
    let http = client()?;
    let base = format!("http://127.0.0.1:{port}");
    let healthy = wait_healthy(
        &mut gateway,
        &http,
        &[format!("{base}/healthz"), format!("{base}/readyz")],
        health_timeout("openclaw"),
    )
    .await?;
    let mut checks = vec![format!(
        "openclaw-agent: gateway healthy (/healthz, /readyz) after {:.0}s",
        healthy.as_secs_f64()
    )];
    let figure = figures(&rendered, "", "openclaw", &gateway, healthy, service.memory_limit_mb);
    let result = openclaw_checks(
        &http,
        &base,
        service.environment.clone(),
        &router,
        &router_key,
        (&cli_node, &cli_script, &cli_environment, port, &work),
    )
    .await;
    match result {
        Ok(mut more) => checks.append(&mut more),
        Err(failure) => {
            return Err(Failure::new(format!(
                "openclaw-agent: {failure}\n--- gateway:\n{}",
                crate::process::tail(&gateway.log_file, 30)
            )));
        }
    }
    gateway.check_alive()?;
    let figures = finish(vec![figure], vec![(0, gateway)])?;
    Ok(TemplateOutcome { template: "openclaw-agent".to_owned(), checks, figures })
}

async fn openclaw_checks(
    http: &reqwest::Client,
    base: &str,
    environment: BTreeMap<String, String>,
    router: &RouterStandIn,
    router_key: &str,
    cli: (&Path, &str, &BTreeMap<String, String>, u16, &Path),
) -> Result<Vec<String>, Failure> {
    let mut checks = Vec::new();
    let hooks_token = environment.get("OPENCLAW_HOOKS_TOKEN").cloned().unwrap_or_default();
    let gateway_token = environment.get("OPENCLAW_GATEWAY_TOKEN").cloned().unwrap_or_default();
    ensure(
        hooks_token.len() == 64 && gateway_token.len() == 64 && hooks_token != gateway_token,
        || {
            "the hooks and gateway tokens are not two distinct generated 64-character values"
                .to_owned()
        },
    )?;
    let send = |request: reqwest::RequestBuilder| async move {
        request
            .send()
            .await
            .map_err(|error| Failure::new(format!("the gateway did not answer: {error}")))
    };

    let wake = json!({ "text": "conformance wake", "mode": "next-heartbeat" });
    let refused = send(http.post(format!("{base}/hooks/wake")).json(&wake)).await?;
    ensure(refused.status() == StatusCode::UNAUTHORIZED, || {
        format!("POST /hooks/wake without the hooks token got {}, expected 401", refused.status())
    })?;
    let wrong =
        send(http.post(format!("{base}/hooks/wake")).bearer_auth(&gateway_token).json(&wake))
            .await?;
    ensure(wrong.status() == StatusCode::UNAUTHORIZED, || {
        format!(
            "POST /hooks/wake with the gateway token (not the hooks token) got {}, expected 401",
            wrong.status()
        )
    })?;
    let accepted =
        send(http.post(format!("{base}/hooks/wake")).bearer_auth(&hooks_token).json(&wake)).await?;
    ensure(accepted.status() == StatusCode::OK, || {
        format!("POST /hooks/wake with the hooks token got {}", accepted.status())
    })?;
    checks.push("openclaw-agent: POST /hooks/wake succeeds with the hooks token and is refused (401) without it or with the gateway token".to_owned());

    let invoke = json!({ "tool": "sessions_list", "args": {} });
    let refused = send(http.post(format!("{base}/tools/invoke")).json(&invoke)).await?;
    ensure(refused.status() == StatusCode::UNAUTHORIZED, || {
        format!(
            "POST /tools/invoke without the gateway token got {}, expected 401",
            refused.status()
        )
    })?;
    let wrong =
        send(http.post(format!("{base}/tools/invoke")).bearer_auth(&hooks_token).json(&invoke))
            .await?;
    ensure(wrong.status() == StatusCode::UNAUTHORIZED, || {
        format!("POST /tools/invoke with the hooks token got {}, expected 401", wrong.status())
    })?;
    let accepted =
        send(http.post(format!("{base}/tools/invoke")).bearer_auth(&gateway_token).json(&invoke))
            .await?;
    ensure(accepted.status() == StatusCode::OK, || {
        format!("POST /tools/invoke with the gateway token got {}", accepted.status())
    })?;
    checks.push("openclaw-agent: the gateway API (/tools/invoke) refuses calls without the gateway token (401) and accepts them with it".to_owned());

    let marker = nonce("conformance-ping");
    let agent = json!({
        "message": format!("Reply with one word. {marker}"), "name": "Conformance", "agentId": "main",
        "deliver": false, "waitForCompletion": true,
    });
    let response = send(
        http.post(format!("{base}/hooks/agent"))
            .bearer_auth(&hooks_token)
            .header("Idempotency-Key", marker.clone())
            .json(&agent),
    )
    .await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    ensure(status == StatusCode::OK && body["ok"] == json!(true), || {
        format!("POST /hooks/agent got {status} {body}")
    })?;
    ensure(body["completion"]["status"] == json!("ok"), || {
        format!("the hook's agent run did not complete: {body}")
    })?;
    let model = environment.get("ROUTER_MODEL").cloned().unwrap_or_default();
    check_router_saw(router, router_key, &model, &marker)?;
    checks.push("openclaw-agent: POST /hooks/agent runs the agent on the Router provider (the stand-in got the tenant's key, the configured model and the message)".to_owned());

    // A working day in miniature: more runs in a row, so the memory figure covers a gateway
    // that has worked (sessions, transcripts, caches), not only one that booted.
    let started = std::time::Instant::now();
    for run in 0..AGENT_RUNS {
        let marker = nonce("conformance-run");
        let agent = json!({
            "message": format!("Run {run}: reply with one word. {marker}"), "name": "Conformance",
            "agentId": "main", "deliver": false, "waitForCompletion": true,
        });
        let response = send(
            http.post(format!("{base}/hooks/agent"))
                .bearer_auth(&hooks_token)
                .header("Idempotency-Key", marker.clone())
                .json(&agent),
        )
        .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        ensure(status == StatusCode::OK && body["completion"]["status"] == json!("ok"), || {
            format!("agent run {run} of {AGENT_RUNS} failed: {status} {body}")
        })?;
        check_router_saw(router, router_key, &model, &marker)?;
    }
    checks.push(format!(
        "openclaw-agent: {AGENT_RUNS} more agent runs in a row all reach the Router and complete ({:.1} s each on average)",
        started.elapsed().as_secs_f64() / f64::from(AGENT_RUNS)
    ));

    let (node, script, cli_environment, port, work) = cli;
    let job_name = nonce("conformance-job");
    let url = format!("ws://127.0.0.1:{port}");
    let run_cli = |arguments: Vec<String>| {
        let mut command = tokio::process::Command::new(node);
        command
            .arg(script)
            .args(arguments)
            .args(["--url", &url, "--token", &gateway_token])
            .env_clear()
            .envs(cli_environment)
            .current_dir(work)
            .kill_on_drop(true);
        async move {
            let output = tokio::time::timeout(Duration::from_secs(120), command.output())
                .await
                .map_err(|_| Failure::new("the OpenClaw CLI did not finish within 120s"))?
                .map_err(|error| Failure::new(format!("cannot run the OpenClaw CLI: {error}")))?;
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            if output.status.success() {
                Ok(text)
            } else {
                Err(Failure::new(format!(
                    "the OpenClaw CLI failed ({}): {text} {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                )))
            }
        }
    };
    run_cli(
        [
            "cron",
            "add",
            "--every",
            "1h",
            "--message",
            "Conformance check: reply OK.",
            "--name",
            &job_name,
            "--json",
        ]
        .map(str::to_owned)
        .to_vec(),
    )
    .await?;
    let listed = run_cli(["cron", "list", "--json"].map(str::to_owned).to_vec()).await?;
    let jobs: Value = serde_json::from_str(listed.trim()).map_err(|error| {
        Failure::new(format!("`cron list --json` printed unexpected output ({error}): {listed}"))
    })?;
    let found = jobs["jobs"].as_array().is_some_and(|jobs| {
        jobs.iter().any(|job| job["name"] == json!(job_name) && job["enabled"] == json!(true))
    });
    ensure(found, || format!("the created job `{job_name}` is not listed: {listed}"))?;
    checks.push(
        "openclaw-agent: a scheduled job created with the gateway token is listed, enabled"
            .to_owned(),
    );
    Ok(checks)
}

// ---------------------------------------------------------------------------------------------
// telegram-bot

pub async fn telegram_bot(context: &Context) -> Result<TemplateOutcome, Failure> {
    let router = RouterStandIn::start(MODEL)
        .await
        .map_err(|error| Failure::new(format!("cannot start the Router stand-in: {error}")))?;
    let router_key = nonce("sk-router");
    let bot_token = format!("123456789:{}", nonce("AAconformance"));
    let telegram = telegram_bot::testing::TelegramStandIn::start(&bot_token).await;
    let rendered = render(
        &context.cfa,
        &context.repository,
        "telegram-bot",
        ("starter", None),
        "bot",
        &[
            ("telegram_bot_token", bot_token.clone()),
            ("router_base_url", router.base_url()),
            ("router_api_key", router_key.clone()),
        ],
    )?;
    let work = work_dir(context, "telegram-bot")?;
    let port = free_port()?;
    let prepared = prepare(&rendered, &work, &BTreeMap::new())?;
    let service = &prepared.services["bot"];
    let mut bot = Running::start(programs::telegram_bot(
        &context.toolchain,
        service,
        &work,
        port,
        &telegram.api_url(),
    )?)?;
    let http = client()?;
    let base = format!("http://127.0.0.1:{port}");
    let healthy = wait_healthy(
        &mut bot,
        &http,
        &[format!("{base}/healthz"), format!("{base}/readyz")],
        health_timeout("telegram-bot"),
    )
    .await?;
    let mut checks = vec![format!(
        "telegram-bot: healthy (/healthz, /readyz) after {:.1}s",
        healthy.as_secs_f64()
    )];
    let figure = figures(&rendered, "", "bot", &bot, healthy, service.memory_limit_mb);

    let marker = nonce("conformance-ping");
    telegram.push_text(4242, &marker);
    let sent = telegram.wait_for_sent(1, Duration::from_secs(30)).await;
    let answered =
        sent.iter().any(|message| message.chat_id == 4242 && message.text.contains(ANSWER));
    if !answered {
        return Err(Failure::new(format!(
            "telegram-bot: a chat message did not get the Router's answer within 30s (sent: {:?})\n--- bot:\n{}",
            sent.iter().map(|message| &message.text).collect::<Vec<_>>(),
            crate::process::tail(&bot.log_file, 30)
        )));
    }
    check_router_saw(&router, &router_key, MODEL, &marker)?;
    checks.push("telegram-bot: a message through the Telegram stand-in gets the Router's answer; the Router got the tenant's key, model and message".to_owned());
    bot.check_alive()?;
    let figures = finish(vec![figure], vec![(0, bot)])?;
    Ok(TemplateOutcome { template: "telegram-bot".to_owned(), checks, figures })
}

//! Each template whose images the engine has, through its whole life on the real engine:
//! `cfa tenant create`, `provision`, `suspend`, `resume`, `upgrade` (a changed parameter and,
//! where the template has one, a changed config file), `delete`; with what `docker inspect`
//! shows checked against what `cfa templates render` rendered.

use std::io::Write as _;
use std::time::{Duration, Instant};

use coolify_sandbox::RuntimeKind;
use serde_json::Value;
use telegram_bot::testing::{RouterStandIn, TelegramStandIn};

use crate::world::{Setup, World, docker, expose};

pub(crate) const BOT_TOKEN: &str = "123456789:AAdockerSuiteSecretBotToken-0123456789";
pub(crate) const ROUTER_KEY: &str = "sk-docker-suite-router-key-0123456789";

/// One template's run.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) template: &'static str,
    pub(crate) tenant: &'static str,
    pub(crate) stack: &'static str,
    /// `cfa tenant create` arguments after the slug.
    pub(crate) plan: &'static [&'static str],
    /// `cfa templates render` arguments for the same plan.
    pub(crate) render_plan: &'static [&'static str],
    pub(crate) status_interval: Duration,
    /// Non-secret parameters besides `router_base_url` (and the bot's secrets).
    pub(crate) params: &'static [&'static str],
    /// The parameter the upgrade changes, and the environment variable (service, name) it sets.
    pub(crate) upgrade: (&'static str, &'static str, &'static str, &'static str),
    /// A config file the upgrade edits: (template file, service, comment prefix).
    pub(crate) config_file: Option<(&'static str, &'static str, &'static str)>,
    pub(crate) url: bool,
}

pub(crate) fn cases() -> Vec<Case> {
    vec![
        Case {
            template: "telegram-bot",
            tenant: "botco",
            stack: "bot",
            plan: &["--plan", "starter"],
            render_plan: &["--plan", "starter"],
            status_interval: Duration::from_secs(60),
            params: &[],
            upgrade: ("model", "gpt-4o-upgraded", "bot", "ROUTER_MODEL"),
            config_file: None,
            url: false,
        },
        Case {
            template: "openclaw-agent",
            tenant: "clawco",
            stack: "agent",
            plan: &["--plan", "sovereign", "--cpus", "2", "--memory-mb", "2048"],
            render_plan: &["--plan", "sovereign", "--cpus", "2", "--memory-mb", "2048"],
            status_interval: Duration::from_secs(10),
            params: &[],
            upgrade: ("model", "gpt-4o-upgraded", "openclaw", "ROUTER_MODEL"),
            config_file: Some(("openclaw.json", "openclaw", "//")),
            url: true,
        },
        Case {
            template: "base-llm",
            tenant: "llmco",
            stack: "chat",
            plan: &["--plan", "sovereign", "--cpus", "2", "--memory-mb", "3072"],
            render_plan: &["--plan", "sovereign", "--cpus", "2", "--memory-mb", "3072"],
            status_interval: Duration::from_secs(10),
            params: &["admin_email=admin@llmco.test"],
            upgrade: ("model", "gpt-4o-upgraded", "litellm", "CFR_MODEL"),
            config_file: Some(("litellm-config.yaml", "litellm", "#")),
            url: true,
        },
    ]
}

/// Stand-ins the containers reach: Telegram (for the bot) and the Router.
#[derive(Debug)]
pub(crate) struct StandIns {
    pub(crate) telegram: TelegramStandIn,
    pub(crate) router: RouterStandIn,
    pub(crate) telegram_url: String,
    pub(crate) router_url: String,
}

impl StandIns {
    pub(crate) async fn start(world: &World) -> StandIns {
        let telegram = TelegramStandIn::start_on("0.0.0.0:0", BOT_TOKEN).await;
        let telegram_port = telegram.api_url().rsplit(':').next().unwrap().to_owned();
        let router = RouterStandIn::start(ROUTER_KEY).await;
        let loopback: std::net::SocketAddr = router
            .base_url()
            .trim_start_matches("http://")
            .trim_end_matches("/v1")
            .parse()
            .unwrap();
        let router_port = expose(loopback).await;
        StandIns {
            telegram,
            router,
            telegram_url: format!("http://{}:{telegram_port}", world.host_ip),
            router_url: format!("http://{}:{router_port}/v1", world.host_ip),
        }
    }
}

pub(crate) fn provision_args(case: &Case, router_url: &str, extra: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "provision",
        "--tenant",
        case.tenant,
        "--template",
        case.template,
        "--stack",
        case.stack,
        "--output",
        "json",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    args.extend(param_args(case, router_url));
    args.extend(extra.iter().cloned());
    args
}

fn param_args(case: &Case, router_url: &str) -> Vec<String> {
    let mut params =
        vec![format!("router_base_url={router_url}"), format!("router_api_key={ROUTER_KEY}")];
    if case.template == "telegram-bot" {
        params.push(format!("telegram_bot_token={BOT_TOKEN}"));
    }
    params.extend(case.params.iter().map(|param| (*param).to_owned()));
    params.into_iter().flat_map(|param| ["--param".to_owned(), param]).collect()
}

/// The compose `cfa templates render` gives for the case (the world's catalogue).
async fn rendered(world: &World, case: &Case, router_url: &str, extra: &[String]) -> Value {
    let mut args: Vec<String> = ["templates", "render", case.template]
        .iter()
        .chain(case.render_plan)
        .chain(&["--tenant", case.tenant, "--stack", case.stack, "--base-domain", "agents.test"])
        .map(|arg| (*arg).to_owned())
        .collect();
    args.extend(param_args(case, router_url));
    args.extend(extra.iter().cloned());
    args.extend(["--templates-dir".to_owned(), world.templates.display().to_string()]);
    let run = world.cfa_owned(&args).await;
    assert_eq!(run.code, 0, "render: {}", run.stderr);
    serde_norway::from_str(&run.stdout).unwrap()
}

/// The images a template's rendered compose names.
pub(crate) async fn images(world: &World, case: &Case) -> Vec<String> {
    let compose = rendered(world, case, "http://127.0.0.1:9/v1", &[]).await;
    compose["services"]
        .as_object()
        .unwrap()
        .values()
        .map(|service| service["image"].as_str().unwrap().to_owned())
        .collect()
}

/// The containers of a stack's compose project (service uuid), running or not.
fn containers(service_uuid: &str, all: bool) -> Vec<Value> {
    let filter = format!("label=com.docker.compose.project={service_uuid}");
    let mut args = vec!["ps", "-q", "--filter", filter.as_str()];
    if all {
        args.push("-a");
    }
    let ids = docker(&args).unwrap();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let mut inspect = vec!["inspect"];
    inspect.extend(ids);
    serde_json::from_str::<Vec<Value>>(&docker(&inspect).unwrap()).unwrap()
}

fn container_of<'a>(containers: &'a [Value], service: &str) -> &'a Value {
    containers
        .iter()
        .find(|container| {
            container["Config"]["Labels"]["com.docker.compose.service"].as_str() == Some(service)
        })
        .unwrap_or_else(|| panic!("no container for service {service}"))
}

fn env_of(container: &Value, name: &str) -> Option<String> {
    container["Config"]["Env"].as_array().unwrap().iter().find_map(|entry| {
        entry.as_str().unwrap().strip_prefix(&format!("{name}=")).map(str::to_owned)
    })
}

fn memory_bytes(limit: &str) -> i64 {
    let (number, unit) = limit.split_at(limit.find(|c: char| c.is_ascii_alphabetic()).unwrap());
    let number: i64 = number.parse().unwrap();
    number
        * match unit.to_ascii_lowercase().as_str() {
            "k" | "kb" => 1 << 10,
            "m" | "mb" => 1 << 20,
            "g" | "gb" => 1 << 30,
            other => panic!("unit {other}"),
        }
}

/// `docker inspect` shows the limits and hardening the render asked for, for every service.
fn check_hardening(compose: &Value, containers: &[Value], context: &str) {
    for (name, service) in compose["services"].as_object().unwrap() {
        let container = container_of(containers, name);
        let host = &container["HostConfig"];
        let memory = memory_bytes(service["mem_limit"].as_str().unwrap());
        assert_eq!(host["Memory"].as_i64().unwrap(), memory, "{context}: {name} memory");
        let cpus = service["cpus"].as_f64().unwrap();
        assert_eq!(
            host["NanoCpus"].as_i64().unwrap(),
            (cpus * 1e9).round() as i64,
            "{context}: {name} cpus"
        );
        assert_eq!(host["PidsLimit"], service["pids_limit"], "{context}: {name} pids limit");
        // Without a rendered `user` (a documented root exception) the image's own user runs.
        let expected_user = match service["user"].as_str() {
            Some(user) => user.to_owned(),
            None => {
                let image = service["image"].as_str().unwrap();
                crate::world::docker(&["image", "inspect", "--format", "{{.Config.User}}", image])
                    .unwrap()
                    .trim()
                    .to_owned()
            }
        };
        assert_eq!(
            container["Config"]["User"].as_str().unwrap(),
            expected_user,
            "{context}: {name} user"
        );
        assert_eq!(
            host["ReadonlyRootfs"].as_bool().unwrap(),
            service["read_only"].as_bool().unwrap_or(false),
            "{context}: {name} read-only root"
        );
        let cap_drop: Vec<&str> = host["CapDrop"]
            .as_array()
            .map(|caps| caps.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert!(cap_drop.contains(&"ALL"), "{context}: {name} CapDrop {cap_drop:?}");
        let security: Vec<&str> = host["SecurityOpt"]
            .as_array()
            .map(|options| options.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert!(
            security.iter().any(|option| option.starts_with("no-new-privileges")),
            "{context}: {name} SecurityOpt {security:?}"
        );
    }
}

/// The file mounted at the rendered target of a config file, read inside the container (or
/// through the bind's source when the image has no `cat`).
fn mounted_file(container: &Value, file_name: &str) -> String {
    let mount = container["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        // The bind's source keeps the template's file name (the target may differ, e.g.
        // base-llm's `litellm-config.yaml` lands at `/app/cfa-<hash>/config.yaml`).
        .find(|mount| mount["Source"].as_str().unwrap().ends_with(&format!("/{file_name}")))
        .unwrap_or_else(|| panic!("no mount of {file_name}: {}", container["Mounts"]));
    let destination = mount["Destination"].as_str().unwrap();
    let name = container["Name"].as_str().unwrap().trim_start_matches('/');
    docker(&["exec", name, "cat", destination]).unwrap_or_else(|_| {
        std::fs::read_to_string(mount["Source"].as_str().unwrap()).expect("the bind's source")
    })
}

async fn wait_for_no_containers(service_uuid: &str, running_only: bool, what: &str) {
    let started = Instant::now();
    loop {
        let left = containers(service_uuid, !running_only);
        if left.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: containers left: {:?}",
            left.iter().map(|c| c["Name"].clone()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// GET through the front with the stack's Host.
pub(crate) async fn through_front(world: &World, host: &str, path: &str) -> Option<u16> {
    let front = world.sandbox.probe_url()?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().unwrap();
    client
        .get(format!("{front}{path}"))
        .header("host", host)
        .send()
        .await
        .ok()
        .map(|answer| answer.status().as_u16())
}

async fn bot_answers(standins: &StandIns, chat_id: i64, model: &str, context: &str) {
    let before = standins.telegram.sent().len();
    standins.telegram.push_text(chat_id, &format!("hello from {context}"));
    let sent = standins.telegram.wait_for_sent(before + 1, Duration::from_secs(60)).await;
    assert!(sent.len() > before, "{context}: the bot answered nothing");
    let answer = &sent[before];
    assert_eq!(answer.chat_id, chat_id, "{context}");
    assert!(answer.text.contains(&format!("hello from {context}")), "{context}: {}", answer.text);
    let completion = standins.router.completions().last().cloned().expect("a completion");
    assert_eq!(completion.model, model, "{context}: the model the Router saw");
}

/// Removes whatever a failed run left of a tenant's stacks on the shared engine.
#[derive(Debug)]
pub(crate) struct Leftovers(pub(crate) &'static str, pub(crate) String);

impl Drop for Leftovers {
    fn drop(&mut self) {
        let filter = format!("label=cloudfreedom.tenant={}", self.0);
        let projects = docker(&[
            "ps",
            "-a",
            "--filter",
            &filter,
            "--format",
            "{{.Label \"com.docker.compose.project\"}}",
        ])
        .unwrap_or_default();
        let mut projects: Vec<&str> = projects.split_whitespace().collect();
        projects.dedup();
        for project in projects {
            let _ = docker(&["compose", "-p", project, "down", "-v", "-t", "1"]);
            let _ = docker(&["network", "rm", project]);
        }
        // The sandbox's destination network.
        let _ = docker(&["network", "rm", &format!("cfa-it-{}", self.1)]);
    }
}

/// What a run measured, for the summary line.
#[derive(Debug)]
pub(crate) struct Figures {
    pub(crate) provision: Duration,
    pub(crate) resume: Duration,
    pub(crate) upgrade: Duration,
    pub(crate) provision_calls: usize,
    pub(crate) total: Duration,
}

/// The whole life of one case on the docker runtime.
pub(crate) async fn run_case(case: Case, tag: String) -> Figures {
    let began = Instant::now();
    let _leftovers = Leftovers(case.tenant, tag.clone());
    let bot = case.template == "telegram-bot";
    let world = World::start(Setup {
        runtime: RuntimeKind::Docker,
        status_interval: case.status_interval,
        status_lag: case.status_interval,
        poll_interval: Duration::from_secs(1),
        tag,
    })
    .await;
    let standins = StandIns::start(&world).await;
    world.set_router_url(&standins.router_url);
    if bot {
        // The bot's template has no Telegram API URL parameter (a tenant must not point it
        // elsewhere): the operator sets TELEGRAM_API_URL on the service in Coolify.
        world.set_operator_env("TELEGRAM_API_URL", &standins.telegram_url);
    }
    let context = case.template;
    let router_url = standins.router_url.clone();

    let mut tenant: Vec<&str> = vec!["tenant", "create", case.tenant, "--owner-email"];
    let email = format!("ops@{}.test", case.tenant);
    tenant.push(&email);
    tenant.extend(case.plan);
    let created = world.cfa(&tenant).await;
    assert_eq!(created.code, 0, "{context}: tenant create: {}", created.stderr);

    // Provision.
    let calls_before = world.calls().len();
    let provisioned = world.cfa_owned(&provision_args(&case, &router_url, &[])).await;
    assert_eq!(provisioned.code, 0, "{context}: provision: {}", provisioned.stderr);
    assert_eq!(provisioned.json()["status"], "running", "{context}: {}", provisioned.stdout);
    let provision_calls = world.calls().len() - calls_before;
    let service_uuid = provisioned.json()["coolify_service_uuid"].as_str().unwrap().to_owned();
    let address = format!("{}/{}", case.tenant, case.stack);
    let host = format!("{}-{}.agents.test", case.stack, case.tenant);

    let compose = rendered(&world, &case, &router_url, &[]).await;
    let running = containers(&service_uuid, false);
    assert_eq!(
        running.len(),
        compose["services"].as_object().unwrap().len(),
        "{context}: one running container per service"
    );
    check_hardening(&compose, &running, &format!("{context} after provision"));
    let status = world.cfa(&["status", &address, "--output", "json"]).await;
    assert_eq!(status.code, 0, "{context}: status: {}", status.stderr);
    if case.url {
        let answer = through_front(&world, &host, "/").await;
        assert!(
            matches!(answer, Some(code) if code < 500 && code != 404),
            "{context}: the URL answers through the front after provision: {answer:?}"
        );
    }
    if bot {
        bot_answers(&standins, 4242, "gpt-4o-mini", "provision").await;
    }

    // Suspend: recorded stopped, no container left running.
    let suspended = world.cfa(&["suspend", &address, "--output", "json"]).await;
    assert_eq!(suspended.code, 0, "{context}: suspend: {}", suspended.stderr);
    assert_eq!(suspended.json()["status"], "stopped", "{context}: {}", suspended.stdout);
    wait_for_no_containers(&service_uuid, true, &format!("{context} suspend")).await;

    // Resume.
    let resumed = world.cfa(&["resume", &address, "--output", "json"]).await;
    assert_eq!(resumed.code, 0, "{context}: resume: {}", resumed.stderr);
    assert_eq!(resumed.json()["status"], "running", "{context}: {}", resumed.stdout);
    check_hardening(
        &compose,
        &containers(&service_uuid, false),
        &format!("{context} after resume"),
    );
    if bot {
        bot_answers(&standins, 4242, "gpt-4o-mini", "resume").await;
    }

    // Upgrade: a changed parameter and, where there is one, a changed config file.
    let marker = format!("edited by the docker suite at {:?}", std::time::SystemTime::now());
    let mut edited = None;
    if let Some((file, _, comment)) = case.config_file {
        let path = world.templates.join(case.template).join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let text = format!("{comment} {marker}\n{text}");
        std::fs::write(&path, &text).unwrap();
        edited = Some(text);
    }
    let (key, value, env_service, env_name) = case.upgrade;
    let change = vec!["--param".to_owned(), format!("{key}={value}")];
    let mut upgrade: Vec<String> =
        ["upgrade", &address, "--output", "json"].iter().map(|arg| (*arg).to_owned()).collect();
    upgrade.extend(param_args(&case, &router_url));
    upgrade.extend(change.iter().cloned());
    let upgraded = world.cfa_owned(&upgrade).await;
    assert_eq!(upgraded.code, 0, "{context}: upgrade: {}", upgraded.stderr);
    assert_eq!(upgraded.json()["status"], "running", "{context}: {}", upgraded.stdout);
    let compose = rendered(&world, &case, &router_url, &change).await;
    let running = containers(&service_uuid, false);
    check_hardening(&compose, &running, &format!("{context} after upgrade"));
    let container = container_of(&running, env_service);
    assert_eq!(env_of(container, env_name).as_deref(), Some(value), "{context}: {env_name}");
    if let (Some((file, service, _)), Some(edited)) = (case.config_file, edited) {
        let inside = mounted_file(container_of(&running, service), file);
        assert!(inside.contains(&marker), "{context}: the upgraded {file} is not in the container");
        assert_eq!(inside.trim_end(), edited.trim_end(), "{context}: {file} in the container");
    }
    if case.url {
        let answer = through_front(&world, &host, "/").await;
        assert!(
            matches!(answer, Some(code) if code < 500 && code != 404),
            "{context}: the URL answers through the front after upgrade: {answer:?}"
        );
    }
    if bot {
        bot_answers(&standins, 4242, value, "upgrade").await;
    }

    // Delete: nothing of the stack is left on the engine.
    let deleted = world.cfa(&["delete", &address, "--force"]).await;
    assert_eq!(deleted.code, 0, "{context}: delete: {}", deleted.stderr);
    wait_for_no_containers(&service_uuid, false, &format!("{context} delete")).await;
    let listed = world.cfa(&["list", "--output", "json"]).await;
    assert_eq!(listed.json().as_array().unwrap().len(), 0, "{context}: {}", listed.stdout);
    // A plan with backups: the final backup of the real volume outlives the delete.
    let kept = world.final_backups(case.tenant, case.stack).await;
    if case.template == "telegram-bot" {
        assert!(kept.is_empty(), "{context}: the bot keeps no volume: {kept:?}");
    } else {
        assert!(!kept.is_empty(), "{context}: no final backup kept");
        for (key, entries) in &kept {
            assert!(entries.len() > 1, "{context}: {key} holds only {entries:?}");
        }
    }

    Figures {
        provision: provisioned.elapsed,
        resume: resumed.elapsed,
        upgrade: upgraded.elapsed,
        provision_calls,
        total: began.elapsed(),
    }
}

pub(crate) fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

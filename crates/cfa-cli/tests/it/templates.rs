//! `cfa templates ...` and `cfa plans` as an operator runs them.

use assert_cmd::Command;
use serde_json::Value;

const TOKEN: &str = "123456789:AAEhBP0av28x-test-token-value_xyz";
const ROUTER_KEY: &str = "sk-router-key-visible-only-with-show-secrets";

fn cfa() -> Command {
    let mut command = Command::cargo_bin("cfa").unwrap();
    command
        .env_remove("CFA_TEMPLATES_DIR")
        .env_remove("CFA_PLANS_FILE")
        .env_remove("CFA_BASE_DOMAIN");
    command
}

fn render_bot(extra: &[&str]) -> assert_cmd::assert::Assert {
    let token = format!("telegram_bot_token={TOKEN}");
    let key = format!("router_api_key={ROUTER_KEY}");
    let mut args = vec![
        "templates",
        "render",
        "telegram-bot",
        "--plan",
        "starter",
        "--tenant",
        "acme",
        "--stack",
        "support-bot",
        "--param",
        &token,
        "--param",
        "router_base_url=https://router.example/v1",
        "--param",
        &key,
    ];
    args.extend_from_slice(extra);
    cfa().args(&args).assert()
}

#[test]
fn render_prints_the_compose_without_secrets() {
    let output = render_bot(&[]).success().get_output().stdout.clone();
    let yaml = String::from_utf8(output).unwrap();
    let document: Value = serde_norway::from_str(&yaml).unwrap();
    assert_eq!(document["services"]["bot"]["environment"]["ROUTER_API_KEY"], "${ROUTER_API_KEY}");
    assert!(!yaml.contains(ROUTER_KEY) && !yaml.contains(TOKEN));
}

#[test]
fn render_json_redacts_unless_asked() {
    let output = render_bot(&["--format", "json"]).success().get_output().stdout.clone();
    let text = String::from_utf8(output).unwrap();
    assert!(!text.contains(ROUTER_KEY) && !text.contains(TOKEN), "{text}");
    let rendered: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(rendered["limits"]["memory_mb"], 256);
    assert_eq!(rendered["url"], Value::Null);
    assert!(
        rendered["environment"].as_array().unwrap().iter().all(|entry| entry["value"] == "***")
    );

    let output =
        render_bot(&["--format", "json", "--show-secrets"]).success().get_output().stdout.clone();
    let rendered: Value = serde_json::from_slice(&output).unwrap();
    let values: Vec<&str> = rendered["environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["value"].as_str().unwrap())
        .collect();
    assert!(values.contains(&ROUTER_KEY) && values.contains(&TOKEN));
}

#[test]
fn refusals_exit_3_and_bad_input_exits_2_with_the_reason_on_stderr() {
    let assert = cfa()
        .args([
            "templates",
            "render",
            "base-llm",
            "--plan",
            "team",
            "--tenant",
            "acme",
            "--stack",
            "chat",
        ])
        .args([
            "--param",
            "router_base_url=https://r.example/v1",
            "--param",
            "router_api_key=k",
            "--param",
            "admin_email=a@b.de",
        ])
        .assert()
        .code(3);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stderr.contains("not part of the team plan")
            && stderr.contains("hint: the sovereign plan allows it"),
        "{stderr}"
    );
    assert!(assert.get_output().stdout.is_empty());

    for (args, expected) in [
        (vec!["--stack", "Bad_Name"], "invalid stack name `Bad_Name`"),
        (vec!["--stack", "ok", "--param", "nonsense"], "is not `key=value`"),
        (vec!["--stack", "ok", "--param", "evil=1"], "unknown parameter `evil`"),
    ] {
        let assert = cfa()
            .args(["templates", "render", "telegram-bot", "--plan", "starter", "--tenant", "acme"])
            .args(args)
            .assert()
            .code(2);
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert!(stderr.contains(expected), "{stderr}");
    }
    let assert = cfa().args(["templates", "show", "wordpress"]).assert().code(2);
    assert!(
        String::from_utf8_lossy(&assert.get_output().stderr).contains("known templates: base-llm")
    );
}

#[test]
fn list_show_and_plans_have_json_forms() {
    let output = cfa()
        .args(["templates", "list", "--output", "json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let list: Value = serde_json::from_slice(&output).unwrap();
    let names: Vec<&str> =
        list.as_array().unwrap().iter().map(|item| item["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["base-llm", "openclaw-agent", "telegram-bot"]);

    let output = cfa()
        .args(["templates", "show", "base-llm", "--output", "json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let shown: Value = serde_json::from_slice(&output).unwrap();
    let plans: Vec<(&str, bool)> = shown["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|plan| (plan["tier"].as_str().unwrap(), plan["allowed"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        plans,
        [("starter", false), ("team", false), ("business", false), ("sovereign", true)]
    );

    let output =
        cfa().args(["plans", "--output", "json"]).assert().success().get_output().stdout.clone();
    let plans: Value = serde_json::from_slice(&output).unwrap();
    assert_eq!(plans[0]["tier"], "starter");
    assert_eq!(plans[0]["ceiling"]["memory_mb"], 256);
}

#[test]
fn a_plans_file_changes_what_render_allows() {
    let dir = tempfile::tempdir().unwrap();
    let plans = dir.path().join("plans.toml");
    std::fs::write(&plans, "[plans.team]\ntemplates = [\"telegram-bot\", \"openclaw-agent\"]\nmemory_mb = 1024\ncpus = 1.0\n").unwrap();
    cfa()
        .args([
            "--plans-file",
            plans.to_str().unwrap(),
            "templates",
            "render",
            "openclaw-agent",
            "--plan",
            "team",
        ])
        .args([
            "--tenant",
            "acme",
            "--stack",
            "agent",
            "--param",
            "router_base_url=https://r.example/v1",
        ])
        .args(["--param", "router_api_key=k"])
        .assert()
        .success();
    std::fs::write(&plans, "[plans.team]\nmemroy_mb = 1\n").unwrap();
    let assert = cfa().args(["--plans-file", plans.to_str().unwrap(), "plans"]).assert().code(1);
    assert!(
        String::from_utf8_lossy(&assert.get_output().stderr).contains("unknown field `memroy_mb`")
    );
}

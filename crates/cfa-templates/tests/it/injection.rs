//! Hostile stack names and parameter values: refused with a clear error, or carried as an inert
//! value. The parsed output never gains a key, port, label, volume or privilege.

use cfa_core::naming::StackName;
use cfa_core::plan::PlanTier;
use serde_json::Value;

use crate::support::{chain, render_with, sample_parameters};

const HOSTILE: &[&str] = &[
    "line one\nports: [\"22:22\"]",
    "x: y",
    "{ privileged: true }",
    "$HOME",
    "${ROUTER_API_KEY}",
    "${SERVICE_PASSWORD_64_GATEWAYTOKEN}",
    "$$",
    "\"quoted\" and 'single'",
    "nul\0byte",
    "ünïcödé 🚀 Grüße",
    "- item\n- item",
    "&anchor *alias !!python/object",
    "traefik.enable=true",
    "#comment",
    "   leading spaces",
    "\r\nCRLF",
];

/// Everything structural about a rendered document: services, their keys, labels, volumes,
/// ports, capabilities, and top-level keys.
fn structure(document: &Value) -> Vec<String> {
    let mut shape = Vec::new();
    for (key, _) in document.as_object().unwrap() {
        shape.push(format!("top:{key}"));
    }
    for (name, service) in document["services"].as_object().unwrap() {
        for (key, value) in service.as_object().unwrap() {
            shape.push(format!("{name}:{key}"));
            match key.as_str() {
                "labels" => shape.extend(
                    value.as_object().unwrap().iter().map(|(k, v)| format!("{name}:label:{k}={v}")),
                ),
                "environment" => shape
                    .extend(value.as_object().unwrap().keys().map(|k| format!("{name}:env:{k}"))),
                "volumes" | "cap_drop" | "cap_add" | "security_opt" | "user" | "image"
                | "command" => shape.push(format!("{name}:{key}={value}")),
                _ => {}
            }
        }
    }
    shape.sort();
    shape
}

#[test]
fn hostile_parameter_values_are_refused_or_inert() {
    let mut benign = sample_parameters("telegram-bot");
    benign.insert("system_prompt".into(), "Be helpful".into());
    benign.insert("allowed_chat_ids".into(), "1,-2".into());
    let baseline = render_with("telegram-bot", PlanTier::Team, "bot", &benign).unwrap();
    let baseline_structure = structure(&serde_norway::from_str(&baseline.compose_yaml).unwrap());
    let long = "A".repeat(100 * 1024);
    let mut values: Vec<&str> = HOSTILE.to_vec();
    values.push(&long);
    for parameter in [
        "system_prompt",
        "model",
        "allowed_chat_ids",
        "router_base_url",
        "router_api_key",
        "telegram_bot_token",
        "history_turns",
    ] {
        for value in &values {
            let mut parameters = benign.clone();
            parameters.insert(parameter.to_owned(), (*value).to_owned());
            match render_with("telegram-bot", PlanTier::Team, "bot", &parameters) {
                Err(error) => {
                    let message = chain(&error);
                    assert!(message.contains(&format!("parameter `{parameter}`")), "{message}");
                    assert!(
                        message.len() < 1000,
                        "error message stays short: {} bytes",
                        message.len()
                    );
                }
                Ok(rendered) => {
                    let document: Value = serde_norway::from_str(&rendered.compose_yaml).unwrap();
                    assert_eq!(structure(&document), baseline_structure, "{parameter}={value:?}");
                    // The value arrives exactly as given (compose turns `$$` back into `$`).
                    let environment = &document["services"]["bot"]["environment"];
                    let carried = environment
                        .as_object()
                        .unwrap()
                        .values()
                        .filter_map(Value::as_str)
                        .any(|carried| carried.replace("$$", "$") == *value);
                    let secret = rendered.environment.iter().any(|entry| entry.value == *value);
                    assert!(carried || secret, "{parameter}={value:?} was not carried as a value");
                }
            }
        }
    }
}

/// Coolify replaces `{{team.X}}`, `{{project.X}}` and `{{environment.X}}` in compose values and
/// in env-API values whatever `is_literal` says, and turns a compose value that begins with `$`
/// into a variable of the stack: every parameter refuses both, secrets included.
#[test]
fn coolify_placeholders_and_leading_dollars_are_refused_in_every_parameter() {
    let benign = sample_parameters("telegram-bot");
    let placeholders = [
        "{{team.ROUTER_MASTER_KEY}}",
        "prefix {{ project.DB_PASSWORD }} suffix",
        "{{environment.X}}",
        "{{}}",
        "https://router.example/{{team.X}}",
    ];
    for parameter in
        ["system_prompt", "model", "router_base_url", "router_api_key", "telegram_bot_token"]
    {
        for value in placeholders {
            let mut parameters = benign.clone();
            parameters.insert(parameter.to_owned(), value.to_owned());
            let error = render_with("telegram-bot", PlanTier::Team, "bot", &parameters)
                .expect_err(&format!("{parameter}={value:?} must be refused"));
            let message = chain(&error);
            assert!(message.contains(&format!("parameter `{parameter}`")), "{message}");
        }
    }
    for value in ["$HOME", "${HTTPS_PROXY:-http://attacker.example}", "  $X", "$$"] {
        let mut parameters = benign.clone();
        parameters.insert("system_prompt".to_owned(), value.to_owned());
        let error = render_with("telegram-bot", PlanTier::Team, "bot", &parameters).unwrap_err();
        assert!(chain(&error).contains("begins with `$`"), "{}", chain(&error));
    }
    // Braces that Coolify's pattern does not match stay allowed: across a line, or single.
    let mut parameters = benign.clone();
    parameters.insert("system_prompt".to_owned(), "Use {x} and {{\n}} freely".to_owned());
    render_with("telegram-bot", PlanTier::Team, "bot", &parameters).unwrap();
}

#[test]
fn the_system_prompt_keeps_newlines_and_unicode_but_not_nul() {
    let mut parameters = sample_parameters("telegram-bot");
    parameters
        .insert("system_prompt".into(), "Du bist hilfreich.\nAntworte kurz: ja?\n${X} $Y".into());
    let rendered = render_with("telegram-bot", PlanTier::Starter, "bot", &parameters).unwrap();
    let document: Value = serde_norway::from_str(&rendered.compose_yaml).unwrap();
    assert_eq!(
        document["services"]["bot"]["environment"]["SYSTEM_PROMPT"],
        "Du bist hilfreich.\nAntworte kurz: ja?\n$${X} $$Y"
    );
    parameters.insert("system_prompt".into(), "a\0b".into());
    let error = render_with("telegram-bot", PlanTier::Starter, "bot", &parameters).unwrap_err();
    assert!(
        chain(&error).contains("parameter `system_prompt` contains the control character '\\0'"),
        "{}",
        chain(&error)
    );
}

#[test]
fn unknown_parameters_are_refused() {
    let mut parameters = sample_parameters("telegram-bot");
    parameters.insert("privileged".into(), "true".into());
    let error = render_with("telegram-bot", PlanTier::Starter, "bot", &parameters).unwrap_err();
    assert!(chain(&error).contains("unknown parameter `privileged`"), "{}", chain(&error));
}

#[test]
fn hostile_stack_names_are_refused_before_rendering() {
    for name in HOSTILE.iter().copied().chain([
        "a\nb",
        "UPPER",
        "under_score",
        "dot.ted",
        "-dash",
        "x--y",
        "",
    ]) {
        assert!(StackName::parse(name).is_err(), "{name:?}");
    }
}

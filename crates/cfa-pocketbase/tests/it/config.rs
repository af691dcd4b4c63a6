//! `agent_stacks.config` holds only a template's declared non-secret parameters, each valid as
//! the renderer checks it: one table of values goes through cfa-templates' `check_parameter`
//! and through PocketBase (the tenant's create), and the verdicts must agree. The audit log
//! never keeps a credential pasted into a parameter.

use cfa_pocketbase::{AuditQuery, NewStack, PocketBaseErrorKind, StackPatch};
use serde_json::{Value, json};

use crate::common::{pending, world};

fn values() -> Vec<String> {
    let mut values: Vec<String> = [
        "",
        "hello",
        "gpt-4o-mini",
        "a\nb",
        "a\tb",
        "a\0b",
        "a\u{85}b",
        "line\u{2028}sep",
        "$HOME",
        "  $X",
        "\u{3000}$X",
        "costs $5",
        "{{team.X}}",
        "say {{ project.KEY }}",
        "{{\n}}",
        "{x}",
        "5",
        "+5",
        "-1",
        "0",
        "99999",
        "abc",
        "true",
        "YES",
        "No",
        "https://router.cloudfreedom.test/v1",
        "http://10.0.0.1:8080/x",
        "HTTPS://Router.Example/V1",
        "https://u:p@h.example/",
        "https://h.example/?q=1",
        "https://h.example/#f",
        "https://h.example:99999/",
        "ftp://h.example/",
        "1,-2,3",
        "admin@example.com",
        "ünïcödé 🚀",
    ]
    .iter()
    .map(|value| (*value).to_owned())
    .collect();
    values.push("x".repeat(256));
    values.push("x".repeat(257));
    values.push("ü".repeat(129));
    values
}

#[tokio::test]
async fn config_is_checked_in_pocketbase_exactly_as_the_renderer_checks_it() {
    let world = world(1000).await;
    let catalogue =
        cfa_templates::Catalogue::load(&cfa_templates::repository_templates_dir()).unwrap();
    let mut disagreements = Vec::new();
    let mut checked = 0;
    for template in catalogue.templates() {
        for (name, parameter) in &template.manifest.parameters {
            if parameter.kind == cfa_templates::manifest::ParameterType::Secret {
                continue;
            }
            for value in values() {
                let renderer =
                    cfa_templates::params::check_parameter(template, name, &value).is_ok();
                let mut config = serde_json::Map::new();
                config.insert(name.clone(), Value::from(value.clone()));
                let stack = NewStack {
                    config: Value::Object(config),
                    ..NewStack::pending(&world.tenant_a.id, template.name(), &format!("s{checked}"))
                };
                let pocketbase = match world.a.stack_create(&stack).await {
                    Ok(created) => {
                        world.superuser.stack_delete(&created.id).await.unwrap();
                        true
                    }
                    Err(error) if error.kind == PocketBaseErrorKind::BadRequest => false,
                    Err(error) => panic!("{error}"),
                };
                if renderer != pocketbase {
                    disagreements.push(format!(
                        "{}.{name} = {value:?}: renderer {renderer}, pocketbase {pocketbase}",
                        template.name()
                    ));
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} checks");
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

#[tokio::test]
async fn a_tenant_cannot_put_secrets_or_undeclared_keys_into_config() {
    let world = world(5).await;
    // Sent raw, as an attacker's own client would (ours refuses secret-looking keys itself).
    for config in [
        json!({ "router_api_key": "sk-live-0123456789abcdef" }),
        json!({ "telegram_bot_token": "123456789:AAbbccddeeffgghhiijjkkllmmnnooppqq" }),
        json!({ "privileged": "true" }),
        json!({ "system_prompt": 42 }),
        json!(["system_prompt"]),
    ] {
        let body = json!({
            "tenant_id": world.tenant_a.id, "template": "telegram-bot", "stack_name": "leaky",
            "status": "pending", "config": config,
        });
        let error = world
            .a
            .call_raw(reqwest::Method::POST, "api/collections/agent_stacks/records", Some(&body))
            .await
            .unwrap_err();
        assert_eq!(error.kind, PocketBaseErrorKind::BadRequest, "{config}: {error}");
    }
    let stack = world.a.stack_create(&pending(&world.tenant_a, "clean")).await.unwrap();
    let path = format!("api/collections/agent_stacks/records/{}", stack.id);
    let body = json!({ "config": { "router_api_key": "sk-live-0123456789abcdef" } });
    let error = world.a.call_raw(reqwest::Method::PATCH, &path, Some(&body)).await.unwrap_err();
    assert_eq!(error.kind, PocketBaseErrorKind::BadRequest, "{error}");

    // A credential pasted into a declared string parameter is stored (it is the tenant's text)
    // but the audit log keeps `***`.
    let pasted = "please use sk-live-0123456789abcdefghij for this";
    let patch =
        StackPatch { config: Some(json!({ "system_prompt": pasted })), ..StackPatch::default() };
    world.a.stack_update(&stack.id, &patch).await.unwrap();
    let entries = world
        .superuser
        .audit_list(&AuditQuery { stack: Some("clean".to_owned()), ..AuditQuery::default() })
        .await
        .unwrap();
    let text = serde_json::to_string(
        &entries.iter().map(|entry| entry.after.clone()).collect::<Vec<Value>>(),
    )
    .unwrap();
    assert!(!text.contains("sk-live"), "{text}");
    assert!(text.contains("***"), "{text}");
}

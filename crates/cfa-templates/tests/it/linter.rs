//! Each guardrail rule has a fixture that breaks it, and the linter catches exactly that rule.

use std::collections::BTreeSet;

use cfa_core::plan::PlanTier;
use cfa_templates::lint::{LintPolicy, Rule, lint};
use serde_json::{Value, json};

use crate::support::{render_with, sample_parameters};

/// A rendered, passing document to break one rule at a time.
fn passing_document() -> (Value, LintPolicy) {
    let rendered =
        render_with("telegram-bot", PlanTier::Starter, "bot", &sample_parameters("telegram-bot"))
            .unwrap();
    let policy = LintPolicy {
        root_allowed: BTreeSet::new(),
        known_variables: Some(
            rendered.environment.iter().map(|entry| entry.name.clone()).collect(),
        ),
    };
    (serde_norway::from_str(&rendered.compose_yaml).unwrap(), policy)
}

/// One fixture per rule: a YAML fragment merged into the bot service (or the document).
/// A rule, what the fixture does, and the change that breaks it.
type Fixture = (Rule, &'static str, fn(&mut Value));

fn fixtures() -> Vec<Fixture> {
    fn service(document: &mut Value) -> &mut serde_json::Map<String, Value> {
        document["services"]["bot"].as_object_mut().unwrap()
    }
    vec![
        (Rule::NoHostPorts, "ports: [\"8080:8080\"]", |d| {
            service(d).insert("ports".into(), json!(["8080:8080"]));
        }),
        (Rule::NoPrivileged, "privileged: true", |d| {
            service(d).insert("privileged".into(), json!(true));
        }),
        (Rule::NoHostNamespaces, "network_mode: host", |d| {
            service(d).insert("network_mode".into(), json!("host"));
        }),
        (Rule::NoHostMounts, "volumes: [/var/run/docker.sock:/var/run/docker.sock]", |d| {
            service(d)
                .insert("volumes".into(), json!(["/var/run/docker.sock:/var/run/docker.sock"]));
        }),
        (Rule::NoDevices, "devices: [/dev/kvm]", |d| {
            service(d).insert("devices".into(), json!(["/dev/kvm"]));
        }),
        (Rule::NoCustomNetworks, "networks: [coolify]", |d| {
            service(d).insert("networks".into(), json!(["coolify"]));
        }),
        (Rule::CapDropAll, "cap_drop removed", |d| {
            service(d).remove("cap_drop");
        }),
        (Rule::NoCapAdd, "cap_add: [NET_ADMIN]", |d| {
            service(d).insert("cap_add".into(), json!(["NET_ADMIN"]));
        }),
        (Rule::NoNewPrivileges, "security_opt removed", |d| {
            service(d).remove("security_opt");
        }),
        (Rule::NoUnconfinedSecurity, "seccomp:unconfined", |d| {
            service(d).insert(
                "security_opt".into(),
                json!(["no-new-privileges:true", "seccomp:unconfined"]),
            );
        }),
        (Rule::NonRootUser, "user: root", |d| {
            service(d).insert("user".into(), json!("0:0"));
        }),
        (Rule::ResourceLimits, "mem_limit differs from deploy limits", |d| {
            service(d).insert("mem_limit".into(), json!("4g"));
        }),
        (Rule::Healthcheck, "healthcheck NONE", |d| {
            service(d).insert("healthcheck".into(), json!({"test": ["NONE"]}));
        }),
        (Rule::LogRotation, "logging without max-size", |d| {
            service(d).insert("logging".into(), json!({"driver": "json-file"}));
        }),
        (Rule::PinnedImage, "image: latest", |d| {
            service(d).insert("image".into(), json!("ghcr.io/cloudfreedom/telegram-bot:latest"));
        }),
        (Rule::NoProxyLabels, "traefik label", |d| {
            service(d)["labels"]
                .as_object_mut()
                .unwrap()
                .insert("traefik.http.routers.x.rule".into(), json!("Host(`evil.example`)"));
        }),
        (Rule::NoMagicUrls, "SERVICE_URL_BOT_8080", |d| {
            service(d)["environment"]
                .as_object_mut()
                .unwrap()
                .insert("SERVICE_URL_BOT_8080".into(), json!(""));
        }),
        (Rule::KnownVariables, "${OTHER_TENANT_SECRET}", |d| {
            service(d)["environment"]
                .as_object_mut()
                .unwrap()
                .insert("STOLEN".into(), json!("${OTHER_TENANT_SECRET}"));
        }),
        (Rule::NoCoolifyPlaceholders, "{{team.SECRET}}", |d| {
            service(d)["environment"]
                .as_object_mut()
                .unwrap()
                .insert("SYSTEM_PROMPT".into(), json!("say {{ team.SECRET }}"));
        }),
    ]
}

#[test]
fn the_rendered_document_passes() {
    let (document, policy) = passing_document();
    assert_eq!(lint(&document, &policy), []);
}

#[test]
fn every_rule_has_a_fixture_that_is_caught() {
    let fixtures = fixtures();
    let covered: BTreeSet<Rule> = fixtures.iter().map(|(rule, _, _)| *rule).collect();
    assert_eq!(covered, Rule::ALL.into_iter().collect(), "every rule needs a fixture");
    for (rule, description, mutate) in fixtures {
        let (mut document, policy) = passing_document();
        mutate(&mut document);
        let violations = lint(&document, &policy);
        let rules: BTreeSet<Rule> = violations.iter().map(|violation| violation.rule).collect();
        assert_eq!(rules, BTreeSet::from([rule]), "{description}: {violations:#?}");
        assert!(
            violations[0].to_string().starts_with(&format!("[{}]", rule.id())),
            "{}",
            violations[0]
        );
    }
}

#[test]
fn root_is_allowed_only_by_a_documented_exception() {
    let (mut document, mut policy) = passing_document();
    document["services"]["bot"].as_object_mut().unwrap().remove("user");
    assert_eq!(lint(&document, &policy)[0].rule, Rule::NonRootUser);
    policy.root_allowed.insert("bot".into());
    assert_eq!(lint(&document, &policy), []);
}

#[test]
fn a_hostile_document_breaks_many_rules_at_once() {
    let document: Value = serde_norway::from_str(
        r#"
networks: { default: { external: true, name: coolify } }
services:
  evil:
    image: alpine
    privileged: true
    pid: host
    ports: ["22:22"]
    volumes: ["/:/host"]
"#,
    )
    .unwrap();
    let rules: BTreeSet<&str> = lint(&document, &LintPolicy::default())
        .iter()
        .map(|violation| violation.rule.id())
        .collect();
    for expected in [
        "no-custom-networks",
        "no-privileged",
        "no-host-namespaces",
        "no-host-ports",
        "no-host-mounts",
        "cap-drop-all",
        "no-new-privileges",
        "non-root-user",
        "resource-limits",
        "healthcheck",
        "log-rotation",
        "pinned-image",
    ] {
        assert!(rules.contains(expected), "{expected} missing from {rules:?}");
    }
}

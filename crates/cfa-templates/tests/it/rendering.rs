//! Every template under every plan that allows it: snapshots, schema validation, guardrails.

use cfa_core::plan::{PlanTable, PlanTier};
use cfa_core::resources::Resources;
use cfa_templates::lint::{LintPolicy, lint};
use serde_json::Value;
use std::io::Write as _;

use crate::support::{
    ROUTER_KEY, TELEGRAM_TOKEN, catalogue, chain, render_with, sample_parameters,
};

/// (template, plan) pairs the built-in plans allow.
fn allowed_pairs() -> Vec<(String, PlanTier)> {
    let plans = PlanTable::builtin();
    let mut pairs = Vec::new();
    for name in catalogue().names() {
        for plan in plans.plans() {
            if plan.allows_template(name) {
                pairs.push((name.to_owned(), plan.tier));
            }
        }
    }
    pairs
}

#[test]
fn every_template_renders_under_every_plan_that_allows_it() {
    let pairs = allowed_pairs();
    // starter: bot; team: bot; business: bot, openclaw; sovereign: all three.
    assert_eq!(pairs.len(), 7, "{pairs:?}");
    for (template, plan) in pairs {
        let rendered = render_with(&template, plan, "demo", &sample_parameters(&template))
            .unwrap_or_else(|error| panic!("{template} under {plan}: {}", chain(&error)));
        let environment: Vec<String> = rendered
            .redacted_environment()
            .iter()
            .map(|entry| {
                format!(
                    "{}={}{}",
                    entry.name,
                    entry.value,
                    if entry.secret { " (secret)" } else { "" }
                )
            })
            .collect();
        let summary = format!(
            "url: {:?}\nlimits: {}\nservice_limits: {:?}\ngenerated: {:?}\nenvironment: {:?}\nconfig: {:?}\n---\n{}",
            rendered.url.as_ref().map(|url| format!("{} -> {}", url.service, url.url)),
            rendered.limits,
            rendered
                .service_limits
                .iter()
                .map(|(name, limits)| format!("{name}: {limits}"))
                .collect::<Vec<_>>(),
            rendered.generated_variables,
            environment,
            rendered.config,
            rendered.compose_yaml,
        );
        insta::assert_snapshot!(format!("{template}-{plan}"), summary);
    }
}

#[test]
fn base_llm_without_litellm_talks_to_the_router() {
    let mut parameters = sample_parameters("base-llm");
    parameters.insert("with_litellm".into(), "false".into());
    let rendered = render_with("base-llm", PlanTier::Sovereign, "chat", &parameters).unwrap();
    assert_eq!(rendered.compose.services.keys().collect::<Vec<_>>(), ["open-webui"]);
    let webui = &rendered.compose.services["open-webui"];
    assert_eq!(webui.environment["OPENAI_API_BASE_URL"], "https://router.cloudfreedom.de/v1");
    assert_eq!(webui.environment["OPENAI_API_KEY"], "${ROUTER_API_KEY}");
    assert!(webui.depends_on.is_empty());
    insta::assert_snapshot!("base-llm-sovereign-without-litellm", rendered.compose_yaml);
    // Without LiteLLM the stack needs less.
    assert_eq!(rendered.requirements.minimum, Resources::new(1500, 2048, 0));
}

/// The resource figures cfa-core's admission tests assume are the real manifests'.
#[test]
fn template_requirements_match_the_admission_tests() {
    let check = |template: &str,
                 minimum: Resources,
                 profile: Resources,
                 disk_mb: u32,
                 image_disk_mb: &[u32]| {
        let rendered =
            render_with(template, PlanTier::Sovereign, "demo", &sample_parameters(template))
                .unwrap();
        assert_eq!(rendered.requirements.minimum, minimum, "{template}");
        assert_eq!(rendered.requirements.profile, profile, "{template}");
        assert_eq!(rendered.requirements.disk_mb, disk_mb, "{template}");
        let images: Vec<u32> =
            rendered.requirements.images.iter().map(|image| image.disk_mb).collect();
        assert_eq!(images, image_disk_mb, "{template}");
        for footprint in &rendered.requirements.images {
            assert!(
                rendered.compose.services.values().any(|service| service.image == footprint.image),
                "{template}: {} is an image the stack runs",
                footprint.image
            );
        }
    };
    check("telegram-bot", Resources::new(100, 64, 0), Resources::new(500, 256, 0), 0, &[16]);
    check(
        "openclaw-agent",
        Resources::new(1000, 1024, 0),
        Resources::new(2000, 2048, 0),
        2048,
        &[1536],
    );
    // Services in name order: litellm, open-webui.
    check(
        "base-llm",
        Resources::new(2000, 3072, 0),
        Resources::new(3000, 5120, 0),
        5120,
        &[2048, 6144],
    );
    // Without LiteLLM its image is not pulled either.
    let mut parameters = sample_parameters("base-llm");
    parameters.insert("with_litellm".to_owned(), "false".to_owned());
    let rendered = render_with("base-llm", PlanTier::Sovereign, "demo", &parameters).unwrap();
    let images: Vec<u32> = rendered.requirements.images.iter().map(|image| image.disk_mb).collect();
    assert_eq!(images, [6144]);
}

#[test]
fn service_limits_add_up_to_at_most_the_stack_limits() {
    for (template, plan) in allowed_pairs() {
        let rendered = render_with(&template, plan, "demo", &sample_parameters(&template)).unwrap();
        let total = rendered
            .service_limits
            .values()
            .fold(Resources::ZERO, |sum, limits| sum.saturating_add(*limits));
        assert!(
            total.millicpus <= rendered.limits.millicpus,
            "{template}/{plan}: {total} > {}",
            rendered.limits
        );
        assert!(
            total.memory_mb <= rendered.limits.memory_mb,
            "{template}/{plan}: {total} > {}",
            rendered.limits
        );
        for (service, limits) in &rendered.service_limits {
            let compose = &rendered.compose.services[service];
            assert_eq!(
                compose.mem_limit.as_deref(),
                Some(format!("{}m", limits.memory_mb).as_str())
            );
        }
    }
}

#[test]
fn openclaw_heap_cap_fits_its_memory_limit() {
    for plan in [PlanTier::Business, PlanTier::Sovereign] {
        let rendered =
            render_with("openclaw-agent", plan, "agent", &sample_parameters("openclaw-agent"))
                .unwrap();
        let service = &rendered.compose.services["openclaw"];
        let memory_mb = rendered.service_limits["openclaw"].memory_mb;
        // Sized by conformance (scripts/conformance): see the template's NODE_OPTIONS.
        let heap: u32 = service.environment["NODE_OPTIONS"]
            .strip_prefix("--max-semi-space-size=4 --max-old-space-size=")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(heap, memory_mb * 50 / 100, "{plan}");
    }
}

#[test]
fn refusals_name_what_would_satisfy_them() {
    let error = render_with(
        "openclaw-agent",
        PlanTier::Team,
        "agent",
        &sample_parameters("openclaw-agent"),
    )
    .unwrap_err();
    assert!(chain(&error).contains("the business plan allows it"), "{}", chain(&error));
    let error = render_with("base-llm", PlanTier::Business, "chat", &sample_parameters("base-llm"))
        .unwrap_err();
    assert!(chain(&error).contains("the sovereign plan allows it"), "{}", chain(&error));
    let mut missing = sample_parameters("telegram-bot");
    missing.remove("telegram_bot_token");
    let error = render_with("telegram-bot", PlanTier::Starter, "bot", &missing).unwrap_err();
    assert_eq!(
        chain(&error),
        "cannot render `telegram-bot` for acme/bot: parameter `telegram_bot_token` is required\nhint: the bot's token from @BotFather, like 123456789:AA..."
    );
}

#[test]
fn secrets_never_reach_the_compose() {
    for (template, plan) in allowed_pairs() {
        let rendered = render_with(&template, plan, "demo", &sample_parameters(&template)).unwrap();
        assert!(!rendered.compose_yaml.contains(ROUTER_KEY), "{template}");
        assert!(!rendered.compose_yaml.contains(TELEGRAM_TOKEN), "{template}");
        assert!(
            rendered.environment.iter().all(|entry| entry.secret),
            "only secrets go through the env API"
        );
        assert!(
            rendered.config.values().all(|value| value != ROUTER_KEY && value != TELEGRAM_TOKEN)
        );
        assert!(rendered.redacted_environment().iter().all(|entry| entry.value == "***"));
    }
}

/// Drops the keys only Coolify understands, as Coolify does before `docker compose` runs.
fn strip_coolify_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for key in ["content", "is_directory", "isDirectory", "exclude_from_hc"] {
                map.remove(key);
            }
            map.values_mut().for_each(strip_coolify_keys);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_coolify_keys),
        _ => {}
    }
}

/// The compose-spec schema, or `None` on a clone without `../shared` outside CI (one printed
/// line says the check was skipped); with `CI=true` a missing schema is an error.
fn compose_spec_validator() -> Option<jsonschema::Validator> {
    let path =
        std::env::var("CFA_COMPOSE_SPEC").map(std::path::PathBuf::from).unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/compose/compose-spec.json")
        });
    let in_ci = std::env::var("CI")
        .is_ok_and(|value| !value.is_empty() && value != "false" && value != "0");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if !in_ci => {
            // Straight to the process's stderr: libtest captures `eprintln!` of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "skipping the compose-spec validation: cannot read {} ({error}); set \
                 CFA_COMPOSE_SPEC or put ../shared beside the repository",
                path.display()
            );
            return None;
        }
        Err(error) => panic!(
            "read the compose-spec schema at {}: {error} (CI=true: this check may not be skipped)",
            path.display()
        ),
    };
    let mut schema: Value = serde_json::from_str(&text).unwrap();
    // The file names its draft by an https URL the validator does not know offline; the
    // schema is draft-07, so say so directly.
    schema.as_object_mut().unwrap().remove("$schema");
    Some(jsonschema::draft7::new(&schema).expect("the compose-spec schema compiles"))
}

#[test]
fn every_rendered_compose_validates_against_the_compose_spec() {
    let Some(validator) = compose_spec_validator() else { return };
    let mut variants: Vec<(String, PlanTier, std::collections::BTreeMap<String, String>)> =
        allowed_pairs()
            .into_iter()
            .map(|(template, plan)| {
                let parameters = sample_parameters(&template);
                (template, plan, parameters)
            })
            .collect();
    let mut without_litellm = sample_parameters("base-llm");
    without_litellm.insert("with_litellm".into(), "false".into());
    variants.push(("base-llm".into(), PlanTier::Sovereign, without_litellm));
    for (template, plan, parameters) in variants {
        let rendered = render_with(&template, plan, "demo", &parameters).unwrap();
        // What Coolify receives is the YAML text: validate that, parsed back.
        let mut document: Value = serde_norway::from_str(&rendered.compose_yaml).unwrap();
        assert!(
            lint(&document, &LintPolicy::default())
                .iter()
                .all(|violation| { violation.rule == cfa_templates::lint::Rule::NonRootUser })
        );
        strip_coolify_keys(&mut document);
        let errors: Vec<String> = validator
            .iter_errors(&document)
            .map(|error| format!("{} at {}", error, error.instance_path))
            .collect();
        assert!(errors.is_empty(), "{template}/{plan}: {errors:#?}");
    }
}

#[test]
fn the_catalogue_lists_the_three_templates() {
    assert_eq!(
        catalogue().names().collect::<Vec<_>>(),
        ["base-llm", "openclaw-agent", "telegram-bot"]
    );
    let error = catalogue().get("wordpress").unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown template `wordpress`\nhint: known templates: base-llm, openclaw-agent, telegram-bot"
    );
}

/// What a recorded stack needs follows its recorded parameters: base-llm without LiteLLM needs
/// less, and it is exactly what a render with those values requires.
#[test]
fn recorded_requirements_follow_the_overlays() {
    let catalogue =
        cfa_templates::Catalogue::load(&cfa_templates::repository_templates_dir()).unwrap();
    let template = catalogue.get("base-llm").unwrap();
    let with = cfa_templates::recorded_requirements(template, &Default::default()).minimum;
    assert_eq!(with, Resources::new(2000, 3072, 0));
    let without = cfa_templates::recorded_requirements(
        template,
        &[("with_litellm".to_owned(), "false".to_owned())].into(),
    );
    let mut parameters = sample_parameters("base-llm");
    parameters.insert("with_litellm".to_owned(), "false".to_owned());
    let rendered = render_with("base-llm", PlanTier::Sovereign, "demo", &parameters).unwrap();
    assert_eq!(without, rendered.requirements);
    assert_eq!(without.minimum, Resources::new(1500, 2048, 0));
}

/// The openclaw-agent template as on disk, with `openclaw.json` replaced by `config`.
fn openclaw_with_config(config: Option<&str>) -> Result<cfa_templates::Template, String> {
    let folder = cfa_templates::repository_templates_dir().join("openclaw-agent");
    let read = |name: &str| std::fs::read_to_string(folder.join(name)).unwrap();
    let file = config.map_or_else(|| read("openclaw.json"), str::to_owned);
    let files = std::collections::BTreeMap::from([("openclaw.json".to_owned(), file)]);
    cfa_templates::Template::from_parts(&read("template.toml"), &read("compose.yaml"), files)
        .map_err(|error| error.to_string())
}

fn render_template(template: &cfa_templates::Template) -> Value {
    let plans = PlanTable::builtin();
    let parameters = sample_parameters("openclaw-agent");
    let rendered = cfa_templates::render(cfa_templates::RenderRequest {
        template,
        plans: &plans,
        plan: PlanTier::Business,
        tenant_resource_limits: None,
        tenant: &cfa_core::naming::TenantSlug::parse("acme").unwrap(),
        stack: &cfa_core::naming::StackName::parse("agent").unwrap(),
        base_domain: &cfa_core::naming::BaseDomain::parse("cloudfreedom.de").unwrap(),
        parameters: &parameters,
        secrets_pending: false,
    })
    .unwrap();
    serde_norway::from_str(&rendered.compose_yaml).unwrap()
}

#[test]
fn a_changed_config_file_lands_at_a_new_path_the_program_is_told() {
    // Coolify keeps the stored content of a mount path it already knows (parsers.php), so an
    // upgrade that changes a file must change the path, and the program must follow it.
    let before = render_template(&openclaw_with_config(None).unwrap());
    let changed = openclaw_with_config(Some("{ gateway: { mode: \"local\" } }\n")).unwrap();
    let after = render_template(&changed);
    let file_mount = |document: &Value| {
        let volumes = document["services"]["openclaw"]["volumes"].as_array().unwrap().clone();
        let bind = volumes.into_iter().find(|volume| volume["type"] == "bind").unwrap();
        (bind["source"].as_str().unwrap().to_owned(), bind["target"].as_str().unwrap().to_owned())
    };
    let config_path = |document: &Value| {
        document["services"]["openclaw"]["environment"]["OPENCLAW_CONFIG_PATH"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (source_before, target_before) = file_mount(&before);
    let (source_after, target_after) = file_mount(&after);
    assert_ne!(target_before, target_after);
    assert_ne!(source_before, source_after);
    assert_eq!(config_path(&before), target_before);
    assert_eq!(config_path(&after), target_after);
    assert!(target_after.starts_with("/config/cfa-") && target_after.ends_with("/openclaw.json"));
    // The same content renders to the same path: nothing changes for Coolify.
    assert_eq!(file_mount(&render_template(&openclaw_with_config(None).unwrap())).1, target_before);
}

#[test]
fn a_config_file_the_program_is_not_told_about_is_refused() {
    let folder = cfa_templates::repository_templates_dir().join("openclaw-agent");
    let read = |name: &str| std::fs::read_to_string(folder.join(name)).unwrap();
    let compose =
        read("compose.yaml").replace("      OPENCLAW_CONFIG_PATH: /config/openclaw.json\n", "");
    let files =
        std::collections::BTreeMap::from([("openclaw.json".to_owned(), read("openclaw.json"))]);
    let error = cfa_templates::Template::from_parts(&read("template.toml"), &compose, files)
        .expect_err("a file nobody reads is refused");
    assert!(error.to_string().contains("name its target `/config/openclaw.json`"), "{error}");
}

/// A tenant's stack is created before its secrets arrive: rendered without them, its compose
/// is the compose it will run with (only `${NAME}` references), with no variable for them, and
/// without the flag a missing secret is still an error.
#[test]
fn a_render_awaiting_secrets_has_the_final_compose_and_no_secret_variables() {
    let plans = PlanTable::builtin();
    let template = crate::support::catalogue().get("telegram-bot").unwrap().clone();
    let complete = sample_parameters("telegram-bot");
    let without: std::collections::BTreeMap<String, String> = complete
        .iter()
        .filter(|(name, _)| !name.contains("token") && !name.contains("key"))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let render = |parameters: &std::collections::BTreeMap<String, String>, secrets_pending| {
        cfa_templates::render(cfa_templates::RenderRequest {
            template: &template,
            plans: &plans,
            plan: PlanTier::Team,
            tenant_resource_limits: None,
            tenant: &cfa_core::naming::TenantSlug::parse("acme").unwrap(),
            stack: &cfa_core::naming::StackName::parse("bot").unwrap(),
            base_domain: &cfa_core::naming::BaseDomain::parse("cloudfreedom.de").unwrap(),
            parameters,
            secrets_pending,
        })
    };
    let full = render(&complete, false).unwrap();
    let awaiting = render(&without, true).unwrap();
    assert_eq!(awaiting.compose_yaml, full.compose_yaml);
    assert!(awaiting.environment.is_empty(), "{:?}", awaiting.redacted_environment());
    assert_eq!(full.environment.len(), 2);
    assert!(render(&without, false).is_err(), "a missing secret is an error unless awaited");
}

/// A credential the tenant reads back must be a value Coolify generates for the stack and the
/// compose uses: not a tenant's own secret, not a variable nothing sets.
#[test]
fn credentials_name_generated_variables_the_compose_uses() {
    let folder = cfa_templates::repository_templates_dir().join("openclaw-agent");
    let read = |name: &str| std::fs::read_to_string(folder.join(name)).unwrap();
    let files =
        std::collections::BTreeMap::from([("openclaw.json".to_owned(), read("openclaw.json"))]);
    let with = |credential: &str| {
        let manifest =
            format!("{}\n[credentials.extra]\n{credential}\nhelp = \"x\"\n", read("template.toml"));
        cfa_templates::Template::from_parts(&manifest, &read("compose.yaml"), files.clone())
            .map_err(|error| error.to_string())
    };
    let template = with("variable = \"SERVICE_PASSWORD_64_HOOKSTOKEN\"").unwrap();
    assert_eq!(template.manifest.credentials.len(), 3);
    let tenant_secret = with("variable = \"ROUTER_API_KEY\"").unwrap_err();
    assert!(tenant_secret.contains("SERVICE_PASSWORD_*"), "{tenant_secret}");
    let unused = with("variable = \"SERVICE_PASSWORD_NOBODY\"").unwrap_err();
    assert!(unused.contains("never uses"), "{unused}");
}

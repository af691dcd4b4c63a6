//! The image contract: the Dockerfile, the workspace version and the template agree.

use std::path::Path;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

#[test]
fn the_dockerfile_keeps_the_template_contract() {
    let dockerfile = read("Dockerfile");
    let version = env!("CARGO_PKG_VERSION");
    for expected in [
        "--target x86_64-unknown-linux-musl",
        "--profile bot-release -p telegram-bot",
        "FROM gcr.io/distroless/static-debian12:nonroot",
        "/usr/local/bin/telegram-bot",
        "USER 65532:65532",
        r#"CMD ["/usr/local/bin/telegram-bot", "healthcheck"]"#,
        r#"ENTRYPOINT ["/usr/local/bin/telegram-bot"]"#,
        "HEALTH_LISTEN=0.0.0.0:8080",
        "EXPOSE 8080",
        "org.opencontainers.image.source=",
        &format!("ARG VERSION={version}"),
        &format!("ghcr.io/cloudfreedom/telegram-bot:{version}"),
    ] {
        assert!(dockerfile.contains(expected), "Dockerfile lacks {expected:?}");
    }
}

#[test]
fn the_template_runs_this_image_with_this_healthcheck() {
    let compose = read("../../templates/telegram-bot/compose.yaml");
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        compose.contains(&format!("image: ghcr.io/cloudfreedom/telegram-bot:{version}")),
        "{compose}"
    );
    assert!(
        compose.contains(r#"["CMD", "/usr/local/bin/telegram-bot", "healthcheck"]"#),
        "{compose}"
    );
    let manifest = read("../../templates/telegram-bot/template.toml");
    assert!(manifest.contains(r#"user = "65532:65532""#));
    // Every variable the template sets is one the bot reads.
    let known: Vec<&str> = telegram_bot::config::ENV_VARS.iter().map(|(name, _)| *name).collect();
    let environment = manifest.split("[environment.bot]").nth(1).unwrap_or("");
    let names: Vec<&str> = environment
        .lines()
        .filter_map(|line| line.split_once(" = "))
        .map(|(name, _)| name.trim())
        .filter(|name| !name.starts_with('#') && !name.is_empty())
        .collect();
    assert!(!names.is_empty());
    for name in names {
        assert!(known.contains(&name), "the template sets {name}, which the bot does not read");
    }
}

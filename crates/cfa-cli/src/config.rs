//! `cfa.toml` and the environment variables that override it: the one documented list.
//!
//! Lookup: the file at `CFA_CONFIG`, else `./cfa.toml` when present, else nothing (every
//! setting then comes from the environment or its default). Environment variables win over the
//! file, so a secret such as the Coolify token never has to be written into it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

/// Every environment variable `cfa` reads, with what it sets (the README lists the same).
pub(crate) const ENVIRONMENT_VARIABLES: &[(&str, &str)] = &[
    ("CFA_CONFIG", "path of cfa.toml (default ./cfa.toml when present)"),
    ("CFA_COOLIFY_URL", "Coolify's base URL, e.g. https://coolify.example.com"),
    ("CFA_COOLIFY_TOKEN", "a Coolify API token with read, write, deploy (or root)"),
    ("CFA_PB_URL", "PocketBase's base URL, e.g. https://pb.example.com"),
    ("CFA_PB_EMAIL", "a PocketBase superuser's e-mail"),
    ("CFA_PB_PASSWORD", "that superuser's password"),
    ("CFA_BASE_DOMAIN", "the zone stack domains live under (default cloudfreedom.de)"),
    ("CFA_ROUTER_URL", "the Router's OpenAI-compatible base URL: the default router_base_url"),
    ("CFA_PROBE_URL", "probe stacks through this address (e.g. Traefik's) with a Host header"),
    ("CFA_PLANS_FILE", "a plans file laid over the built-in plan table"),
    ("CFA_TEMPLATES_DIR", "the template catalogue folder"),
    ("CFA_ACTOR", "who the audit log names (default cli:$USER)"),
    (
        "CFA_BACKUPS_SECRET_ACCESS_KEY",
        "the secret of [backups] access_key_id (the backup bucket's)",
    ),
    ("CFA_LOG", "a tracing filter for stderr logs (default warn)"),
    ("CFA_LOG_FORMAT", "text or json log lines"),
];

/// `cfa.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    pub(crate) coolify: CoolifySection,
    #[serde(default)]
    pub(crate) pocketbase: PocketBaseSection,
    #[serde(default)]
    pub(crate) platform: PlatformSection,
    #[serde(default)]
    pub(crate) engine: EngineSection,
    /// The platform's backup bucket; without it, stacks with backups are not deleted.
    pub(crate) backups: Option<BackupsSection>,
    /// Capacity of each Coolify server stacks may be placed on.
    #[serde(default)]
    pub(crate) servers: Vec<ServerSection>,
    /// The health monitor's timing and per-kind alert policies.
    #[serde(default)]
    pub(crate) monitor: MonitorSection,
    /// Where alerts go (webhook, Telegram, e-mail), the heartbeat, delivery retries: the
    /// shape is `cfa_alerts::AlertsConfig`'s.
    pub(crate) alerts: Option<cfa_alerts::AlertsConfig>,
}

/// `[monitor]`: how often it looks, and when a condition becomes an incident.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MonitorSection {
    /// Between two monitor passes of `cfa controller` and `cfa serve`, e.g. "30s" (default).
    #[serde(default, with = "optional_duration")]
    pub(crate) interval: Option<Duration>,
    /// Probes in flight at once (default 32).
    pub(crate) concurrency: Option<usize>,
    /// A stack `deploying` longer than this is stuck, e.g. "30m" (default).
    #[serde(default, with = "optional_duration")]
    pub(crate) stuck_after: Option<Duration>,
    /// How often the bucket is listed to prove the stacks' backups, e.g. "1h" (default).
    #[serde(default, with = "optional_duration")]
    pub(crate) backup_check_interval: Option<Duration>,
    /// How late a stack's newest archive may be beyond its daily period, e.g. "2h" (default).
    #[serde(default, with = "optional_duration")]
    pub(crate) backup_grace: Option<Duration>,
    /// Per incident kind (`unhealthy`, `oom_killed`, ...): `pending`, `checks`, `repeat`.
    #[serde(default)]
    pub(crate) kinds: std::collections::BTreeMap<String, KindSection>,
}

/// `[monitor.kinds.<kind>]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KindSection {
    /// How long the condition must hold before the incident opens, e.g. "60s".
    #[serde(default, with = "optional_duration")]
    pub(crate) pending: Option<Duration>,
    /// Failed checks in a row before it opens.
    pub(crate) checks: Option<u32>,
    /// Reminders while open, e.g. "4h" ("0s": none).
    #[serde(default, with = "optional_duration")]
    pub(crate) repeat: Option<Duration>,
}

/// The S3 bucket Coolify's volume backups upload to, as cfa reaches it itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupsSection {
    /// The uuid of that bucket's S3 storage in Coolify (Storages > S3, or `GET /s3-storages`).
    pub(crate) coolify_s3_storage: String,
    pub(crate) endpoint: String,
    pub(crate) bucket: String,
    pub(crate) region: String,
    pub(crate) access_key_id: String,
    /// Better in CFA_BACKUPS_SECRET_ACCESS_KEY.
    pub(crate) secret_access_key: Option<String>,
    /// Where final backups are kept in the bucket (default `cfa-final-backups`).
    pub(crate) final_prefix: Option<String>,
    /// How long a final backup may take to reach the bucket, e.g. "30m" (default).
    #[serde(default, with = "optional_duration")]
    pub(crate) final_timeout: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CoolifySection {
    pub(crate) url: Option<String>,
    pub(crate) token: Option<String>,
    /// The client-side rate budget (default 200, Coolify's own limit).
    pub(crate) requests_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PocketBaseSection {
    pub(crate) url: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) password: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlatformSection {
    pub(crate) base_domain: Option<String>,
    pub(crate) router_url: Option<String>,
    /// Origins tenants' `router_base_url` may point at, besides router_url's.
    #[serde(default)]
    pub(crate) router_origins: Vec<String>,
    pub(crate) probe_url: Option<String>,
    pub(crate) plans_file: Option<PathBuf>,
    pub(crate) templates_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EngineSection {
    /// How long a deploy may take until healthy, e.g. "5m".
    #[serde(default, with = "optional_duration")]
    pub(crate) deploy_timeout: Option<Duration>,
    /// Pause between status polls, e.g. "5s".
    #[serde(default, with = "optional_duration")]
    pub(crate) poll_interval: Option<Duration>,
    /// How long `cfa delete` waits before deleting unless `--force`, e.g. "10s".
    #[serde(default, with = "optional_duration")]
    pub(crate) delete_grace: Option<Duration>,
    /// How long after a tenant asks for a delete (`delete_requested_at`) the controller runs
    /// it, e.g. "1h" (default).
    #[serde(default, with = "optional_duration")]
    pub(crate) tenant_delete_grace: Option<Duration>,
    /// How long a service with our marker that no record claims is left alone after it was
    /// first seen, e.g. "1h" (default).
    #[serde(default, with = "optional_duration")]
    pub(crate) orphan_grace: Option<Duration>,
    /// Coolify's status interval (its status job or Sentinel push), e.g. "60s".
    #[serde(default, with = "optional_duration")]
    pub(crate) status_lag: Option<Duration>,
    /// Pause between probes of a starting stack's URL, e.g. "500ms".
    #[serde(default, with = "optional_duration")]
    pub(crate) probe_interval: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerSection {
    /// Coolify's server uuid.
    pub(crate) uuid: String,
    pub(crate) name: Option<String>,
    pub(crate) cores: f64,
    pub(crate) memory_gb: f64,
    pub(crate) free_disk_gb: f64,
    pub(crate) cpu_overcommit: Option<f64>,
    pub(crate) memory_overcommit: Option<f64>,
    pub(crate) disk_overcommit: Option<f64>,
    /// The secret this server's host agent signs its reports with (a file only you can read;
    /// the same bytes on the server). Without it, `cfa serve` takes no reports from it.
    pub(crate) agent_secret_file: Option<PathBuf>,
    /// This server's Docker engine as cfa reaches it, for `cfa backup restore` only (Coolify
    /// has no restore API): `unix:///run/cfa/<name>.sock` forwarded over SSH, or `tcp://`.
    pub(crate) docker_host: Option<String>,
}

mod optional_duration {
    //! `"90s"`, `"5m"`: humantime durations in the file.
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?;
        text.map(|text| humantime::parse_duration(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// The file (when there is one) with the environment laid over it.
#[derive(Debug, Default)]
pub(crate) struct Config {
    pub(crate) file: ConfigFile,
    pub(crate) source: Option<PathBuf>,
}

/// The configuration names the Coolify and PocketBase URLs and may hold their secrets: a file
/// another user owns or may write (planted in a shared working directory, say) could send the
/// operator's token elsewhere. Such a file is refused.
fn check_ownership(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(metadata) = std::fs::metadata(path) else { return Ok(()) };
    let me = rustix::process::geteuid().as_raw();
    // Yours, or root's (an /etc file the administrator installed).
    if metadata.uid() != me && metadata.uid() != 0 {
        return Err(crate::exit::usage(anyhow::format_err!(
            "the configuration `{}` belongs to uid {}, not to you (uid {me}): it could send your Coolify token elsewhere\nhint: use a cfa.toml you own (CFA_CONFIG names it)",
            path.display(),
            metadata.uid()
        )));
    }
    if metadata.mode() & 0o022 != 0 {
        return Err(crate::exit::usage(anyhow::format_err!(
            "the configuration `{}` may be changed by other users (mode {:o})\nhint: `chmod go-w {}`",
            path.display(),
            metadata.mode() & 0o7777,
            path.display()
        )));
    }
    Ok(())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

impl Config {
    pub(crate) fn load() -> anyhow::Result<Config> {
        let path = match env("CFA_CONFIG") {
            Some(path) => Some(PathBuf::from(path)),
            None => Some(PathBuf::from("cfa.toml")).filter(|path| path.is_file()),
        };
        match path {
            Some(path) => Config::from_file(&path),
            None => Ok(Config::default()),
        }
    }

    pub(crate) fn from_file(path: &Path) -> anyhow::Result<Config> {
        check_ownership(path)?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read the configuration `{}`", path.display()))?;
        let mut file: ConfigFile = toml::from_str(&text).map_err(|error| {
            crate::exit::usage(anyhow::format_err!(
                "the configuration `{}` is not valid: {}\nhint: the README's Configuration section lists every key",
                path.display(),
                error.message()
            ))
        })?;
        // Secret files and the spool named relative to cfa.toml are found next to it.
        let base = path.parent().filter(|parent| !parent.as_os_str().is_empty());
        let base = base.unwrap_or(Path::new("."));
        file.alerts = file.alerts.map(|alerts| alerts.with_base_dir(base));
        for server in &mut file.servers {
            if let Some(secret) =
                server.agent_secret_file.as_mut().filter(|path| path.is_relative())
            {
                *secret = base.join(&*secret);
            }
        }
        Ok(Config { file, source: Some(path.to_owned()) })
    }

    /// Each server's host agent secret, by server uuid.
    pub(crate) fn agent_secrets(
        &self,
    ) -> anyhow::Result<std::collections::BTreeMap<String, Vec<u8>>> {
        let mut secrets = std::collections::BTreeMap::new();
        for server in &self.file.servers {
            let Some(path) = &server.agent_secret_file else { continue };
            let secret = cfa_host_agent::AgentSecret::from_file(path)
                .map_err(|error| crate::exit::usage(anyhow::Error::new(error)))
                .with_context(|| format!("[[servers]] `{}`: agent_secret_file", server.uuid))?;
            secrets.insert(server.uuid.clone(), secret.expose_bytes().to_vec());
        }
        Ok(secrets)
    }

    fn required(
        &self,
        variable: &str,
        from_file: Option<&String>,
        what: &str,
    ) -> anyhow::Result<String> {
        env(variable).or_else(|| from_file.cloned()).ok_or_else(|| {
            let file = self.source.as_ref().map_or_else(
                || "cfa.toml, or name the file in CFA_CONFIG".to_owned(),
                |path| format!("`{}`", path.display()),
            );
            crate::exit::usage(anyhow::format_err!(
                "{what} is not configured\nhint: set {variable}, or put it in {file}"
            ))
        })
    }

    pub(crate) fn pocketbase_url(&self) -> anyhow::Result<String> {
        self.required("CFA_PB_URL", self.file.pocketbase.url.as_ref(), "PocketBase's URL")
    }

    pub(crate) fn pocketbase_email(&self) -> anyhow::Result<String> {
        let email = self.file.pocketbase.email.as_ref();
        self.required("CFA_PB_EMAIL", email, "the PocketBase superuser's e-mail")
    }

    pub(crate) fn pocketbase_password(&self) -> anyhow::Result<String> {
        let password = self.file.pocketbase.password.as_ref();
        self.required("CFA_PB_PASSWORD", password, "the PocketBase superuser's password")
    }

    pub(crate) fn coolify_url(&self) -> anyhow::Result<String> {
        self.required("CFA_COOLIFY_URL", self.file.coolify.url.as_ref(), "Coolify's URL")
    }

    pub(crate) fn coolify_token(&self) -> anyhow::Result<String> {
        self.required(
            "CFA_COOLIFY_TOKEN",
            self.file.coolify.token.as_ref(),
            "the Coolify API token",
        )
    }

    pub(crate) fn base_domain(&self) -> String {
        env("CFA_BASE_DOMAIN")
            .or_else(|| self.file.platform.base_domain.clone())
            .unwrap_or_else(|| "cloudfreedom.de".to_owned())
    }

    pub(crate) fn router_url(&self) -> Option<String> {
        env("CFA_ROUTER_URL").or_else(|| self.file.platform.router_url.clone())
    }

    /// The origins `url` parameters may point at: `router_origins` and router_url's origin.
    pub(crate) fn url_origins(&self) -> Vec<String> {
        let mut origins = self.file.platform.router_origins.clone();
        origins.extend(self.router_url());
        origins
    }

    pub(crate) fn probe_url(&self) -> Option<String> {
        env("CFA_PROBE_URL").or_else(|| self.file.platform.probe_url.clone())
    }

    pub(crate) fn plans_file(&self) -> Option<PathBuf> {
        self.file.platform.plans_file.clone()
    }

    pub(crate) fn templates_dir(&self) -> Option<PathBuf> {
        self.file.platform.templates_dir.clone()
    }

    pub(crate) fn actor(&self) -> String {
        env("CFA_ACTOR").unwrap_or_else(|| {
            format!("cli:{}", env("USER").unwrap_or_else(|| "operator".to_owned()))
        })
    }

    /// The backup bucket, when `[backups]` is configured.
    pub(crate) fn final_backups(&self) -> anyhow::Result<Option<cfa_engine::FinalBackupSettings>> {
        let Some(section) = &self.file.backups else { return Ok(None) };
        let secret = self.required(
            "CFA_BACKUPS_SECRET_ACCESS_KEY",
            section.secret_access_key.as_ref(),
            "the backup bucket's secret access key",
        )?;
        let settings = cfa_backup_store::BackupStoreSettings {
            endpoint: section.endpoint.clone(),
            bucket: section.bucket.clone(),
            region: section.region.clone(),
            access_key_id: section.access_key_id.clone(),
            secret_access_key: secret,
        };
        let store = cfa_backup_store::BackupStore::connect(&settings)
            .map_err(|error| crate::exit::usage(anyhow::Error::new(error)))?;
        Ok(Some(cfa_engine::FinalBackupSettings {
            store,
            coolify_s3_storage_uuid: section.coolify_s3_storage.clone(),
            prefix: section
                .final_prefix
                .clone()
                .unwrap_or_else(|| cfa_backup_store::layout::DEFAULT_FINAL_PREFIX.to_owned()),
            timeout: section.final_timeout.unwrap_or(Duration::from_secs(30 * 60)),
        }))
    }

    /// Servers by uuid, as the engine wants them.
    pub(crate) fn servers(&self) -> BTreeMap<String, cfa_engine::ServerSettings> {
        self.file
            .servers
            .iter()
            .map(|server| {
                let total = cfa_core::Resources::new(
                    (server.cores * 1000.0).round() as u32,
                    (server.memory_gb * 1024.0).round() as u32,
                    (server.free_disk_gb * 1024.0).round() as u32,
                );
                let mut settings = cfa_engine::ServerSettings::new(
                    server.name.clone().unwrap_or_else(|| server.uuid.clone()),
                    total,
                );
                if let Some(ratio) = server.cpu_overcommit {
                    settings.cpu_overcommit = ratio;
                }
                if let Some(ratio) = server.memory_overcommit {
                    settings.memory_overcommit = ratio;
                }
                if let Some(ratio) = server.disk_overcommit {
                    settings.disk_overcommit = ratio;
                }
                settings.docker_host.clone_from(&server.docker_host);
                (server.uuid.clone(), settings)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_others_own_or_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfa.toml");
        std::fs::write(&path, "[coolify]\nurl = \"https://attacker.example\"\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Config::from_file(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let error = Config::from_file(&path).unwrap_err().to_string();
        assert!(
            error.contains("may be changed by other users") && error.contains("chmod go-w"),
            "{error}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        // Only root can give a file away; elsewhere the mode check above stands for both.
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
            let error = Config::from_file(&path).unwrap_err().to_string();
            assert!(error.contains("belongs to uid 4242"), "{error}");
        }
    }

    #[test]
    fn a_full_file_parses_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfa.toml");
        std::fs::write(
            &path,
            r#"
[coolify]
url = "https://coolify.example"
requests_per_minute = 120
[pocketbase]
url = "http://127.0.0.1:8090"
email = "ops@example.com"
[platform]
base_domain = "agents.example.com"
router_url = "https://router.example/v1"
[engine]
deploy_timeout = "5m"
[[servers]]
uuid = "abc"
cores = 12
memory_gb = 31
free_disk_gb = 24
cpu_overcommit = 4.0
"#,
        )
        .unwrap();
        let config = Config::from_file(&path).unwrap();
        assert_eq!(config.file.coolify.requests_per_minute, Some(120));
        assert_eq!(config.file.engine.deploy_timeout, Some(Duration::from_secs(300)));
        let servers = config.servers();
        assert_eq!(servers["abc"].total, cfa_core::Resources::new(12_000, 31_744, 24_576));
        assert_eq!(servers["abc"].cpu_overcommit, 4.0);

        std::fs::write(&path, "[coolify]\nurll = \"x\"\n").unwrap();
        let error = format!("{:#}", Config::from_file(&path).unwrap_err());
        assert!(error.contains("unknown field `urll`"), "{error}");
    }

    #[test]
    fn the_readme_documents_every_environment_variable() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
                .unwrap();
        let configuration = &readme[readme.find("## Configuration").unwrap()..];
        for (name, _) in ENVIRONMENT_VARIABLES {
            assert!(configuration.contains(name), "README's Configuration lacks {name}");
        }
    }
}

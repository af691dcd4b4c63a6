//! Sandbox configuration: tokens and their abilities, the server it pretends to manage, timings
//! and limits.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A Sanctum token ability (`notes/coolify.md` §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ability {
    Root,
    Write,
    Deploy,
    Read,
    #[serde(rename = "read:sensitive")]
    ReadSensitive,
}

impl Ability {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Write => "write",
            Self::Deploy => "deploy",
            Self::Read => "read",
            Self::ReadSensitive => "read:sensitive",
        }
    }

    /// Abilities a `member` of the team may not hold (`EnsureTokenBelongsToCurrentTeamMember`).
    pub fn is_elevated(self) -> bool {
        !matches!(self, Self::Read)
    }
}

/// The token owner's role in the team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamRole {
    Owner,
    Admin,
    Member,
}

/// One API token the sandbox accepts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxToken {
    /// The plain token, `<id>|<secret>` like Sanctum's.
    pub token: String,
    pub abilities: Vec<Ability>,
    pub role: TeamRole,
}

impl SandboxToken {
    pub fn new(token: impl Into<String>, abilities: &[Ability]) -> Self {
        Self { token: token.into(), abilities: abilities.to_vec(), role: TeamRole::Owner }
    }
}

/// The server the sandbox starts with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxServerConfig {
    pub name: String,
    pub ip: String,
    /// Empty means sslip.io URLs on the server's IP, as Coolify does.
    pub wildcard_domain: Option<String>,
    /// Destination (Docker network) names; Coolify's default is one network called `coolify`.
    pub destinations: Vec<String>,
}

impl Default for SandboxServerConfig {
    fn default() -> Self {
        Self {
            name: "localhost".to_owned(),
            ip: "10.0.0.10".to_owned(),
            wildcard_domain: None,
            destinations: vec!["coolify".to_owned()],
        }
    }
}

/// What runs the services' containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeKind {
    /// No containers: their states are computed from timestamps and faults.
    #[default]
    Simulated,
    /// A real Docker engine (`DOCKER_HOST`) with Compose v2, and the front standing in for Traefik.
    Docker,
}

/// Everything the sandbox needs to start.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// `127.0.0.1:0` picks a free port.
    pub listen: std::net::SocketAddr,
    pub tokens: Vec<SandboxToken>,
    pub version: String,
    pub servers: Vec<SandboxServerConfig>,
    /// How long a start takes before containers run (the `StartService` activity).
    pub deploy_delay: Duration,
    /// After the deploy, how long containers with a healthcheck stay `running:starting`.
    pub healthcheck_delay: Duration,
    /// How long a deleted service stays visible (the queued `DeleteResourceJob`).
    pub delete_delay: Duration,
    /// How long a backup run takes.
    pub backup_duration: Duration,
    /// Coolify's `API_RATE_LIMIT` (requests per `rate_limit_window`, per client IP).
    pub rate_limit: u32,
    /// 60 s in Coolify; tests shrink it.
    pub rate_limit_window: Duration,
    pub api_enabled: bool,
    /// `None` allows everyone (Coolify's `0.0.0.0`).
    pub allowed_ips: Option<Vec<IpAddr>>,
    /// Persist state here as JSON (loaded at start if present).
    pub state_file: Option<PathBuf>,
    /// Keep every request and response for contract tests.
    pub record_exchanges: bool,
    /// How often the status job (`GetContainersStatus`, run by `ServerManagerJob` every minute)
    /// stores the containers' statuses. Zero (the default, simulated runtime only) writes them
    /// whenever they are read.
    pub status_interval: Duration,
    pub runtime: RuntimeKind,
    /// Images the engine does not have: a start of a service using one fails as Coolify's
    /// failed pull does (the sandbox never pulls).
    pub missing_images: Vec<String>,
    /// Answer a created backup schedule sent without `timeout` with `"timeout": null`, as
    /// Coolify >= 4.3.9 does (`VolumeBackupsController::persistSchedule`; its OpenAPI says
    /// integer, a deviation the contract check lists). Off models 4.3.0 to 4.3.8.
    pub backup_timeout_null_on_create: bool,
    /// Docker runtime: `None` uses `DOCKER_HOST` or the default socket.
    pub docker_host: Option<String>,
    /// Docker runtime: the services' work directories (`<dir>/<uuid>/docker-compose.yml`, `.env`).
    pub docker_work_dir: PathBuf,
    /// Docker runtime: where volume backups write their archives.
    pub docker_backup_dir: PathBuf,
    /// Docker runtime: where the front (the Traefik stand-in) listens.
    pub front_listen: std::net::SocketAddr,
}

/// The token a default sandbox accepts (root, owner).
pub const DEFAULT_TOKEN: &str = "1|sandbox-root-token";

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            tokens: vec![SandboxToken::new(DEFAULT_TOKEN, &[Ability::Root])],
            version: "4.3.11".to_owned(),
            servers: vec![SandboxServerConfig::default()],
            deploy_delay: Duration::from_secs(2),
            healthcheck_delay: Duration::ZERO,
            delete_delay: Duration::from_secs(1),
            backup_duration: Duration::from_millis(500),
            rate_limit: 200,
            rate_limit_window: Duration::from_secs(60),
            api_enabled: true,
            allowed_ips: None,
            state_file: None,
            record_exchanges: false,
            status_interval: Duration::ZERO,
            runtime: RuntimeKind::Simulated,
            missing_images: Vec::new(),
            backup_timeout_null_on_create: true,
            docker_host: None,
            docker_work_dir: std::env::temp_dir().join("coolify-sandbox").join("services"),
            docker_backup_dir: std::env::temp_dir().join("coolify-sandbox").join("backups"),
            front_listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

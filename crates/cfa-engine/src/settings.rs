//! The engine's resolved settings: base domain, servers' capacity, timings, the readiness probe
//! and the failpoint hook tests use to "crash" the engine after a step.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cfa_core::admission::{DEFAULT_CPU_OVERCOMMIT, DEFAULT_SYSTEM_RESERVE};
use cfa_core::{BaseDomain, PlanTable, Resources, ServerCapacity};

use crate::steps::Step;

/// A failpoint decided to stop the engine here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Injected;

/// Called after every completed step with the tenant, stack and step; `Err(Injected)` makes the
/// engine return at once, as a crash would (no error is recorded).
pub type Failpoint = Arc<dyn Fn(&str, &str, Step) -> Result<(), Injected> + Send + Sync>;

/// One Coolify server's machine, as the operator configured it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub name: String,
    /// Cores, RAM and free disk.
    pub total: Resources,
    pub system_reserve: Resources,
    pub cpu_overcommit: f64,
    pub memory_overcommit: f64,
    pub disk_overcommit: f64,
    /// The server's Docker engine as this machine reaches it (`unix:///run/cfa/<name>.sock`,
    /// an SSH-forwarded socket; or `tcp://`): only a restore uses it, since Coolify has no
    /// volume-restore API.
    pub docker_host: Option<String>,
}

impl ServerSettings {
    /// A machine with the default reserve and ratios (CPU x4, RAM and disk not overcommitted).
    pub fn new(name: impl Into<String>, total: Resources) -> ServerSettings {
        ServerSettings {
            name: name.into(),
            total,
            system_reserve: DEFAULT_SYSTEM_RESERVE,
            cpu_overcommit: DEFAULT_CPU_OVERCOMMIT,
            memory_overcommit: 1.0,
            disk_overcommit: 1.0,
            docker_host: None,
        }
    }

    /// The server with nothing reserved yet.
    pub(crate) fn capacity(&self, server_uuid: &str) -> ServerCapacity {
        ServerCapacity {
            id: server_uuid.to_owned(),
            name: self.name.clone(),
            total: self.total,
            system_reserve: self.system_reserve,
            cpu_overcommit: self.cpu_overcommit,
            memory_overcommit: self.memory_overcommit,
            disk_overcommit: self.disk_overcommit,
            reserved: Resources::ZERO,
            images: Default::default(),
        }
    }
}

/// How readiness is probed.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSettings {
    /// `None` probes `https://<domain>/`. `Some(base)` connects to `base` instead and sends
    /// `Host: <domain>`, the way Traefik routes (tests and the demo point it at a local server).
    pub base_url: Option<url::Url>,
    pub path: String,
    pub timeout: Duration,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings { base_url: None, path: "/".to_owned(), timeout: Duration::from_secs(5) }
    }
}

/// Everything the engine needs besides its clients and the catalogue.
#[derive(Clone)]
pub struct EngineSettings {
    pub base_domain: BaseDomain,
    pub plans: PlanTable,
    /// Who the audit log names, e.g. `cli:alice` or `controller`.
    pub actor: String,
    /// Machines by Coolify server uuid. A server Coolify lists but this map lacks is taken as
    /// the seed host (12 cores, 31 GB, 24 GB free disk), with a warning.
    pub servers: BTreeMap<String, ServerSettings>,
    /// How long a start may take until Coolify reports healthy and the probe answers.
    pub deploy_timeout: Duration,
    /// How long stop and delete may take.
    pub operation_timeout: Duration,
    /// Pause between Coolify status reads (Coolify's statuses lag up to a minute).
    pub poll_interval: Duration,
    /// Pause between probes of a stack's URL while waiting for it: the probe costs no Coolify
    /// request, and `running` is recorded within this long of the URL answering.
    pub probe_interval: Duration,
    /// How often Coolify stores fresh container statuses (its `ServerManagerJob` status run,
    /// or a Sentinel push: 60 s by default). `exited` fails a start only this long (plus a
    /// poll) after Coolify's start job was last seen running.
    pub status_lag: Duration,
    /// Delete waits this long before the destructive part unless forced (Ctrl-C cancels).
    pub delete_grace: Duration,
    /// How long after a tenant's delete request (`delete_requested_at`) the controller deletes
    /// the stack: the window in which the operator can still stop it.
    pub tenant_delete_grace: Duration,
    /// How long a service with our marker that no record claims is left alone after it was
    /// first seen, before the controller removes it (volumes kept).
    pub orphan_grace: Duration,
    pub probe: ProbeSettings,
    /// The origins `url` parameters may point at (the platform's Router); empty refuses every
    /// URL a template takes.
    pub url_origins: Vec<String>,
    /// Values the platform gives template parameters nobody set (`router_base_url`: the
    /// Router's URL), applied to every render whoever asked for it.
    pub platform_parameters: BTreeMap<String, String>,
    /// Where final backups are kept; `None` refuses to delete a stack whose plan has backups
    /// unless the caller gives up its data explicitly.
    pub final_backups: Option<FinalBackupSettings>,
    pub monitor: MonitorSettings,
    pub failpoint: Option<Failpoint>,
}

/// The health monitor: when conditions become incidents, and where their messages go.
#[derive(Debug, Clone)]
pub struct MonitorSettings {
    /// Per incident kind: pending period, checks in a row, reminders, flapping.
    pub policies: cfa_core::incidents::AlertPolicies,
    /// The configured channels' names: each grouped message is queued once per channel, so
    /// one channel that is down never holds the others back. None: messages are only logged.
    pub channels: Vec<String>,
    /// Probes in flight at once.
    pub concurrency: usize,
    /// A stack `deploying` longer than this is stuck.
    pub stuck_after: Duration,
    /// Subjects listed by name in one grouped message (the rest are counted).
    pub listed_per_message: usize,
    /// Reserved RAM and disk shares past which a server's capacity is low.
    pub capacity: cfa_core::incidents::CapacityThresholds,
    /// What a good backup history looks like (period, grace, empty, shrunk).
    pub backups: cfa_core::incidents::BackupExpectations,
    /// The bucket is listed for the backup check at most this often.
    pub backup_check_interval: Duration,
    /// Stacks recorded without their volumes looked up in Coolify per pass (one call each).
    pub volume_lookups_per_pass: usize,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        MonitorSettings {
            policies: cfa_core::incidents::AlertPolicies::default(),
            channels: Vec::new(),
            concurrency: 32,
            stuck_after: Duration::from_secs(30 * 60),
            listed_per_message: 20,
            capacity: cfa_core::incidents::CapacityThresholds::default(),
            backups: cfa_core::incidents::BackupExpectations::default(),
            backup_check_interval: Duration::from_secs(3600),
            volume_lookups_per_pass: 8,
        }
    }
}

/// The platform's backup store: Coolify uploads volume backups to it (the S3 storage Coolify
/// knows as `coolify_s3_storage_uuid`), and a delete copies the final one under `prefix`,
/// which Coolify never deletes.
#[derive(Debug, Clone)]
pub struct FinalBackupSettings {
    pub store: cfa_backup_store::BackupStore,
    pub coolify_s3_storage_uuid: String,
    pub prefix: String,
    /// How long a final backup may take to reach the bucket before the delete gives up.
    pub timeout: Duration,
}

impl EngineSettings {
    pub fn new(base_domain: BaseDomain, plans: PlanTable) -> EngineSettings {
        EngineSettings {
            base_domain,
            plans,
            actor: "engine".to_owned(),
            servers: BTreeMap::new(),
            deploy_timeout: Duration::from_secs(300),
            operation_timeout: Duration::from_secs(120),
            poll_interval: Duration::from_secs(5),
            probe_interval: Duration::from_millis(500),
            status_lag: Duration::from_secs(60),
            delete_grace: Duration::from_secs(10),
            tenant_delete_grace: Duration::from_secs(3600),
            orphan_grace: Duration::from_secs(3600),
            probe: ProbeSettings::default(),
            url_origins: Vec::new(),
            platform_parameters: BTreeMap::new(),
            final_backups: None,
            monitor: MonitorSettings::default(),
            failpoint: None,
        }
    }
}

impl fmt::Debug for EngineSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineSettings")
            .field("base_domain", &self.base_domain)
            .field("actor", &self.actor)
            .field("servers", &self.servers)
            .field("deploy_timeout", &self.deploy_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("poll_interval", &self.poll_interval)
            .field("probe_interval", &self.probe_interval)
            .field("status_lag", &self.status_lag)
            .field("delete_grace", &self.delete_grace)
            .field("tenant_delete_grace", &self.tenant_delete_grace)
            .field("orphan_grace", &self.orphan_grace)
            .field("probe", &self.probe)
            .field("url_origins", &self.url_origins)
            .field("platform_parameters", &self.platform_parameters)
            .field("monitor", &self.monitor)
            .field("final_backups", &self.final_backups)
            .field("failpoint", &self.failpoint.as_ref().map(|_| "set"))
            .finish_non_exhaustive()
    }
}

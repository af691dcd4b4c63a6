//! The HTTP calls each step makes, and the reads an operation makes before it plans: what a
//! dry run prints, and what a test holds the run to (every Coolify call the run makes is one
//! listed here, as often as listed).

use std::fmt;

use super::{Intent, Observation};
use crate::steps::Step;

/// Which service a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Coolify,
    PocketBase,
    /// Our readiness probe of the stack's URL.
    Probe,
    /// The platform's backup bucket.
    Bucket,
}

/// One call, `times` as a range: `min..=max`, `max = None` for polls and per-volume calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedCall {
    pub api: Api,
    pub method: &'static str,
    /// Coolify's route template (`/api/v1/services/{uuid}/start`), PocketBase's path, or the
    /// probe's URL shape.
    pub route: &'static str,
    /// Why, for the reader.
    pub note: &'static str,
    pub min: u32,
    pub max: Option<u32>,
}

impl fmt::Display for PlannedCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.route)?;
        let times = match (self.min, self.max) {
            (1, Some(1)) => "",
            (0, Some(1)) => "if needed",
            (_, None) => "repeated",
            _ => "",
        };
        match (self.note.is_empty(), times.is_empty()) {
            (true, true) => Ok(()),
            (false, true) => write!(f, " ({})", self.note),
            (true, false) => write!(f, " ({times})"),
            (false, false) => write!(f, " ({}; {times})", self.note),
        }
    }
}

const fn coolify(method: &'static str, route: &'static str, note: &'static str) -> PlannedCall {
    PlannedCall { api: Api::Coolify, method, route, note, min: 1, max: Some(1) }
}

const fn pocketbase(method: &'static str, route: &'static str, note: &'static str) -> PlannedCall {
    PlannedCall { api: Api::PocketBase, method, route, note, min: 1, max: Some(1) }
}

impl PlannedCall {
    const fn maybe(self) -> PlannedCall {
        PlannedCall { min: 0, max: Some(1), ..self }
    }
    const fn repeated(self) -> PlannedCall {
        PlannedCall { max: None, ..self }
    }
    const fn any_number(self) -> PlannedCall {
        PlannedCall { min: 0, max: None, ..self }
    }
    const fn at_most(self, max: u32) -> PlannedCall {
        PlannedCall { max: Some(max), ..self }
    }
}

const RECORDS: &str = "/api/collections/agent_stacks/records";
const RECORD: &str = "/api/collections/agent_stacks/records/{id}";
const AUDIT: &str = "/api/collections/audit_log/records";
const SERVICE: &str = "/api/v1/services/{uuid}";
const ENVIRONMENT: &str = "/api/v1/projects/{uuid}/{environment}";

fn audit(note: &'static str) -> PlannedCall {
    pocketbase("POST", AUDIT, note)
}

/// The reads an operation makes before it plans (its observation).
pub fn observation_calls(intent: Intent, observed: &Observation) -> Vec<PlannedCall> {
    let mut calls = vec![
        pocketbase("GET", "/api/collections/tenants/records", "the tenant, by slug"),
        pocketbase("GET", RECORDS, "the stack's record"),
        coolify("GET", "/api/v1/projects", "the tenant's project, by name").repeated(),
        pocketbase("GET", AUDIT, "who created which project or service (claims)").any_number(),
        // The client reads Coolify's version before its first version-gated call.
        coolify("GET", "/api/v1/version", "once per process").maybe(),
    ];
    if matches!(intent, Intent::Provision { .. }) && observed.record_status.is_some() {
        // A record a tenant created is placed on a server first.
        calls.push(coolify("GET", "/api/v1/servers", "placing a tenant-created record").maybe());
    }
    if observed.record_names_service {
        calls.push(coolify("GET", SERVICE, "the recorded service and its status"));
    }
    if !observed.record_has_service && observed.project_exists {
        calls.push(coolify("GET", ENVIRONMENT, "a service named ours with our marker").repeated());
        if observed.service_exists {
            calls.push(coolify("GET", SERVICE, "its status"));
        }
    }
    if observed.service_exists && !observed.service_running {
        calls.push(pocketbase("GET", AUDIT, "a start queued a moment ago?").maybe());
    }
    // An upgrade compares values only when it is not refused whatever changed.
    let any_change = Intent::Upgrade { compose_changed: true, environment_changed: true };
    if matches!(intent, Intent::Upgrade { .. }) && super::plan(any_change, observed).is_ok() {
        calls.push(coolify("GET", "/api/v1/services/{uuid}/envs", "the current values"));
    }
    calls
}

/// The calls one step makes. `observed` is what the operation saw before it planned (a project
/// found then is not looked for again).
pub fn calls_of_step(step: Step, observed: &Observation) -> Vec<PlannedCall> {
    match step {
        Step::RecordPending => vec![
            pocketbase("GET", RECORDS, "every stack, for quota and capacity"),
            coolify("GET", "/api/v1/servers", "admission"),
            pocketbase("POST", RECORDS, "status pending, limits, server"),
            audit("stack.provision"),
        ],
        Step::RecordDeploying => {
            vec![pocketbase("PATCH", RECORD, "status deploying"), audit("stack.deploying")]
        }
        Step::EnsureProject if observed.project_exists => Vec::new(),
        Step::EnsureProject => vec![
            coolify("GET", "/api/v1/projects", "again, under the tenant's lock").repeated(),
            coolify("POST", "/api/v1/projects", "cfa-<tenant>"),
            audit("coolify.project_created"),
            coolify("GET", "/api/v1/projects", "re-check: never two").repeated(),
        ],
        Step::EnsureEnvironment if observed.project_exists && !observed.record_has_service => {
            // The observation listed the environment's services already.
            Vec::new()
        }
        Step::EnsureEnvironment if observed.project_exists => vec![
            coolify("GET", "/api/v1/projects/{uuid}/environments", "is `production` there?"),
            coolify("POST", "/api/v1/projects/{uuid}/environments", "production").maybe(),
        ],
        // Coolify creates `production` with every project.
        Step::EnsureEnvironment => Vec::new(),
        Step::CreateService => vec![
            coolify("GET", "/api/v1/servers/{uuid}/destinations", "once per server and process")
                .maybe(),
            coolify("POST", "/api/v1/services", "docker_compose_raw, urls, server, destination"),
            audit("coolify.service_created"),
            coolify("GET", ENVIRONMENT, "re-check: never two").repeated(),
        ],
        Step::AdoptService => Vec::new(),
        Step::RecordService => {
            vec![pocketbase("PATCH", RECORD, "coolify uuids, domain"), audit("stack.service")]
        }
        Step::SetBackupSchedule => vec![
            coolify("GET", "/api/v1/services/{uuid}/storages", ""),
            coolify(
                "PUT",
                "/api/v1/services/{uuid}/storages/{storage_uuid}/backups",
                "daily, per volume",
            )
            .any_number(),
        ],
        Step::SetEnvironment => {
            vec![coolify("PATCH", "/api/v1/services/{uuid}/envs/bulk", "secrets included")]
        }
        Step::StartService => {
            vec![coolify("POST", "/api/v1/services/{uuid}/start", ""), audit("stack.start").maybe()]
        }
        Step::WaitReady => vec![
            coolify("GET", SERVICE, "polled until healthy").repeated(),
            PlannedCall {
                api: Api::Probe,
                method: "GET",
                route: "https://<domain>/",
                note: "until it answers",
                min: 0,
                max: None,
            },
        ],
        Step::RecordRunning => {
            vec![pocketbase("PATCH", RECORD, "status running"), audit("stack.<operation>")]
        }
        Step::UpdateService => vec![coolify("PATCH", SERVICE, "compose and urls")],
        Step::RestartService => vec![coolify("POST", "/api/v1/services/{uuid}/restart", "")],
        Step::StopService => vec![
            coolify("POST", "/api/v1/services/{uuid}/stop", "docker_cleanup=false").at_most(2),
            pocketbase("GET", AUDIT, "refused: a start queued a moment ago?").maybe(),
            coolify("GET", SERVICE, "until Coolify sees the started containers").any_number(),
        ],
        Step::WaitStopped => vec![coolify("GET", SERVICE, "polled until exited").repeated()],
        Step::RecordStopped => {
            vec![pocketbase("PATCH", RECORD, "status stopped"), audit("stack.suspend")]
        }
        Step::FinalBackup => vec![
            coolify("GET", "/api/v1/services/{uuid}/storages", ""),
            coolify(
                "PUT",
                "/api/v1/services/{uuid}/storages/{storage_uuid}/backups",
                "with S3, per volume",
            )
            .any_number(),
            coolify(
                "POST",
                "/api/v1/services/{uuid}/storages/{storage_uuid}/backups/run",
                "per volume",
            )
            .any_number(),
            PlannedCall {
                api: Api::Bucket,
                method: "GET",
                route: "<bucket>/data/coolify/backups/volumes/",
                note: "until the new archive is there; then copied and checked",
                min: 0,
                max: None,
            },
        ],
        Step::DeleteService => vec![coolify(
            "DELETE",
            SERVICE,
            "delete_configurations, delete_volumes, docker_cleanup, delete_connected_networks",
        )],
        Step::WaitDeleted => vec![coolify("GET", SERVICE, "polled until 404").repeated()],
        Step::DeleteProject => vec![
            coolify("GET", ENVIRONMENT, "is it empty?"),
            coolify("DELETE", "/api/v1/projects/{uuid}", "when empty").maybe(),
        ],
        Step::DeleteRecord => vec![
            pocketbase("PATCH", RECORD, "stop naming the service").maybe(),
            pocketbase("DELETE", RECORD, ""),
            audit("stack.delete"),
        ],
    }
}

impl PlannedCall {
    /// The call as JSON (`--output json`, the JSON API): its parts, how often, and the text.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "api": match self.api {
                Api::Coolify => "coolify",
                Api::PocketBase => "pocketbase",
                Api::Probe => "probe",
                Api::Bucket => "bucket",
            },
            "method": self.method,
            "route": self.route,
            "note": self.note,
            "min": self.min,
            "max": self.max,
            "text": self.to_string(),
        })
    }
}

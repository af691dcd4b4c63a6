//! `cfa-engine`: the provisioning engine. One idempotent, crash-safe operation per verb
//! ([`Engine::provision`], [`Engine::suspend`], [`Engine::resume`], [`Engine::upgrade`],
//! [`Engine::delete`]) that converges Coolify to what PocketBase records.
//!
//! The pure core decides ([`cfa_core`] admits and judges health, [`plan::plan`]
//! plans every operation from what was observed); this crate executes, records and audits.
//!
//! **Architecture invariants:** secrets reach Coolify's env API only: never PocketBase, never
//! a log line, never an error message. Every mutation appends an audit entry. A crash after any
//! step leaves a state the next run finishes: never two projects for a tenant, never two
//! services for a stack, never a record pointing at nothing without an error message.

mod engine;
mod error;
mod outbox;
pub mod plan;
mod pocketbase_watch;
mod probe;
mod settings;
pub mod steps;

pub use engine::{
    AlertAction, AlertActionError, Cadence, Completion, DriftOptions, GIVE_UP_AFTER, MonitorPass,
    MonitorReport, PassFocus, Waiting,
};
pub use engine::{
    Backoffs, CONTROLLER_LEASE, ControllerPass, DeleteOptions, DriftKind, DriftReport,
    DryRunAdmission, Engine, Healing, OperationDryRun, OperationRequest, OrphanService, PassReport,
    ProvisionDryRun, ProvisionRequest, Reconciled, SecretsTakeEffect, StackActivation, StackDrift,
    StackHealth, StackOutcome, TenantRequestError, Woken,
};
pub use engine::{
    PlanChange, ServerView, TenantCreated, TenantRequest, resources_json, stack_json, tenant_json,
};
pub use engine::{
    RestoreChoice, RestoreReport, RestoredVolume, StackBackups, VolumeArchive, VolumeBackups,
};
pub use error::{EngineError, ErrorClass, Refusal, TenantRefusal};
pub use outbox::PocketBaseOutbox;
pub use pocketbase_watch::PocketBaseWatch;
pub use settings::{
    EngineSettings, Failpoint, FinalBackupSettings, Injected, MonitorSettings, ProbeSettings,
    ServerSettings,
};
pub use steps::Step;

//! The engine's one error type: what failed, for which tenant and stack, and what to do.
//!
//! The CLI maps [`EngineError::class`] to exit codes: usage (2), refused (3), failure (1).

use std::time::Duration;

use cfa_coolify::CoolifyError;
use cfa_core::{AdmissionError, Remedy, StackRef, StackStatus};
use cfa_pocketbase::{PocketBaseError, PocketBaseErrorKind};

use crate::steps::Step;

/// How a caller (the CLI) should treat an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request itself is wrong: unknown tenant or template, a bad name or parameter.
    Usage,
    /// A rule said no (quota, plan, capacity, lifecycle); nothing changed.
    Refused,
    /// Something failed on the way; the stack's record says where, a rerun resumes.
    Failure,
}

/// Why a tenant was not created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantRefusal {
    /// A tenant with the slug exists.
    Exists,
    /// The owner's e-mail is not an address.
    BadEmail,
    /// An account with the e-mail exists but never verified it: whoever registered it would
    /// own the tenant. Adopting it explicitly is the way through.
    UnverifiedOwner,
}

/// Why a provision was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Admission (plan, template, quota, capacity) said no.
    #[error(transparent)]
    Admission(AdmissionError),
    /// PocketBase's quota hook refused the record (a concurrent create took the last slot).
    #[error(
        "tenant `{tenant}` has no stack left in its quota (PocketBase refused the record)\nhint: delete a stack, or raise the tenant's max_stacks"
    )]
    QuotaHook { tenant: String },
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("tenant `{tenant}` does not exist\nhint: {}", Remedy::ListTenants)]
    UnknownTenant { tenant: String },
    #[error("template `{template}` does not exist\nhint: one of {known}")]
    UnknownTemplate { template: String, known: String },
    #[error(
        "stack `{tenant}/{stack}` does not exist\nhint: {}",
        Remedy::ListStacks { tenant: tenant.clone() }
    )]
    UnknownStack { tenant: String, stack: String },
    /// A bad name or parameter: the message is the validator's (with its own hint).
    #[error("invalid request for `{tenant}/{stack}`: {message}")]
    InvalidInput { tenant: String, stack: String, message: String },
    #[error("provisioning `{tenant}/{stack}` was refused: {refusal}")]
    Refused {
        tenant: String,
        stack: String,
        #[source]
        refusal: Refusal,
    },
    #[error("stack `{tenant}/{stack}` is {status} and cannot be {action}\nhint: {remedy}")]
    InvalidState {
        tenant: String,
        stack: String,
        status: String,
        action: &'static str,
        remedy: Box<Remedy>,
    },
    #[error("the template `{template}` renders a stack that breaks the guardrails: {message}")]
    Template { template: String, message: String },
    #[error(
        "Coolify failed at `{step}` for `{tenant}/{stack}`: {detail}\nhint: {hint}; rerun the same command to resume"
    )]
    Coolify {
        tenant: String,
        stack: String,
        step: Step,
        detail: String,
        hint: String,
        #[source]
        source: Box<CoolifyError>,
    },
    #[error(
        "PocketBase failed at `{step}` for `{tenant}/{stack}`: {detail}\nhint: {hint}; rerun the same command to resume"
    )]
    PocketBase {
        tenant: String,
        stack: String,
        step: Step,
        detail: String,
        hint: String,
        #[source]
        source: Box<PocketBaseError>,
    },
    #[error(
        "stack `{tenant}/{stack}` did not become ready within {}: last Coolify status `{last_status}`, {last_probe}\nhint: {}",
        humanize(*waited),
        Remedy::ReadLogsThenRetry { stack: StackRef::new(tenant, stack) }
    )]
    NotReady {
        tenant: String,
        stack: String,
        waited: Duration,
        last_status: String,
        last_probe: String,
    },
    #[error(
        "stack `{tenant}/{stack}` failed to start: {reason}\nhint: {}",
        Remedy::ReadLogsThenRetry { stack: StackRef::new(tenant, stack) }
    )]
    DeployFailed { tenant: String, stack: String, reason: String },
    #[error(
        "Coolify did not finish `{step}` for `{tenant}/{stack}` within {}\nhint: check Coolify's queue, then rerun the command",
        humanize(*waited)
    )]
    Timeout { tenant: String, stack: String, step: Step, waited: Duration },
    #[error(
        "stack `{tenant}/{stack}` keeps data in volumes and its plan has backups, but no backup store is configured: Coolify's delete (4.3.10 and later) removes every archive of the service, so a final backup would be lost with it; nothing was deleted\nhint: configure [backups] in cfa.toml (README, \"Backups\"), or pass --without-final-backup to delete the data for good"
    )]
    NoFinalBackupStore { tenant: String, stack: String },
    /// Coolify does not answer: one platform incident, not a failure of every stack.
    #[error(
        "Coolify does not answer ({detail}); no stack was touched\nhint: check Coolify and its API; the next pass retries"
    )]
    CoolifyUnavailable { detail: String },
    #[error(
        "the domain `{domain}` of `{tenant}/{stack}` is ambiguous: {reason}\nhint: choose another stack name"
    )]
    DomainTaken { tenant: String, stack: String, domain: String, reason: String },
    #[error(
        "the slug `{slug}` would end the domain `{domain}` of another tenant's stack, so both could claim it\nhint: choose another slug"
    )]
    SlugClash { slug: String, domain: String },
    #[error(
        "the final backup of volume `{storage}` of `{tenant}/{stack}` failed: {detail}; nothing was deleted\nhint: {}",
        Remedy::FixThenDelete { stack: StackRef::new(tenant, stack), detail: hint.clone() }
    )]
    FinalBackup { tenant: String, stack: String, storage: String, detail: String, hint: String },
    /// A backup could not be listed, made or restored (`cfa backup`); the detail names the
    /// volume when one volume failed.
    #[error("backup {action} of `{tenant}/{stack}` failed: {detail}\nhint: {hint}")]
    Backup { tenant: String, stack: String, action: &'static str, detail: String, hint: String },
    /// A backup operation that cannot be done as things are (no bucket, a plan without
    /// backups, a stack in the middle of something); nothing was touched.
    #[error(
        "backup {action} of `{tenant}/{stack}` refused: {reason}; nothing was touched\nhint: {hint}"
    )]
    BackupRefused {
        tenant: String,
        stack: String,
        action: &'static str,
        reason: String,
        hint: String,
    },
    /// A test's failpoint stopped the engine after `step`, as a crash would.
    #[error("failpoint: stopped after `{step}` for `{tenant}/{stack}`")]
    Injected { tenant: String, stack: String, step: Step },
    /// A tenant's plan, quota or ceiling cannot be set (a wrong request, or a change that
    /// would strand its stacks).
    #[error("tenant `{tenant}`: {refusal}\nhint: {}", refusal.hint())]
    Tenancy { tenant: String, refusal: cfa_core::tenancy::TenancyRefusal },
    /// A tenant cannot be created as asked.
    #[error("tenant `{tenant}`: {message}\nhint: {hint}")]
    TenantRefused { tenant: String, reason: TenantRefusal, message: String, hint: String },
    /// The record changed while the operation ran (a tenant's new request): the operation
    /// stops rather than overwrite it, and the next activation carries the new request out.
    #[error(
        "`{tenant}/{stack}` changed while `{step}` ran (its record now says `{status}`): this run stopped so as not to overwrite that\nhint: the controller carries the new request out (or reconcile the stack now)"
    )]
    Superseded { tenant: String, stack: String, step: Step, status: StackStatus },
    /// The alert outbox could not take a message (PocketBase refused or is away).
    #[error(
        "cannot queue an alert: {detail}\nhint: check that PocketBase is reachable; the next monitor pass queues it again"
    )]
    Alerts { detail: String },
}

fn humanize(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

impl EngineError {
    /// What to do about it, as data each front end words (the CLI as its command lines, the
    /// JSON API as an action); the error's own text words it neutrally.
    pub fn remedy(&self) -> Option<Remedy> {
        let stack_ref = |tenant: &str, stack: &str| StackRef::new(tenant, stack);
        match self {
            EngineError::UnknownTenant { .. } => Some(Remedy::ListTenants),
            EngineError::UnknownStack { tenant, .. } => {
                Some(Remedy::ListStacks { tenant: tenant.clone() })
            }
            EngineError::InvalidState { remedy, .. } => Some(Remedy::clone(remedy)),
            EngineError::NotReady { tenant, stack, .. }
            | EngineError::DeployFailed { tenant, stack, .. } => {
                Some(Remedy::ReadLogsThenRetry { stack: stack_ref(tenant, stack) })
            }
            EngineError::FinalBackup { tenant, stack, hint, .. } => Some(Remedy::FixThenDelete {
                stack: stack_ref(tenant, stack),
                detail: hint.clone(),
            }),
            EngineError::Refused { refusal: Refusal::Admission(error), .. } => error.remedy(),
            _ => None,
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            EngineError::UnknownTenant { .. }
            | EngineError::UnknownTemplate { .. }
            | EngineError::UnknownStack { .. }
            | EngineError::InvalidInput { .. } => ErrorClass::Usage,
            EngineError::Refused { .. }
            | EngineError::InvalidState { .. }
            | EngineError::NoFinalBackupStore { .. }
            | EngineError::BackupRefused { .. }
            | EngineError::DomainTaken { .. }
            | EngineError::SlugClash { .. } => ErrorClass::Refused,
            EngineError::Template { .. }
            | EngineError::Coolify { .. }
            | EngineError::PocketBase { .. }
            | EngineError::NotReady { .. }
            | EngineError::DeployFailed { .. }
            | EngineError::Timeout { .. }
            | EngineError::FinalBackup { .. }
            | EngineError::Backup { .. }
            | EngineError::CoolifyUnavailable { .. }
            | EngineError::Injected { .. }
            | EngineError::Superseded { .. }
            | EngineError::Alerts { .. } => ErrorClass::Failure,
            EngineError::Tenancy { refusal, .. } if refusal.is_bad_request() => ErrorClass::Usage,
            EngineError::Tenancy { .. } => ErrorClass::Refused,
            EngineError::TenantRefused { reason: TenantRefusal::UnverifiedOwner, .. } => {
                ErrorClass::Refused
            }
            EngineError::TenantRefused { .. } => ErrorClass::Usage,
        }
    }

    /// The short reason the stack record's `error_message` keeps: the tenant reads it, so it
    /// names no server, capacity, Coolify uuid or upstream detail (the audit log keeps the
    /// whole error for the operator). Its hint says what the tenant can do.
    /// Coolify was down, or too busy to answer, while the operation ran: nothing is wrong
    /// with the stack, so its record keeps its status (only `error_message` says what
    /// happened) and the next activation resumes it.
    /// PocketBase did not answer (down, unreachable, or failing with 5xx).
    pub fn is_pocketbase_unreachable(&self) -> bool {
        matches!(
            self,
            EngineError::PocketBase { source, .. }
                if matches!(source.kind, PocketBaseErrorKind::Transport | PocketBaseErrorKind::Server)
        )
    }

    pub fn is_platform_outage(&self) -> bool {
        match self {
            EngineError::CoolifyUnavailable { .. } => true,
            EngineError::Coolify { source, .. } => source.is_unavailable(),
            _ => false,
        }
    }

    pub fn record_message(&self) -> String {
        let text = match self {
            EngineError::Coolify { step, .. } if self.is_platform_outage() => format!(
                "the hosting platform did not answer at `{step}`; the stack is resumed from there when it does\nhint: nothing to do; the platform retries by itself"
            ),
            EngineError::Refused { refusal: Refusal::Admission(AdmissionError::NoCapacity { .. }), .. } => {
                "the platform has no room for this stack right now\nhint: the operator has to free or add capacity; retry later".to_owned()
            }
            EngineError::Refused { refusal: Refusal::Admission(AdmissionError::UnknownServer { .. }), .. } => {
                "the requested server is not available\nhint: ask the operator".to_owned()
            }
            EngineError::Coolify { step, .. } => format!(
                "the hosting platform failed at `{step}`\nhint: the operator sees the details; retrying resumes"
            ),
            EngineError::PocketBase { step, .. } => format!(
                "the platform's records failed at `{step}`\nhint: the operator sees the details; retrying resumes"
            ),
            EngineError::Timeout { step, waited, .. } => format!(
                "the hosting platform did not finish `{step}` within {}\nhint: retrying resumes",
                humanize(*waited)
            ),
            EngineError::NotReady { waited, .. } => format!(
                "the stack did not become ready within {}\nhint: check its parameters; retrying keeps waiting",
                humanize(*waited)
            ),
            EngineError::DeployFailed { reason, .. } => format!(
                "the stack failed to start: {}\nhint: check its parameters and logs, then retry",
                reason.lines().next().unwrap_or_default()
            ),
            EngineError::Template { .. } => {
                "the template could not be rendered safely\nhint: the operator has to fix the template".to_owned()
            }
            EngineError::FinalBackup { .. } | EngineError::NoFinalBackupStore { .. } => {
                "the final backup could not be kept, so nothing was deleted\nhint: the operator sees the details".to_owned()
            }
            other => other.to_string(),
        };
        text.chars().take(2000).collect()
    }
}

/// Which stack an I/O call was for; builds the error with the step it failed at.
#[derive(Debug, Clone)]
pub(crate) struct Subject {
    pub(crate) tenant: String,
    pub(crate) stack: String,
}

impl Subject {
    /// The planner said no: the stack's status does not allow the operation now.
    pub(crate) fn plan_refused(&self, refusal: crate::plan::PlanRefusal) -> EngineError {
        use crate::plan::Intent;
        if refusal.reason == crate::plan::Refused::NoRecord {
            return self.unknown_stack();
        }
        EngineError::InvalidState {
            tenant: self.tenant.clone(),
            stack: self.stack.clone(),
            status: refusal.status.map_or("missing", StackStatus::as_str).to_owned(),
            action: match refusal.intent {
                Intent::Provision { .. } => "provisioned",
                Intent::Suspend | Intent::KeepStopped => "suspended",
                Intent::Resume => "resumed",
                Intent::Upgrade { .. } => "upgraded",
                Intent::Delete { .. } => "deleted",
            },
            remedy: Box::new(refusal.reason.remedy(StackRef::new(&self.tenant, &self.stack))),
        }
    }

    pub(crate) fn unknown_stack(&self) -> EngineError {
        EngineError::UnknownStack { tenant: self.tenant.clone(), stack: self.stack.clone() }
    }

    pub(crate) fn coolify(&self, step: Step, source: CoolifyError) -> EngineError {
        let hint = source.hint().unwrap_or_else(|| "check Coolify and its logs".to_owned());
        EngineError::Coolify {
            tenant: self.tenant.clone(),
            stack: self.stack.clone(),
            step,
            detail: first_line(&source.to_string()),
            hint,
            source: Box::new(source),
        }
    }

    pub(crate) fn pocketbase(&self, step: Step, source: PocketBaseError) -> EngineError {
        let hint = source
            .hint()
            .map(str::to_owned)
            .unwrap_or_else(|| "check that PocketBase is reachable (CFA_PB_URL)".to_owned());
        EngineError::PocketBase {
            tenant: self.tenant.clone(),
            stack: self.stack.clone(),
            step,
            detail: first_line(&source.to_string()),
            hint,
            source: Box::new(source),
        }
    }

    pub(crate) fn invalid_input(&self, message: impl Into<String>) -> EngineError {
        EngineError::InvalidInput {
            tenant: self.tenant.clone(),
            stack: self.stack.clone(),
            message: message.into(),
        }
    }

    pub(crate) fn final_backup(
        &self,
        storage: &str,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> EngineError {
        EngineError::FinalBackup {
            tenant: self.tenant.clone(),
            stack: self.stack.clone(),
            storage: storage.to_owned(),
            detail: detail.into(),
            hint: hint.into(),
        }
    }

    pub(crate) fn backup(
        &self,
        action: &'static str,
        volume: Option<&str>,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> EngineError {
        let detail = detail.into();
        EngineError::Backup {
            tenant: self.tenant.clone(),
            stack: self.stack.clone(),
            action,
            detail: match volume {
                Some(volume) => format!("volume `{volume}`: {detail}"),
                None => detail,
            },
            hint: hint.into(),
        }
    }

    pub(crate) fn backup_refused(
        &self,
        action: &'static str,
        reason: impl Into<String>,
        hint: impl Into<String>,
    ) -> EngineError {
        EngineError::BackupRefused {
            tenant: self.tenant.clone(),
            stack: self.stack.clone(),
            action,
            reason: reason.into(),
            hint: hint.into(),
        }
    }

    pub(crate) fn refused(&self, refusal: Refusal) -> EngineError {
        EngineError::Refused { tenant: self.tenant.clone(), stack: self.stack.clone(), refusal }
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

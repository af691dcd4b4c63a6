//! Pure domain core of the CloudFreedom Agent Platform.
//!
//! Everything here decides; nothing here does I/O. Plans and their ceilings ([`plan`]),
//! admission and placement ([`admission`]), the stack lifecycle ([`lifecycle`]), names and
//! domains ([`naming`]), resource arithmetic ([`resources`]), health judgement ([`health`]),
//! readiness after a start across Coolify's status lag ([`readiness`]), who may own a new
//! tenant ([`onboarding`]), what a tenant's plan, quota and ceiling may be ([`tenancy`]), how
//! long a failing stack is left alone ([`backoff`]), what a monitor check of a stack observes
//! ([`monitor`]), when a condition becomes an incident, is announced, reminded, resolved and
//! grouped ([`incidents`]), and what a person can do about a refusal ([`remedy`], worded by
//! each front end).
//!
//! **Architecture invariant:** no tokio, no reqwest, no file system, no clock. Functions take
//! what they need as arguments and return decisions or typed errors.

pub mod admission;
pub mod backoff;
pub mod health;
pub mod incidents;
pub mod lifecycle;
pub mod monitor;
pub mod naming;
pub mod onboarding;
pub mod plan;
pub mod readiness;
pub mod remedy;
pub mod resources;
pub mod tenancy;

pub use admission::{
    AdmissionError, AdmissionRequest, Admitted, ImageFootprint, Room, ServerCapacity,
    StackRequirements, TenantStanding, admit, room_on, stack_limits,
};
pub use backoff::Backoff;
pub use health::{HealthJudgement, HealthVerdict, ProbeOutcome, judge_health};
pub use incidents::{
    AlertPolicies, AlertPolicy, GroupedMessage, IncidentError, IncidentKind, IncidentSubject,
    IncidentTrack, Notification, Observation,
};
pub use lifecycle::{StackEvent, StackStatus, TransitionError};
pub use naming::{BaseDomain, NameError, StackName, TenantSlug};
pub use plan::{BackupPolicy, Plan, PlanError, PlanTable, PlanTier};
pub use readiness::{Readiness, ReadinessWatch, StartKind};
pub use remedy::{Remedy, StackRef};
pub use resources::Resources;

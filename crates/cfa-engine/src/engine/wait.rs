//! Starting a service and waiting for it, across Coolify's status lag.
//!
//! `start` and `restart` only queue Coolify jobs, and Coolify's status says what its last
//! status run stored, up to a minute old (`cfa_core::readiness` has the whole story). So the
//! wait reads Coolify's status every `poll_interval` (each read is a rate-limited API call) and
//! probes the stack's URL every `probe_interval` (our own request, no Coolify call), and lets
//! [`ReadinessWatch`] decide from both and the time since the job was queued.

use std::time::{Duration, Instant};

use cfa_coolify::types::DockerCleanup;
use cfa_core::{ProbeOutcome, Readiness, ReadinessWatch, StartKind};
use cfa_pocketbase::{AuditOutcome, AuditQuery};
use serde_json::{Value, json};

use super::Engine;
use crate::error::{EngineError, Subject};
use crate::probe::{describe, probe};
use crate::steps::Step;

/// The audit action of a queued start.
const START_ACTION: &str = "stack.start";

impl Engine {
    /// Queues Coolify's start. Only Coolify's "Service is already running." is taken as done:
    /// any other 400 (e.g. "Invalid token.") is an error. The start is audited, so a rerun
    /// during Coolify's status lag knows it was queued ([`Engine::recent_start`]).
    pub(super) async fn start(
        &self,
        subject: &Subject,
        service_uuid: &str,
    ) -> Result<Instant, EngineError> {
        let queued_at = Instant::now();
        match self.inner.coolify.start_service_by_uuid(service_uuid).await {
            Ok(_) => {}
            Err(error) if error.is_already_running() => return Ok(queued_at),
            Err(error) => return Err(subject.coolify(Step::StartService, error)),
        }
        let after = json!({ "service_uuid": service_uuid });
        self.audit(subject, START_ACTION, Value::Null, after, AuditOutcome::Ok, None).await;
        Ok(queued_at)
    }

    /// Queues Coolify's stop without Docker cleanup (volumes are kept). Coolify refuses a stop
    /// while its stored status says `exited`, and after a start that status is stale until its
    /// next status run: a stop refused then waits for Coolify to see the containers and is sent
    /// again, so a suspend right after a provision never leaves them running.
    pub(super) async fn stop(
        &self,
        subject: &Subject,
        service_uuid: &str,
    ) -> Result<(), EngineError> {
        let settings = &self.inner.settings;
        let coolify = &self.inner.coolify;
        let send = || coolify.stop_service_by_uuid(service_uuid, DockerCleanup::Skip);
        match send().await {
            Ok(_) => return Ok(()),
            Err(error) if error.is_not_found() => return Ok(()),
            Err(error) if error.is_already_stopped() => {}
            Err(error) => return Err(subject.coolify(Step::StopService, error)),
        }
        let Some(age) = self.recent_start(subject, service_uuid).await else {
            // Stopped long enough for Coolify to know: a rerun, or a stack that was down.
            return Ok(());
        };
        let patience = (settings.status_lag + settings.poll_interval * 2).saturating_sub(age);
        let waited = Instant::now();
        while waited.elapsed() < patience {
            tokio::time::sleep(settings.poll_interval).await;
            let status = coolify
                .get_service_by_uuid(service_uuid)
                .await
                .map_err(|error| subject.coolify(Step::StopService, error))?
                .status;
            if super::is_running_status(&status) {
                tracing::debug!(tenant = %subject.tenant, stack = %subject.stack, status = %status, "coolify sees the started containers now; stopping them");
                return match send().await {
                    Ok(_) => Ok(()),
                    Err(error) if error.is_not_found() || error.is_already_stopped() => Ok(()),
                    Err(error) => Err(subject.coolify(Step::StopService, error)),
                };
            }
        }
        Ok(())
    }

    /// How long ago this run or an earlier one queued a start (or restart) of `service_uuid`,
    /// if Coolify cannot know about it yet: after a start its status reads `exited` until the
    /// next status run, and Coolify answers a second start with `up --force-recreate`, a
    /// second deploy.
    pub(super) async fn recent_start(
        &self,
        subject: &Subject,
        service_uuid: &str,
    ) -> Option<Duration> {
        let settings = &self.inner.settings;
        let (_, age) = self.last_start(subject, service_uuid).await?;
        (age < settings.status_lag + settings.poll_interval).then_some(age)
    }

    /// The last start or restart of `service_uuid` the audit log holds, and how long ago it
    /// was queued: what a process that did not queue it (the controller after `cfa upgrade
    /// --no-wait`, a controller that took over) judges readiness by.
    async fn last_start(
        &self,
        subject: &Subject,
        service_uuid: &str,
    ) -> Option<(StartKind, Duration)> {
        let query = AuditQuery {
            tenant: Some(subject.tenant.clone()),
            stack: Some(subject.stack.clone()),
            action: Some(START_ACTION.to_owned()),
            limit: Some(1),
            ..AuditQuery::default()
        };
        // Without the audit log the rerun starts again: a second deploy, never a lost one.
        let entries = self.inner.pocketbase.audit_list(&query).await.ok()?;
        let entry = entries.first()?;
        if entry.after.get("service_uuid").and_then(Value::as_str) != Some(service_uuid) {
            return None;
        }
        let age = jiff::Timestamp::now().duration_since(entry.time);
        let age = Duration::try_from(age).unwrap_or(Duration::ZERO);
        let kind = match entry.after.get("kind").and_then(Value::as_str) {
            Some("restart") => StartKind::Restart,
            _ => StartKind::Start,
        };
        Some((kind, age))
    }

    /// Audits a queued restart as a start of kind `restart`, so that [`Engine::recent_start`]
    /// and another process's readiness judgement know of it.
    pub(super) async fn audit_restart(&self, subject: &Subject, service_uuid: &str) {
        let after = json!({ "service_uuid": service_uuid, "kind": "restart" });
        self.audit(subject, START_ACTION, Value::Null, after, AuditOutcome::Ok, None).await;
    }

    /// Waits until the started (`StartKind::Start`) or restarted containers run and serve, or
    /// Coolify has provably had time to know they do not, or the deploy timeout passes.
    pub(super) async fn wait_ready(
        &self,
        subject: &Subject,
        service_uuid: &str,
        domain: Option<&str>,
        kind: StartKind,
        queued_at: Instant,
    ) -> Result<(), EngineError> {
        let settings = &self.inner.settings;
        let mut watch = ReadinessWatch::new(kind, settings.status_lag + settings.poll_interval);
        // Without a URL only Coolify can tell, so there is nothing to look at between its reads.
        let tick = match domain {
            Some(_) => settings.probe_interval.min(settings.poll_interval),
            None => settings.poll_interval,
        };
        let mut status = String::new();
        let mut status_read_at: Option<Instant> = None;
        loop {
            if status_read_at.is_none_or(|at| at.elapsed() >= settings.poll_interval) {
                let service = self
                    .inner
                    .coolify
                    .get_service_by_uuid(service_uuid)
                    .await
                    .map_err(|error| subject.coolify(Step::WaitReady, error))?;
                status = service.status;
                status_read_at = Some(Instant::now());
            }
            let probe_outcome = match domain {
                Some(domain) => probe(&self.inner.http, &settings.probe, domain).await,
                None => ProbeOutcome::NotApplicable,
            };
            // The status is as old as its read; what Coolify showed is dated by that read.
            let read_at = status_read_at.unwrap_or(queued_at);
            let readiness =
                watch.judge(&status, &probe_outcome, read_at.saturating_duration_since(queued_at));
            tracing::debug!(tenant = %subject.tenant, stack = %subject.stack, status = %status, readiness = readiness.reason(), "readiness");
            match readiness {
                Readiness::Ready { .. } => return Ok(()),
                Readiness::Failed { reason } => {
                    return Err(EngineError::DeployFailed {
                        tenant: subject.tenant.clone(),
                        stack: subject.stack.clone(),
                        reason,
                    });
                }
                Readiness::Waiting { .. } => {}
            }
            if queued_at.elapsed() + tick > settings.deploy_timeout {
                return Err(EngineError::NotReady {
                    tenant: subject.tenant.clone(),
                    stack: subject.stack.clone(),
                    waited: queued_at.elapsed(),
                    last_status: status,
                    last_probe: describe(&probe_outcome),
                });
            }
            tokio::time::sleep(tick).await;
        }
    }

    /// One look at a queued start or restart, for an activation that does not wait: `None`
    /// when the containers run and serve, else why not yet (the next activation looks again,
    /// with what this one saw). Fails as [`Engine::wait_ready`] does: Coolify has had time to
    /// know and they do not run, or the deploy timeout has passed since the start was queued.
    pub(super) async fn look_ready(
        &self,
        subject: &Subject,
        service_uuid: &str,
        domain: Option<&str>,
        kind: StartKind,
        queued_at: Instant,
    ) -> Result<Option<String>, EngineError> {
        let settings = &self.inner.settings;
        let remembered = self
            .inner
            .looks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(service_uuid);
        let mut look = match remembered {
            Some(look) => look,
            None => {
                // Not queued by this process, or by it before a restart of its own: the audit
                // log says what was queued and when, so the old containers of a restart are
                // not taken for the new ones.
                let (kind, queued_at) = match self.last_start(subject, service_uuid).await {
                    Some((logged, age)) if age < settings.deploy_timeout => {
                        (logged, Instant::now().checked_sub(age).unwrap_or(queued_at))
                    }
                    _ => (kind, queued_at),
                };
                let watch = ReadinessWatch::new(kind, settings.status_lag + settings.poll_interval);
                Look { watch, queued_at }
            }
        };
        let status = self
            .inner
            .coolify
            .get_service_by_uuid(service_uuid)
            .await
            .map_err(|error| subject.coolify(Step::WaitReady, error))?
            .status;
        let probe_outcome = match domain {
            Some(domain) => probe(&self.inner.http, &settings.probe, domain).await,
            None => ProbeOutcome::NotApplicable,
        };
        let since_queued = look.queued_at.elapsed();
        match look.watch.judge(&status, &probe_outcome, since_queued) {
            Readiness::Ready { .. } => Ok(None),
            Readiness::Failed { reason } => Err(EngineError::DeployFailed {
                tenant: subject.tenant.clone(),
                stack: subject.stack.clone(),
                reason,
            }),
            Readiness::Waiting { .. } if since_queued > settings.deploy_timeout => {
                Err(EngineError::NotReady {
                    tenant: subject.tenant.clone(),
                    stack: subject.stack.clone(),
                    waited: since_queued,
                    last_status: status,
                    last_probe: describe(&probe_outcome),
                })
            }
            Readiness::Waiting { reason } => {
                self.inner
                    .looks
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(service_uuid.to_owned(), look);
                Ok(Some(reason))
            }
        }
    }

    /// A new start or restart is queued: what earlier looks saw belongs to the old one.
    pub(super) fn forget_look(&self, service_uuid: &str) {
        self.inner
            .looks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(service_uuid);
    }

    /// Polls until `done(status)` holds for the service, or `None` when Coolify no longer has it.
    pub(super) async fn wait_status(
        &self,
        subject: &Subject,
        step: Step,
        service_uuid: &str,
        done: impl Fn(Option<&str>) -> bool,
    ) -> Result<(), EngineError> {
        let settings = &self.inner.settings;
        let started = Instant::now();
        loop {
            let status = match self.inner.coolify.get_service_by_uuid(service_uuid).await {
                Ok(service) => Some(service.status),
                Err(error) if error.is_not_found() => None,
                Err(error) => return Err(subject.coolify(step, error)),
            };
            if done(status.as_deref()) {
                return Ok(());
            }
            if started.elapsed() > settings.operation_timeout {
                return Err(EngineError::Timeout {
                    tenant: subject.tenant.clone(),
                    stack: subject.stack.clone(),
                    step,
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(settings.poll_interval).await;
        }
    }
}

/// A start being looked at across activations: the watch's memory and when it was queued.
#[derive(Debug)]
pub(super) struct Look {
    watch: ReadinessWatch,
    queued_at: Instant,
}

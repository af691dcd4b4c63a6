//! Drift: where Coolify, the records and the templates disagree, from one list of Coolify's
//! services and one list of the records (no call per stack).
//!
//! - **Orphans**: services carrying our marker that no record claims (a record deleted by
//!   hand, a crashed run's twin nobody settled). Never adopted, never touched without the
//!   marker; removed by the controller only once `orphan_grace` has passed since it first saw
//!   them (the audit log keeps that sighting), and then without their volumes being deleted.
//! - **Stack drift**: a recorded service Coolify no longer has, containers that run while the
//!   record says `stopped` (the controller stops them), or stopped while it says `running`,
//!   and a template, plan or domain that renders differently from what the stack was deployed
//!   with. A changed template reaches a stack only through `cfa upgrade`, never silently.
//! - **Environment drift** (on request: one Coolify call per deployed stack): a required
//!   secret variable that Coolify no longer holds, and variables set outside the platform.
//!   Only the secrets are variables (everything else is in the compose, whose hash is
//!   compared above), and their values are never compared, read out or reported: only names.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use cfa_coolify::types::{DeleteServiceOptions, ServiceSummary};
use cfa_pocketbase::AuditQuery;

use super::*;

/// A service with our marker that no record claims.
#[derive(Debug, Clone, PartialEq)]
pub struct OrphanService {
    pub service_uuid: String,
    /// The tenant and stack its marker names.
    pub tenant: String,
    pub stack: String,
    pub status: String,
    /// When the controller first saw it (`None`: not yet recorded).
    pub first_seen: Option<jiff::Timestamp>,
}

/// What disagrees for one stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftKind {
    /// The record names a service Coolify does not have.
    ServiceMissing,
    /// The record says `stopped`; Coolify's containers run.
    RunsWhileStopped,
    /// The record says `running`; Coolify's containers do not.
    StoppedWhileRunning,
    /// The template, or the plan's limits, render a different compose than was deployed.
    TemplateChanged,
    /// The stack's domain would be another one today.
    DomainChanged,
    /// The record's parameters no longer render with its template.
    RenderFails,
    /// A required secret parameter's variable is gone from Coolify, or empty.
    SecretMissing,
    /// Coolify holds variables the platform did not set (Coolify's UI, another tool).
    EnvironmentExtra,
}

/// What `cfa drift` looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriftOptions {
    /// Delete orphans past `orphan_grace` (volumes kept), and record new ones as seen.
    pub remove_orphans: bool,
    /// Compare each deployed stack's variables with its template's: one Coolify call each.
    pub environment: bool,
}

/// Who puts it right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Healing {
    /// The controller, by itself.
    Controller,
    /// `cfa upgrade` of the stack: applied only when the operator says so.
    Upgrade,
    /// The operator has to look (the hint says what to run).
    Operator,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StackDrift {
    pub tenant: String,
    pub stack: String,
    pub kind: DriftKind,
    pub detail: String,
    pub healing: Healing,
}

/// Everything `cfa drift` reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DriftReport {
    pub stacks_seen: usize,
    pub services_seen: usize,
    pub orphans: Vec<OrphanService>,
    pub drift: Vec<StackDrift>,
    /// Orphans removed by this run (past their grace period).
    pub removed: Vec<String>,
}

impl DriftReport {
    /// The report as `--output json` and the JSON API show it.
    pub fn to_json(&self) -> Value {
        json!({
            "stacks_seen": self.stacks_seen,
            "services_seen": self.services_seen,
            "orphans": self.orphans.iter().map(|orphan| json!({
                "service_uuid": orphan.service_uuid,
                "tenant": orphan.tenant,
                "stack": orphan.stack,
                "status": orphan.status,
                "first_seen": orphan.first_seen.map(|time| time.to_string()),
            })).collect::<Vec<_>>(),
            "drift": self.drift.iter().map(|drift| json!({
                "tenant": drift.tenant,
                "stack": drift.stack,
                "kind": format!("{:?}", drift.kind),
                "detail": drift.detail,
                "healing": format!("{:?}", drift.healing).to_lowercase(),
            })).collect::<Vec<_>>(),
            "removed": self.removed,
        })
    }
}

/// The tenant and stack our marker names, if the description is our marker.
fn parse_marker(description: &str) -> Option<(String, String)> {
    let rest = description.strip_prefix("managed by cloudfreedom: tenant=")?;
    let (tenant, stack) = rest.split_once(" stack=")?;
    Some((tenant.to_owned(), stack.to_owned()))
}

/// Orphans and status drift, from the records (with their tenants) and Coolify's services.
/// Pure: what to do about them is the caller's.
pub(crate) fn classify(
    records: &[AgentStack],
    services: &[ServiceSummary],
) -> (Vec<OrphanService>, Vec<StackDrift>) {
    let by_uuid: HashMap<&str, &ServiceSummary> =
        services.iter().map(|service| (service.uuid.as_str(), service)).collect();
    let claimed: HashSet<&str> =
        records.iter().filter_map(|record| record.coolify_service_uuid.as_deref()).collect();
    // A record still on its way (no service recorded yet) claims the services of its name: a
    // provision is creating or adopting one of them right now.
    let in_progress: HashSet<(&str, &str)> = records
        .iter()
        .filter(|record| record.coolify_service_uuid.as_deref().is_none_or(str::is_empty))
        .filter_map(|record| {
            Some((record.tenant.as_ref()?.slug.as_str(), record.stack_name.as_str()))
        })
        .collect();
    let orphans = services
        .iter()
        .filter(|service| !claimed.contains(service.uuid.as_str()))
        .filter_map(|service| {
            let (tenant, stack) = parse_marker(service.description.as_deref()?)?;
            if in_progress.contains(&(tenant.as_str(), stack.as_str())) {
                return None;
            }
            Some(OrphanService {
                service_uuid: service.uuid.clone(),
                tenant,
                stack,
                status: service.status.clone(),
                first_seen: None,
            })
        })
        .collect();
    let mut drift = Vec::new();
    for record in records {
        let Some(tenant) = record.tenant.as_ref() else { continue };
        let Some(uuid) = record.coolify_service_uuid.as_deref().filter(|uuid| !uuid.is_empty())
        else {
            continue;
        };
        let mut report = |kind, detail: String, healing| {
            drift.push(StackDrift {
                tenant: tenant.slug.clone(),
                stack: record.stack_name.clone(),
                kind,
                detail,
                healing,
            });
        };
        match by_uuid.get(uuid) {
            None if record.delete_requested_at.is_none() => report(
                DriftKind::ServiceMissing,
                format!("Coolify has no service {uuid}; provisioning the stack again creates it"),
                Healing::Operator,
            ),
            None => {}
            Some(service) => {
                let runs = is_running_status(&service.status);
                match record.status {
                    StackStatus::Stopped if runs => report(
                        DriftKind::RunsWhileStopped,
                        format!("recorded stopped, Coolify says {}", service.status),
                        Healing::Controller,
                    ),
                    StackStatus::Running if !runs => report(
                        DriftKind::StoppedWhileRunning,
                        format!("recorded running, Coolify says {}", service.status),
                        Healing::Operator,
                    ),
                    _ => {}
                }
            }
        }
    }
    (orphans, drift)
}

impl Engine {
    /// Drift across every stack: one list of Coolify's services, one of the records, and a
    /// render per deployed record (no Coolify call; with `options.environment`, one list of
    /// variables per deployed stack). With `options.remove_orphans`, orphans past
    /// `orphan_grace` since first seen are deleted (volumes kept) and new ones recorded as seen.
    pub async fn drift(&self, options: DriftOptions) -> Result<DriftReport, EngineError> {
        let (records, services) = self.records_and_services().await?;
        let (mut orphans, mut drift) = classify(&records, &services);
        let present: HashSet<&str> = services.iter().map(|service| service.uuid.as_str()).collect();
        for record in &records {
            drift.extend(self.render_drift(record));
            let deployed = record
                .coolify_service_uuid
                .as_deref()
                .filter(|uuid| present.contains(uuid))
                .filter(|_| {
                    record.delete_requested_at.is_none()
                        && matches!(
                            record.status,
                            StackStatus::Running | StackStatus::Stopped | StackStatus::Error
                        )
                });
            if let (true, Some(service_uuid)) = (options.environment, deployed) {
                drift.extend(self.environment_drift(record, service_uuid).await?);
            }
        }
        let removed = self.sweep_orphans(&mut orphans, options.remove_orphans).await?;
        Ok(DriftReport {
            stacks_seen: records.len(),
            services_seen: services.len(),
            orphans,
            drift,
            removed,
        })
    }

    /// Every record (with its tenant) and every Coolify service: what a pass and the drift
    /// report start from. Coolify not answering is [`EngineError::CoolifyUnavailable`].
    pub(super) async fn records_and_services(
        &self,
    ) -> Result<(Vec<AgentStack>, Vec<ServiceSummary>), EngineError> {
        let subject = Subject { tenant: "*".to_owned(), stack: "*".to_owned() };
        let records = self
            .inner
            .pocketbase
            .stack_list_all(&StackFilter::default(), true)
            .await
            .map_err(|error| subject.pocketbase(Step::RecordPending, error))?;
        let services = self.inner.coolify.list_services().await.map_err(|error| {
            EngineError::CoolifyUnavailable {
                detail: error.to_string().lines().next().unwrap_or_default().to_owned(),
            }
        })?;
        Ok((records, services))
    }

    /// Dates each orphan's first sighting from the audit log; with `remove`, records new ones as
    /// seen and removes those past `orphan_grace`. Returns the removed services' uuids.
    pub(super) async fn sweep_orphans(
        &self,
        orphans: &mut [OrphanService],
        remove: bool,
    ) -> Result<Vec<String>, EngineError> {
        let mut removed = Vec::new();
        for orphan in orphans {
            orphan.first_seen = self.orphan_first_seen(orphan).await;
            if !remove {
                continue;
            }
            match orphan.first_seen {
                None => {
                    let subject =
                        Subject { tenant: orphan.tenant.clone(), stack: orphan.stack.clone() };
                    let after = json!({ "service_uuid": orphan.service_uuid });
                    self.audit(&subject, ORPHAN_SEEN, Value::Null, after, AuditOutcome::Ok, None)
                        .await;
                    orphan.first_seen = Some(jiff::Timestamp::now());
                }
                Some(seen) => {
                    let age = Duration::try_from(jiff::Timestamp::now().duration_since(seen))
                        .unwrap_or(Duration::ZERO);
                    if age >= self.inner.settings.orphan_grace {
                        self.remove_orphan(orphan).await?;
                        removed.push(orphan.service_uuid.clone());
                    }
                }
            }
        }
        Ok(removed)
    }

    /// What today's template, plan and domain would deploy, against what the record says was
    /// deployed (its compose hash, limits and domain). Secrets are references in the compose,
    /// so no secret is needed.
    fn render_drift(&self, record: &AgentStack) -> Vec<StackDrift> {
        let (Some(tenant), Some(recorded)) = (
            record.tenant.as_deref(),
            record.resource_limits.as_ref().and_then(RecordedLimits::from_json),
        ) else {
            return Vec::new();
        };
        if record.coolify_service_uuid.as_deref().is_none_or(str::is_empty)
            || record.delete_requested_at.is_some()
        {
            return Vec::new();
        }
        let drift = |kind, detail: String, healing| StackDrift {
            tenant: tenant.slug.clone(),
            stack: record.stack_name.clone(),
            kind,
            detail,
            healing,
        };
        let subject = Subject { tenant: tenant.slug.clone(), stack: record.stack_name.clone() };
        let rendered = self.parse_names(&subject).and_then(|(slug, stack_name)| {
            let template = self.template(&record.template)?;
            let parameters = self.current_parameters(template, record, &BTreeMap::new());
            self.render(&subject, template, tenant, (&slug, &stack_name), &parameters, true)
        });
        let rendered = match rendered {
            Ok(rendered) => rendered,
            Err(error) => {
                let detail = error.to_string().lines().next().unwrap_or_default().to_owned();
                return vec![drift(DriftKind::RenderFails, detail, Healing::Operator)];
            }
        };
        let mut found = Vec::new();
        let hash = sha256(&rendered.compose_yaml);
        let hash_changed =
            recorded.compose_sha256.as_deref().is_some_and(|recorded| recorded != hash);
        if hash_changed || recorded.limits != rendered.limits {
            found.push(drift(
                DriftKind::TemplateChanged,
                format!(
                    "template `{}` or the plan now renders another compose{}; an upgrade of `{}/{}` applies it",
                    record.template,
                    if recorded.limits != rendered.limits { " with other limits" } else { "" },
                    tenant.slug,
                    record.stack_name
                ),
                Healing::Upgrade,
            ));
        }
        if record.domain.as_deref().filter(|domain| !domain.is_empty())
            != rendered.domain.as_deref()
        {
            found.push(drift(
                DriftKind::DomainChanged,
                format!(
                    "recorded domain {:?}, today's render {:?}",
                    record.domain.as_deref().unwrap_or_default(),
                    rendered.domain.as_deref().unwrap_or_default()
                ),
                Healing::Operator,
            ));
        }
        found
    }

    async fn orphan_first_seen(&self, orphan: &OrphanService) -> Option<jiff::Timestamp> {
        let query = AuditQuery {
            tenant: Some(orphan.tenant.clone()),
            stack: Some(orphan.stack.clone()),
            action: Some(ORPHAN_SEEN.to_owned()),
            limit: Some(50),
            oldest_first: true,
            ..AuditQuery::default()
        };
        let entries = self.inner.pocketbase.audit_list(&query).await.ok()?;
        entries
            .iter()
            .find(|entry| {
                entry.after.get("service_uuid").and_then(Value::as_str)
                    == Some(orphan.service_uuid.as_str())
            })
            .map(|entry| entry.time)
    }

    /// Deletes an orphan's service and containers, keeping its volumes (whatever data it has
    /// stays for the operator to look at), audited.
    async fn remove_orphan(&self, orphan: &OrphanService) -> Result<(), EngineError> {
        let subject = Subject { tenant: orphan.tenant.clone(), stack: orphan.stack.clone() };
        let options = DeleteServiceOptions {
            delete_configurations: true,
            delete_volumes: false,
            docker_cleanup: false,
            delete_connected_networks: false,
        };
        match self.inner.coolify.delete_service_by_uuid(&orphan.service_uuid, options).await {
            Ok(_) => {}
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(subject.coolify(Step::DeleteService, error)),
        }
        let after = json!({ "service_uuid": orphan.service_uuid, "volumes": "kept" });
        self.audit(&subject, "coolify.orphan_removed", Value::Null, after, AuditOutcome::Ok, None)
            .await;
        Ok(())
    }
}

/// The audit action of an orphan's first sighting: its grace period counts from it.
const ORPHAN_SEEN: &str = "coolify.orphan_seen";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_marker_is_read_back_and_nothing_else_is() {
        assert_eq!(
            parse_marker(&service_marker("acme", "bot")),
            Some(("acme".to_owned(), "bot".to_owned()))
        );
        assert_eq!(parse_marker("someone else's service"), None);
        assert_eq!(parse_marker("managed by cloudfreedom: tenant=acme"), None);
    }
}

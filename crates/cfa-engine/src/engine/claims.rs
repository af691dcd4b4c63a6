//! Which of two Coolify resources created at once for the same purpose survives, across
//! processes: the first whose creation was audited.
//!
//! Within one process the engine's locks keep a tenant to one project and a stack to one
//! service. Two processes (two `cfa` runs, the CLI and the controller) share no lock, and
//! Coolify accepts any number of projects or services with the same name. So every creation
//! is audited in PocketBase right after it happens (`coolify.project_created`,
//! `coolify.service_created`), and then the creator lists the candidates again: the winner is
//! the oldest audited creation that still exists. A creator that lost removes its own,
//! still unused, resource and continues with the winner. Whoever decides after appending its
//! own claim sees every earlier claim, and the oldest claimed resource is never removed by this
//! rule, so all racers agree on it.
//!
//! "Oldest" is the order PocketBase appended the claims (SQLite's rowid), not their `time`:
//! two claims can share a millisecond, and ordering ties by the random record id let two
//! racers each see their own claim first (CI caught two projects for one tenant that way).
//! In append order a claim that a racer did not see yet always sorts after the racer's own.

use cfa_coolify::CoolifyErrorKind;
use cfa_coolify::types::DeleteServiceOptions;
use cfa_pocketbase::{AuditOutcome, AuditQuery, NewAuditEntry};
use serde_json::{Value, json};

use super::Engine;

/// How often and how long to wait for an unclaimed candidate's creator to audit it. Three
/// seconds: with one second, a creator slowed by load (the full test suite on two cores) had
/// its fresh resource adopted as an orphan and twins survived.
const UNCLAIMED_POLLS: u32 = 30;
const UNCLAIMED_POLL: std::time::Duration = std::time::Duration::from_millis(100);
use crate::error::{EngineError, Subject};
use crate::steps::Step;

/// What was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Created {
    /// The tenant's project (claimed per tenant).
    Project,
    /// The stack's service (claimed per tenant and stack).
    Service,
}

impl Created {
    fn action(self) -> &'static str {
        match self {
            Created::Project => "coolify.project_created",
            Created::Service => "coolify.service_created",
        }
    }

    fn step(self) -> Step {
        match self {
            Created::Project => Step::EnsureProject,
            Created::Service => Step::CreateService,
        }
    }
}

/// The oldest claim (claims come oldest first) among the `existing` uuids.
pub(crate) fn oldest_claimed<'a>(claims: &[String], existing: &'a [String]) -> Option<&'a String> {
    claims.iter().find_map(|claimed| existing.iter().find(|uuid| *uuid == claimed))
}

impl Engine {
    fn claim_query(&self, subject: &Subject, created: Created) -> AuditQuery {
        AuditQuery {
            tenant: Some(subject.tenant.clone()),
            stack: match created {
                Created::Project => None,
                Created::Service => Some(subject.stack.clone()),
            },
            action: Some(created.action().to_owned()),
            limit: Some(1000),
            oldest_first: true,
            ..AuditQuery::default()
        }
    }

    /// The audited creations, oldest first.
    pub(crate) async fn claims(
        &self,
        subject: &Subject,
        created: Created,
    ) -> Result<Vec<String>, EngineError> {
        let entries = self
            .inner
            .pocketbase
            .audit_list(&self.claim_query(subject, created))
            .await
            .map_err(|error| subject.pocketbase(created.step(), error))?;
        Ok(entries
            .iter()
            .filter_map(|entry| entry.after.get("uuid").and_then(Value::as_str).map(str::to_owned))
            .collect())
    }

    /// The candidate all processes agree on: the oldest claimed one that exists. A candidate
    /// nobody claimed yet belongs to a creator between "create" and "audit": it may still
    /// lose, so it is never used before it is claimed. When none gets claimed within a second
    /// (its creator crashed, or it predates claims), we claim the smallest uuid ourselves and
    /// settle like a creator.
    pub(crate) async fn agreed_candidate<F, Fut>(
        &self,
        subject: &Subject,
        created: Created,
        list_existing: F,
    ) -> Result<Option<String>, EngineError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<String>, EngineError>>,
    {
        let mut candidates = list_existing().await?;
        for attempt in 0..=UNCLAIMED_POLLS {
            if candidates.is_empty() {
                return Ok(None);
            }
            let claims = self.claims(subject, created).await?;
            if let Some(winner) = oldest_claimed(&claims, &candidates) {
                return Ok(Some(winner.clone()));
            }
            if attempt < UNCLAIMED_POLLS {
                tokio::time::sleep(UNCLAIMED_POLL).await;
                candidates = list_existing().await?;
            }
        }
        candidates.sort();
        let orphan = candidates.swap_remove(0);
        tracing::warn!(tenant = %subject.tenant, stack = %subject.stack, uuid = %orphan, kind = ?created, "adopting a Coolify resource whose creation was never audited");
        self.settle_creation(subject, created, &orphan, list_existing).await.map(Some)
    }

    /// Audits the creation of `uuid`, lists the candidates again (`list_existing`) and returns
    /// the winner; removes ours when it lost.
    pub(crate) async fn settle_creation<F, Fut>(
        &self,
        subject: &Subject,
        created: Created,
        uuid: &str,
        list_existing: F,
    ) -> Result<String, EngineError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<String>, EngineError>>,
    {
        let entry = NewAuditEntry {
            actor: self.inner.settings.actor.clone(),
            action: created.action().to_owned(),
            tenant: Some(subject.tenant.clone()),
            stack: match created {
                Created::Project => None,
                Created::Service => Some(subject.stack.clone()),
            },
            before: Value::Null,
            after: json!({ "uuid": uuid }),
            outcome: AuditOutcome::Ok,
            error: None,
        };
        self.inner
            .pocketbase
            .audit_append(&entry)
            .await
            .map_err(|error| subject.pocketbase(created.step(), error))?;
        let existing = list_existing().await?;
        if existing.len() < 2 {
            return Ok(uuid.to_owned());
        }
        // Unclaimed candidates are newer than our claim once they get one: they lose.
        let claims = self.claims(subject, created).await?;
        let winner = oldest_claimed(&claims, &existing).cloned().unwrap_or_else(|| uuid.to_owned());
        if winner != uuid {
            tracing::warn!(tenant = %subject.tenant, stack = %subject.stack, ours = %uuid, winner = %winner, kind = ?created, "another process created the same resource first; removing ours");
            self.remove_lost(subject, created, uuid).await?;
        }
        Ok(winner)
    }

    /// Removes a resource that lost the race (nothing uses it yet).
    async fn remove_lost(
        &self,
        subject: &Subject,
        created: Created,
        uuid: &str,
    ) -> Result<(), EngineError> {
        let coolify = &self.inner.coolify;
        match created {
            Created::Project => match coolify.delete_project_by_uuid(uuid).await {
                Ok(_) => Ok(()),
                Err(error) if error.is_not_found() => Ok(()),
                // The other racer's service landed in it already (it saw only this one): keep it.
                Err(error) if matches!(error.kind, CoolifyErrorKind::BadRequest { .. }) => Ok(()),
                Err(error) => Err(subject.coolify(Step::EnsureProject, error)),
            },
            Created::Service => {
                match coolify.delete_service_by_uuid(uuid, DeleteServiceOptions::default()).await {
                    Ok(_) => {}
                    Err(error) if error.is_not_found() => {}
                    Err(error) => return Err(subject.coolify(Step::CreateService, error)),
                }
                // Coolify deletes asynchronously; wait, so no one sees two services after us.
                self.wait_status(subject, Step::CreateService, uuid, |status| status.is_none())
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::oldest_claimed;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    #[test]
    fn the_oldest_claim_that_still_exists_wins() {
        let existing = strings(&["b", "a", "c"]);
        assert_eq!(oldest_claimed(&strings(&["x", "c", "a"]), &existing).unwrap(), "c");
        assert_eq!(oldest_claimed(&strings(&["gone"]), &existing), None);
        assert_eq!(oldest_claimed(&[], &existing), None);
    }
}

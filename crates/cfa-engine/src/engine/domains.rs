//! A domain names one stack of one tenant. `<stack>-<tenant>` labels can meet: `support-acme`
//! of tenant `corp` and `support` of tenant `acme-corp` both give `support-acme-corp`, and the
//! first to claim it would keep the other tenant from ever having it (Coolify answers 409).
//! The longer slug wins: a stack's label may not end in `-<slug>` of another tenant whose slug
//! is longer than its own (`corp` cannot take `support-acme` while `acme-corp` exists), a new
//! slug may not end the label of a tenant whose slug is shorter (`acme-corp` is refused while
//! `corp` has `support-acme`), and no two records share a domain (PocketBase's unique index on
//! `agent_stacks.domain` holds that too). Checked before any Coolify call. A shorter slug
//! inside a longer one (`corp` in `acme-corp`) is no clash: every label of `acme-corp` ends in
//! `-corp`, but `corp`'s own stacks are the ones refused.

use cfa_core::naming::slug_suffixes;
use cfa_pocketbase::{PocketBaseErrorKind, StackFilter, Tenant};

use super::Engine;
use crate::error::{EngineError, Subject};
use crate::steps::Step;

impl Engine {
    /// Refuses `domain` for `tenant`'s stack when another tenant could read it as theirs or
    /// another record already has it.
    pub(super) async fn ensure_domain_is_ours(
        &self,
        subject: &Subject,
        tenant: &Tenant,
        domain: &str,
    ) -> Result<(), EngineError> {
        let pocketbase = &self.inner.pocketbase;
        let taken = |reason: String| EngineError::DomainTaken {
            tenant: subject.tenant.clone(),
            stack: subject.stack.clone(),
            domain: domain.to_owned(),
            reason,
        };
        let label = domain.split('.').next().unwrap_or_default();
        // Longer than our slug: the part of the label that reaches into our stack name.
        for candidate in slug_suffixes(label) {
            if candidate.len() <= tenant.slug.len() {
                continue;
            }
            match pocketbase.tenant_by_slug(candidate).await {
                Ok(_) => {
                    return Err(taken(format!(
                        "it ends in `-{candidate}`, and tenant `{candidate}`'s stacks get domains ending that way"
                    )));
                }
                Err(error) if error.kind == PocketBaseErrorKind::NotFound => {}
                Err(error) => return Err(subject.pocketbase(Step::RecordPending, error)),
            }
        }
        let filter = StackFilter { domain: Some(domain.to_owned()), ..StackFilter::default() };
        let holders = pocketbase
            .stack_list_all(&filter, false)
            .await
            .map_err(|error| subject.pocketbase(Step::RecordPending, error))?;
        if holders
            .iter()
            .any(|record| record.tenant_id != tenant.id || record.stack_name != subject.stack)
        {
            return Err(taken("another stack already has it".to_owned()));
        }
        Ok(())
    }

    /// Refuses a new tenant slug that ends an existing stack label of a tenant with a shorter
    /// slug (`<stack>-<other>` ending in `-<slug>`), so the two could never claim one domain.
    pub async fn check_new_tenant_slug(&self, slug: &str) -> Result<(), EngineError> {
        let suffix = format!("-{slug}.{}", self.inner.settings.base_domain);
        let filter = StackFilter { domain_suffix: Some(suffix.clone()), ..StackFilter::default() };
        let subject = Subject { tenant: slug.to_owned(), stack: String::new() };
        let failed = |error| subject.pocketbase(Step::RecordPending, error);
        let pocketbase = &self.inner.pocketbase;
        let stacks = pocketbase.stack_list_all(&filter, false).await.map_err(failed)?;
        for record in stacks {
            let Some(domain) = record.domain.filter(|domain| domain.ends_with(&suffix)) else {
                continue;
            };
            let owner = pocketbase.tenant_view(&record.tenant_id).await.map_err(failed)?;
            if owner.slug.len() < slug.len() {
                return Err(EngineError::SlugClash { slug: slug.to_owned(), domain });
            }
        }
        Ok(())
    }
}

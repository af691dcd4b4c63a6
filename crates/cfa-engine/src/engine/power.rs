//! Suspend and resume: observe, plan ([`crate::plan`]), run the planned steps.

use super::*;

impl Engine {
    /// Suspends a stack: stop without Docker cleanup, so its volumes are kept.
    pub async fn suspend(&self, tenant: &str, stack: &str) -> Result<StackOutcome, EngineError> {
        self.power(tenant, stack, Intent::Suspend, Completion::Ready).await
    }

    /// Resumes a suspended stack: start and wait until ready. It goes through `deploying`, so
    /// a crash mid-way leaves a record that the next resume or provision finishes.
    pub async fn resume(&self, tenant: &str, stack: &str) -> Result<StackOutcome, EngineError> {
        self.resume_with(tenant, stack, Completion::Ready).await
    }

    /// [`Engine::resume`], going as far as `completion` says.
    pub async fn resume_with(
        &self,
        tenant: &str,
        stack: &str,
        completion: Completion,
    ) -> Result<StackOutcome, EngineError> {
        self.power(tenant, stack, Intent::Resume, completion).await
    }

    async fn power(
        &self,
        tenant: &str,
        stack: &str,
        intent: Intent,
        completion: Completion,
    ) -> Result<StackOutcome, EngineError> {
        let subject = Subject { tenant: tenant.to_owned(), stack: stack.to_owned() };
        let mut begun = self.begin(&subject, true).await?;
        let changed = self
            .run_planned(&subject, &mut begun, intent, None, DeleteOptions::default(), completion)
            .await?;
        let record = required(begun.progress.record.as_ref(), &subject)?;
        Ok(outcome(&subject, record, changed))
    }
}

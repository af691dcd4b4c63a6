//! Suspend and resume: observe, plan ([`crate::plan`]), run the planned steps.

use super::*;

impl Engine {
    /// Suspends a stack: stop without Docker cleanup, so its volumes are kept.
    pub async fn suspend(&self, tenant: &str, stack: &str) -> Result<StackOutcome, EngineError> {
        self.power(tenant, stack, Intent::Suspend).await
    }

    /// Resumes a suspended stack: start and wait until ready. It goes through `deploying`, so
    /// a crash mid-way leaves a record that the next resume or provision finishes.
    pub async fn resume(&self, tenant: &str, stack: &str) -> Result<StackOutcome, EngineError> {
        self.power(tenant, stack, Intent::Resume).await
    }

    async fn power(
        &self,
        tenant: &str,
        stack: &str,
        intent: Intent,
    ) -> Result<StackOutcome, EngineError> {
        let subject = Subject { tenant: tenant.to_owned(), stack: stack.to_owned() };
        let mut begun = self.begin(&subject, true).await?;
        let steps =
            plan(intent, &begun.observed).map_err(|refusal| subject.plan_refused(refusal))?;
        let operation = Operation {
            subject: &subject,
            intent,
            slug: &begun.slug,
            stack_name: &begun.stack_name,
            tenant: &begun.tenant,
            rendered: None,
            preferred_server: None,
            delete_options: DeleteOptions::default(),
        };
        if let Err(error) = self.run_steps(&operation, &steps, &mut begun.progress).await {
            return Err(self.failed(&operation, &begun.progress, error).await);
        }
        let record = required(begun.progress.record.as_ref(), &subject)?;
        Ok(outcome(&subject, record, !steps.is_empty()))
    }
}

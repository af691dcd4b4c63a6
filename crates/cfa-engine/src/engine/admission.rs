//! Admission: the servers, what the recorded stacks reserve on each, and the pure decision.

use super::*;

impl Engine {
    /// Admission against what PocketBase records and Coolify lists now. `already_counted` is
    /// set for a record PocketBase's quota hook counted when a tenant created it: the count
    /// quota is then not applied a second time.
    pub(crate) async fn admission_decision(
        &self,
        subject: &Subject,
        tenant: &Tenant,
        requirements: &cfa_core::StackRequirements,
        preferred_server: Option<&str>,
        already_counted: bool,
        step: Step,
    ) -> Result<AdmissionDecision, EngineError> {
        let all_stacks = self
            .inner
            .pocketbase
            .stack_list_all(&StackFilter::default(), false)
            .await
            .map_err(|error| subject.pocketbase(step, error))?;
        let servers = self.server_capacities(subject, &all_stacks).await?;
        let existing_stacks =
            all_stacks.iter().filter(|stack| stack.tenant_id == tenant.id).count() as u32;
        let standing = TenantStanding {
            slug: tenant.slug.clone(),
            plan_tier: tenant.plan_tier,
            max_stacks: (!already_counted).then_some(tenant.max_stacks),
            existing_stacks: if already_counted { 0 } else { existing_stacks },
            resource_limits: tenant.resource_limits,
        };
        let outcome = admit(AdmissionRequest {
            plans: &self.inner.settings.plans,
            tenant: &standing,
            requirements,
            servers: &servers,
            preferred_server,
        });
        Ok(AdmissionDecision { outcome, servers })
    }

    /// The usable Coolify servers with what the recorded stacks reserve on each.
    pub(super) async fn server_capacities(
        &self,
        subject: &Subject,
        stacks: &[AgentStack],
    ) -> Result<Vec<ServerCapacity>, EngineError> {
        let servers = self
            .inner
            .coolify
            .list_servers()
            .await
            .map_err(|error| subject.coolify(Step::RecordPending, error))?;
        let placed: Vec<RecordedLimits> = stacks
            .iter()
            .filter_map(|stack| stack.resource_limits.as_ref().and_then(RecordedLimits::from_json))
            .collect();
        Ok(servers
            .iter()
            .filter(|server| server.is_usable() && server.is_reachable() && !server.is_build_server())
            .map(|server| {
                let mut capacity = match self.inner.settings.servers.get(&server.uuid) {
                    Some(settings) => settings.capacity(&server.uuid),
                    None => {
                        tracing::warn!(server_uuid = %server.uuid, server = %server.name, "no capacity configured for this server; assuming the seed host (12 cores, 31 GB RAM, 24 GB free disk)");
                        ServerCapacity { name: server.name.clone(), ..ServerCapacity::seed_host(&server.uuid) }
                    }
                };
                for recorded in placed.iter().filter(|recorded| recorded.server_uuid == server.uuid) {
                    capacity.reserve(recorded.limits, &recorded.images);
                }
                capacity
            })
            .collect())
    }
}

//! Shared setup: a server, a superuser, and two tenants A and B, each owned by its own user.

use cfa_pocketbase::testing::TestPocketBase;
use cfa_pocketbase::{NewStack, NewTenant, PocketBaseClient, StackFilter, Tenant};

pub(crate) struct World {
    pub(crate) server: TestPocketBase,
    pub(crate) superuser: PocketBaseClient,
    pub(crate) user_a: String,
    pub(crate) a: PocketBaseClient,
    pub(crate) b: PocketBaseClient,
    pub(crate) tenant_a: Tenant,
    pub(crate) tenant_b: Tenant,
}

pub(crate) async fn world(max_stacks_a: u32) -> World {
    let server = TestPocketBase::start().await.unwrap_or_else(|error| panic!("{error}"));
    let superuser = server.superuser().await.unwrap();
    let (user_a, a) = server.user("a@tenant.test").await.unwrap();
    let (user_b, b) = server.user("b@tenant.test").await.unwrap();
    let tenant_a = superuser
        .tenant_create(&NewTenant {
            name: "Tenant A".into(),
            slug: "tenant-a".into(),
            user_id: user_a.clone(),
            max_stacks: Some(max_stacks_a),
            plan_tier: None,
            resource_limits: None,
        })
        .await
        .unwrap();
    let tenant_b = superuser
        .tenant_create(&NewTenant {
            name: "Tenant B".into(),
            slug: "tenant-b".into(),
            user_id: user_b,
            max_stacks: Some(5),
            plan_tier: None,
            resource_limits: None,
        })
        .await
        .unwrap();
    World { server, superuser, user_a, a, b, tenant_a, tenant_b }
}

impl World {
    /// How many stacks the tenant really has (read as the superuser).
    pub(crate) async fn stack_count(&self, tenant_id: &str) -> usize {
        self.superuser.stack_list_all(&StackFilter::tenant(tenant_id), false).await.unwrap().len()
    }
}

pub(crate) fn pending(tenant: &Tenant, name: &str) -> NewStack {
    NewStack::pending(&tenant.id, "telegram-bot", name)
}

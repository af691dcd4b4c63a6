//! Crash safety, upstream faults and concurrency.

use std::sync::Arc;

use cfa_core::{PlanTier, StackStatus};
use cfa_engine::{Failpoint, Injected, Step};

use crate::harness::{World, bot_request, openclaw_request};

/// A failpoint that "crashes" the engine right after `crash_after` completes for the stack.
fn crash_after(crash_after: Step) -> Failpoint {
    Arc::new(
        move |_tenant: &str, _stack: &str, step: Step| {
            if step == crash_after { Err(Injected) } else { Ok(()) }
        },
    )
}

/// Kill the engine after each step of a provision, then rerun with a healthy engine: it
/// converges to one project, one service and one `running` record, every time.
#[tokio::test]
async fn a_crash_after_any_provision_step_converges_on_rerun_without_twins() {
    let world = World::start().await;
    let steps = [
        Step::RecordPending,
        Step::RecordDeploying,
        Step::EnsureProject,
        Step::EnsureEnvironment,
        Step::CreateService,
        Step::RecordService,
        Step::SetBackupSchedule,
        Step::SetEnvironment,
        Step::StartService,
        Step::WaitReady,
    ];
    for (index, step) in steps.into_iter().enumerate() {
        let tenant = format!("crash{index}");
        let tenant_id = world.tenant(&tenant, PlanTier::Business, 3).await;
        // The openclaw agent on business runs every step, backups included.
        let request = openclaw_request(&tenant, "agent");
        let crashed = world.engine_with_failpoint(crash_after(step)).provision(&request).await;
        assert!(crashed.is_err(), "the failpoint after {step} must stop the engine");

        let converged = world.engine().provision(&request).await.unwrap_or_else(|error| {
            panic!("rerun after a crash after {step} must converge: {error}")
        });
        assert_eq!(converged.status, StackStatus::Running, "after {step}");
        assert_eq!(world.coolify_counts(&tenant, "agent").await, (1, 1), "after {step}");
        let stacks = world.stacks_of(&tenant_id).await;
        assert_eq!(stacks.len(), 1, "one record after {step}");
        assert_eq!(stacks[0].coolify_service_uuid.as_deref(), converged.service_uuid.as_deref());
        assert_eq!(stacks[0].error_message, None, "after {step}");
    }
}

/// PocketBase going away mid-provision gives a clear error, and a rerun once it is back
/// finishes the stack without a twin.
#[tokio::test]
async fn a_provision_survives_pocketbase_restarting_between_runs() {
    let mut world = World::start().await;
    let tenant_id = world.tenant("restart", PlanTier::Starter, 1).await;
    let request = bot_request("restart", "bot");
    let crashed =
        world.engine_with_failpoint(crash_after(Step::CreateService)).provision(&request).await;
    assert!(crashed.is_err());

    world.pocketbase.stop();
    let error = world.engine().provision(&request).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("PocketBase") && message.contains("hint:"), "{message}");
    assert_eq!(world.coolify_counts("restart", "bot").await, (1, 1), "no twin while PB is down");

    world.pocketbase.restart().await.unwrap();
    let converged = world.engine().provision(&request).await.unwrap();
    assert_eq!(converged.status, StackStatus::Running);
    assert_eq!(world.coolify_counts("restart", "bot").await, (1, 1));
    assert_eq!(world.stacks_of(&tenant_id).await.len(), 1);
}

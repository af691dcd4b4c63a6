//! A dry run's calls are the run's calls: for every operation and the starting states that
//! matter, the Coolify calls the run makes (the sandbox records them, by token) are the ones
//! its dry run listed a moment before, each as often as listed; and a dry run refuses exactly
//! when the run does.

use std::collections::BTreeMap;
use std::sync::Arc;

use cfa_core::{PlanTier, StackStatus};
use cfa_engine::plan::{Api, PlannedCall};
use cfa_engine::{Engine, EngineError, Failpoint, Injected, OperationRequest, Step};
use cfa_pocketbase::StackPatch;

use crate::harness::{ENGINE_TOKEN_ID, SKIP_GRACE, World, openclaw_request};

/// How often each Coolify `METHOD route` may be called, by the plan: `(min, max)`.
fn allowed(planned: &[PlannedCall]) -> BTreeMap<String, (u32, Option<u32>)> {
    let mut allowed: BTreeMap<String, (u32, Option<u32>)> = BTreeMap::new();
    for call in planned.iter().filter(|call| call.api == Api::Coolify) {
        let entry =
            allowed.entry(format!("{} {}", call.method, call.route)).or_insert((0, Some(0)));
        entry.0 += call.min;
        entry.1 = entry.1.zip(call.max).map(|(sum, max)| sum + max);
    }
    allowed
}

/// Runs `run` and holds the engine's Coolify calls during it to what the dry run planned.
async fn made_as_planned<T>(
    world: &World,
    what: &str,
    planned: &[PlannedCall],
    run: impl std::future::Future<Output = T>,
) -> T {
    let before = world.sandbox.exchanges().len();
    let result = run.await;
    let mut made: BTreeMap<String, u32> = BTreeMap::new();
    for exchange in &world.sandbox.exchanges()[before..] {
        if exchange.token_id.as_deref() != Some(ENGINE_TOKEN_ID) {
            continue;
        }
        let route = exchange.route.clone().unwrap_or_else(|| exchange.path.clone());
        *made.entry(format!("{} {route}", exchange.method)).or_default() += 1;
    }
    let allowed = allowed(planned);
    let listing = planned.iter().map(|call| format!("  {call}\n")).collect::<String>();
    for (call, count) in &made {
        let Some((min, max)) = allowed.get(call) else {
            panic!(
                "{what}: the run made `{call}` ({count}x), the dry run did not list it:\n{listing}"
            );
        };
        assert!(
            count >= min && max.is_none_or(|max| *count <= max),
            "{what}: `{call}` made {count}x, planned {min}..{max:?}:\n{listing}"
        );
    }
    for (call, (min, _)) in &allowed {
        let count = made.get(call).copied().unwrap_or(0);
        assert!(
            count >= *min,
            "{what}: `{call}` planned at least {min}x, made {count}x:\n{listing}"
        );
    }
    result
}

/// The dry run of `request` and then the run, compared; `Ok(refused)` says whether both refused.
async fn operation_as_planned(
    world: &World,
    engine: &Engine,
    request: OperationRequest<'_>,
    stack: &str,
) -> bool {
    let dry = engine.dry_run_operation(request, "calls", stack).await.expect("dry run");
    let what = format!("{} of a {} stack", dry.operation, dry.status);
    let result = made_as_planned(world, &what, &dry.calls, async {
        match request {
            OperationRequest::Suspend => engine.suspend("calls", stack).await.map(|_| ()),
            OperationRequest::Resume => engine.resume("calls", stack).await.map(|_| ()),
            OperationRequest::Upgrade { parameters } => {
                engine.upgrade("calls", stack, parameters).await.map(|_| ())
            }
            OperationRequest::Delete => engine.delete("calls", stack, SKIP_GRACE).await,
        }
    })
    .await;
    match (&dry.refusal, result) {
        (None, Ok(())) => false,
        (Some(_), Err(EngineError::InvalidState { .. })) => true,
        (refusal, result) => panic!("{what}: the dry run said {refusal:?}, the run {result:?}"),
    }
}

async fn provision_as_planned(world: &World, engine: &Engine, stack: &str) {
    let request = openclaw_request("calls", stack);
    let dry = engine.dry_run_provision(&request).await.expect("dry run");
    assert_eq!(dry.refusal, None);
    let what = format!("provision after steps {:?}", dry.steps);
    made_as_planned(world, &what, &dry.calls, engine.provision(&request))
        .await
        .expect("provisioned");
}

fn crash_after(crash_after: Step) -> Failpoint {
    Arc::new(move |_, _, step| if step == crash_after { Err(Injected) } else { Ok(()) })
}

async fn set_status(world: &World, engine: &Engine, stack: &str, status: StackStatus) {
    let record = engine.stack("calls", stack).await.unwrap();
    let patch = StackPatch { status: Some(status), ..StackPatch::default() };
    world.pb.stack_update(&record.id, &patch).await.unwrap();
}

#[tokio::test]
async fn every_operation_makes_the_calls_its_dry_run_lists() {
    let world = World::start_with(|config| config.record_exchanges = true).await;
    world.tenant("calls", PlanTier::Business, 3).await;
    let engine = world.engine();

    // A new stack, then the idempotent rerun of a running one.
    provision_as_planned(&world, &engine, "claw").await;
    provision_as_planned(&world, &engine, "claw").await;

    // Nothing to do, refused, then done: every state suspend and resume meet.
    assert!(!operation_as_planned(&world, &engine, OperationRequest::Resume, "claw").await);
    assert!(!operation_as_planned(&world, &engine, OperationRequest::Suspend, "claw").await);
    assert!(!operation_as_planned(&world, &engine, OperationRequest::Suspend, "claw").await);
    let stopped = OperationRequest::Upgrade { parameters: None };
    assert!(
        operation_as_planned(&world, &engine, stopped, "claw").await,
        "upgrade of a stopped stack"
    );
    assert!(!operation_as_planned(&world, &engine, OperationRequest::Resume, "claw").await);
    assert_eq!(engine.stack("calls", "claw").await.unwrap().status, StackStatus::Running);

    // Upgrade: nothing changed, then a changed parameter (environment), then a failed stack.
    let unchanged = OperationRequest::Upgrade { parameters: None };
    assert!(!operation_as_planned(&world, &engine, unchanged, "claw").await);
    let mut parameters = openclaw_request("calls", "claw").parameters;
    parameters.insert("router_api_key".to_owned(), "sk-router-rotated-for-calls-0123".to_owned());
    let changed = OperationRequest::Upgrade { parameters: Some(&parameters) };
    assert!(!operation_as_planned(&world, &engine, changed, "claw").await);
    set_status(&world, &engine, "claw", StackStatus::Error).await;
    assert!(
        operation_as_planned(&world, &engine, OperationRequest::Resume, "claw").await,
        "resume of a failed stack"
    );
    assert!(
        !operation_as_planned(
            &world,
            &engine,
            OperationRequest::Upgrade { parameters: Some(&parameters) },
            "claw"
        )
        .await
    );

    // A resume interrupted after it recorded `deploying` is finished by the next one.
    assert!(!operation_as_planned(&world, &engine, OperationRequest::Suspend, "claw").await);
    let crashing = world.engine_with_failpoint(crash_after(Step::RecordDeploying));
    assert!(crashing.resume("calls", "claw").await.is_err());
    assert_eq!(engine.stack("calls", "claw").await.unwrap().status, StackStatus::Deploying);
    assert!(!operation_as_planned(&world, &engine, OperationRequest::Resume, "claw").await);

    // A provision that crashed after creating the service: the rerun adopts it.
    let crashing = world.engine_with_failpoint(crash_after(Step::CreateService));
    assert!(crashing.provision(&openclaw_request("calls", "crashed")).await.is_err());
    provision_as_planned(&world, &engine, "crashed").await;

    // Delete, with the final backup a paid plan keeps.
    assert!(!operation_as_planned(&world, &engine, OperationRequest::Delete, "claw").await);
    assert!(!operation_as_planned(&world, &engine, OperationRequest::Delete, "crashed").await);
    assert_eq!(world.all_services().await, 0);
}

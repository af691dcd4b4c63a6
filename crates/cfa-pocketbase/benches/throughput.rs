//! Throughput of `cfa-pocketbase` against the real PocketBase 0.40.6 (a documented bench
//! binary, not criterion: one run creates 10,000 records, too slow to repeat per sample).
//!
//! `cargo bench -p cfa-pocketbase --bench throughput` (needs `pocketbase` on PATH or
//! CFA_POCKETBASE_BIN). Measures, through the typed client:
//! 1. 1,000 sequential stack creates as a tenant user (rules + quota transaction + audit hook);
//! 2. 1,000 sequential stack creates as the superuser (the engine's path: quota, no audit);
//! 3. a full list of 10,000 stacks (`stack_list_all`, keyset pages of 1,000), superuser and tenant.

use std::time::{Duration, Instant};

use cfa_pocketbase::testing::TestPocketBase;
use cfa_pocketbase::{NewStack, NewTenant, PocketBaseClient, StackFilter};

const TOTAL_STACKS: usize = 10_000;

#[expect(clippy::print_stdout, reason = "a bench binary reports on stdout")]
fn report(line: &str) {
    println!("{line}");
}

fn summary(label: &str, mut latencies: Vec<Duration>, total: Duration) {
    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
    report(&format!(
        "{label}: {} in {:.2} s = {:.0}/s, p50 {:.1} ms, p99 {:.1} ms",
        latencies.len(),
        total.as_secs_f64(),
        latencies.len() as f64 / total.as_secs_f64(),
        percentile(0.50).as_secs_f64() * 1000.0,
        percentile(0.99).as_secs_f64() * 1000.0,
    ));
}

async fn sequential_creates(
    client: &PocketBaseClient,
    tenant_id: &str,
    prefix: &str,
    count: usize,
) -> usize {
    let mut latencies = Vec::with_capacity(count);
    let started = Instant::now();
    for index in 0..count {
        let stack = NewStack::pending(tenant_id, "telegram-bot", &format!("{prefix}-{index}"));
        let call = Instant::now();
        client.stack_create(&stack).await.expect("create");
        latencies.push(call.elapsed());
    }
    summary(&format!("create ({prefix})"), latencies, started.elapsed());
    count
}

async fn full_lists(label: &str, client: &PocketBaseClient, tenant_id: &str) {
    let mut timings = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let stacks =
            client.stack_list_all(&StackFilter::tenant(tenant_id), false).await.expect("list");
        timings.push(started.elapsed());
        assert_eq!(stacks.len(), TOTAL_STACKS);
    }
    timings.sort();
    report(&format!(
        "full list of {TOTAL_STACKS} ({label}): best {:.0} ms, median {:.0} ms (5 runs)",
        timings[0].as_secs_f64() * 1000.0,
        timings[2].as_secs_f64() * 1000.0
    ));
}

fn main() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let server = TestPocketBase::start().await.unwrap_or_else(|error| panic!("{error}"));
        let superuser = server.superuser().await.expect("superuser");
        let (user_id, tenant_user) = server.user("bench@tenant.test").await.expect("user");
        let tenant = superuser
            .tenant_create(&NewTenant {
                name: "Bench".into(),
                slug: "bench".into(),
                user_id,
                max_stacks: Some(TOTAL_STACKS as u32),
                plan_tier: None,
                resource_limits: None,
            })
            .await
            .expect("tenant");

        let mut created = sequential_creates(&tenant_user, &tenant.id, "tenant", 1000).await;
        created += sequential_creates(&superuser, &tenant.id, "superuser", 1000).await;

        // Fill up to 10,000 (8 parallel writers; not part of the figures).
        let fill_started = Instant::now();
        let writers = (0..8).map(|writer| {
            let client = superuser.clone();
            let tenant_id = tenant.id.clone();
            let count = (TOTAL_STACKS - created) / 8;
            tokio::spawn(async move {
                for index in 0..count {
                    let stack = NewStack::pending(
                        &tenant_id,
                        "telegram-bot",
                        &format!("fill-{writer}-{index}"),
                    );
                    client.stack_create(&stack).await.expect("fill");
                }
            })
        });
        for writer in futures::future::join_all(writers).await {
            writer.expect("writer");
        }
        report(&format!(
            "fill to {TOTAL_STACKS} with 8 parallel writers: {:.1} s",
            fill_started.elapsed().as_secs_f64()
        ));

        full_lists("superuser", &superuser, &tenant.id).await;
        full_lists("tenant user, listRule join", &tenant_user, &tenant.id).await;
    });
}

//! `GET /api/v1/services` with 10,000 services, over HTTP (the monitor's one call per pass).
//! Run: `cargo bench -p coolify-sandbox`.

use std::time::Duration;

use coolify_sandbox::{Sandbox, SandboxConfig};
use criterion::{Criterion, criterion_group, criterion_main};

fn list_services(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sandbox = runtime
        .block_on(Sandbox::start(SandboxConfig {
            rate_limit: u32::MAX,
            ..SandboxConfig::default()
        }))
        .expect("sandbox");
    sandbox.seed_services(10_000);
    let client =
        reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("reqwest");
    let url = format!("{}/api/v1/services", sandbox.base_url());
    let token = sandbox.token().to_owned();
    let mut group = criterion.benchmark_group("sandbox");
    group.sample_size(20);
    group.bench_function("list_services_10000", |bencher| {
        bencher.to_async(&runtime).iter(|| async {
            let body = client
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await
                .expect("answer")
                .bytes()
                .await
                .expect("body");
            assert!(body.len() > 1_000_000);
        });
    });
    group.finish();
}

criterion_group!(benches, list_services);
criterion_main!(benches);

//! Client overhead per call against the sandbox, next to a bare reqwest call doing the same
//! request (`GET /api/v1/team`, JSON decoded). Run: `cargo bench -p cfa-coolify`.

use std::time::Duration;

use cfa_coolify::{ApiToken, CoolifyClient, CoolifyConfig};
use coolify_sandbox::{Sandbox, SandboxConfig};
use criterion::{Criterion, criterion_group, criterion_main};

fn client_overhead(criterion: &mut Criterion) {
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
    let mut config = CoolifyConfig::new(sandbox.base_url(), ApiToken::new(sandbox.token()));
    // The budget is not what we measure here.
    config.requests_per_minute = u32::MAX;
    config.timeout = Duration::from_secs(10);
    let client = CoolifyClient::new(config).expect("client");
    let bare =
        reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("reqwest");
    let team_url = format!("{}/api/v1/team", sandbox.base_url());
    let token = sandbox.token().to_owned();

    let mut group = criterion.benchmark_group("get_team");
    group.bench_function("cfa_coolify_client", |bencher| {
        bencher.to_async(&runtime).iter(|| async { client.get_token_team().await.expect("team") });
    });
    group.bench_function("bare_reqwest", |bencher| {
        bencher.to_async(&runtime).iter(|| async {
            bare.get(&team_url)
                .bearer_auth(&token)
                .header("accept", "application/json")
                .send()
                .await
                .expect("answer")
                .json::<serde_json::Value>()
                .await
                .expect("json")
        });
    });
    group.finish();
}

criterion_group!(benches, client_overhead);
criterion_main!(benches);

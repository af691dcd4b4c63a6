//! The sandbox over raw HTTP: Coolify's request checks, middleware answers, the throttle, the
//! control endpoint, and the binary.

mod jobs;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use coolify_sandbox::{DEFAULT_TOKEN, Sandbox, SandboxConfig};
use serde_json::{Value, json};

async fn sandbox(configure: impl FnOnce(&mut SandboxConfig)) -> coolify_sandbox::SandboxHandle {
    let mut config = SandboxConfig::default();
    configure(&mut config);
    Sandbox::start(config).await.expect("sandbox starts")
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn send(request: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = request
        .bearer_auth(DEFAULT_TOKEN)
        .header("accept", "application/json")
        .send()
        .await
        .expect("answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test]
async fn health_is_plain_ok_without_a_token() {
    let sandbox = sandbox(|_| {}).await;
    let response = http().get(format!("{}/api/health", sandbox.base_url())).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(response.text().await.unwrap(), "OK");
}

#[tokio::test]
async fn request_checks_match_coolify() {
    let sandbox = sandbox(|_| {}).await;
    let projects = format!("{}/api/v1/projects", sandbox.base_url());

    let (status, _, body) = send(http().post(&projects).body("name=x")).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({ "message": "Invalid request.", "error": "Content-Type must be application/json." })
        )
    );
    let (status, _, body) = send(http().post(&projects).json(&json!({}))).await;
    assert_eq!((status, body["error"].clone()), (400, json!("Empty JSON.")));
    let (status, _, body) =
        send(http().post(&projects).header("content-type", "application/json").body("{")).await;
    assert_eq!((status, body["error"].clone()), (400, json!("Invalid JSON.")));
    let (status, _, body) =
        send(http().post(&projects).json(&json!({ "name": "acme", "uuid": "x" }))).await;
    assert_eq!(
        (status, body),
        (
            422,
            json!({ "message": "Validation failed.", "errors": { "uuid": ["This field is not allowed."] } })
        )
    );

    let (status, _, body) = send(http().post(&projects).json(&json!({ "name": "acme" }))).await;
    assert_eq!(status, 201);
    let project_uuid = body["uuid"].as_str().unwrap().to_owned();

    // Raw YAML instead of base64 is the classic mistake (coollabsio/coolify#4843).
    let services = format!("{}/api/v1/services", sandbox.base_url());
    let create = json!({
        "project_uuid": project_uuid,
        "environment_name": "production",
        "server_uuid": sandbox.server_uuid(),
        "docker_compose_raw": "services:\n  web:\n    image: nginx\n",
    });
    let (status, _, body) = send(http().post(&services).json(&create)).await;
    assert_eq!(status, 422);
    assert_eq!(
        body["errors"]["docker_compose_raw"],
        "The docker_compose_raw should be base64 encoded."
    );

    let mut connect = create.clone();
    connect["connect_to_docker_network"] = json!(true);
    let (status, _, body) = send(http().post(&services).json(&connect)).await;
    assert_eq!(
        (status, body["errors"]["connect_to_docker_network"][0].clone()),
        (422, json!("This field is not allowed."))
    );

    let mut no_environment = create.clone();
    no_environment.as_object_mut().unwrap().remove("environment_name");
    let (status, _, body) = send(http().post(&services).json(&no_environment)).await;
    assert_eq!(
        (status, body["message"].clone()),
        (422, json!("You need to provide at least one of environment_name or environment_uuid."))
    );

    let (status, headers, body) = send(http().get(format!("{services}/abc/start"))).await;
    assert_eq!(
        (status, body["message"].clone()),
        (405, json!("This endpoint has changed to a POST request."))
    );
    assert_eq!(headers["allow"], "POST");
    let (status, _, body) =
        send(http().get(format!("{}/api/v1/nothing/here/at/all", sandbox.base_url()))).await;
    assert_eq!((status, body["message"].clone()), (404, json!("Not found.")));
}

#[tokio::test]
async fn the_throttle_answers_429_with_retry_after() {
    let sandbox = sandbox(|config| config.rate_limit = 5).await;
    let url = format!("{}/api/v1/projects", sandbox.base_url());
    for _ in 0..5 {
        let (status, headers, _) = send(http().get(&url)).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-ratelimit-limit"], "5");
    }
    let (status, headers, body) = send(http().get(&url)).await;
    assert_eq!((status, body["message"].clone()), (429, json!("Too Many Attempts.")));
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let stats = sandbox.stats();
    assert_eq!((stats.requests, stats.rate_limited, stats.rate_windows_opened), (6, 1, 1));
}

#[tokio::test]
async fn faults_can_be_set_over_http() {
    let sandbox = sandbox(|_| {}).await;
    let control = format!("{}/_sandbox/faults", sandbox.base_url());
    let response = http()
        .post(&control)
        .json(&json!({ "kind": "server_error", "requests": 1, "status": 503 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let (status, _, _) = send(http().get(format!("{}/api/v1/servers", sandbox.base_url()))).await;
    assert_eq!(status, 503);
    let (status, _, _) = send(http().get(format!("{}/api/v1/servers", sandbox.base_url()))).await;
    assert_eq!(status, 200);
    let response =
        http().post(&control).json(&json!({ "kind": "no_such_fault" })).send().await.unwrap();
    assert_eq!(response.status(), 422);
    assert_eq!(http().delete(&control).send().await.unwrap().status(), 200);
    assert!(sandbox.faults().is_empty());
}

#[test]
fn the_binary_prints_its_address_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_coolify-sandbox"))
        .args(["--listen", "127.0.0.1:0", "--token", "9|binary-token", "--deploy-delay", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("a line");
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let status = runtime.block_on(async {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        client
            .get(format!("{address}/api/v1/version"))
            .bearer_auth("9|binary-token")
            .send()
            .await
            .unwrap()
            .status()
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200);
}

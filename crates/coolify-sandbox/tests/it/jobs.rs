//! Coolify's job model and fidelity points (each names its Coolify source in `src/`).

use std::time::Duration;

use base64::Engine as _;
use coolify_sandbox::{DEFAULT_TOKEN, Sandbox, SandboxConfig, SandboxHandle};
use serde_json::{Value, json};

async fn call(
    sandbox: &SandboxHandle,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}/api/v1{path}", sandbox.base_url()))
        .bearer_auth(DEFAULT_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("answer");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn service(sandbox: &SandboxHandle, compose: &str) -> String {
    let (_, project) =
        call(sandbox, reqwest::Method::POST, "/projects", Some(json!({ "name": "acme" }))).await;
    let (status, body) = call(
        sandbox,
        reqwest::Method::POST,
        "/services",
        Some(json!({
            "project_uuid": project["uuid"],
            "environment_name": "production",
            "server_uuid": sandbox.server_uuid(),
            "docker_compose_raw": base64::engine::general_purpose::STANDARD.encode(compose),
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["uuid"].as_str().unwrap().to_owned()
}

async fn status(sandbox: &SandboxHandle, uuid: &str) -> String {
    let (_, body) = call(sandbox, reqwest::Method::GET, &format!("/services/{uuid}"), None).await;
    body["status"].as_str().unwrap_or_default().to_owned()
}

const WEB: &str = "services:\n  web:\n    image: nginx:1.27\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_start_reads_exited_then_starting_then_stale_until_the_status_job() {
    let sandbox = Sandbox::start(SandboxConfig {
        status_interval: Duration::from_secs(30),
        deploy_delay: Duration::from_millis(200),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let uuid = service(&sandbox, WEB).await;
    assert_eq!(status(&sandbox, &uuid).await, "exited");
    let (code, _) =
        call(&sandbox, reqwest::Method::POST, &format!("/services/{uuid}/start"), None).await;
    assert_eq!(code, 200);
    sandbox.wait_for_jobs().await;
    assert_eq!(status(&sandbox, &uuid).await, "starting:unhealthy");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The activity is over; the stored statuses are still the old ones.
    assert_eq!(status(&sandbox, &uuid).await, "exited");
    sandbox.run_status_job().await;
    assert_eq!(status(&sandbox, &uuid).await, "running:unknown");
    // Stop removes the containers: logs find none.
    call(&sandbox, reqwest::Method::POST, &format!("/services/{uuid}/stop"), None).await;
    sandbox.wait_for_jobs().await;
    assert_eq!(status(&sandbox, &uuid).await, "exited");
    let (code, body) = call(
        &sandbox,
        reqwest::Method::GET,
        &format!("/services/{uuid}/logs?sub_service_name=web"),
        None,
    )
    .await;
    assert_eq!((code, body["message"].clone()), (404, json!("Container not found.")));
}

#[tokio::test]
async fn a_missing_image_fails_the_start_and_an_exited_container_has_no_logs() {
    let sandbox = Sandbox::start(SandboxConfig {
        deploy_delay: Duration::ZERO,
        missing_images: vec!["nginx:1.27".to_owned()],
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let uuid = service(&sandbox, WEB).await;
    call(&sandbox, reqwest::Method::POST, &format!("/services/{uuid}/start"), None).await;
    sandbox.wait_for_jobs().await;
    assert_eq!(status(&sandbox, &uuid).await, "exited");
    assert!(sandbox.activity_log(&uuid).unwrap().contains("pull access denied"));
    let (code, _) = call(
        &sandbox,
        reqwest::Method::GET,
        &format!("/services/{uuid}/logs?sub_service_name=web"),
        None,
    )
    .await;
    assert_eq!(code, 404);

    let other = service(&sandbox, "services:\n  api:\n    image: busybox:1\n").await;
    sandbox.inject(coolify_sandbox::Fault::ContainerExited {
        service_uuid: Some(other.clone()),
        container: None,
    });
    call(&sandbox, reqwest::Method::POST, &format!("/services/{other}/start"), None).await;
    sandbox.wait_for_jobs().await;
    let (code, body) = call(
        &sandbox,
        reqwest::Method::GET,
        &format!("/services/{other}/logs?sub_service_name=api"),
        None,
    )
    .await;
    assert_eq!((code, body["message"].clone()), (400, json!("Container is not running.")));
}

#[tokio::test]
async fn compose_env_file_binds_and_file_content_follow_the_parser() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let compose = "services:\n  web:\n    image: nginx:1.27\n    environment:\n      - GREETING=hello\n    volumes:\n      - type: bind\n        source: ./conf\n        target: /etc/conf\n        read_only: true\n      - type: bind\n        source: ./app.conf\n        target: /etc/app.conf\n        content: first\n";
    let uuid = service(&sandbox, compose).await;
    let written = sandbox.written_compose(&uuid).unwrap();
    assert!(
        written.contains(&format!("/data/coolify/services/{uuid}/conf:/etc/conf")),
        "{written}"
    );
    assert!(!written.contains("read_only"), "{written}");
    assert!(written.contains("env_file"), "{written}");
    let env_file = sandbox.written_env_file(&uuid).unwrap();
    assert!(env_file.starts_with("SERVICE_NAME_WEB=web"), "{env_file}");
    // A changed `content` does not change a file storage that already exists.
    let changed = compose.replace("content: first", "content: second");
    let (code, _) = call(
        &sandbox,
        reqwest::Method::PATCH,
        &format!("/services/{uuid}"),
        Some(json!({ "docker_compose_raw": base64::engine::general_purpose::STANDARD.encode(changed) })),
    )
    .await;
    assert_eq!(code, 200);
    let (_, storages) =
        call(&sandbox, reqwest::Method::GET, &format!("/services/{uuid}/storages"), None).await;
    let file = storages["file_storages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|file| file["mount_path"] == "/etc/app.conf")
        .unwrap()
        .clone();
    assert_eq!(file["content"], "first");
}

#[tokio::test]
async fn backups_answer_a_null_timeout_and_vanish_with_the_service() {
    let sandbox = Sandbox::start(SandboxConfig {
        backup_timeout_null_on_create: true,
        backup_duration: Duration::ZERO,
        delete_delay: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let uuid = service(&sandbox, "services:\n  db:\n    image: postgres:16\n    volumes:\n      - data:/var/lib/postgresql/data\n").await;
    let (_, storages) =
        call(&sandbox, reqwest::Method::GET, &format!("/services/{uuid}/storages"), None).await;
    let storage = storages["persistent_storages"][0]["uuid"].as_str().unwrap().to_owned();
    let path = format!("/services/{uuid}/storages/{storage}/backups");
    let (code, body) =
        call(&sandbox, reqwest::Method::PUT, &path, Some(json!({ "frequency": "daily" }))).await;
    assert_eq!((code, body["timeout"].clone()), (201, Value::Null));
    call(&sandbox, reqwest::Method::POST, &format!("{path}/run"), None).await;
    sandbox.wait_for_jobs().await;
    assert_eq!(sandbox.backup_archives(&uuid).len(), 1);
    let (code, _) =
        call(&sandbox, reqwest::Method::DELETE, &format!("/services/{uuid}"), None).await;
    assert_eq!(code, 200);
    sandbox.wait_for_jobs().await;
    assert!(sandbox.backup_archives(&uuid).is_empty());
    assert!(sandbox.backup_executions().is_empty());
}

#[tokio::test]
async fn a_token_outside_its_team_is_an_invalid_token() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    sandbox.remove_token_from_team(DEFAULT_TOKEN);
    let (code, body) = call(&sandbox, reqwest::Method::GET, "/projects", None).await;
    assert_eq!((code, body["message"].clone()), (400, json!("Invalid token.")));
}

/// `VolumeBackupJob::uploadToS3` to a real S3 API (moto) under Coolify's key layout, and the
/// delete job's `DeleteScheduledVolumeBackup`, which removes the uploaded archive too.
#[tokio::test]
async fn backups_upload_to_the_s3_storage_and_the_delete_removes_them() {
    let moto = cfa_backup_store::testing::MotoServer::start("coolify-backups").await.unwrap();
    let store = moto.store().unwrap();
    let sandbox = Sandbox::start(SandboxConfig {
        backup_duration: Duration::ZERO,
        delete_delay: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    // Registered through the API, as an operator would; unusable until said otherwise.
    let mut storage_body = json!({
        "name": "platform", "endpoint": moto.settings().endpoint, "bucket": "coolify-backups",
        "region": "us-east-1", "key": "cfa-test", "secret": "cfa-test-secret",
    });
    let (code, created) =
        call(&sandbox, reqwest::Method::POST, "/s3-storages", Some(storage_body.clone())).await;
    assert_eq!(code, 201, "{created}");
    let unusable = created["uuid"].as_str().unwrap().to_owned();
    storage_body["is_usable"] = json!(true);
    let (_, created) =
        call(&sandbox, reqwest::Method::POST, "/s3-storages", Some(storage_body)).await;
    let s3 = created["uuid"].as_str().unwrap().to_owned();
    let (code, shown) =
        call(&sandbox, reqwest::Method::GET, &format!("/s3-storages/{s3}"), None).await;
    assert_eq!((code, shown["bucket"].clone()), (200, json!("coolify-backups")));

    let uuid = service(&sandbox, "services:\n  db:\n    image: postgres:16\n    volumes:\n      - data:/var/lib/postgresql/data\n").await;
    let (_, storages) =
        call(&sandbox, reqwest::Method::GET, &format!("/services/{uuid}/storages"), None).await;
    let storage = storages["persistent_storages"][0]["uuid"].as_str().unwrap().to_owned();
    let path = format!("/services/{uuid}/storages/{storage}/backups");
    let schedule = |s3_uuid: &str| json!({ "frequency": "daily", "save_s3": true, "s3_storage_uuid": s3_uuid });
    let (code, body) = call(&sandbox, reqwest::Method::PUT, &path, Some(schedule(&unusable))).await;
    assert_eq!(code, 422, "an unusable storage is refused: {body}");
    let (code, _) = call(&sandbox, reqwest::Method::PUT, &path, Some(schedule(&s3))).await;
    assert_eq!(code, 201);
    call(&sandbox, reqwest::Method::POST, &format!("{path}/run"), None).await;
    sandbox.wait_for_jobs().await;

    let executions = sandbox.backup_executions();
    let key = executions[0].s3_key.clone().expect("uploaded");
    assert!(
        key.starts_with(&format!("data/coolify/backups/volumes/root-team-0/{storage}/volume-")),
        "{key}"
    );
    assert!(store.head(&key).await.unwrap().size_bytes > 0);

    let (code, _) =
        call(&sandbox, reqwest::Method::DELETE, &format!("/services/{uuid}"), None).await;
    assert_eq!(code, 200);
    sandbox.wait_for_jobs().await;
    assert!(store.head(&key).await.unwrap_err().is_not_found(), "Coolify's delete removes it");
}

/// `resolveSharedEnvironmentVariables` and `EnvironmentVariable::realValue`: a placeholder in a
/// compose value or in an env-API value, literal or not, reads the business's shared variable.
/// (The platform refuses placeholders in tenant input; this is what it protects against.)
#[tokio::test]
async fn shared_variable_placeholders_are_resolved_in_compose_and_env_values() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    sandbox.set_shared_variable("team", "ROUTER_MASTER_KEY", "sk-master-of-the-business");
    let compose = "services:\n  app:\n    image: ghcr.io/x/app:1\n    environment:\n      PROMPT: 'say {{team.ROUTER_MASTER_KEY}}'\n      KEY: ${KEY}\n";
    let uuid = service(&sandbox, compose).await;
    let (code, body) = call(
        &sandbox,
        reqwest::Method::PATCH,
        &format!("/services/{uuid}/envs/bulk"),
        Some(json!({ "data": [{ "key": "KEY", "value": "{{ team.ROUTER_MASTER_KEY }}", "is_literal": true }] })),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let compose = sandbox.written_compose(&uuid).unwrap();
    assert!(compose.contains("say sk-master-of-the-business"), "{compose}");
    let env_file = sandbox.written_env_file(&uuid).unwrap();
    assert!(env_file.contains("KEY=sk-master-of-the-business"), "{env_file}");
}

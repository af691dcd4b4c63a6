//! Every operation, end to end, against the sandbox.

use cfa_coolify::SecretValue;
use cfa_coolify::types::{
    BackupScheduleRequest, DeleteServiceOptions, DockerCleanup, EnvironmentVariableUpsert,
    UpdateServiceRequest,
};

use crate::{WEB_COMPOSE, fixture, url};

#[tokio::test]
async fn instance_team_servers_and_destinations() {
    let fixture = fixture().await;
    let client = &fixture.client;
    client.healthcheck().await.unwrap();
    assert_eq!(client.version().await.unwrap(), semver::Version::new(4, 3, 11));
    assert_eq!(client.get_token_team().await.unwrap().id, 0);
    let servers = client.list_servers().await.unwrap();
    assert_eq!(servers.len(), 1);
    assert!(servers[0].is_reachable() && servers[0].is_usable());
    let server = client.get_server_by_uuid(&servers[0].uuid).await.unwrap();
    assert_eq!(server.uuid, servers[0].uuid);
    let destinations = client.list_destinations().await.unwrap();
    assert_eq!(destinations.len(), 1);
    assert_eq!(destinations[0].network, "coolify");
    assert_eq!(client.list_server_destinations(&server.uuid).await.unwrap(), destinations);
    assert!(client.get_resources_by_server_uuid(&server.uuid).await.unwrap().is_empty());
    fixture.assert_contract();
}

#[tokio::test]
async fn projects_and_environments() {
    let fixture = fixture().await;
    let client = &fixture.client;
    let project_uuid = fixture.project("tenant-acme").await;
    assert!(
        client.list_projects().await.unwrap().iter().any(|project| project.uuid == project_uuid)
    );
    let project = client.get_project_by_uuid(&project_uuid).await.unwrap();
    assert_eq!(
        project
            .environments
            .iter()
            .map(|environment| environment.name.as_str())
            .collect::<Vec<_>>(),
        ["production"]
    );
    let staging = client.create_environment(&project_uuid, "staging").await.unwrap();
    let environments = client.get_environments(&project_uuid).await.unwrap();
    assert_eq!(environments.len(), 2);
    let by_uuid = client.get_environment_by_name_or_uuid(&project_uuid, &staging).await.unwrap();
    assert_eq!(by_uuid.name, "staging");
    let by_name =
        client.get_environment_by_name_or_uuid(&project_uuid, "production").await.unwrap();
    assert!(by_name.services.is_empty());
    client.delete_project_by_uuid(&project_uuid).await.unwrap();
    assert!(client.get_project_by_uuid(&project_uuid).await.unwrap_err().is_not_found());
    fixture.assert_contract();
}

#[tokio::test]
async fn service_lifecycle() {
    let fixture = fixture().await;
    let client = &fixture.client;
    let project_uuid = fixture.project("tenant-lifecycle").await;
    let mut request = fixture.service_request(&project_uuid, "web-stack", WEB_COMPOSE);
    request.urls = vec![url("web", "https://web.acme.example:80")];
    let created = client.create_service(&request).await.unwrap();
    assert_eq!(created.domains, ["https://web.acme.example:80"]);

    let service = client.get_service_by_uuid(&created.uuid).await.unwrap();
    assert_eq!(service.status, "exited");
    assert_eq!(service.applications.len(), 1);
    assert_eq!(service.applications[0].fqdn.as_deref(), Some("https://web.acme.example:80"));
    let rendered = service.docker_compose.as_deref().unwrap();
    assert!(rendered.contains(&format!("container_name: web-{}", created.uuid)), "{rendered}");
    assert!(
        rendered.contains(&format!("{}_web-data:/usr/share/nginx/html", created.uuid)),
        "{rendered}"
    );
    assert_eq!(client.list_services().await.unwrap().len(), 1);

    // Magic variables were generated at create; secrets are readable with a root token.
    let envs = client.list_envs_by_service_uuid(&created.uuid).await.unwrap();
    let password = envs.iter().find(|env| env.key == "SERVICE_PASSWORD_ADMIN").unwrap();
    assert_eq!(password.value.as_ref().unwrap().expose().len(), 32);
    assert!(envs.iter().any(|env| env.key == "SERVICE_FQDN_WEB_80"));
    let mode = envs.iter().find(|env| env.key == "MODE").unwrap();
    assert_eq!(mode.value.as_ref().unwrap().expose(), "production");

    let upserted = client
        .update_envs_by_service_uuid(
            &created.uuid,
            &[
                EnvironmentVariableUpsert::new("MODE", SecretValue::new("staging")),
                EnvironmentVariableUpsert::new("TELEGRAM_TOKEN", SecretValue::new("123:abc")),
            ],
        )
        .await
        .unwrap();
    assert_eq!(upserted.len(), 2);
    let envs = client.list_envs_by_service_uuid(&created.uuid).await.unwrap();
    assert_eq!(
        envs.iter().find(|env| env.key == "MODE").unwrap().value.as_ref().unwrap().expose(),
        "staging"
    );
    assert_eq!(envs.iter().filter(|env| env.key == "MODE").count(), 1, "bulk upserts by key");

    client.start_service_by_uuid(&created.uuid).await.unwrap();
    assert_eq!(
        client.get_service_by_uuid(&created.uuid).await.unwrap().status,
        "starting:unhealthy"
    );
    let running =
        fixture.wait_for(&created.uuid, |service| service.status == "running:healthy").await;
    assert_eq!(running.status, "running:healthy");
    let logs = client.get_service_logs_by_uuid(&created.uuid, "web", 10).await.unwrap();
    assert!(logs.contains("started"), "{logs}");

    client.stop_service_by_uuid(&created.uuid, DockerCleanup::Skip).await.unwrap();
    assert_eq!(fixture.sandbox.last_stop_docker_cleanup(&created.uuid), Some(false));
    assert_eq!(client.get_service_by_uuid(&created.uuid).await.unwrap().status, "exited");
    client.start_service_by_uuid(&created.uuid).await.unwrap();
    fixture.wait_for(&created.uuid, |service| service.status == "running:healthy").await;
    client.restart_service_by_uuid(&created.uuid, false).await.unwrap();

    let update = UpdateServiceRequest {
        compose_yaml: Some(WEB_COMPOSE.replace("nginx:1.27-alpine", "nginx:1.28-alpine")),
        urls: Some(vec![url("web", "https://www.acme.example:80")]),
        ..UpdateServiceRequest::default()
    };
    let updated = client.update_service_by_uuid(&created.uuid, &update).await.unwrap();
    assert_eq!(updated.domains, ["https://www.acme.example:80"]);
    let service = client.get_service_by_uuid(&created.uuid).await.unwrap();
    assert_eq!(service.applications[0].image.as_deref(), Some("nginx:1.28-alpine"));
    assert_eq!(
        service.applications[0].uuid, running.applications[0].uuid,
        "containers keep their uuid"
    );

    let resources =
        client.get_resources_by_server_uuid(&fixture.sandbox.server_uuid()).await.unwrap();
    assert_eq!(resources.len(), 1);
    assert_eq!(resources[0].resource_type, "service");

    // Delete is queued: the service stays visible, the project cannot go yet.
    client.delete_service_by_uuid(&created.uuid, DeleteServiceOptions::default()).await.unwrap();
    if let Err(error) = client.get_service_by_uuid(&created.uuid).await {
        panic!("a deleted service stays visible until its job ends: {error}");
    }
    let refused = client.delete_project_by_uuid(&project_uuid).await.unwrap_err();
    assert!(refused.to_string().contains("Project has resources"), "{refused}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while client.get_service_by_uuid(&created.uuid).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "delete never finished");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    client.delete_project_by_uuid(&project_uuid).await.unwrap();
    fixture.assert_contract();
}

#[tokio::test]
async fn storages_and_backups() {
    let fixture = fixture().await;
    let client = &fixture.client;
    let service_uuid = fixture.service(WEB_COMPOSE).await;
    let storages = client.list_storages_by_service_uuid(&service_uuid).await.unwrap();
    assert_eq!(storages.persistent.len(), 1);
    let volume = &storages.persistent[0];
    assert_eq!(volume.name, format!("{service_uuid}_web-data"));

    let mut request = BackupScheduleRequest::daily(7);
    let created = client
        .set_service_storage_backup_schedule(&service_uuid, &volume.uuid, &request)
        .await
        .unwrap();
    assert!(created.created);
    assert_eq!(created.storage_type, "persistent");
    request.s3_storage_uuid = Some(fixture.sandbox.s3_storage_uuid());
    request.retention_amount_s3 = 30;
    let replaced = client
        .set_service_storage_backup_schedule(&service_uuid, &volume.uuid, &request)
        .await
        .unwrap();
    assert!(!replaced.created);
    assert_eq!(replaced.uuid, created.uuid);
    assert!(replaced.save_s3);

    let queued = client.run_service_storage_backup(&service_uuid, &volume.uuid).await.unwrap();
    assert_eq!(queued.uuid.as_deref(), Some(created.uuid.as_str()));
    let executions = fixture.sandbox.backup_executions();
    assert_eq!(executions.len(), 1);
    assert!(executions[0].size_bytes > 0);

    tokio::time::sleep(std::time::Duration::from_millis(80)).await;
    client.delete_service_storage_backup_schedule(&service_uuid, &volume.uuid).await.unwrap();
    let missing = client.run_service_storage_backup(&service_uuid, &volume.uuid).await.unwrap_err();
    assert!(missing.is_not_found());
    fixture.assert_contract();
}

#[tokio::test]
async fn ten_thousand_services_list_in_one_call() {
    let fixture = fixture().await;
    fixture.sandbox.seed_services(10_000);
    let services = fixture.client.list_services().await.unwrap();
    assert_eq!(services.len(), 10_000);
    assert!(services.iter().all(|service| service.status == "running:healthy"));
    fixture.assert_contract();
}

#[tokio::test]
async fn state_survives_a_restart() {
    let directory = tempfile::tempdir().unwrap();
    let state_file = directory.path().join("sandbox.json");
    let config = |state_file: std::path::PathBuf| coolify_sandbox::SandboxConfig {
        state_file: Some(state_file),
        ..Default::default()
    };
    let sandbox = coolify_sandbox::Sandbox::start(config(state_file.clone())).await.unwrap();
    let client = crate::client_for(&sandbox, sandbox.token(), |_| {});
    let request = cfa_coolify::types::CreateProjectRequest {
        name: "persisted".to_owned(),
        description: None,
    };
    let project_uuid = client.create_project(&request).await.unwrap();
    sandbox.shutdown().await;
    assert!(state_file.exists());

    let sandbox = coolify_sandbox::Sandbox::start(config(state_file)).await.unwrap();
    let client = crate::client_for(&sandbox, sandbox.token(), |_| {});
    assert_eq!(client.get_project_by_uuid(&project_uuid).await.unwrap().name, "persisted");
}

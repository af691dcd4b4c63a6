//! Simulated containers and Coolify's status aggregation, through the client.

use coolify_sandbox::Fault;

use crate::{WEB_COMPOSE, fixture, fixture_with};

const NO_HEALTHCHECK: &str = "services:\n  app:\n    image: ghcr.io/acme/app:1.0\n";

const TWO_CONTAINERS: &str = "services:
  app:
    image: ghcr.io/acme/app:1.0
    healthcheck:
      test: [\"CMD\", \"true\"]
  migrate:
    image: ghcr.io/acme/app:1.0
    command: migrate
    exclude_from_hc: true
  postgres:
    image: postgres:16-alpine
    healthcheck:
      test: [\"CMD\", \"pg_isready\"]
";

#[tokio::test]
async fn no_healthcheck_never_reads_healthy() {
    let fixture = fixture().await;
    let uuid = fixture.service(NO_HEALTHCHECK).await;
    fixture.client.start_service_by_uuid(&uuid).await.unwrap();
    let service = fixture.wait_for(&uuid, |service| service.status.starts_with("running")).await;
    assert_eq!(service.status, "running:unknown");
    fixture.assert_contract();
}

#[tokio::test]
async fn excluded_containers_do_not_count_and_databases_are_listed_apart() {
    let fixture = fixture().await;
    let uuid = fixture.service(TWO_CONTAINERS).await;
    fixture.client.start_service_by_uuid(&uuid).await.unwrap();
    let service = fixture.wait_for(&uuid, |service| service.status.starts_with("running")).await;
    assert_eq!(service.status, "running:healthy");
    assert_eq!(service.databases.len(), 1);
    let migrate =
        service.applications.iter().find(|container| container.name == "migrate").unwrap();
    assert!(migrate.exclude_from_status);
    assert!(migrate.status.ends_with(":excluded"), "{}", migrate.status);
    fixture.assert_contract();
}

#[tokio::test]
async fn running_starting_reads_as_healthy_too_early() {
    let fixture =
        fixture_with(|config| config.healthcheck_delay = std::time::Duration::from_secs(60)).await;
    let uuid = fixture.service(WEB_COMPOSE).await;
    fixture.client.start_service_by_uuid(&uuid).await.unwrap();
    // The containers' healthchecks are still `starting` for a minute, yet Coolify's string
    // aggregation says healthy as soon as the deploy ends (coollabsio/coolify#9411).
    let service = fixture.wait_for(&uuid, |service| service.status != "starting:unhealthy").await;
    assert_eq!(service.status, "running:healthy");
    fixture.assert_contract();
}

#[tokio::test]
async fn container_faults_show_in_the_status() {
    let fixture = fixture().await;
    let uuid = fixture.service(TWO_CONTAINERS).await;
    fixture.client.start_service_by_uuid(&uuid).await.unwrap();
    fixture.wait_for(&uuid, |service| service.status == "running:healthy").await;
    let check = |fault: Fault, expected: &'static str| {
        let fixture = &fixture;
        let uuid = uuid.clone();
        async move {
            fixture.sandbox.clear_faults();
            fixture.sandbox.inject(fault);
            let service = fixture.client.get_service_by_uuid(&uuid).await.unwrap();
            assert_eq!(service.status, expected);
            service
        }
    };
    let service = check(
        Fault::ContainerUnhealthy {
            service_uuid: Some(uuid.clone()),
            container: Some("app".to_owned()),
        },
        "running:unhealthy",
    )
    .await;
    let app = service.applications.iter().find(|container| container.name == "app").unwrap();
    assert_eq!(app.status, "running:unhealthy");
    check(
        Fault::ContainerExited {
            service_uuid: Some(uuid.clone()),
            container: Some("app".to_owned()),
        },
        "degraded:unhealthy",
    )
    .await;
    check(
        Fault::ContainerRestartLoop {
            service_uuid: Some(uuid.clone()),
            container: Some("postgres".to_owned()),
        },
        "degraded:unhealthy",
    )
    .await;
    let service = check(
        Fault::ContainerOomKilled {
            service_uuid: Some(uuid.clone()),
            container: Some("app".to_owned()),
        },
        "degraded:unhealthy",
    )
    .await;
    assert_eq!(
        service.applications.iter().find(|container| container.name == "app").unwrap().status,
        "degraded:unhealthy"
    );
    let logs = fixture.client.get_service_logs_by_uuid(&uuid, "app", 50).await.unwrap();
    assert!(logs.contains("exit code 137"), "{logs}");
    // A fault aimed at another service changes nothing here.
    check(
        Fault::ContainerUnhealthy {
            service_uuid: Some("someoneelse00000000000000".to_owned()),
            container: None,
        },
        "running:healthy",
    )
    .await;
    fixture.assert_contract();
}

#[tokio::test]
async fn deploys_that_hang_or_fail() {
    let fixture = fixture().await;
    let stuck = fixture.service(WEB_COMPOSE).await;
    fixture.sandbox.inject(Fault::DeployNeverFinishes { service_uuid: Some(stuck.clone()) });
    fixture.client.start_service_by_uuid(&stuck).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        fixture.client.get_service_by_uuid(&stuck).await.unwrap().status,
        "starting:unhealthy"
    );

    let failing = fixture.service(WEB_COMPOSE.replace("web-data", "other-data").as_str()).await;
    fixture.sandbox.inject(Fault::DeployFails { service_uuid: Some(failing.clone()) });
    fixture.client.start_service_by_uuid(&failing).await.unwrap();
    let service =
        fixture.wait_for(&failing, |service| service.status != "starting:unhealthy").await;
    assert_eq!(service.status, "exited");
    fixture.assert_contract();
}

#[tokio::test]
async fn unreachable_server() {
    let fixture = fixture().await;
    let uuid = fixture.service(WEB_COMPOSE).await;
    fixture.sandbox.inject(Fault::ServerUnreachable { server_uuid: None });
    let servers = fixture.client.list_servers().await.unwrap();
    assert!(!servers[0].is_reachable());
    assert!(!fixture.client.get_service_by_uuid(&uuid).await.unwrap().server_status);
    fixture.assert_contract();
}

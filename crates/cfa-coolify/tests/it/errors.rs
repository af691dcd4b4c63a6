//! Each error class: what the client makes of Coolify's 401/403/404/409/422/400 answers, and
//! the version gate.

use cfa_coolify::types::{BackupScheduleRequest, CreateProjectRequest};
use cfa_coolify::{CoolifyErrorKind, ForbiddenReason};
use coolify_sandbox::{Ability, SandboxToken, TeamRole};

use crate::{WEB_COMPOSE, client_for, fixture, fixture_with, url};

#[tokio::test]
async fn rejected_token_is_unauthorized_with_a_hint() {
    let fixture = fixture().await;
    let client = client_for(&fixture.sandbox, "2|wrong", |_| {});
    let error = client.list_projects().await.unwrap_err();
    assert_eq!(
        error.kind,
        CoolifyErrorKind::Unauthorized { message: "Unauthenticated.".to_owned() }
    );
    assert_eq!(error.status, Some(401));
    let text = error.to_string();
    assert!(text.contains("\nhint: the token was rejected"), "{text}");
    assert!(!text.contains("2|wrong"), "the token never prints: {text}");
    fixture.assert_contract();
}

#[tokio::test]
async fn forbidden_reasons() {
    let fixture = fixture().await;
    fixture.sandbox.add_token(SandboxToken::new("3|read-write", &[Ability::Read, Ability::Write]));
    fixture.sandbox.add_token(SandboxToken {
        token: "4|member".to_owned(),
        abilities: vec![Ability::Write],
        role: TeamRole::Member,
    });
    let read_write = client_for(&fixture.sandbox, "3|read-write", |_| {});
    let service_uuid = fixture.service(WEB_COMPOSE).await;

    let error = read_write.start_service_by_uuid(&service_uuid).await.unwrap_err();
    assert_eq!(
        error.kind,
        CoolifyErrorKind::Forbidden {
            reason: ForbiddenReason::MissingAbility { ability: "deploy".to_owned() },
            message: "Missing required permissions: deploy".to_owned(),
        }
    );
    assert!(
        error.to_string().contains("hint: create a token with the `deploy` ability"),
        "{error}"
    );

    let member = client_for(&fixture.sandbox, "4|member", |_| {});
    let error = member.list_projects().await.unwrap_err();
    assert!(
        matches!(
            error.kind,
            CoolifyErrorKind::Forbidden { reason: ForbiddenReason::MissingTeamRole, .. }
        ),
        "{error}"
    );

    fixture.sandbox.set_api_enabled(false);
    let error = fixture.client.list_projects().await.unwrap_err();
    assert!(matches!(
        error.kind,
        CoolifyErrorKind::Forbidden { reason: ForbiddenReason::ApiDisabled, .. }
    ));
    assert!(error.to_string().contains("Settings > Advanced > API access"));
    fixture.sandbox.set_api_enabled(true);

    fixture.sandbox.set_allowed_ips(Some(vec!["192.0.2.1".parse().unwrap()]));
    let error = fixture.client.list_projects().await.unwrap_err();
    assert!(matches!(
        error.kind,
        CoolifyErrorKind::Forbidden { reason: ForbiddenReason::IpNotAllowed, .. }
    ));
    fixture.sandbox.set_allowed_ips(None);

    // Without read:sensitive, env values are hidden.
    fixture.sandbox.add_token(SandboxToken::new("5|reader", &[Ability::Read]));
    let reader = client_for(&fixture.sandbox, "5|reader", |_| {});
    let envs = reader.list_envs_by_service_uuid(&service_uuid).await.unwrap();
    assert!(!envs.is_empty());
    assert!(envs.iter().all(|env| env.value.is_none()));
    assert!(reader.get_service_by_uuid(&service_uuid).await.unwrap().docker_compose_raw.is_none());
    fixture.assert_contract();
}

#[tokio::test]
async fn not_found_conflict_and_bad_request() {
    let fixture = fixture().await;
    let client = &fixture.client;
    let error = client.get_service_by_uuid("doesnotexist00000000000").await.unwrap_err();
    assert_eq!(error.kind, CoolifyErrorKind::NotFound { message: "Service not found.".to_owned() });

    let project_uuid = fixture.project("tenant-conflict").await;
    let mut first = fixture.service_request(&project_uuid, "first", WEB_COMPOSE);
    first.urls = vec![url("web", "https://shared.example:80")];
    client.create_service(&first).await.unwrap();
    let mut second = fixture.service_request(&project_uuid, "second", WEB_COMPOSE);
    second.urls = first.urls.clone();
    let error = client.create_service(&second).await.unwrap_err();
    let CoolifyErrorKind::Conflict { conflicts, .. } = &error.kind else {
        panic!("expected a conflict: {error}")
    };
    assert_eq!(conflicts[0]["domain"], "shared.example");
    assert!(error.to_string().contains("shared.example"));
    assert_eq!(
        client.list_services().await.unwrap().len(),
        1,
        "a conflicting create is rolled back"
    );

    let duplicate = client.create_environment(&project_uuid, "production").await.unwrap_err();
    assert!(matches!(duplicate.kind, CoolifyErrorKind::Conflict { .. }));

    let service_uuid = client.list_services().await.unwrap()[0].uuid.clone();
    client.start_service_by_uuid(&service_uuid).await.unwrap();
    fixture.wait_for(&service_uuid, |service| service.status.starts_with("running")).await;
    let error = client.start_service_by_uuid(&service_uuid).await.unwrap_err();
    assert_eq!(
        error.kind,
        CoolifyErrorKind::BadRequest {
            status: 400,
            message: "Service is already running.".to_owned()
        }
    );
    fixture.assert_contract();
}

#[tokio::test]
async fn validation_errors_keep_their_free_form_shape() {
    let fixture = fixture().await;
    let client = &fixture.client;
    // A map of string arrays (Laravel's MessageBag).
    let error = client
        .create_project(&CreateProjectRequest { name: "x".to_owned(), description: None })
        .await
        .unwrap_err();
    let CoolifyErrorKind::Validation { errors, .. } = &error.kind else { panic!("{error}") };
    assert_eq!(errors["name"][0], "The name field must be at least 3 characters.");

    // A map of plain strings (the injection check).
    let project_uuid = fixture.project("tenant-validation").await;
    let injected = fixture.service_request(
        &project_uuid,
        "bad",
        "services:\n  'web;reboot':\n    image: nginx:1.27\n",
    );
    let error = client.create_service(&injected).await.unwrap_err();
    let CoolifyErrorKind::Validation { errors, .. } = &error.kind else { panic!("{error}") };
    assert!(
        errors["docker_compose_raw"]
            .as_str()
            .unwrap()
            .starts_with("Invalid Docker Compose service name"),
        "{errors}"
    );

    // A bare array (URL application), and the create is rolled back.
    let mut unknown_container = fixture.service_request(&project_uuid, "bad-url", WEB_COMPOSE);
    unknown_container.urls = vec![url("nope", "https://nope.example:80")];
    let error = client.create_service(&unknown_container).await.unwrap_err();
    let CoolifyErrorKind::Validation { errors, .. } = &error.kind else { panic!("{error}") };
    assert_eq!(errors[0], "Service container with 'nope' not found.");
    assert!(client.list_services().await.unwrap().is_empty());

    // Malformed YAML is a 500 in Coolify (not retried: create is not idempotent).
    let broken = fixture.service_request(&project_uuid, "broken", "services: [\n");
    let error = client.create_service(&broken).await.unwrap_err();
    assert_eq!(error.kind, CoolifyErrorKind::Server { status: 500 });

    // A storage that is a single file cannot be backed up.
    let compose = "services:\n  web:\n    image: nginx:1.27\n    volumes:\n      - type: bind\n        source: ./index.html\n        target: /usr/share/nginx/html/index.html\n        content: hi\n";
    let service_uuid = client
        .create_service(&fixture.service_request(&project_uuid, "files", compose))
        .await
        .unwrap()
        .uuid;
    let storages = client.list_storages_by_service_uuid(&service_uuid).await.unwrap();
    let file = &storages.files[0];
    assert!(!file.is_directory);
    let error = client
        .set_service_storage_backup_schedule(
            &service_uuid,
            &file.uuid,
            &BackupScheduleRequest::daily(3),
        )
        .await
        .unwrap_err();
    let CoolifyErrorKind::Validation { errors, .. } = &error.kind else { panic!("{error}") };
    assert_eq!(errors["storage_uuid"][0], "Only directory file storages can be backed up.");
    fixture.assert_contract();
}

#[tokio::test]
async fn version_gate_refuses_features_of_newer_instances() {
    let fixture = fixture_with(|config| config.version = "4.2.0".to_owned()).await;
    let client = &fixture.client;
    let error = client
        .set_service_storage_backup_schedule("any", "any", &BackupScheduleRequest::daily(1))
        .await
        .unwrap_err();
    let CoolifyErrorKind::VersionTooOld { required, actual, .. } = &error.kind else {
        panic!("{error}")
    };
    assert_eq!(required.to_string(), "4.3.0");
    assert_eq!(actual.to_string(), "4.2.0");
    assert!(error.to_string().contains("hint: upgrade Coolify to 4.3.0 or newer"), "{error}");
    // The refused call never reached the server; only `/version` did, once.
    assert!(client.list_destinations().await.is_ok());
    let versions = fixture
        .sandbox
        .exchanges()
        .iter()
        .filter(|exchange| exchange.path.ends_with("/version"))
        .count();
    assert_eq!(versions, 1);
    assert!(fixture.sandbox.exchanges().iter().all(|exchange| !exchange.path.contains("/backups")));

    let old = fixture_with(|config| config.version = "4.0.0-beta.420".to_owned()).await;
    let project_uuid = old.project("tenant-old").await;
    let mut request = old.service_request(&project_uuid, "old", WEB_COMPOSE);
    request.urls = vec![url("web", "https://old.example:80")];
    let error = old.client.create_service(&request).await.unwrap_err();
    assert!(
        matches!(error.kind, CoolifyErrorKind::VersionTooOld { feature: "service urls", .. }),
        "{error}"
    );
    fixture.assert_contract();
    old.assert_contract();
}

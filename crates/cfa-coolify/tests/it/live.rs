//! Opt-in: the read-only operations against a real Coolify, when `CFA_COOLIFY_URL` and
//! `CFA_COOLIFY_TOKEN` are set. Skipped (with a note) otherwise.

use cfa_coolify::{ApiToken, CoolifyClient, CoolifyConfig};

#[tokio::test]
async fn read_only_operations_against_a_real_coolify() {
    let (Ok(url), Ok(token)) =
        (std::env::var("CFA_COOLIFY_URL"), std::env::var("CFA_COOLIFY_TOKEN"))
    else {
        #[expect(clippy::print_stderr, reason = "tell the runner why this test did nothing")]
        {
            eprintln!(
                "note: CFA_COOLIFY_URL and CFA_COOLIFY_TOKEN are not set; skipping the live Coolify test"
            );
        }
        return;
    };
    let client =
        CoolifyClient::new(CoolifyConfig::new(url, ApiToken::new(token))).expect("client builds");
    client.healthcheck().await.expect("health");
    let version = client.version().await.expect("version");
    client.get_token_team().await.expect("team");
    let servers = client.list_servers().await.expect("servers");
    for server in &servers {
        client.get_server_by_uuid(&server.uuid).await.expect("server");
        client.get_resources_by_server_uuid(&server.uuid).await.expect("server resources");
    }
    if version >= cfa_coolify::Feature::Destinations.minimum() {
        client.list_destinations().await.expect("destinations");
    }
    let projects = client.list_projects().await.expect("projects");
    if let Some(project) = projects.first() {
        client.get_project_by_uuid(&project.uuid).await.expect("project");
        client.get_environments(&project.uuid).await.expect("environments");
    }
    let services = client.list_services().await.expect("services");
    if let Some(service) = services.first() {
        client.get_service_by_uuid(&service.uuid).await.expect("service");
        client.list_envs_by_service_uuid(&service.uuid).await.expect("envs");
        client.list_storages_by_service_uuid(&service.uuid).await.expect("storages");
    }
}

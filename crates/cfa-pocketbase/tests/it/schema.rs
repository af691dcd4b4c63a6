//! The migrations on a live server: extending a pre-existing `tenants`, idempotence, the
//! template values following the catalogue, and `check` finding drift.

use cfa_pocketbase::schema::{self, MIGRATIONS};
use cfa_pocketbase::testing::{TestPocketBase, repository_template_names};
use cfa_pocketbase::{NewStack, PocketBaseErrorKind, StackPatch};
use reqwest::Method;
use serde_json::{Value, json};

async fn collection(client: &cfa_pocketbase::PocketBaseClient, name: &str) -> Value {
    client.call_raw(Method::GET, &format!("api/collections/{name}"), None).await.unwrap().unwrap()
}

async fn records(client: &cfa_pocketbase::PocketBaseClient, name: &str) -> Vec<Value> {
    let path = format!("api/collections/{name}/records?sort=id&perPage=500");
    let answer = client.call_raw(Method::GET, &path, None).await.unwrap().unwrap();
    answer["items"].as_array().unwrap().clone()
}

/// A PocketBase whose `tenants` predates us: more fields than ours, an owner rule that lets a
/// tenant edit its record, and two records. Answers the server and the owner's user id.
async fn legacy_server() -> (TestPocketBase, String) {
    let server = TestPocketBase::start_bare().await.unwrap_or_else(|error| panic!("{error}"));
    let superuser = server.superuser().await.unwrap();
    let users = collection(&superuser, "users").await;
    let legacy = json!({
        "name": "tenants", "type": "base",
        "listRule": "user_id = @request.auth.id", "viewRule": "user_id = @request.auth.id",
        "updateRule": "user_id = @request.auth.id", "createRule": null, "deleteRule": null,
        "fields": [
            {"name": "name", "type": "text", "required": true},
            {"name": "slug", "type": "text"},
            {"name": "user_id", "type": "relation", "collectionId": users["id"], "maxSelect": 1},
            {"name": "router_url", "type": "url"},
            {"name": "seats", "type": "number"},
            {"name": "active", "type": "bool"},
            {"name": "billing", "type": "json"},
        ]
    });
    superuser.call_raw(Method::POST, "api/collections", Some(&legacy)).await.unwrap();
    let (owner, _) = server.user("legacy@tenant.test").await.unwrap();
    for (index, seats) in [(1, 3), (2, 40)] {
        let body = json!({"name": format!("Legacy {index}"), "slug": format!("legacy-{index}"), "user_id": owner,
            "router_url": format!("https://router{index}.example.com"), "seats": seats, "active": index == 1,
            "billing": {"iban_last4": "1234", "plan": "old"}});
        superuser
            .call_raw(Method::POST, "api/collections/tenants/records", Some(&body))
            .await
            .unwrap();
    }
    (server, owner)
}

/// The legacy tenants' owner, signed in.
async fn legacy_owner(server: &TestPocketBase) -> cfa_pocketbase::PocketBaseClient {
    cfa_pocketbase::PocketBaseClient::connect(
        server.url(),
        "users",
        "legacy@tenant.test",
        cfa_pocketbase::Password::new(cfa_pocketbase::testing::USER_PASSWORD),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn extending_a_preexisting_tenants_keeps_every_field_and_value() {
    let (mut server, owner) = legacy_server().await;
    let superuser = server.superuser().await.unwrap();
    let before_records = records(&superuser, "tenants").await;
    let before_fields = collection(&superuser, "tenants").await["fields"].clone();

    server.install_and_restart(&repository_template_names()).await.unwrap();
    let superuser = server.superuser().await.unwrap();
    let after = collection(&superuser, "tenants").await;
    let after_fields = after["fields"].as_array().unwrap();
    for field in before_fields.as_array().unwrap() {
        assert!(after_fields.contains(field), "field changed or lost: {field}");
    }
    let names: Vec<&str> =
        after_fields.iter().map(|field| field["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "id",
            "name",
            "slug",
            "user_id",
            "router_url",
            "seats",
            "active",
            "billing",
            "max_stacks",
            "plan_tier",
            "resource_limits"
        ]
    );
    let after_records = records(&superuser, "tenants").await;
    assert_eq!(after_records.len(), 2);
    for (before, after) in before_records.iter().zip(&after_records) {
        for (key, value) in before.as_object().unwrap() {
            assert_eq!(&after[key], value, "{key} of {}", before["id"]);
        }
        assert_eq!(after["max_stacks"], json!(1), "backfilled default");
        assert_eq!(after["plan_tier"], json!("starter"), "backfilled default");
        assert_eq!(after["resource_limits"], json!(null), "no custom ceiling");
    }
    // The legacy owner rule got our guard: the owner may still rename, not raise its quota.
    let owner_client = legacy_owner(&server).await;
    assert_eq!(owner_client.auth_record_id().await.unwrap(), owner);
    let path =
        format!("api/collections/tenants/records/{}", before_records[0]["id"].as_str().unwrap());
    let raise = owner_client
        .call_raw(Method::PATCH, &path, Some(&json!({"max_stacks": 99})))
        .await
        .unwrap_err();
    assert_eq!(raise.kind, PocketBaseErrorKind::NotFound);
    let bigger = json!({"resource_limits": {"cpus": 64, "memory_mb": 262144}});
    let raise = owner_client.call_raw(Method::PATCH, &path, Some(&bigger)).await.unwrap_err();
    assert_eq!(raise.kind, PocketBaseErrorKind::NotFound, "nor its custom ceiling");
    owner_client
        .call_raw(Method::PATCH, &path, Some(&json!({"name": "Legacy One"})))
        .await
        .unwrap();
    assert!(schema::check(&superuser, &repository_template_names()).await.unwrap().is_empty());

    // Idempotent: the same migrations again (as after `migrate history-sync`) change nothing.
    let collections_before: Vec<Value> = futures::future::join_all(
        ["tenants", "agent_stacks", "audit_log"].map(|name| collection(&superuser, name)),
    )
    .await;
    let records_before = records(&superuser, "tenants").await;
    for (index, (name, text)) in MIGRATIONS.iter().enumerate() {
        let again = format!("17639500{index:02}_again_{name}");
        std::fs::write(server.pb_dir().join("pb_migrations").join(again), text).unwrap();
    }
    // Migrations apply in file-name order, and a failing one stops the server: a marker after
    // the copies proves they ran.
    let marker = "migrate((app) => { app.save(new Collection({ type: \"base\", name: \"rerun_marker\" })); });";
    std::fs::write(server.pb_dir().join("pb_migrations").join("1763950099_marker.js"), marker)
        .unwrap();
    server.restart().await.unwrap();
    let superuser = server.superuser().await.unwrap();
    assert_eq!(
        collection(&superuser, "rerun_marker").await["name"],
        "rerun_marker",
        "the copies ran"
    );
    let collections_after: Vec<Value> = futures::future::join_all(
        ["tenants", "agent_stacks", "audit_log"].map(|name| collection(&superuser, name)),
    )
    .await;
    assert_eq!(collections_after, collections_before);
    assert_eq!(records(&superuser, "tenants").await, records_before);
}

#[tokio::test]
async fn a_fresh_instance_has_no_drift_and_a_changed_rule_is_reported() {
    let server = TestPocketBase::start().await.unwrap_or_else(|error| panic!("{error}"));
    let superuser = server.superuser().await.unwrap();
    let names = repository_template_names();
    assert_eq!(names, ["base-llm", "openclaw-agent", "telegram-bot"]);
    let drift = schema::check(&superuser, &names).await.unwrap();
    assert!(drift.is_empty(), "{drift:#?}");

    // docs/schema.sql names every column the migrations create.
    let reference =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/schema.sql"))
            .unwrap();
    for name in ["tenants", "agent_stacks", "audit_log", "cfa_leases"] {
        for field in collection(&superuser, name).await["fields"].as_array().unwrap() {
            let column = format!("`{}`", field["name"].as_str().unwrap());
            assert!(reference.contains(&column), "docs/schema.sql lacks {name}.{column}");
        }
    }

    // The seed's update rule (ownership only): the hole that lets a tenant move a stack.
    let loose =
        json!({"updateRule": "@request.auth.id != '' && tenant_id.user_id = @request.auth.id"});
    superuser.call_raw(Method::PATCH, "api/collections/agent_stacks", Some(&loose)).await.unwrap();
    let public = json!({"listRule": ""});
    superuser.call_raw(Method::PATCH, "api/collections/tenants", Some(&public)).await.unwrap();
    let drift = schema::check(&superuser, &names).await.unwrap();
    let subjects: Vec<(&str, &str)> =
        drift.iter().map(|item| (item.collection.as_str(), item.subject.as_str())).collect();
    assert_eq!(subjects, [("tenants", "listRule"), ("agent_stacks", "updateRule")], "{drift:#?}");
}

#[tokio::test]
async fn template_values_follow_the_catalogue() {
    let three = repository_template_names();
    let mut server = TestPocketBase::start_with_templates(&three)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let superuser = server.superuser().await.unwrap();
    let tenant = superuser
        .tenant_create(&cfa_pocketbase::NewTenant {
            name: "T".into(),
            slug: "t".into(),
            user_id: server.user("t@tenant.test").await.unwrap().0,
            max_stacks: Some(5),
            plan_tier: None,
            resource_limits: None,
        })
        .await
        .unwrap();
    let fourth = NewStack::pending(&tenant.id, "fourth-template", "four");
    let error = superuser.stack_create(&fourth).await.unwrap_err();
    assert!(error.has_field_error("template", "validation_invalid_value"), "{error}");

    // A fourth template in the catalogue: `cfa pb install` + restart, no code change.
    let mut four = three.clone();
    four.push("fourth-template".into());
    server.install_and_restart(&four).await.unwrap();
    let superuser = server.superuser().await.unwrap();
    let stack = superuser.stack_create(&fourth).await.unwrap();
    assert_eq!(stack.template, "fourth-template");
    assert!(schema::check(&superuser, &four).await.unwrap().is_empty());
    let drift = schema::check(&superuser, &three).await.unwrap();
    assert_eq!(drift.len(), 1, "{drift:#?}");
    assert_eq!(drift[0].subject, "field template values");

    // Dropping it again keeps the value while a record uses it.
    server.install_and_restart(&three).await.unwrap();
    let superuser = server.superuser().await.unwrap();
    superuser
        .stack_update(
            &stack.id,
            &StackPatch { error_message: Some("still valid".into()), ..StackPatch::default() },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn migrating_down_gives_back_the_preexisting_tenants_with_its_records() {
    let (mut server, _) = legacy_server().await;
    let superuser = server.superuser().await.unwrap();
    let before_collection = collection(&superuser, "tenants").await;
    let before_records = records(&superuser, "tenants").await;
    server.install_and_restart(&repository_template_names()).await.unwrap();

    // Our three migrations and the generated template-values one.
    let reverted = server.migrate_down(MIGRATIONS.len() + 1).unwrap();
    // Uninstall, or `serve` applies them again on start.
    for entry in std::fs::read_dir(server.pb_dir().join("pb_migrations")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    std::fs::remove_dir_all(server.pb_dir().join("pb_hooks")).unwrap();
    server.restart().await.unwrap();
    let superuser = server.superuser().await.unwrap();
    let after_collection = collection(&superuser, "tenants").await;
    for key in
        ["fields", "listRule", "viewRule", "createRule", "updateRule", "deleteRule", "indexes"]
    {
        assert_eq!(
            after_collection[key], before_collection[key],
            "tenants.{key} after:\n{reverted}"
        );
    }
    let after_records = records(&superuser, "tenants").await;
    assert_eq!(after_records.len(), before_records.len());
    for (before, after) in before_records.iter().zip(&after_records) {
        for (key, value) in before.as_object().unwrap() {
            if key != "updated" {
                assert_eq!(&after[key], value, "{key}");
            }
        }
    }
    for gone in ["agent_stacks", "audit_log"] {
        let error = superuser
            .call_raw(Method::GET, &format!("api/collections/{gone}"), None)
            .await
            .unwrap_err();
        assert_eq!(error.kind, PocketBaseErrorKind::NotFound, "{gone}");
    }
}

/// The production path with slugs already shared: the migration does not guess (no unique
/// index, `cfa pb check` says why), lookups refuse to pick one, and no write adds another
/// twin or renames a slug, the owner's own rules notwithstanding.
#[tokio::test]
async fn shared_slugs_in_a_preexisting_tenants_are_reported_and_never_guessed() {
    let (mut server, owner) = legacy_server().await;
    let superuser = server.superuser().await.unwrap();
    let twin = json!({"name": "Twin of 1", "slug": "legacy-1", "user_id": owner});
    superuser.call_raw(Method::POST, "api/collections/tenants/records", Some(&twin)).await.unwrap();
    server.install_and_restart(&repository_template_names()).await.unwrap();
    let superuser = server.superuser().await.unwrap();

    let drift = schema::check(&superuser, &repository_template_names()).await.unwrap();
    assert!(
        drift.iter().any(|drift| drift.collection == "tenants" && drift.subject == "index on slug"),
        "{drift:?}"
    );
    let ambiguous = superuser.tenant_by_slug("legacy-1").await.unwrap_err();
    assert_eq!(ambiguous.kind, PocketBaseErrorKind::Ambiguous, "{ambiguous}");
    assert_eq!(superuser.tenant_by_slug("legacy-2").await.unwrap().name, "Legacy 2");

    let third = json!({"name": "Third", "slug": "legacy-2", "user_id": owner});
    let refused =
        superuser.call_raw(Method::POST, "api/collections/tenants/records", Some(&third)).await;
    assert!(refused.is_err(), "a new twin is refused");
    // The legacy owner rule lets the owner edit its record, not move it onto another slug.
    let owner_client = legacy_owner(&server).await;
    let legacy_two = superuser.tenant_by_slug("legacy-2").await.unwrap();
    let path = format!("api/collections/tenants/records/{}", legacy_two.id);
    for slug in ["legacy-3", "legacy-1"] {
        let moved =
            owner_client.call_raw(Method::PATCH, &path, Some(&json!({ "slug": slug }))).await;
        assert!(moved.is_err(), "the owner renamed its slug to {slug}");
    }
    assert_eq!(superuser.tenant_by_slug("legacy-2").await.unwrap().id, legacy_two.id);
}

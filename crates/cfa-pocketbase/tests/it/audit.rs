//! The audit log: every tenant-side change is recorded by the hook, in the change's own
//! transaction; entries cannot be read or altered by anyone but superusers.

use cfa_core::lifecycle::StackStatus;
use cfa_pocketbase::{AuditOutcome, AuditQuery, NewAuditEntry, PocketBaseErrorKind, StackPatch};
use reqwest::Method;
use serde_json::json;

use crate::common::{pending, world};

#[tokio::test]
async fn every_tenant_change_is_audited_with_before_and_after() {
    let world = world(1).await;
    let stack = world.a.stack_create(&pending(&world.tenant_a, "audited")).await.unwrap();
    world
        .a
        .stack_update(
            &stack.id,
            &StackPatch { config: Some(json!({"allowed_chat_ids": "7"})), ..StackPatch::default() },
        )
        .await
        .unwrap();
    // Refused changes leave no entry: over quota (rolled back) and a forbidden status.
    world.a.stack_create(&pending(&world.tenant_a, "over-quota")).await.unwrap_err();
    world
        .a
        .stack_update(
            &stack.id,
            &StackPatch { status: Some(StackStatus::Running), ..StackPatch::default() },
        )
        .await
        .unwrap_err();
    // Deleting is the platform's (superusers only): refused, and not audited.
    let refused = world.a.stack_delete(&stack.id).await.unwrap_err();
    assert_eq!(refused.kind, PocketBaseErrorKind::Forbidden, "{refused}");

    let entries = world
        .superuser
        .audit_list(&AuditQuery { stack: Some("audited".to_owned()), ..AuditQuery::default() })
        .await
        .unwrap();
    let actions: Vec<&str> = entries.iter().map(|entry| entry.action.as_str()).collect();
    assert_eq!(actions, ["stack.update", "stack.create"], "newest first");
    let actor = format!("users:{}", world.user_a);
    for entry in &entries {
        assert_eq!(entry.actor, actor);
        // Named as the engine names them: slug and stack name, not record ids.
        assert_eq!(entry.tenant.as_deref(), Some("tenant-a"));
        assert_eq!(entry.stack.as_deref(), Some("audited"));
        assert_eq!(entry.outcome, AuditOutcome::Ok);
    }
    let (update, create) = (&entries[0], &entries[1]);
    assert_eq!(create.before, json!(null));
    assert_eq!(create.after["stack_name"], "audited");
    assert_eq!(update.before["config"], json!(null));
    assert_eq!(update.after["config"], json!({"allowed_chat_ids": "7"}));
    let all = world.superuser.audit_list(&AuditQuery::default()).await.unwrap();
    assert_eq!(all.len(), 2, "nothing else was audited: {all:?}");
}

#[tokio::test]
async fn audit_entries_cannot_be_read_written_or_altered_by_tenants() {
    let world = world(1).await;
    let entry = world
        .superuser
        .audit_append(&NewAuditEntry {
            actor: "cli:operator".into(),
            action: "stack.provision".into(),
            tenant: Some(world.tenant_a.id.clone()),
            stack: None,
            before: json!(null),
            after: json!({"status": "pending"}),
            outcome: AuditOutcome::Failed,
            error: Some("coolify answered 422".into()),
        })
        .await
        .unwrap();
    assert_eq!(entry.outcome, AuditOutcome::Failed);

    let error = world.a.audit_list(&AuditQuery::default()).await.unwrap_err();
    assert_eq!(error.kind, PocketBaseErrorKind::Forbidden);
    let path = format!("api/collections/audit_log/records/{}", entry.id);
    let forged = json!({"actor": "cli:operator", "action": "stack.delete", "outcome": "ok"});
    for (method, path, body) in [
        (Method::POST, "api/collections/audit_log/records".to_owned(), Some(&forged)),
        (Method::PATCH, path.clone(), Some(&forged)),
        (Method::DELETE, path.clone(), None),
        (Method::GET, path.clone(), None),
    ] {
        let error = world.a.call_raw(method.clone(), &path, body).await.unwrap_err();
        assert_eq!(error.kind, PocketBaseErrorKind::Forbidden, "{method} {path}");
    }
    let entries = world.superuser.audit_list(&AuditQuery::default()).await.unwrap();
    assert_eq!(entries, vec![entry]);
}

/// Entries come back in the order they were appended, even when many share a millisecond
/// (ordering ties by the random record id would shuffle them): the engine's creation claims
/// decide by "the first appended".
#[tokio::test]
async fn entries_are_listed_in_append_order_even_within_one_millisecond() {
    let world = world(1).await;
    let mut appended = Vec::new();
    for index in 0..60 {
        let entry = NewAuditEntry {
            actor: "test".to_owned(),
            action: "order.check".to_owned(),
            tenant: None,
            stack: None,
            before: json!(null),
            after: json!({ "index": index }),
            outcome: AuditOutcome::Ok,
            error: None,
        };
        appended.push(world.superuser.audit_append(&entry).await.unwrap().id);
    }
    let query = AuditQuery { action: Some("order.check".to_owned()), ..AuditQuery::default() };
    let oldest_first: Vec<String> = world
        .superuser
        .audit_list(&AuditQuery { oldest_first: true, ..query.clone() })
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.id)
        .collect();
    assert_eq!(oldest_first, appended);
    let mut newest_first: Vec<String> = world
        .superuser
        .audit_list(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.id)
        .collect();
    newest_first.reverse();
    assert_eq!(newest_first, appended);
}

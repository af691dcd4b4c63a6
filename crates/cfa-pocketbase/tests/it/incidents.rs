//! The monitor's collections on the real PocketBase: tracks saved, replaced and deleted;
//! incidents opened, listed, acknowledged and resolved; the outbox's due, failed and delivered
//! messages; and a tenant can read or write none of it.

use cfa_pocketbase::{IncidentStatus, NewIncident, OutboxRecord, PocketBaseErrorKind};
use serde_json::json;

use crate::common::world;

#[tokio::test]
async fn tracks_incidents_and_the_outbox_round_trip() {
    let world = world(1).await;
    let pb = &world.superuser;

    let subject = json!({ "stack": { "tenant_slug": "tenant-a", "stack_name": "bot" } });
    let key = "stack:tenant-a/bot#r1/unhealthy";
    let saved = pb.track_save(None, key, &subject, "unhealthy", &json!({ "state": "ok" })).await;
    let saved = saved.unwrap();
    let replaced = pb
        .track_save(Some(&saved.id), key, &subject, "unhealthy", &json!({ "state": "firing" }))
        .await
        .unwrap();
    assert_eq!(replaced.id, saved.id);
    let twin = pb.track_save(None, key, &subject, "unhealthy", &json!({ "state": "ok" })).await;
    let twin = twin.unwrap_err();
    assert!(
        matches!(
            twin.kind,
            PocketBaseErrorKind::BadRequest | PocketBaseErrorKind::NotUnique { .. }
        ),
        "one track per key: {twin:?}"
    );
    let all = pb.track_list_all().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].track, json!({ "state": "firing" }));

    let opened_at = jiff::Timestamp::now();
    let incident = pb
        .incident_open(&NewIncident {
            key: key.to_owned(),
            kind: "unhealthy".to_owned(),
            flapping_of: None,
            subject: subject.clone(),
            tenant: Some("tenant-a".to_owned()),
            stack: Some("bot".to_owned()),
            opened_at,
            detail: Some("coolify reports running:unhealthy".to_owned()),
        })
        .await
        .unwrap();
    assert_eq!(incident.status, IncidentStatus::Firing);
    let until = opened_at.checked_add(jiff::SignedDuration::from_hours(2)).unwrap();
    let acknowledged = pb.incident_acknowledge(&incident.id, until, "ops@example.test").await;
    assert_eq!(acknowledged.unwrap().acknowledged_by.as_deref(), Some("ops@example.test"));
    assert_eq!(pb.incident_list(true, 10).await.unwrap().len(), 1);
    pb.incident_resolve(key, jiff::Timestamp::now()).await.unwrap();
    assert!(pb.incident_list(true, 10).await.unwrap().is_empty());
    let resolved = pb.incident_view(&incident.id).await.unwrap();
    assert_eq!(resolved.status, IncidentStatus::Resolved);
    assert!(resolved.resolved_at.is_some());
    pb.track_delete(&saved.id).await.unwrap();
    assert!(pb.track_list_all().await.unwrap().is_empty());

    let now = jiff::Timestamp::now();
    let record = |id: &str, channel: &str, created_ms: i64| OutboxRecord {
        delivery_id: id.to_owned(),
        channel: channel.to_owned(),
        status: "pending".to_owned(),
        attempts: 0,
        next_attempt_at: now,
        created_ms,
        last_error: None,
        payload: json!({ "title": id }),
    };
    assert!(pb.outbox_insert(&record("m1:webhook", "webhook", 2)).await.unwrap());
    assert!(!pb.outbox_insert(&record("m1:webhook", "webhook", 2)).await.unwrap(), "stored once");
    assert!(pb.outbox_insert(&record("m0:webhook", "webhook", 1)).await.unwrap());
    assert!(pb.outbox_insert(&record("m1:email", "email", 2)).await.unwrap());
    let due = pb.outbox_pending("webhook", Some(now), 10).await.unwrap();
    let order: Vec<&str> = due.iter().map(|entry| entry.delivery_id.as_str()).collect();
    assert_eq!(order, ["m0:webhook", "m1:webhook"], "oldest first, this channel only");
    let later = now.checked_add(jiff::SignedDuration::from_mins(5)).unwrap();
    let mut failed = due[0].clone();
    failed.attempts = 1;
    failed.next_attempt_at = later;
    failed.last_error = Some("connection refused".to_owned());
    pb.outbox_update(&failed).await.unwrap();
    let due = pb.outbox_pending("webhook", Some(now), 10).await.unwrap();
    assert_eq!(due.len(), 1, "not before its next attempt");
    let waiting = pb.outbox_pending("webhook", None, 10).await.unwrap();
    assert_eq!(
        (waiting[0].attempts, waiting[0].last_error.as_deref()),
        (1, Some("connection refused"))
    );
    let mut delivered = waiting[0].clone();
    delivered.status = "delivered".to_owned();
    pb.outbox_update(&delivered).await.unwrap();
    assert_eq!(pb.outbox_undelivered(10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_tenant_sees_and_writes_none_of_it() {
    let world = world(1).await;
    let pb = &world.superuser;
    let subject = json!({ "platform": null });
    let track = json!({ "state": "firing" });
    let key = "platform/coolify_unreachable";
    pb.track_save(None, key, &subject, "coolify_unreachable", &track).await.unwrap();

    let tenant = &world.a;
    // Superuser-only collections: lists answer 403 (or nothing), writes are refused.
    for listed in [
        tenant.track_list_all().await.map(|tracks| tracks.len()),
        tenant.incident_list(false, 10).await.map(|incidents| incidents.len()),
        tenant.outbox_undelivered(10).await.map(|entries| entries.len()),
    ] {
        assert!(
            listed.as_ref().is_err_and(|error| error.kind == PocketBaseErrorKind::Forbidden)
                || listed.as_ref().is_ok_and(|count| *count == 0),
            "{listed:?}"
        );
    }
    let forged = OutboxRecord {
        delivery_id: "x:email".to_owned(),
        channel: "email".to_owned(),
        status: "pending".to_owned(),
        attempts: 0,
        next_attempt_at: jiff::Timestamp::now(),
        created_ms: 0,
        last_error: None,
        payload: json!({ "title": "forged" }),
    };
    assert!(tenant.outbox_insert(&forged).await.is_err(), "a tenant cannot queue an alert");
    assert!(tenant.track_save(None, "x", &subject, "unhealthy", &track).await.is_err());
}

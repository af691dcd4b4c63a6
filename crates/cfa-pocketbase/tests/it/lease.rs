//! The controller's lease on the real PocketBase: one holder at a time, even when many ask at
//! once; renewed by its holder; free once expired or released; nobody but superusers may touch
//! it.

use std::time::Duration;

use cfa_pocketbase::PocketBaseErrorKind;

use crate::common::world;

const TTL: Duration = Duration::from_secs(1);

#[tokio::test]
async fn one_holder_at_a_time() {
    let world = world(1).await;
    let pb = &world.superuser;

    let first = pb.lease_acquire("controller", "host-a:1", TTL).await.unwrap();
    assert!(first.acquired, "{first:?}");
    assert!(first.remaining() <= TTL && first.remaining() > Duration::ZERO, "{first:?}");
    let second = pb.lease_acquire("controller", "host-b:2", TTL).await.unwrap();
    assert!(!second.acquired, "{second:?}");
    assert_eq!(second.holder, "host-a:1", "the answer names the holder");
    let renewed = pb.lease_acquire("controller", "host-a:1", TTL).await.unwrap();
    assert!(renewed.acquired && renewed.expires_ms >= first.expires_ms, "{renewed:?}");

    // Only the holder can give it up.
    pb.lease_release("controller", "host-b:2").await.unwrap();
    assert!(!pb.lease_acquire("controller", "host-b:2", TTL).await.unwrap().acquired);
    pb.lease_release("controller", "host-a:1").await.unwrap();
    assert!(pb.lease_acquire("controller", "host-b:2", TTL).await.unwrap().acquired);

    // An expired lease goes to whoever asks next.
    tokio::time::sleep(TTL + Duration::from_millis(300)).await;
    let taken_over = pb.lease_acquire("controller", "host-a:1", TTL).await.unwrap();
    assert!(taken_over.acquired, "{taken_over:?}");
}

#[tokio::test]
async fn many_asking_at_once_get_one_holder() {
    let world = world(1).await;
    let asks =
        (0..16).map(|index| {
            let pb = world.superuser.clone();
            async move {
                pb.lease_acquire("race", &format!("host-{index}"), Duration::from_secs(30)).await
            }
        });
    let answers = futures::future::join_all(asks).await;
    let winners: Vec<_> = answers
        .iter()
        .map(|answer| answer.as_ref().unwrap())
        .filter(|lease| lease.acquired)
        .collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    let holder = &winners[0].holder;
    assert!(answers.iter().all(|answer| &answer.as_ref().unwrap().holder == holder), "{answers:?}");
}

#[tokio::test]
async fn a_tenant_cannot_take_or_release_the_lease() {
    let world = world(1).await;
    let refused = world.a.lease_acquire("controller", "tenant", TTL).await.unwrap_err();
    assert!(
        matches!(refused.kind, PocketBaseErrorKind::Forbidden | PocketBaseErrorKind::Unauthorized),
        "{refused:?}"
    );
    assert!(world.superuser.lease_acquire("controller", "host-a:1", TTL).await.unwrap().acquired);
    assert!(world.a.lease_release("controller", "host-a:1").await.is_err());
    let still = world.superuser.lease_acquire("controller", "host-b:2", TTL).await.unwrap();
    assert_eq!(still.holder, "host-a:1");
}

//! The store against a real S3 API (moto): list, folders, head, copy, get, delete, and the
//! errors an operator reads.

use bytes::Bytes;
use cfa_backup_store::layout::{coolify_volume_archive_key, is_coolify_archive_of};
use cfa_backup_store::testing::MotoServer;
use cfa_backup_store::{BackupStore, BackupStoreSettings};

#[tokio::test]
async fn copies_survive_deleting_the_source_and_listings_find_coolify_archives() {
    let moto = MotoServer::start("platform-backups").await.expect("moto");
    let store = moto.store().expect("store");
    store.check().await.expect("bucket reachable");
    let key = coolify_volume_archive_key("Root Team", 0, "storage-1", "svc_data", 1_700_000_000);
    let other = coolify_volume_archive_key("Root Team", 0, "storage-2", "svc_data", 1_700_000_001);
    store.put(&key, Bytes::from_static(b"archive bytes")).await.expect("put");
    store.put(&other, Bytes::from_static(b"other")).await.expect("put other");

    let teams = store.folders("data/coolify/backups/volumes").await.expect("folders");
    assert_eq!(teams, vec!["data/coolify/backups/volumes/root-team-0".to_owned()]);
    let listed = store.list(&format!("{}/storage-1", teams[0])).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert!(is_coolify_archive_of(&listed[0].key, "storage-1"));
    assert_eq!(listed[0].size_bytes, 13);

    store.copy(&key, "cfa-final-backups/acme/support/a.tar.gz").await.expect("copy");
    store.delete(&key).await.expect("delete source");
    let kept = store.head("cfa-final-backups/acme/support/a.tar.gz").await.expect("head");
    assert_eq!(kept.size_bytes, 13);
    assert_eq!(&store.get(&kept.key).await.expect("get")[..], b"archive bytes");
    let gone = store.head(&key).await.expect_err("the source is gone");
    assert!(gone.is_not_found(), "{gone}");
}

#[tokio::test]
async fn errors_name_the_bucket_the_endpoint_and_what_to_check() {
    let moto = MotoServer::start("exists").await.expect("moto");
    let settings =
        BackupStoreSettings { bucket: "missing-bucket".to_owned(), ..moto.settings().clone() };
    let store = BackupStore::connect(&settings).expect("store");
    let error = store.check().await.expect_err("no such bucket");
    let text = error.to_string();
    assert!(text.contains("missing-bucket") && text.contains(&settings.endpoint), "{text}");
    assert!(text.contains("hint:"), "{text}");
    assert!(!format!("{settings:?}").contains("cfa-test-secret"), "Debug leaks the secret");
}

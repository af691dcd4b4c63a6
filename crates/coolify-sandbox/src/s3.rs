//! The team's S3 storages (`S3Storage`, app/Models/S3Storage.php) and what Coolify 4.3.11 does
//! with them for volume backups: `VolumeBackupJob::uploadToS3` copies the archive to
//! `<bucket>/data/coolify/backups/volumes/<team slug>-<team id>/<storage uuid>/` (an upload
//! failure is a warning on a successful local backup), and `DeleteScheduledVolumeBackup`
//! deletes every archive an execution uploaded. The sandbox talks to a real S3 API (moto in
//! tests) through `cfa-backup-store`.

use bytes::Bytes;
use cfa_backup_store::{BackupStore, BackupStoreSettings};
use serde::{Deserialize, Serialize};

/// The sandbox's one team, as `GET /team` answers it (`Root Team`, id 0).
pub(crate) const TEAM_NAME: &str = "Root Team";
pub(crate) const TEAM_ID: u64 = 0;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct S3StorageRecord {
    pub id: u64,
    pub uuid: String,
    pub name: String,
    pub description: Option<String>,
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub key: String,
    pub secret: String,
    pub is_usable: bool,
    pub created_at: u64,
}

impl S3StorageRecord {
    fn store(&self) -> Result<BackupStore, String> {
        if self.endpoint.is_empty() {
            return Err(format!("S3 storage `{}` has no endpoint", self.name));
        }
        BackupStore::connect(&BackupStoreSettings {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            access_key_id: self.key.clone(),
            secret_access_key: self.secret.clone(),
        })
        .map_err(|error| error.to_string())
    }

    /// `uploadToS3`: `testConnection`, then `mc cp` of the archive.
    pub(crate) async fn upload(&self, key: &str, content: Bytes) -> Result<(), String> {
        let store = self.store()?;
        store.check().await.map_err(|error| error.to_string())?;
        store.put(key, content).await.map_err(|error| error.to_string())
    }

    /// `deleteBackupsS3`: removes the archives; a missing one is not an error.
    pub(crate) async fn delete(&self, keys: &[String]) {
        let Ok(store) = self.store() else { return };
        for key in keys {
            if let Err(error) = store.delete(key).await
                && !error.is_not_found()
            {
                tracing::warn!(%key, %error, "could not delete an S3 archive");
            }
        }
    }
}

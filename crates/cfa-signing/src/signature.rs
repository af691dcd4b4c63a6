//! The request signature: HMAC-SHA256 over `"{timestamp}.{body}"`, keyed by a shared secret,
//! sent as `cfa-signature: sha256=<hex>` beside `cfa-timestamp: <unix seconds>`.
//!
//! The sender calls [`sign`]; the receiver calls [`verify_signature`] on every request, before it
//! parses the body.

use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The signature header: `sha256=<64 lowercase hex digits>`.
pub const SIGNATURE_HEADER: &str = "cfa-signature";
/// The timestamp header: Unix seconds when the request was signed; part of the signed material.
pub const TIMESTAMP_HEADER: &str = "cfa-timestamp";
/// The signature scheme's prefix in [`SIGNATURE_HEADER`].
pub const SIGNATURE_PREFIX: &str = "sha256=";
/// How old a request may be before the receiver refuses it as a replay; a signature from further
/// than this in the future (a skewed clock) is refused too.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);

type HmacSha256 = Hmac<Sha256>;

/// Why a request's signature is refused. The messages never include the secret or the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Refused before any MAC: with an empty key anyone can compute a valid signature.
    #[error("the receiver has no secret to verify with\nhint: configure a non-empty secret")]
    EmptySecret,
    #[error("`{SIGNATURE_HEADER}` is not `{SIGNATURE_PREFIX}` followed by 64 hex digits")]
    MalformedSignature,
    #[error("`{TIMESTAMP_HEADER}` is not a number of Unix seconds")]
    MalformedTimestamp,
    #[error(
        "the signature does not match the body and timestamp\nhint: check that the sender and the receiver hold the same secret"
    )]
    Mismatch,
    #[error(
        "the request was signed {age_seconds} s ago, more than the {max_age_seconds} s allowed (a replay or a late retry)"
    )]
    TooOld { age_seconds: u64, max_age_seconds: u64 },
    #[error(
        "the request is signed {ahead_seconds} s in the future, more than the {max_age_seconds} s allowed\nhint: check the sender's clock"
    )]
    FromTheFuture { ahead_seconds: u64, max_age_seconds: u64 },
}

/// The [`SIGNATURE_HEADER`] value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    format!(
        "{SIGNATURE_PREFIX}{}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Checks a request: `timestamp_header` and `signature_header` are the raw [`TIMESTAMP_HEADER`]
/// and [`SIGNATURE_HEADER`] values (empty when absent), `body` the exact bytes received, `now`
/// the receiver's clock. The comparison is constant-time. Authenticity is checked before age, so
/// [`SignatureError::TooOld`] and [`SignatureError::FromTheFuture`] mean a genuine request that
/// is stale (or replayed) or from a skewed clock, never a forgery.
pub fn verify_signature(
    secret: &[u8],
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: SystemTime,
    max_age: Duration,
) -> Result<(), SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::EmptySecret);
    }
    let digest = signature_header
        .trim()
        .strip_prefix(SIGNATURE_PREFIX)
        .filter(|digest| digest.len() == 64)
        .and_then(|digest| hex::decode(digest).ok())
        .ok_or(SignatureError::MalformedSignature)?;
    let timestamp: u64 =
        timestamp_header.trim().parse().map_err(|_| SignatureError::MalformedTimestamp)?;
    // `verify_slice` compares in constant time: no timing leak of how many bytes matched.
    mac(secret, timestamp, body).verify_slice(&digest).map_err(|_| SignatureError::Mismatch)?;
    // A clock before 1970 reads as 0: every request is then too old, which is refused, not let in.
    let now = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
    let max_age_seconds = max_age.as_secs();
    if now > timestamp && now - timestamp > max_age_seconds {
        return Err(SignatureError::TooOld { age_seconds: now - timestamp, max_age_seconds });
    }
    if timestamp > now && timestamp - now > max_age_seconds {
        return Err(SignatureError::FromTheFuture {
            ahead_seconds: timestamp - now,
            max_age_seconds,
        });
    }
    Ok(())
}

fn mac(secret: &[u8], timestamp: u64, body: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"server-secret";
    const BODY: &[u8] = br#"{"server":"s1","events":[]}"#;
    const NOW: u64 = 1_800_000_000;
    const MAX_AGE: Duration = Duration::from_secs(300);

    fn check(
        secret: &[u8],
        timestamp_header: &str,
        body: &[u8],
        signature_header: &str,
    ) -> Result<(), SignatureError> {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW);
        verify_signature(secret, timestamp_header, signature_header, body, now, MAX_AGE)
    }

    #[test]
    fn a_fresh_signature_verifies() {
        let header = sign(SECRET, NOW, BODY);
        assert!(header.starts_with("sha256=") && header.len() == 7 + 64, "{header}");
        assert_eq!(check(SECRET, &NOW.to_string(), BODY, &header), Ok(()));
        // Within the window on either side.
        let header = sign(SECRET, NOW - 300, BODY);
        assert_eq!(check(SECRET, &(NOW - 300).to_string(), BODY, &header), Ok(()));
        let header = sign(SECRET, NOW + 300, BODY);
        assert_eq!(check(SECRET, &(NOW + 300).to_string(), BODY, &header), Ok(()));
    }

    #[test]
    fn the_known_answer() {
        // Computed independently: printf '1800000000.{"server":"s1","events":[]}' |
        // openssl dgst -sha256 -hmac server-secret
        // (and Python's hmac module gives the same).
        assert_eq!(
            sign(SECRET, NOW, BODY),
            "sha256=ca7f956afee9cce7c1cc7688e1b9bcd1839ac214bd3bfc971f74136134793a89"
        );
    }

    #[test]
    fn refusals() {
        let timestamp = NOW.to_string();
        let header = sign(SECRET, NOW, BODY);
        assert_eq!(
            check(b"other-secret", &timestamp, BODY, &header),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(SECRET, &timestamp, br#"{"server":"s2","events":[]}"#, &header),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is signed: moving it forward (to dodge the age check) breaks the MAC.
        assert_eq!(
            check(SECRET, &(NOW + 1).to_string(), BODY, &header),
            Err(SignatureError::Mismatch)
        );
        let old = sign(SECRET, NOW - 301, BODY);
        assert_eq!(
            check(SECRET, &(NOW - 301).to_string(), BODY, &old),
            Err(SignatureError::TooOld { age_seconds: 301, max_age_seconds: 300 })
        );
        let future = sign(SECRET, NOW + 301, BODY);
        assert_eq!(
            check(SECRET, &(NOW + 301).to_string(), BODY, &future),
            Err(SignatureError::FromTheFuture { ahead_seconds: 301, max_age_seconds: 300 })
        );
        // A forged old request is a mismatch, not "too old": authenticity comes first.
        assert_eq!(
            check(b"other-secret", &(NOW - 301).to_string(), BODY, &old),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(check(b"", &timestamp, BODY, &header), Err(SignatureError::EmptySecret));
        assert_eq!(
            check(SECRET, "yesterday", BODY, &header),
            Err(SignatureError::MalformedTimestamp)
        );
        for malformed in ["", "sha256=", "sha1=abc", &header[7..], &header[..70], "sha256=zz"] {
            assert_eq!(
                check(SECRET, &timestamp, BODY, malformed),
                Err(SignatureError::MalformedSignature),
                "{malformed}"
            );
        }
        // Upper-case hex is still the same digest.
        assert_eq!(
            check(SECRET, &timestamp, BODY, &header.to_uppercase().replace("SHA256=", "sha256=")),
            Ok(())
        );
    }
}

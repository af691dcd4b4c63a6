//! The webhook's signature: HMAC-SHA256 over `"{timestamp}.{body}"`, keyed by the webhook's
//! secret, sent as `cfa-signature: sha256=<hex>` beside `cfa-timestamp: <unix seconds>`.
//!
//! [`verify_signature`] is what a receiver runs on every request before it parses the body
//! (the tests' receiver does; so can any receiver written in Rust).

use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `sha256=<64 lowercase hex digits>`.
pub const SIGNATURE_HEADER: &str = "cfa-signature";
/// Unix seconds when the request was signed; part of the signed material.
pub const TIMESTAMP_HEADER: &str = "cfa-timestamp";
/// The message's `message_id`, also in the body: a receiver can drop a redelivery unread.
pub const MESSAGE_ID_HEADER: &str = "cfa-message-id";
/// The scheme prefix in [`SIGNATURE_HEADER`].
pub const SIGNATURE_PREFIX: &str = "sha256=";
/// How old a signed request may be before [`verify_signature`] refuses it as a replay.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);

type HmacSha256 = Hmac<Sha256>;

/// Why a signature is refused. Never includes the secret or the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("`{SIGNATURE_HEADER}` is not `{SIGNATURE_PREFIX}` followed by 64 hex digits")]
    Malformed,
    #[error("`{TIMESTAMP_HEADER}` is not a number of Unix seconds")]
    MalformedTimestamp,
    #[error(
        "the signature does not match the body and timestamp\nhint: check the webhook's secret on both sides"
    )]
    Mismatch,
    #[error(
        "the request was signed {age_seconds} s from now, more than the {max_age_seconds} s allowed (a replay, or a clock off)"
    )]
    OutOfWindow { age_seconds: u64, max_age_seconds: u64 },
}

/// The header value for `body` signed at `timestamp` (Unix seconds): `sha256=<hex>`.
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = new_mac(secret, timestamp);
    mac.update(body);
    format!("{SIGNATURE_PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a request's two headers against its body: the timestamp within `max_age` of `now`
/// (either way), the signature in constant time.
pub fn verify_signature(
    secret: &[u8],
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: SystemTime,
    max_age: Duration,
) -> Result<(), SignatureError> {
    let timestamp: u64 =
        timestamp_header.trim().parse().map_err(|_| SignatureError::MalformedTimestamp)?;
    let now_seconds = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
    let age_seconds = now_seconds.abs_diff(timestamp);
    if age_seconds > max_age.as_secs() {
        return Err(SignatureError::OutOfWindow {
            age_seconds,
            max_age_seconds: max_age.as_secs(),
        });
    }
    let digits =
        signature_header.trim().strip_prefix(SIGNATURE_PREFIX).ok_or(SignatureError::Malformed)?;
    let expected = hex::decode(digits).map_err(|_| SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut mac = new_mac(secret, timestamp);
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| SignatureError::Mismatch)
}

fn new_mac(secret: &[u8], timestamp: u64) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn signs_the_timestamp_and_body_as_documented() {
        // The same HMAC any receiver computes: HMAC-SHA256(key, "1700000000.{body}").
        let mut mac = HmacSha256::new_from_slice(b"key").unwrap();
        mac.update(b"1700000000.{\"a\":1}");
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(sign(b"key", 1_700_000_000, b"{\"a\":1}"), expected);
    }

    #[test]
    fn verify_accepts_its_own_and_refuses_the_rest() {
        let body = b"{\"a\":1}";
        let signature = sign(b"key", 1_700_000_000, body);
        let verify = |secret: &[u8], timestamp: &str, signature: &str, body: &[u8], now| {
            verify_signature(secret, timestamp, signature, body, at(now), DEFAULT_MAX_AGE)
        };
        assert_eq!(verify(b"key", "1700000000", &signature, body, 1_700_000_010), Ok(()));
        assert_eq!(
            verify(b"other", "1700000000", &signature, body, 1_700_000_010),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"key", "1700000000", &signature, b"{\"a\":2}", 1_700_000_010),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"key", "1700000001", &signature, body, 1_700_000_010),
            Err(SignatureError::Mismatch),
            "the timestamp is signed too"
        );
        assert_eq!(
            verify(b"key", "1700000000", &signature, body, 1_700_000_301),
            Err(SignatureError::OutOfWindow { age_seconds: 301, max_age_seconds: 300 })
        );
        assert_eq!(
            verify(b"key", "soon", &signature, body, 1_700_000_000),
            Err(SignatureError::MalformedTimestamp)
        );
        assert_eq!(
            verify(b"key", "1700000000", "md5=00", body, 1_700_000_000),
            Err(SignatureError::Malformed)
        );
    }
}

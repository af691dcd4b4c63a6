//! The controller's lease (`cfa_leases`, taken through pb_hooks/cfa_leases.pb.js): one
//! controller acts at a time. PocketBase decides, in one transaction and on its own clock, so
//! two callers never both hold it and a caller's clock never matters.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::{PocketBaseClient, PocketBaseError, PocketBaseErrorKind};

/// The lease as PocketBase answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    /// Whether the caller holds it now.
    pub acquired: bool,
    /// Who holds it (the caller when `acquired`).
    pub holder: String,
    /// When it ends unless renewed, in PocketBase's milliseconds since the epoch.
    pub expires_ms: i64,
    /// PocketBase's clock when it answered.
    pub now_ms: i64,
    /// This call took the lease from another holder: who, and whether it had given it up.
    pub taken_over: Option<Takeover>,
}

/// The holder a lease was taken from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takeover {
    pub holder: String,
    /// When its lease ended (PocketBase's ms since the epoch).
    pub expires_ms: i64,
    /// It gave the lease up (a clean handover), rather than stopping to renew it.
    pub released: bool,
}

impl Lease {
    /// How long the lease still runs, by PocketBase's clock.
    pub fn remaining(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.expires_ms - self.now_ms).unwrap_or(0))
    }
}

impl PocketBaseClient {
    /// Takes or renews lease `name` for `holder` for `ttl`, unless someone else holds it.
    pub async fn lease_acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Lease, PocketBaseError> {
        self.lease_renew_with(name, holder, ttl, None).await
    }

    /// As [`PocketBaseClient::lease_acquire`], and keeps `last_pass` (what the holder's last
    /// pass saw and did) on the lease when the caller holds it.
    pub async fn lease_renew_with(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        last_pass: Option<&Value>,
    ) -> Result<Lease, PocketBaseError> {
        let mut body = json!({ "holder": holder, "ttl_seconds": ttl.as_secs().max(1) });
        if let Some(last_pass) = last_pass {
            body["last_pass"] = last_pass.clone();
        }
        let path = format!("api/cfa/leases/{}", segment(name)?);
        let answer = self
            .call("lease_acquire", Method::POST, &path, &[], Some(&body))
            .await?
            .unwrap_or_default();
        lease_from(&answer).ok_or_else(|| {
            PocketBaseError::new(
                "lease_acquire",
                PocketBaseErrorKind::Decode,
                format!("unexpected lease answer: {answer}\nhint: install the platform's PocketBase migrations and hooks, then restart PocketBase (the lease route is in pb_hooks/cfa_leases.pb.js)"),
            )
        })
    }

    /// Gives lease `name` up if `holder` holds it (a successor need not wait for it to expire).
    pub async fn lease_release(&self, name: &str, holder: &str) -> Result<(), PocketBaseError> {
        let path = format!("api/cfa/leases/{}/release", segment(name)?);
        let body = json!({ "holder": holder });
        self.call("lease_release", Method::POST, &path, &[], Some(&body)).await?;
        Ok(())
    }
}

/// A lease as stored: who holds it until when, and its holder's last pass.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRecord {
    pub holder: String,
    pub expires_ms: i64,
    pub last_pass: Value,
}

impl PocketBaseClient {
    /// Lease `name` as stored, `None` when nobody ever took it.
    pub async fn lease_view(&self, name: &str) -> Result<Option<LeaseRecord>, PocketBaseError> {
        let filter = format!("name = {}", crate::quote(segment(name)?));
        let query = [("filter", filter), ("perPage", "1".to_owned())];
        let answer = self
            .call("lease_view", Method::GET, "api/collections/cfa_leases/records", &query, None)
            .await?
            .unwrap_or_default();
        let Some(item) =
            answer.get("items").and_then(Value::as_array).and_then(|items| items.first())
        else {
            return Ok(None);
        };
        Ok(Some(LeaseRecord {
            holder: item.get("holder").and_then(Value::as_str).unwrap_or_default().to_owned(),
            expires_ms: item.get("expires_ms").and_then(Value::as_i64).unwrap_or_default(),
            last_pass: item.get("last_pass").cloned().unwrap_or(Value::Null),
        }))
    }
}

/// Lease names are ours (`controller`): plain words only, so they need no escaping.
fn segment(name: &str) -> Result<&str, PocketBaseError> {
    let plain = !name.is_empty()
        && name.len() <= 100
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if plain {
        Ok(name)
    } else {
        Err(PocketBaseError::new(
            "lease",
            PocketBaseErrorKind::BadRequest,
            format!("lease name `{}` is not a plain word", name.escape_debug()),
        ))
    }
}

fn lease_from(answer: &Value) -> Option<Lease> {
    Some(Lease {
        name: answer.get("name")?.as_str()?.to_owned(),
        acquired: answer.get("acquired")?.as_bool()?,
        holder: answer.get("holder")?.as_str()?.to_owned(),
        expires_ms: answer.get("expires_ms")?.as_i64()?,
        now_ms: answer.get("now_ms")?.as_i64()?,
        taken_over: answer.get("taken_over").filter(|taken| taken.is_object()).and_then(|taken| {
            Some(Takeover {
                holder: taken.get("holder")?.as_str()?.to_owned(),
                expires_ms: taken.get("expires_ms")?.as_i64()?,
                released: taken.get("released").and_then(Value::as_bool).unwrap_or(false),
            })
        }),
    })
}

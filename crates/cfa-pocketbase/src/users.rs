//! Tenants' accounts (`users`): looked up, created verified, claimed by their e-mail's owner,
//! and the account behind a tenant's token, as PocketBase checks it.

use reqwest::Method;
use serde_json::Value;

use crate::client::{ListOptions, Password, PocketBaseClient, REQUEST_TIMEOUT, path_segment, send};
use crate::error::{PocketBaseError, PocketBaseErrorKind};
use crate::filter::quote;
use crate::types::{UserAccount, decode_error};

impl PocketBaseClient {
    /// The `users` record a tenant's token belongs to, as PocketBase sees it now: the token
    /// is checked by PocketBase itself (`auth-refresh` with that token), so a forged, expired
    /// or revoked token, or one of another auth collection (a superuser's), is refused with
    /// `Unauthorized` or `Forbidden`. The fresh token PocketBase answers with is dropped.
    pub async fn user_behind_token(&self, token: &str) -> Result<UserAccount, PocketBaseError> {
        const OPERATION: &str = "user_behind_token";
        let request = self
            .http()
            .post(self.url("api/collections/users/auth-refresh"))
            .timeout(REQUEST_TIMEOUT)
            .header("Authorization", token);
        let answer = send(OPERATION, request)
            .await?
            .ok_or_else(|| decode_error(OPERATION, "an empty auth answer".into()))?;
        let record = answer
            .get("record")
            .ok_or_else(|| decode_error(OPERATION, "no `record` in the auth answer".into()))?;
        if record.get("collectionName").and_then(Value::as_str) != Some("users") {
            return Err(PocketBaseError::new(
                OPERATION,
                PocketBaseErrorKind::Forbidden,
                "the token is not a tenant user's",
            ));
        }
        Ok(UserAccount {
            id: record.get("id").and_then(Value::as_str).unwrap_or_default().to_owned(),
            verified: record.get("verified").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    /// The account with this e-mail, if any, and whether it verified its e-mail.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserAccount>, PocketBaseError> {
        let options = ListOptions { per_page: 1, skip_total: true, ..ListOptions::default() };
        let filter = Some(format!("email = {}", quote(email)));
        let (items, _) = self.list_records("user_by_email", "users", filter, &options).await?;
        Ok(items.first().and_then(|record| {
            let id = record.get("id").and_then(Value::as_str)?;
            let verified = record.get("verified").and_then(Value::as_bool).unwrap_or(false);
            Some(UserAccount { id: id.to_owned(), verified })
        }))
    }

    /// Creates a verified account (as a superuser) whose password only this call knows: the
    /// owner sets their own through PocketBase's password reset, which proves the e-mail.
    pub async fn user_create_verified(
        &self,
        email: &str,
        password: &Password,
    ) -> Result<String, PocketBaseError> {
        let body = serde_json::json!({
            "email": email,
            "password": password.expose(),
            "passwordConfirm": password.expose(),
            "verified": true,
        });
        let record = self
            .call_record(
                "user_create",
                Method::POST,
                "api/collections/users/records",
                &[],
                Some(&body),
            )
            .await?;
        record.get("id").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| {
            PocketBaseError::new(
                "user_create",
                PocketBaseErrorKind::Decode,
                "the created user has no id".to_owned(),
            )
        })
    }

    /// Claims an unverified account for its e-mail's owner: a new password (PocketBase then
    /// renews the account's token key, so the registrant's sessions end) and `verified`.
    pub async fn user_claim(
        &self,
        user_id: &str,
        password: &Password,
    ) -> Result<(), PocketBaseError> {
        let path = format!("api/collections/users/records/{}", path_segment(user_id)?);
        let body = serde_json::json!({
            "password": password.expose(),
            "passwordConfirm": password.expose(),
            "verified": true,
        });
        self.call_record("user_claim", Method::PATCH, &path, &[], Some(&body)).await.map(|_| ())
    }
}

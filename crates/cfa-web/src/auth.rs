//! Who calls: a tenant's user, proved by its own PocketBase token in
//! `Authorization: Bearer <token>`, which PocketBase itself checks on every request (a revoked
//! or expired token, or another collection's, is refused there). Nothing is cached: a token
//! PocketBase stops accepting stops working here at once.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use cfa_pocketbase::PocketBaseErrorKind;

use crate::AppState;
use crate::problem::Problem;

/// A PocketBase token is a JWT: base64url parts joined by dots, well under this long.
const TOKEN_MAX_LENGTH: usize = 4096;

/// The calling tenant user, as PocketBase knows it.
#[derive(Debug, Clone)]
pub(crate) struct TenantUser {
    pub(crate) id: String,
}

impl FromRequestParts<AppState> for TenantUser {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<TenantUser, Problem> {
        let unauthorized = |message: &str| {
            Problem::new(StatusCode::UNAUTHORIZED, message)
                .hint("send `Authorization: Bearer <your PocketBase token>` (from PocketBase's auth-with-password for your account)")
        };
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("no Authorization header"))?
            .to_str()
            .map_err(|_| unauthorized("the Authorization header is not text"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| unauthorized("the Authorization header is not `Bearer <token>`"))?
            .trim();
        let well_formed = !token.is_empty()
            && token.len() <= TOKEN_MAX_LENGTH
            && token.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte));
        if !well_formed {
            return Err(unauthorized("the token is malformed"));
        }
        match state.pocketbase.user_behind_token(token).await {
            Ok(user) if user.verified => Ok(TenantUser { id: user.id }),
            Ok(_) => {
                Err(Problem::new(StatusCode::FORBIDDEN, "your account's e-mail is not verified")
                    .hint("verify your e-mail address with PocketBase first"))
            }
            Err(error)
                if matches!(
                    error.kind,
                    PocketBaseErrorKind::Unauthorized
                        | PocketBaseErrorKind::Forbidden
                        | PocketBaseErrorKind::NotFound
                        | PocketBaseErrorKind::InvalidInput
                ) =>
            {
                Err(unauthorized("PocketBase does not accept this token"))
            }
            Err(error) => {
                tracing::warn!(error = %error, "cannot check a tenant's token with PocketBase");
                Err(Problem::unavailable("the platform cannot reach its database"))
            }
        }
    }
}

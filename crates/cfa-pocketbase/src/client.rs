//! The typed PocketBase client: login (superuser or user) with token refresh, tenants,
//! agent_stacks, audit_log, and the collection reads `cfa pb check` needs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};
use url::Url;

use crate::error::{PocketBaseError, PocketBaseErrorKind};
use crate::filter::{AuditQuery, quote};
use crate::types::{
    AuditEntry, NewAuditEntry, NewTenant, Page, Tenant, TenantPatch, audit_create_body,
    audit_from_record, decode_error, tenant_create_body, tenant_from_record, tenant_patch_body,
};

/// PocketBase answers at most this many items per page (larger `perPage` is silently capped).
pub const MAX_PER_PAGE: u32 = 1000;
/// A token this close to expiry is refreshed before use.
const REFRESH_MARGIN_SECONDS: i64 = 300;
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A password; `Debug`/`Display` print `***`.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Password {
        Password(password.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Paging and shape of a list call.
#[derive(Debug, Clone, PartialEq)]
pub struct ListOptions {
    /// 1-based.
    pub page: u32,
    /// At most [`MAX_PER_PAGE`].
    pub per_page: u32,
    /// PocketBase sort, e.g. `-created_at,stack_name`.
    pub sort: Option<String>,
    /// Include the stack's tenant (`expand=tenant_id`).
    pub expand_tenant: bool,
    /// Skip the COUNT query (`total_items` is then `None`).
    pub skip_total: bool,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions { page: 1, per_page: 100, sort: None, expand_tenant: false, skip_total: false }
    }
}

/// A logged-in PocketBase client; cheap to clone (shares one connection pool and token).
#[derive(Clone)]
pub struct PocketBaseClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: Url,
    auth_collection: String,
    identity: String,
    password: Password,
    session: tokio::sync::Mutex<Option<Session>>,
}

#[derive(Clone)]
struct Session {
    token: String,
    /// Unix seconds.
    expires_at: i64,
    record_id: String,
}

impl fmt::Debug for PocketBaseClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PocketBaseClient")
            .field("base_url", &self.inner.base_url.as_str())
            .field("auth_collection", &self.inner.auth_collection)
            .field("identity", &self.inner.identity)
            .finish_non_exhaustive()
    }
}

impl PocketBaseClient {
    /// Logs in as a superuser (`_superusers`): what the engine and `cfa` use.
    pub async fn connect_superuser(
        base_url: &str,
        email: &str,
        password: Password,
    ) -> Result<PocketBaseClient, PocketBaseError> {
        PocketBaseClient::connect(base_url, "_superusers", email, password).await
    }

    /// Logs in as a record of an auth collection (e.g. a tenant's `users` record): the
    /// tenant's view, where the API rules apply.
    pub async fn connect(
        base_url: &str,
        auth_collection: &str,
        identity: &str,
        password: Password,
    ) -> Result<PocketBaseClient, PocketBaseError> {
        let mut base_url = Url::parse(base_url).map_err(|source| {
            PocketBaseError::new(
                "connect",
                PocketBaseErrorKind::InvalidInput,
                format!("`{base_url}` is not a URL"),
            )
            .with_source(source)
        })?;
        if !base_url.path().ends_with('/') {
            base_url.set_path(&format!("{}/", base_url.path()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(32)
            .build()
            .map_err(|source| {
                PocketBaseError::new(
                    "connect",
                    PocketBaseErrorKind::Transport,
                    "cannot build an HTTP client",
                )
                .with_source(source)
            })?;
        let client = PocketBaseClient {
            inner: Arc::new(Inner {
                http,
                base_url,
                auth_collection: auth_collection.to_owned(),
                identity: identity.to_owned(),
                password,
                session: tokio::sync::Mutex::new(None),
            }),
        };
        client.token().await?;
        Ok(client)
    }

    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    /// The logged-in record's id (a superuser's or a user's).
    pub async fn auth_record_id(&self) -> Result<String, PocketBaseError> {
        self.token().await?;
        Ok(self
            .inner
            .session
            .lock()
            .await
            .as_ref()
            .map(|session| session.record_id.clone())
            .unwrap_or_default())
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub(crate) fn url(&self, path: &str) -> Url {
        // `path` is ours (a constant or built from ids we escape), never user text verbatim.
        self.inner
            .base_url
            .join(path.trim_start_matches('/'))
            .unwrap_or_else(|_| self.inner.base_url.clone())
    }

    /// A valid token: the current one, refreshed when close to expiry, or a new login.
    pub(crate) async fn token(&self) -> Result<String, PocketBaseError> {
        let mut session = self.inner.session.lock().await;
        let now = jiff::Timestamp::now().as_second();
        if let Some(current) = session.as_ref() {
            if current.expires_at - now > REFRESH_MARGIN_SECONDS {
                return Ok(current.token.clone());
            }
            let refreshed =
                self.auth_call("auth_refresh", "auth-refresh", Some(&current.token), None).await;
            if let Ok(fresh) = refreshed {
                let token = fresh.token.clone();
                *session = Some(fresh);
                return Ok(token);
            }
        }
        let body =
            json!({"identity": self.inner.identity, "password": self.inner.password.expose()});
        let fresh =
            self.auth_call("auth_with_password", "auth-with-password", None, Some(&body)).await?;
        let token = fresh.token.clone();
        *session = Some(fresh);
        Ok(token)
    }

    async fn auth_call(
        &self,
        operation: &'static str,
        endpoint: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Session, PocketBaseError> {
        let path = format!("api/collections/{}/{endpoint}", self.inner.auth_collection);
        let mut request = self.inner.http.post(self.url(&path)).timeout(REQUEST_TIMEOUT);
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = send(operation, request)
            .await?
            .ok_or_else(|| decode_error(operation, "an empty auth answer".into()))?;
        let token = answer
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| decode_error(operation, "no token".into()))?;
        let record_id =
            answer.pointer("/record/id").and_then(Value::as_str).unwrap_or_default().to_owned();
        Ok(Session {
            token: token.to_owned(),
            expires_at: token_expiry(token).unwrap_or(0),
            record_id,
        })
    }

    /// One authenticated call; on a 401 (token revoked, server restarted with a new secret)
    /// logs in again once and retries. `None` is a 204.
    pub(crate) async fn call(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, PocketBaseError> {
        let mut retried = false;
        loop {
            let token = self.token().await?;
            let mut request = self
                .inner
                .http
                .request(method.clone(), self.url(path))
                .timeout(REQUEST_TIMEOUT)
                .header("Authorization", token)
                .query(query);
            if let Some(body) = body {
                request = request.json(body);
            }
            match send(operation, request).await {
                Err(error) if error.kind == PocketBaseErrorKind::Unauthorized && !retried => {
                    retried = true;
                    *self.inner.session.lock().await = None;
                }
                other => return other,
            }
        }
    }

    pub(crate) async fn call_record(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, PocketBaseError> {
        self.call(operation, method, path, query, body)
            .await?
            .ok_or_else(|| decode_error(operation, "an empty answer".into()))
    }

    pub(crate) async fn list_records(
        &self,
        operation: &'static str,
        collection: &str,
        filter: Option<String>,
        options: &ListOptions,
    ) -> Result<(Vec<Value>, Page<()>), PocketBaseError> {
        let mut query = vec![
            ("page", options.page.max(1).to_string()),
            ("perPage", options.per_page.clamp(1, MAX_PER_PAGE).to_string()),
        ];
        if let Some(filter) = filter {
            query.push(("filter", filter));
        }
        if let Some(sort) = &options.sort {
            query.push(("sort", sort.clone()));
        }
        if options.expand_tenant {
            query.push(("expand", "tenant_id".to_owned()));
        }
        if options.skip_total {
            query.push(("skipTotal", "1".to_owned()));
        }
        let path = format!("api/collections/{collection}/records");
        let answer = self.call_record(operation, Method::GET, &path, &query, None).await?;
        let items = answer
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| decode_error(operation, "no `items` in a list answer".into()))?;
        let number = |key: &str| answer.get(key).and_then(Value::as_i64).unwrap_or(-1);
        let page = Page {
            items: Vec::new(),
            page: u32::try_from(number("page")).unwrap_or(1),
            per_page: u32::try_from(number("perPage")).unwrap_or(0),
            total_items: u64::try_from(number("totalItems")).ok(),
        };
        Ok((items, page))
    }

    // ---- tenants --------------------------------------------------------------------------

    pub async fn tenant_view(&self, tenant_id: &str) -> Result<Tenant, PocketBaseError> {
        let path = format!("api/collections/tenants/records/{}", path_segment(tenant_id)?);
        let record = self.call_record("tenant_view", Method::GET, &path, &[], None).await?;
        tenant_from_record("tenant_view", &record)
    }

    /// The tenant with this slug; a `NotFound` error when there is none.
    pub async fn tenant_by_slug(&self, slug: &str) -> Result<Tenant, PocketBaseError> {
        // Two, so that a shared slug (an existing `tenants` collection without the unique
        // index) is an error instead of whichever tenant PocketBase lists first.
        let options = ListOptions { per_page: 2, skip_total: true, ..ListOptions::default() };
        let (items, _) = self
            .list_records(
                "tenant_by_slug",
                "tenants",
                Some(format!("slug = {}", quote(slug))),
                &options,
            )
            .await?;
        match items.as_slice() {
            [record] => tenant_from_record("tenant_by_slug", record),
            [_, _, ..] => Err(PocketBaseError::new(
                "tenant_by_slug",
                PocketBaseErrorKind::Ambiguous,
                format!(
                    "more than one tenant has the slug `{}`; nothing is done for any of them until the slugs are made unique (the PocketBase schema check reports it)",
                    slug.escape_debug()
                ),
            )),
            [] => Err(PocketBaseError::new(
                "tenant_by_slug",
                PocketBaseErrorKind::NotFound,
                format!("no tenant has the slug `{}`", slug.escape_debug()),
            )),
        }
    }

    pub async fn tenant_list(
        &self,
        options: &ListOptions,
    ) -> Result<Page<Tenant>, PocketBaseError> {
        let (items, page) = self.list_records("tenant_list", "tenants", None, options).await?;
        let items = items
            .iter()
            .map(|record| tenant_from_record("tenant_list", record))
            .collect::<Result<_, _>>()?;
        Ok(Page { items, page: page.page, per_page: page.per_page, total_items: page.total_items })
    }

    pub async fn tenant_create(&self, tenant: &NewTenant) -> Result<Tenant, PocketBaseError> {
        let body = tenant_create_body(tenant);
        let record = self
            .call_record(
                "tenant_create",
                Method::POST,
                "api/collections/tenants/records",
                &[],
                Some(&body),
            )
            .await?;
        tenant_from_record("tenant_create", &record)
    }

    pub async fn tenant_update(
        &self,
        tenant_id: &str,
        patch: &TenantPatch,
    ) -> Result<Tenant, PocketBaseError> {
        let body = tenant_patch_body(patch);
        let path = format!("api/collections/tenants/records/{}", path_segment(tenant_id)?);
        let record =
            self.call_record("tenant_update", Method::PATCH, &path, &[], Some(&body)).await?;
        tenant_from_record("tenant_update", &record)
    }

    // ---- audit_log ------------------------------------------------------------------------

    /// Appends an entry (superusers only: the collection has no rules for anyone else).
    pub async fn audit_append(&self, entry: &NewAuditEntry) -> Result<AuditEntry, PocketBaseError> {
        let body = audit_create_body(entry);
        let record = self
            .call_record(
                "audit_append",
                Method::POST,
                "api/collections/audit_log/records",
                &[],
                Some(&body),
            )
            .await?;
        audit_from_record("audit_append", &record)
    }

    /// Entries matching `query` in the order they were appended: newest first, or oldest
    /// first with `query.oldest_first`.
    ///
    /// The order is SQLite's rowid, not `time`: two entries can share a millisecond, and an
    /// entry appended after this call returned always sorts after every entry it returned
    /// (writes are serialized and the log is never deleted from, so rowids only grow). Callers
    /// that decide by "the first entry" (the engine's creation claims) rely on that.
    pub async fn audit_list(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, PocketBaseError> {
        let options = ListOptions {
            page: 1,
            per_page: query.limit.unwrap_or(100).clamp(1, MAX_PER_PAGE),
            sort: Some(if query.oldest_first { "@rowid" } else { "-@rowid" }.to_owned()),
            expand_tenant: false,
            skip_total: true,
        };
        let (items, _) =
            self.list_records("audit_list", "audit_log", query.to_expression(), &options).await?;
        items.iter().map(|record| audit_from_record("audit_list", record)).collect()
    }

    // ---- collections (schema check) -------------------------------------------------------

    /// A collection's definition (superusers only); `None` when it does not exist.
    pub(crate) async fn collection_view(
        &self,
        name: &str,
    ) -> Result<Option<Value>, PocketBaseError> {
        let path = format!("api/collections/{}", path_segment(name)?);
        match self.call("collection_view", Method::GET, &path, &[], None).await {
            Ok(answer) => Ok(answer),
            Err(error) if error.kind == PocketBaseErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Any call, for tests that need a request our typed API deliberately cannot express
    /// (modifier keys such as `max_stacks+`, batch requests, raw collection edits).
    #[cfg(feature = "testing")]
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, PocketBaseError> {
        self.call("raw", method, path, &[], body).await
    }
}

/// An id or name as one path segment. Record ids are `[a-z0-9]{15}` and collection names
/// identifiers, so anything else is refused rather than escaped (`%2E%2E` would still be
/// read as `..` by URL normalisation).
pub(crate) fn path_segment(text: &str) -> Result<&str, PocketBaseError> {
    if !text.is_empty()
        && text.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
    {
        Ok(text)
    } else {
        Err(PocketBaseError::new(
            "path",
            PocketBaseErrorKind::InvalidInput,
            format!(
                "`{}` is not a PocketBase id",
                text.chars().take(40).collect::<String>().escape_debug()
            ),
        ))
    }
}

/// Sends a request and reads the answer: JSON on 2xx (`None` on 204), a classified error else.
pub(crate) async fn send(
    operation: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<Option<Value>, PocketBaseError> {
    let response = request.send().await.map_err(|source| {
        PocketBaseError::new(operation, PocketBaseErrorKind::Transport, "no answer from PocketBase")
            .with_source(source)
    })?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|source| {
        PocketBaseError::new(operation, PocketBaseErrorKind::Transport, "the answer broke off")
            .with_source(source)
    })?;
    if !(200..300).contains(&status) {
        return Err(PocketBaseError::from_response(operation, status, &body));
    }
    if status == 204 || body.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(&body).map(Some).map_err(|source| {
        decode_error(operation, "the answer is not JSON".into()).with_source(source)
    })
}

/// The `exp` claim of a JWT (unix seconds), without checking the signature (the server does).
fn token_expiry(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<Value>(&bytes).ok()?.get("exp")?.as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_expiry_reads_the_exp_claim() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"exp":1763900000,"type":"auth"}"#);
        assert_eq!(token_expiry(&format!("e30.{payload}.sig")), Some(1_763_900_000));
        assert_eq!(token_expiry("garbage"), None);
    }

    #[test]
    fn path_segments_cannot_escape_the_collection() {
        assert_eq!(path_segment("abc123").unwrap(), "abc123");
        assert!(path_segment("../../settings").is_err());
        assert!(path_segment("").is_err());
    }

    #[test]
    fn password_never_prints() {
        let password = Password::new("hunter2");
        assert_eq!(format!("{password} {password:?}"), "*** ***");
    }
}

//! The sandbox's stand-in for Coolify's Traefik: a reverse proxy that routes HTTP/1.1 requests
//! by their `Host` to a service container, as the Traefik labels Coolify's service parser writes
//! from a stack's `urls` do (`bootstrap/helpers/docker.php`, `fqdnLabelsForTraefik`; the proxy
//! itself is `app/Actions/Proxy/StartProxy.php`).
//!
//! What it keeps from Traefik's defaults: the `Host` header passes unchanged (`passHostHeader`),
//! `X-Forwarded-For`/`-Host`/`-Port`/`-Proto` and `X-Real-Ip` are added, an unknown host gets
//! Traefik's 404 "404 page not found", an upstream that refuses the connection a 502 "Bad
//! Gateway", and one that does not accept it in time a 504 "Gateway Timeout". What it leaves out:
//! TLS and Let's Encrypt (the sandbox speaks plain HTTP), the http->https redirect, gzip, and
//! connection upgrades (WebSocket).
//!
//! Routes come from a synchronous closure over the caller's table (host -> container address and
//! port), because looking up a container address needs the engine: the caller refreshes its
//! table when stacks start and stop, and the proxy's hot path never waits on Docker.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// The routing table: a request's host (lowercase, without port) -> its upstream.
pub type FrontRoutes = Arc<dyn Fn(&str) -> Option<SocketAddr> + Send + Sync>;

/// How long the front waits for an upstream to accept a connection (Traefik's `dialTimeout`
/// is 30 s; a sandbox container that does not answer in 5 s is not coming).
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the front; see the module doc.
#[derive(Debug)]
pub struct Front;

/// A running front. Dropping it (or [`FrontHandle::shutdown`]) closes the listener and every
/// connection it was serving.
#[derive(Debug)]
pub struct FrontHandle {
    local_address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<()>>,
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

struct Proxy {
    routes: FrontRoutes,
    client: Client<HttpConnector, Incoming>,
}

impl Front {
    /// Listens on `listen` (port 0 picks a free port) and serves until the handle goes.
    pub async fn start(listen: SocketAddr, routes: FrontRoutes) -> std::io::Result<FrontHandle> {
        let listener = TcpListener::bind(listen).await?;
        let local_address = listener.local_addr()?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(UPSTREAM_CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let proxy = Arc::new(Proxy { routes, client });
        let (stop, stopped) = oneshot::channel();
        let serving = tokio::spawn(serve(listener, proxy, stopped));
        Ok(FrontHandle { local_address, stop: Some(stop), serving: Some(serving) })
    }
}

impl FrontHandle {
    /// `http://<address>:<port>`; requests need a `Host` header naming a routed host.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.local_address)
    }

    pub fn local_address(&self) -> SocketAddr {
        self.local_address
    }

    /// Stops accepting, closes open connections, and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ignored = stop.send(());
        }
        if let Some(serving) = self.serving.take() {
            let _ignored = serving.await;
        }
    }
}

impl Drop for FrontHandle {
    fn drop(&mut self) {
        if let Some(serving) = self.serving.take() {
            // Aborting the accept loop drops its JoinSet, which aborts every connection task.
            serving.abort();
        }
    }
}

async fn serve(listener: TcpListener, proxy: Arc<Proxy>, mut stopped: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            // Finished connections are reaped so the set does not grow with every client.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((stream, client_address)) = accepted else { continue };
                let proxy = Arc::clone(&proxy);
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let proxy = Arc::clone(&proxy);
                        async move { Ok::<_, Infallible>(proxy.forward(request, client_address).await) }
                    });
                    let served = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    if let Err(error) = served {
                        tracing::debug!(%error, %client_address, "front: connection ended with an error");
                    }
                });
            }
        }
    }
    connections.shutdown().await;
}

impl Proxy {
    async fn forward(
        &self,
        request: Request<Incoming>,
        client_address: SocketAddr,
    ) -> Response<ProxyBody> {
        let Some(host) = request_host(&request) else {
            return not_found();
        };
        let Some(upstream) = (self.routes)(&host) else {
            return not_found();
        };
        let (mut parts, body) = request.into_parts();
        let path_and_query =
            parts.uri.path_and_query().map_or("/", |path_and_query| path_and_query.as_str());
        let Ok(upstream_uri) = format!("http://{upstream}{path_and_query}").parse::<Uri>() else {
            return plain_answer(StatusCode::BAD_REQUEST, "Bad Request");
        };
        let original_host = parts.headers.get(header::HOST).cloned();
        remove_hop_by_hop_headers(&mut parts.headers);
        add_forwarded_headers(&mut parts.headers, client_address, original_host.as_ref(), &host);
        parts.uri = upstream_uri;
        parts.version = hyper::Version::HTTP_11;
        let upstream_request = Request::from_parts(parts, body);
        match self.client.request(upstream_request).await {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                remove_hop_by_hop_headers(&mut parts.headers);
                Response::from_parts(parts, body.boxed())
            }
            Err(error) => {
                let timed_out = std::iter::successors(
                    Some(&error as &(dyn std::error::Error + 'static)),
                    |error| error.source(),
                )
                .any(|error| {
                    error
                        .downcast_ref::<std::io::Error>()
                        .is_some_and(|error| error.kind() == std::io::ErrorKind::TimedOut)
                });
                tracing::debug!(%error, %upstream, %host, "front: upstream failed");
                if timed_out {
                    plain_answer(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout")
                } else {
                    plain_answer(StatusCode::BAD_GATEWAY, "Bad Gateway")
                }
            }
        }
    }
}

/// The request's host, lowercase and without its port: the `Host` header, or the authority of
/// an absolute-form request line.
fn request_host(request: &Request<Incoming>) -> Option<String> {
    let authority = match request.headers().get(header::HOST) {
        Some(value) => value.to_str().ok()?.to_owned(),
        None => request.uri().authority()?.as_str().to_owned(),
    };
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        // An IPv6 literal: "[::1]:8080" -> "::1".
        bracketed.split_once(']')?.0.to_owned()
    } else {
        authority.rsplit_once(':').map_or(authority.as_str(), |(host, _port)| host).to_owned()
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// RFC 9110 section 7.6.1: hop-by-hop fields, and those the `Connection` field names, are not
/// forwarded.
fn remove_hop_by_hop_headers(headers: &mut HeaderMap) {
    let named_by_connection: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named_by_connection {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
}

/// Traefik's forwarded headers (its `forwardedHeaders` middleware, untrusted client: the
/// incoming `X-Forwarded-*` values are replaced, `X-Forwarded-For` gets the client appended).
fn add_forwarded_headers(
    headers: &mut HeaderMap,
    client_address: SocketAddr,
    original_host: Option<&HeaderValue>,
    host: &str,
) {
    let client_ip = client_address.ip().to_string();
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|value| value.to_str().ok()) {
        Some(earlier) if !earlier.is_empty() => format!("{earlier}, {client_ip}"),
        _ => client_ip.clone(),
    };
    let port = original_host
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit_once(':'))
        .map(|(_, port)| port.to_owned())
        .filter(|port| port.chars().all(|character| character.is_ascii_digit()))
        .unwrap_or_else(|| "80".to_owned());
    for (name, value) in [
        ("x-forwarded-for", forwarded_for),
        ("x-forwarded-host", host.to_owned()),
        ("x-forwarded-port", port),
        ("x-forwarded-proto", "http".to_owned()),
        ("x-real-ip", client_ip),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

/// Traefik's answer for a host no router matches: Go's `http.NotFound`, with its newline.
fn not_found() -> Response<ProxyBody> {
    plain_answer(StatusCode::NOT_FOUND, "404 page not found\n")
}

/// A short text answer; Traefik writes a gateway error's status text without a newline.
fn plain_answer(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let body = Full::new(Bytes::from_static(text.as_bytes()))
        .map_err(|never: Infallible| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

//! The reverse proxy: HTTP/1.1 and HTTP/2 from clients (cleartext, or TLS with the certificate
//! chosen by SNI and ALPN `h2`/`http/1.1`), HTTP/1.1 to endpoints. Per request: the current
//! [`Snapshot`] routes it; the proxy tries the backend's endpoints from a random one on, moving on
//! when a connection cannot be made; the request goes with the client's Host, `X-Forwarded-For`
//! (appended), `-Proto`, `-Host`, `-Port` and `X-Real-IP`, hop-by-hop headers removed; a websocket
//! (any `Upgrade`) is spliced through once the endpoint answers 101. 404 when no rule matches, 503
//! when the backend has no ready endpoint, 502 when none could be reached, 504 when the endpoint does
//! not answer in time. One access-log line per request on stdout.

use crate::config::{Backend, Snapshot};
use crate::route::Lookup;
use crate::upstream::{Body, Pool, Sender};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body as _, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rand::Rng;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Limits of one proxied request.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// To open a connection to one endpoint (then the next one is tried).
    pub connect: Duration,
    /// From the request sent to the response's headers.
    pub response: Duration,
    /// For a client to send a request's headers.
    pub client_headers: Duration,
}

impl Default for Timeouts {
    /// nginx's `proxy_connect_timeout` is 60 s; endpoints on a cluster network answer a connect
    /// within milliseconds or never, so 5 s; `proxy_read_timeout` 60 s; `client_header_timeout` 60 s.
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            response: Duration::from_secs(60),
            client_headers: Duration::from_secs(60),
        }
    }
}

/// The proxy: serves what its configuration channel holds at each request.
pub struct Proxy {
    config: watch::Receiver<Arc<Snapshot>>,
    pool: Pool,
    timeouts: Timeouts,
    /// Whether to print the access log (tests and benchmarks may turn it off).
    access_log: bool,
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Headers that belong to one connection and are never forwarded (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

impl Proxy {
    pub fn new(
        config: watch::Receiver<Arc<Snapshot>>,
        timeouts: Timeouts,
        access_log: bool,
    ) -> Arc<Proxy> {
        Arc::new(Proxy {
            config,
            pool: Pool::default(),
            timeouts,
            access_log,
        })
    }

    /// Serves cleartext HTTP on `listener` until the task is dropped.
    pub async fn serve_http(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(self.clone().serve_connection(stream, peer, Scheme::Http));
        }
    }

    /// Serves HTTPS on `listener`: each handshake picks the certificate by SNI from the snapshot
    /// current at that moment.
    pub async fn serve_https(self: Arc<Self>, listener: TcpListener) {
        let acceptor = crate::tls::acceptor(self.config.clone());
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            let this = self.clone();
            let handshake = self.timeouts.client_headers;
            tokio::spawn(async move {
                match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => this.serve_connection(tls, peer, Scheme::Https).await,
                    Ok(Err(e)) => eprintln!("podnet-ingress: TLS handshake with {peer}: {e}"),
                    Err(_) => eprintln!("podnet-ingress: TLS handshake with {peer}: timed out"),
                }
            });
        }
    }

    async fn serve_connection<S>(self: Arc<Self>, stream: S, peer: SocketAddr, scheme: Scheme)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.timeouts.client_headers);
        let this = self.clone();
        let svc = service_fn(move |req| {
            let this = this.clone();
            async move { Ok::<_, Infallible>(this.handle(req, peer, scheme).await) }
        });
        // errors here are the client's (a reset, a malformed request): nothing to answer
        let _ = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), svc)
            .await;
    }

    /// Answers one request.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        scheme: Scheme,
    ) -> Response<Body> {
        let start = Instant::now();
        let host = request_host(&req);
        let line = self.access_log.then(|| {
            format!(
                "{} {} {:?}",
                req.method(),
                req.uri().path_and_query().map_or("/", |p| p.as_str()),
                req.version()
            )
        });
        let snapshot = self.config.borrow().clone();
        let (resp, backend, endpoint) = if !plain_path(req.uri().path()) {
            (
                page(
                    StatusCode::BAD_REQUEST,
                    "the path has a dot segment or an encoded dot or slash",
                ),
                None,
                None,
            )
        } else {
            match snapshot.routes.lookup(&host, req.uri().path()) {
                Lookup::NotFound => (
                    page(
                        StatusCode::NOT_FOUND,
                        &format!(
                            "no rule of the podnet ingress matches host {host:?} and path {:?}",
                            req.uri().path()
                        ),
                    ),
                    None,
                    None,
                ),
                Lookup::Rule(b) | Lookup::Default(b) => {
                    let b = b.clone();
                    let (resp, ep) = self.forward(req, &b, &host, peer, scheme).await;
                    (resp, Some(b), ep)
                }
            }
        };
        if let Some(line) = line {
            // nginx's combined format, then the backend, the endpoint and the time taken
            println!(
                "{} - - [{}] \"{line}\" {} host={host:?} backend={} endpoint={} {:.3}",
                peer.ip(),
                jiff::Timestamp::now().strftime("%d/%b/%Y:%H:%M:%S %z"),
                resp.status().as_u16(),
                backend.as_ref().map_or("-", |b| b.name.as_str()),
                endpoint.map_or_else(|| "-".to_string(), |e| e.to_string()),
                start.elapsed().as_secs_f64(),
            );
        }
        resp
    }

    async fn forward(
        &self,
        mut req: Request<Incoming>,
        backend: &Backend,
        host: &str,
        peer: SocketAddr,
        scheme: Scheme,
    ) -> (Response<Body>, Option<SocketAddr>) {
        if backend.endpoints.is_empty() {
            let msg = format!("the service {} has no ready endpoint", backend.name);
            return (page(StatusCode::SERVICE_UNAVAILABLE, &msg), None);
        }
        let upgrade = wants_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let head = upstream_head(&parts, host, peer, scheme, upgrade);
        // A request without a body can be sent again: on a new connection when a pooled one turns
        // out closed (an endpoint timing out idle keep-alive connections).
        let resendable = body.is_end_stream();
        let mut body = Some(body.boxed());
        let mut next_body = || {
            if resendable {
                Some(empty())
            } else {
                body.take()
            }
        };

        let n = backend.endpoints.len();
        let first = rand::rng().random_range(0..n);
        let mut last_error = String::new();
        for i in 0..n {
            let ep = backend.endpoints[(first + i) % n];
            // an upgrade takes a connection of its own, never a pooled one
            if let Some(mut pooled) = (!upgrade).then(|| self.pool.take(ep)).flatten() {
                let Some(b) = next_body() else { break };
                match self.send(&mut pooled, head.clone(), b).await {
                    Ok(resp) => return (self.finish(resp, pooled, ep, client_upgrade), Some(ep)),
                    Err(Failure::Http(e)) if resendable => last_error = format!("{ep}: {e}"),
                    Err(f) => return (self.failure(f, ep, backend), Some(ep)),
                }
            }
            let mut sender = match self.pool.connect(ep, self.timeouts.connect, upgrade).await {
                Ok(s) => s,
                Err(e) => {
                    last_error = e.to_string();
                    continue; // the next endpoint
                }
            };
            let Some(b) = next_body() else { break };
            return match self.send(&mut sender, head.clone(), b).await {
                Ok(resp) => (self.finish(resp, sender, ep, client_upgrade), Some(ep)),
                Err(f) => (self.failure(f, ep, backend), Some(ep)),
            };
        }
        let msg = format!(
            "no endpoint of {} could be reached: {last_error}",
            backend.name
        );
        (page(StatusCode::BAD_GATEWAY, &msg), None)
    }

    fn failure(&self, f: Failure, ep: SocketAddr, backend: &Backend) -> Response<Body> {
        match f {
            Failure::Timeout => page(
                StatusCode::GATEWAY_TIMEOUT,
                &format!(
                    "{ep} of {} did not answer within {:?}",
                    backend.name, self.timeouts.response
                ),
            ),
            Failure::Http(e) => page(
                StatusCode::BAD_GATEWAY,
                &format!("{ep} of {}: {e}", backend.name),
            ),
        }
    }

    async fn send(
        &self,
        sender: &mut Sender,
        head: http::request::Parts,
        body: Body,
    ) -> Result<Response<Incoming>, Failure> {
        let req = Request::from_parts(head, body);
        match tokio::time::timeout(self.timeouts.response, sender.send_request(req)).await {
            Err(_) => Err(Failure::Timeout),
            Ok(Err(e)) => Err(Failure::Http(e)),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// The endpoint's response to the client: hop-by-hop headers removed, the connection pooled
    /// again, or (101) both sides spliced.
    fn finish(
        &self,
        mut resp: Response<Incoming>,
        sender: Sender,
        ep: SocketAddr,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Response<Body> {
        let upgrading = client_upgrade.is_some();
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(client) = client_upgrade
        {
            let server = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                if let (Ok(c), Ok(s)) = (client.await, server.await) {
                    let _ =
                        tokio::io::copy_bidirectional(&mut TokioIo::new(c), &mut TokioIo::new(s))
                            .await;
                }
            });
            drop(sender);
            let (parts, _) = resp.into_parts();
            return Response::from_parts(parts, empty());
        }
        strip_hop_by_hop(resp.headers_mut(), false);
        if upgrading {
            // its connection may still be taken over: never pooled
            return resp.map(|b| b.boxed());
        }
        let pool = self.pool.clone();
        resp.map(|b| crate::upstream::Returning::new(b, pool, ep, sender).boxed())
    }
}

enum Failure {
    Timeout,
    Http(hyper::Error),
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// The host a request names: the URI's authority (HTTP/2, absolute-form) or the Host header.
fn request_host<B>(req: &Request<B>) -> String {
    req.uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

fn wants_upgrade(h: &HeaderMap) -> bool {
    h.contains_key(header::UPGRADE)
        && h.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// Removes hop-by-hop headers, also those the Connection header names; `keep_upgrade` keeps
/// `Connection: upgrade` and `Upgrade` for a protocol switch.
fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(keep_upgrade && n == header::UPGRADE))
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
    if keep_upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        h.remove(header::UPGRADE);
    }
}

/// The request head sent to an endpoint: HTTP/1.1, origin-form, the client's host kept.
fn upstream_head(
    parts: &http::request::Parts,
    host: &str,
    peer: SocketAddr,
    scheme: Scheme,
    upgrade: bool,
) -> http::request::Parts {
    let (mut head, ()) = Request::new(()).into_parts();
    head.method = parts.method.clone();
    head.version = Version::HTTP_11;
    head.uri = parts
        .uri
        .path_and_query()
        .cloned()
        .map_or_else(|| Uri::from_static("/"), Uri::from);
    let mut h = parts.headers.clone();
    strip_hop_by_hop(&mut h, upgrade);
    if let Ok(v) = HeaderValue::from_str(host) {
        h.insert(header::HOST, v);
    }
    // The client's own X-Forwarded-For is not trusted (ingress-nginx's default): a backend reading
    // the left-most entry would otherwise see whatever the client wrote.
    let client = peer.ip().to_string();
    let xff = client.clone();
    let set = |h: &mut HeaderMap, k: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    set(&mut h, "x-forwarded-for", &xff);
    set(&mut h, "x-real-ip", &client);
    set(&mut h, "x-forwarded-proto", scheme.as_str());
    set(&mut h, "x-forwarded-host", host);
    let port = match (
        scheme,
        host.rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok()),
    ) {
        (_, Some(p)) => p,
        (Scheme::Http, None) => 80,
        (Scheme::Https, None) => 443,
    };
    set(&mut h, "x-forwarded-port", &port.to_string());
    if head.method == Method::CONNECT {
        head.method = Method::GET; // never tunnel arbitrary TCP through an ingress
    }
    head.headers = h;
    head
}

/// A path routed and forwarded as written: no `.` or `..` segment and no encoded dot or slash. A
/// path such as `/app/../internal` would match the rule for `/app` and reach its backend, which may
/// normalise it to `/internal`, a path no rule exposes; it is refused (400) instead, as is anything
/// a backend could decode into one.
fn plain_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    !lower.contains("%2e")
        && !lower.contains("%2f")
        && !lower.contains("%5c")
        && !path.contains('\\')
        && path.split('/').all(|seg| seg != "." && seg != "..")
}

/// A small HTML page for the proxy's own answers.
pub fn page(status: StatusCode, detail: &str) -> Response<Body> {
    let reason = status.canonical_reason().unwrap_or("");
    let detail = detail
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let body = format!(
        "<html>\n<head><title>{code} {reason}</title></head>\n<body>\n<h1>{code} {reason}</h1>\n<p>{detail}</p>\n<hr><p>podnet-ingress</p>\n</body>\n</html>\n",
        code = status.as_u16()
    );
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed(),
        )
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_and_forwarding_headers_come() {
        let req = Request::builder()
            .uri("/a?b=1")
            .header("host", "shop.example.com")
            .header("connection", "keep-alive, x-secret")
            .header("x-secret", "1")
            .header("keep-alive", "timeout=5")
            .header("x-forwarded-for", "198.51.100.1")
            .header("accept", "*/*")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let peer: SocketAddr = "203.0.113.10:5555".parse().unwrap();
        let head = upstream_head(&parts, "shop.example.com", peer, Scheme::Https, false);
        assert_eq!(head.uri, "/a?b=1");
        assert_eq!(head.headers["host"], "shop.example.com");
        // the client's own value is replaced, not trusted
        assert_eq!(head.headers["x-forwarded-for"], "203.0.113.10");
        assert_eq!(head.headers["x-real-ip"], "203.0.113.10");
        assert_eq!(head.headers["x-forwarded-proto"], "https");
        assert_eq!(head.headers["x-forwarded-port"], "443");
        assert_eq!(head.headers["accept"], "*/*");
        for gone in ["connection", "keep-alive", "x-secret"] {
            assert!(!head.headers.contains_key(gone), "{gone}");
        }
    }

    #[test]
    fn websocket_upgrade_headers_are_kept() {
        let req = Request::builder()
            .uri("/ws")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-key", "x")
            .body(())
            .unwrap();
        assert!(wants_upgrade(req.headers()));
        let (parts, ()) = req.into_parts();
        let head = upstream_head(
            &parts,
            "h",
            "127.0.0.1:1".parse().unwrap(),
            Scheme::Http,
            true,
        );
        assert_eq!(head.headers["connection"], "upgrade");
        assert_eq!(head.headers["upgrade"], "websocket");
        assert_eq!(head.headers["sec-websocket-key"], "x");
    }

    #[test]
    fn pages_escape_what_they_quote() {
        let p = page(StatusCode::NOT_FOUND, "<script>");
        assert_eq!(p.status(), 404);
        assert_eq!(p.headers()["content-type"], "text/html; charset=utf-8");
    }
}

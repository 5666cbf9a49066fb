//! The proxy on loopback against backends of its own: routing by host and path, the forwarding
//! headers, 404/503 pages, the next endpoint tried when one refuses, HTTP/2 (cleartext and over
//! TLS), certificates chosen by SNI, a websocket through the proxy, and configuration swapped while
//! requests run without one failing.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use podnet_ingress::config::{Backend, Certs, Snapshot};
use podnet_ingress::proxy::{Proxy, Timeouts};
use podnet_ingress::route::{HostMatch, PathMatch, RouteTable, Rule};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A backend that answers with its name and what it received.
async fn echo_backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| async move {
                    let h = |k: &str| {
                        req.headers()
                            .get(k)
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default()
                    };
                    let body = format!(
                        "backend={name}\npath={}\nhost={}\nxff={}\nproto={}\nreal={}\nconnection={}\n",
                        req.uri(),
                        h("host"),
                        h("x-forwarded-for"),
                        h("x-forwarded-proto"),
                        h("x-real-ip"),
                        h("connection"),
                    );
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(body))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

/// A websocket backend that echoes each message with a prefix.
async fn ws_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(s).await.unwrap();
                while let Some(Ok(m)) = ws.next().await {
                    if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
                        let reply = format!("echo: {}", t.as_str());
                        ws.send(tokio_tungstenite::tungstenite::Message::text(reply))
                            .await
                            .unwrap();
                    }
                }
            });
        }
    });
    addr
}

/// A loopback port nothing listens on.
async fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

fn backend(name: &str, eps: &[SocketAddr]) -> Arc<Backend> {
    Arc::new(Backend {
        name: name.to_string(),
        endpoints: eps.to_vec(),
    })
}

fn rule(host: &str, path: PathMatch, b: &Arc<Backend>) -> Rule<Arc<Backend>> {
    Rule {
        host: HostMatch::parse(host),
        path,
        backend: b.clone(),
    }
}

struct Running {
    http: SocketAddr,
    https: SocketAddr,
    config: watch::Sender<Arc<Snapshot>>,
}

async fn start(snapshot: Snapshot) -> Running {
    let (tx, rx) = watch::channel(Arc::new(snapshot));
    let proxy = Proxy::new(rx, Timeouts::default(), false);
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (h, s) = (http.local_addr().unwrap(), https.local_addr().unwrap());
    tokio::spawn(proxy.clone().serve_http(http));
    tokio::spawn(proxy.serve_https(https));
    Running {
        http: h,
        https: s,
        config: tx,
    }
}

/// One HTTP/1.1 GET on a new connection: status and body.
async fn get(proxy: SocketAddr, host: &str, path: &str, xff: Option<&str>) -> (StatusCode, String) {
    let s = TcpStream::connect(proxy).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::get(path).header("host", host);
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    let resp = send
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn line<'a>(body: &'a str, key: &str) -> &'a str {
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {body}"))
}

#[tokio::test]
async fn routes_by_host_and_path_with_forwarding_headers_and_error_pages() {
    let shop = backend("shop", &[echo_backend("shop").await]);
    let api = backend("api", &[echo_backend("api").await]);
    let wild = backend("wild", &[echo_backend("wild").await]);
    let empty = backend("default/empty:80", &[]);
    let routes = RouteTable::new(
        vec![
            rule("shop.example.com", PathMatch::prefix("/"), &shop),
            rule("shop.example.com", PathMatch::prefix("/api"), &api),
            rule("*.example.com", PathMatch::prefix("/"), &wild),
            rule("", PathMatch::exact("/down"), &empty),
        ],
        None,
    );
    let p = start(Snapshot {
        routes,
        certs: Certs::default(),
    })
    .await;

    let (st, body) = get(
        p.http,
        "shop.example.com",
        "/api/v1?x=1",
        Some("198.51.100.7"),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(line(&body, "backend"), "api");
    assert_eq!(line(&body, "path"), "/api/v1?x=1");
    assert_eq!(line(&body, "host"), "shop.example.com", "Host preserved");
    // the client's own X-Forwarded-For is replaced, not trusted
    assert_eq!(line(&body, "xff"), "127.0.0.1");
    assert_eq!(line(&body, "real"), "127.0.0.1");
    assert_eq!(line(&body, "proto"), "http");
    let (_, body) = get(p.http, "shop.example.com", "/apix", None).await;
    assert_eq!(line(&body, "backend"), "shop", "element-wise prefix");
    let (_, body) = get(p.http, "Other.Example.com:80", "/", None).await;
    assert_eq!(line(&body, "backend"), "wild");

    let (st, body) = get(p.http, "nowhere.test", "/x", None).await;
    assert_eq!(st, 404);
    assert!(
        body.contains("404 Not Found") && body.contains("nowhere.test"),
        "{body}"
    );
    let (st, body) = get(p.http, "nowhere.test", "/down", None).await;
    assert_eq!(st, 503);
    assert!(
        body.contains("default/empty:80 has no ready endpoint"),
        "{body}"
    );
    // a path that matches one rule but could be normalised into another is refused, not forwarded
    for path in [
        "/api/../internal",
        "/api/./x",
        "/api/%2e%2e/internal",
        "/api%2Finternal",
        "/api/..",
    ] {
        let (st, body) = get(p.http, "shop.example.com", path, None).await;
        assert_eq!(st, 400, "{path}: {body}");
    }
    let (st, _) = get(p.http, "shop.example.com", "/api/v1.2/file..txt", None).await;
    assert_eq!(st, 200, "dots inside a segment are fine");
}

#[tokio::test]
async fn a_refusing_endpoint_is_skipped() {
    let b = backend(
        "b",
        &[
            dead_port().await,
            echo_backend("alive").await,
            dead_port().await,
        ],
    );
    let p = start(Snapshot {
        routes: RouteTable::new(vec![rule("", PathMatch::prefix("/"), &b)], None),
        certs: Certs::default(),
    })
    .await;
    // the first endpoint tried is random: enough requests start at each of the three
    for _ in 0..30 {
        let (st, body) = get(p.http, "h", "/", None).await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(line(&body, "backend"), "alive");
    }
    // none answering: 502 naming the backend
    let all_dead = backend("dead", &[dead_port().await]);
    p.config.send_replace(Arc::new(Snapshot {
        routes: RouteTable::new(vec![rule("", PathMatch::prefix("/"), &all_dead)], None),
        certs: Certs::default(),
    }));
    let (st, body) = get(p.http, "h", "/", None).await;
    assert_eq!(st, 502);
    assert!(
        body.contains("no endpoint of dead could be reached"),
        "{body}"
    );
}

#[tokio::test]
async fn http2_cleartext_and_tls_with_the_certificate_chosen_by_sni() {
    let a = backend("a", &[echo_backend("a").await]);
    let b = backend("b", &[echo_backend("b").await]);
    let ca = rcgen::generate_simple_self_signed(vec!["a.example.com".to_string()]).unwrap();
    let cb = rcgen::generate_simple_self_signed(vec!["b.example.com".to_string()]).unwrap();
    let key = |c: &rcgen::CertifiedKey<rcgen::KeyPair>| {
        podnet_ingress::tls::certified_key(
            c.cert.pem().as_bytes(),
            c.signing_key.serialize_pem().as_bytes(),
        )
        .unwrap()
    };
    let mut certs = Certs::default();
    certs.add("a.example.com", key(&ca));
    certs.add("b.example.com", key(&cb));
    let p = start(Snapshot {
        routes: RouteTable::new(
            vec![
                rule("a.example.com", PathMatch::prefix("/"), &a),
                rule("b.example.com", PathMatch::prefix("/"), &b),
            ],
            None,
        ),
        certs,
    })
    .await;

    // HTTP/2 with prior knowledge on the cleartext port
    let s = TcpStream::connect(p.http).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = send
        .send_request(
            Request::get("http://a.example.com/h2c")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert_eq!(line(&body, "backend"), "a");
    assert_eq!(
        line(&body, "host"),
        "a.example.com",
        "HTTP/2's authority becomes the Host"
    );

    // TLS: each name gets its own certificate; ALPN h2
    for (name, cert, want) in [("a.example.com", &ca, "a"), ("b.example.com", &cb, "b")] {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert.der().clone()).unwrap();
        roots.add(cb.cert.der().clone()).unwrap();
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        let s = TcpStream::connect(p.https).await.unwrap();
        let tls = connector
            .connect(name.to_string().try_into().unwrap(), s)
            .await
            .unwrap();
        let (_, session) = tls.get_ref();
        assert_eq!(session.peer_certificates().unwrap()[0], *cert.cert.der());
        assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]));
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        let resp = send
            .send_request(
                Request::get(format!("https://{name}/tls"))
                    .body(Empty::<Bytes>::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = String::from_utf8(
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        assert_eq!(line(&body, "backend"), want);
        assert_eq!(line(&body, "proto"), "https");
    }

    // a name without a certificate gets none (not another tenant's): the handshake fails
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let s = TcpStream::connect(p.https).await.unwrap();
    let err = connector
        .connect("unknown.example".to_string().try_into().unwrap(), s)
        .await
        .expect_err("a handshake for a name without a certificate");
    assert!(
        !err.to_string().contains("UnknownIssuer"),
        "a certificate was offered: {err}"
    );
}

#[tokio::test]
async fn websocket_through_the_proxy() {
    let ws = backend("ws", &[ws_backend().await]);
    let p = start(Snapshot {
        routes: RouteTable::new(vec![rule("", PathMatch::prefix("/ws"), &ws)], None),
        certs: Certs::default(),
    })
    .await;
    let s = TcpStream::connect(p.http).await.unwrap();
    let (mut client, resp) = tokio_tungstenite::client_async(format!("ws://{}/ws", p.http), s)
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    for i in 0..3 {
        client
            .send(tokio_tungstenite::tungstenite::Message::text(format!(
                "hello {i}"
            )))
            .await
            .unwrap();
        let m = client.next().await.unwrap().unwrap();
        assert_eq!(m.into_text().unwrap().as_str(), format!("echo: hello {i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_swapped_under_load_loses_no_request() {
    let one = backend("one", &[echo_backend("one").await]);
    let two = backend("two", &[echo_backend("two").await]);
    let table = |b: &Arc<Backend>| Snapshot {
        routes: RouteTable::new(vec![rule("", PathMatch::prefix("/"), b)], None),
        certs: Certs::default(),
    };
    let p = start(table(&one)).await;
    let addr = p.http;
    // four keep-alive clients, 200 requests each, while the configuration flips between backends
    let clients: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(async move {
                let s = TcpStream::connect(addr).await.unwrap();
                let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                    .await
                    .unwrap();
                tokio::spawn(conn);
                let mut seen = std::collections::BTreeSet::new();
                for _ in 0..200 {
                    send.ready().await.unwrap();
                    let resp = send
                        .send_request(
                            Request::get("/")
                                .header("host", "h")
                                .body(Empty::<Bytes>::new())
                                .unwrap(),
                        )
                        .await
                        .unwrap();
                    assert_eq!(resp.status(), 200);
                    let body = resp.into_body().collect().await.unwrap().to_bytes();
                    seen.insert(line(&String::from_utf8_lossy(&body), "backend").to_string());
                }
                seen
            })
        })
        .collect();
    let flipper = {
        let cfg = p.config.clone();
        tokio::spawn(async move {
            for i in 0..100 {
                cfg.send_replace(Arc::new(table(if i % 2 == 0 { &two } else { &one })));
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        })
    };
    let mut seen = std::collections::BTreeSet::new();
    for c in clients {
        seen.extend(c.await.unwrap());
    }
    flipper.await.unwrap();
    assert!(seen.contains("one"), "{seen:?}");
}

#[tokio::test]
async fn endpoint_connections_are_reused() {
    // a backend that counts the connections it accepts
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from("ok"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    let b = backend("counted", &[addr]);
    let p = start(Snapshot {
        routes: RouteTable::new(vec![rule("", PathMatch::prefix("/"), &b)], None),
        certs: Certs::default(),
    })
    .await;
    // 50 requests one after the other, each on a new client connection
    for _ in 0..50 {
        let (st, body) = get(p.http, "h", "/", None).await;
        assert_eq!((st, body.as_str()), (StatusCode::OK, "ok"));
    }
    let n = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(n <= 5, "{n} backend connections for 50 sequential requests");
}

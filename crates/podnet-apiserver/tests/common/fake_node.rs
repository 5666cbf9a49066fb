//! A fake kubelet for the relay tests: HTTPS with a certificate from the lab CA, the bearer token,
//! `/containerLogs/...` and a v5.channel.k8s.io `/exec/...` websocket with a few scripted commands.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use podnet_apiserver::{Pki, pki};

pub struct FakeNode {
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Clone)]
struct St {
    token: String,
}

fn query(raw: &Option<String>) -> Vec<(String, String)> {
    podnet_apiserver::http::query::Query::parse(raw.as_deref()).0
}

fn authorized(h: &HeaderMap, st: &St) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {}", st.token))
}

async fn logs(
    State(st): State<Arc<St>>,
    Path((_ns, pod, container)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    h: HeaderMap,
) -> Response {
    if !authorized(&h, &st) {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    if pod == "missing" {
        return (StatusCode::NOT_FOUND, format!("pods {pod:?} not found")).into_response();
    }
    let q = query(&q);
    let get = |k: &str| q.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    if get("previous").as_deref() == Some("true") {
        if container != "sidecar" {
            return (
                StatusCode::BAD_REQUEST,
                format!("previous terminated container {container:?} in pod {pod:?} not found"),
            )
                .into_response();
        }
        return "sidecar previous run\n".into_response();
    }
    let stamps = get("timestamps").as_deref() == Some("true");
    let line = |i: usize, text: String| {
        if stamps {
            format!("2026-01-01T00:00:0{i}.000000000Z {text}\n")
        } else {
            format!("{text}\n")
        }
    };
    let mut lines: Vec<String> = (1..=5)
        .map(|i| line(i, format!("{container} line {i}")))
        .collect();
    if let Some(n) = get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        lines = lines.split_off(lines.len().saturating_sub(n));
    }
    let follow = get("follow").as_deref() == Some("true");
    let stream = async_stream(lines, follow, container);
    Response::builder()
        .header("content-type", "text/plain")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn async_stream(
    lines: Vec<String>,
    follow: bool,
    container: String,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        for l in lines {
            let _ = tx.send(Ok(Bytes::from(l))).await;
        }
        if follow {
            for i in 1..=3 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if tx
                    .send(Ok(Bytes::from(format!("{container} follow {i}\n"))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

async fn exec(
    State(st): State<Arc<St>>,
    ws: WebSocketUpgrade,
    RawQuery(q): RawQuery,
    h: HeaderMap,
) -> Response {
    if !authorized(&h, &st) {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    let q = query(&q);
    let command: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    let tty = q.iter().any(|(k, v)| k == "tty" && v == "true");
    ws.protocols(["v5.channel.k8s.io"])
        .on_upgrade(move |socket| session(socket, command, tty))
}

fn frame(ch: u8, data: &[u8]) -> Message {
    let mut v = vec![ch];
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

async fn finish(socket: &mut WebSocket, code: i32, command: &[String]) {
    let status = if code == 0 {
        serde_json::json!({"metadata": {}, "status": "Success"})
    } else {
        serde_json::json!({"metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
    };
    let _ = socket.send(frame(3, status.to_string().as_bytes())).await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
    // wait for the client's close
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = socket.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

async fn session(mut socket: WebSocket, command: Vec<String>, tty: bool) {
    let argv: Vec<&str> = command.iter().map(String::as_str).collect();
    match argv.as_slice() {
        ["echo", rest @ ..] => {
            let _ = socket
                .send(frame(1, format!("{}\n", rest.join(" ")).as_bytes()))
                .await;
            finish(&mut socket, 0, &command).await;
        }
        ["sh", "-c", script] if script.starts_with("exit ") => {
            let code: i32 = script[5..].trim().parse().unwrap_or(1);
            let _ = socket.send(frame(2, b"bye from stderr\n")).await;
            finish(&mut socket, code, &command).await;
        }
        ["cat"] => {
            while let Some(Ok(m)) = socket.recv().await {
                match m {
                    Message::Binary(b) if b.first() == Some(&0) => {
                        let _ = socket.send(frame(1, &b[1..])).await;
                    }
                    Message::Binary(b) if b.as_ref() == [255, 0] => break,
                    Message::Close(_) => return,
                    _ => {}
                }
            }
            finish(&mut socket, 0, &command).await;
        }
        ["sleep", secs] => {
            let secs: u64 = secs.parse().unwrap_or(1);
            let deadline = tokio::time::sleep(Duration::from_secs(secs));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    m = socket.recv() => if m.is_none() { return },
                }
            }
            let _ = socket.send(frame(1, b"slept\n")).await;
            finish(&mut socket, 0, &command).await;
        }
        ["sh"] => {
            let _ = socket.send(frame(1, b"$ ")).await;
            let mut line = String::new();
            while let Some(Ok(m)) = socket.recv().await {
                let Message::Binary(b) = m else {
                    if matches!(m, Message::Close(_)) {
                        return;
                    }
                    continue;
                };
                match b.first() {
                    Some(0) => {
                        for &c in &b[1..] {
                            if c == b'\r' || c == b'\n' {
                                let _ = socket.send(frame(1, b"\r\n")).await;
                                if let Some(code) = line.strip_prefix("exit ") {
                                    let code: i32 = code.trim().parse().unwrap_or(0);
                                    finish(&mut socket, code, &command).await;
                                    return;
                                }
                                let _ = socket
                                    .send(frame(1, format!("you typed: {line}\r\n$ ").as_bytes()))
                                    .await;
                                line.clear();
                            } else {
                                line.push(c as char);
                                if tty {
                                    let _ = socket.send(frame(1, &[c])).await;
                                }
                            }
                        }
                    }
                    Some(255) => {
                        finish(&mut socket, 0, &command).await;
                        return;
                    }
                    _ => {}
                }
            }
        }
        _ => {
            let _ = socket
                .send(frame(
                    2,
                    format!("unknown command {command:?}\n").as_bytes(),
                ))
                .await;
            finish(&mut socket, 127, &command).await;
        }
    }
}

impl FakeNode {
    pub fn start(material: &Pki) -> FakeNode {
        let (cert, key) = pki::issue(
            &material.ca_key_pem,
            "node1",
            &["127.0.0.1".to_string()],
            true,
        )
        .expect("node certificate");
        let certs: Vec<_> = rustls_pemfile::certs(&mut cert.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut key.as_bytes())
            .unwrap()
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let st = Arc::new(St {
            token: material.token.clone(),
        });
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = Router::new()
                    .route("/containerLogs/{ns}/{pod}/{container}", get(logs))
                    .route("/exec/{ns}/{pod}/{container}", get(exec))
                    .with_state(st);
                loop {
                    let (tcp, _) = tokio::select! {
                        r = listener.accept() => r.unwrap(),
                        _ = &mut stopped => return,
                    };
                    let acceptor = acceptor.clone();
                    let app = app.clone();
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let svc = hyper_util::service::TowerToHyperService::new(app);
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                            .await;
                    });
                }
            });
        });
        FakeNode {
            port,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

//! The node's kubelet port (10250): HTTPS with a certificate from the cluster CA, the bearer token the
//! API server presents, and what it relays for kubectl: `/containerLogs/...` (logs, also followed)
//! and `/exec/...` (a `v5.channel.k8s.io` websocket: stdin, stdout, stderr, the exit status, terminal
//! resizes), `/attach/...` (the same protocol, through the container supervisor's attach socket),
//! `/portForward/...` (one TCP connection inside the pod's network namespace per websocket).
//! The contract is the API server's (`podnet_apiserver::node`).

mod attach;
mod portforward;

use crate::pods::Kubelet;
use axum::Router;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use podnet_runtime::crilog::LogOptions;
use podnet_runtime::{ContainerState, ContainerStatus, ExecSpec};
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc;

struct St {
    kubelet: Arc<Kubelet>,
    token: String,
}

/// Serves the kubelet port on `listener` until the process ends.
pub async fn serve(
    kubelet: Arc<Kubelet>,
    listener: tokio::net::TcpListener,
    cert_pem: &str,
    key_pem: &str,
    token: String,
) -> Result<(), String> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("read the serving certificate: {e}"))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| format!("read the serving key: {e}"))?
        .ok_or("the serving key file holds no key")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("serving certificate: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let st = Arc::new(St { kubelet, token });
    let app = Router::new()
        .route("/containerLogs/{ns}/{pod}/{container}", get(logs))
        .route("/exec/{ns}/{pod}/{container}", get(exec))
        .route("/attach/{ns}/{pod}/{container}", get(attach::handler))
        .route("/portForward/{ns}/{pod}", get(portforward::handler))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(st);
    loop {
        let (tcp, _) = listener
            .accept()
            .await
            .map_err(|e| format!("accept on the kubelet port: {e}"))?;
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
}

fn query(raw: &Option<String>) -> Vec<(String, String)> {
    let Some(raw) = raw else { return Vec::new() };
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn authorized(h: &HeaderMap, st: &St) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {}", st.token))
}

/// The newest instance of `container` in pod `ns/pod` and, with `previous`, the one before it.
fn find(
    k: &Kubelet,
    ns: &str,
    pod: &str,
    container: &str,
    previous: bool,
) -> Result<ContainerStatus, (StatusCode, String)> {
    let mut list: Vec<ContainerStatus> = k
        .runtime
        .list_containers()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.record.pod.namespace == ns && c.record.pod.name == pod)
        .collect();
    if list.is_empty() {
        return Err((
            StatusCode::NOT_FOUND,
            format!("pod \"{pod}\" in namespace \"{ns}\" has no containers on this node yet"),
        ));
    }
    list.retain(|c| c.name() == container);
    list.sort_by_key(|c| c.record.spec.attempt);
    let found = if previous {
        list.len().checked_sub(2).map(|i| list[i].clone())
    } else {
        list.last().cloned()
    };
    found.ok_or_else(|| {
        if previous {
            (
                StatusCode::BAD_REQUEST,
                format!("previous terminated container \"{container}\" in pod \"{pod}\" not found"),
            )
        } else {
            (
                StatusCode::NOT_FOUND,
                format!("container \"{container}\" in pod \"{pod}\" is waiting to start"),
            )
        }
    })
}

/// Writes into a channel, so a blocking log reader can feed a streaming response.
struct ChannelWriter(mpsc::Sender<Result<Bytes, std::io::Error>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn logs(
    State(st): State<Arc<St>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    h: HeaderMap,
) -> Response {
    if !authorized(&h, &st) {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    let q = query(&q);
    let get = |k: &str| q.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    let flag = |k: &str| get(k).as_deref() == Some("true");
    let num = |k: &str| get(k).and_then(|v| v.parse::<i64>().ok());
    let c = match find(&st.kubelet, &ns, &pod, &container, flag("previous")) {
        Ok(c) => c,
        Err((code, msg)) => return (code, msg).into_response(),
    };
    let opts = LogOptions {
        tail: num("tailLines").filter(|n| *n >= 0).map(|n| n as usize),
        since_ns: num("sinceSeconds")
            .map(|s| jiff::Timestamp::now().as_nanosecond() as i64 - s * 1_000_000_000),
        timestamps: flag("timestamps"),
        limit_bytes: num("limitBytes").filter(|n| *n > 0).map(|n| n as u64),
        // A finished container's log is read to its end, not followed.
        follow: flag("follow") && c.state == ContainerState::Running,
    };
    let (tx, rx) = mpsc::channel(32);
    let k = st.kubelet.clone();
    let id = c.id().to_string();
    tokio::task::spawn_blocking(move || {
        let gone = tx.clone();
        let mut w = ChannelWriter(tx);
        if let Err(e) = k
            .runtime
            .read_logs(&id, &opts, &mut w, &|| gone.is_closed())
        {
            let _ = gone.blocking_send(Ok(Bytes::from(format!("\nerror reading logs: {e}\n"))));
        }
    });
    Response::builder()
        .header("content-type", "text/plain")
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .expect("valid response")
}

async fn exec(
    State(st): State<Arc<St>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
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
    let flag = |k: &str| q.iter().any(|(a, v)| a == k && v == "true");
    let tty = flag("tty");
    let stdin = flag("input") || flag("stdin");
    let c = match find(&st.kubelet, &ns, &pod, &container, false) {
        Ok(c) if c.state == ContainerState::Running => c,
        Ok(_) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("container {container} is not running"),
            )
                .into_response();
        }
        Err((code, msg)) => return (code, msg).into_response(),
    };
    if command.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "you must specify at least one command for the container",
        )
            .into_response();
    }
    let k = st.kubelet.clone();
    ws.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .on_upgrade(move |socket| session(k, socket, c.id().to_string(), command, tty, stdin))
}

fn frame(ch: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(ch);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

/// Input from the client to the process.
enum Input {
    Data(Vec<u8>),
    Eof,
    Resize(u16, u16),
}

async fn session(
    k: Arc<Kubelet>,
    mut socket: WebSocket,
    id: String,
    command: Vec<String>,
    tty: bool,
    stdin: bool,
) {
    let (out_tx, mut out_rx) = mpsc::channel::<(u8, Vec<u8>)>(64);
    let (in_tx, in_rx) = std::sync::mpsc::channel::<Input>();
    let (done_tx, mut done_rx) = mpsc::channel::<Result<i32, String>>(1);
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let cmd = command.clone();
    std::thread::spawn(move || {
        let r = run_exec(&k, &id, &cmd, tty, stdin, out_tx, in_rx, &stop2);
        let _ = done_tx.blocking_send(r);
    });
    let result = loop {
        tokio::select! {
            Some((ch, data)) = out_rx.recv() => {
                if socket.send(frame(ch, &data)).await.is_err() {
                    stop.store(true, Ordering::SeqCst);
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Binary(b))) => match b.first() {
                    Some(0) => { let _ = in_tx.send(Input::Data(b[1..].to_vec())); }
                    Some(4) => {
                        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b[1..]) {
                            let w = v["Width"].as_u64().unwrap_or(80) as u16;
                            let h = v["Height"].as_u64().unwrap_or(24) as u16;
                            let _ = in_tx.send(Input::Resize(w, h));
                        }
                    }
                    Some(255) if b.get(1) == Some(&0) => { let _ = in_tx.send(Input::Eof); }
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    // The client went away: the process gets EOF and, with a terminal, a hangup.
                    stop.store(true, Ordering::SeqCst);
                    let _ = in_tx.send(Input::Eof);
                }
                _ => {}
            },
            r = done_rx.recv() => break r.unwrap_or_else(|| Err("exec ended".into())),
        }
    };
    // What is still buffered goes out before the status.
    while let Ok((ch, data)) = out_rx.try_recv() {
        let _ = socket.send(frame(ch, &data)).await;
    }
    let status = match result {
        Ok(0) => serde_json::json!({"metadata": {}, "status": "Success"}),
        Ok(code) => serde_json::json!({"metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}}),
        Err(e) => {
            serde_json::json!({"metadata": {}, "status": "Failure", "message": e, "reason": "InternalError"})
        }
    };
    let _ = socket.send(frame(3, status.to_string().as_bytes())).await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
}

/// The blocking half of an exec: the process, threads copying its output out and input in.
#[allow(clippy::too_many_arguments)]
fn run_exec(
    k: &Kubelet,
    id: &str,
    command: &[String],
    tty: bool,
    stdin: bool,
    out: mpsc::Sender<(u8, Vec<u8>)>,
    input: std::sync::mpsc::Receiver<Input>,
    stop: &AtomicBool,
) -> Result<i32, String> {
    // kubectl sends the terminal's size right after the streams open: a process started before it
    // arrives would see a 0x0 terminal (`ps` cut at 80 columns), so wait a moment for it. Anything
    // else that comes first is kept for the process.
    let mut early = std::collections::VecDeque::new();
    let mut size = None;
    if tty {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match input.recv_timeout(left) {
                Ok(Input::Resize(w, h)) => {
                    size = Some((w, h));
                    break;
                }
                Ok(other) => early.push_back(other),
                Err(_) => break,
            }
        }
    }
    let mut p = k
        .runtime
        .exec(
            id,
            &ExecSpec {
                args: command.to_vec(),
                env: vec![],
                cwd: None,
                user: None,
                tty,
                stdin,
                size,
            },
        )
        .map_err(|e| e.to_string())?;
    let mut readers = Vec::new();
    let pump = |mut r: Box<dyn Read + Send>, ch: u8, out: mpsc::Sender<(u8, Vec<u8>)>| {
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if out.blocking_send((ch, buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
        })
    };
    let mut writer: Option<Box<dyn Write + Send>> = None;
    if let Some(pty) = p.pty.as_ref() {
        // The original stays with the process for resizes.
        let dup = || {
            pty.try_clone()
                .map_err(|e| format!("duplicate the terminal: {e}"))
        };
        readers.push(pump(Box::new(dup()?), 1, out.clone()));
        writer = Some(Box::new(dup()?));
    }
    if let Some(o) = p.stdout.take() {
        readers.push(pump(Box::new(o), 1, out.clone()));
    }
    if let Some(e) = p.stderr.take() {
        readers.push(pump(Box::new(e), 2, out.clone()));
    }
    if let Some(i) = p.stdin.take() {
        writer = Some(Box::new(i));
    }
    // Input arrives until EOF; the process's end ends the wait.
    let code = loop {
        let next = match early.pop_front() {
            Some(i) => Ok(i),
            None => input.recv_timeout(std::time::Duration::from_millis(50)),
        };
        match next {
            Ok(Input::Data(d)) => {
                if let Some(w) = writer.as_mut() {
                    let _ = w.write_all(&d);
                    let _ = w.flush();
                }
            }
            Ok(Input::Eof) => {
                if tty {
                    // A terminal's EOF is ^D typed at it.
                    if let Some(w) = writer.as_mut() {
                        let _ = w.write_all(&[4]);
                    }
                } else {
                    writer = None;
                }
                if stop.load(Ordering::SeqCst) {
                    writer = None;
                }
            }
            Ok(Input::Resize(w, h)) => {
                let _ = p.resize(w, h);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                writer = None;
            }
        }
        if let Some(code) = p.try_wait().map_err(|e| e.to_string())? {
            break code;
        }
        if stop.load(Ordering::SeqCst) && writer.is_none() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p.runc_pid() as i32),
                nix::sys::signal::Signal::SIGHUP,
            );
        }
    };
    drop(writer);
    // Output still in flight is read for a moment; a background process that keeps the pipe open
    // must not hold the session.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    while readers.iter().any(|r| !r.is_finished()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Ok(code)
}

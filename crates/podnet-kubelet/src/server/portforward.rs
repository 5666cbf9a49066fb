//! `/portForward/{ns}/{pod}?port=P`: one forwarded TCP connection to `localhost:P` inside the pod's
//! network namespace, over a websocket (the contract is `podnet_apiserver::node`): channel 0 the
//! bytes, `[255, 0]` a half-close, channel 1 an error worded as kubelet and containerd word it.

use super::{St, authorized, frame, query};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use podnet_runtime::{SandboxRecord, SandboxState};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a connection inside the pod may take to establish.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn handler(
    State(st): State<Arc<St>>,
    Path((ns, pod)): Path<(String, String)>,
    ws: WebSocketUpgrade,
    RawQuery(q): RawQuery,
    h: HeaderMap,
) -> Response {
    if !authorized(&h, &st) {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    let q = query(&q);
    let port = q
        .iter()
        .find(|(k, _)| k == "port")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                format!("unable to parse \"{port}\" as a port"),
            )
                .into_response();
        }
    };
    let k = st.kubelet.clone();
    let (ns2, pod2) = (ns.clone(), pod.clone());
    let sandbox = tokio::task::spawn_blocking(move || {
        k.runtime
            .list_sandboxes()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| {
                s.state == SandboxState::Ready
                    && s.record.pod.namespace == ns2
                    && s.record.pod.name == pod2
            })
            .max_by_key(|s| s.record.attempt)
            .map(|s| s.record)
    })
    .await
    .ok()
    .flatten();
    let Some(sandbox) = sandbox else {
        return (
            StatusCode::NOT_FOUND,
            format!("pod \"{pod}\" in namespace \"{ns}\" has no running sandbox on this node"),
        )
            .into_response();
    };
    ws.protocols(["v5.channel.k8s.io"])
        .on_upgrade(move |socket| session(socket, sandbox, port))
}

/// An OS error as Go prints it (`connection refused`).
fn go_words(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_lowercase(),
        None => e.to_string(),
    }
}

/// Connects to `localhost:port` from a short-lived thread inside `netns` (IPv4 first, then IPv6,
/// as containerd does); the connected socket is handed back to the caller.
fn dial_in(sandbox: &SandboxRecord, port: u16) -> Result<std::net::TcpStream, String> {
    let dial = move || {
        let v4 = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let v6 = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
        std::net::TcpStream::connect_timeout(&v4, DIAL_TIMEOUT).or_else(|e4| {
            std::net::TcpStream::connect_timeout(&v6, DIAL_TIMEOUT).map_err(|e6| {
                format!(
                    "IPv4: dial tcp4 127.0.0.1:{port}: connect: {} IPv6 dial tcp6 [::1]:{port}: connect: {} ",
                    go_words(&e4),
                    go_words(&e6)
                )
            })
        })
    };
    let Some(path) = &sandbox.netns else {
        // hostNetwork: the node's own namespace, which is this process's.
        return dial().map_err(|e| format!("failed to connect to localhost:{port}, {e}"));
    };
    let ns = podnet_netns::NetNs::open(path).map_err(|e| {
        format!(
            "failed to execute portforward in network namespace {:?}: {e}",
            path.display().to_string()
        )
    })?;
    ns.run(dial)
        .map_err(|e| format!("failed to execute portforward in network namespace: {e}"))?
        .map_err(|e| {
            format!(
                "failed to execute portforward in network namespace {:?}: failed to connect to localhost:{port} inside namespace {:?}, {e}",
                path.display().to_string(),
                sandbox.id
            )
        })
}

async fn close(mut socket: WebSocket) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
}

async fn session(mut socket: WebSocket, sandbox: SandboxRecord, port: u16) {
    let sb = sandbox.clone();
    let dialed = tokio::task::spawn_blocking(move || dial_in(&sb, port))
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
        .and_then(|s| {
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
            tokio::net::TcpStream::from_std(s).map_err(|e| e.to_string())
        });
    let tcp = match dialed {
        Ok(t) => t,
        Err(e) => {
            // kubelet's words around the runtime's (the CRI streaming server names the sandbox).
            let msg = format!(
                "error forwarding port {port} to pod {}, uid : {e}",
                sandbox.id
            );
            let _ = socket.send(frame(1, msg.as_bytes())).await;
            close(socket).await;
            return;
        }
    };
    let (mut rd, mut wr) = tcp.into_split();
    let mut buf = vec![0u8; 32 * 1024];
    let mut pod_open = true;
    let mut client_open = true;
    while pod_open || client_open {
        tokio::select! {
            n = rd.read(&mut buf), if pod_open => match n {
                Ok(0) | Err(_) => {
                    pod_open = false;
                    if socket.send(Message::Binary(Bytes::from_static(&[255, 0]))).await.is_err() {
                        return;
                    }
                }
                Ok(n) => {
                    if socket.send(frame(0, &buf[..n])).await.is_err() {
                        return;
                    }
                }
            },
            m = socket.recv() => match m {
                Some(Ok(Message::Binary(b))) => match b.first() {
                    // A write that fails means the other end is gone: stop sending there.
                    Some(0) if client_open && wr.write_all(&b[1..]).await.is_err() => {
                        client_open = false;
                    }
                    Some(255) if b.get(1) == Some(&0) => {
                        client_open = false;
                        let _ = wr.shutdown().await;
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            }
        }
    }
    close(socket).await;
}

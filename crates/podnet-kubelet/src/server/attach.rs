//! `/attach/{ns}/{pod}/{container}`: `kubectl attach` through the container supervisor's attach
//! socket (`podnet_runtime::attach`), over the same `v5.channel.k8s.io` websocket as exec: the
//! container's output from now on (1 stdout, 2 stderr), input to its stdin (0, when the container
//! has `stdin: true`), terminal sizes (4, when it has `tty: true`), `[255, 0]` the end of this
//! session's input, and on 3 a Success status when the container ends (no exit code: kubelet's attach
//! reports none). A client that leaves detaches; the container goes on.

use super::{St, authorized, find, frame, query};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use podnet_runtime::ContainerState;
use podnet_runtime::attach::{self, EXIT, STDERR, STDOUT, take_frame};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(super) async fn handler(
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
    let flag = |k: &str| q.iter().any(|(a, v)| a == k && v == "true");
    let (stdin, stdout, stderr) = (flag("stdin"), flag("stdout"), flag("stderr"));
    let k = st.kubelet.clone();
    let found = tokio::task::spawn_blocking(move || {
        let c = find(&k, &ns, &pod, &container, false)?;
        if c.state != ContainerState::Running {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("container {container} is not running"),
            ));
        }
        let sock = k.runtime.attach(c.id()).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("container {container} offers no attach (its supervisor predates it): {e}"),
            )
        })?;
        Ok((c, sock))
    })
    .await;
    let (c, sock) = match found {
        Ok(Ok(v)) => v,
        Ok(Err((code, msg))) => return (code, msg).into_response(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    if let Err(e) = sock.set_nonblocking(true) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    let sock = match tokio::net::UnixStream::from_std(sock) {
        Ok(s) => s,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let takes_input = stdin && c.record.spec.stdin;
    ws.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .on_upgrade(move |socket| session(socket, sock, takes_input, stdout, stderr))
}

async fn session(
    mut socket: WebSocket,
    sock: tokio::net::UnixStream,
    stdin: bool,
    stdout: bool,
    stderr: bool,
) {
    let (mut rd, mut wr) = sock.into_split();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 32 * 1024];
    // A session without input never half-closes: with stdinOnce that would close the container's
    // stdin for a session that never meant to use it.
    let mut input_open = stdin;
    'run: loop {
        tokio::select! {
            n = rd.read(&mut chunk) => match n {
                Ok(0) | Err(_) => break 'run,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    loop {
                        match take_frame(&mut buf) {
                            Ok(Some((STDOUT, d))) if stdout => {
                                if socket.send(frame(1, &d)).await.is_err() { return; }
                            }
                            Ok(Some((STDERR, d))) if stderr => {
                                if socket.send(frame(2, &d)).await.is_err() { return; }
                            }
                            // The container ended: so does the session.
                            Ok(Some((EXIT, _))) => break 'run,
                            Ok(Some(_)) => {}
                            Ok(None) => break,
                            Err(_) => break 'run,
                        }
                    }
                }
            },
            m = socket.recv() => match m {
                Some(Ok(Message::Binary(b))) => match b.first() {
                    // A write that fails means the other end is gone: stop sending there.
                    Some(0) if input_open
                        && wr.write_all(&attach::frame(attach::STDIN, &b[1..])).await.is_err() => {
                        input_open = false;
                    }
                    Some(4) => {
                        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b[1..]) {
                            let w = v["Width"].as_u64().unwrap_or(80).min(u16::MAX.into()) as u16;
                            let h = v["Height"].as_u64().unwrap_or(24).min(u16::MAX.into()) as u16;
                            let mut size = w.to_be_bytes().to_vec();
                            size.extend_from_slice(&h.to_be_bytes());
                            let _ = wr.write_all(&attach::frame(attach::RESIZE, &size)).await;
                        }
                    }
                    Some(255) if b.get(1) == Some(&0) && input_open => {
                        input_open = false;
                        let _ = wr.shutdown().await;
                    }
                    _ => {}
                },
                // The client detached; the container goes on.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            }
        }
    }
    // Success whatever the exit code, as kubelet's attach answers (CRI attach reports none): kubectl
    // takes `run -i`'s exit code from the pod's status, and reads a Failure here as "couldn't
    // attach", printing the output a second time from the log.
    let status = serde_json::json!({"metadata": {}, "status": "Success"});
    let _ = socket.send(frame(3, status.to_string().as_bytes())).await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
}

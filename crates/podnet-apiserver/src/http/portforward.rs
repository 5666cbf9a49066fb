//! `pods/portforward`: the API server ends kubectl's SPDY/3.1 session here and relays each forwarded
//! connection to the pod's node as one websocket (the node contract in [`crate::node`]).
//!
//! kubectl 1.35 first asks for a websocket with subprotocol `SPDY/3.1+portforward.k8s.io` and speaks
//! SPDY inside its binary messages (a byte stream: a message may hold part of a frame or several);
//! a server that refuses gets a plain `Upgrade: SPDY/3.1` POST. Both are served. kubectl is the SPDY
//! client: per local connection it opens an error stream and a data stream, both with headers
//! `streamType`, `port` and `requestID`; it reads the error stream to its end and prints what it got.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::request::Parts;
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, Stream, StreamExt};
use podnet_apimachinery::ApiError;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::AppState;
use super::respond::Resp;
use crate::node::{ExecSession, Frame as WsFrame, NodeConnector, NodeTarget, PortForwardRequest};
use crate::spdy::{self, Decoder, Encoder, Frame, Headers};

/// The websocket subprotocol of tunneled SPDY.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// Streams of one session waiting for their partner; a client that opens more without pairing
/// them is refused.
const MAX_PENDING: usize = 1024;

pub async fn portforward(
    st: &Arc<AppState>,
    ns: &str,
    name: &str,
    parts: &mut Parts,
    target: NodeTarget,
) -> Result<Resp, ApiError> {
    let connector = st.api.cfg.node_connector.clone();
    let pod = (ns.to_string(), name.to_string());
    let offered: Vec<String> = parts
        .headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
        .collect();
    let spdy_upgrade = parts
        .headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("SPDY/3.1"));
    if offered.iter().any(|p| p == TUNNEL_PROTOCOL) {
        let upgrade = WebSocketUpgrade::from_request_parts(parts, &())
            .await
            .map_err(|e| ApiError::bad_request(format!("unable to upgrade connection: {e}")))?;
        return Ok(upgrade
            .protocols([TUNNEL_PROTOCOL])
            .on_upgrade(move |ws| tunneled(ws, connector, target, pod)));
    }
    if spdy_upgrade {
        let on_upgrade = parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .ok_or_else(|| ApiError::bad_request("unable to upgrade connection: not upgradable"))?;
        tokio::spawn(async move {
            if let Ok(io) = on_upgrade.await {
                let (r, w) = tokio::io::split(hyper_util::rt::TokioIo::new(io));
                plain(r, w, connector, target, pod).await;
            }
        });
        return Ok(http::Response::builder()
            .status(101)
            .header(http::header::CONNECTION, "Upgrade")
            .header(http::header::UPGRADE, "SPDY/3.1")
            .header("X-Stream-Protocol-Version", "portforward.k8s.io")
            .body(axum::body::Body::empty())
            .expect("valid response"));
    }
    Err(ApiError::bad_request(format!(
        "Upgrade request required: port-forward speaks SPDY/3.1 (a websocket with subprotocol {TUNNEL_PROTOCOL}, or Upgrade: SPDY/3.1)"
    )))
}

/// SPDY inside websocket binary messages.
async fn tunneled(
    ws: WebSocket,
    connector: Arc<dyn NodeConnector>,
    target: NodeTarget,
    pod: (String, String),
) {
    let (mut sink, source) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(async move {
        let mut enc = Encoder::default();
        let mut buf = BytesMut::new();
        while let Some(f) = out_rx.recv().await {
            buf.clear();
            if enc.encode(&f, &mut buf).is_err() {
                break;
            }
            if sink
                .send(Message::Binary(buf.split().freeze()))
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = sink.close().await;
    });
    // Text or a close ends the input; pings are answered by the websocket layer.
    let input = source
        .take_while(|m| {
            std::future::ready(matches!(
                m,
                Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))
            ))
        })
        .filter_map(|m| {
            std::future::ready(match m {
                Ok(Message::Binary(b)) => Some(b),
                _ => None,
            })
        });
    session(Box::pin(input), out_tx, connector, target, pod).await;
    let _ = writer.await;
}

/// SPDY directly on the upgraded connection.
async fn plain<R, W>(
    r: R,
    mut w: W,
    connector: Arc<dyn NodeConnector>,
    target: NodeTarget,
    pod: (String, String),
) where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let (out_tx, mut out_rx) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(async move {
        let mut enc = Encoder::default();
        let mut buf = BytesMut::new();
        while let Some(f) = out_rx.recv().await {
            buf.clear();
            if enc.encode(&f, &mut buf).is_err() || w.write_all(&buf).await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    });
    let input = tokio_util_stream(r);
    session(Box::pin(input), out_tx, connector, target, pod).await;
    let _ = writer.await;
}

/// Reads an `AsyncRead` as a stream of chunks until EOF or an error.
fn tokio_util_stream<R: AsyncRead + Send + Unpin + 'static>(
    r: R,
) -> impl Stream<Item = Bytes> + Send {
    futures_util::stream::unfold(r, |mut r| async move {
        let mut buf = BytesMut::with_capacity(32 * 1024);
        match tokio::io::AsyncReadExt::read_buf(&mut r, &mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(_) => Some((buf.freeze(), r)),
        }
    })
}

/// One forwarded connection while its two streams arrive.
#[derive(Default)]
struct Pair {
    port: u16,
    data: Option<u32>,
    error: Option<u32>,
    data_rx: Option<mpsc::Receiver<Bytes>>,
    reset_rx: Option<oneshot::Receiver<()>>,
}

/// What the session keeps per data stream: where its bytes go, and how to cut it short.
struct Inbound {
    tx: Option<mpsc::Sender<Bytes>>,
    reset: Option<oneshot::Sender<()>>,
}

/// Checks a new stream's headers as kubelet does; returns (requestID, port, is data stream).
fn classify(stream_id: u32, h: &Headers) -> Result<(String, u16, bool), String> {
    let port = h
        .get("port")
        .filter(|p| !p.is_empty())
        .ok_or("\"port\" header is required")?;
    let port: u16 = port
        .parse()
        .map_err(|e| format!("unable to parse \"{port}\" as a port: {e}"))?;
    if port < 1 {
        return Err(format!("port \"{port}\" must be > 0"));
    }
    let kind = h
        .get("streamtype")
        .filter(|p| !p.is_empty())
        .ok_or("\"streamType\" header is required")?;
    let data = match kind {
        "data" => true,
        "error" => false,
        other => return Err(format!("invalid stream type \"{other}\"")),
    };
    // Old clients sent no request id: their streams come as consecutive odd ids, error first.
    let id = match h.get("requestid").filter(|r| !r.is_empty()) {
        Some(r) => r.to_string(),
        None if data => stream_id.saturating_sub(2).to_string(),
        None => stream_id.to_string(),
    };
    Ok((id, port, data))
}

async fn session(
    mut input: std::pin::Pin<Box<dyn Stream<Item = Bytes> + Send>>,
    out: mpsc::Sender<Frame>,
    connector: Arc<dyn NodeConnector>,
    target: NodeTarget,
    pod: (String, String),
) {
    let mut dec = Decoder::default();
    let mut buf = BytesMut::new();
    let mut pending: HashMap<String, Pair> = HashMap::new();
    let mut inbound: HashMap<u32, Inbound> = HashMap::new();
    let mut forwards = JoinSet::new();
    let mut last_stream = 0u32;
    'read: while let Some(chunk) = input.next().await {
        buf.extend_from_slice(&chunk);
        loop {
            let frame = match dec.decode(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!("port-forward to pod {}/{}: {e}", pod.0, pod.1);
                    let _ = out
                        .send(Frame::GoAway {
                            last_good_stream_id: last_stream,
                            status: spdy::PROTOCOL_ERROR,
                        })
                        .await;
                    break 'read;
                }
            };
            match frame {
                Frame::SynStream {
                    stream_id, headers, ..
                } => {
                    last_stream = last_stream.max(stream_id);
                    let (rid, port, data) = match classify(stream_id, &headers) {
                        Ok(c) if pending.len() < MAX_PENDING => c,
                        _ => {
                            let _ = out
                                .send(Frame::RstStream {
                                    stream_id,
                                    status: spdy::REFUSED_STREAM,
                                })
                                .await;
                            continue;
                        }
                    };
                    let pair = pending.entry(rid.clone()).or_default();
                    let taken = if data { pair.data } else { pair.error };
                    if taken.is_some() {
                        let _ = out
                            .send(Frame::RstStream {
                                stream_id,
                                status: spdy::PROTOCOL_ERROR,
                            })
                            .await;
                        continue;
                    }
                    pair.port = port;
                    if data {
                        let (tx, rx) = mpsc::channel(16);
                        let (reset_tx, reset_rx) = oneshot::channel();
                        pair.data = Some(stream_id);
                        pair.data_rx = Some(rx);
                        pair.reset_rx = Some(reset_rx);
                        inbound.insert(
                            stream_id,
                            Inbound {
                                tx: Some(tx),
                                reset: Some(reset_tx),
                            },
                        );
                    } else {
                        pair.error = Some(stream_id);
                    }
                    let _ = out
                        .send(Frame::SynReply {
                            stream_id,
                            fin: false,
                            headers: Headers::default(),
                        })
                        .await;
                    if let (Some(_), Some(_)) = (pair.data, pair.error) {
                        let p = pending.remove(&rid).expect("pair present");
                        let req = PortForwardRequest {
                            namespace: pod.0.clone(),
                            pod: pod.1.clone(),
                            port: p.port,
                        };
                        forwards.spawn(forward(
                            connector.clone(),
                            target.clone(),
                            req,
                            p,
                            out.clone(),
                        ));
                    }
                }
                Frame::Data {
                    stream_id,
                    fin,
                    data,
                } => {
                    if let Some(i) = inbound.get_mut(&stream_id) {
                        if !data.is_empty()
                            && let Some(tx) = &i.tx
                            && tx.send(data).await.is_err()
                        {
                            i.tx = None;
                        }
                        if fin {
                            i.tx = None;
                        }
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    if let Some(mut i) = inbound.remove(&stream_id)
                        && let Some(r) = i.reset.take()
                    {
                        let _ = r.send(());
                    }
                }
                Frame::Ping(id) => {
                    let _ = out.send(Frame::Ping(id)).await;
                }
                Frame::GoAway { .. } => break 'read,
                _ => {}
            }
        }
        // Forwards that ended free their entries.
        while forwards.try_join_next().is_some() {}
        inbound.retain(|_, i| i.reset.as_ref().is_some_and(|r| !r.is_closed()));
    }
    forwards.abort_all();
}

/// One forwarded connection: a websocket to the node, bytes copied between it and the SPDY streams.
async fn forward(
    connector: Arc<dyn NodeConnector>,
    target: NodeTarget,
    req: PortForwardRequest,
    pair: Pair,
    out: mpsc::Sender<Frame>,
) {
    let (Some(data_id), Some(error_id), Some(mut data_rx), Some(mut reset_rx)) =
        (pair.data, pair.error, pair.data_rx, pair.reset_rx)
    else {
        return;
    };
    let fin = |stream_id: u32| Frame::Data {
        stream_id,
        fin: true,
        data: Bytes::new(),
    };
    let ExecSession {
        to_node,
        mut from_node,
    } = match connector.port_forward(target, req).await {
        Ok(s) => s,
        Err(e) => {
            let _ = out
                .send(Frame::Data {
                    stream_id: error_id,
                    fin: false,
                    data: Bytes::from(e.to_string()),
                })
                .await;
            let _ = out.send(fin(data_id)).await;
            let _ = out.send(fin(error_id)).await;
            return;
        }
    };
    let mut client_open = true;
    let mut data_done = false;
    let mut reset = false;
    loop {
        tokio::select! {
            d = data_rx.recv(), if client_open => match d {
                Some(b) => {
                    let mut v = Vec::with_capacity(b.len() + 1);
                    v.push(0);
                    v.extend_from_slice(&b);
                    if to_node.send(WsFrame::Binary(Bytes::from(v))).await.is_err() {
                        break;
                    }
                }
                None => {
                    client_open = false;
                    let _ = to_node.send(WsFrame::Binary(Bytes::from_static(&[255, 0]))).await;
                }
            },
            _ = &mut reset_rx, if !reset => {
                reset = true;
                break;
            }
            f = from_node.recv() => match f {
                Some(WsFrame::Binary(b)) => match b.first() {
                    Some(0) if !data_done => {
                        let _ = out.send(Frame::Data { stream_id: data_id, fin: false, data: b.slice(1..) }).await;
                    }
                    Some(1) => {
                        let _ = out.send(Frame::Data { stream_id: error_id, fin: false, data: b.slice(1..) }).await;
                    }
                    Some(255) if b.get(1) == Some(&0) && !data_done => {
                        data_done = true;
                        let _ = out.send(fin(data_id)).await;
                    }
                    _ => {}
                },
                Some(WsFrame::Close(_)) | None => break,
                Some(_) => {}
            }
        }
    }
    if !data_done && !reset {
        let _ = out.send(fin(data_id)).await;
    }
    let _ = out.send(fin(error_id)).await;
}

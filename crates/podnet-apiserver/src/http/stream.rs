//! `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`: validate against the pod, then
//! relay to its node.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::http::request::Parts;
use futures_util::{SinkExt, StreamExt};
use podnet_apimachinery::resources;
use podnet_apimachinery::{ApiError, object};
use serde_json::Value;

use super::AppState;
use super::query::Query;
use super::respond::{self, Resp};
use crate::node::{AttachRequest, ExecRequest, Frame, LogRequest, NodeError, NodeTarget};

/// The exec subprotocols podnet relays (kubectl 1.35 offers only v5).
const PROTOCOLS: &[&str] = &["v5.channel.k8s.io"];

fn node_error(e: NodeError) -> ApiError {
    match e {
        NodeError::Status { code: 404, message } => ApiError {
            code: 404,
            reason: "NotFound",
            message,
            details: None,
        },
        NodeError::Status { code, message } if (400..500).contains(&code) => {
            ApiError::bad_request(message)
        }
        NodeError::Status { message, .. } => ApiError::internal(message),
        NodeError::Unreachable(m) => ApiError::internal(format!("error dialing backend: {m}")),
    }
}

/// The pod, the container to use and the node to ask.
fn locate(
    st: &AppState,
    ns: &str,
    name: &str,
    container: Option<&str>,
    _verb: &str,
) -> Result<(String, NodeTarget), ApiError> {
    let pods = resources::find("", "v1", "pods").expect("pods are served");
    let pod = st.api.get(pods, ns, name)?;
    let containers: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default();
    // init and ephemeral containers may be named too (kubectl debug attaches to one)
    let inits: Vec<String> = ["/spec/initContainers", "/spec/ephemeralContainers"]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(String::from))
        .collect();
    let container = match container.filter(|c| !c.is_empty()) {
        Some(c) if containers.iter().chain(&inits).any(|x| x == c) => c.to_string(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )));
        }
    };
    Ok((container, node_of(st, &pod, name)?))
}

/// The node a pod runs on, and where its kubelet port listens.
fn node_of(st: &AppState, pod: &Value, name: &str) -> Result<NodeTarget, ApiError> {
    let node = object::str_at(pod, "spec.nodeName").unwrap_or_default();
    if node.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let nodes = resources::find("", "v1", "nodes").expect("nodes are served");
    let n = st
        .api
        .get(nodes, "", node)
        .map_err(|_| ApiError::bad_request(format!("node {node:?} of pod {name} not found")))?;
    let address = n
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .find(|x| x["type"] == "InternalIP")
                .or_else(|| a.first())
        })
        .and_then(|x| x.get("address").and_then(Value::as_str))
        .ok_or_else(|| ApiError::bad_request(format!("node {node:?} has no address")))?
        .to_string();
    let port = n
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .filter(|p| *p > 0 && *p < 65536)
        .unwrap_or(10250) as u16;
    Ok(NodeTarget {
        name: node.to_string(),
        address,
        port,
    })
}

/// `pods/portforward`: the pod must exist and be on a node; the ports come in the SPDY streams.
pub async fn portforward(
    st: &Arc<AppState>,
    ns: &str,
    name: &str,
    parts: &mut Parts,
) -> Result<Resp, ApiError> {
    let pods = resources::find("", "v1", "pods").expect("pods are served");
    let pod = st.api.get(pods, ns, name)?;
    let target = node_of(st, &pod, name)?;
    super::portforward::portforward(st, ns, name, parts, target).await
}

pub async fn logs(st: &Arc<AppState>, ns: &str, name: &str, q: &Query) -> Result<Resp, ApiError> {
    let (container, target) = locate(st, ns, name, q.get("container"), "log")?;
    let non_negative = |k: &str| -> Result<Option<i64>, ApiError> {
        match q.int(k)? {
            Some(n) if n < 0 => Err(ApiError::invalid(
                "PodLogOptions",
                "",
                "",
                &[podnet_apimachinery::FieldError::invalid(
                    k,
                    n,
                    "must be greater than or equal to 0",
                )],
            )),
            other => Ok(other),
        }
    };
    let req = LogRequest {
        namespace: ns.to_string(),
        pod: name.to_string(),
        container,
        follow: q.flag("follow"),
        previous: q.flag("previous"),
        timestamps: q.flag("timestamps"),
        tail_lines: non_negative("tailLines")?,
        limit_bytes: non_negative("limitBytes")?,
        since_seconds: non_negative("sinceSeconds")?,
    };
    let stream = st
        .api
        .cfg
        .node_connector
        .logs(target, req)
        .await
        .map_err(node_error)?;
    Ok(respond::text(200, Body::from_stream(stream)))
}

pub async fn exec(
    st: &Arc<AppState>,
    ns: &str,
    name: &str,
    parts: &mut Parts,
    q: &Query,
) -> Result<Resp, ApiError> {
    // The pod checks come first, as on a real API server: kubectl falls back from a refused websocket
    // to SPDY, and the answer to that second request is the one it prints, so it must name the real
    // problem ("does not have a host assigned"), not the protocol.
    let (container, target) = locate(st, ns, name, q.get("container"), "exec")?;
    let upgrade = ws_upgrade(parts, "exec").await?;
    let command = q.all("command");
    if command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    let tty = q.flag("tty");
    let req = ExecRequest {
        namespace: ns.to_string(),
        pod: name.to_string(),
        container,
        command,
        stdin: q.flag("stdin") || q.flag("input"),
        stdout: q.flag("stdout") || q.flag("output"),
        stderr: q.flag("stderr") || q.flag("error"),
        tty,
    };
    if !(req.stdin || req.stdout || req.stderr) {
        return Err(ApiError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    if tty && req.stderr {
        return Err(ApiError::bad_request("stderr cannot be requested with tty"));
    }
    // connect to the node first: failures are still plain HTTP errors for kubectl
    let session = st
        .api
        .cfg
        .node_connector
        .exec(target, req)
        .await
        .map_err(node_error)?;
    let resp = upgrade
        .protocols(PROTOCOLS.iter().copied())
        .on_upgrade(move |socket| relay(socket, session));
    Ok(resp)
}

/// The websocket upgrade of an exec or attach request, with the channel protocol kubectl must offer.
async fn ws_upgrade(parts: &mut Parts, what: &str) -> Result<WebSocketUpgrade, ApiError> {
    let upgrade = WebSocketUpgrade::from_request_parts(parts, &()).await;
    let Ok(upgrade) = upgrade else {
        return Err(ApiError::bad_request(format!(
            "Upgrade request required: {what} speaks websocket (v5.channel.k8s.io); SPDY is not supported"
        )));
    };
    let offered: Vec<String> = parts
        .headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
        .collect();
    if !offered.iter().any(|p| PROTOCOLS.contains(&p.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unable to upgrade connection: none of the offered subprotocols {offered:?} is supported (want v5.channel.k8s.io)"
        )));
    }
    Ok(upgrade)
}

/// `pods/attach`: the container's own stdio, relayed like exec.
pub async fn attach(
    st: &Arc<AppState>,
    ns: &str,
    name: &str,
    parts: &mut Parts,
    q: &Query,
) -> Result<Resp, ApiError> {
    let (container, target) = locate(st, ns, name, q.get("container"), "attach")?;
    let upgrade = ws_upgrade(parts, "attach").await?;
    let tty = q.flag("tty");
    let req = AttachRequest {
        namespace: ns.to_string(),
        pod: name.to_string(),
        container,
        stdin: q.flag("stdin") || q.flag("input"),
        stdout: q.flag("stdout") || q.flag("output"),
        stderr: q.flag("stderr") || q.flag("error"),
        tty,
    };
    if !(req.stdin || req.stdout || req.stderr) {
        return Err(ApiError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    if tty && req.stderr {
        return Err(ApiError::bad_request("stderr cannot be requested with tty"));
    }
    let session = st
        .api
        .cfg
        .node_connector
        .attach(target, req)
        .await
        .map_err(node_error)?;
    Ok(upgrade
        .protocols(PROTOCOLS.iter().copied())
        .on_upgrade(move |socket| relay(socket, session)))
}

/// Copies frames both ways until either side closes.
async fn relay(socket: axum::extract::ws::WebSocket, session: crate::node::ExecSession) {
    let (mut client_tx, mut client_rx) = socket.split();
    let crate::node::ExecSession {
        to_node,
        mut from_node,
    } = session;
    let upstream = tokio::spawn(async move {
        while let Some(Ok(m)) = client_rx.next().await {
            let f = match m {
                Message::Binary(b) => Frame::Binary(b),
                Message::Text(t) => Frame::Text(t.to_string()),
                // pings are answered by the websocket layer itself
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Close(c) => {
                    let _ = to_node
                        .send(Frame::Close(c.map(|c| (c.code, c.reason.to_string()))))
                        .await;
                    break;
                }
            };
            if to_node.send(f).await.is_err() {
                break;
            }
        }
    });
    let mut closed = false;
    while let Some(f) = from_node.recv().await {
        let m = match f {
            Frame::Binary(b) => Message::Binary(b),
            Frame::Text(t) => Message::Text(t.into()),
            Frame::Ping(b) => Message::Ping(b),
            Frame::Pong(b) => Message::Pong(b),
            Frame::Close(c) => {
                closed = true;
                Message::Close(Some(c.map_or(
                    CloseFrame {
                        code: 1000,
                        reason: "".into(),
                    },
                    |(code, reason)| CloseFrame {
                        code,
                        reason: reason.into(),
                    },
                )))
            }
        };
        if client_tx.send(m).await.is_err() {
            break;
        }
        if closed {
            break;
        }
    }
    if !closed {
        let _ = client_tx
            .send(Message::Close(Some(CloseFrame {
                code: 1011,
                reason: "connection to the node was lost".into(),
            })))
            .await;
    }
    let _ = client_tx.close().await;
    upstream.abort();
}

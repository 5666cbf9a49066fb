//! Reaching nodes for `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`.
//!
//! # The node-side contract (what a podnet node agent implements)
//!
//! The API server relays to the node that runs the pod the way kube-apiserver relays to a kubelet: over
//! HTTPS to `<node InternalIP>:<port>`, where the port is the node's
//! `status.daemonEndpoints.kubeletEndpoint.Port` (10250 when unset). The node serves a certificate
//! signed by the lab CA with its InternalIP as an IP SAN ([`crate::pki::issue`] makes one). Every request
//! carries `Authorization: Bearer <token>` with the cluster token; the node must reject others with 401.
//!
//! - **Logs**: `GET /containerLogs/{namespace}/{pod}/{container}` with the query parameters `follow`,
//!   `tailLines`, `timestamps`, `previous`, `limitBytes`, `sinceSeconds` (absent = default; booleans are
//!   `true`/`false`). Answer `200 text/plain` with the log bytes (with `timestamps=true`, each line starts
//!   with its RFC 3339 nano timestamp and a space). With `follow=true` keep the response open and stream
//!   new lines until the container exits (then end the body) or the client goes away. Unknown pod or
//!   container: 404 with a plain-text message; `previous=true` without a previous instance: 400
//!   `previous terminated container "c" in pod "p" not found`.
//! - **Exec**: a websocket upgrade `GET /exec/{namespace}/{pod}/{container}?command=a&command=b&stdin=true
//!   &stdout=true&stderr=true&tty=false` with `Sec-WebSocket-Protocol: v5.channel.k8s.io`; answer 101
//!   echoing that protocol. Binary messages carry a channel byte first: 0 stdin (to the node), 1 stdout,
//!   2 stderr (only without tty), 3 the final status (JSON `Status`: `{"metadata":{},"status":"Success"}`
//!   or `{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: ...",
//!   "reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}`), 4 terminal
//!   resize (`{"Width":W,"Height":H}`, to the node), 255 stream close (`[255, channel]`, e.g. stdin EOF).
//!   After the status the node sends a close frame (1000). Answer pings with pongs.
//! - **Attach**: the same websocket protocol at `GET /attach/{namespace}/{pod}/{container}?stdin=true
//!   &stdout=true&stderr=true&tty=false` (no command): the container's own output from now on, input to
//!   its stdin when the container has `stdin: true`. The status on channel 3 comes when the container
//!   exits; a client that leaves does not stop the container.
//! - **Port-forward**: one websocket per forwarded connection, `GET /portForward/{namespace}/{pod}
//!   ?port=P` with `Sec-WebSocket-Protocol: v5.channel.k8s.io`. The node connects to `localhost:P`
//!   inside the pod's network namespace. Channel 0 carries the connection's bytes both ways; `[255, 0]`
//!   says that side has no more to send (a TCP half-close); channel 1 (node to server) carries an error
//!   as kubelet words it (`error forwarding port 81 to pod ...: ... connection refused`). When both
//!   directions are done (or after the error) the node sends a close frame (1000). The API server
//!   terminates kubectl's SPDY/3.1 session (tunneled in a websocket with subprotocol
//!   `SPDY/3.1+portforward.k8s.io`, or a plain `SPDY/3.1` upgrade) and maps each data/error stream pair
//!   (one `requestID`) to one such websocket: the node never sees SPDY.
//!
//! Tests and embedders may supply any [`NodeConnector`]; [`HttpsNodeConnector`] is the real one.

mod https;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

pub use https::{Dialer, HttpsNodeConnector};

/// Where a node listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTarget {
    pub name: String,
    pub address: String,
    pub port: u16,
}

/// `pods/log` options, as kubectl sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRequest {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<i64>,
    pub limit_bytes: Option<i64>,
    pub since_seconds: Option<i64>,
}

/// `pods/exec` options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// `pods/attach` options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachRequest {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// One forwarded connection of `pods/portforward`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortForwardRequest {
    pub namespace: String,
    pub pod: String,
    pub port: u16,
}

/// A websocket message of an exec, attach or port-forward session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Binary(Bytes),
    Text(String),
    Ping(Bytes),
    Pong(Bytes),
    Close(Option<(u16, String)>),
}

/// An open exec session with a node: frames to it and from it. The session ends when `from_node` ends.
pub struct ExecSession {
    pub to_node: mpsc::Sender<Frame>,
    pub from_node: mpsc::Receiver<Frame>,
}

pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Why a node could not serve a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    #[error("error dialing backend: {0}")]
    Unreachable(String),
    #[error("{message}")]
    Status { code: u16, message: String },
}

/// How the API server reaches the node running a pod.
pub trait NodeConnector: Send + Sync + 'static {
    fn logs(&self, node: NodeTarget, req: LogRequest) -> BoxFuture<Result<ByteStream, NodeError>>;
    fn exec(&self, node: NodeTarget, req: ExecRequest)
    -> BoxFuture<Result<ExecSession, NodeError>>;
    fn attach(
        &self,
        node: NodeTarget,
        req: AttachRequest,
    ) -> BoxFuture<Result<ExecSession, NodeError>>;
    fn port_forward(
        &self,
        node: NodeTarget,
        req: PortForwardRequest,
    ) -> BoxFuture<Result<ExecSession, NodeError>>;
}

/// The query string of a logs request.
pub fn log_query(r: &LogRequest) -> String {
    let mut q = Vec::new();
    if r.follow {
        q.push("follow=true".to_string());
    }
    if r.previous {
        q.push("previous=true".to_string());
    }
    if r.timestamps {
        q.push("timestamps=true".to_string());
    }
    if let Some(n) = r.tail_lines {
        q.push(format!("tailLines={n}"));
    }
    if let Some(n) = r.limit_bytes {
        q.push(format!("limitBytes={n}"));
    }
    if let Some(n) = r.since_seconds {
        q.push(format!("sinceSeconds={n}"));
    }
    q.join("&")
}

/// The query string of an exec request.
pub fn exec_query(r: &ExecRequest) -> String {
    let mut q: Vec<String> = r
        .command
        .iter()
        .map(|c| format!("command={}", urlencode(c)))
        .collect();
    for (k, v) in [
        ("stdin", r.stdin),
        ("stdout", r.stdout),
        ("stderr", r.stderr),
        ("tty", r.tty),
    ] {
        q.push(format!("{k}={v}"));
    }
    q.join("&")
}

/// The query string of an attach request.
pub fn attach_query(r: &AttachRequest) -> String {
    [
        ("stdin", r.stdin),
        ("stdout", r.stdout),
        ("stderr", r.stderr),
        ("tty", r.tty),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={v}"))
    .collect::<Vec<_>>()
    .join("&")
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

//! The real node connector: HTTPS (lab CA) to the node's kubelet port.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{
    AttachRequest, BoxFuture, ByteStream, ExecRequest, ExecSession, Frame, LogRequest,
    NodeConnector, NodeError, NodeTarget, PortForwardRequest, attach_query, exec_query, log_query,
};
use crate::pki::Pki;

/// Makes the TCP connection to a node, blocking; run on a blocking thread. The embedder supplies one
/// when nodes are reachable only from elsewhere (the lab dials from inside its router's network
/// namespace, which the server itself knows nothing about).
pub type Dialer = Arc<dyn Fn(String) -> std::io::Result<std::net::TcpStream> + Send + Sync>;

/// Connects to nodes over HTTPS, trusting the lab CA and presenting the cluster token.
pub struct HttpsNodeConnector {
    tls: Option<TlsConnector>,
    token: String,
    dialer: Option<Dialer>,
}

impl HttpsNodeConnector {
    pub fn new(pki: &Pki) -> Self {
        let tls = pki.client_config().ok().map(|mut c| {
            c.alpn_protocols = vec![b"http/1.1".to_vec()];
            TlsConnector::from(Arc::new(c))
        });
        HttpsNodeConnector {
            tls,
            token: pki.token.clone(),
            dialer: None,
        }
    }

    /// Like [`new`](Self::new), with the TCP connections made by `dialer` (given `address:port`).
    pub fn with_dialer(pki: &Pki, dialer: Dialer) -> Self {
        HttpsNodeConnector {
            dialer: Some(dialer),
            ..Self::new(pki)
        }
    }
}

async fn dial(dialer: Option<Dialer>, addr: String) -> std::io::Result<TcpStream> {
    match dialer {
        None => TcpStream::connect(&addr).await,
        Some(dial) => {
            let std = tokio::task::spawn_blocking(move || dial(addr))
                .await
                .map_err(std::io::Error::other)??;
            std.set_nonblocking(true)?;
            TcpStream::from_std(std)
        }
    }
}

async fn connect(
    tls: Option<TlsConnector>,
    dialer: Option<Dialer>,
    node: &NodeTarget,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, NodeError> {
    let tls = tls.ok_or_else(|| NodeError::Unreachable("no CA to verify nodes with".into()))?;
    let addr = format!("{}:{}", node.address, node.port);
    let tcp = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        dial(dialer, addr.clone()),
    )
    .await
    .map_err(|_| NodeError::Unreachable(format!("dial tcp {addr}: i/o timeout")))?
    .map_err(|e| NodeError::Unreachable(format!("dial tcp {addr}: {e}")))?;
    let name = rustls::pki_types::ServerName::try_from(node.address.clone())
        .map_err(|e| NodeError::Unreachable(format!("node address {}: {e}", node.address)))?;
    tls.connect(name, tcp)
        .await
        .map_err(|e| NodeError::Unreachable(format!("tls handshake with {addr}: {e}")))
}

impl NodeConnector for HttpsNodeConnector {
    fn logs(&self, node: NodeTarget, req: LogRequest) -> BoxFuture<Result<ByteStream, NodeError>> {
        let tls = self.tls.clone();
        let dialer = self.dialer.clone();
        let token = self.token.clone();
        Box::pin(async move {
            let stream = connect(tls, dialer, &node).await?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| {
                    NodeError::Unreachable(format!("http handshake with node {}: {e}", node.name))
                })?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let q = log_query(&req);
            let uri = format!(
                "/containerLogs/{}/{}/{}{}{}",
                req.namespace,
                req.pod,
                req.container,
                if q.is_empty() { "" } else { "?" },
                q
            );
            let request = http::Request::get(uri)
                .header(
                    http::header::HOST,
                    format!("{}:{}", node.address, node.port),
                )
                .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Empty::<Bytes>::new())
                .map_err(|e| NodeError::Unreachable(e.to_string()))?;
            let resp = sender
                .send_request(request)
                .await
                .map_err(|e| NodeError::Unreachable(format!("node {}: {e}", node.name)))?;
            let status = resp.status();
            let body = resp.into_body();
            if !status.is_success() {
                let text = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                return Err(NodeError::Status {
                    code: status.as_u16(),
                    message: String::from_utf8_lossy(&text).trim().to_string(),
                });
            }
            let s = body
                .into_data_stream()
                .map(|r| r.map_err(std::io::Error::other));
            Ok(Box::pin(s) as ByteStream)
        })
    }

    fn exec(
        &self,
        node: NodeTarget,
        req: ExecRequest,
    ) -> BoxFuture<Result<ExecSession, NodeError>> {
        let path = format!(
            "/exec/{}/{}/{}?{}",
            req.namespace,
            req.pod,
            req.container,
            exec_query(&req)
        );
        self.websocket(node, path, "exec")
    }

    fn attach(
        &self,
        node: NodeTarget,
        req: AttachRequest,
    ) -> BoxFuture<Result<ExecSession, NodeError>> {
        let path = format!(
            "/attach/{}/{}/{}?{}",
            req.namespace,
            req.pod,
            req.container,
            attach_query(&req)
        );
        self.websocket(node, path, "attach")
    }

    fn port_forward(
        &self,
        node: NodeTarget,
        req: PortForwardRequest,
    ) -> BoxFuture<Result<ExecSession, NodeError>> {
        let path = format!(
            "/portForward/{}/{}?port={}",
            req.namespace, req.pod, req.port
        );
        self.websocket(node, path, "port-forward")
    }
}

impl HttpsNodeConnector {
    /// Opens a `v5.channel.k8s.io` websocket to `path` on the node and pumps its messages through
    /// channels.
    fn websocket(
        &self,
        node: NodeTarget,
        path: String,
        what: &'static str,
    ) -> BoxFuture<Result<ExecSession, NodeError>> {
        let tls = self.tls.clone();
        let dialer = self.dialer.clone();
        let token = self.token.clone();
        Box::pin(async move {
            let stream = connect(tls, dialer, &node).await?;
            let url = format!("wss://{}:{}{}", node.address, node.port, path);
            let mut request = url
                .into_client_request()
                .map_err(|e| NodeError::Unreachable(e.to_string()))?;
            let h = request.headers_mut();
            h.insert(
                "Sec-WebSocket-Protocol",
                http::HeaderValue::from_static("v5.channel.k8s.io"),
            );
            h.insert(
                http::header::AUTHORIZATION,
                http::HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|e| NodeError::Unreachable(e.to_string()))?,
            );
            let (ws, resp) = tokio_tungstenite::client_async(request, stream)
                .await
                .map_err(|e| match e {
                    tokio_tungstenite::tungstenite::Error::Http(r) => {
                        let body = r
                            .body()
                            .as_ref()
                            .map(|b| String::from_utf8_lossy(b).trim().to_string())
                            .unwrap_or_default();
                        NodeError::Status {
                            code: r.status().as_u16(),
                            message: body,
                        }
                    }
                    other => {
                        NodeError::Unreachable(format!("{what} on node {}: {other}", node.name))
                    }
                })?;
            let _ = resp;
            let (mut sink, mut source) = ws.split();
            let (to_node, mut to_node_rx) = mpsc::channel::<Frame>(64);
            let (from_node_tx, from_node) = mpsc::channel::<Frame>(64);
            tokio::spawn(async move {
                while let Some(f) = to_node_rx.recv().await {
                    let m = match f {
                        Frame::Binary(b) => Message::Binary(b),
                        Frame::Text(t) => Message::Text(t.into()),
                        Frame::Ping(b) => Message::Ping(b),
                        Frame::Pong(b) => Message::Pong(b),
                        Frame::Close(c) => Message::Close(c.map(|(code, reason)| {
                            tokio_tungstenite::tungstenite::protocol::CloseFrame {
                                code: code.into(),
                                reason: reason.into(),
                            }
                        })),
                    };
                    if sink.send(m).await.is_err() {
                        break;
                    }
                }
                let _ = sink.close().await;
            });
            tokio::spawn(async move {
                while let Some(Ok(m)) = source.next().await {
                    let f = match m {
                        Message::Binary(b) => Frame::Binary(b),
                        Message::Text(t) => Frame::Text(t.to_string()),
                        // tungstenite answers pings itself
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                        Message::Close(c) => {
                            Frame::Close(c.map(|c| (c.code.into(), c.reason.to_string())))
                        }
                    };
                    let closing = matches!(f, Frame::Close(_));
                    if from_node_tx.send(f).await.is_err() || closing {
                        break;
                    }
                }
            });
            Ok(ExecSession { to_node, from_node })
        })
    }
}

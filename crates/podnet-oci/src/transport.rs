//! HTTP(S) transport with a pluggable dialer.
//!
//! Why our own client on hyper rather than `oci-client`: `oci-client` sits on reqwest, which offers no way
//! to supply the TCP connection. The lab's node agent lives in a network namespace cut off from the
//! machine's network, so every connection (name resolution included) must be made by a caller-supplied
//! function that can run on a short-lived thread inside the machine's namespace. hyper-util's pooled
//! client takes any connector, hyper-rustls wraps it with TLS (webpki roots compiled in), and the
//! registry protocol on top is small (manifests, blobs, token flow), so owning it costs little and also
//! lets blobs stream straight into the unpacker.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Opens a TCP connection to `host:port`, resolving the name itself. Called on a blocking thread, so it
/// may enter a network namespace for the duration of the call (see `podnet_netns::NetNs::run`).
pub type Dialer = Arc<dyn Fn(&str, u16) -> io::Result<std::net::TcpStream> + Send + Sync>;

/// The dialer of a process with the network it wants: plain `TcpStream::connect`.
pub fn default_dialer() -> Dialer {
    Arc::new(|host: &str, port: u16| std::net::TcpStream::connect((host, port)))
}

/// How long a dial may take (containerd's `dial_timeout` default).
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub(crate) struct DialConnector {
    dial: Dialer,
}

impl tower_service::Service<Uri> for DialConnector {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let dial = self.dial.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::other(format!("no host in {uri}")))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
                Some("https") => 443,
                _ => 80,
            });
            let what = format!("dial tcp {host}:{port}");
            let task = tokio::task::spawn_blocking(move || {
                let s = dial(&host, port)?;
                s.set_nodelay(true)?;
                s.set_nonblocking(true)?;
                Ok::<_, io::Error>(s)
            });
            let std = tokio::time::timeout(DIAL_TIMEOUT, task)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("{what}: timed out")))?
                .map_err(io::Error::other)?
                .map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))?;
            Ok(TokioIo::new(tokio::net::TcpStream::from_std(std)?))
        })
    }
}

pub(crate) type HttpClient = Client<hyper_rustls::HttpsConnector<DialConnector>, Empty<Bytes>>;

/// A pooled HTTP/1.1 client whose connections come from `dial`; TLS verified against the webpki roots.
pub(crate) fn client(dial: Dialer) -> HttpClient {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(DialConnector { dial });
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(https)
}

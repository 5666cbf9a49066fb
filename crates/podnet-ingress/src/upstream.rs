//! Connections to endpoints: HTTP/1.1 over TCP, kept alive and reused. An idle connection returns to
//! its endpoint's pool once it can take another request (its last response fully read), so one
//! backend connection serves many client requests, as nginx's `keepalive` upstreams do.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;

pub type Body = BoxBody<Bytes, hyper::Error>;
pub type Sender = SendRequest<Body>;

/// Idle connections kept per endpoint.
const MAX_IDLE: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect to {0}: {1}")]
    Io(SocketAddr, std::io::Error),
    #[error("connect to {0}: no answer within {1:?}")]
    Timeout(SocketAddr, Duration),
    #[error("HTTP/1.1 handshake with {0}: {1}")]
    Handshake(SocketAddr, hyper::Error),
}

#[derive(Default, Clone)]
pub struct Pool {
    idle: Arc<Mutex<HashMap<SocketAddr, Vec<Sender>>>>,
}

impl Pool {
    /// An idle connection to `addr` that is ready for a request, if the pool has one. Closed ones
    /// are dropped; one whose connection task has not yet seen its last response end stays.
    pub fn take(&self, addr: SocketAddr) -> Option<Sender> {
        let mut idle = self.idle.lock().expect("pool lock");
        let list = idle.get_mut(&addr)?;
        list.retain(|s| !s.is_closed());
        let i = list.iter().rposition(|s| s.is_ready())?;
        Some(list.swap_remove(i))
    }

    /// Puts a connection whose last response was read to the end back into the pool.
    pub fn put(&self, addr: SocketAddr, sender: Sender) {
        let mut idle = self.idle.lock().expect("pool lock");
        let list = idle.entry(addr).or_default();
        if list.len() < MAX_IDLE {
            list.push(sender);
        }
    }

    /// A new connection. `upgrades`: the connection may be taken over by a protocol upgrade
    /// (websocket); such a connection is never pooled.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        timeout: Duration,
        upgrades: bool,
    ) -> Result<Sender, ConnectError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ConnectError::Timeout(addr, timeout))?
            .map_err(|e| ConnectError::Io(addr, e))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ConnectError::Handshake(addr, e))?;
        if upgrades {
            tokio::spawn(conn.with_upgrades());
        } else {
            tokio::spawn(conn);
        }
        Ok(sender)
    }
}

/// An endpoint's response body that gives its connection back to the pool once read to the end
/// (then the connection can take the next request); a body dropped before its end closes the
/// connection with it.
pub struct Returning {
    inner: hyper::body::Incoming,
    back: Option<(Pool, SocketAddr, Sender)>,
}

impl Returning {
    pub fn new(inner: hyper::body::Incoming, pool: Pool, addr: SocketAddr, sender: Sender) -> Self {
        Returning {
            inner,
            back: Some((pool, addr, sender)),
        }
    }

    fn give_back(&mut self) {
        if let Some((pool, addr, sender)) = self.back.take() {
            pool.put(addr, sender);
        }
    }
}

impl hyper::body::Body for Returning {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(None) = r {
            self.give_back();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        // a server stops polling once the length it was told is written: the end is reached then too
        if hyper::body::Body::is_end_stream(&self.inner) {
            self.give_back();
        }
    }
}

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
    /// An idle connection to `addr` that is ready for a request, if the pool has one.
    pub fn take(&self, addr: SocketAddr) -> Option<Sender> {
        let mut idle = self.idle.lock().expect("pool lock");
        let list = idle.get_mut(&addr)?;
        while let Some(s) = list.pop() {
            if s.is_ready() && !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    /// Returns a connection to the pool once it can take the next request (in the background).
    pub fn give_back(&self, addr: SocketAddr, mut sender: Sender) {
        let idle = self.idle.clone();
        tokio::spawn(async move {
            if sender.ready().await.is_err() {
                return;
            }
            let mut idle = idle.lock().expect("pool lock");
            let list = idle.entry(addr).or_default();
            if list.len() < MAX_IDLE {
                list.push(sender);
            }
        });
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

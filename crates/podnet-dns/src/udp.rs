//! The UDP side of the server, replacing hickory-server's UDP loop (measured: see bench/dns.sh).
//!
//! hickory's loop hands every datagram to a new task and every answer back through a channel to
//! the one task that owns the socket. Here each SO_REUSEPORT socket has its own receive loop that
//! answers cluster names in place (the handler's future completes on its first poll: an index
//! lookup, an encode, a `send_to`) and gives only the futures that wait (forwarding upstream) a task
//! of their own, so a slow upstream never holds up the queries behind it.

use crate::server::Handler;
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Waker};
use tokio::net::UdpSocket;

/// Receives on `socket` until it fails for good.
pub(crate) async fn serve(socket: Arc<UdpSocket>, handler: Arc<Handler>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, src) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors from earlier sends surface here on some kernels; keep serving.
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                ) {
                    continue;
                }
                eprintln!("podnet-dns: receive on UDP socket: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        // No answer can reach port 0; a datagram that is not a DNS message gets none either.
        if src.port() == 0 {
            continue;
        }
        let Ok(request) = Request::from_bytes(buf[..n].to_vec(), src, Protocol::Udp) else {
            continue;
        };
        let responder = Responder {
            socket: socket.clone(),
            dst: src,
        };
        let handler = handler.clone();
        let mut answer = Box::pin(async move {
            handler
                .handle_request::<_, TokioTime>(&request, responder)
                .await;
        });
        // One poll in place; what is still waiting continues in its own task, which polls it
        // again with a real waker.
        if answer
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
        {
            tokio::spawn(answer);
        }
    }
}

/// Writes a response to one client.
#[derive(Clone)]
struct Responder {
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
}

#[async_trait::async_trait]
impl ResponseHandler for Responder {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        // RFC 1035 4.2.1: 512 bytes unless the client's EDNS says more; what does not fit is
        // left out and the answer marked truncated (the client retries over TCP).
        let max = response.edns().map_or(512, |e| e.max_payload().max(512));
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max);
        let info = response
            .destructive_emit(&mut encoder)
            .map_err(|e| NetError::from(format!("encode the answer for {}: {e}", self.dst)))?;
        self.socket.send_to(&bytes, self.dst).await?;
        Ok(info)
    }
}

//! CoreDNS's health endpoints, small enough to write by hand: `GET /health` answers 200 while the
//! process serves (liveness), `GET /ready` answers 200 once every watch has listed once, 503 before.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Set once the index holds a full list of everything it watches.
#[derive(Debug, Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Serves `/health` and `/ready` on an already bound listener until the task is dropped.
pub async fn serve(listener: TcpListener, ready: Arc<Readiness>) {
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let ready = ready.clone();
        tokio::spawn(async move {
            // A client that sends nothing is dropped; probes are one short request.
            let _ = tokio::time::timeout(Duration::from_secs(5), answer(conn, &ready)).await;
        });
    }
}

/// Binds `addr` and serves on it in a task; returns the bound address.
pub async fn spawn(addr: SocketAddr, ready: Arc<Readiness>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(serve(listener, ready));
    Ok(bound)
}

async fn answer(mut conn: TcpStream, ready: &Readiness) -> std::io::Result<()> {
    let mut buf = [0u8; 1024];
    let mut len = 0;
    // Read the request head (up to 1 KiB is plenty for a probe).
    while len < buf.len() {
        let n = conn.read(&mut buf[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") || buf[..len].contains(&b'\n') {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let (status, body) = respond(head.lines().next().unwrap_or(""), ready.is_ready());
    let text = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(text.as_bytes()).await?;
    conn.shutdown().await
}

/// The status line and body for a request line.
fn respond(request_line: &str, ready: bool) -> (&'static str, &'static str) {
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" && method != "HEAD" {
        return ("405 Method Not Allowed", "method not allowed\n");
    }
    match path.split('?').next().unwrap_or("") {
        "/health" => ("200 OK", "OK"),
        "/ready" if ready => ("200 OK", "OK"),
        "/ready" => (
            "503 Service Unavailable",
            "not ready: waiting for the first list\n",
        ),
        _ => ("404 Not Found", "not found\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(respond("GET /health HTTP/1.1", false).0, "200 OK");
        assert_eq!(
            respond("GET /ready HTTP/1.1", false).0,
            "503 Service Unavailable"
        );
        assert_eq!(respond("GET /ready HTTP/1.1", true).0, "200 OK");
        assert_eq!(respond("GET /nope HTTP/1.1", true).0, "404 Not Found");
        assert_eq!(
            respond("POST /health HTTP/1.1", true).0,
            "405 Method Not Allowed"
        );
        assert_eq!(respond("", true).0, "405 Method Not Allowed");
    }
}

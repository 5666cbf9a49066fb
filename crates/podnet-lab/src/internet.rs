//! The simulated internet host's web server (203.0.113.10:80), run by the lab daemon inside the
//! internet namespace. It tells every client the address it came from, which is how a learner sees
//! masquerade at work: a pod's request arrives from its node's address.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Largest body `/bytes?n=N` serves.
const MAX_BYTES: u64 = 1 << 30;
/// Connections served at once; more wait in the listen queue. The daemon also hosts the API server,
/// so a flood of clients must not cost it unbounded threads.
const MAX_CONNECTIONS: usize = 64;

pub fn serve(listener: TcpListener) {
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        while active.load(Ordering::Acquire) >= MAX_CONNECTIONS {
            std::thread::sleep(Duration::from_millis(5));
        }
        active.fetch_add(1, Ordering::AcqRel);
        let active = active.clone();
        std::thread::spawn(move || {
            let _ = handle(stream);
            active.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

fn handle(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let peer = stream.peer_addr()?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.by_ref().take(8192).read_line(&mut request_line)?;
    // Drain the headers (bounded) so the client sees a clean response.
    for _ in 0..100 {
        let mut line = String::new();
        if reader.by_ref().take(8192).read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    if let Some(n) = target
        .strip_prefix("/bytes?n=")
        .and_then(|n| n.parse::<u64>().ok())
    {
        let n = n.min(MAX_BYTES);
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n"
        )?;
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = n;
        while left > 0 {
            let k = left.min(chunk.len() as u64) as usize;
            stream.write_all(&chunk[..k])?;
            left -= k as u64;
        }
        return Ok(());
    }
    let body = format!(
        "Hello from the podnet lab's internet host (203.0.113.10).\nYou came from {}: that is the source address your packets arrived with.\n",
        peer.ip()
    );
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

//! `podnet-echoserver [--listen ADDR]`: answers every HTTP request on ADDR (default 0.0.0.0:8080)
//! with what it received, in the format of registry.k8s.io/echoserver:1.4. One access-log line per
//! request goes to stdout, so `kubectl logs` shows the traffic. On the same port over UDP (podnet's
//! addition; the upstream image has none) each datagram is answered with the server's hostname and
//! the client's address, which is what Service tests over UDP need to see.

use podnet_echoserver::{ReadError, bad_request, read_body, read_head, render, response};
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Connections served at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 256;
/// An idle keep-alive connection or a stalled client is dropped after this long.
const IDLE: Duration = Duration::from_secs(60);

unsafe extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    fn _exit(status: i32) -> !;
}

extern "C" fn stop(_signal: i32) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { _exit(0) }
}

fn main() {
    let mut listen: SocketAddr = "0.0.0.0:8080".parse().expect("default address");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                let value = args.next().unwrap_or_default();
                listen = value.parse().unwrap_or_else(|_| {
                    eprintln!("podnet-echoserver: --listen wants IP:PORT, got {value:?}");
                    std::process::exit(2)
                });
            }
            "--version" => {
                println!("podnet-echoserver {}", env!("CARGO_PKG_VERSION"));
                return;
            }
            _ => {
                eprintln!(
                    "usage: podnet-echoserver [--listen IP:PORT]   (default 0.0.0.0:8080)\n\
                     Answers HTTP requests with what it received, as registry.k8s.io/echoserver:1.4 does."
                );
                std::process::exit(if arg == "--help" { 0 } else { 2 });
            }
        }
    }
    // As a container's PID 1, a signal without a handler is ignored: without these, `kubectl delete`
    // would wait out the grace period and then SIGKILL.
    // SAFETY: `stop` only calls _exit.
    unsafe {
        signal(15, stop); // SIGTERM
        signal(2, stop); // SIGINT
    }
    let listener = TcpListener::bind(listen).unwrap_or_else(|e| {
        eprintln!("podnet-echoserver: listen on {listen}: {e}");
        std::process::exit(1)
    });
    let bound = listener.local_addr().map_or(listen, |a| a);
    println!(
        "podnet-echoserver {} listening on {bound} (podnet's substitute for registry.k8s.io/echoserver:1.4)",
        env!("CARGO_PKG_VERSION")
    );
    match UdpSocket::bind(bound) {
        Ok(udp) => {
            let spawned = std::thread::Builder::new().spawn(move || serve_udp(udp));
            if let Err(e) = spawned {
                eprintln!("podnet-echoserver: start the UDP responder: {e}");
            }
        }
        Err(e) => eprintln!("podnet-echoserver: listen on {bound}/udp: {e} (HTTP only)"),
    }
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        while active.load(Ordering::Acquire) >= MAX_CONNECTIONS {
            std::thread::sleep(Duration::from_millis(5));
        }
        active.fetch_add(1, Ordering::AcqRel);
        let active = active.clone();
        let spawned = std::thread::Builder::new().spawn(move || {
            if let Err(e) = serve(stream) {
                let _ = writeln!(std::io::stderr(), "podnet-echoserver: {e}");
            }
            active.fetch_sub(1, Ordering::AcqRel);
        });
        if let Err(e) = spawned {
            eprintln!("podnet-echoserver: start a connection thread: {e}");
        }
    }
}

/// Serves one connection: requests in turn while the client keeps it alive.
fn serve(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    stream.set_write_timeout(Some(IDLE))?;
    let peer = stream.peer_addr()?;
    let local = stream.local_addr()?;
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let head = match read_head(&mut reader) {
            Ok(h) => h,
            Err(ReadError::Closed) => return Ok(()),
            Err(ReadError::Bad(why)) => return stream.write_all(&bad_request(&why)),
            Err(ReadError::Io(e)) => return Err(e),
        };
        if head.expects_continue() {
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let body = match read_body(&mut reader, &head) {
            Ok(b) => b,
            Err(ReadError::Bad(why)) => return stream.write_all(&bad_request(&why)),
            Err(ReadError::Closed) => return Ok(()),
            Err(ReadError::Io(e)) => return Err(e),
        };
        let text = render(&head, &body, peer.ip(), local);
        stream.write_all(&response(&head, &text))?;
        // A closed stdout (the log reader gone) must not take the connection down with it.
        let _ = writeln!(
            std::io::stdout().lock(),
            "{} \"{} {} HTTP/{}\" 200 {} \"{}\"",
            peer.ip(),
            head.method,
            head.target,
            head.version,
            text.len(),
            head.header("user-agent").unwrap_or("-")
        );
        if !head.keep_alive() {
            return Ok(());
        }
    }
}

/// Answers every datagram with `hostname=<name>\nclient_address=<ip>\n`.
fn serve_udp(sock: UdpSocket) {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let mut buf = [0u8; 2048];
    loop {
        let Ok((_, peer)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let reply = podnet_echoserver::udp_reply(&hostname, peer.ip());
        let _ = sock.send_to(reply.as_bytes(), peer);
    }
}

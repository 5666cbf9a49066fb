//! The lab's upstream resolver: what a cloud network's resolver is to a cluster. Pods with
//! `dnsPolicy: Default` and the cluster DNS (for names outside the cluster) ask the router's underlay
//! address on port 53; the lab daemon, which runs in the machine's network namespace, relays each
//! query to the machine's own resolvers (the nodes have no route out of the lab) and answers SERVFAIL
//! when none answers within [`QUERY_TIMEOUT`], so a lookup never hangs.
//!
//! The listening sockets are made inside the router's namespace by the caller (on a thread that
//! entered it); the upstream sockets are made here, by threads of the daemon, in the machine's.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long one query may take across all upstreams before it is answered SERVFAIL.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Queries relayed at once; beyond it a query gets SERVFAIL at once rather than a thread.
const MAX_IN_FLIGHT: usize = 256;
/// TCP clients served at once, and how long an idle one is kept.
const MAX_TCP_CLIENTS: usize = 64;
const TCP_IDLE: Duration = Duration::from_secs(10);
const TCP_LIFETIME: Duration = Duration::from_secs(30);
const DNS_PORT: u16 = 53;

/// The resolvers a resolv.conf names (`nameserver` lines, port 53), in order.
pub fn upstreams_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, DNS_PORT))
        })
        .collect()
}

/// Serves `udp` and `tcp` on threads of their own until the process ends.
pub fn serve(udp: UdpSocket, tcp: TcpListener, upstreams: Vec<SocketAddr>) -> io::Result<()> {
    let upstreams = Arc::new(upstreams);
    let udp = Arc::new(udp);
    let ups = upstreams.clone();
    std::thread::Builder::new()
        .name("dns-relay-udp".into())
        .spawn(move || serve_udp(udp, ups))?;
    std::thread::Builder::new()
        .name("dns-relay-tcp".into())
        .spawn(move || serve_tcp(tcp, upstreams))?;
    Ok(())
}

fn serve_udp(sock: Arc<UdpSocket>, upstreams: Arc<Vec<SocketAddr>>) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut buf = [0u8; 4096];
    loop {
        let (n, client) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("dns relay: receive a query: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let query = buf[..n].to_vec();
        // Only a well-formed query is worth a thread (answers, garbage and empty questions are
        // dropped here, as a resolver drops them).
        let Some(failed) = servfail(&query) else {
            continue;
        };
        if in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_IN_FLIGHT {
            in_flight.fetch_sub(1, Ordering::SeqCst);
            let _ = sock.send_to(&failed, client);
            continue;
        }
        let (sock, ups, count) = (sock.clone(), upstreams.clone(), in_flight.clone());
        let spawned = std::thread::Builder::new()
            .name("dns-relay-query".into())
            .spawn(move || {
                if let Some(reply) = relay_udp(&query, &ups) {
                    let _ = sock.send_to(&reply, client);
                }
                count.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The upstream's answer to `query`, or SERVFAIL when no upstream answered in time; `None` for
/// something that is not a DNS query (dropped, as a resolver drops garbage).
fn relay_udp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    if query.len() < HEADER_LEN {
        return None;
    }
    let deadline = Instant::now() + QUERY_TIMEOUT;
    for (i, up) in upstreams.iter().enumerate() {
        // each upstream gets an equal share of what is left
        let left = deadline.saturating_duration_since(Instant::now());
        let share = left / (upstreams.len() - i) as u32;
        if share.is_zero() {
            break;
        }
        if let Ok(reply) = ask_udp(query, *up, share) {
            return Some(reply);
        }
    }
    servfail(query)
}

fn ask_udp(query: &[u8], upstream: SocketAddr, timeout: Duration) -> io::Result<Vec<u8>> {
    let bind: SocketAddr = if upstream.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let sock = UdpSocket::bind(bind)?;
    sock.connect(upstream)?;
    sock.send(query)?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65535];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        sock.set_read_timeout(Some(left))?;
        let n = sock.recv(&mut buf)?;
        // a reply to another query (a late one on a reused port) is not ours
        if n >= HEADER_LEN && buf[..2] == query[..2] && buf[2] & 0x80 != 0 {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

fn serve_tcp(listener: TcpListener, upstreams: Arc<Vec<SocketAddr>>) {
    let clients = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        if clients.fetch_add(1, Ordering::SeqCst) >= MAX_TCP_CLIENTS {
            clients.fetch_sub(1, Ordering::SeqCst);
            continue; // dropped: the client retries or fails at once
        }
        let (ups, count) = (upstreams.clone(), clients.clone());
        let spawned = std::thread::Builder::new()
            .name("dns-relay-tcp-client".into())
            .spawn(move || {
                let _ = serve_tcp_client(conn, &ups);
                count.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            clients.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn serve_tcp_client(mut conn: TcpStream, upstreams: &[SocketAddr]) -> io::Result<()> {
    conn.set_read_timeout(Some(TCP_IDLE))?;
    conn.set_write_timeout(Some(QUERY_TIMEOUT))?;
    // A client trickling bytes would reset a per-read timeout for ever: the connection as a whole
    // is bounded too.
    let deadline = Instant::now() + TCP_LIFETIME;
    while let Some(query) = read_framed(&mut conn)? {
        if servfail(&query).is_none() || Instant::now() > deadline {
            return Ok(());
        }
        let reply = relay_tcp(&query, upstreams);
        match reply {
            Some(r) => write_framed(&mut conn, &r)?,
            None => return Ok(()),
        }
    }
    Ok(())
}

fn relay_tcp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    let deadline = Instant::now() + QUERY_TIMEOUT;
    for (i, up) in upstreams.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let share = left / (upstreams.len() - i) as u32;
        if share.is_zero() {
            break;
        }
        let asked = (|| -> io::Result<Vec<u8>> {
            let mut s = TcpStream::connect_timeout(up, share)?;
            s.set_read_timeout(Some(share))?;
            s.set_write_timeout(Some(share))?;
            write_framed(&mut s, query)?;
            read_framed(&mut s)?.ok_or_else(|| io::ErrorKind::UnexpectedEof.into())
        })();
        if let Ok(reply) = asked {
            return Some(reply);
        }
    }
    servfail(query)
}

/// One length-prefixed DNS message (RFC 1035 4.2.2); `None` at a clean end of the stream.
fn read_framed(s: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut msg)?;
    Ok(Some(msg))
}

fn write_framed(s: &mut impl Write, msg: &[u8]) -> io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| io::Error::other("DNS message over 64 KiB"))?;
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    s.write_all(&out)
}

const HEADER_LEN: usize = 12;

/// The SERVFAIL answer to `query`: its ID, opcode, RD bit and question, QR and RA set, RCODE 2, no
/// records. `None` when `query` is not a well-formed query with one question.
pub fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < HEADER_LEN || query[2] & 0x80 != 0 {
        return None;
    }
    let qdcount = u16::from_be_bytes([query[4], query[5]]);
    if qdcount != 1 {
        return None;
    }
    // the question: labels up to the root, then type and class
    let mut at = HEADER_LEN;
    loop {
        let len = *query.get(at)? as usize;
        if len == 0 {
            at += 1;
            break;
        }
        if len & 0xc0 != 0 {
            return None; // a question name is never compressed
        }
        at += 1 + len;
    }
    let end = at + 4;
    if end > query.len() {
        return None;
    }
    let mut reply = Vec::with_capacity(end);
    reply.extend_from_slice(&query[..2]);
    reply.push(0x80 | (query[2] & 0x79)); // QR, the query's opcode and RD
    reply.push(0x80 | 2); // RA, SERVFAIL
    reply.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    reply.extend_from_slice(&query[HEADER_LEN..end]);
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `example.com. A` with ID 0x1234 and RD set.
    fn query() -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in ["example", "com"] {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        q
    }

    #[test]
    fn servfail_keeps_id_and_question() {
        let q = query();
        let r = servfail(&q).unwrap();
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[2], 0x81, "QR and RD");
        assert_eq!(r[3] & 0x0f, 2, "SERVFAIL");
        assert_eq!(&r[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&r[12..], &q[12..]);
    }

    #[test]
    fn servfail_refuses_what_is_not_a_query() {
        assert!(servfail(&[0; 5]).is_none());
        let mut answer = query();
        answer[2] |= 0x80;
        assert!(servfail(&answer).is_none());
        let q = query();
        assert!(servfail(&q[..q.len() - 2]).is_none(), "truncated question");
        let mut two = query();
        two[5] = 2;
        assert!(servfail(&two).is_none());
    }

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# comment\nsearch lan\nnameserver 10.255.255.53\nnameserver fd00::1\nnameserver bogus\noptions ndots:1\n";
        assert_eq!(
            upstreams_from_resolv_conf(text),
            vec![
                "10.255.255.53:53".parse().unwrap(),
                "[fd00::1]:53".parse().unwrap()
            ]
        );
    }

    /// A fake upstream on loopback that answers every query with its ID and a marker byte.
    fn fake_upstream() -> SocketAddr {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            for _ in 0..100 {
                let Ok((n, from)) = s.recv_from(&mut buf) else {
                    return;
                };
                let mut r = buf[..n].to_vec();
                r[2] |= 0x80;
                r.push(0xAB);
                let _ = s.send_to(&r, from);
            }
        });
        addr
    }

    #[test]
    fn relays_to_the_first_upstream_that_answers() {
        // a silent upstream first (bound, never answering), then one that answers
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let ups = vec![silent.local_addr().unwrap(), fake_upstream()];
        let r = relay_udp(&query(), &ups).unwrap();
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(*r.last().unwrap(), 0xAB, "the answering upstream's reply");
    }

    #[test]
    fn no_upstream_answering_gives_servfail() {
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let r = relay_udp(&query(), &[silent.local_addr().unwrap()]).unwrap();
        assert_eq!(r[3] & 0x0f, 2);
        assert!(relay_udp(&query(), &[]).is_some_and(|r| r[3] & 0x0f == 2));
    }

    #[test]
    fn answers_and_garbage_get_no_thread_and_no_reply() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let ua = udp.local_addr().unwrap();
        serve(udp, tcp, vec![fake_upstream()]).unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut answer = query();
        answer[2] |= 0x80;
        for junk in [vec![0u8; 12], answer] {
            c.send_to(&junk, ua).unwrap();
            let mut buf = [0u8; 512];
            assert!(c.recv(&mut buf).is_err(), "no reply to {junk:?}");
        }
        // a real query still gets its answer
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.send_to(&query(), ua).unwrap();
        let mut buf = [0u8; 512];
        let n = c.recv(&mut buf).unwrap();
        assert_eq!(buf[n - 1], 0xAB);
    }

    #[test]
    fn serves_udp_and_tcp_clients() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let (ua, ta) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
        // TCP relays over TCP: this upstream has no TCP listener, so the TCP answer is SERVFAIL
        serve(udp, tcp, vec![fake_upstream()]).unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.send_to(&query(), ua).unwrap();
        let mut buf = [0u8; 512];
        let n = c.recv(&mut buf).unwrap();
        assert_eq!(buf[n - 1], 0xAB);
        let mut t = TcpStream::connect(ta).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write_framed(&mut t, &query()).unwrap();
        let r = read_framed(&mut t).unwrap().unwrap();
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[3] & 0x0f, 2);
    }
}

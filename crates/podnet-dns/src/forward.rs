//! Names outside the cluster, asked of the upstream servers of a resolv.conf, within a deadline.
//!
//! Each query goes out on its own connected UDP socket (a fresh source port and a random ID, so
//! answers cannot be confused or spoofed by guessing one), upstreams in order, the deadline shared
//! between them; a truncated answer is asked again over TCP. When the deadline passes the caller
//! answers SERVFAIL: a client never waits on a silent upstream beyond it.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};

/// The deadline of one forwarded query, all upstreams together.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("read upstream servers from {path}: {source}")]
    ResolvConf {
        path: String,
        source: std::io::Error,
    },
    #[error("no upstream server to ask for {0}")]
    NoUpstream(String),
    #[error("no answer for {name} {qtype} from {upstreams} within {timeout:?}")]
    Timeout {
        name: String,
        qtype: RecordType,
        upstreams: String,
        timeout: Duration,
    },
    #[error("encode the query for {name}: {source}")]
    Encode {
        name: String,
        source: hickory_proto::ProtoError,
    },
}

/// The upstream servers and the deadline.
#[derive(Debug, Clone)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
}

impl Forwarder {
    pub fn new(upstreams: Vec<SocketAddr>, timeout: Duration) -> Forwarder {
        Forwarder { upstreams, timeout }
    }

    /// The `nameserver` lines of a resolv.conf (port 53).
    pub fn from_resolv_conf(path: &Path, timeout: Duration) -> Result<Forwarder, ForwardError> {
        let text = std::fs::read_to_string(path).map_err(|source| ForwardError::ResolvConf {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Forwarder::new(nameservers(&text), timeout))
    }

    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Asks the upstreams for `name` `qtype`; the first answer (any response code) wins.
    pub async fn query(
        &self,
        name: &Name,
        qtype: RecordType,
        class: DNSClass,
    ) -> Result<Message, ForwardError> {
        if self.upstreams.is_empty() {
            return Err(ForwardError::NoUpstream(name.to_string()));
        }
        let id: u16 = rand::random();
        let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
        msg.metadata.recursion_desired = true;
        let mut q = Query::query(name.clone(), qtype);
        q.set_query_class(class);
        msg.add_query(q);
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        msg.set_edns(edns);
        let bytes = msg.to_vec().map_err(|source| ForwardError::Encode {
            name: name.to_string(),
            source,
        })?;

        let deadline = Instant::now() + self.timeout;
        let n = self.upstreams.len() as u32;
        for (i, upstream) in self.upstreams.iter().enumerate() {
            // The time left is shared among the upstreams not yet asked.
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let slice = (deadline - now) / (n - i as u32);
            let until = now + slice;
            if let Ok(Some(answer)) =
                timeout_at(until, ask(*upstream, &bytes, id, name, qtype)).await
            {
                return Ok(answer);
            }
        }
        Err(ForwardError::Timeout {
            name: name.to_string(),
            qtype,
            upstreams: self
                .upstreams
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            timeout: self.timeout,
        })
    }
}

/// One upstream: UDP, then TCP if the answer was truncated. `None` when it cannot answer.
async fn ask(
    upstream: SocketAddr,
    query: &[u8],
    id: u16,
    name: &Name,
    qtype: RecordType,
) -> Option<Message> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local).await.ok()?;
    sock.connect(upstream).await.ok()?;
    sock.send(query).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let answer = loop {
        let n = sock.recv(&mut buf).await.ok()?;
        // Anything that is not the answer to this question is ignored (late or forged datagrams).
        if let Ok(m) = Message::from_vec(&buf[..n])
            && answers(&m, id, name, qtype)
        {
            break m;
        }
    };
    if !answer.metadata.truncation {
        return Some(answer);
    }
    let mut tcp = TcpStream::connect(upstream).await.ok()?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
    framed.extend_from_slice(query);
    tcp.write_all(&framed).await.ok()?;
    let len = tcp.read_u16().await.ok()? as usize;
    let mut body = vec![0u8; len];
    tcp.read_exact(&mut body).await.ok()?;
    let m = Message::from_vec(&body).ok()?;
    answers(&m, id, name, qtype).then_some(m)
}

fn answers(m: &Message, id: u16, name: &Name, qtype: RecordType) -> bool {
    m.metadata.id == id
        && m.metadata.message_type == MessageType::Response
        && m.queries.len() == 1
        && m.queries[0].query_type() == qtype
        && m.queries[0].name().eq_case(name)
}

/// The `nameserver` addresses of a resolv.conf, in order, on port 53 (zone suffixes dropped).
pub fn nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            let addr = words.next()?;
            let addr = addr.split('%').next()?;
            addr.parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf() {
        let text = "# generated\nsearch default.svc.cluster.local svc.cluster.local\n\
                    nameserver 10.0.0.2\nnameserver  fe80::1%eth0\nnameserver bogus\noptions ndots:5\n";
        assert_eq!(
            nameservers(text),
            vec![
                "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
        assert!(nameservers("").is_empty());
    }
}

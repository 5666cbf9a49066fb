//! The server on loopback (ephemeral ports) answering from an index, forwarding to fake upstreams.

mod common;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use podnet_dns::health::{self, Readiness};
use podnet_dns::{Forwarder, Handler, Index, ServeConfig};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// Generous bound for any answer: tests wait for an answer, they do not time it.
const PATIENCE: Duration = Duration::from_secs(20);

struct Dns {
    addr: SocketAddr,
    _server: podnet_dns::Running,
}

async fn start(index: Index, forwarder: Forwarder) -> Dns {
    start_with(index, forwarder, false).await
}

async fn start_with(index: Index, forwarder: Forwarder, hickory_udp: bool) -> Dns {
    let cfg = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        udp_sockets: 2,
        hickory_udp,
    };
    let server = podnet_dns::serve(Handler::new(Arc::new(RwLock::new(index)), forwarder), &cfg)
        .await
        .unwrap();
    Dns {
        addr: server.addr(),
        _server: server,
    }
}

fn query_bytes(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.to_vec().unwrap()
}

async fn udp(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(server).await.unwrap();
    let id = rand::random();
    sock.send(&query_bytes(id, name, qtype)).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(PATIENCE, sock.recv(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    let m = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(m.metadata.id, id);
    m
}

async fn tcp(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let mut conn = TcpStream::connect(server).await.unwrap();
    let q = query_bytes(7, name, qtype);
    conn.write_u16(q.len() as u16).await.unwrap();
    conn.write_all(&q).await.unwrap();
    let len = tokio::time::timeout(PATIENCE, conn.read_u16())
        .await
        .unwrap()
        .unwrap();
    let mut body = vec![0u8; len as usize];
    conn.read_exact(&mut body).await.unwrap();
    Message::from_vec(&body).unwrap()
}

fn addrs(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

fn no_upstream() -> Forwarder {
    Forwarder::new(Vec::new(), Duration::from_secs(1))
}

/// A UDP socket and a TCP listener on the same free loopback port. The port the kernel picks
/// for UDP may be taken for TCP by another test running at the same time, so a few tries.
async fn udp_and_tcp_on_one_port() -> (UdpSocket, TcpListener, SocketAddr) {
    let mut last = None;
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        match TcpListener::bind(addr).await {
            Ok(tcp) => return (udp, tcp, addr),
            Err(e) => last = Some(e),
        }
    }
    panic!("no loopback port free for both UDP and TCP in 50 tries: {last:?}");
}

/// A fake upstream on loopback: answers A queries with 192.0.2.1 (UDP; `big.example.` truncated
/// over UDP and complete over TCP, on the same port), AAAA with NOERROR and nothing.
async fn fake_upstream() -> SocketAddr {
    let (udp, tcp, addr) = udp_and_tcp_on_one_port().await;
    fn answer(q: &Message, truncate: bool) -> Vec<u8> {
        let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
        r.metadata.recursion_available = true;
        r.add_queries(q.queries.clone());
        let query = &q.queries[0];
        if truncate {
            r.metadata.truncation = true;
        } else if query.query_type() == RecordType::A {
            r.add_answer(hickory_proto::rr::Record::from_rdata(
                query.name().clone(),
                60,
                RData::A(hickory_proto::rr::rdata::A(Ipv4Addr::new(192, 0, 2, 1))),
            ));
        }
        r.to_vec().unwrap()
    }
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, from) = udp.recv_from(&mut buf).await.unwrap();
            let q = Message::from_vec(&buf[..n]).unwrap();
            let big = q.queries[0].name().to_ascii() == "big.example.";
            udp.send_to(&answer(&q, big), from).await.unwrap();
        }
    });
    tokio::spawn(async move {
        loop {
            let (mut c, _) = tcp.accept().await.unwrap();
            let len = c.read_u16().await.unwrap();
            let mut body = vec![0u8; len as usize];
            c.read_exact(&mut body).await.unwrap();
            let r = answer(&Message::from_vec(&body).unwrap(), false);
            c.write_u16(r.len() as u16).await.unwrap();
            c.write_all(&r).await.unwrap();
        }
    });
    addr
}

/// An upstream that receives and never answers.
async fn silent_upstream() -> (SocketAddr, UdpSocket) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    (s.local_addr().unwrap(), s)
}

#[tokio::test]
async fn udp_answers_cluster_names() {
    let dns = start(common::cluster(), no_upstream()).await;
    let m = udp(dns.addr, "nginx.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(addrs(&m), ["10.96.0.20"]);
    assert_eq!(
        m.answers[0].ttl, 5,
        "the TTL CoreDNS's kubernetes plugin answers with"
    );
    // The query's case is kept in the answer.
    let m = udp(
        dns.addr,
        "NGINX.default.svc.cluster.local.",
        RecordType::AAAA,
    )
    .await;
    assert_eq!(addrs(&m), ["fd00:96::20"]);
    assert_eq!(
        m.answers[0].name.to_ascii(),
        "NGINX.default.svc.cluster.local."
    );

    // NXDOMAIN and NODATA carry the zone's SOA with the negative TTL.
    for (name, code) in [
        ("nope.default.svc.cluster.local.", ResponseCode::NXDomain),
        ("default.svc.cluster.local.", ResponseCode::NoError),
    ] {
        let m = udp(dns.addr, name, RecordType::A).await;
        assert_eq!(m.metadata.response_code, code, "{name}");
        assert!(m.answers.is_empty());
        assert_eq!(m.authorities.len(), 1, "{name}");
        let soa = &m.authorities[0];
        assert_eq!(soa.name.to_ascii(), "cluster.local.");
        assert!(matches!(&soa.data, RData::SOA(s) if s.minimum == 5));
        assert_eq!(soa.ttl, 5);
    }

    // SRV with the target's address in the additional section.
    let m = udp(
        dns.addr,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(m.answers.len(), 2);
    assert_eq!(m.additionals.len(), 2);
    // Headless A, pod, PTR.
    let m = udp(
        dns.addr,
        "web-1.web.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(addrs(&m), ["10.244.2.11"]);
    let m = udp(
        dns.addr,
        "10-244-1-5.default.pod.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(addrs(&m), ["10.244.1.5"]);
    let m = udp(dns.addr, "20.0.96.10.in-addr.arpa.", RecordType::PTR).await;
    assert!(
        matches!(&m.answers[0].data, RData::PTR(p) if p.0.to_ascii() == "nginx.default.svc.cluster.local.")
    );
    let m = udp(dns.addr, "dns-version.cluster.local.", RecordType::TXT).await;
    assert_eq!(m.answers.len(), 1);
}

/// The stock hickory UDP loop (kept for comparison in bench/dns.sh) answers the same.
#[tokio::test]
async fn hickory_udp_loop_answers_too() {
    let dns = start_with(common::cluster(), no_upstream(), true).await;
    let m = udp(dns.addr, "nginx.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(addrs(&m), ["10.96.0.20"]);
}

#[tokio::test]
async fn tcp_answers_cluster_names() {
    let dns = start(common::cluster(), no_upstream()).await;
    let m = tcp(dns.addr, "nginx.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(addrs(&m), ["10.96.0.20"]);
    let m = tcp(dns.addr, "nope.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn outside_names_are_forwarded() {
    let up = fake_upstream().await;
    let dns = start(
        common::cluster(),
        Forwarder::new(vec![up], Duration::from_secs(2)),
    )
    .await;
    let m = udp(dns.addr, "www.example.org.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.recursion_available);
    assert!(!m.metadata.authoritative);
    assert_eq!(addrs(&m), ["192.0.2.1"]);
    // Truncated over UDP: asked again over TCP.
    let m = udp(dns.addr, "big.example.", RecordType::A).await;
    assert_eq!(addrs(&m), ["192.0.2.1"]);
    // An ExternalName's CNAME is followed upstream for its addresses.
    let m = udp(dns.addr, "ext.default.svc.cluster.local.", RecordType::A).await;
    assert!(matches!(&m.answers[0].data, RData::CNAME(c) if c.0.to_ascii() == "example.org."));
    assert_eq!(addrs(&m), ["192.0.2.1"]);
}

#[tokio::test]
async fn a_silent_upstream_gives_servfail() {
    let (silent, _keep) = silent_upstream().await;
    let (silent2, _keep2) = silent_upstream().await;
    let dns = start(
        common::cluster(),
        Forwarder::new(vec![silent, silent2], Duration::from_millis(500)),
    )
    .await;
    // The answer comes (the helper waits up to PATIENCE, far beyond the 0.5 s deadline).
    let m = udp(dns.addr, "www.example.org.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    let m = tcp(dns.addr, "www.example.org.", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn no_upstream_gives_servfail() {
    let dns = start(common::cluster(), no_upstream()).await;
    let m = udp(dns.addr, "www.example.org.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

/// glibc sends A and AAAA together from one socket (same source port); each must be answered on
/// its own, and a slow forwarded query must not hold up a cluster answer behind it.
#[tokio::test]
async fn parallel_a_and_aaaa_from_one_socket() {
    let (silent, _keep) = silent_upstream().await;
    let dns = start(
        common::cluster(),
        Forwarder::new(vec![silent], Duration::from_millis(1500)),
    )
    .await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(dns.addr).await.unwrap();
    let names = [
        "nginx.default.svc.cluster.local.",
        "web.default.svc.cluster.local.",
        "nope.default.svc.cluster.local.",
    ];
    // 3 names x 20 rounds x (A, AAAA), all sent before any answer is read.
    let mut expected = std::collections::HashMap::new();
    let mut id: u16 = 1;
    for _ in 0..20 {
        for name in names {
            for t in [RecordType::A, RecordType::AAAA] {
                sock.send(&query_bytes(id, name, t)).await.unwrap();
                expected.insert(id, (name, t));
                id += 1;
            }
        }
    }
    let mut buf = vec![0u8; 4096];
    while !expected.is_empty() {
        let n = tokio::time::timeout(PATIENCE, sock.recv(&mut buf))
            .await
            .expect("every query answered")
            .unwrap();
        let m = Message::from_vec(&buf[..n]).unwrap();
        let (name, t) = expected.remove(&m.metadata.id).expect("a pending id");
        assert_eq!(m.queries[0].query_type(), t);
        assert_eq!(m.queries[0].name().to_ascii(), name);
        if name.starts_with("nginx") {
            assert_eq!(addrs(&m).len(), 1, "{name} {t}");
        }
    }

    // A forwarded A that hangs upstream, then a cluster AAAA from the same socket: the AAAA is
    // answered first, the A gets SERVFAIL after the deadline.
    sock.send(&query_bytes(1000, "www.example.org.", RecordType::A))
        .await
        .unwrap();
    sock.send(&query_bytes(
        1001,
        "nginx.default.svc.cluster.local.",
        RecordType::AAAA,
    ))
    .await
    .unwrap();
    let mut order = Vec::new();
    for _ in 0..2 {
        let n = tokio::time::timeout(PATIENCE, sock.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let m = Message::from_vec(&buf[..n]).unwrap();
        order.push((m.metadata.id, m.metadata.response_code));
    }
    assert_eq!(
        order,
        [
            (1001, ResponseCode::NoError),
            (1000, ResponseCode::ServFail)
        ]
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let ready = Arc::new(Readiness::default());
    let addr = health::spawn("127.0.0.1:0".parse().unwrap(), ready.clone())
        .await
        .unwrap();
    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        tokio::time::timeout(PATIENCE, c.read_to_string(&mut out))
            .await
            .unwrap()
            .unwrap();
        out.lines().next().unwrap_or("").to_string()
    }
    assert_eq!(get(addr, "/health").await, "HTTP/1.1 200 OK");
    assert_eq!(
        get(addr, "/ready").await,
        "HTTP/1.1 503 Service Unavailable"
    );
    ready.set_ready();
    assert_eq!(get(addr, "/ready").await, "HTTP/1.1 200 OK");
}

#[test]
fn objects_from_a_list_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("objects.json");
    let list = serde_json::json!({
        "apiVersion": "v1", "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "default", "name": "nginx"},
             "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"namespace": "default", "name": "nginx-x", "labels": {"kubernetes.io/service-name": "nginx"}},
             "addressType": "IPv4", "endpoints": [{"addresses": ["10.244.1.2"]}]},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default", "name": "skipped"}}
        ]
    });
    std::fs::write(&path, list.to_string()).unwrap();
    let mut index = Index::new(podnet_dns::Zone::new("cluster.local").unwrap());
    assert_eq!(podnet_dns::objects::load(&path, &mut index).unwrap(), 2);
    assert_eq!(index.counts(), (1, 1, 0));
    std::fs::write(
        &path,
        r#"{"kind": "List", "items": [{"kind": "Service", "spec": 3}]}"#,
    )
    .unwrap();
    let err = podnet_dns::objects::load(&path, &mut index)
        .unwrap_err()
        .to_string();
    assert!(err.contains("item 0 (Service)"), "{err}");
}

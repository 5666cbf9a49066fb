//! The DNS server: hickory-server's UDP and TCP loops with a request handler that answers the
//! cluster zone from the [`Index`] and forwards everything else.

use crate::forward::Forwarder;
use crate::index::{Answer, Index, Lookup, NEGATIVE_TTL, Rcode, Rec, TTL};
use crate::name;
use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How long a TCP client may stay idle before its connection is closed.
pub const TCP_IDLE: Duration = Duration::from_secs(10);

/// Answers queries from a shared index, forwarding the rest.
pub struct Handler {
    index: Arc<RwLock<Index>>,
    forwarder: Forwarder,
    /// The SOA's names, made once: every negative answer carries them.
    soa: SoaNames,
}

/// The zone's SOA owner and its MNAME and RNAME (`ns.dns.<zone>`, `hostmaster.<zone>`).
struct SoaNames {
    zone: Name,
    mname: Name,
    rname: Name,
}

impl Handler {
    pub fn new(index: Arc<RwLock<Index>>, forwarder: Forwarder) -> Handler {
        let zone = index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .zone()
            .name()
            .to_string();
        // A Zone is validated (letters, digits, dashes; short labels), so these names are valid.
        let name = |n: &str| fqdn(n).unwrap_or_else(Name::root);
        let soa = SoaNames {
            zone: name(&zone),
            mname: name(&format!("ns.dns.{zone}")),
            rname: name(&format!("hostmaster.{zone}")),
        };
        Handler {
            index,
            forwarder,
            soa,
        }
    }
}

/// What a query resolved to, before it is written out.
struct Reply {
    metadata: Metadata,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let req_meta = request.metadata;
        // The response's EDNS: echo the client's buffer size, as hickory's catalog does.
        let edns = request.edns.as_ref().map(|e| {
            let mut r = Edns::new();
            r.set_max_payload(e.max_payload().max(512));
            r
        });
        let reply = match self.reply(request).await {
            Ok(reply) => reply,
            Err(code) => {
                let mut metadata = Metadata::response_from_request(&req_meta);
                metadata.response_code = code;
                metadata.recursion_available = true;
                Reply {
                    metadata,
                    answers: Vec::new(),
                    authorities: Vec::new(),
                    additionals: Vec::new(),
                }
            }
        };
        let metadata = reply.metadata;
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(e) = edns.as_ref() {
            builder.edns(e);
        }
        let message = builder.build(
            metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            std::iter::empty(),
            reply.additionals.iter(),
        );
        match response.send_response(message).await {
            Ok(info) => info,
            Err(_) => {
                // The client is gone or the socket failed; nothing more to send.
                let mut failed = metadata;
                failed.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata: failed,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

impl Handler {
    async fn reply(&self, request: &Request) -> Result<Reply, ResponseCode> {
        let meta = &request.metadata;
        if meta.message_type != MessageType::Query {
            return Err(ResponseCode::FormErr);
        }
        if meta.op_code != OpCode::Query {
            return Err(ResponseCode::NotImp);
        }
        let info = request.request_info().map_err(|_| ResponseCode::FormErr)?;
        let query = info.query;
        let qtype = query.query_type();
        let owner: Name = query.original().name().clone();
        if query.query_class() != DNSClass::IN {
            return Err(ResponseCode::Refused);
        }
        let (lookup, serial) = {
            let index = self.index.read().unwrap_or_else(|e| e.into_inner());
            let q = name::parse(query.name().iter(), index.zone());
            (index.lookup(&q, qtype), index.serial())
        };
        let zone = &self.soa;
        let mut metadata = Metadata::response_from_request(meta);
        metadata.recursion_available = true;
        match lookup {
            Lookup::Answer(answer) => {
                metadata.authoritative = true;
                Ok(self
                    .zone_reply(metadata, &owner, qtype, answer, zone, serial)
                    .await)
            }
            Lookup::Forward => {
                let upstream = self
                    .forwarder
                    .query(&owner, qtype, DNSClass::IN)
                    .await
                    .map_err(|_| ResponseCode::ServFail)?;
                metadata.response_code = upstream.metadata.response_code;
                Ok(Reply {
                    metadata,
                    answers: upstream.answers,
                    authorities: upstream.authorities,
                    additionals: upstream.additionals,
                })
            }
        }
    }

    async fn zone_reply(
        &self,
        mut metadata: Metadata,
        owner: &Name,
        qtype: RecordType,
        answer: Answer,
        zone: &SoaNames,
        serial: u32,
    ) -> Reply {
        let mut answers: Vec<Record> = answer
            .answers
            .iter()
            .filter_map(|r| record(owner.clone(), r, zone, serial))
            .collect();
        let additionals: Vec<Record> = answer
            .additionals
            .iter()
            .filter_map(|(n, r)| record(fqdn(n)?, r, zone, serial))
            .collect();
        let mut authorities = Vec::new();
        if answer.rcode == Rcode::NxDomain {
            metadata.response_code = ResponseCode::NXDomain;
        }
        // An ExternalName's CNAME: follow it for addresses, as CoreDNS does, so stub resolvers that
        // do not chase CNAMEs themselves get the addresses too.
        if let [Rec::Cname(target)] = answer.answers.as_slice()
            && matches!(qtype, RecordType::A | RecordType::AAAA)
        {
            answers.extend(self.chase(target, qtype, zone, serial).await);
        }
        if answers.is_empty()
            && let Some(soa) = soa_record(zone, serial)
        {
            authorities.push(soa);
        }
        Reply {
            metadata,
            answers,
            authorities,
            additionals,
        }
    }

    async fn chase(
        &self,
        target: &str,
        qtype: RecordType,
        zone: &SoaNames,
        serial: u32,
    ) -> Vec<Record> {
        let Some(name) = fqdn(target) else {
            return Vec::new();
        };
        let lookup = {
            let index = self.index.read().unwrap_or_else(|e| e.into_inner());
            let q = name::parse(name.iter(), index.zone());
            index.lookup(&q, qtype)
        };
        match lookup {
            // One level inside the zone: a CNAME to another ExternalName is not followed further.
            Lookup::Answer(a) => a
                .answers
                .iter()
                .filter(|r| !matches!(r, Rec::Cname(_)))
                .filter_map(|r| record(name.clone(), r, zone, serial))
                .collect(),
            Lookup::Forward => match self.forwarder.query(&name, qtype, DNSClass::IN).await {
                Ok(m) if m.metadata.response_code == ResponseCode::NoError => m.answers,
                _ => Vec::new(),
            },
        }
    }
}

/// `name` as a fully qualified name.
fn fqdn(name: &str) -> Option<Name> {
    Name::from_ascii(format!("{name}.")).ok()
}

fn soa_record(zone: &SoaNames, serial: u32) -> Option<Record> {
    let soa = SOA::new(
        zone.mname.clone(),
        zone.rname.clone(),
        serial,
        7200,
        1800,
        86400,
        NEGATIVE_TTL,
    );
    Some(Record::from_rdata(
        zone.zone.clone(),
        NEGATIVE_TTL,
        RData::SOA(soa),
    ))
}

fn record(owner: Name, r: &Rec, zone: &SoaNames, serial: u32) -> Option<Record> {
    let data = match r {
        Rec::A(ip) => RData::A(A(*ip)),
        Rec::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
        Rec::Cname(t) => RData::CNAME(CNAME(fqdn(t)?)),
        Rec::Ptr(t) => RData::PTR(PTR(fqdn(t)?)),
        Rec::Txt(t) => RData::TXT(TXT::new(vec![t.clone()])),
        Rec::Srv {
            priority,
            weight,
            port,
            target,
        } => RData::SRV(SRV::new(*priority, *weight, *port, fqdn(target)?)),
        Rec::Soa => {
            let mut soa = soa_record(zone, serial)?;
            soa.ttl = TTL;
            return Some(soa);
        }
    };
    Some(Record::from_rdata(owner, TTL, data))
}

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// UDP sockets bound to `listen` with SO_REUSEPORT: the kernel spreads datagrams over them,
    /// so several receive loops run in parallel instead of one.
    pub udp_sockets: usize,
    /// Serve UDP with hickory-server's own loop instead of podnet's (for comparison in benchmarks).
    pub hickory_udp: bool,
}

/// A running server: UDP loops (see `udp.rs`) and hickory-server's TCP listener (and its UDP loops
/// with [`ServeConfig::hickory_udp`]). Dropping it stops them.
pub struct Running {
    addr: SocketAddr,
    tcp: hickory_server::Server<Shared>,
    udp: tokio::task::JoinSet<()>,
}

impl Running {
    /// The bound address (its port is shared by UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the TCP listener fails (the UDP loops never end by themselves).
    pub async fn wait(&mut self) -> Result<(), hickory_server::net::NetError> {
        self.tcp.block_until_done().await
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.udp.abort_all();
    }
}

/// The handler as hickory's TCP server holds it, shared with the UDP loops.
pub struct Shared(Arc<Handler>);

#[async_trait::async_trait]
impl RequestHandler for Shared {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response: R,
    ) -> ResponseInfo {
        self.0.handle_request::<R, T>(request, response).await
    }
}

/// Binds UDP and TCP on `cfg.listen` (port 0: an ephemeral port, the same for both) and serves
/// until the returned [`Running`] is dropped.
pub async fn serve(handler: Handler, cfg: &ServeConfig) -> std::io::Result<Running> {
    let (tcp_listener, first_udp) = bind_pair(cfg.listen).await?;
    let addr = tcp_listener.local_addr()?;
    let handler = Arc::new(handler);
    let mut udp = tokio::task::JoinSet::new();
    let mut tcp = hickory_server::Server::new(Shared(handler.clone()));
    let mut first_udp = Some(first_udp);
    for _ in 0..cfg.udp_sockets.max(1) {
        let socket = match first_udp.take() {
            Some(s) => s,
            None => reuseport_udp(addr)?,
        };
        if cfg.hickory_udp {
            tcp.register_socket(socket);
        } else {
            udp.spawn(crate::udp::serve(Arc::new(socket), handler.clone()));
        }
    }
    tcp.register_listener(tcp_listener, TCP_IDLE, 64);
    Ok(Running { addr, tcp, udp })
}

/// The TCP listener and the first UDP socket on one port. With port 0 the kernel picks the TCP
/// port, and another process may hold that port for UDP; then another pick, a bounded number
/// of times.
async fn bind_pair(
    listen: SocketAddr,
) -> std::io::Result<(tokio::net::TcpListener, tokio::net::UdpSocket)> {
    let tries = if listen.port() == 0 { 50 } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let tcp = tokio::net::TcpListener::bind(listen).await?;
        match reuseport_udp(tcp.local_addr()?) {
            Ok(udp) => return Ok((tcp, udp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("at least one try"))
}

fn reuseport_udp(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    tokio::net::UdpSocket::from_std(s.into())
}

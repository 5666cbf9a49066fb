//! The cluster's DNS data: Services, EndpointSlices and Pods reduced to what names need, and the
//! answers to queries read from it. Pure: the watches (or a file) feed it, the server asks it.

use crate::name::{QName, Zone, dashed};
use hickory_proto::rr::RecordType;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// TTL of every positive answer: what CoreDNS's kubernetes plugin answers with (`ttl 5` by default),
/// so clients stop using a deleted pod's address within seconds.
pub const TTL: u32 = 5;
/// TTL of the SOA in negative answers, and its MINIMUM: how long NXDOMAIN/NODATA may be cached.
pub const NEGATIVE_TTL: u32 = 5;
/// The Kubernetes DNS schema version answered at `dns-version.<zone>` (TXT).
pub const SCHEMA_VERSION: &str = "1.1.0";
/// The label an EndpointSlice names its Service with.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The data of one record; answers are owned by the query name, additionals name their owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rec {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    /// Target, no trailing dot.
    Cname(String),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    Ptr(String),
    Txt(String),
    /// The zone's SOA (built by the server from the zone and [`Index::serial`]).
    Soa,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    NxDomain,
}

/// An authoritative answer from the cluster zone. No answers with `NoError` is NODATA; the server
/// puts the zone's SOA in the authority section of NODATA and NXDOMAIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub rcode: Rcode,
    pub answers: Vec<Rec>,
    /// (owner name without trailing dot, record): the addresses of SRV targets.
    pub additionals: Vec<(String, Rec)>,
}

impl Answer {
    fn records(answers: Vec<Rec>) -> Answer {
        Answer {
            rcode: Rcode::NoError,
            answers,
            additionals: Vec::new(),
        }
    }
    fn nodata() -> Answer {
        Answer::records(Vec::new())
    }
    fn nxdomain() -> Answer {
        Answer {
            rcode: Rcode::NxDomain,
            answers: Vec::new(),
            additionals: Vec::new(),
        }
    }
    /// Whether the name exists with another type (NOERROR, nothing in the answer section).
    pub fn is_nodata(&self) -> bool {
        self.rcode == Rcode::NoError && self.answers.is_empty()
    }
}

/// What the server does with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Answer(Answer),
    /// Not the cluster's: ask the upstream servers.
    Forward,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    ClusterIp(Vec<IpAddr>),
    Headless,
    /// Lower-case target without trailing dot.
    ExternalName(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Port {
    /// Lower case; empty for an unnamed port.
    name: String,
    /// Lower case: `tcp`, `udp`, `sctp`.
    proto: String,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Svc {
    kind: Kind,
    ports: Vec<Port>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    ip: IpAddr,
    /// The endpoint's `hostname`, else its dashed address.
    host: String,
    ready: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Slice {
    /// The Service the slice belongs to (its `kubernetes.io/service-name` label).
    svc: String,
    endpoints: Vec<Endpoint>,
    ports: Vec<Port>,
}

type Key = (String, String);

/// The index. Names are matched in lower case (Kubernetes object names are lower case).
#[derive(Debug, Clone)]
pub struct Index {
    zone: Zone,
    /// namespace -> name -> service.
    services: HashMap<String, HashMap<String, Svc>>,
    /// (namespace, slice name) -> slice.
    slices: HashMap<Key, Slice>,
    /// (namespace, service) -> its slices' names.
    slices_of: HashMap<Key, Vec<String>>,
    /// (namespace, pod name) -> the pod's addresses.
    pods: HashMap<Key, Vec<IpAddr>>,
    /// address -> namespace -> how many pods there have it (verified pod names, pod PTRs).
    pod_ips: HashMap<IpAddr, BTreeMap<String, u32>>,
    /// namespace -> pods with addresses.
    pods_per_ns: HashMap<String, u32>,
    /// cluster IP -> services (PTR).
    cluster_ips: HashMap<IpAddr, Vec<Key>>,
    serial: u32,
}

impl Index {
    pub fn new(zone: Zone) -> Index {
        Index {
            zone,
            services: HashMap::new(),
            slices: HashMap::new(),
            slices_of: HashMap::new(),
            pods: HashMap::new(),
            pod_ips: HashMap::new(),
            pods_per_ns: HashMap::new(),
            cluster_ips: HashMap::new(),
            serial: 1,
        }
    }

    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// The SOA serial: changes whenever the data does.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    fn changed(&mut self) {
        self.serial = self.serial.wrapping_add(1).max(1);
    }

    // --- feeding -----------------------------------------------------------------------------

    /// Adds or replaces a Service.
    pub fn apply_service(&mut self, s: &Service) {
        let Some(key) = key_of(&s.metadata) else {
            return;
        };
        self.remove_service_key(&key);
        let svc = svc_of(s);
        if let Kind::ClusterIp(ips) = &svc.kind {
            for ip in ips {
                self.cluster_ips.entry(*ip).or_default().push(key.clone());
            }
        }
        self.services.entry(key.0).or_default().insert(key.1, svc);
        self.changed();
    }

    pub fn delete_service(&mut self, s: &Service) {
        if let Some(key) = key_of(&s.metadata) {
            self.remove_service_key(&key);
            self.changed();
        }
    }

    fn remove_service_key(&mut self, key: &Key) {
        let Some(by_name) = self.services.get_mut(&key.0) else {
            return;
        };
        let Some(old) = by_name.remove(&key.1) else {
            return;
        };
        if by_name.is_empty() {
            self.services.remove(&key.0);
        }
        if let Kind::ClusterIp(ips) = old.kind {
            for ip in ips {
                if let Some(keys) = self.cluster_ips.get_mut(&ip) {
                    keys.retain(|k| k != key);
                    if keys.is_empty() {
                        self.cluster_ips.remove(&ip);
                    }
                }
            }
        }
    }

    /// Replaces every Service (a watch's full list).
    pub fn replace_services<'a>(&mut self, all: impl IntoIterator<Item = &'a Service>) {
        self.services.clear();
        self.cluster_ips.clear();
        for s in all {
            self.apply_service(s);
        }
        self.changed();
    }

    /// Adds or replaces an EndpointSlice; one without the service-name label is ignored.
    pub fn apply_slice(&mut self, s: &EndpointSlice) {
        let Some(key) = key_of(&s.metadata) else {
            return;
        };
        self.remove_slice_key(&key);
        if let Some(slice) = slice_of(s) {
            let owner = (key.0.clone(), slice.svc.clone());
            self.slices_of.entry(owner).or_default().push(key.1.clone());
            self.slices.insert(key, slice);
        }
        self.changed();
    }

    pub fn delete_slice(&mut self, s: &EndpointSlice) {
        if let Some(key) = key_of(&s.metadata) {
            self.remove_slice_key(&key);
            self.changed();
        }
    }

    fn remove_slice_key(&mut self, key: &Key) {
        if let Some(old) = self.slices.remove(key) {
            let owner = (key.0.clone(), old.svc);
            if let Some(names) = self.slices_of.get_mut(&owner) {
                names.retain(|n| *n != key.1);
                if names.is_empty() {
                    self.slices_of.remove(&owner);
                }
            }
        }
    }

    pub fn replace_slices<'a>(&mut self, all: impl IntoIterator<Item = &'a EndpointSlice>) {
        self.slices.clear();
        self.slices_of.clear();
        for s in all {
            self.apply_slice(s);
        }
        self.changed();
    }

    /// Adds or replaces a Pod (only its addresses matter).
    pub fn apply_pod(&mut self, p: &Pod) {
        let Some(key) = key_of(&p.metadata) else {
            return;
        };
        self.remove_pod_key(&key);
        let ips = pod_ips(p);
        if !ips.is_empty() {
            for ip in &ips {
                *self
                    .pod_ips
                    .entry(*ip)
                    .or_default()
                    .entry(key.0.clone())
                    .or_default() += 1;
            }
            *self.pods_per_ns.entry(key.0.clone()).or_default() += 1;
            self.pods.insert(key, ips);
        }
        self.changed();
    }

    pub fn delete_pod(&mut self, p: &Pod) {
        if let Some(key) = key_of(&p.metadata) {
            self.remove_pod_key(&key);
            self.changed();
        }
    }

    fn remove_pod_key(&mut self, key: &Key) {
        let Some(ips) = self.pods.remove(key) else {
            return;
        };
        for ip in ips {
            if let Some(by_ns) = self.pod_ips.get_mut(&ip) {
                if let Some(n) = by_ns.get_mut(&key.0) {
                    *n -= 1;
                    if *n == 0 {
                        by_ns.remove(&key.0);
                    }
                }
                if by_ns.is_empty() {
                    self.pod_ips.remove(&ip);
                }
            }
        }
        if let Some(n) = self.pods_per_ns.get_mut(&key.0) {
            *n -= 1;
            if *n == 0 {
                self.pods_per_ns.remove(&key.0);
            }
        }
    }

    pub fn replace_pods<'a>(&mut self, all: impl IntoIterator<Item = &'a Pod>) {
        self.pods.clear();
        self.pod_ips.clear();
        self.pods_per_ns.clear();
        for p in all {
            self.apply_pod(p);
        }
        self.changed();
    }

    /// How many Services, EndpointSlices and Pods with addresses the index holds.
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.services.values().map(HashMap::len).sum(),
            self.slices.len(),
            self.pods.len(),
        )
    }

    // --- answering ---------------------------------------------------------------------------

    /// The answer to `qtype` for the name `q`.
    pub fn lookup(&self, q: &QName, qtype: RecordType) -> Lookup {
        let answer = match q {
            QName::Outside => return Lookup::Forward,
            QName::Reverse(ip) => {
                let names = self.ptr_names(*ip);
                if names.is_empty() {
                    // Not a cluster address: the upstream servers may know it.
                    return Lookup::Forward;
                }
                if qtype == RecordType::PTR || qtype == RecordType::ANY {
                    Answer::records(names.into_iter().map(Rec::Ptr).collect())
                } else {
                    Answer::nodata()
                }
            }
            QName::Apex => match qtype {
                RecordType::SOA | RecordType::ANY => Answer::records(vec![Rec::Soa]),
                _ => Answer::nodata(),
            },
            QName::DnsVersion => match qtype {
                RecordType::TXT | RecordType::ANY => {
                    Answer::records(vec![Rec::Txt(SCHEMA_VERSION.into())])
                }
                _ => Answer::nodata(),
            },
            QName::SvcRoot | QName::PodRoot => Answer::nodata(),
            QName::SvcNamespace { ns } => exists(self.services.contains_key(ns)),
            QName::PodNamespace { ns } => exists(self.pods_per_ns.contains_key(ns)),
            QName::Service { ns, svc } => match self.service(ns, svc) {
                None => Answer::nxdomain(),
                Some(s) => self.service_answer(ns, svc, s, qtype),
            },
            QName::Endpoint { ns, svc, host } => match self.service(ns, svc) {
                Some(Svc {
                    kind: Kind::Headless,
                    ..
                }) => {
                    let ips: Vec<IpAddr> = self
                        .ready(ns, svc)
                        .filter(|(_, e)| e.host == *host)
                        .map(|(_, e)| e.ip)
                        .collect();
                    if ips.is_empty() {
                        Answer::nxdomain()
                    } else {
                        Answer::records(addresses(&ips, qtype))
                    }
                }
                _ => Answer::nxdomain(),
            },
            QName::SrvProto { ns, svc, proto } => match self.service(ns, svc) {
                Some(s)
                    if s.ports
                        .iter()
                        .any(|p| p.proto == *proto && !p.name.is_empty()) =>
                {
                    Answer::nodata()
                }
                _ => Answer::nxdomain(),
            },
            QName::Srv {
                ns,
                svc,
                port,
                proto,
            } => match self.service(ns, svc) {
                None => Answer::nxdomain(),
                Some(s) => self.srv_answer(ns, svc, s, port, proto, qtype),
            },
            QName::Pod { ns, ip } => {
                let known = self.pod_ips.get(ip).is_some_and(|m| m.contains_key(ns));
                if known {
                    Answer::records(addresses(&[*ip], qtype))
                } else {
                    Answer::nxdomain()
                }
            }
            QName::Unknown => Answer::nxdomain(),
        };
        Lookup::Answer(answer)
    }

    fn service(&self, ns: &str, svc: &str) -> Option<&Svc> {
        self.services.get(ns)?.get(svc)
    }

    /// The ready endpoints of a service: (the slice's ports, endpoint).
    fn ready<'a>(
        &'a self,
        ns: &str,
        svc: &str,
    ) -> impl Iterator<Item = (&'a [Port], &'a Endpoint)> + 'a {
        let names = self
            .slices_of
            .get(&(ns.to_string(), svc.to_string()))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let ns = ns.to_string();
        names
            .iter()
            .filter_map(move |n| self.slices.get(&(ns.clone(), n.clone())))
            .flat_map(|s| s.endpoints.iter().map(move |e| (s.ports.as_slice(), e)))
            .filter(|(_, e)| e.ready)
    }

    fn service_fqdn(&self, ns: &str, svc: &str) -> String {
        format!("{svc}.{ns}.svc.{}", self.zone.name())
    }

    fn service_answer(&self, ns: &str, svc: &str, s: &Svc, qtype: RecordType) -> Answer {
        match &s.kind {
            Kind::ExternalName(target) => Answer::records(vec![Rec::Cname(target.clone())]),
            Kind::ClusterIp(ips) => Answer::records(addresses(ips, qtype)),
            Kind::Headless => {
                let mut ips: Vec<IpAddr> = self.ready(ns, svc).map(|(_, e)| e.ip).collect();
                ips.sort();
                ips.dedup();
                Answer::records(addresses(&ips, qtype))
            }
        }
    }

    fn srv_answer(
        &self,
        ns: &str,
        svc: &str,
        s: &Svc,
        port: &str,
        proto: &str,
        qtype: RecordType,
    ) -> Answer {
        let named = |p: &Port| p.name == port && p.proto == proto;
        let Some(sp) = s.ports.iter().find(|p| named(p)) else {
            return Answer::nxdomain();
        };
        if qtype != RecordType::SRV && qtype != RecordType::ANY {
            return Answer::nodata();
        }
        let mut answer = Answer::nodata();
        match &s.kind {
            Kind::ClusterIp(ips) => {
                let target = self.service_fqdn(ns, svc);
                answer.answers.push(Rec::Srv {
                    priority: 0,
                    weight: 100,
                    port: sp.port,
                    target: target.clone(),
                });
                for r in addresses(ips, RecordType::ANY) {
                    answer.additionals.push((target.clone(), r));
                }
            }
            Kind::ExternalName(name) => answer.answers.push(Rec::Srv {
                priority: 0,
                weight: 100,
                port: sp.port,
                target: name.clone(),
            }),
            Kind::Headless => {
                // One SRV per ready endpoint, with the endpoint's own port of that name.
                let mut found: Vec<(u16, String, IpAddr)> = self
                    .ready(ns, svc)
                    .filter_map(|(ports, e)| {
                        let p = ports.iter().find(|p| named(p))?;
                        Some((
                            p.port,
                            format!("{}.{}", e.host, self.service_fqdn(ns, svc)),
                            e.ip,
                        ))
                    })
                    .collect();
                found.sort();
                found.dedup();
                let weight = (100 / found.len().max(1)).max(1) as u16;
                for (port, target, ip) in found {
                    answer.answers.push(Rec::Srv {
                        priority: 0,
                        weight,
                        port,
                        target: target.clone(),
                    });
                    answer.additionals.extend(
                        addresses(&[ip], RecordType::ANY)
                            .into_iter()
                            .map(|r| (target.clone(), r)),
                    );
                }
            }
        }
        answer
    }

    /// The names of a cluster address: its services (cluster IPs), the headless endpoints that
    /// have it, then the pods that have it.
    fn ptr_names(&self, ip: IpAddr) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (ns, svc) in self.cluster_ips.get(&ip).into_iter().flatten() {
            names.push(self.service_fqdn(ns, svc));
        }
        if names.is_empty() {
            for ((ns, _), slice) in &self.slices {
                let headless = matches!(
                    self.service(ns, &slice.svc),
                    Some(Svc {
                        kind: Kind::Headless,
                        ..
                    })
                );
                if !headless {
                    continue;
                }
                for e in slice.endpoints.iter().filter(|e| e.ready && e.ip == ip) {
                    names.push(format!("{}.{}", e.host, self.service_fqdn(ns, &slice.svc)));
                }
            }
        }
        if names.is_empty() {
            for ns in self.pod_ips.get(&ip).into_iter().flat_map(BTreeMap::keys) {
                names.push(format!("{}.{ns}.pod.{}", dashed(ip), self.zone.name()));
            }
        }
        names.sort();
        names.dedup();
        names
    }
}

fn exists(yes: bool) -> Answer {
    if yes {
        Answer::nodata()
    } else {
        Answer::nxdomain()
    }
}

/// The A (or AAAA) records among `ips` that `qtype` asks for.
fn addresses(ips: &[IpAddr], qtype: RecordType) -> Vec<Rec> {
    let v4 = matches!(qtype, RecordType::A | RecordType::ANY);
    let v6 = matches!(qtype, RecordType::AAAA | RecordType::ANY);
    ips.iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(a) if v4 => Some(Rec::A(*a)),
            IpAddr::V6(a) if v6 => Some(Rec::Aaaa(*a)),
            _ => None,
        })
        .collect()
}

fn key_of(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<Key> {
    Some((
        m.namespace.as_deref()?.to_ascii_lowercase(),
        m.name.as_deref()?.to_ascii_lowercase(),
    ))
}

fn port_of(name: Option<&str>, proto: Option<&str>, port: i32) -> Option<Port> {
    Some(Port {
        name: name.unwrap_or_default().to_ascii_lowercase(),
        proto: proto.unwrap_or("TCP").to_ascii_lowercase(),
        port: u16::try_from(port).ok()?,
    })
}

fn svc_of(s: &Service) -> Svc {
    let spec = s.spec.clone().unwrap_or_default();
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| port_of(p.name.as_deref(), p.protocol.as_deref(), p.port))
        .collect();
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        let target = spec.external_name.unwrap_or_default();
        Kind::ExternalName(target.trim_end_matches('.').to_ascii_lowercase())
    } else if spec.cluster_ip.as_deref() == Some("None") {
        Kind::Headless
    } else {
        let mut ips: Vec<IpAddr> = spec
            .cluster_ips
            .iter()
            .flatten()
            .chain(spec.cluster_ip.iter())
            .filter_map(|ip| ip.parse().ok())
            .collect();
        ips.sort();
        ips.dedup();
        Kind::ClusterIp(ips)
    };
    Svc { kind, ports }
}

fn slice_of(s: &EndpointSlice) -> Option<Slice> {
    let svc = s
        .metadata
        .labels
        .as_ref()?
        .get(SERVICE_NAME_LABEL)?
        .to_ascii_lowercase();
    // FQDN slices carry names, not addresses: nothing to answer with.
    if s.address_type != "IPv4" && s.address_type != "IPv6" {
        return Some(Slice {
            svc,
            endpoints: Vec::new(),
            ports: Vec::new(),
        });
    }
    let endpoints = s
        .endpoints
        .iter()
        .filter_map(|e| {
            // The API allows one address per endpoint today; the first is the one consumers use.
            let ip: IpAddr = e.addresses.first()?.parse().ok()?;
            let host = e
                .hostname
                .as_deref()
                .filter(|h| !h.is_empty())
                .map(str::to_ascii_lowercase)
                .unwrap_or_else(|| dashed(ip));
            // A nil ready condition means ready (the API's documented default).
            let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            Some(Endpoint { ip, host, ready })
        })
        .collect();
    let ports = s
        .ports
        .iter()
        .flatten()
        .filter_map(|p| port_of(p.name.as_deref(), p.protocol.as_deref(), p.port?))
        .collect();
    Some(Slice {
        svc,
        endpoints,
        ports,
    })
}

fn pod_ips(p: &Pod) -> Vec<IpAddr> {
    let Some(status) = p.status.as_ref() else {
        return Vec::new();
    };
    let mut ips: Vec<IpAddr> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|i| i.ip.as_str())
        .chain(status.pod_ip.as_deref())
        .filter_map(|ip| ip.parse().ok())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

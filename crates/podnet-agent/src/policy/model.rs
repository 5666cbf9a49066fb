//! NetworkPolicy semantics from API objects alone (pure, no IO).
//!
//! networking.k8s.io/v1 as upstream defines it: a pod is isolated for a direction when a policy of its
//! namespace selects it and has that direction in `policyTypes` (omitted: Ingress, plus Egress when the
//! policy has egress rules). An isolated pod accepts (or opens) a connection when any rule of any of
//! its policies allows it (a union); a rule allows when one of its peers matches (none listed: any
//! peer) and one of its ports matches (none listed: any port). A peer is a `podSelector` (pods of the
//! policy's namespace), a `namespaceSelector` (every pod of the selected namespaces), both in one peer
//! (the selected pods of the selected namespaces), or an `ipBlock` (a CIDR minus its `except`s). A
//! port is a protocol (TCP when omitted), optionally a number or a range up to `endPort`, or a name
//! resolved on the pod that serves the connection, from its containers' `containerPorts`.
//!
//! Input is untrusted: a real API server validates, but nothing here relies on it. A peer or port
//! that cannot be understood matches nothing (never more than the author wrote), and the policy still
//! isolates the pods it selects. The problems are reported for logs. IPv4 only: an IPv6 `ipBlock`
//! matches no IPv4 address, which is exactly its meaning on an IPv4 data path.

pub use crate::proxy::model::Protocol;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as ApiSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use podnet_apimachinery::selector::LabelSelector;
use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

/// Labels as the selector logic reads them.
pub type Labels = serde_json::Map<String, serde_json::Value>;

/// A namespaced object's identity: a pod or a policy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Key {
        Key {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of an API object, when it has a namespace and a name.
    pub fn of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<Key> {
        Some(Key::new(meta.namespace.clone()?, meta.name.clone()?))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The two directions a policy can isolate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub const BOTH: [Direction; 2] = [Direction::Ingress, Direction::Egress];

    pub fn word(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// A label selector with a canonical text (two policies writing the same selector share its set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    inner: LabelSelector,
    text: String,
}

impl Selector {
    /// Selects everything (`{}`).
    pub fn all() -> Selector {
        Selector::from_parsed(LabelSelector::everything())
    }

    /// Selects nothing (an invalid selector).
    pub fn none() -> Selector {
        Selector::from_parsed(LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        })
    }

    fn from_parsed(inner: LabelSelector) -> Selector {
        let text = inner.to_string();
        Selector { inner, text }
    }

    /// Reads an API selector; an invalid one is an error (the caller decides what it means).
    pub fn from_api(sel: &ApiSelector) -> Result<Selector, String> {
        let value = serde_json::to_value(sel).map_err(|e| e.to_string())?;
        LabelSelector::from_object(Some(&value))
            .map(Selector::from_parsed)
            .map_err(|e| e.to_string())
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.inner.matches_map(labels)
    }

    pub fn selects_all(&self) -> bool {
        self.inner.is_empty()
    }

    /// The canonical text: `` (everything), `<none>`, or `app=web,tier in (a,b)`.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.selects_all() {
            write!(f, "<all>")
        } else {
            write!(f, "{}", self.text)
        }
    }
}

/// A named container port of a pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamedPort {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
}

/// What policies need to know of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// The pod's UID: tells a pod made again under its name (a StatefulSet's) from the one before,
    /// even when it has the same address (the start-up hold of the new one must be cleared).
    pub uid: String,
    pub namespace: String,
    pub ip: Ipv4Addr,
    pub node: String,
    pub labels: Labels,
    pub ports: Vec<NamedPort>,
}

impl PodInfo {
    /// The port a name stands for on this pod, for a protocol.
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.name == name && p.protocol == protocol)
            .map(|p| p.port)
    }
}

/// A pod as policies see it; `None` when it takes no part: no IPv4 address yet, host network (its
/// address is the node's, and traffic of the node is never filtered), finished, or being deleted
/// with every container stopped (see [`released_its_address`]).
pub fn pod_info(pod: &Pod) -> Option<PodInfo> {
    let spec = pod.spec.as_ref()?;
    if spec.host_network == Some(true) {
        return None;
    }
    let status = pod.status.as_ref()?;
    if released_its_address(pod) {
        return None;
    }
    let ip = status
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.as_str())
        .chain(status.pod_ip.as_deref())
        .find_map(|s| s.parse::<Ipv4Addr>().ok())?;
    let mut ports: Vec<NamedPort> = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            Some(NamedPort {
                name: p.name.clone().filter(|n| !n.is_empty())?,
                protocol: Protocol::parse(p.protocol.as_deref())?,
                port: u16::try_from(p.container_port).ok().filter(|p| *p != 0)?,
            })
        })
        .collect();
    ports.sort();
    ports.dedup();
    Some(PodInfo {
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        namespace: pod.metadata.namespace.clone()?,
        ip,
        node: spec.node_name.clone().unwrap_or_default(),
        labels: labels(pod.metadata.labels.as_ref()),
        ports,
    })
}

/// Whether a pod no longer owns the address its status still shows: it has finished (phase
/// Succeeded or Failed), or it is being deleted and none of its containers runs any more (a
/// finalizer can hold such a pod in the API for as long as its controller likes, while the node has
/// torn its sandbox down and may give the address to a new pod). Either way nothing in it can send,
/// and a peer set that kept the address would let the address's next owner in under the old pod's
/// labels. A pod being deleted whose containers still run (the grace period) keeps its address, and
/// so does one whose status lists no containers at all (nothing says they stopped).
pub fn released_its_address(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return true;
    }
    if pod.metadata.deletion_timestamp.is_none() {
        return false;
    }
    let mut statuses = [
        &status.init_container_statuses,
        &status.container_statuses,
        &status.ephemeral_container_statuses,
    ]
    .into_iter()
    .flat_map(|s| s.iter().flatten())
    .peekable();
    statuses.peek().is_some()
        && statuses.all(|c| c.state.as_ref().is_none_or(|s| s.running.is_none()))
}

/// A namespace's labels.
pub fn namespace_labels(ns: &Namespace) -> Labels {
    labels(ns.metadata.labels.as_ref())
}

fn labels(l: Option<&std::collections::BTreeMap<String, String>>) -> Labels {
    l.into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect()
}

/// Where a pod peer's pods live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The policy's own namespace (a `podSelector` without `namespaceSelector`).
    Own(String),
    /// Namespaces whose labels match.
    Selected(Selector),
}

/// A peer that selects pods: the namespaces they live in and the pods in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPeer {
    pub namespaces: Scope,
    pub pods: Selector,
}

impl PodPeer {
    /// The canonical text of the peer: equal texts select equal pods.
    pub fn text(&self) -> String {
        match &self.namespaces {
            Scope::Own(ns) => format!("namespace {ns}, pods {}", self.pods),
            Scope::Selected(s) => format!("namespaces {s}, pods {}", self.pods),
        }
    }

    /// Whether `pod` (with its namespace's labels) is one of this peer's pods.
    pub fn matches(&self, pod: &PodInfo, namespace_labels: &Labels) -> bool {
        let ns_ok = match &self.namespaces {
            Scope::Own(ns) => &pod.namespace == ns,
            Scope::Selected(s) => s.matches(namespace_labels),
        };
        ns_ok && self.pods.matches(&pod.labels)
    }
}

/// An `ipBlock`: the CIDR minus the exceptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub cidr: Ipv4Net,
    pub except: Vec<Ipv4Net>,
}

impl Block {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.cidr.contains(&ip) && !self.except.iter().any(|e| e.contains(&ip))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    Pods(PodPeer),
    Block(Block),
    /// Not understood (or IPv6): matches nothing.
    Nothing,
}

/// One port entry of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Port {
    /// Every port of a protocol.
    Protocol(Protocol),
    /// A number (`from == to`) or a range up to `endPort`.
    Range(Protocol, u16, u16),
    /// A `containerPort` name, resolved on the pod serving the connection.
    Named(Protocol, String),
    /// Not understood: matches nothing.
    Nothing,
}

impl Port {
    pub fn protocol(&self) -> Option<Protocol> {
        match self {
            Port::Protocol(p) | Port::Range(p, ..) | Port::Named(p, _) => Some(*p),
            Port::Nothing => None,
        }
    }

    /// Whether `(protocol, port)` to `server` (the pod serving the connection, if it is a pod)
    /// matches this entry.
    pub fn matches(&self, protocol: Protocol, port: u16, server: Option<&PodInfo>) -> bool {
        match self {
            Port::Protocol(p) => *p == protocol,
            Port::Range(p, from, to) => *p == protocol && (*from..=*to).contains(&port),
            Port::Named(p, name) => {
                *p == protocol && server.and_then(|s| s.named_port(name, protocol)) == Some(port)
            }
            Port::Nothing => false,
        }
    }
}

/// One ingress or egress rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `None`: every peer (the field empty or missing), pods and addresses alike.
    pub peers: Option<Vec<Peer>>,
    /// `None`: every port and protocol.
    pub ports: Option<Vec<Port>>,
}

impl Rule {
    pub fn has_named_ports(&self) -> bool {
        self.ports
            .iter()
            .flatten()
            .any(|p| matches!(p, Port::Named(..)))
    }
}

/// A NetworkPolicy as the data path needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub key: Key,
    /// The pods of its namespace it applies to.
    pub selects: Selector,
    /// `None`: the policy does not isolate ingress. `Some(vec![])`: it denies all ingress.
    pub ingress: Option<Vec<Rule>>,
    pub egress: Option<Vec<Rule>>,
    /// What could not be understood (each part matches nothing).
    pub problems: Vec<String>,
}

impl Policy {
    pub fn rules(&self, dir: Direction) -> Option<&[Rule]> {
        match dir {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }

    /// Every pod peer the policy names (the selector sets it needs).
    pub fn pod_peers(&self) -> impl Iterator<Item = &PodPeer> {
        Direction::BOTH
            .into_iter()
            .flat_map(|d| self.rules(d).unwrap_or_default())
            .flat_map(|r| r.peers.iter().flatten())
            .filter_map(|p| match p {
                Peer::Pods(pp) => Some(pp),
                _ => None,
            })
    }

    /// Whether the policy applies to `pod` (its namespace and its `podSelector`).
    pub fn applies_to(&self, pod: &PodInfo) -> bool {
        pod.namespace == self.key.namespace && self.selects.matches(&pod.labels)
    }
}

/// Reads a NetworkPolicy; `None` without a namespace and name.
pub fn policy(np: &NetworkPolicy) -> Option<Policy> {
    let key = Key::of(&np.metadata)?;
    let mut problems = Vec::new();
    let spec = np.spec.clone().unwrap_or_default();
    // A missing podSelector is `{}` (the API server defaults it): every pod of the namespace.
    let selects = match &spec.pod_selector {
        None => Selector::all(),
        Some(s) => Selector::from_api(s).unwrap_or_else(|e| {
            problems.push(format!("podSelector: {e}; the policy selects no pod"));
            Selector::none()
        }),
    };
    let types: Vec<String> = match spec.policy_types.as_ref().filter(|t| !t.is_empty()) {
        Some(t) => t.clone(),
        None => {
            let mut t = vec!["Ingress".to_string()];
            if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
                t.push("Egress".into());
            }
            t
        }
    };
    for t in &types {
        if t != "Ingress" && t != "Egress" {
            problems.push(format!("policyTypes: unknown type {t:?} ignored"));
        }
    }
    let ns = key.namespace.clone();
    let ingress = types.iter().any(|t| t == "Ingress").then(|| {
        spec.ingress
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, r)| {
                rule(
                    &ns,
                    r.from.as_deref(),
                    r.ports.as_deref(),
                    &format!("ingress[{i}]"),
                    &mut problems,
                )
            })
            .collect()
    });
    let egress = types.iter().any(|t| t == "Egress").then(|| {
        spec.egress
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, r)| {
                rule(
                    &ns,
                    r.to.as_deref(),
                    r.ports.as_deref(),
                    &format!("egress[{i}]"),
                    &mut problems,
                )
            })
            .collect()
    });
    Some(Policy {
        key,
        selects,
        ingress,
        egress,
        problems,
    })
}

fn rule(
    ns: &str,
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&[NetworkPolicyPort]>,
    at: &str,
    problems: &mut Vec<String>,
) -> Rule {
    let peers = peers.filter(|p| !p.is_empty()).map(|ps| {
        ps.iter()
            .enumerate()
            .map(|(i, p)| {
                peer(ns, p).unwrap_or_else(|e| {
                    problems.push(format!("{at}.peers[{i}]: {e}; it matches nothing"));
                    Peer::Nothing
                })
            })
            .collect()
    });
    let ports = ports.filter(|p| !p.is_empty()).map(|ps| {
        ps.iter()
            .enumerate()
            .map(|(i, p)| {
                port(p).unwrap_or_else(|e| {
                    problems.push(format!("{at}.ports[{i}]: {e}; it matches nothing"));
                    Port::Nothing
                })
            })
            .collect()
    });
    Rule { peers, ports }
}

fn peer(ns: &str, p: &NetworkPolicyPeer) -> Result<Peer, String> {
    if let Some(block) = &p.ip_block {
        if p.pod_selector.is_some() || p.namespace_selector.is_some() {
            return Err("ipBlock cannot be combined with a selector in one peer".into());
        }
        return ip_block(block);
    }
    let sel =
        |s: &ApiSelector, what: &str| Selector::from_api(s).map_err(|e| format!("{what}: {e}"));
    match (&p.namespace_selector, &p.pod_selector) {
        (None, None) => Err("a peer needs a podSelector, a namespaceSelector or an ipBlock".into()),
        (None, Some(pods)) => Ok(Peer::Pods(PodPeer {
            namespaces: Scope::Own(ns.to_string()),
            pods: sel(pods, "podSelector")?,
        })),
        (Some(nss), pods) => Ok(Peer::Pods(PodPeer {
            namespaces: Scope::Selected(sel(nss, "namespaceSelector")?),
            pods: match pods {
                Some(p) => sel(p, "podSelector")?,
                None => Selector::all(),
            },
        })),
    }
}

fn ip_block(b: &IPBlock) -> Result<Peer, String> {
    let cidr = match parse_cidr(&b.cidr) {
        Ok(Some(c)) => c,
        // IPv6: no IPv4 address is in it.
        Ok(None) => return Ok(Peer::Nothing),
        Err(e) => return Err(e),
    };
    let mut except = Vec::new();
    for e in b.except.iter().flatten() {
        // An IPv6 exception takes nothing out of an IPv4 block.
        if let Some(e) = parse_cidr(e)? {
            except.push(e);
        }
    }
    Ok(Peer::Block(Block { cidr, except }))
}

/// An IPv4 CIDR (host bits cleared, as Go's ParseCIDR does); `None` for IPv6.
fn parse_cidr(s: &str) -> Result<Option<Ipv4Net>, String> {
    if let Ok(n) = s.parse::<Ipv4Net>() {
        return Ok(Some(n.trunc()));
    }
    if s.parse::<ipnet::Ipv6Net>().is_ok() {
        return Ok(None);
    }
    Err(format!("{s:?} is not a valid CIDR"))
}

fn port(p: &NetworkPolicyPort) -> Result<Port, String> {
    let protocol = Protocol::parse(p.protocol.as_deref()).ok_or_else(|| {
        format!(
            "protocol {:?} is not TCP, UDP or SCTP",
            p.protocol.as_deref().unwrap_or_default()
        )
    })?;
    match &p.port {
        None => {
            if p.end_port.is_some() {
                return Err("endPort needs a port".into());
            }
            Ok(Port::Protocol(protocol))
        }
        Some(IntOrString::Int(n)) => {
            let from = valid_port(*n)?;
            let to = match p.end_port {
                None => from,
                Some(e) => {
                    let e = valid_port(e)?;
                    if e < from {
                        return Err(format!("endPort {e} is below port {from}"));
                    }
                    e
                }
            };
            Ok(Port::Range(protocol, from, to))
        }
        Some(IntOrString::String(name)) => {
            if p.end_port.is_some() {
                return Err(format!("endPort cannot go with the named port {name:?}"));
            }
            if name.is_empty() {
                return Err("empty port name".into());
            }
            Ok(Port::Named(protocol, name.clone()))
        }
    }
}

fn valid_port(n: i32) -> Result<u16, String> {
    u16::try_from(n)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("port {n} is not between 1 and 65535"))
}

/// A snapshot of what policies depend on, answering "is this connection allowed?" straight from
/// the semantics. The data path must agree with it; tests hold both to that.
#[derive(Debug, Default, Clone)]
pub struct Cluster {
    pub namespaces: HashMap<String, Labels>,
    pub pods: Vec<PodInfo>,
    pub policies: Vec<Policy>,
}

impl Cluster {
    fn pod_at(&self, ip: Ipv4Addr) -> Option<&PodInfo> {
        self.pods.iter().find(|p| p.ip == ip)
    }

    fn ns_labels(&self, ns: &str) -> Labels {
        self.namespaces.get(ns).cloned().unwrap_or_default()
    }

    fn peer_matches(&self, peer: &Peer, ip: Ipv4Addr, pod: Option<&PodInfo>) -> bool {
        match peer {
            Peer::Pods(pp) => pod.is_some_and(|p| pp.matches(p, &self.ns_labels(&p.namespace))),
            Peer::Block(b) => b.contains(ip),
            Peer::Nothing => false,
        }
    }

    /// Whether `subject` (isolated or not for `dir`) lets the connection through: `peer_ip` is the
    /// other end, `server` the pod that serves the connection (named ports resolve on it).
    fn side_allows(
        &self,
        dir: Direction,
        subject: &PodInfo,
        peer_ip: Ipv4Addr,
        protocol: Protocol,
        port: u16,
        server: Option<&PodInfo>,
    ) -> bool {
        let peer_pod = self.pod_at(peer_ip);
        let mut isolated = false;
        for pol in self.policies.iter().filter(|p| p.applies_to(subject)) {
            let Some(rules) = pol.rules(dir) else {
                continue;
            };
            isolated = true;
            for r in rules {
                let peer_ok = r
                    .peers
                    .as_ref()
                    .is_none_or(|ps| ps.iter().any(|p| self.peer_matches(p, peer_ip, peer_pod)));
                let port_ok = r
                    .ports
                    .as_ref()
                    .is_none_or(|ps| ps.iter().any(|p| p.matches(protocol, port, server)));
                if peer_ok && port_ok {
                    return true;
                }
            }
        }
        !isolated
    }

    /// Whether a new connection from `from` to `to:port` is allowed by the egress policies of the
    /// source pod (if `from` is a pod) and the ingress policies of the destination pod (if `to` is).
    pub fn allows(&self, from: Ipv4Addr, to: Ipv4Addr, protocol: Protocol, port: u16) -> bool {
        if from == to {
            return true;
        }
        let src = self.pod_at(from);
        let dst = self.pod_at(to);
        let egress_ok =
            src.is_none_or(|s| self.side_allows(Direction::Egress, s, to, protocol, port, dst));
        let ingress_ok = dst
            .is_none_or(|d| self.side_allows(Direction::Ingress, d, from, protocol, port, Some(d)));
        egress_ok && ingress_ok
    }

    /// What node `node` alone decides: the egress side for a source pod on it, the ingress side
    /// for a destination pod on it (the other sides are other nodes' to enforce).
    pub fn allows_on(
        &self,
        node: &str,
        from: Ipv4Addr,
        to: Ipv4Addr,
        protocol: Protocol,
        port: u16,
    ) -> bool {
        if from == to {
            return true;
        }
        let src = self.pod_at(from).filter(|p| p.node == node);
        let dst = self.pod_at(to);
        let egress_ok =
            src.is_none_or(|s| self.side_allows(Direction::Egress, s, to, protocol, port, dst));
        let ingress_ok = dst
            .filter(|p| p.node == node)
            .is_none_or(|d| self.side_allows(Direction::Ingress, d, from, protocol, port, Some(d)));
        egress_ok && ingress_ok
    }
}

#[cfg(test)]
mod tests;

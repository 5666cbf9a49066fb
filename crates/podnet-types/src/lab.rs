//! The lab's address plan: the underlay with its router, the cluster CIDR split into one podCIDR per
//! node, the service CIDR. Pure: derived from a few flags, validated, serialisable into the lab state.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// How pod traffic crosses between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// flannel-style overlay: one VXLAN device per node, FDB and neighbour entries per peer.
    Vxlan,
    /// A route per peer podCIDR via the peer's underlay address (nodes share a layer-2 segment).
    HostGw,
    /// The routes live on the router: nodes send everything not local to their default gateway.
    Gateway,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Vxlan, Mode::HostGw, Mode::Gateway];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Vxlan => "vxlan",
            Mode::HostGw => "host-gw",
            Mode::Gateway => "gateway",
        }
    }

    /// Bytes of encapsulation a mode adds to every packet between nodes (outer IPv4 20 + UDP 8 +
    /// VXLAN 8 + inner Ethernet 14 = 50 for VXLAN).
    pub fn overhead(self) -> u32 {
        match self {
            Mode::Vxlan => 50,
            Mode::HostGw | Mode::Gateway => 0,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "vxlan" => Ok(Mode::Vxlan),
            "host-gw" | "hostgw" => Ok(Mode::HostGw),
            "gateway" => Ok(Mode::Gateway),
            other => Err(format!(
                "unknown mode {other:?} (vxlan, host-gw or gateway)"
            )),
        }
    }
}

/// One node of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlan {
    pub name: String,
    /// 1-based position; node N has underlay address router+N and the N-th podCIDR.
    pub index: u32,
    pub underlay_ip: Ipv4Addr,
    #[serde(rename = "podCIDR")]
    pub pod_cidr: Ipv4Net,
}

impl NodePlan {
    /// The pods' gateway on this node: the first host of its podCIDR (held by the node bridge).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.pod_cidr.network()) + 1)
    }

    /// The node's VXLAN tunnel endpoint address, flannel-style: the podCIDR's network address as /32.
    pub fn vtep_ip(&self) -> Ipv4Addr {
        self.pod_cidr.network()
    }
}

/// What the user can choose with flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSpec {
    pub nodes: u32,
    pub underlay: Ipv4Net,
    #[serde(rename = "clusterCIDR")]
    pub cluster_cidr: Ipv4Net,
    #[serde(rename = "nodeCIDRPrefix")]
    pub node_prefix: u8,
    #[serde(rename = "serviceCIDR")]
    pub service_cidr: Ipv4Net,
    /// MTU of the underlay links.
    pub mtu: u32,
    /// The resolvers the lab relays names outside the cluster to (empty: the machine's, from its
    /// `/etc/resolv.conf`). Tests point it at a resolver of their own on loopback.
    #[serde(default, rename = "upstreamDNS", skip_serializing_if = "Vec::is_empty")]
    pub upstream_dns: Vec<std::net::SocketAddr>,
    /// Where LoadBalancer Services get their external addresses (on the router's internet side).
    #[serde(default, rename = "loadBalancerPool")]
    pub lb_pool: LbPool,
}

/// An inclusive range of addresses for LoadBalancer Services (`--lb-pool`), as a cloud's or
/// MetalLB's address pool: written `FIRST-LAST` or as a CIDR (its network and broadcast addresses
/// left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LbPool {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl Default for LbPool {
    /// The upper part of the lab's internet, away from the router (.1) and the internet host (.10).
    fn default() -> Self {
        LbPool {
            first: Ipv4Addr::new(203, 0, 113, 100),
            last: Ipv4Addr::new(203, 0, 113, 199),
        }
    }
}

impl LbPool {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&ip)
    }

    /// How many addresses the pool holds.
    pub fn size(&self) -> u64 {
        u64::from(u32::from(self.last)) + 1 - u64::from(u32::from(self.first))
    }
}

impl fmt::Display for LbPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl FromStr for LbPool {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| format!("address pool {s:?}: {why} (FIRST-LAST or a CIDR)");
        if let Some((a, b)) = s.split_once('-') {
            let first: Ipv4Addr = a.trim().parse().map_err(|_| bad("bad first address"))?;
            let last: Ipv4Addr = b.trim().parse().map_err(|_| bad("bad last address"))?;
            if first > last {
                return Err(bad("the first address is after the last"));
            }
            return Ok(LbPool { first, last });
        }
        let net: Ipv4Net = s.parse().map_err(|_| bad("not a range"))?;
        if net.trunc() != net {
            return Err(bad("host bits set"));
        }
        let (first, last) = if net.prefix_len() >= 31 {
            (net.network(), net.broadcast())
        } else {
            (
                Ipv4Addr::from(u32::from(net.network()) + 1),
                Ipv4Addr::from(u32::from(net.broadcast()) - 1),
            )
        };
        Ok(LbPool { first, last })
    }
}

impl Default for PlanSpec {
    fn default() -> Self {
        PlanSpec {
            nodes: 2,
            underlay: "10.100.0.0/24".parse().expect("literal"),
            cluster_cidr: "10.244.0.0/16".parse().expect("literal"),
            node_prefix: 24,
            // Kubernetes' own default, 10.96.0.0/12, spans 10.96-10.111 and so contains the tutorials'
            // underlay 10.100.0.0/24: a ClusterIP could equal a node's address. kind's /16 does not.
            service_cidr: "10.96.0.0/16".parse().expect("literal"),
            mtu: 1500,
            upstream_dns: Vec::new(),
            lb_pool: LbPool::default(),
        }
    }
}

/// The validated plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub spec: PlanSpec,
    pub router_ip: Ipv4Addr,
    pub nodes: Vec<NodePlan>,
}

/// The simulated internet host behind the router (TEST-NET-3, RFC 5737).
pub const INTERNET_NET: &str = "203.0.113.0/24";
pub const INTERNET_ROUTER_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
pub const INTERNET_HOST_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("--nodes: {0} is not between 1 and {1}")]
    NodeCount(u32, u32),
    #[error("--{flag}: {net} has host bits set; did you mean {}?", net.trunc())]
    HostBits { flag: &'static str, net: Ipv4Net },
    #[error("--underlay: {0} has room for {1} nodes behind the router, {2} asked for")]
    UnderlayTooSmall(Ipv4Net, u32, u32),
    #[error(
        "--node-cidr-prefix: /{prefix} must be longer than the cluster CIDR {cluster} and at most /28"
    )]
    NodePrefix { prefix: u8, cluster: Ipv4Net },
    #[error("--cluster-cidr: {0} holds {1} node podCIDRs of /{2}, {3} asked for")]
    ClusterTooSmall(Ipv4Net, u64, u8, u32),
    #[error("{a} and {b} overlap")]
    Overlap { a: String, b: String },
    #[error("--mtu: {0} is not between 1280 and 9000")]
    Mtu(u32),
    #[error("--lb-pool: {0} {1}")]
    LbPool(LbPool, String),
}

pub const MAX_NODES: u32 = 64;

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The pool must lie on the router's internet side (the internet host reaches it there, the router
/// answering ARP for it) and leave the router's, the internet host's and the broadcast address free.
fn check_lb_pool(pool: LbPool, internet: Ipv4Net) -> Result<(), PlanError> {
    let err = |why: String| Err(PlanError::LbPool(pool, why));
    if !internet.contains(&pool.first) || !internet.contains(&pool.last) {
        return err(format!("is not inside the lab's internet {internet}"));
    }
    for (what, ip) in [
        ("the network address", internet.network()),
        ("the router's address", INTERNET_ROUTER_IP),
        ("the internet host's address", INTERNET_HOST_IP),
        ("the broadcast address", internet.broadcast()),
    ] {
        if pool.contains(ip) {
            return err(format!("holds {what} {ip}"));
        }
    }
    Ok(())
}

impl Plan {
    pub fn new(spec: PlanSpec) -> Result<Plan, PlanError> {
        if spec.nodes == 0 || spec.nodes > MAX_NODES {
            return Err(PlanError::NodeCount(spec.nodes, MAX_NODES));
        }
        for (flag, net) in [
            ("underlay", spec.underlay),
            ("cluster-cidr", spec.cluster_cidr),
            ("service-cidr", spec.service_cidr),
        ] {
            if net.trunc() != net {
                return Err(PlanError::HostBits { flag, net });
            }
        }
        if !(1280..=9000).contains(&spec.mtu) {
            return Err(PlanError::Mtu(spec.mtu));
        }
        // Underlay: the router takes the first host, nodes the following ones, the broadcast stays free.
        let hosts = (1u64 << (32 - spec.underlay.prefix_len())).saturating_sub(2);
        let room = hosts.saturating_sub(1).min(u64::from(u32::MAX)) as u32;
        if room < spec.nodes {
            return Err(PlanError::UnderlayTooSmall(spec.underlay, room, spec.nodes));
        }
        if spec.node_prefix <= spec.cluster_cidr.prefix_len() || spec.node_prefix > 28 {
            return Err(PlanError::NodePrefix {
                prefix: spec.node_prefix,
                cluster: spec.cluster_cidr,
            });
        }
        let per_cluster = 1u64 << (spec.node_prefix - spec.cluster_cidr.prefix_len());
        if per_cluster < u64::from(spec.nodes) + 1 {
            return Err(PlanError::ClusterTooSmall(
                spec.cluster_cidr,
                per_cluster - 1,
                spec.node_prefix,
                spec.nodes,
            ));
        }
        let internet: Ipv4Net = INTERNET_NET.parse().expect("literal");
        let named = [
            ("--underlay", spec.underlay),
            ("--cluster-cidr", spec.cluster_cidr),
            ("--service-cidr", spec.service_cidr),
            ("the lab's internet 203.0.113.0/24", internet),
        ];
        for (i, (na, a)) in named.iter().enumerate() {
            for (nb, b) in &named[i + 1..] {
                if overlaps(*a, *b) {
                    return Err(PlanError::Overlap {
                        a: format!("{na} {a}"),
                        b: format!("{nb} {b}"),
                    });
                }
            }
        }
        check_lb_pool(spec.lb_pool, internet)?;
        let base = u32::from(spec.underlay.network());
        let router_ip = Ipv4Addr::from(base + 1);
        let block = 1u32 << (32 - spec.node_prefix);
        let nodes = (1..=spec.nodes)
            .map(|n| NodePlan {
                name: format!("node{n}"),
                index: n,
                underlay_ip: Ipv4Addr::from(base + 1 + n),
                // The cluster CIDR's first block is left unused, so node N owns the N-th one
                // (10.244.1.0/24 for node1, as in the tutorials).
                pod_cidr: Ipv4Net::new(
                    Ipv4Addr::from(u32::from(spec.cluster_cidr.network()) + n * block),
                    spec.node_prefix,
                )
                .expect("prefix checked"),
            })
            .collect();
        Ok(Plan {
            spec,
            router_ip,
            nodes,
        })
    }

    pub fn node(&self, name: &str) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The MTU pods get in a mode: the underlay's, less the encapsulation.
    pub fn pod_mtu(&self, mode: Mode) -> u32 {
        self.spec.mtu - mode.overhead()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_tutorial() {
        let plan = Plan::new(PlanSpec::default()).unwrap();
        assert_eq!(plan.router_ip.to_string(), "10.100.0.1");
        assert_eq!(plan.nodes.len(), 2);
        assert_eq!(plan.nodes[0].name, "node1");
        assert_eq!(plan.nodes[0].underlay_ip.to_string(), "10.100.0.2");
        assert_eq!(plan.nodes[0].pod_cidr.to_string(), "10.244.1.0/24");
        assert_eq!(plan.nodes[1].underlay_ip.to_string(), "10.100.0.3");
        assert_eq!(plan.nodes[1].pod_cidr.to_string(), "10.244.2.0/24");
        assert_eq!(plan.nodes[0].gateway().to_string(), "10.244.1.1");
        assert_eq!(plan.nodes[0].vtep_ip().to_string(), "10.244.1.0");
        assert_eq!(plan.pod_mtu(Mode::Vxlan), 1450);
        assert_eq!(plan.pod_mtu(Mode::HostGw), 1500);
    }

    #[test]
    fn bad_flags_are_named() {
        let e = Plan::new(PlanSpec {
            nodes: 0,
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("--nodes"), "{e}");
        let e = Plan::new(PlanSpec {
            underlay: "10.100.0.0/30".parse().unwrap(),
            nodes: 2,
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("--underlay"), "{e}");
        let e = Plan::new(PlanSpec {
            cluster_cidr: "10.100.0.0/16".parse().unwrap(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("overlap"), "{e}");
        let e = Plan::new(PlanSpec {
            service_cidr: "10.96.0.0/12".parse().unwrap(),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--underlay 10.100.0.0/24 and --service-cidr 10.96.0.0/12 overlap"
        );
        let e = Plan::new(PlanSpec {
            cluster_cidr: "10.244.0.0/23".parse().unwrap(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("--cluster-cidr"), "{e}");
        let e = Plan::new(PlanSpec {
            underlay: "10.100.0.5/24".parse().unwrap(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("did you mean 10.100.0.0/24"), "{e}");
    }

    #[test]
    fn lb_pools_parse_and_are_checked() {
        let p: LbPool = "203.0.113.100-203.0.113.199".parse().unwrap();
        assert_eq!(p, LbPool::default());
        assert_eq!(p.size(), 100);
        assert_eq!(p.to_string().parse::<LbPool>().unwrap(), p);
        let c: LbPool = "203.0.113.128/26".parse().unwrap();
        assert_eq!(c.to_string(), "203.0.113.129-203.0.113.190");
        let one: LbPool = "203.0.113.50/32".parse().unwrap();
        assert_eq!((one.first, one.size()), (one.last, 1));
        assert!("203.0.113.9-203.0.113.3".parse::<LbPool>().is_err());
        assert!("203.0.113.129/26".parse::<LbPool>().is_err());
        assert!("x".parse::<LbPool>().is_err());
        for (pool, says) in [
            (
                "203.0.113.5-203.0.113.20",
                "internet host's address 203.0.113.10",
            ),
            ("203.0.113.0/28", "router's address 203.0.113.1"),
            ("203.0.113.250-203.0.113.255", "broadcast"),
            ("198.51.100.0/24", "not inside"),
        ] {
            let e = Plan::new(PlanSpec {
                lb_pool: pool.parse().unwrap(),
                ..Default::default()
            })
            .unwrap_err();
            assert!(e.to_string().starts_with("--lb-pool"), "{e}");
            assert!(e.to_string().contains(says), "{pool}: {e}");
        }
    }

    #[test]
    fn a_state_file_without_a_pool_gets_the_default() {
        let spec = PlanSpec::default();
        let mut v = serde_json::to_value(&spec).unwrap();
        v.as_object_mut().unwrap().remove("loadBalancerPool");
        let back: PlanSpec = serde_json::from_value(v).unwrap();
        assert_eq!(back.lb_pool, LbPool::default());
    }

    #[test]
    fn modes_parse_and_print() {
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>().unwrap(), m);
        }
        assert!("ipip".parse::<Mode>().is_err());
    }
}

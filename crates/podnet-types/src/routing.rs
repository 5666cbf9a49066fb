//! What the kernel of each lab namespace must hold for a routing mode, as data: the input of the
//! reconciler (podnet-lab) and of explanations (`podnet trace`). Pure: from the set of nodes (name,
//! underlay address, podCIDR) and the mode to routes, neighbour and FDB entries and the VXLAN device.

use crate::lab::{Mode, NodePlan};
use crate::names;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// The node's underlay interface (its "physical" NIC).
pub const NODE_UPLINK: &str = "eth0";
/// The router's bridge joining every node's uplink: the underlay segment.
pub const ROUTER_UNDERLAY: &str = "underlay";
/// The node's VXLAN device (flannel calls its own `flannel.1`).
pub const VXLAN_DEVICE: &str = "pn-vxlan";
pub const VXLAN_VNI: u32 = 1;
/// The IANA VXLAN port, so `tcpdump` decodes the overlay without being told.
pub const VXLAN_PORT: u16 = 4789;

/// Which device a route leaves through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dev {
    /// The node's `eth0`, or the router's `underlay` bridge.
    Underlay,
    Vxlan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RouteSpec {
    pub dst: Ipv4Net,
    pub via: Ipv4Addr,
    pub dev: Dev,
    /// The next hop is on the link without an address covering it (VXLAN peers' VTEP addresses).
    pub onlink: bool,
    /// Why the route exists, for explanations.
    pub reason: RouteReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RouteReason {
    DefaultToRouter,
    PeerPods,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VxlanSpec {
    pub name: String,
    pub vni: u32,
    pub port: u16,
    pub local: Ipv4Addr,
    pub mtu: u32,
    pub mac: [u8; 6],
    /// The VTEP address: the podCIDR's network address as a /32.
    pub address: Ipv4Net,
}

/// One peer as the overlay sees it: its VTEP's MAC and address, reached at its underlay address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OverlayPeer {
    pub vtep_ip: Ipv4Addr,
    pub vtep_mac: [u8; 6],
    pub underlay_ip: Ipv4Addr,
}

/// Everything routing-related one node's namespace must hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeNetwork {
    pub vxlan: Option<VxlanSpec>,
    pub routes: Vec<RouteSpec>,
    /// With VXLAN: a permanent neighbour (VTEP IP -> MAC) and an FDB entry (MAC -> underlay IP) per peer.
    pub peers: Vec<OverlayPeer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterNetwork {
    pub routes: Vec<RouteSpec>,
}

pub fn vtep_mac(node: &NodePlan) -> [u8; 6] {
    names::mac_for_ip(node.vtep_ip())
}

/// The desired state of `me`, given every node of the cluster (`me` may be among them).
pub fn node_network(
    mode: Mode,
    me: &NodePlan,
    nodes: &[NodePlan],
    router: Ipv4Addr,
    underlay_mtu: u32,
) -> NodeNetwork {
    let peers: Vec<&NodePlan> = nodes.iter().filter(|n| n.name != me.name).collect();
    let mut routes = vec![RouteSpec {
        dst: "0.0.0.0/0".parse().expect("literal"),
        via: router,
        dev: Dev::Underlay,
        onlink: false,
        reason: RouteReason::DefaultToRouter,
    }];
    let mut vxlan = None;
    let mut overlay = Vec::new();
    match mode {
        Mode::Gateway => {}
        Mode::HostGw => {
            for p in &peers {
                routes.push(RouteSpec {
                    dst: p.pod_cidr,
                    via: p.underlay_ip,
                    dev: Dev::Underlay,
                    onlink: false,
                    reason: RouteReason::PeerPods,
                });
            }
        }
        Mode::Vxlan => {
            vxlan = Some(VxlanSpec {
                name: VXLAN_DEVICE.to_string(),
                vni: VXLAN_VNI,
                port: VXLAN_PORT,
                local: me.underlay_ip,
                mtu: underlay_mtu - Mode::Vxlan.overhead(),
                mac: vtep_mac(me),
                address: Ipv4Net::new(me.vtep_ip(), 32).expect("/32"),
            });
            for p in &peers {
                routes.push(RouteSpec {
                    dst: p.pod_cidr,
                    via: p.vtep_ip(),
                    dev: Dev::Vxlan,
                    onlink: true,
                    reason: RouteReason::PeerPods,
                });
                overlay.push(OverlayPeer {
                    vtep_ip: p.vtep_ip(),
                    vtep_mac: vtep_mac(p),
                    underlay_ip: p.underlay_ip,
                });
            }
        }
    }
    NodeNetwork {
        vxlan,
        routes,
        peers: overlay,
    }
}

/// The desired state of the router: in gateway mode, a route per node's podCIDR via that node.
pub fn router_network(mode: Mode, nodes: &[NodePlan]) -> RouterNetwork {
    let routes = match mode {
        Mode::Gateway => nodes
            .iter()
            .map(|n| RouteSpec {
                dst: n.pod_cidr,
                via: n.underlay_ip,
                dev: Dev::Underlay,
                onlink: false,
                reason: RouteReason::PeerPods,
            })
            .collect(),
        Mode::Vxlan | Mode::HostGw => Vec::new(),
    };
    RouterNetwork { routes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Plan, PlanSpec};

    fn plan3() -> Plan {
        Plan::new(PlanSpec {
            nodes: 3,
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn vxlan_has_a_device_a_route_and_an_entry_per_peer() {
        let p = plan3();
        let n = node_network(Mode::Vxlan, &p.nodes[0], &p.nodes, p.router_ip, 1500);
        let v = n.vxlan.as_ref().unwrap();
        assert_eq!(v.mtu, 1450);
        assert_eq!(v.local.to_string(), "10.100.0.2");
        assert_eq!(v.address.to_string(), "10.244.1.0/32");
        assert_eq!(n.peers.len(), 2);
        let r = n
            .routes
            .iter()
            .find(|r| r.dst.to_string() == "10.244.2.0/24")
            .unwrap();
        assert_eq!(
            (r.via.to_string().as_str(), r.dev, r.onlink),
            ("10.244.2.0", Dev::Vxlan, true)
        );
        assert_eq!(n.peers[0].underlay_ip.to_string(), "10.100.0.3");
        assert_eq!(
            crate::names::format_mac(&n.peers[0].vtep_mac),
            "0a:58:0a:f4:02:00"
        );
    }

    #[test]
    fn host_gw_routes_via_peer_underlay_addresses() {
        let p = plan3();
        let n = node_network(Mode::HostGw, &p.nodes[1], &p.nodes, p.router_ip, 1500);
        assert!(n.vxlan.is_none() && n.peers.is_empty());
        let dsts: Vec<String> = n
            .routes
            .iter()
            .map(|r| format!("{} via {}", r.dst, r.via))
            .collect();
        assert_eq!(
            dsts,
            vec![
                "0.0.0.0/0 via 10.100.0.1",
                "10.244.1.0/24 via 10.100.0.2",
                "10.244.3.0/24 via 10.100.0.4"
            ]
        );
    }

    #[test]
    fn gateway_mode_puts_the_routes_on_the_router() {
        let p = plan3();
        let n = node_network(Mode::Gateway, &p.nodes[0], &p.nodes, p.router_ip, 1500);
        assert_eq!(n.routes.len(), 1, "only the default route");
        let r = router_network(Mode::Gateway, &p.nodes);
        assert_eq!(r.routes.len(), 3);
        assert!(router_network(Mode::Vxlan, &p.nodes).routes.is_empty());
    }
}

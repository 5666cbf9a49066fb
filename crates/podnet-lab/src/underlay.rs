//! Building the lab's fixed network: the router with its underlay bridge, the simulated internet host,
//! and each node (a network namespace plus a UTS namespace) wired to the underlay. Routing between
//! nodes is not done here but by the reconciler.

use crate::cniconf;
use crate::error::{Result, io, nl, ns};
use crate::paths::LabPaths;
use ipnet::{IpNet, Ipv4Net};
use podnet_netlink::{Netlink, Route, VethSpec};
use podnet_netns::persist::{self, NsKind};
use podnet_netns::{NetNs, sysctl};
use podnet_types::lab::{INTERNET_HOST_IP, INTERNET_NET, INTERNET_ROUTER_IP, NodePlan, Plan};
use podnet_types::routing::{NODE_UPLINK, ROUTER_UNDERLAY};
use std::net::IpAddr;

fn net(ip: std::net::Ipv4Addr, prefix: u8) -> IpNet {
    IpNet::V4(Ipv4Net::new(ip, prefix).expect("valid prefix"))
}

/// Sysctls of a namespace that forwards: forwarding on, and no ICMP redirects either way (the router
/// forwards between nodes on one segment in gateway mode; redirects would teach nodes to bypass it).
fn forwarding_sysctls() -> podnet_netns::Result<()> {
    sysctl::ensure(&["net", "ipv4", "ip_forward"], "1")?;
    for scope in ["all", "default"] {
        sysctl::write(&["net", "ipv4", "conf", scope, "send_redirects"], "0")?;
        sysctl::write(&["net", "ipv4", "conf", scope, "accept_redirects"], "0")?;
    }
    Ok(())
}

pub fn build_router(paths: &LabPaths, plan: &Plan) -> Result<NetNs> {
    let name = paths.router_netns();
    let router =
        NetNs::create_named(&name).map_err(ns(format!("create router namespace {name}")))?;
    router
        .run(forwarding_sysctls)
        .map_err(ns("enter router"))?
        .map_err(ns("set router sysctls"))?;
    let mut rnl = router.netlink().map_err(ns("open netlink in router"))?;
    let bridge = rnl
        .ensure_bridge(
            ROUTER_UNDERLAY,
            Some("podnet: the lab's underlay segment"),
            // Fixed, like the node bridges: nodes keep a valid ARP entry for their gateway whatever
            // ports come and go.
            Some(podnet_types::names::mac_for_ip(plan.router_ip)),
        )
        .map_err(nl("create underlay bridge in router"))?;
    let addr = net(plan.router_ip, plan.spec.underlay.prefix_len());
    rnl.add_address(bridge.index, addr, true)
        .map_err(nl(format!("add {addr} to the router's underlay")))?;
    Ok(router)
}

/// The simulated internet: one host at 203.0.113.10 behind the router's `internet` link. It routes the
/// underlay back to the router (nodes' addresses are what it sees; pods are masqueraded by their node).
pub fn build_internet(paths: &LabPaths, plan: &Plan, router: &NetNs) -> Result<NetNs> {
    let name = paths.internet_netns();
    let internet =
        NetNs::create_named(&name).map_err(ns(format!("create internet namespace {name}")))?;
    let prefix: Ipv4Net = INTERNET_NET.parse().expect("literal");
    let mut rnl = router.netlink().map_err(ns("open netlink in router"))?;
    rnl.create_veth(&VethSpec {
        name: "internet",
        peer_name: "eth0",
        peer_netns_fd: Some(internet.fd()),
        mtu: Some(plan.spec.mtu),
        alias: Some("podnet: link to the lab's internet"),
        up: true,
        ..Default::default()
    })
    .map_err(nl("create the router's internet link"))?;
    let ri = rnl
        .link_by_name("internet")
        .map_err(nl("look up internet link"))?
        .expect("just created");
    rnl.add_address(ri.index, net(INTERNET_ROUTER_IP, prefix.prefix_len()), true)
        .map_err(nl("address the router's internet link"))?;
    let mut inl = internet.netlink().map_err(ns("open netlink in internet"))?;
    let eth0 = inl
        .link_by_name("eth0")
        .map_err(nl("look up internet eth0"))?
        .expect("just created");
    inl.add_address(eth0.index, net(INTERNET_HOST_IP, prefix.prefix_len()), true)
        .map_err(nl("address the internet host"))?;
    inl.set_link_up(eth0.index, true)
        .map_err(nl("bring the internet host's eth0 up"))?;
    let back = Route::new(IpNet::V4(plan.spec.underlay))
        .via(IpAddr::V4(INTERNET_ROUTER_IP))
        .dev(eth0.index);
    inl.add_route(&back, true)
        .map_err(nl("route the underlay back from the internet host"))?;
    Ok(internet)
}

/// A node: network namespace + UTS namespace (hostname = node name), its uplink `eth0` on the underlay.
/// `router_nl` is a netlink socket inside the router's namespace.
pub fn build_node(
    paths: &LabPaths,
    plan: &Plan,
    node: &NodePlan,
    router_nl: &mut Netlink,
) -> Result<NetNs> {
    let name = paths.node_netns(&node.name);
    let ns_handle =
        NetNs::create_named(&name).map_err(ns(format!("create namespace of {}", node.name)))?;
    ns_handle
        .run(|| {
            forwarding_sysctls()?;
            // Bridged traffic through netfilter (per namespace since Linux 5.3), as kube-proxy
            // requires of a node: a Service DNAT'd to a pod on the same bridge gets its replies
            // un-NATed only so.
            sysctl::ensure(&["net", "bridge", "bridge-nf-call-iptables"], "1")
        })
        .map_err(ns("enter node"))?
        .map_err(ns(format!("set sysctls of {}", node.name)))?;

    let uts_dir = paths.ns_dir();
    std::fs::create_dir_all(&uts_dir).map_err(io(format!("create {}", uts_dir.display())))?;
    let hostname = node.name.clone();
    persist::create(NsKind::Uts, &paths.uts_file(&node.name), move || {
        nix::unistd::sethostname(&hostname)
            .map_err(|e| podnet_netns::Error::sys(format!("set hostname {hostname}"), e))
    })
    .map_err(ns(format!("create UTS namespace of {}", node.name)))?;

    let underlay = router_nl
        .link_by_name(ROUTER_UNDERLAY)
        .map_err(nl("look up the underlay bridge"))?
        .expect("router built first");
    let alias = format!("podnet: uplink of {}", node.name);
    router_nl
        .create_veth(&VethSpec {
            name: &node.name,
            peer_name: NODE_UPLINK,
            peer_netns_fd: Some(ns_handle.fd()),
            mtu: Some(plan.spec.mtu),
            master: Some(underlay.index),
            alias: Some(&alias),
            up: true,
            ..Default::default()
        })
        .map_err(nl(format!("create the uplink of {}", node.name)))?;

    let mut nnl = ns_handle
        .netlink()
        .map_err(ns(format!("open netlink in {}", node.name)))?;
    let eth0 = nnl
        .link_by_name(NODE_UPLINK)
        .map_err(nl("look up node eth0"))?
        .expect("just created");
    let addr = net(node.underlay_ip, plan.spec.underlay.prefix_len());
    nnl.add_address(eth0.index, addr, true)
        .map_err(nl(format!("address {} of {}", addr, node.name)))?;
    nnl.set_link_up(eth0.index, true)
        .map_err(nl(format!("bring up eth0 of {}", node.name)))?;
    // The node bridge exists from the start (made by the plugin's own code, so the two always agree):
    // the node then routes its podCIDR locally even before its first pod, instead of sending it back
    // out through its default route.
    podnet_cni::host::ensure_bridge(&mut nnl, cniconf::BRIDGE, node.gateway(), node.pod_cidr)
        .map_err(|e| {
            crate::error::Error::Other(format!("create the bridge of {}: {e}", node.name))
        })?;
    Ok(ns_handle)
}

//! The host (runtime namespace) side: the node bridge with the subnet's gateway address, forwarding.

use crate::fail;
use ipnet::{IpNet, Ipv4Net};
use podnet_netlink::{Link, Netlink};
use podnet_netns::sysctl;
use podnet_types::cni::CniError;
use podnet_types::names;
use std::net::Ipv4Addr;

/// Makes sure the bridge exists, is up, has a fixed MAC and holds the gateway address.
///
/// Race-free: concurrent ADDs may all try to create the bridge; the losers see it exists and use it,
/// and adding an address that is already there is not an error. The MAC is derived from the gateway
/// address and set when the bridge is made: otherwise a bridge takes the lowest MAC of its ports and
/// changes it as pods come and go, leaving stale gateway entries in pods' ARP caches. An existing
/// bridge keeps its MAC: it may be shared with another network, whose pods cache that MAC.
pub fn ensure_bridge(
    nl: &mut Netlink,
    name: &str,
    gateway: Ipv4Addr,
    subnet: Ipv4Net,
) -> Result<Link, CniError> {
    let bridge = match nl
        .link_by_name(name)
        .map_err(|e| fail::kernel(format!("look up bridge {name}"), e))?
    {
        Some(link) if link.kind.as_deref() == Some("bridge") => link,
        Some(link) => {
            return Err(fail::kernel(
                format!("use bridge {name}"),
                format!(
                    "{name} exists but is a {}",
                    link.kind.as_deref().unwrap_or("device without a kind")
                ),
            ));
        }
        None => nl
            .ensure_bridge(
                name,
                Some("podnet: node bridge"),
                Some(names::mac_for_ip(gateway)),
            )
            .map_err(|e| fail::kernel(format!("create bridge {name}"), e))?,
    };
    // Router advertisements and redirects come from routers, and no pod is one: a pod must not
    // give the node a route or an address (containernetworking/plugins#498, CVE-2020-10749).
    for key in ["accept_ra", "accept_redirects"] {
        podnet_netns::sysctl::ensure_if_present(&["net", "ipv6", "conf", name, key], "0")
            .map_err(|e| fail::kernel(format!("set {key} of bridge {name}"), e))?;
    }
    if !bridge.up {
        nl.set_link_up(bridge.index, true)
            .map_err(|e| fail::kernel(format!("bring bridge {name} up"), e))?;
    }
    let gw = IpNet::new(gateway.into(), subnet.prefix_len()).expect("prefix from a valid subnet");
    let present = nl
        .addresses(Some(bridge.index))
        .map_err(|e| fail::kernel(format!("list addresses of bridge {name}"), e))?
        .iter()
        .any(|a| a.addr == gw);
    if !present {
        nl.add_address(bridge.index, gw, true)
            .map_err(|e| fail::kernel(format!("add gateway {gw} to bridge {name}"), e))?;
    }
    Ok(bridge)
}

/// Routing between the bridge and the rest of the node needs IPv4 forwarding on.
pub fn ensure_forwarding() -> Result<(), CniError> {
    sysctl::ensure(&["net", "ipv4", "ip_forward"], "1")
        .map_err(|e| fail::kernel("enable IPv4 forwarding", e))
}

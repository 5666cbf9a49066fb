//! Rebuilding a network's reservations from the kernel when its state file cannot be read.
//!
//! The node itself knows which attachments exist: each has a host veth whose alias names it
//! (`podnet:<network>/<container>/<ifname>`), and the pod end of that veth holds the pod's address. The
//! pod's namespace is found through the netnsid the node's namespace gave it. Host ports are taken
//! back from the nftables maps by pod address. If any attachment cannot be accounted for (no alias, no
//! namespace to be found, no address), the rebuild refuses: an incomplete record would hand an address
//! out twice, which is worse than refusing.

use crate::fail;
use podnet_netlink::Netlink;
use podnet_netns::NetNs;
use podnet_types::cni::{Attachment, CniError, ErrorCode, Ipam, NetConf};
use podnet_types::ipam::{PoolState, Reservation};
use podnet_types::names;
use std::net::{IpAddr, Ipv4Addr};

pub fn rebuild(conf: &NetConf) -> Result<PoolState, CniError> {
    let mut nl = Netlink::open().map_err(|e| fail::kernel("open netlink", e))?;
    let links = nl.links().map_err(|e| fail::kernel("list links", e))?;
    let bridge = links
        .iter()
        .find(|l| l.name == conf.bridge)
        .map(|l| l.index);
    let subnet = match &conf.ipam {
        Ipam::Builtin(b) => Some(b.subnet),
        Ipam::Delegated { .. } => None,
    };
    let host_ports = crate::firewall::hostports::all().unwrap_or_default();
    let mut state = PoolState::new();
    let mut unaccounted = Vec::new();
    for link in links
        .iter()
        .filter(|l| l.name.starts_with(names::HOST_VETH_PREFIX))
    {
        let owner = match link.alias.as_deref() {
            Some(alias) => match names::parse_host_veth_alias(alias, &conf.name) {
                Some((container, ifname)) => Attachment {
                    container_id: container.into(),
                    ifname: ifname.into(),
                },
                None if alias.starts_with(&format!("{}{}/", names::ALIAS_PREFIX, conf.name)) => {
                    unaccounted.push(format!("{} (alias cut short)", link.name));
                    continue;
                }
                None => continue, // another network's attachment
            },
            None if bridge.is_some() && link.master == bridge => {
                unaccounted.push(format!("{} (no alias)", link.name));
                continue;
            }
            None => continue,
        };
        let address = (|| -> Option<Ipv4Addr> {
            let pod = NetNs::find_by_nsid(&mut nl, link.link_netnsid?)?;
            let mut pnl = pod.netlink().ok()?;
            let addrs = pnl.addresses(Some(link.peer_index?)).ok()?;
            addrs.iter().find_map(|a| match a.addr.addr() {
                IpAddr::V4(v4) if subnet.is_none_or(|s| s.contains(&v4)) => Some(v4),
                _ => None,
            })
        })();
        let Some(ip) = address else {
            unaccounted.push(format!(
                "{} of {}/{}",
                link.name, owner.container_id, owner.ifname
            ));
            continue;
        };
        let port_mappings = host_ports
            .iter()
            .filter(|(pod, _)| *pod == ip)
            .map(|(_, m)| *m)
            .collect();
        state.reservations.insert(
            ip,
            Reservation {
                owner,
                port_mappings,
            },
        );
        state.last = Some(state.last.map_or(ip, |l| l.max(ip)));
    }
    if unaccounted.is_empty() {
        Ok(state)
    } else {
        Err(CniError::new(
            ErrorCode::Io,
            format!(
                "cannot account for the address of {}: refusing to guess",
                unaccounted.join(", ")
            ),
        ))
    }
}

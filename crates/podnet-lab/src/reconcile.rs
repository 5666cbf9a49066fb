//! The routing reconciler: from the desired state of each namespace (podnet_types::routing) to its
//! kernel state. Idempotent and safe to rerun: it reads what is there and changes only the difference.
//! Only podnet's own objects are touched: routes with protocol `podnet`, and a `pn-vxlan` device whose
//! alias says podnet made it, with the entries on it.
//!
//! A change of mode runs in three passes, each over every namespace before the next starts:
//! 1. [`Phase::Links`]: VXLAN devices and their peer entries appear (nothing is removed);
//! 2. [`Phase::Routes`]: routes are added or replaced in place (a route changing its next hop never
//!    disappears in between);
//! 3. [`Phase::Prune`]: what is no longer wanted goes.
//!
//! So while node A already sends the new way, node B still accepts the old way, and no packet between
//! pods is dropped by the switch.

use crate::error::{Result, nl};
use ipnet::IpNet;
use podnet_netlink::{Link, Netlink, RT_TABLE_MAIN, RTPROT_PODNET, Route, VxlanSpec as NlVxlan};
use podnet_types::names::format_mac;
use podnet_types::routing::{
    Dev, NODE_UPLINK, NodeNetwork, ROUTER_UNDERLAY, RouteSpec, RouterNetwork, VXLAN_DEVICE,
    VxlanSpec,
};
use std::collections::HashSet;
use std::net::IpAddr;

/// One pass of a reconcile run (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Links,
    Routes,
    Prune,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Links, Phase::Routes, Phase::Prune];
}

/// What a reconcile pass changed, as lines a person can read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub lines: Vec<String>,
}

impl Changes {
    fn add(&mut self, line: String) {
        self.lines.push(line);
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn extend(&mut self, other: Changes) {
        self.lines.extend(other.lines);
    }
}

/// The alias podnet puts on its VXLAN device: its settings, so a change of any is seen.
fn vxlan_alias(v: &VxlanSpec) -> String {
    format!(
        "podnet: vxlan vni {} local {} port {}",
        v.vni, v.local, v.port
    )
}

fn is_ours(link: &Link) -> bool {
    link.kind.as_deref() == Some("vxlan")
        && link
            .alias
            .as_deref()
            .is_some_and(|a| a.starts_with("podnet:"))
}

/// A VXLAN device with podnet's name and no alias at all: the kernel takes no alias in a creation
/// request, so podnet sets it just after; a `podnet` killed between the two left this one, in a
/// node namespace only podnet writes to. (A device someone else made would rarely lack an alias
/// *and* carry podnet's name; one with another alias is still refused.)
fn is_interrupted_creation(link: &Link) -> bool {
    link.kind.as_deref() == Some("vxlan") && link.alias.as_deref().is_none_or(str::is_empty)
}

fn to_route(spec: &RouteSpec, uplink: u32, vxlan: Option<u32>) -> Option<Route> {
    let oif = match spec.dev {
        Dev::Underlay => uplink,
        Dev::Vxlan => vxlan?,
    };
    let mut r = Route::new(IpNet::V4(spec.dst))
        .via(IpAddr::V4(spec.via))
        .dev(oif);
    if spec.onlink {
        r = r.onlink();
    }
    Some(r)
}

fn describe(r: &Route, names: &dyn Fn(u32) -> String) -> String {
    let via = r.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
    let dev = r
        .oif
        .map(|i| format!(" dev {}", names(i)))
        .unwrap_or_default();
    let onlink = if r.onlink { " onlink" } else { "" };
    format!("{}{via}{dev}{onlink}", r.dst)
}

fn podnet_routes(nl_: &mut Netlink) -> Result<Vec<Route>> {
    Ok(nl_
        .routes(false, RT_TABLE_MAIN)
        .map_err(nl("list routes"))?
        .into_iter()
        .filter(|r| r.protocol == RTPROT_PODNET)
        .collect())
}

type RouteKey = (IpNet, Option<IpAddr>, Option<u32>);

fn key(r: &Route) -> RouteKey {
    (r.dst, r.gateway, r.oif)
}

/// Adds (replacing in place) every wanted route that is not there as wanted.
fn add_routes(
    nl_: &mut Netlink,
    want: &[Route],
    names: &dyn Fn(u32) -> String,
    changes: &mut Changes,
) -> Result<()> {
    let have: HashSet<RouteKey> = podnet_routes(nl_)?.iter().map(key).collect();
    for r in want {
        if !have.contains(&key(r)) {
            nl_.add_route(r, true)
                .map_err(nl(format!("add route {}", describe(r, names))))?;
            changes.add(format!("+ route {}", describe(r, names)));
        }
    }
    Ok(())
}

/// Removes every podnet route that is not wanted.
fn prune_routes(
    nl_: &mut Netlink,
    want: &[Route],
    names: &dyn Fn(u32) -> String,
    changes: &mut Changes,
) -> Result<()> {
    let want: HashSet<RouteKey> = want.iter().map(key).collect();
    for r in podnet_routes(nl_)? {
        if !want.contains(&key(&r)) {
            // Deleting names gateway and device too, so a route just replaced in place is not hit.
            if nl_
                .delete_route(&r)
                .map_err(nl(format!("delete route {}", describe(&r, names))))?
            {
                changes.add(format!("- route {}", describe(&r, names)));
            }
        }
    }
    Ok(())
}

fn ensure_vxlan(
    nl_: &mut Netlink,
    want: &VxlanSpec,
    uplink: u32,
    changes: &mut Changes,
) -> Result<u32> {
    let alias = vxlan_alias(want);
    let mut existing = nl_
        .link_by_name(&want.name)
        .map_err(nl(format!("look up {}", want.name)))?;
    if let Some(link) = &existing
        && (!is_ours(link)
            || link.alias.as_deref() != Some(alias.as_str())
            || link.mac != Some(want.mac))
    {
        let interrupted = is_interrupted_creation(link);
        if !is_ours(link) && !interrupted {
            return Err(crate::error::Error::Other(format!(
                "a device named {} that podnet did not make is in the way",
                want.name
            )));
        }
        nl_.delete_link(link.index)
            .map_err(nl(format!("replace {}", want.name)))?;
        changes.add(format!(
            "- device {} ({})",
            want.name,
            if interrupted {
                "left without its alias by an interrupted creation"
            } else {
                "settings changed"
            }
        ));
        existing = None;
    }
    let link = match existing {
        Some(link) => {
            if link.mtu != want.mtu {
                nl_.set_link_mtu(link.index, want.mtu)
                    .map_err(nl(format!("set MTU of {}", want.name)))?;
                changes.add(format!("~ device {} mtu {}", want.name, want.mtu));
            }
            link
        }
        None => {
            nl_.create_vxlan(&NlVxlan {
                name: &want.name,
                vni: want.vni,
                local: want.local,
                underlay_index: uplink,
                port: want.port,
                mtu: want.mtu,
                mac: Some(want.mac),
                alias: Some(&alias),
            })
            .map_err(nl(format!("create {}", want.name)))?;
            changes.add(format!(
                "+ device {} vni {} local {} dstport {} mtu {}",
                want.name, want.vni, want.local, want.port, want.mtu
            ));
            nl_.link_by_name(&want.name)
                .map_err(nl(format!("look up {}", want.name)))?
                .expect("just created")
        }
    };
    if !link.up {
        nl_.set_link_up(link.index, true)
            .map_err(nl(format!("bring {} up", want.name)))?;
    }
    let addr = IpNet::V4(want.address);
    let present = nl_
        .addresses(Some(link.index))
        .map_err(nl(format!("list addresses of {}", want.name)))?;
    if !present.iter().any(|a| a.addr == addr) {
        nl_.add_address(link.index, addr, true)
            .map_err(nl(format!("add {addr} to {}", want.name)))?;
        changes.add(format!("+ address {addr} on {}", want.name));
    }
    Ok(link.index)
}

/// One permanent neighbour (VTEP IP -> MAC) and one FDB entry (MAC -> underlay IP) per peer.
fn add_peers(nl_: &mut Netlink, vx: u32, want: &NodeNetwork, changes: &mut Changes) -> Result<()> {
    let have_neigh = nl_.neighbours(vx).map_err(nl("list overlay neighbours"))?;
    for p in &want.peers {
        let ip = IpAddr::V4(p.vtep_ip);
        if !have_neigh
            .iter()
            .any(|n| n.ip == ip && n.mac == p.vtep_mac && n.permanent)
        {
            nl_.set_neighbour(vx, ip, p.vtep_mac)
                .map_err(nl(format!("set neighbour {ip}")))?;
            changes.add(format!(
                "+ neighbour {ip} lladdr {} dev {VXLAN_DEVICE}",
                format_mac(&p.vtep_mac)
            ));
        }
    }
    let have_fdb = nl_.fdb(vx).map_err(nl("list overlay FDB"))?;
    for p in &want.peers {
        if !have_fdb
            .iter()
            .any(|e| e.mac == p.vtep_mac && e.dst == Some(p.underlay_ip))
        {
            nl_.append_fdb(vx, p.vtep_mac, p.underlay_ip)
                .map_err(nl(format!("add FDB entry for {}", p.underlay_ip)))?;
            changes.add(format!(
                "+ fdb {} dst {} dev {VXLAN_DEVICE}",
                format_mac(&p.vtep_mac),
                p.underlay_ip
            ));
        }
    }
    Ok(())
}

fn prune_peers(
    nl_: &mut Netlink,
    vx: u32,
    want: &NodeNetwork,
    changes: &mut Changes,
) -> Result<()> {
    for n in nl_
        .neighbours(vx)
        .map_err(nl("list overlay neighbours"))?
        .iter()
        .filter(|n| n.permanent && n.ip.is_ipv4())
    {
        if !want.peers.iter().any(|p| IpAddr::V4(p.vtep_ip) == n.ip) {
            nl_.delete_neighbour(vx, n.ip)
                .map_err(nl(format!("delete neighbour {}", n.ip)))?;
            changes.add(format!("- neighbour {} dev {VXLAN_DEVICE}", n.ip));
        }
    }
    for e in nl_
        .fdb(vx)
        .map_err(nl("list overlay FDB"))?
        .iter()
        .filter(|e| e.dst.is_some())
    {
        if !want
            .peers
            .iter()
            .any(|p| p.vtep_mac == e.mac && Some(p.underlay_ip) == e.dst)
        {
            nl_.delete_fdb(vx, e.mac, e.dst)
                .map_err(nl("delete FDB entry"))?;
            let dst = e.dst.map(|d| format!(" dst {d}")).unwrap_or_default();
            changes.add(format!(
                "- fdb {}{dst} dev {VXLAN_DEVICE}",
                format_mac(&e.mac)
            ));
        }
    }
    Ok(())
}

/// One phase on a node's namespace (`nl_` is a socket inside it).
pub fn reconcile_node(nl_: &mut Netlink, want: &NodeNetwork, phase: Phase) -> Result<Changes> {
    let mut changes = Changes::default();
    let uplink = nl_
        .link_by_name(NODE_UPLINK)
        .map_err(nl("look up eth0"))?
        .ok_or_else(|| {
            crate::error::Error::Other("the node has no eth0 (its uplink): rebuild the lab".into())
        })?
        .index;
    let current = nl_
        .link_by_name(VXLAN_DEVICE)
        .map_err(nl("look up the vxlan device"))?
        .filter(is_ours);
    let vxlan = match (&want.vxlan, phase) {
        (Some(v), Phase::Links) => Some(ensure_vxlan(nl_, v, uplink, &mut changes)?),
        _ => current.as_ref().map(|l| l.index),
    };
    let names = |i: u32| {
        if i == uplink {
            NODE_UPLINK.to_string()
        } else if Some(i) == vxlan {
            VXLAN_DEVICE.to_string()
        } else {
            format!("if{i}")
        }
    };
    let want_routes: Vec<Route> = want
        .routes
        .iter()
        .filter_map(|r| to_route(r, uplink, vxlan))
        .collect();
    match phase {
        Phase::Links => {
            if let Some(vx) = vxlan {
                add_peers(nl_, vx, want, &mut changes)?;
            }
        }
        Phase::Routes => add_routes(nl_, &want_routes, &names, &mut changes)?,
        Phase::Prune => {
            prune_routes(nl_, &want_routes, &names, &mut changes)?;
            match (&want.vxlan, &current) {
                (Some(_), Some(link)) => prune_peers(nl_, link.index, want, &mut changes)?,
                // Leaving VXLAN: the device goes last, after every node's routes have moved off it.
                (None, Some(link)) => {
                    nl_.delete_link(link.index)
                        .map_err(nl(format!("delete {VXLAN_DEVICE}")))?;
                    changes.add(format!("- device {VXLAN_DEVICE}"));
                }
                _ => {}
            }
        }
    }
    Ok(changes)
}

/// One phase on the router's namespace (`nl_` is a socket inside it).
pub fn reconcile_router(nl_: &mut Netlink, want: &RouterNetwork, phase: Phase) -> Result<Changes> {
    let mut changes = Changes::default();
    let underlay = nl_
        .link_by_name(ROUTER_UNDERLAY)
        .map_err(nl("look up the underlay bridge"))?
        .ok_or_else(|| {
            crate::error::Error::Other("the router has no underlay bridge: rebuild the lab".into())
        })?
        .index;
    let names = |i: u32| {
        if i == underlay {
            ROUTER_UNDERLAY.to_string()
        } else {
            format!("if{i}")
        }
    };
    let want_routes: Vec<Route> = want
        .routes
        .iter()
        .filter_map(|r| to_route(r, underlay, None))
        .collect();
    match phase {
        Phase::Links => {}
        Phase::Routes => add_routes(nl_, &want_routes, &names, &mut changes)?,
        Phase::Prune => prune_routes(nl_, &want_routes, &names, &mut changes)?,
    }
    Ok(changes)
}

/// Sets the MTU of every pod attached to this node (both ends of each podnet veth), so a mode change
/// that adds or removes encapsulation never leaves pods sending packets the path cannot carry (a veth
/// silently drops what exceeds its peer's MTU). The pod end is changed from inside its namespace, found
/// by the netnsid the node's namespace gave it.
pub fn retune_pod_mtu(nl_: &mut Netlink, mtu: u32) -> Result<usize> {
    let mut changed = 0;
    for link in nl_.links().map_err(nl("list links"))? {
        if !link.name.starts_with(podnet_types::names::HOST_VETH_PREFIX)
            || link.kind.as_deref() != Some("veth")
        {
            continue;
        }
        // The pod end is set first and the host end last: a host end already at `mtu` means both are.
        if link.mtu == mtu {
            continue;
        }
        if let (Some(nsid), Some(peer)) = (link.link_netnsid, link.peer_index) {
            let Some(pod) = podnet_netns::NetNs::find_by_nsid(nl_, nsid) else {
                return Err(crate::error::Error::Other(format!(
                    "find the namespace of the pod on {} (netnsid {nsid})",
                    link.name
                )));
            };
            let mut pnl = pod.netlink().map_err(crate::error::ns(format!(
                "open netlink in the pod on {}",
                link.name
            )))?;
            pnl.set_link_mtu(peer, mtu)
                .map_err(nl(format!("set MTU of the pod end of {}", link.name)))?;
        }
        nl_.set_link_mtu(link.index, mtu)
            .map_err(nl(format!("set MTU of {}", link.name)))?;
        changed += 1;
    }
    Ok(changed)
}

//! The pod side: the interface inside the pod's namespace, its address and routes.
//!
//! All of it runs on one short-lived thread inside the pod namespace (podnet_netns::NetNs::run), with a
//! netlink socket opened there: nothing in this process ever changes namespace otherwise.

use crate::fail;
use ipnet::{IpNet, Ipv4Net};
use podnet_netlink::{Netlink, Route};
use podnet_netns::{NetNs, sysctl};
use podnet_types::cni::{CniError, IpamRoute};
use std::net::{IpAddr, Ipv4Addr};

/// What the pod's interface must look like.
#[derive(Debug, Clone)]
pub struct PodInterface<'a> {
    pub ifname: &'a str,
    pub address: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub routes: &'a [IpamRoute],
    pub subject: &'a str,
}

/// Whether an interface of that name already exists in the pod (ADD must then fail).
pub fn interface_exists(pod: &NetNs, ifname: &str, subject: &str) -> Result<bool, CniError> {
    pod.run(|| -> Result<bool, CniError> {
        let mut nl =
            Netlink::open().map_err(|e| fail::kernel(format!("open netlink in {subject}"), e))?;
        Ok(nl
            .link_by_name(ifname)
            .map_err(|e| fail::kernel(format!("look up {ifname} in {subject}"), e))?
            .is_some())
    })
    .map_err(|e| fail::kernel(format!("enter network namespace of {subject}"), e))?
}

/// Configures the freshly created pod end of the veth: DAD off, address, up, `lo` up, routes.
/// Returns the interface's index.
pub fn configure(pod: &NetNs, want: &PodInterface<'_>) -> Result<u32, CniError> {
    pod.run(|| configure_inside(want))
        .map_err(|e| fail::kernel(format!("enter network namespace of {}", want.subject), e))?
}

fn configure_inside(want: &PodInterface<'_>) -> Result<u32, CniError> {
    let (ifname, subject) = (want.ifname, want.subject);
    let mut nl =
        Netlink::open().map_err(|e| fail::kernel(format!("open netlink in {subject}"), e))?;
    let link = nl
        .link_by_name(ifname)
        .map_err(|e| fail::kernel(format!("look up {ifname} in {subject}"), e))?
        .ok_or_else(|| {
            fail::kernel(
                format!("find {ifname} in {subject}"),
                "not there right after creation",
            )
        })?;
    // Duplicate address detection would hold an IPv6 address tentative for about a second; the
    // interface is a point-to-point veth whose address podnet allocated, so there is nothing to detect.
    sysctl::write_if_present(&["net", "ipv6", "conf", ifname, "accept_dad"], "0")
        .map_err(|e| fail::kernel(format!("disable IPv6 DAD on {ifname} in {subject}"), e))?;
    let addr = IpNet::V4(want.address);
    nl.add_address(link.index, addr, false)
        .map_err(|e| fail::kernel(format!("add address {addr} to {ifname} in {subject}"), e))?;
    nl.set_link_up(link.index, true)
        .map_err(|e| fail::kernel(format!("bring {ifname} up in {subject}"), e))?;
    if let Some(lo) = nl
        .link_by_name("lo")
        .map_err(|e| fail::kernel(format!("look up lo in {subject}"), e))?
        && !lo.up
    {
        nl.set_link_up(lo.index, true)
            .map_err(|e| fail::kernel(format!("bring lo up in {subject}"), e))?;
    }
    for r in want.routes {
        let via = r.gw.unwrap_or(want.gateway);
        let route = Route::new(r.dst).via(IpAddr::V4(via)).dev(link.index);
        nl.add_route(&route, false).map_err(|e| {
            let hint = if e.is_exists() {
                " (another interface in the pod already has this route)"
            } else {
                ""
            };
            fail::kernel(
                format!("add route {} via {via} dev {ifname} in {subject}", r.dst),
                format!("{e}{hint}"),
            )
        })?;
    }
    Ok(link.index)
}

/// What CHECK expects to find inside the pod, taken from `prevResult`.
#[derive(Debug, Clone)]
pub struct Expected {
    pub ifname: String,
    pub mac: Option<String>,
    pub addresses: Vec<IpNet>,
    /// Routes the plugin made that `prevResult` still lists: (destination, gateway).
    pub routes: Vec<(IpNet, Option<IpAddr>)>,
}

/// CHECK of the pod side. The first discrepancy is reported by name.
pub fn check(pod: &NetNs, want: &Expected, subject: &str) -> Result<(), CniError> {
    pod.run(|| check_inside(want, subject))
        .map_err(|e| fail::kernel(format!("enter network namespace of {subject}"), e))?
}

fn check_inside(want: &Expected, subject: &str) -> Result<(), CniError> {
    let ifname = want.ifname.as_str();
    let mut nl =
        Netlink::open().map_err(|e| fail::kernel(format!("open netlink in {subject}"), e))?;
    let link = nl
        .link_by_name(ifname)
        .map_err(|e| fail::kernel(format!("look up {ifname} in {subject}"), e))?
        .ok_or_else(|| fail::check(format!("{ifname} is missing in {subject}")))?;
    if link.kind.as_deref() != Some("veth") {
        return Err(fail::check(format!(
            "{ifname} in {subject} is a {:?}, not a veth",
            link.kind
        )));
    }
    if !link.up {
        return Err(fail::check(format!("{ifname} in {subject} is down")));
    }
    if let (Some(want_mac), Some(mac)) = (&want.mac, link.mac) {
        let have = podnet_types::names::format_mac(&mac);
        if !have.eq_ignore_ascii_case(want_mac) {
            return Err(fail::check(format!(
                "{ifname} in {subject} has MAC {have}, expected {want_mac}"
            )));
        }
    }
    let have_addrs = nl
        .addresses(Some(link.index))
        .map_err(|e| fail::kernel(format!("list addresses of {ifname} in {subject}"), e))?;
    for addr in &want.addresses {
        if !have_addrs.iter().any(|a| a.addr == *addr) {
            return Err(fail::check(format!(
                "{ifname} in {subject} lacks address {addr}"
            )));
        }
    }
    let routes = nl
        .routes(false, podnet_netlink::RT_TABLE_MAIN)
        .map_err(|e| fail::kernel(format!("list routes in {subject}"), e))?;
    for (dst, gw) in &want.routes {
        let found = routes.iter().any(|r| {
            r.dst == *dst && (gw.is_none() || r.gateway == *gw) && r.oif == Some(link.index)
        });
        if !found {
            let via = gw.map(|g| format!(" via {g}")).unwrap_or_default();
            return Err(fail::check(format!(
                "route {dst}{via} dev {ifname} is missing in {subject}"
            )));
        }
    }
    Ok(())
}

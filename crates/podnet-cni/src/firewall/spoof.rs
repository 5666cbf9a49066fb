//! Anti-spoofing on the pods' bridge ports (`spoofCheck`): a frame that enters the bridge from a
//! pod's host veth must carry that pod's MAC, and its IPv4 source, ARP sender or IPv6 source must be
//! the pod's own. Policy is decided by source address, so without this a pod with NET_RAW could send
//! as another pod (or as an address an `ipBlock` allows) and pass that pod's policies, or poison the
//! bridge's and its neighbours' tables.
//!
//! One table of the `bridge` family, `bridge podnet-cni`, seen by every frame a port brings in
//! (bridged to another pod or going up to the node to be routed), whatever `br_netfilter` says:
//!
//! ```text
//! set ports     { type ifname }               the guarded ports: others pass untouched
//! set ports-mac { type ifname . ether_addr }  a port's MAC
//! set ports-ip  { type ifname . ipv4_addr }   a port's IPv4 address
//! set ports-ip6 { type ifname . ipv6_addr }   a port's IPv6 link-local (neighbour discovery)
//! chain antispoof-1 (bridge prerouting):
//!   iifname != @ports accept
//!   iifname . ether saddr != @ports-mac drop
//!   ether type != { ip, arp, ip6 } drop              (no VLAN tags or other carriers around it)
//!   iifname . ip saddr != @ports-ip drop
//!   iifname . arp saddr ether != @ports-mac drop
//!   arp saddr ip != 0.0.0.0 iifname . arp saddr ip != @ports-ip drop      (0.0.0.0: ARP probes)
//!   ip6 saddr != :: iifname . ip6 saddr != @ports-ip6 drop                 (::: DAD)
//! ```
//!
//! A pod's elements are added at ADD once its host veth exists and before its interface comes up
//! (nothing in the pod can send before that), removed at DEL, and removed by GC for ports that no
//! longer exist. Only registered ports are judged, so pods attached before the option was turned on,
//! and networks that leave it off, keep working.

use super::InstallLock;
use crate::fail;
use podnet_nft::{NftFamily, Script};
use podnet_types::cni::CniError;
use podnet_types::names;
use serde_json::Value;
use std::collections::HashSet;
use std::net::Ipv4Addr;

pub const FAMILY: &str = "bridge";
pub const TABLE: &str = "podnet-cni";
/// Bump the number when the rules change: a new chain is installed beside the old one's sets.
pub const CHAIN: &str = "antispoof-1";
const SETS: [&str; 4] = ["ports", "ports-mac", "ports-ip", "ports-ip6"];

/// What identifies one pod's port and what it may send as.
#[derive(Debug, Clone, Copy)]
pub struct Port<'a> {
    pub host_veth: &'a str,
    pub mac: [u8; 6],
    /// Unknown at a DEL that lost its record: then only the port's own entries are removed.
    pub ip: Option<Ipv4Addr>,
}

/// Whether the guard's chain is installed (netlink, no process).
pub fn installed() -> Result<bool, CniError> {
    podnet_nft::chain_exists(NftFamily::Bridge, TABLE, CHAIN)
        .map_err(|e| fail::firewall(format!("look up chain {FAMILY} {TABLE} {CHAIN}"), e))
}

/// Adds the table, sets and chain to `s` when they are missing. Returns the install lock, which the
/// caller holds until the script is applied.
pub(crate) fn ensure(s: &mut Script) -> Result<Option<InstallLock>, CniError> {
    if installed()? {
        return Ok(None);
    }
    let lock = InstallLock::take()?;
    if installed()? {
        return Ok(Some(lock));
    }
    let t = format!("{FAMILY} {TABLE}");
    s.line(format!("add table {t}"));
    s.line(format!("add set {t} ports {{ type ifname ; }}"));
    s.line(format!(
        "add set {t} ports-mac {{ type ifname . ether_addr ; }}"
    ));
    s.line(format!(
        "add set {t} ports-ip {{ type ifname . ipv4_addr ; }}"
    ));
    s.line(format!(
        "add set {t} ports-ip6 {{ type ifname . ipv6_addr ; }}"
    ));
    s.line(format!(
        "add chain {t} {CHAIN} {{ type filter hook prerouting priority -300 ; policy accept ; comment \"podnet-cni: frames from pods' ports carry their own addresses\" ; }}"
    ));
    s.line(format!("flush chain {t} {CHAIN}"));
    for rule in [
        "iifname != @ports accept",
        "iifname . ether saddr != @ports-mac counter drop",
        "ether type != { ip, arp, ip6 } counter drop",
        "iifname . ip saddr != @ports-ip counter drop",
        "iifname . arp saddr ether != @ports-mac counter drop",
        "arp saddr ip != 0.0.0.0 iifname . arp saddr ip != @ports-ip counter drop",
        "ip6 saddr != :: iifname . ip6 saddr != @ports-ip6 counter drop",
    ] {
        s.line(format!("add rule {t} {CHAIN} {rule}"));
    }
    Ok(Some(lock))
}

/// The port's elements, as `(set, key)`.
fn elements(p: &Port<'_>) -> Vec<(&'static str, String)> {
    let name = format!("\"{}\"", p.host_veth);
    let mut out = vec![
        ("ports", name.clone()),
        (
            "ports-mac",
            format!("{name} . {}", names::format_mac(&p.mac)),
        ),
        (
            "ports-ip6",
            format!("{name} . {}", names::link_local_for_mac(p.mac)),
        ),
    ];
    if let Some(ip) = p.ip {
        out.push(("ports-ip", format!("{name} . {ip}")));
    }
    out
}

/// The port's elements in a script (the first ADD on a node, which installs the table with them).
pub fn add(s: &mut Script, p: &Port<'_>) {
    for (set, key) in elements(p) {
        s.line(format!("add element {FAMILY} {TABLE} {set} {{ {key} }}"));
    }
}

/// The port's elements as the kernel keys them, for a netlink batch (every other ADD and DEL).
fn keys(p: &Port<'_>) -> Vec<(&'static str, Vec<u8>)> {
    use podnet_nft::elements::key;
    let port = key::ifname(p.host_veth);
    let mut out = vec![
        ("ports", port.clone()),
        ("ports-mac", key::concat(&[port.clone(), key::ether(p.mac)])),
        (
            "ports-ip6",
            key::concat(&[port.clone(), key::ipv6(names::link_local_for_mac(p.mac))]),
        ),
    ];
    if let Some(ip) = p.ip {
        out.push(("ports-ip", key::concat(&[port, key::ipv4(ip)])));
    }
    out
}

pub fn add_elements(out: &mut Vec<podnet_nft::Element<'static>>, p: &Port<'_>) {
    for (set, key) in keys(p) {
        out.push(element(podnet_nft::Op::Add, set, key));
    }
}

/// Removes the port's elements whether or not they are there (no `destroy` in nft 1.0.6 and no
/// "delete if present" in the kernel's batch: adding first makes the delete succeed either way, in
/// one transaction).
pub fn remove_elements(out: &mut Vec<podnet_nft::Element<'static>>, p: &Port<'_>) {
    for (set, key) in keys(p) {
        out.push(element(podnet_nft::Op::Add, set, key.clone()));
        out.push(element(podnet_nft::Op::Delete, set, key));
    }
}

fn element(op: podnet_nft::Op, set: &'static str, key: Vec<u8>) -> podnet_nft::Element<'static> {
    podnet_nft::Element {
        op,
        family: NftFamily::Bridge,
        table: TABLE,
        set,
        key,
    }
}

/// GC: removes every element of a podnet host veth that no longer exists (`live` lists the node's
/// link names). Ports that exist keep theirs, whichever network they belong to. The elements are
/// read before the links: an ADD running meanwhile creates its veth before it adds its elements, so
/// an element read here whose port is not listed afterwards is truly gone.
pub fn forget_gone_ports(
    live: impl FnOnce() -> Result<HashSet<String>, CniError>,
) -> Result<usize, CniError> {
    if !installed()? {
        return Ok(0);
    }
    let Some(json) = podnet_nft::list_json(&["table", FAMILY, TABLE])
        .map_err(|e| fail::firewall(format!("read table {FAMILY} {TABLE}"), e))?
    else {
        return Ok(0);
    };
    let live = live()?;
    let gone: Vec<(String, String)> = parse_elements(&json)
        .into_iter()
        .filter(|(_, port, _)| port.starts_with(names::HOST_VETH_PREFIX) && !live.contains(port))
        .map(|(set, _, key)| (set, key))
        .collect();
    if gone.is_empty() {
        return Ok(0);
    }
    let mut s = Script::new();
    for (set, key) in &gone {
        s.line(format!("delete element {FAMILY} {TABLE} {set} {{ {key} }}"));
    }
    podnet_nft::apply(&s).map_err(|e| {
        fail::firewall(
            format!("remove {} anti-spoofing entries of gone ports", gone.len()),
            e,
        )
    })?;
    Ok(gone.len())
}

/// `(set, port, key as nft text)` of every element of the guard's sets in `nft -j list table`.
fn parse_elements(json: &str) -> Vec<(String, String, String)> {
    let Ok(doc) = serde_json::from_str::<Value>(json) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in doc["nftables"].as_array().into_iter().flatten() {
        let set = &item["set"];
        let Some(name) = set["name"].as_str().filter(|n| SETS.contains(n)) else {
            continue;
        };
        for el in set["elem"].as_array().into_iter().flatten() {
            let parts: Vec<&str> = match el {
                Value::String(port) => vec![port.as_str()],
                _ => el["concat"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect(),
            };
            let Some((port, rest)) = parts.split_first() else {
                continue;
            };
            let mut key = format!("\"{port}\"");
            for r in rest {
                key.push_str(" . ");
                key.push_str(r);
            }
            out.push((name.to_string(), port.to_string(), key));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_has_its_name_mac_link_local_and_address() {
        let p = Port {
            host_veth: "pnv0123456789ab",
            mac: names::mac_for_ip("10.244.1.5".parse().unwrap()),
            ip: Some("10.244.1.5".parse().unwrap()),
        };
        let mut s = Script::new();
        add(&mut s, &p);
        assert_eq!(
            s.as_str(),
            "add element bridge podnet-cni ports { \"pnv0123456789ab\" }\n\
             add element bridge podnet-cni ports-mac { \"pnv0123456789ab\" . 0a:58:0a:f4:01:05 }\n\
             add element bridge podnet-cni ports-ip6 { \"pnv0123456789ab\" . fe80::858:aff:fef4:105 }\n\
             add element bridge podnet-cni ports-ip { \"pnv0123456789ab\" . 10.244.1.5 }\n"
        );
        let mut batch = Vec::new();
        remove_elements(&mut batch, &Port { ip: None, ..p });
        let sets: Vec<(&str, podnet_nft::Op)> = batch.iter().map(|e| (e.set, e.op)).collect();
        use podnet_nft::Op::{Add, Delete};
        assert_eq!(
            sets,
            vec![
                ("ports", Add),
                ("ports", Delete),
                ("ports-mac", Add),
                ("ports-mac", Delete),
                ("ports-ip6", Add),
                ("ports-ip6", Delete)
            ]
        );
        assert_eq!(batch[2].key.len(), 24, "ifname . ether_addr");
        assert_eq!(batch[4].key.len(), 32, "ifname . ipv6_addr");
    }

    #[test]
    fn elements_are_read_back_with_their_port() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"set": {"family": "bridge", "name": "ports", "table": "podnet-cni", "type": "ifname", "elem": ["pnvaaa", "eth9"]}},
            {"set": {"family": "bridge", "name": "ports-ip", "table": "podnet-cni", "type": ["ifname", "ipv4_addr"],
                     "elem": [{"concat": ["pnvaaa", "10.244.1.5"]}]}},
            {"set": {"family": "bridge", "name": "other", "table": "podnet-cni", "elem": ["pnvaaa"]}}]}"#;
        assert_eq!(
            parse_elements(json),
            vec![
                ("ports".into(), "pnvaaa".into(), "\"pnvaaa\"".into()),
                ("ports".into(), "eth9".into(), "\"eth9\"".into()),
                (
                    "ports-ip".into(),
                    "pnvaaa".into(),
                    "\"pnvaaa\" . 10.244.1.5".into()
                ),
            ]
        );
    }
}

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
//! set ports     { type iface_index }               the guarded ports: others pass untouched
//! set ports-mac { type iface_index . ether_addr }  a port's MAC
//! set ports-ip  { type iface_index . ipv4_addr }   a port's IPv4 address
//! set ports-ip6 { type iface_index . ipv6_addr }   a port's IPv6 link-local (neighbour discovery)
//! chain antispoof-2 (bridge prerouting):
//!   iifname != "pnv*" accept                          (podnet's ports only)
//!   iif != @ports accept
//!   iif . ether saddr != @ports-mac drop
//!   ether type != { ip, arp, ip6 } drop              (no VLAN tags or other carriers around it)
//!   iif . ip saddr != @ports-ip drop
//!   iif . arp saddr ether != @ports-mac drop
//!   arp saddr ip != 0.0.0.0 iif . arp saddr ip != @ports-ip drop      (0.0.0.0: ARP probes)
//!   icmpv6 type { nd-router-advert, nd-redirect } drop                (no pod is a router)
//!   ip6 saddr :: icmpv6 type != { nd-neighbor-solicit, mld2-listener-report } drop
//!   ip6 saddr != :: iif . ip6 saddr != @ports-ip6 drop                 (::: DAD)
//! ```
//!
//! The port itself gets `rp_filter` 1 and no IPv6 at ADD: the bridge hands frames for 802.1
//! reserved group addresses to the port's own stack without passing them through this chain.
//!
//! A pod's elements are added at ADD once its host veth exists and before its interface comes up
//! (nothing in the pod can send before that). They are keyed by the port's interface index, which
//! the kernel does not give to another interface it makes (indexes are allocated cyclically over
//! 2^31; an interface moved in may bring its own index, hence the name check first), so an element
//! outliving its port can never guard, nor open, another port of podnet's: DEL leaves them (removing a
//! set element waits for an RCU grace period in the nf_tables commit, about 16 ms, serialised across
//! concurrent DELs) and GC removes those of ports that are gone. Only registered ports are judged,
//! so pods attached before the option was turned on, and networks that leave it off, keep working.

use super::InstallLock;
use crate::fail;
use podnet_nft::{NftFamily, Script};
use podnet_types::cni::CniError;
use podnet_types::names;
use serde_json::Value;
use std::net::Ipv4Addr;

pub const FAMILY: &str = "bridge";
pub const TABLE: &str = "podnet-cni";
/// Bump the number when the rules change: a new chain is installed beside the old one's sets.
pub const CHAIN: &str = "antispoof-2";
/// Chains of earlier versions, removed when the current one is installed (they would still judge).
const OLD_CHAINS: [&str; 1] = ["antispoof-1"];
const SETS: [&str; 4] = ["ports", "ports-mac", "ports-ip", "ports-ip6"];

/// What identifies one pod's port and what it may send as.
#[derive(Debug, Clone, Copy)]
pub struct Port<'a> {
    pub host_veth: &'a str,
    /// The host veth's interface index: the elements' key.
    pub index: u32,
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
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
    s.line(format!("add set {t} ports {{ type iface_index ; }}"));
    s.line(format!(
        "add set {t} ports-mac {{ type iface_index . ether_addr ; }}"
    ));
    s.line(format!(
        "add set {t} ports-ip {{ type iface_index . ipv4_addr ; }}"
    ));
    s.line(format!(
        "add set {t} ports-ip6 {{ type iface_index . ipv6_addr ; }}"
    ));
    s.line(format!(
        "add chain {t} {CHAIN} {{ type filter hook prerouting priority -300 ; policy accept ; comment \"podnet-cni: frames from pods' ports carry their own addresses\" ; }}"
    ));
    s.line(format!("flush chain {t} {CHAIN}"));
    for old in OLD_CHAINS {
        // Declared, so the delete cannot fail on a node that never had it.
        s.line(format!("add chain {t} {old}"));
        s.line(format!("delete chain {t} {old}"));
    }
    let prefix = names::HOST_VETH_PREFIX;
    for rule in [
        // Only podnet's own ports: an interface moved into the node with an index a gone port once
        // had must not meet that port's elements.
        &format!("iifname != \"{prefix}*\" accept") as &str,
        "iif != @ports accept",
        "iif . ether saddr != @ports-mac counter drop",
        "ether type != { ip, arp, ip6 } counter drop",
        "iif . ip saddr != @ports-ip counter drop",
        "iif . arp saddr ether != @ports-mac counter drop",
        "arp saddr ip != 0.0.0.0 iif . arp saddr ip != @ports-ip counter drop",
        // No pod is a router: advertisements and redirects would give the node routes.
        "icmpv6 type { nd-router-advert, nd-redirect } counter drop",
        // `::` only for what needs it: duplicate address detection and its multicast report.
        "ip6 saddr :: icmpv6 type != { nd-neighbor-solicit, mld2-listener-report } counter drop",
        "ip6 saddr != :: iif . ip6 saddr != @ports-ip6 counter drop",
    ] {
        s.line(format!("add rule {t} {CHAIN} {rule}"));
    }
    Ok(Some(lock))
}

/// The port's elements, as `(set, key)` in nft's words (the port by name: it exists).
fn elements(p: &Port<'_>) -> Vec<(&'static str, String)> {
    let name = format!("\"{}\"", p.host_veth);
    vec![
        ("ports", name.clone()),
        (
            "ports-mac",
            format!("{name} . {}", names::format_mac(&p.mac)),
        ),
        (
            "ports-ip6",
            format!("{name} . {}", names::link_local_for_mac(p.mac)),
        ),
        ("ports-ip", format!("{name} . {}", p.ip)),
    ]
}

pub fn add(s: &mut Script, p: &Port<'_>) {
    for (set, key) in elements(p) {
        s.line(format!("add element {FAMILY} {TABLE} {set} {{ {key} }}"));
    }
}

/// The port's elements as the kernel keys them, for a netlink batch (every ADD but a node's first).
fn keys(p: &Port<'_>) -> Vec<(&'static str, Vec<u8>)> {
    use podnet_nft::elements::key;
    let port = key::ifindex(p.index);
    vec![
        ("ports", port.clone()),
        ("ports-mac", key::concat(&[port.clone(), key::ether(p.mac)])),
        (
            "ports-ip6",
            key::concat(&[port.clone(), key::ipv6(names::link_local_for_mac(p.mac))]),
        ),
        ("ports-ip", key::concat(&[port, key::ipv4(p.ip)])),
    ]
}

pub fn add_elements(out: &mut Vec<podnet_nft::Element<'static>>, p: &Port<'_>) {
    for (set, key) in keys(p) {
        out.push(element(podnet_nft::Op::Add, set, key));
    }
}

/// Removes the port's elements whether or not they are there (an ADD rolled back; no `destroy`
/// in nft 1.0.6 and no "delete if present" in the kernel's batch: adding first makes the delete
/// succeed either way, in one transaction).
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

/// GC: removes every element of a port that no longer exists: nft names a live port and prints
/// the bare index of a gone one, so the listing alone tells them apart (an ADD running meanwhile
/// adds its elements after its veth exists: they list under its name).
pub fn forget_gone_ports() -> Result<usize, CniError> {
    if !installed()? {
        return Ok(0);
    }
    let Some(json) = podnet_nft::list_json(&["table", FAMILY, TABLE])
        .map_err(|e| fail::firewall(format!("read table {FAMILY} {TABLE}"), e))?
    else {
        return Ok(0);
    };
    let gone: Vec<(String, String)> = parse_elements(&json)
        .into_iter()
        .filter(|(_, port, _)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
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

/// CHECK (with `spoofCheck`): the port is guarded and lets its pod's address (and MAC, when the
/// result names one) through. Reads the table back with nft: CHECK may take its time.
pub fn check(host_veth: &str, ip: Ipv4Addr, mac: Option<&str>) -> Result<(), CniError> {
    let json = podnet_nft::list_json(&["table", FAMILY, TABLE])
        .map_err(|e| fail::firewall(format!("read table {FAMILY} {TABLE}"), e))?
        .ok_or_else(|| {
            fail::check(format!(
                "spoofCheck is on but table {FAMILY} {TABLE} is missing"
            ))
        })?;
    let elements = parse_elements(&json);
    let port = format!("\"{host_veth}\"");
    let mut want = vec![
        ("ports", port.clone()),
        ("ports-ip", format!("{port} . {ip}")),
    ];
    if let Some(mac) = mac {
        want.push((
            "ports-mac",
            format!("{port} . {}", mac.to_ascii_lowercase()),
        ));
    }
    for (set, key) in want {
        if !elements.iter().any(|(s, _, k)| s == set && *k == key) {
            return Err(fail::check(format!(
                "anti-spoofing entry {key} is missing from set {FAMILY} {TABLE} {set}"
            )));
        }
    }
    Ok(())
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
            let parts: Vec<String> = match el {
                Value::String(port) => vec![port.clone()],
                Value::Number(n) => vec![n.to_string()],
                _ => el["concat"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| match v {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .collect(),
            };
            let Some((port, rest)) = parts.split_first() else {
                continue;
            };
            // A gone port is listed by its index, which nft takes back bare; a live one by name.
            let mut key = if port.bytes().all(|b| b.is_ascii_digit()) {
                port.clone()
            } else {
                format!("\"{port}\"")
            };
            for r in rest {
                key.push_str(" . ");
                key.push_str(r);
            }
            out.push((name.to_string(), port.clone(), key));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_has_its_mac_link_local_and_address() {
        let p = Port {
            host_veth: "pnv0123456789ab",
            index: 0x0102_0304,
            mac: names::mac_for_ip("10.244.1.5".parse().unwrap()),
            ip: "10.244.1.5".parse().unwrap(),
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
        remove_elements(&mut batch, &p);
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
                ("ports-ip6", Delete),
                ("ports-ip", Add),
                ("ports-ip", Delete)
            ]
        );
        assert_eq!(batch[0].key, 0x0102_0304u32.to_ne_bytes());
        assert_eq!(batch[2].key.len(), 12, "iface_index . ether_addr");
        assert_eq!(batch[4].key.len(), 20, "iface_index . ipv6_addr");
        assert_eq!(batch[6].key.len(), 8, "iface_index . ipv4_addr");
    }

    #[test]
    fn gone_ports_are_read_back_by_index_and_live_ones_by_name() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"set": {"family": "bridge", "name": "ports", "table": "podnet-cni", "type": "iface_index", "elem": ["pnvaaa", "17"]}},
            {"set": {"family": "bridge", "name": "ports-ip", "table": "podnet-cni", "type": ["iface_index", "ipv4_addr"],
                     "elem": [{"concat": ["pnvaaa", "10.244.1.5"]}, {"concat": ["17", "10.244.1.6"]}]}},
            {"set": {"family": "bridge", "name": "other", "table": "podnet-cni", "elem": ["pnvaaa"]}}]}"#;
        assert_eq!(
            parse_elements(json),
            vec![
                ("ports".into(), "pnvaaa".into(), "\"pnvaaa\"".into()),
                ("ports".into(), "17".into(), "17".into()),
                (
                    "ports-ip".into(),
                    "pnvaaa".into(),
                    "\"pnvaaa\" . 10.244.1.5".into()
                ),
                ("ports-ip".into(), "17".into(), "17 . 10.244.1.6".into()),
            ]
        );
    }
}

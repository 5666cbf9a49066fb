//! Host ports (`portMappings`): DNAT from the node's addresses to a pod.
//!
//! Two maps shared by every network of the node, since a port belongs to the node whichever network
//! asks for it: `hostports` (protocol . port -> pod address . port, for every local address) and
//! `hostports-ip` (host address . protocol . port -> ..., for one address). Two chains consult them:
//! `hostports-pre` (traffic arriving from outside) and `hostports-out` (traffic the node itself sends;
//! loopback is left alone: DNATing 127.0.0.1 would need `route_localnet`, which Kubernetes learned the
//! hard way to avoid, and would hijack node-local services on that port).
//!
//! Elements are removed and checked by key *and* value: a port held by another pod is never touched.

use super::{FAMILY, InstallLock, TABLE, chain_exists, table_line};
use crate::fail;
use podnet_nft::Script;
use podnet_types::cni::{CniError, ErrorCode, PortMapping, Protocol};
use serde_json::Value;
use std::net::Ipv4Addr;

const MAP_ANY: &str = "hostports";
const MAP_IP: &str = "hostports-ip";
const CHAIN_PRE: &str = "hostports-pre";
const CHAIN_OUT: &str = "hostports-out";
/// Marks traffic sent to one of the node's own addresses (a host port's), so the masquerade chain can
/// tell a host-port hairpin from traffic a service proxy DNAT'd (whose client address must stay).
/// podnet-agent's service proxy uses 0x4000; Kubernetes' own proxies use 0x4000 and 0x8000.
pub const HAIRPIN_MARK: u32 = 0x2000;

fn key(m: &PortMapping) -> String {
    match m.host_ip {
        Some(ip) => format!("{ip} . {} . {}", m.protocol.as_str(), m.host_port),
        None => format!("{} . {}", m.protocol.as_str(), m.host_port),
    }
}

fn map_of(m: &PortMapping) -> &'static str {
    if m.host_ip.is_some() { MAP_IP } else { MAP_ANY }
}

fn describe(m: &PortMapping) -> String {
    match m.host_ip {
        Some(ip) => format!("{ip}:{}/{}", m.host_port, m.protocol.as_str()),
        None => format!("{}/{}", m.host_port, m.protocol.as_str()),
    }
}

fn ensure_chains() -> Result<(), CniError> {
    if chain_exists(CHAIN_PRE)? && chain_exists(CHAIN_OUT)? {
        return Ok(());
    }
    let _lock = InstallLock::take()?;
    if chain_exists(CHAIN_PRE)? && chain_exists(CHAIN_OUT)? {
        return Ok(());
    }
    let mut s = Script::new();
    table_line(&mut s);
    s.line(format!("add map {FAMILY} {TABLE} {MAP_ANY} {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}"));
    s.line(format!("add map {FAMILY} {TABLE} {MAP_IP} {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}"));
    // -100 is "dstnat"; nft 1.0.6 accepts that name only on prerouting, so use the number.
    for (chain, hook, only) in [
        (CHAIN_PRE, "prerouting", ""),
        (CHAIN_OUT, "output", "ip daddr != 127.0.0.0/8 "),
    ] {
        s.line(format!(
            "add chain {FAMILY} {TABLE} {chain} {{ type nat hook {hook} priority -100; policy accept; comment \"podnet-cni: host ports\"; }}"
        ));
        s.line(format!("flush chain {FAMILY} {TABLE} {chain}"));
        // The mark is set before the map lookup: a packet to a local address is marked whether or not
        // a host port takes it; the masquerade chain acts on it only when it was DNAT'd back into the
        // pod subnet it came from.
        s.line(format!(
            "add rule {FAMILY} {TABLE} {chain} fib daddr type local {only}meta mark set meta mark | {HAIRPIN_MARK:#x} dnat ip to ip daddr . meta l4proto . th dport map @{MAP_IP}"
        ));
        s.line(format!("add rule {FAMILY} {TABLE} {chain} fib daddr type local {only}meta mark set meta mark | {HAIRPIN_MARK:#x} dnat ip to meta l4proto . th dport map @{MAP_ANY}"));
    }
    podnet_nft::apply(&s).map_err(|e| fail::firewall("install the host-port chains", e))
}

/// One element of either map, as read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Element {
    host_ip: Option<Ipv4Addr>,
    protocol: Protocol,
    host_port: u16,
    pod_ip: Ipv4Addr,
    pod_port: u16,
}

impl Element {
    fn mapping(&self) -> PortMapping {
        PortMapping {
            host_port: self.host_port,
            container_port: self.pod_port,
            protocol: self.protocol,
            host_ip: self.host_ip,
        }
    }

    fn matches_key(&self, m: &PortMapping) -> bool {
        self.host_ip == m.host_ip && self.protocol == m.protocol && self.host_port == m.host_port
    }
}

fn protocol(v: &Value) -> Option<Protocol> {
    match v.as_str()? {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        "sctp" => Some(Protocol::Sctp),
        _ => None,
    }
}

/// Parses `nft -j list map` output into elements (keys of 2 parts for `hostports`, 3 for `hostports-ip`).
fn parse_elements(json: &str) -> Vec<Element> {
    let Ok(doc) = serde_json::from_str::<Value>(json) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in doc["nftables"].as_array().into_iter().flatten() {
        for pair in item["map"]["elem"].as_array().into_iter().flatten() {
            let (Some(k), Some(v)) = (pair[0]["concat"].as_array(), pair[1]["concat"].as_array())
            else {
                continue;
            };
            let (host_ip, rest) = match k.len() {
                3 => (k[0].as_str().and_then(|s| s.parse().ok()), &k[1..]),
                2 => (None, &k[..]),
                _ => continue,
            };
            let parsed = (|| {
                Some(Element {
                    host_ip,
                    protocol: protocol(&rest[0])?,
                    host_port: u16::try_from(rest[1].as_u64()?).ok()?,
                    pod_ip: v.first()?.as_str()?.parse().ok()?,
                    pod_port: u16::try_from(v.get(1)?.as_u64()?).ok()?,
                })
            })();
            if let Some(e) = parsed {
                if k.len() == 3 && e.host_ip.is_none() {
                    continue;
                }
                out.push(e);
            }
        }
    }
    out
}

/// Every element of both maps (none if the table or maps do not exist).
fn elements() -> Result<Vec<Element>, CniError> {
    let mut out = Vec::new();
    for map in [MAP_ANY, MAP_IP] {
        if let Some(json) = podnet_nft::list_json(&["map", FAMILY, TABLE, map])
            .map_err(|e| fail::firewall(format!("read host-port map {map}"), e))?
        {
            out.extend(parse_elements(&json));
        }
    }
    Ok(out)
}

/// Every mapping on the node with the pod address it points at (to rebuild lost records).
pub fn all() -> Result<Vec<(Ipv4Addr, PortMapping)>, CniError> {
    Ok(elements()?
        .into_iter()
        .map(|e| (e.pod_ip, e.mapping()))
        .collect())
}

/// GC: removes every element pointing into `subnet` that `keep` does not claim (mappings whose records
/// were lost, or whose pods are gone). Elements of other subnets (other networks) are left alone.
pub fn retain(
    subnet: ipnet::Ipv4Net,
    keep: impl Fn(Ipv4Addr, &PortMapping) -> bool,
) -> Result<usize, CniError> {
    if !chain_exists(CHAIN_OUT)? && !chain_exists(CHAIN_PRE)? {
        return Ok(0);
    }
    let stale: Vec<Element> = elements()?
        .into_iter()
        .filter(|e| subnet.contains(&e.pod_ip) && !keep(e.pod_ip, &e.mapping()))
        .collect();
    if stale.is_empty() {
        return Ok(0);
    }
    let mut s = Script::new();
    for e in &stale {
        let m = e.mapping();
        s.line(format!(
            "delete element {FAMILY} {TABLE} {} {{ {} }}",
            map_of(&m),
            key(&m)
        ));
    }
    podnet_nft::apply(&s).map_err(|e| {
        fail::firewall(
            format!("remove {} stray host ports in {subnet}", stale.len()),
            e,
        )
    })?;
    Ok(stale.len())
}

/// Maps the host ports to the pod, all or none. A port another pod holds (in any network) refuses the
/// ADD by name; a port already mapped to this very pod (a retried ADD) is fine.
pub fn add(pod_ip: Ipv4Addr, mappings: &[PortMapping], subject: &str) -> Result<(), CniError> {
    if mappings.is_empty() {
        return Ok(());
    }
    ensure_chains()?;
    let script = |ms: &[&PortMapping]| {
        let mut s = Script::new();
        for m in ms {
            s.line(format!(
                "add element {FAMILY} {TABLE} {} {{ {} : {pod_ip} . {} }}",
                map_of(m),
                key(m),
                m.container_port
            ));
        }
        s
    };
    let all: Vec<&PortMapping> = mappings.iter().collect();
    let ports = || mappings.iter().map(describe).collect::<Vec<_>>().join(", ");
    match podnet_nft::apply(&script(&all)) {
        Ok(()) => Ok(()),
        Err(podnet_nft::Error::Rejected { exists: true, .. }) => {
            let present = elements()?;
            let mut missing = Vec::new();
            for m in mappings {
                match present.iter().find(|e| e.matches_key(m)) {
                    Some(e) if e.pod_ip == pod_ip && e.pod_port == m.container_port => {}
                    Some(e) => {
                        return Err(CniError::new(
                            ErrorCode::Firewall,
                            format!(
                                "map host port {} to {subject}: the node already maps it to {}:{}",
                                describe(m),
                                e.pod_ip,
                                e.pod_port
                            ),
                        ));
                    }
                    None => missing.push(m),
                }
            }
            podnet_nft::apply(&script(&missing))
                .map_err(|e| fail::firewall(format!("map host ports {} to {subject}", ports()), e))
        }
        Err(e) => Err(fail::firewall(
            format!("map host ports {} to {subject}", ports()),
            e,
        )),
    }
}

/// Removes the pod's host ports: only elements whose key *and* target are this pod's. Already gone is
/// fine (DEL is idempotent).
pub fn remove(pod_ip: Ipv4Addr, mappings: &[PortMapping]) -> Result<(), CniError> {
    if mappings.is_empty() || !chain_exists(CHAIN_OUT)? && !chain_exists(CHAIN_PRE)? {
        return Ok(());
    }
    let ours: Vec<&PortMapping> = {
        let present = elements()?;
        mappings
            .iter()
            .filter(|m| {
                present
                    .iter()
                    .any(|e| e.matches_key(m) && e.pod_ip == pod_ip)
            })
            .collect()
    };
    if ours.is_empty() {
        return Ok(());
    }
    let mut s = Script::new();
    for m in &ours {
        s.line(format!(
            "delete element {FAMILY} {TABLE} {} {{ {} }}",
            map_of(m),
            key(m)
        ));
    }
    podnet_nft::apply(&s).map_err(|e| {
        let ports: Vec<String> = ours.iter().map(|m| describe(m)).collect();
        fail::firewall(
            format!("remove host ports {} of {pod_ip}", ports.join(", ")),
            e,
        )
    })
}

/// CHECK: each mapping is in place and points at this pod.
pub fn check(pod_ip: Ipv4Addr, mappings: &[PortMapping]) -> Result<(), CniError> {
    if mappings.is_empty() {
        return Ok(());
    }
    let present = elements()?;
    for m in mappings {
        match present.iter().find(|e| e.matches_key(m)) {
            Some(e) if e.pod_ip == pod_ip && e.pod_port == m.container_port => {}
            Some(e) => {
                return Err(fail::check(format!(
                    "host port {} points at {}:{}, not at this pod {pod_ip}",
                    describe(m),
                    e.pod_ip,
                    e.pod_port
                )));
            }
            None => {
                return Err(fail::check(format!(
                    "host port {} is not mapped",
                    describe(m)
                )));
            }
        }
    }
    for chain in [CHAIN_PRE, CHAIN_OUT] {
        if !chain_exists(chain)? {
            return Err(fail::check(format!(
                "host-port chain {FAMILY} {TABLE} {chain} is missing"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_read_from_nft_json() {
        let any = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"map": {"family": "inet", "name": "hostports",
            "elem": [[{"concat": ["udp", 53]}, {"concat": ["10.244.1.6", 5353]}], [{"concat": ["tcp", 8080]}, {"concat": ["10.244.1.5", 80]}]]}}]}"#;
        let e = parse_elements(any);
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[1],
            Element {
                host_ip: None,
                protocol: Protocol::Tcp,
                host_port: 8080,
                pod_ip: "10.244.1.5".parse().unwrap(),
                pod_port: 80
            }
        );
        let ip = r#"{"nftables": [{"map": {"name": "hostports-ip", "elem": [[{"concat": ["10.100.0.2", "tcp", 9090]}, {"concat": ["10.244.1.7", 90]}]]}}]}"#;
        let e = parse_elements(ip);
        assert_eq!(e[0].host_ip, Some("10.100.0.2".parse().unwrap()));
        assert_eq!((e[0].host_port, e[0].pod_port), (9090, 90));
        assert!(
            parse_elements(r#"{"nftables": [{"map": {"name": "hostports"}}]}"#).is_empty(),
            "an empty map has no elem"
        );
        assert!(parse_elements("not json").is_empty());
    }

    #[test]
    fn keys_match_the_map_types() {
        let any = PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
            host_ip: None,
        };
        assert_eq!(key(&any), "tcp . 8080");
        let one = PortMapping {
            host_ip: Some("10.100.0.2".parse().unwrap()),
            protocol: Protocol::Udp,
            ..any
        };
        assert_eq!(key(&one), "10.100.0.2 . udp . 8080");
        assert_eq!(map_of(&one), MAP_IP);
    }
}

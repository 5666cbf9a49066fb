//! The plugin's firewall state, all in one nftables table it owns: `table inet podnet-cni`.
//!
//! - Masquerade: one base chain per network, `masq-<network>-<hash>`, whose name carries a hash of the
//!   rules it holds. Installed once per node; afterwards an ADD only asks the kernel (netlink, no
//!   process) whether that chain exists, so a normal ADD changes no firewall state at all.
//! - Host ports: per network two DNAT maps (any local address, or one host IP) and two chains that
//!   consult them (prerouting for traffic from outside, output for traffic from the node itself). A
//!   pod's mappings are map elements: added on ADD, deleted on DEL and GC.

use crate::fail;
use ipnet::Ipv4Net;
use podnet_nft::{NftFamily, Script, script};
use podnet_types::cni::{CniError, ErrorCode, PortMapping};
use podnet_types::names;
use std::fs::OpenOptions;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

pub const TABLE: &str = "podnet-cni";
const FAMILY: &str = "inet";
/// Bump when the rules change shape: the chain name changes with it and old chains are replaced.
const RULES_VERSION: &str = "1";

fn masq_chain_prefix(network: &str) -> String {
    format!("masq-{network}-")
}

/// The chain holding a network's masquerade rules; its name changes whenever the rules would.
pub fn masq_chain(network: &str, subnet: Ipv4Net, cluster: Ipv4Net) -> String {
    let h = names::fnv1a64(&[
        RULES_VERSION.as_bytes(),
        subnet.to_string().as_bytes(),
        cluster.to_string().as_bytes(),
    ]);
    format!("{}{:08x}", masq_chain_prefix(network), h & 0xffff_ffff)
}

fn hostport_names(network: &str) -> (String, String, String, String) {
    (
        format!("hp-{network}"),
        format!("hpip-{network}"),
        format!("hp-pre-{network}"),
        format!("hp-out-{network}"),
    )
}

/// Serialises firewall changes of concurrent plugin runs on one node (nft transactions are atomic,
/// but "is it there? then install" is not).
struct FileLock {
    _held: std::fs::File,
}

impl FileLock {
    fn take(dir: &Path) -> Result<FileLock, CniError> {
        let path = dir.join("firewall.lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| fail::io(format!("open {}", path.display()), e))?;
        // SAFETY: flock on an fd we own; blocking is fine: holders only run one short nft script.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(fail::io(
                format!("lock {}", path.display()),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(FileLock { _held: f })
    }
}

fn chain_exists(chain: &str) -> Result<bool, CniError> {
    podnet_nft::chain_exists(NftFamily::Inet, TABLE, chain)
        .map_err(|e| fail::firewall(format!("look up chain {FAMILY} {TABLE} {chain}"), e))
}

fn table_line(s: &mut Script) {
    s.line(format!("add table {FAMILY} {TABLE}"));
}

/// Ensures the masquerade rules for a network: traffic from `subnet` to anything outside `cluster`
/// leaves with the node's address; pod-to-pod traffic keeps its real source. Also masquerades traffic
/// that was DNAT'd back into the subnet it came from (a pod reaching a host port of a pod on its own
/// bridge), without which replies would bypass the NAT and be dropped.
pub fn ensure_masquerade(
    lock_dir: &Path,
    network: &str,
    subnet: Ipv4Net,
    cluster: Ipv4Net,
) -> Result<(), CniError> {
    let chain = masq_chain(network, subnet, cluster);
    if chain_exists(&chain)? {
        return Ok(());
    }
    let _lock = FileLock::take(lock_dir)?;
    if chain_exists(&chain)? {
        return Ok(());
    }
    let stale: Vec<String> = podnet_nft::chains(FAMILY, TABLE)
        .map_err(|e| fail::firewall(format!("list chains of {FAMILY} {TABLE}"), e))?
        .into_iter()
        .filter(|c| c.starts_with(&masq_chain_prefix(network)) && *c != chain)
        .collect();
    let mut s = Script::new();
    table_line(&mut s);
    for old in &stale {
        s.line(format!("delete chain {FAMILY} {TABLE} {old}"));
    }
    s.line(format!(
        "add chain {FAMILY} {TABLE} {chain} {{ type nat hook postrouting priority srcnat; policy accept; comment {}; }}",
        script::comment(&format!("podnet-cni network {network}: masquerade {subnet} leaving {cluster}"))
    ));
    s.line(format!("flush chain {FAMILY} {TABLE} {chain}"));
    s.line(format!("add rule {FAMILY} {TABLE} {chain} ip saddr {subnet} ct status dnat ip daddr {subnet} masquerade"));
    s.line(format!(
        "add rule {FAMILY} {TABLE} {chain} ip saddr {subnet} ip daddr != {{ {cluster}, 224.0.0.0/4, 255.255.255.255 }} masquerade"
    ));
    podnet_nft::apply(&s)
        .map_err(|e| fail::firewall(format!("install masquerade for network {network}"), e))
}

fn ensure_hostport_chains(lock_dir: &Path, network: &str) -> Result<(), CniError> {
    let (any_map, ip_map, pre, out) = hostport_names(network);
    if chain_exists(&out)? {
        return Ok(());
    }
    let _lock = FileLock::take(lock_dir)?;
    if chain_exists(&out)? {
        return Ok(());
    }
    let mut s = Script::new();
    table_line(&mut s);
    s.line(format!("add map {FAMILY} {TABLE} {any_map} {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}"));
    s.line(format!(
        "add map {FAMILY} {TABLE} {ip_map} {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}"
    ));
    for (chain, hook) in [(&pre, "prerouting"), (&out, "output")] {
        s.line(format!(
            // -100 is "dstnat"; nft 1.0.6 accepts that name only on prerouting, so use the number.
            "add chain {FAMILY} {TABLE} {chain} {{ type nat hook {hook} priority -100; policy accept; comment {}; }}",
            script::comment(&format!("podnet-cni network {network}: host ports"))
        ));
        s.line(format!("flush chain {FAMILY} {TABLE} {chain}"));
        s.line(format!(
            "add rule {FAMILY} {TABLE} {chain} fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @{ip_map}"
        ));
        s.line(format!("add rule {FAMILY} {TABLE} {chain} fib daddr type local dnat ip to meta l4proto . th dport map @{any_map}"));
    }
    podnet_nft::apply(&s)
        .map_err(|e| fail::firewall(format!("install host-port chains for network {network}"), e))
}

fn element_key(m: &PortMapping) -> String {
    match m.host_ip {
        Some(ip) => format!("{ip} . {} . {}", m.protocol.as_str(), m.host_port),
        None => format!("{} . {}", m.protocol.as_str(), m.host_port),
    }
}

fn map_of(network: &str, m: &PortMapping) -> String {
    let (any_map, ip_map, _, _) = hostport_names(network);
    if m.host_ip.is_some() { ip_map } else { any_map }
}

fn describe(m: &PortMapping) -> String {
    match m.host_ip {
        Some(ip) => format!("{ip}:{}/{}", m.host_port, m.protocol.as_str()),
        None => format!("{}/{}", m.host_port, m.protocol.as_str()),
    }
}

/// Maps host ports to the pod, all or none. A port another pod already holds is refused by name.
pub fn add_port_mappings(
    lock_dir: &Path,
    network: &str,
    pod_ip: Ipv4Addr,
    mappings: &[PortMapping],
    subject: &str,
) -> Result<(), CniError> {
    if mappings.is_empty() {
        return Ok(());
    }
    ensure_hostport_chains(lock_dir, network)?;
    let mut s = Script::new();
    for m in mappings {
        s.line(format!(
            "add element {FAMILY} {TABLE} {} {{ {} : {pod_ip} . {} }}",
            map_of(network, m),
            element_key(m),
            m.container_port
        ));
    }
    podnet_nft::apply(&s).map_err(|e| {
        let ports: Vec<String> = mappings.iter().map(describe).collect();
        match e {
            podnet_nft::Error::Rejected { exists: true, .. } => CniError::new(
                ErrorCode::Firewall,
                format!("map host ports {} to {subject}: a port is already mapped to another pod on this node", ports.join(", ")),
            ),
            e => fail::firewall(format!("map host ports {} to {subject}", ports.join(", ")), e),
        }
    })
}

/// Removes host-port mappings. Already-absent ones are fine (DEL is idempotent); the batch is tried
/// first, then one by one so one missing element cannot keep the others in place.
pub fn remove_port_mappings(network: &str, mappings: &[PortMapping]) -> Result<(), CniError> {
    if mappings.is_empty() {
        return Ok(());
    }
    let (_, _, _, out) = hostport_names(network);
    if !chain_exists(&out)? {
        return Ok(());
    }
    let delete = |m: &PortMapping| {
        format!(
            "delete element {FAMILY} {TABLE} {} {{ {} }}",
            map_of(network, m),
            element_key(m)
        )
    };
    let mut batch = Script::new();
    for m in mappings {
        batch.line(delete(m));
    }
    if podnet_nft::apply(&batch).is_ok() {
        return Ok(());
    }
    let mut errors = Vec::new();
    for m in mappings {
        let mut one = Script::new();
        one.line(delete(m));
        match podnet_nft::apply(&one) {
            Ok(()) => {}
            Err(podnet_nft::Error::Rejected { stderr, .. }) if stderr.contains("No such file") => {}
            Err(e) => errors.push(format!("{}: {e}", describe(m))),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            ErrorCode::Firewall,
            format!(
                "remove host ports of network {network}: {}",
                errors.join("; ")
            ),
        ))
    }
}

/// CHECK of the firewall state a network's attachment relies on.
pub fn check(
    network: &str,
    masq: Option<(Ipv4Net, Ipv4Net)>,
    mappings: &[PortMapping],
) -> Result<(), CniError> {
    if let Some((subnet, cluster)) = masq {
        let chain = masq_chain(network, subnet, cluster);
        if !chain_exists(&chain)? {
            return Err(fail::check(format!(
                "masquerade chain {FAMILY} {TABLE} {chain} is missing"
            )));
        }
    }
    for m in mappings {
        let listed = podnet_nft::list(&["map", FAMILY, TABLE, &map_of(network, m)])
            .map_err(|e| fail::firewall(format!("read host-port map of network {network}"), e))?
            .unwrap_or_default();
        let needle = element_key(m);
        if !listed.contains(&needle) {
            return Err(fail::check(format!(
                "host port {} of network {network} is not mapped",
                describe(m)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use podnet_types::cni::Protocol;

    #[test]
    fn chain_names_are_identifiers_and_follow_the_rules() {
        let a = masq_chain(
            "podnet",
            "10.244.1.0/24".parse().unwrap(),
            "10.244.0.0/16".parse().unwrap(),
        );
        let b = masq_chain(
            "podnet",
            "10.244.2.0/24".parse().unwrap(),
            "10.244.0.0/16".parse().unwrap(),
        );
        assert!(script::is_identifier(&a), "{a}");
        assert!(a.starts_with("masq-podnet-"));
        assert_ne!(a, b);
        let (a, b, c, d) = hostport_names("my_net.1");
        assert!([a, b, c, d].iter().all(|x| script::is_identifier(x)));
    }

    #[test]
    fn element_keys_match_the_map_types() {
        let any = PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
            host_ip: None,
        };
        assert_eq!(element_key(&any), "tcp . 8080");
        let one = PortMapping {
            host_ip: Some("10.100.0.2".parse().unwrap()),
            protocol: Protocol::Udp,
            ..any
        };
        assert_eq!(element_key(&one), "10.100.0.2 . udp . 8080");
        assert_eq!(map_of("n", &one), "hpip-n");
    }
}

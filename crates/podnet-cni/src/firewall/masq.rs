//! Masquerade for traffic leaving the cluster: one base chain per network whose name carries a hash
//! of its rules, so "is the right rule set installed?" is one netlink question.

use super::{FAMILY, InstallLock, TABLE, chain_exists, table_line};
use crate::fail;
use ipnet::Ipv4Net;
use podnet_nft::{Script, script};
use podnet_types::cni::CniError;
use podnet_types::names;

/// Bump when the rules change shape: the chain name changes with it and old chains are replaced.
const RULES_VERSION: &str = "2";
const PREFIX: &str = "masq-";

/// The chain holding a network's masquerade rules; its name changes whenever the rules would.
pub fn chain(network: &str, subnet: Ipv4Net, cluster: Ipv4Net) -> String {
    let h = names::fnv1a64(&[
        RULES_VERSION.as_bytes(),
        subnet.to_string().as_bytes(),
        cluster.to_string().as_bytes(),
    ]);
    format!("{PREFIX}{network}-{:08x}", h & 0xffff_ffff)
}

/// Whether `chain` is one of `network`'s masquerade chains (any rule version). Exact: the network is
/// everything between the prefix and the 8-digit hash, so network `net` never claims `net-2`'s chain.
fn belongs_to(chain: &str, network: &str) -> bool {
    chain
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.rsplit_once('-'))
        .is_some_and(|(net, hash)| {
            net == network && hash.len() == 8 && hash.bytes().all(|b| b.is_ascii_hexdigit())
        })
}

/// Ensures the masquerade rules for a network: traffic from `subnet` to anything outside `cluster`
/// leaves with the node's address; pod-to-pod traffic keeps its real source. Also masquerades traffic
/// that a host port DNAT'd back into the subnet it came from (a pod reaching a host port of a pod on
/// its own bridge: marked by the host-port chains), without which replies would bypass the NAT when
/// br_netfilter is off. Traffic a service proxy DNAT'd to a pod keeps its client's address.
pub fn ensure(network: &str, subnet: Ipv4Net, cluster: Ipv4Net) -> Result<(), CniError> {
    let chain = chain(network, subnet, cluster);
    if chain_exists(&chain)? {
        return Ok(());
    }
    let _lock = InstallLock::take()?;
    if chain_exists(&chain)? {
        return Ok(());
    }
    let stale: Vec<String> = podnet_nft::chains(FAMILY, TABLE)
        .map_err(|e| fail::firewall(format!("list chains of {FAMILY} {TABLE}"), e))?
        .into_iter()
        .filter(|c| belongs_to(c, network) && *c != chain)
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
    s.line(format!(
        "add rule {FAMILY} {TABLE} {chain} ip saddr {subnet} ct status dnat ip daddr {subnet} meta mark & {mark:#x} == {mark:#x} masquerade",
        mark = super::hostports::HAIRPIN_MARK
    ));
    s.line(format!(
        "add rule {FAMILY} {TABLE} {chain} ip saddr {subnet} ip daddr != {{ {cluster}, 224.0.0.0/4, 255.255.255.255 }} masquerade"
    ));
    podnet_nft::apply(&s)
        .map_err(|e| fail::firewall(format!("install masquerade for network {network}"), e))
}

/// CHECK: the network's masquerade chain is there and still holds its two rules (ADD trusts the
/// chain's name; CHECK, which may take its time, reads the rules back).
pub fn check(network: &str, subnet: Ipv4Net, cluster: Ipv4Net) -> Result<(), CniError> {
    let chain = chain(network, subnet, cluster);
    let listed = podnet_nft::list(&["chain", FAMILY, TABLE, &chain])
        .map_err(|e| fail::firewall(format!("read chain {FAMILY} {TABLE} {chain}"), e))?;
    let rules = listed.as_deref().map(|text| {
        text.lines()
            .filter(|l| l.trim_end().ends_with("masquerade"))
            .count()
    });
    match rules {
        None => Err(fail::check(format!(
            "masquerade chain {FAMILY} {TABLE} {chain} is missing"
        ))),
        Some(n) if n < 2 => Err(fail::check(format!(
            "masquerade chain {FAMILY} {TABLE} {chain} lost its rules"
        ))),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_are_identifiers_and_follow_the_rules() {
        let a = chain(
            "podnet",
            "10.244.1.0/24".parse().unwrap(),
            "10.244.0.0/16".parse().unwrap(),
        );
        let b = chain(
            "podnet",
            "10.244.2.0/24".parse().unwrap(),
            "10.244.0.0/16".parse().unwrap(),
        );
        assert!(script::is_identifier(&a), "{a}");
        assert!(a.starts_with("masq-podnet-"));
        assert_ne!(a, b);
    }

    #[test]
    fn a_network_owns_only_its_own_chains() {
        let net2 = chain(
            "net-2",
            "10.244.5.0/24".parse().unwrap(),
            "10.244.0.0/16".parse().unwrap(),
        );
        assert!(belongs_to(&net2, "net-2"));
        assert!(
            !belongs_to(&net2, "net"),
            "net must not claim net-2's chain"
        );
        assert!(!belongs_to("masq-net-notahash", "net"));
        assert!(!belongs_to("hostports-pre", "net"));
    }
}

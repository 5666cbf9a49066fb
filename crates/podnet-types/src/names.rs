//! Names and tags of the kernel objects podnet creates, so that every one of them can be recognised
//! (and garbage-collected) after a crash.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Host-side veth interfaces are `pnv` + 12 hex digits of a hash of (network, container, ifname):
/// deterministic, so DEL and GC can find them without state, and recognisable in `ip link`.
pub const HOST_VETH_PREFIX: &str = "pnv";

/// The alias (`ip link` shows it as `alias`) on each host veth: who it belongs to.
pub const ALIAS_PREFIX: &str = "podnet:";

/// Linux interface names are at most 15 bytes.
pub const IFNAMSIZ_MAX: usize = 15;

/// Checks a Linux interface name as the kernel and the CNI spec do.
pub fn check_ifname(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.len() > IFNAMSIZ_MAX {
        return Err("is longer than 15 characters");
    }
    if name == "." || name == ".." {
        return Err("is . or ..");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err("contains '/', ':' or whitespace");
    }
    Ok(())
}

/// Container IDs and network names: an alphanumeric first character, then alphanumerics, `_`, `.`, `-`.
pub fn is_valid_cni_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// 64-bit FNV-1a: tiny, stable across builds and platforms (std's hashers promise neither).
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            // A separator that cannot appear in the inputs keeps ("ab","c") and ("a","bc") apart.
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The host-side veth name of an attachment.
pub fn host_veth_name(network: &str, container_id: &str, ifname: &str) -> String {
    let h = fnv1a64(&[
        network.as_bytes(),
        container_id.as_bytes(),
        ifname.as_bytes(),
    ]);
    format!("{HOST_VETH_PREFIX}{:012x}", h & 0xffff_ffff_ffff)
}

/// The longest alias the kernel takes: IFALIASZ is 256 bytes including the terminating NUL.
pub const ALIAS_MAX: usize = 254;

/// The alias recorded on the host veth: `podnet:<network>/<containerID>/<ifname>`, cut to the kernel's
/// limit on a character boundary (the veth name, not the alias, is what DEL trusts).
pub fn host_veth_alias(network: &str, container_id: &str, ifname: &str) -> String {
    let mut s = format!("{ALIAS_PREFIX}{network}/{container_id}/{ifname}");
    if s.len() > ALIAS_MAX {
        let cut = (0..=ALIAS_MAX)
            .rev()
            .find(|i| s.is_char_boundary(*i))
            .unwrap_or(0);
        s.truncate(cut);
    }
    s
}

/// The attachment an alias names, if it is whole (not cut) and of this network.
pub fn parse_host_veth_alias<'a>(alias: &'a str, network: &str) -> Option<(&'a str, &'a str)> {
    let rest = alias
        .strip_prefix(ALIAS_PREFIX)?
        .strip_prefix(network)?
        .strip_prefix('/')?;
    let (container, ifname) = rest.rsplit_once('/')?;
    (!container.is_empty() && !ifname.is_empty() && !container.contains('/'))
        .then_some((container, ifname))
}

/// A pod's MAC address derived from its IPv4 address (`0a:58:` + the four bytes, as Kubernetes'
/// kubenet and flannel do): an address reused by another pod keeps its MAC, so stale ARP entries in
/// neighbours stay correct. `0a` is locally administered and unicast.
pub fn mac_for_ip(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x0a, 0x58, o[0], o[1], o[2], o[3]]
}

/// The IPv6 link-local address the kernel gives an interface with this MAC (EUI-64, the default
/// `addr_gen_mode`): the only IPv6 source a pod's port lets through besides `::` (neighbour
/// discovery needs it even in an IPv4 pod).
pub fn link_local_for_mac(mac: [u8; 6]) -> Ipv6Addr {
    let m = mac;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 0x02,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

/// NetworkPolicy's start-up hold, shared by the CNI plugin (which marks a new pod's address at ADD)
/// and podnet-agent (which owns the table, drops new connections from and to marked addresses, and
/// clears a mark in the transaction that programs the pod's policies). The table exists only where
/// the agent enforces policies: without it the plugin marks nothing.
pub const POLICY_PENDING_TABLE: &str = "podnet-policy-pending";
/// The set of marked addresses in [`POLICY_PENDING_TABLE`] (`type ipv4_addr`).
pub const POLICY_PENDING_SET: &str = "pods";
/// The base chain of [`POLICY_PENDING_TABLE`]; the plugin asks whether it exists.
pub const POLICY_PENDING_CHAIN: &str = "hold";

pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_is_the_kernels_eui64() {
        // `ip -6 addr` on a veth with MAC 0a:58:0a:f4:01:05 shows fe80::858:aff:fef4:105.
        assert_eq!(
            link_local_for_mac([0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x05]).to_string(),
            "fe80::858:aff:fef4:105"
        );
    }
    use proptest::prelude::*;

    #[test]
    fn ifname_rules() {
        assert!(check_ifname("eth0").is_ok());
        assert!(check_ifname("").is_err());
        assert!(check_ifname("0123456789abcdef").is_err());
        assert!(check_ifname("..").is_err());
        assert!(check_ifname("a:b").is_err());
        assert!(check_ifname("a b").is_err());
    }

    #[test]
    fn identifiers() {
        assert!(is_valid_cni_identifier("podnet"));
        assert!(is_valid_cni_identifier("0abc_d.e-f"));
        assert!(!is_valid_cni_identifier("-abc"));
        assert!(!is_valid_cni_identifier(""));
        assert!(!is_valid_cni_identifier("a/b"));
    }

    #[test]
    fn mac_is_local_unicast_and_follows_the_ip() {
        let mac = mac_for_ip("10.244.1.5".parse().unwrap());
        assert_eq!(format_mac(&mac), "0a:58:0a:f4:01:05");
        assert_eq!(mac[0] & 0x01, 0, "unicast");
        assert_eq!(mac[0] & 0x02, 0x02, "locally administered");
    }

    #[test]
    fn hash_separates_parts() {
        assert_ne!(fnv1a64(&[b"ab", b"c"]), fnv1a64(&[b"a", b"bc"]));
    }

    proptest! {
        #[test]
        fn host_veth_names_are_valid_and_stable(net in "[a-z0-9]{1,20}", id in "[a-zA-Z0-9_.-]{1,80}", ifn in "[a-z0-9]{1,15}") {
            let name = host_veth_name(&net, &id, &ifn);
            prop_assert!(check_ifname(&name).is_ok());
            prop_assert!(name.starts_with(HOST_VETH_PREFIX));
            prop_assert_eq!(name.len(), 15);
            prop_assert_eq!(name, host_veth_name(&net, &id, &ifn));
            let alias = host_veth_alias(&net, &id, &ifn);
            prop_assert!(alias.len() <= ALIAS_MAX);
            if alias.len() < ALIAS_MAX {
                prop_assert_eq!(parse_host_veth_alias(&alias, &net), Some((id.as_str(), ifn.as_str())));
            }
        }

        #[test]
        fn aliases_of_any_text_are_cut_safely(net in "\\PC{0,200}", id in "\\PC{0,120}", ifn in "\\PC{0,15}") {
            prop_assert!(host_veth_alias(&net, &id, &ifn).len() <= ALIAS_MAX);
        }
    }
}

//! NetworkPolicy's start-up hold: at ADD the pod's address is marked pending in podnet-agent's
//! table `inet podnet-policy-pending`, which drops new connections from and to marked addresses;
//! the agent clears the mark in the very transaction that programs the pod's policies, once it sees
//! the pod's address in the API (which the kubelet writes only after ADD returns). So a pod is
//! never reachable, nor reaches anything, under no policy at all: its first packets (an init
//! container's) wait for its policies, as upstream requires.
//!
//! The plugin never waits for the agent: it adds one element when the agent's table is there
//! (netlink question and netlink batch, no process) and nothing otherwise, so it works without the agent. While the
//! agent is down, pods added meanwhile stay held (no new connections) until it is back and has
//! programmed them; that is the safe side of "isolated from the first instant".

use crate::fail;
use podnet_nft::{Element, NftFamily, Op};
use podnet_types::cni::CniError;
use podnet_types::names::{POLICY_PENDING_CHAIN, POLICY_PENDING_SET, POLICY_PENDING_TABLE};
use std::net::Ipv4Addr;

/// Whether the agent's hold is installed on this node.
pub fn installed() -> Result<bool, CniError> {
    podnet_nft::chain_exists(NftFamily::Inet, POLICY_PENDING_TABLE, POLICY_PENDING_CHAIN).map_err(
        |e| {
            fail::firewall(
                format!("look up chain inet {POLICY_PENDING_TABLE} {POLICY_PENDING_CHAIN}"),
                e,
            )
        },
    )
}

fn element(op: Op, ip: Ipv4Addr) -> Element<'static> {
    Element {
        op,
        family: NftFamily::Inet,
        table: POLICY_PENDING_TABLE,
        set: POLICY_PENDING_SET,
        key: podnet_nft::elements::key::ipv4(ip),
    }
}

pub fn add(out: &mut Vec<Element<'static>>, ip: Ipv4Addr) {
    out.push(element(Op::Add, ip));
}

/// Clears a mark whether or not it is there (see `spoof::remove_elements`).
pub fn remove(out: &mut Vec<Element<'static>>, ip: Ipv4Addr) {
    out.push(element(Op::Add, ip));
    out.push(element(Op::Delete, ip));
}

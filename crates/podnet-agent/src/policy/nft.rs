//! The nftables objects of NetworkPolicy enforcement and the transaction text that creates them (pure).
//!
//! One table, `inet podnet-policy`. Two base chains on the forward hook see every packet a node
//! forwards for its pods, after the service proxy's DNAT (prerouting) and before masquerading
//! (postrouting), and, with bridge netfilter on, the packets bridged between pods of one node:
//!
//! ```text
//! egress  (forward, priority filter):     ct state established,related accept
//!                                         ip saddr vmap @egress-pods   -> goto pod-eg-<ns>/<pod>
//! ingress (forward, priority filter + 5): ct state established,related accept
//!                                         ip daddr vmap @ingress-pods  -> goto pod-in-<ns>/<pod>
//! pod-in-<ns>/<pod>:  ip saddr <pod> accept                (a pod always reaches itself)
//!                     jump pol-in-<ns>/<policy>            (one per policy selecting the pod)
//!                     limit ... log group G prefix "..."   (the drop, named: direction, pod, policies)
//!                     counter name "drop-in-<ns>/<policy>" (one per policy)
//!                     counter drop
//! pol-in-<ns>/<policy>: one rule per (peer, port) of each rule, ending in `accept`;
//!                     pods are matched through one set per selector (`sel-<hash>`), shared by every
//!                     policy naming the same selector; named ports through `np-...` sets of
//!                     address . protocol . port.
//! ```
//!
//! A packet meets two verdict-map lookups, then only the rules of the policies selecting its pods:
//! nothing on its path grows with the number of pods, namespaces or policies of the cluster. An
//! `accept` in the egress chain ends that base chain only, so the ingress chain still judges the
//! packet; a `drop` anywhere is final. Traffic the node itself sends to its pods (probes) takes the
//! output hook and traffic from its pods to the node the input hook: neither is filtered, as
//! upstream requires.

use super::model::{Direction, Key, PodPeer, Port};
use crate::proxy::nft::object_name;
use podnet_types::names::{POLICY_PENDING_CHAIN, POLICY_PENDING_SET};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

pub const DEFAULT_TABLE: &str = "podnet-policy";
/// The base chains of the guards (see [`base_commands`]).
pub const GUARD_FORWARD: &str = "guard-forward";
pub const GUARD_INPUT: &str = "guard-input";
/// VXLAN's port (the lab's overlay and Linux's default).
pub const VXLAN_PORT: u16 = 4789;
/// The NFLOG group denied packets are logged to (read by the agent's listener).
pub const DEFAULT_LOG_GROUP: u16 = 4011;
/// Logged drops per pod chain and second (the counters count every one).
pub const LOG_RATE: &str = "limit rate 10/second burst 20 packets";
/// Bytes of each dropped packet handed to the listener: the IPv4 header with options and the ports.
pub const LOG_SNAPLEN: u32 = 96;
/// The kernel cuts log prefixes at 127 bytes.
const MAX_PREFIX: usize = 127;

pub const INGRESS_MAP: &str = "ingress-pods";
pub const EGRESS_MAP: &str = "egress-pods";

/// What every rule of the table depends on besides the policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    pub table: String,
    pub log_group: u16,
}

impl Base {
    pub fn new(table: impl Into<String>) -> Base {
        Base {
            table: table.into(),
            log_group: DEFAULT_LOG_GROUP,
        }
    }

    /// The start-up hold's table: `<table>-pending` (the CNI plugin marks new pods' addresses in
    /// `podnet-policy-pending`, the default table's).
    pub fn pending_table(&self) -> String {
        pending_table(&self.table)
    }
}

pub fn pending_table(table: &str) -> String {
    format!("{table}-pending")
}

/// The start-up hold, in a table of its own so that no rebuild of the policy table (which deletes
/// it) ever loses a mark: the CNI plugin adds a new pod's address to the set at ADD, before the pod
/// can send; new connections from and to a marked address are dropped; the agent clears the mark
/// in the transaction that programs the pod (see [`clear_pending`]). Written with `add` and a
/// flushed chain, so every rebuild repeats it without touching the marks.
pub fn pending_commands(base: &Base) -> Vec<String> {
    let t = format!("inet {}", base.pending_table());
    let set = POLICY_PENDING_SET;
    let chain = POLICY_PENDING_CHAIN;
    vec![
        format!("add table {t}"),
        format!(
            "add set {t} {set} {{ type ipv4_addr ; comment \"pods this node's CNI plugin attached whose policies are not programmed yet\" ; }}"
        ),
        // Before the egress and ingress chains, after the guards.
        format!(
            "add chain {t} {chain} {{ type filter hook forward priority filter - 5 ; policy accept ; }}"
        ),
        format!("flush chain {t} {chain}"),
        format!("add rule {t} {chain} ct state established,related accept"),
        format!("add rule {t} {chain} ip saddr @{set} counter drop"),
        format!("add rule {t} {chain} ip daddr @{set} counter drop"),
    ]
}

/// Clears a pod's mark whether or not it has one (nft 1.0.6 has no `destroy`: the `add` makes the
/// `delete` succeed either way, in one transaction).
pub fn clear_pending(tx: &mut Transaction, base: &Base, ip: std::net::Ipv4Addr) {
    let el = format!(
        "element inet {} {POLICY_PENDING_SET} {{ {ip} }}",
        base.pending_table()
    );
    tx.raw(&format!("add {el}"));
    tx.raw(&format!("delete {el}"));
}

fn short(dir: Direction) -> &'static str {
    match dir {
        Direction::Ingress => "in",
        Direction::Egress => "eg",
    }
}

/// The address field of the packet that is the peer's (`saddr` for ingress).
fn peer_field(dir: Direction) -> &'static str {
    match dir {
        Direction::Ingress => "saddr",
        Direction::Egress => "daddr",
    }
}

/// The address field that is the pod's own.
fn own_field(dir: Direction) -> &'static str {
    match dir {
        Direction::Ingress => "daddr",
        Direction::Egress => "saddr",
    }
}

pub fn verdict_map(dir: Direction) -> &'static str {
    match dir {
        Direction::Ingress => INGRESS_MAP,
        Direction::Egress => EGRESS_MAP,
    }
}

pub fn pod_chain(dir: Direction, pod: &Key) -> String {
    object_name(&format!("pod-{}", short(dir)), &pod.to_string())
}

pub fn policy_chain(dir: Direction, policy: &Key) -> String {
    object_name(&format!("pol-{}", short(dir)), &policy.to_string())
}

/// The per-policy counter of packets its pods dropped.
pub fn drop_counter(dir: Direction, policy: &Key) -> String {
    object_name(&format!("drop-{}", short(dir)), &policy.to_string())
}

/// The set of `address . protocol . port` that rule `rule` of a policy's named ports stand for.
pub fn named_set(dir: Direction, policy: &Key, rule: usize) -> String {
    object_name(&format!("np-{}", short(dir)), &format!("{policy}-{rule}"))
}

/// The set of a pod peer's addresses: named by a hash of its canonical text (selectors hold
/// characters nft names cannot), which the set's comment spells out.
pub fn selector_set(peer: &PodPeer) -> String {
    format!(
        "sel-{:016x}",
        podnet_types::names::fnv1a64(&[peer.text().as_bytes()])
    )
}

pub fn selector_set_decl(peer: &PodPeer) -> String {
    format!(
        "{{ type ipv4_addr ; comment {} ; }}",
        podnet_nft::script::comment(&peer.text())
    )
}

pub const NAMED_SET_DECL: &str = "{ type ipv4_addr . inet_proto . inet_service ; }";

/// The log prefix of a pod chain's drop: `podnet-policy DIR NS/POD by POLICY[,POLICY...]` (cut to
/// the kernel's limit; the listener reads it back).
pub fn log_prefix(dir: Direction, pod: &Key, policies: &[&Key]) -> String {
    let names: Vec<String> = policies
        .iter()
        .map(|p| {
            if p.namespace == pod.namespace {
                p.name.clone()
            } else {
                p.to_string()
            }
        })
        .collect();
    let mut s = format!("podnet-policy {} {pod} by {}", dir.word(), names.join(","));
    if s.len() > MAX_PREFIX {
        let mut cut = MAX_PREFIX - 3;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    // nft strings cannot hold a double quote; names never do.
    s.replace('"', "")
}

/// One port entry as an expression (`None`: not expressible without a set, or matching nothing).
fn port_expr(p: &Port) -> Option<String> {
    match p {
        Port::Protocol(proto) => Some(format!("meta l4proto {}", proto.nft())),
        Port::Range(proto, from, to) if from == to => {
            Some(format!("meta l4proto {} th dport {from}", proto.nft()))
        }
        Port::Range(proto, from, to) => {
            Some(format!("meta l4proto {} th dport {from}-{to}", proto.nft()))
        }
        Port::Named(..) | Port::Nothing => None,
    }
}

/// A rule's peer in nft: any peer (the rule lists none), or a match expression.
pub enum PeerExpr {
    Any,
    Expr(String),
}

/// The rules of one policy rule: every (peer, numbered port) pair, then the named ports through
/// `named` (the rule's `np-` set, when it has named ports).
pub fn rule_lines(
    dir: Direction,
    peers: &[PeerExpr],
    ports: Option<&[Port]>,
    named: Option<&str>,
) -> Vec<String> {
    let port_exprs: Vec<Option<String>> = match ports {
        None => vec![None],
        Some(ps) => ps.iter().filter_map(port_expr).map(Some).collect(),
    };
    let mut out = Vec::new();
    let join = |parts: &[&str]| {
        let mut s = String::new();
        for p in parts.iter().filter(|p| !p.is_empty()) {
            s.push_str(p);
            s.push(' ');
        }
        s.push_str("accept");
        s
    };
    for peer in peers {
        let peer = match peer {
            PeerExpr::Any => "",
            PeerExpr::Expr(e) => e.as_str(),
        };
        for port in &port_exprs {
            out.push(join(&[peer, port.as_deref().unwrap_or("")]));
        }
    }
    if let Some(set) = named {
        let lookup = format!("ip daddr . meta l4proto . th dport @{set}");
        match dir {
            // The set holds the selected pods' own addresses with their ports: the peer still has to
            // match.
            Direction::Ingress => {
                for peer in peers {
                    let peer = match peer {
                        PeerExpr::Any => "",
                        PeerExpr::Expr(e) => e.as_str(),
                    };
                    out.push(join(&[peer, &lookup]));
                }
            }
            // The set holds the peers' addresses with their ports: the peer is in it already.
            Direction::Egress => {
                if !peers.is_empty() {
                    out.push(join(&[&lookup]));
                }
            }
        }
    }
    out
}

/// A selector peer's match expression.
pub fn selector_expr(dir: Direction, set: &str) -> String {
    format!("ip {} @{set}", peer_field(dir))
}

/// An ipBlock's match expression: the CIDR, then each exception excluded.
pub fn block_expr(dir: Direction, block: &super::model::Block) -> String {
    let f = peer_field(dir);
    let mut s = format!("ip {f} {}", block.cidr);
    for e in &block.except {
        let _ = write!(s, " ip {f} != {e}");
    }
    s
}

/// The rules of a pod chain.
pub fn pod_chain_rules(
    base: &Base,
    dir: Direction,
    pod: &Key,
    ip: std::net::Ipv4Addr,
    policies: &[&Key],
) -> Vec<String> {
    let mut rules = vec![format!("ip {} {ip} accept", peer_field(dir))];
    for p in policies {
        rules.push(format!("jump {}", policy_chain(dir, p)));
    }
    rules.push(format!(
        "{LOG_RATE} log prefix \"{}\" group {} snaplen {LOG_SNAPLEN}",
        log_prefix(dir, pod, policies),
        base.log_group
    ));
    for p in policies {
        rules.push(format!("counter name \"{}\"", drop_counter(dir, p)));
    }
    rules.push("counter drop".into());
    rules
}

/// Every object one owner (a selector, a policy, a pod) has in the table. Element values are `None`
/// in sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub chains: BTreeMap<String, Vec<String>>,
    /// Set name -> declaration.
    pub sets: BTreeMap<String, String>,
    pub counters: BTreeSet<String>,
    /// (set or map, key) -> verdict for maps.
    pub elements: BTreeMap<(String, String), Option<String>>,
}

impl Rendered {
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
            && self.sets.is_empty()
            && self.counters.is_empty()
            && self.elements.is_empty()
    }
}

/// The table's fixed part: the verdict maps and the two hooked chains, in that order (the hooked
/// chains are written last in a full rebuild: see [`full_transaction`]).
pub fn base_commands(base: &Base) -> (Vec<String>, Vec<String>) {
    let t = format!("inet {}", base.table);
    let mut plain = vec![format!("add table {t}")];
    for m in [INGRESS_MAP, EGRESS_MAP] {
        plain.push(format!("add map {t} {m} {{ type ipv4_addr : verdict ; }}"));
    }
    let mut hooked = Vec::new();
    // Guards that hold whatever the policies say (the review found both ways around every policy):
    // a pod must not send VXLAN to a node (its own or another, where the decapsulated packet would
    // be forwarded as if it came from that node's tunnel, past every ingress rule), and IPv6, which
    // this IPv4 agent does not judge, must not cross the pods' bridge (link-local addresses reach
    // other pods of the node; Calico turns IPv6 off in IPv4-only pods for the same reason).
    hooked.push(format!(
        "add chain {t} {GUARD_FORWARD} {{ type filter hook forward priority filter - 10 ; policy accept ; }}"
    ));
    hooked.push(format!(
        "add rule {t} {GUARD_FORWARD} udp dport {VXLAN_PORT} counter drop"
    ));
    for side in ["iifkind", "oifkind"] {
        hooked.push(format!(
            "add rule {t} {GUARD_FORWARD} meta nfproto ipv6 meta {side} \"bridge\" counter drop"
        ));
    }
    hooked.push(format!(
        "add chain {t} {GUARD_INPUT} {{ type filter hook input priority filter - 10 ; policy accept ; }}"
    ));
    hooked.push(format!(
        "add rule {t} {GUARD_INPUT} meta iifkind \"bridge\" udp dport {VXLAN_PORT} counter drop"
    ));
    for (chain, prio, dir) in [
        ("egress", "filter", Direction::Egress),
        ("ingress", "filter + 5", Direction::Ingress),
    ] {
        hooked.push(format!(
            "add chain {t} {chain} {{ type filter hook forward priority {prio} ; policy accept ; }}"
        ));
        hooked.push(format!(
            "add rule {t} {chain} ct state established,related accept"
        ));
        hooked.push(format!(
            "add rule {t} {chain} ip {} vmap @{}",
            own_field(dir),
            verdict_map(dir)
        ));
    }
    (plain, hooked)
}

/// A transaction's text.
pub use crate::nft_text::Transaction;

/// How a full rebuild treats what the table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuild {
    /// Delete the table and write it again: repairs anything, resets the drop counters.
    Replace,
    /// Flush every chain, set and map of the table and write everything again: repairs rules and elements
    /// changed by hand and keeps the counters (objects the agent no longer wants but that were never
    /// applied by it, such as a chain added by hand, stay, unreachable).
    Refill,
}

/// The whole table in one transaction.
///
/// In a [`Rebuild::Refill`], `obsolete` holds what the agent applied before and wants no more: it is
/// deleted once the flush has dropped every reference to it.
pub fn full_transaction<'a>(
    base: &Base,
    owners: impl IntoIterator<Item = &'a Rendered> + Clone,
    how: Rebuild,
    obsolete: &Rendered,
) -> Transaction {
    let mut tx = Transaction::new("inet", &base.table);
    let t = format!("inet {}", base.table);
    tx.raw(&format!("add table {t}"));
    match how {
        Rebuild::Replace => tx.raw(&format!("delete table {t}")),
        Rebuild::Refill => {
            tx.raw(&format!("flush table {t}"));
            // `flush table` empties chains, not sets: the verdict maps still point at the pod
            // chains, so they are emptied (declared first, should one have been deleted by hand)
            // before any obsolete chain goes.
            let (plain, _) = base_commands(base);
            for line in plain.iter().filter(|l| l.starts_with("add map")) {
                tx.raw(line);
            }
            for m in [INGRESS_MAP, EGRESS_MAP] {
                tx.cmd("flush", "map", format_args!("{m}"));
            }
            // Each obsolete object is declared before it is deleted, so one already gone (removed
            // by hand) does not make the whole refill fail.
            for c in obsolete.chains.keys() {
                tx.add_chain(c);
                tx.delete_chain(c);
            }
            for (s, decl) in &obsolete.sets {
                tx.add_set(s, decl);
                tx.delete_set(s);
            }
            for c in &obsolete.counters {
                tx.add_counter(c);
                tx.delete_counter(c);
            }
        }
    }
    let (plain, hooked) = base_commands(base);
    for line in &plain {
        tx.raw(line);
    }
    for r in owners.clone() {
        for (name, decl) in &r.sets {
            tx.add_set(name, decl);
            if how == Rebuild::Refill {
                tx.cmd("flush", "set", format_args!("{name}"));
            }
        }
        for c in &r.counters {
            tx.add_counter(c);
        }
        for name in r.chains.keys() {
            tx.add_chain(name);
        }
    }
    for r in owners.clone() {
        for (name, rules) in &r.chains {
            tx.add_rules(name, rules);
        }
    }
    tx.add_elements(owners.into_iter().flat_map(|r| r.elements.iter()));
    // The start-up hold's table, which no rebuild deletes (it holds the plugin's marks).
    for line in pending_commands(base) {
        tx.raw(&line);
    }
    // Hooked chains last: nothing is reachable from a hook while the rest is built. In a refill the
    // hooked chains exist and `add chain` leaves them be; their rules were flushed with the table.
    for line in &hooked {
        tx.raw(line);
    }
    tx
}

/// The steps of an incremental transaction over all changed owners, in an order the kernel accepts:
/// elements leave first, new sets, counters and chains are declared before anything names them,
/// chains are flushed (dropping their references) before the chains, sets and counters they named
/// are deleted, and map elements come last, once the chains they point to exist.
#[derive(Default)]
pub struct Plan {
    delete_elements: Vec<(String, String)>,
    add_sets: Vec<(String, String)>,
    add_counters: Vec<String>,
    add_chains: Vec<String>,
    flush_chains: Vec<String>,
    rules: Vec<(String, Vec<String>)>,
    delete_chains: Vec<String>,
    delete_sets: Vec<String>,
    delete_counters: Vec<String>,
    add_elements: BTreeMap<(String, String), Option<String>>,
}

impl Plan {
    pub fn diff(&mut self, old: &Rendered, new: &Rendered) {
        if old == new {
            return;
        }
        let gone_sets: BTreeSet<&String> = old
            .sets
            .iter()
            .filter(|(n, d)| new.sets.get(*n) != Some(d))
            .map(|(n, _)| n)
            .collect();
        for (k, v) in &old.elements {
            // Elements of a set that is deleted go with it.
            if new.elements.get(k) != Some(v) && !gone_sets.contains(&k.0) {
                self.delete_elements.push(k.clone());
            }
        }
        for (k, v) in &new.elements {
            if old.elements.get(k) != Some(v) || gone_sets.contains(&k.0) {
                self.add_elements.insert(k.clone(), v.clone());
            }
        }
        for name in &gone_sets {
            self.delete_sets.push((*name).clone());
        }
        for (name, decl) in &new.sets {
            if old.sets.get(name) != Some(decl) {
                self.add_sets.push((name.clone(), decl.clone()));
            }
        }
        for c in new.counters.difference(&old.counters) {
            self.add_counters.push(c.clone());
        }
        for c in old.counters.difference(&new.counters) {
            self.delete_counters.push(c.clone());
        }
        let sets_replaced = !gone_sets.is_empty();
        for (name, rules) in &new.chains {
            match old.chains.get(name) {
                None => {
                    self.add_chains.push(name.clone());
                    self.rules.push((name.clone(), rules.clone()));
                }
                // A set deleted and added again must lose every reference first.
                Some(r) if r != rules || sets_replaced => {
                    self.flush_chains.push(name.clone());
                    self.rules.push((name.clone(), rules.clone()));
                }
                Some(_) => {}
            }
        }
        for name in old.chains.keys() {
            if !new.chains.contains_key(name) {
                self.flush_chains.push(name.clone());
                self.delete_chains.push(name.clone());
            }
        }
    }

    pub fn transaction(&self, table: &str) -> Transaction {
        let mut tx = Transaction::new("inet", table);
        tx.delete_elements(&self.delete_elements);
        for c in &self.flush_chains {
            tx.flush_chain(c);
        }
        for c in &self.delete_chains {
            tx.delete_chain(c);
        }
        for s in &self.delete_sets {
            tx.delete_set(s);
        }
        for c in &self.delete_counters {
            tx.delete_counter(c);
        }
        for (s, decl) in &self.add_sets {
            tx.add_set(s, decl);
        }
        for c in &self.add_counters {
            tx.add_counter(c);
        }
        for c in &self.add_chains {
            tx.add_chain(c);
        }
        for (c, rules) in &self.rules {
            tx.add_rules(c, rules);
        }
        tx.add_elements(&self.add_elements);
        tx
    }
}

#[cfg(test)]
mod tests;

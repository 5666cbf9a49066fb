//! What the table should hold, kept up to date change by change (pure).
//!
//! The table is the sum of its owners' objects: a selector owns its address set, a policy its chains,
//! counters and named-port sets, a pod of this node its chains and verdict-map entries. Each change
//! (a pod, a namespace, a policy) updates indexes and marks only the owners it touches dirty; the
//! syncer renders those and diffs them against what it applied. Membership of a selector set is kept
//! per pod, so a pod that changes costs one match per selector rather than a recomputation of every
//! set, and a policy that changes costs a pass over the pods of its namespace (the pods it selects)
//! and over the cluster's pods only for selectors no other policy uses yet.
//!
//! Only policies that select a pod of this node are programmed ("active"), with the selector sets
//! they name: a node enforces policies for its own pods, and peers elsewhere are addresses in sets.

use super::model::{Direction, Key, Labels, Peer, PodInfo, PodPeer, Policy, Port};
use super::nft::{self, Base, PeerExpr, Rendered};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

/// Who owns a group of objects in the table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    /// A pod peer's address set, by set name.
    Selector(String),
    Policy(Key),
    Pod(Key),
}

struct SelectorEntry {
    peer: PodPeer,
    users: BTreeSet<Key>,
    members: BTreeMap<Key, Ipv4Addr>,
}

struct PolicyEntry {
    policy: Policy,
    /// This node's pods the policy selects.
    local: BTreeSet<Key>,
    /// The selector sets it holds (those of its pod peers while it is active).
    selectors: BTreeSet<String>,
}

impl PolicyEntry {
    fn active(&self) -> bool {
        !self.local.is_empty()
    }

    fn ingress_named(&self) -> bool {
        self.policy
            .ingress
            .iter()
            .flatten()
            .any(|r| r.has_named_ports())
    }

    fn egress_named(&self) -> bool {
        self.policy
            .egress
            .iter()
            .flatten()
            .any(|r| r.has_named_ports())
    }
}

pub struct State {
    node: String,
    namespaces: HashMap<String, Labels>,
    pods: HashMap<Key, PodInfo>,
    pods_by_ns: HashMap<String, BTreeSet<Key>>,
    /// This node's pods by address: two pods may claim one address for a moment (a pod gone whose
    /// deletion is not seen yet); the smallest key gets the verdict-map entry.
    local_by_ip: HashMap<Ipv4Addr, BTreeSet<Key>>,
    policies: HashMap<Key, PolicyEntry>,
    policies_by_ns: HashMap<String, BTreeSet<Key>>,
    selectors: HashMap<String, SelectorEntry>,
    /// Active policies whose egress rules name ports: their sets follow every pod of the cluster.
    egress_named: BTreeSet<Key>,
    /// This node's pods that came with an address (new, made again, or a new address) and whose
    /// start-up hold
    /// (see [`super::nft::pending_commands`]) is still to be cleared: cleared by the transaction
    /// that programs them, so a pod merely rendered again (another pod claimed its address) never
    /// clears a newcomer's hold.
    unheld: BTreeSet<Key>,
    dirty: BTreeSet<Owner>,
    empty: Labels,
}

impl State {
    /// The state of node `node` (pods with this `nodeName` are its own).
    pub fn new(node: impl Into<String>) -> State {
        State {
            node: node.into(),
            namespaces: HashMap::new(),
            pods: HashMap::new(),
            pods_by_ns: HashMap::new(),
            local_by_ip: HashMap::new(),
            policies: HashMap::new(),
            policies_by_ns: HashMap::new(),
            selectors: HashMap::new(),
            egress_named: BTreeSet::new(),
            unheld: BTreeSet::new(),
            dirty: BTreeSet::new(),
            empty: Labels::new(),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    fn is_local(&self, p: &PodInfo) -> bool {
        p.node == self.node
    }

    fn ns_labels(&self, ns: &str) -> &Labels {
        self.namespaces.get(ns).unwrap_or(&self.empty)
    }

    pub fn pods(&self) -> usize {
        self.pods.len()
    }

    pub fn policies(&self) -> usize {
        self.policies.len()
    }

    pub fn pod(&self, key: &Key) -> Option<&PodInfo> {
        self.pods.get(key)
    }

    /// Owners changed since the last call.
    pub fn take_dirty(&mut self) -> BTreeSet<Owner> {
        std::mem::take(&mut self.dirty)
    }

    pub fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Every owner with objects in the table.
    pub fn owners(&self) -> Vec<Owner> {
        let mut out: Vec<Owner> = self
            .selectors
            .keys()
            .cloned()
            .map(Owner::Selector)
            .collect();
        out.extend(
            self.policies
                .iter()
                .filter(|(_, e)| e.active())
                .map(|(k, _)| Owner::Policy(k.clone())),
        );
        out.extend(self.local_by_ip.values().flatten().cloned().map(Owner::Pod));
        out.sort();
        out.dedup();
        out
    }

    /// Records a namespace's labels (`None`: deleted).
    pub fn set_namespace(&mut self, name: &str, labels: Option<Labels>) {
        let old = match labels {
            Some(l) => self.namespaces.insert(name.to_string(), l),
            None => self.namespaces.remove(name),
        };
        if old.as_ref() == self.namespaces.get(name) {
            return;
        }
        let pods: Vec<Key> = self
            .pods_by_ns
            .get(name)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let labels = self.namespaces.get(name).cloned().unwrap_or_default();
        for (set, sel) in self.selectors.iter_mut() {
            if !matches!(sel.peer.namespaces, super::model::Scope::Selected(_)) {
                continue;
            }
            for key in &pods {
                let pod = &self.pods[key];
                let want = sel.peer.matches(pod, &labels).then_some(pod.ip);
                if sel.members.get(key).copied() != want {
                    match want {
                        Some(ip) => sel.members.insert(key.clone(), ip),
                        None => sel.members.remove(key),
                    };
                    self.dirty.insert(Owner::Selector(set.clone()));
                }
            }
        }
        self.dirty
            .extend(self.egress_named.iter().cloned().map(Owner::Policy));
    }

    /// Records a pod (`None`: deleted, or taking no part in policies: see [`super::model::pod_info`]).
    pub fn set_pod(&mut self, key: Key, info: Option<PodInfo>) {
        let old = match info {
            Some(i) => self.pods.insert(key.clone(), i),
            None => self.pods.remove(&key),
        };
        let new = self.pods.get(&key).cloned();
        if old == new {
            return;
        }
        match &new {
            Some(_) => {
                self.pods_by_ns
                    .entry(key.namespace.clone())
                    .or_default()
                    .insert(key.clone());
            }
            None => {
                if let Some(s) = self.pods_by_ns.get_mut(&key.namespace) {
                    s.remove(&key);
                    if s.is_empty() {
                        self.pods_by_ns.remove(&key.namespace);
                    }
                }
            }
        }
        let old_local = old.as_ref().filter(|p| self.is_local(p)).cloned();
        let new_local = new.as_ref().filter(|p| self.is_local(p)).cloned();
        if let Some(o) = &old_local
            && let Some(s) = self.local_by_ip.get_mut(&o.ip)
        {
            s.remove(&key);
            // Another pod claiming the address may get its entry now.
            self.dirty.extend(s.iter().cloned().map(Owner::Pod));
            if s.is_empty() {
                self.local_by_ip.remove(&o.ip);
            }
        }
        if let Some(n) = &new_local {
            let s = self.local_by_ip.entry(n.ip).or_default();
            self.dirty.extend(s.iter().cloned().map(Owner::Pod));
            s.insert(key.clone());
        }
        match (&old_local, &new_local) {
            (_, None) => {
                self.unheld.remove(&key);
            }
            (old, Some(n)) if old.as_ref().map(|o| (o.ip, &o.uid)) != Some((n.ip, &n.uid)) => {
                self.unheld.insert(key.clone());
            }
            _ => {}
        }
        // Selector sets.
        let ns_labels = self.ns_labels(&key.namespace).clone();
        for (set, sel) in self.selectors.iter_mut() {
            let want = new
                .as_ref()
                .filter(|p| sel.peer.matches(p, &ns_labels))
                .map(|p| p.ip);
            if sel.members.get(&key).copied() != want {
                match want {
                    Some(ip) => sel.members.insert(key.clone(), ip),
                    None => sel.members.remove(&key),
                };
                self.dirty.insert(Owner::Selector(set.clone()));
            }
        }
        // Policies selecting it, when it is (or was) this node's.
        if old_local.is_some() || new_local.is_some() {
            self.dirty.insert(Owner::Pod(key.clone()));
            let in_ns: Vec<Key> = self
                .policies_by_ns
                .get(&key.namespace)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            for pk in in_ns {
                let entry = self.policies.get_mut(&pk).expect("indexed policy");
                let now = new_local
                    .as_ref()
                    .is_some_and(|p| entry.policy.applies_to(p));
                let was = entry.local.contains(&key);
                if now != was {
                    if now {
                        entry.local.insert(key.clone());
                    } else {
                        entry.local.remove(&key);
                    }
                    self.dirty.insert(Owner::Policy(pk.clone()));
                    self.refresh_activity(&pk);
                } else if now && entry.ingress_named() {
                    self.dirty.insert(Owner::Policy(pk.clone()));
                }
            }
        }
        self.dirty
            .extend(self.egress_named.iter().cloned().map(Owner::Policy));
    }

    /// Records a policy (`None`: deleted).
    pub fn set_policy(&mut self, key: Key, policy: Option<Policy>) {
        let old = self.policies.remove(&key);
        if let (Some(o), Some(n)) = (&old, &policy)
            && o.policy == *n
        {
            self.policies.insert(key, old.expect("checked"));
            return;
        }
        let mut held = BTreeSet::new();
        if let Some(o) = old {
            self.dirty.extend(o.local.iter().cloned().map(Owner::Pod));
            held = o.selectors;
        }
        self.dirty.insert(Owner::Policy(key.clone()));
        match policy {
            None => {
                for set in held {
                    self.release(&set, &key);
                }
                self.egress_named.remove(&key);
                if let Some(s) = self.policies_by_ns.get_mut(&key.namespace) {
                    s.remove(&key);
                    if s.is_empty() {
                        self.policies_by_ns.remove(&key.namespace);
                    }
                }
            }
            Some(p) => {
                let local: BTreeSet<Key> = self
                    .pods_by_ns
                    .get(&key.namespace)
                    .into_iter()
                    .flatten()
                    .filter(|k| {
                        let pod = &self.pods[*k];
                        self.is_local(pod) && p.applies_to(pod)
                    })
                    .cloned()
                    .collect();
                self.dirty.extend(local.iter().cloned().map(Owner::Pod));
                self.policies.insert(
                    key.clone(),
                    PolicyEntry {
                        policy: p,
                        local,
                        selectors: held,
                    },
                );
                self.policies_by_ns
                    .entry(key.namespace.clone())
                    .or_default()
                    .insert(key.clone());
                self.refresh_activity(&key);
            }
        }
    }

    /// Makes a policy hold exactly the selector sets it needs now (none while inactive); new sets
    /// are taken before old ones are let go, so a set both use is never rebuilt.
    fn refresh_activity(&mut self, key: &Key) {
        let entry = &self.policies[key];
        let want: BTreeMap<String, PodPeer> = if entry.active() {
            entry
                .policy
                .pod_peers()
                .map(|p| (nft::selector_set(p), p.clone()))
                .collect()
        } else {
            BTreeMap::new()
        };
        let egress_named = entry.active() && entry.egress_named();
        let held = entry.selectors.clone();
        for (set, peer) in &want {
            if !held.contains(set) {
                self.acquire(set, peer, key);
            }
        }
        for set in held.iter().filter(|s| !want.contains_key(*s)) {
            self.release(set, key);
        }
        let entry = self.policies.get_mut(key).expect("policy present");
        entry.selectors = want.into_keys().collect();
        if egress_named {
            self.egress_named.insert(key.clone());
        } else {
            self.egress_named.remove(key);
        }
    }

    fn acquire(&mut self, set: &str, peer: &PodPeer, user: &Key) {
        if !self.selectors.contains_key(set) {
            let members = self
                .pods
                .iter()
                .filter(|(k, p)| peer.matches(p, self.ns_labels(&k.namespace)))
                .map(|(k, p)| (k.clone(), p.ip))
                .collect();
            self.selectors.insert(
                set.to_string(),
                SelectorEntry {
                    peer: peer.clone(),
                    users: BTreeSet::new(),
                    members,
                },
            );
            self.dirty.insert(Owner::Selector(set.to_string()));
        }
        self.selectors
            .get_mut(set)
            .expect("just made")
            .users
            .insert(user.clone());
    }

    fn release(&mut self, set: &str, user: &Key) {
        if let Some(e) = self.selectors.get_mut(set) {
            e.users.remove(user);
            if e.users.is_empty() {
                self.selectors.remove(set);
                self.dirty.insert(Owner::Selector(set.to_string()));
            }
        }
    }

    /// The objects `owner` has in the table now (empty when it has none).
    pub fn render(&self, base: &Base, owner: &Owner) -> Rendered {
        match owner {
            Owner::Selector(set) => self.render_selector(set),
            Owner::Policy(key) => self.render_policy(key),
            Owner::Pod(key) => self.render_pod(base, key),
        }
    }

    fn render_selector(&self, set: &str) -> Rendered {
        let mut r = Rendered::default();
        let Some(e) = self.selectors.get(set) else {
            return r;
        };
        r.sets
            .insert(set.to_string(), nft::selector_set_decl(&e.peer));
        for ip in e.members.values() {
            r.elements.insert((set.to_string(), ip.to_string()), None);
        }
        r
    }

    fn render_policy(&self, key: &Key) -> Rendered {
        let mut r = Rendered::default();
        let Some(entry) = self.policies.get(key).filter(|e| e.active()) else {
            return r;
        };
        for dir in Direction::BOTH {
            let Some(rules) = entry.policy.rules(dir) else {
                continue;
            };
            let mut lines = Vec::new();
            for (i, rule) in rules.iter().enumerate() {
                let peers: Vec<PeerExpr> = match &rule.peers {
                    None => vec![PeerExpr::Any],
                    Some(ps) => ps
                        .iter()
                        .filter_map(|p| match p {
                            Peer::Pods(pp) => Some(PeerExpr::Expr(nft::selector_expr(
                                dir,
                                &nft::selector_set(pp),
                            ))),
                            Peer::Block(b) => Some(PeerExpr::Expr(nft::block_expr(dir, b))),
                            Peer::Nothing => None,
                        })
                        .collect(),
                };
                let named = rule.has_named_ports().then(|| {
                    let set = nft::named_set(dir, key, i);
                    r.sets.insert(set.clone(), nft::NAMED_SET_DECL.to_string());
                    for el in self.named_elements(dir, entry, rule) {
                        r.elements.insert((set.clone(), el), None);
                    }
                    set
                });
                lines.extend(nft::rule_lines(
                    dir,
                    &peers,
                    rule.ports.as_deref(),
                    named.as_deref(),
                ));
            }
            r.chains.insert(nft::policy_chain(dir, key), lines);
            r.counters.insert(nft::drop_counter(dir, key));
        }
        r
    }

    /// `address . protocol . port` of a rule's named ports: on the policy's own pods of this node
    /// for ingress (they serve), on every peer pod of the cluster for egress (the peer serves).
    fn named_elements(
        &self,
        dir: Direction,
        entry: &PolicyEntry,
        rule: &super::model::Rule,
    ) -> BTreeSet<String> {
        let names: Vec<(super::model::Protocol, &str)> = rule
            .ports
            .iter()
            .flatten()
            .filter_map(|p| match p {
                Port::Named(proto, n) => Some((*proto, n.as_str())),
                _ => None,
            })
            .collect();
        let mut out = BTreeSet::new();
        let mut add = |pod: &PodInfo| {
            for (proto, name) in &names {
                if let Some(port) = pod.named_port(name, *proto) {
                    out.insert(format!("{} . {} . {port}", pod.ip, proto.nft()));
                }
            }
        };
        match dir {
            Direction::Ingress => {
                for k in &entry.local {
                    if let Some(p) = self.pods.get(k) {
                        add(p);
                    }
                }
            }
            Direction::Egress => {
                for p in self.pods.values() {
                    let is_peer = rule.peers.as_ref().is_none_or(|ps| {
                        ps.iter().any(|peer| match peer {
                            Peer::Pods(pp) => pp.matches(p, self.ns_labels(&p.namespace)),
                            Peer::Block(b) => b.contains(p.ip),
                            Peer::Nothing => false,
                        })
                    });
                    if is_peer {
                        add(p);
                    }
                }
            }
        }
        out
    }

    /// The policies that isolate a pod of this node for a direction, sorted.
    pub fn isolating(&self, key: &Key, dir: Direction) -> Vec<&Key> {
        let mut out: Vec<&Key> = self
            .policies_by_ns
            .get(&key.namespace)
            .into_iter()
            .flatten()
            .filter(|pk| {
                let e = &self.policies[*pk];
                e.local.contains(key) && e.policy.rules(dir).is_some()
            })
            .collect();
        out.sort();
        out
    }

    /// The pods whose hold the next transaction clears, with their addresses: those waiting for it
    /// that are programmed now. The others keep waiting. Give them back with [`State::requeue_holds`]
    /// if the transaction fails.
    pub fn take_holds(&mut self) -> Vec<(Key, Ipv4Addr)> {
        let ready: Vec<(Key, Ipv4Addr)> = self
            .unheld
            .iter()
            .filter_map(|k| Some((k.clone(), self.programmed_address(k)?)))
            .collect();
        for (k, _) in &ready {
            self.unheld.remove(k);
        }
        ready
    }

    pub fn requeue_holds(&mut self, holds: Vec<(Key, Ipv4Addr)>) {
        self.unheld.extend(holds.into_iter().map(|(k, _)| k));
    }

    /// Every pod of this node programmed with its address (a rebuild clears all their holds).
    pub fn programmed(&self) -> Vec<Ipv4Addr> {
        // An address two pods claim is the first one's in the table; the other (a newcomer whose
        // predecessor is not gone from the API yet) stays held until it is alone with it.
        self.local_by_ip
            .iter()
            .filter(|(_, keys)| keys.len() == 1)
            .map(|(ip, _)| *ip)
            .collect()
    }

    /// The address a pod of this node holds in the table (its verdict-map entries are its own),
    /// `None` for another node's pod, a gone one, or one whose address another pod claims first.
    /// Its start-up hold is cleared when it is programmed.
    pub fn programmed_address(&self, key: &Key) -> Option<Ipv4Addr> {
        let pod = self.pods.get(key).filter(|p| self.is_local(p))?;
        let winner = self.local_by_ip.get(&pod.ip)?.first()?;
        (winner == key).then_some(pod.ip)
    }

    fn render_pod(&self, base: &Base, key: &Key) -> Rendered {
        let mut r = Rendered::default();
        let Some(pod) = self.pods.get(key).filter(|p| self.is_local(p)) else {
            return r;
        };
        if self.programmed_address(key).is_none() {
            return r;
        }
        for dir in Direction::BOTH {
            let policies = self.isolating(key, dir);
            if policies.is_empty() {
                continue;
            }
            let chain = nft::pod_chain(dir, key);
            r.chains.insert(
                chain.clone(),
                nft::pod_chain_rules(base, dir, key, pod.ip, &policies),
            );
            r.elements.insert(
                (nft::verdict_map(dir).to_string(), pod.ip.to_string()),
                Some(format!("goto {chain}")),
            );
        }
        r
    }
}

#[cfg(test)]
mod tests;

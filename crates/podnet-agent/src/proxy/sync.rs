//! From a change of desired state to the smallest transaction that makes it so.
//!
//! The syncer remembers what it applied (per Service, the objects it rendered) and never lists the
//! ruleset back: listing is what makes kube-proxy's syncs slow at scale. A change of a few Services
//! touches only their chains, sets and map elements; the first sync, a periodic resync and any sync
//! after a failed one rebuild the whole table in one transaction, which also repairs hand-made drift.

use super::conntrack::{self, Flow};
use super::model::{ServiceKey, ServiceState};
use super::nft::{self, Base, Rendered, Transaction};
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("apply {kind} transaction to table ip {table} ({services} services changed): {source}")]
    Apply {
        kind: &'static str,
        table: String,
        services: usize,
        source: podnet_nft::Error,
    },
}

/// Where transactions go: nf_tables in the calling thread's namespace, or a recorder in tests.
pub trait Apply: Send {
    fn apply(&mut self, script: &str) -> Result<(), podnet_nft::Error>;
}

/// Applies over netlink ([`podnet_nft::Netlink`]): the same transaction `nft -f` would make, without
/// a process that loads the table's chains before each change. Text the netlink writer does not
/// compile (a renderer change it has not caught up with) goes through `nft` instead, with one
/// warning, unless the applier is strict (tests).
#[derive(Default)]
pub struct Netlink {
    nl: podnet_nft::Netlink,
    strict: bool,
    /// The reasons already warned about (each new one is warned about once).
    warned: std::collections::HashSet<String>,
}

impl Netlink {
    /// Refuses what it cannot compile instead of falling back to `nft`.
    pub fn strict() -> Netlink {
        Netlink {
            strict: true,
            ..Netlink::default()
        }
    }
}

impl Apply for Netlink {
    fn apply(&mut self, script: &str) -> Result<(), podnet_nft::Error> {
        match self.nl.apply(script) {
            Err(podnet_nft::Error::Unsupported(e)) if !self.strict => {
                if self.warned.len() < 64 && self.warned.insert(e.reason.clone()) {
                    eprintln!(
                        "podnet: cannot send as netlink batches ({e}); applying with nft instead, \
                         which is slower (please report this)"
                    );
                }
                Nft.apply(script)?;
                self.nl.learn(script);
                Ok(())
            }
            r => r,
        }
    }
}

/// Applies with the `nft` binary (the anchors' rulesets in the benchmarks).
pub struct Nft;

impl Apply for Nft {
    fn apply(&mut self, script: &str) -> Result<(), podnet_nft::Error> {
        let mut s = podnet_nft::Script::new();
        s.line(script.trim_end());
        podnet_nft::apply(&s)
    }
}

/// What one sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub full: bool,
    pub services_changed: usize,
    pub script_bytes: usize,
    /// UDP flows whose conntrack entries are stale after this change (see [`conntrack`]).
    pub stale_flows: Vec<Flow>,
}

pub struct Syncer {
    base: Base,
    applier: Box<dyn Apply>,
    desired: HashMap<ServiceKey, ServiceState>,
    /// What the table holds, per Service, as of the last successful transaction.
    applied: HashMap<ServiceKey, (ServiceState, Rendered)>,
    /// Services whose desired state changed since the last successful sync.
    dirty: BTreeSet<ServiceKey>,
    full_needed: bool,
    /// The table is as the last successful transaction left it (a full sync succeeded, and every
    /// transaction since either succeeded or was refused whole), so a full sync can refill it in
    /// place instead of replacing it (see [`nft::refill_transaction`]).
    table_known: bool,
    /// Who asks for each map or set key, and what each Service asks for (see [`Syncer::claim`]).
    claims: HashMap<(nft::Container, String), BTreeSet<ServiceKey>>,
    claimed: HashMap<ServiceKey, Vec<(nft::Container, String)>>,
    /// The endpoint slot blocks each Service's DNAT rules use.
    blocks: nft::Blocks,
    /// How many endpoint maps the table has (`endpoints-0` ..), as of the last transaction.
    endpoint_maps: u32,
}

impl Syncer {
    /// A syncer applying over netlink; its first sync rebuilds the table.
    pub fn new(base: Base) -> Syncer {
        Syncer::with_applier(base, Box::new(Netlink::default()))
    }

    pub fn with_applier(base: Base, applier: Box<dyn Apply>) -> Syncer {
        Syncer {
            base,
            applier,
            desired: HashMap::new(),
            applied: HashMap::new(),
            dirty: BTreeSet::new(),
            full_needed: true,
            table_known: false,
            claims: HashMap::new(),
            claimed: HashMap::new(),
            blocks: nft::Blocks::default(),
            endpoint_maps: 0,
        }
    }

    pub fn base(&self) -> &Base {
        &self.base
    }

    /// Records a Service's desired state (`None`: gone or not proxied). Nothing is applied yet.
    pub fn set(&mut self, key: ServiceKey, state: Option<ServiceState>) {
        let unchanged = match &state {
            Some(s) => self.desired.get(&key) == Some(s),
            None => !self.desired.contains_key(&key),
        };
        if unchanged {
            return;
        }
        match state {
            Some(s) => self.desired.insert(key.clone(), s),
            None => self.desired.remove(&key),
        };
        self.dirty.insert(key);
    }

    pub fn desired(&self, key: &ServiceKey) -> Option<&ServiceState> {
        self.desired.get(key)
    }

    pub fn services(&self) -> usize {
        self.desired.len()
    }

    /// Makes the next sync rebuild the whole table.
    pub fn request_full(&mut self) {
        self.full_needed = true;
    }

    pub fn pending(&self) -> bool {
        self.full_needed || !self.dirty.is_empty()
    }

    /// Applies what changed since the last sync in one transaction (a full rebuild when one is due).
    /// On failure nothing is assumed applied and the next sync is a full one.
    pub fn sync(&mut self) -> Result<SyncReport, SyncError> {
        let r = self.sync_inner();
        // Blocks given up in this transaction may be reused from the next one on.
        self.blocks.settle();
        r
    }

    fn sync_inner(&mut self) -> Result<SyncReport, SyncError> {
        if self.full_needed {
            return self.full();
        }
        if self.dirty.is_empty() {
            return Ok(SyncReport::default());
        }
        let dirty: Vec<ServiceKey> = std::mem::take(&mut self.dirty).into_iter().collect();
        let mut raw: HashMap<ServiceKey, Rendered> = HashMap::new();
        let mut work: BTreeSet<ServiceKey> = BTreeSet::new();
        for key in &dirty {
            let r = self.render(key);
            work.extend(self.claim(key, &r));
            work.insert(key.clone());
            raw.insert(key.clone(), r);
        }
        let mut plan = Plan::default();
        let mut rendered = Vec::new();
        let mut stale_flows = Vec::new();
        for key in &work {
            let r = match raw.remove(key) {
                Some(r) => r,
                None => self.render(key),
            };
            let new_state = self.desired.get(key);
            let new = self.owned(key, r);
            let old = self.applied.get(key);
            let empty = Rendered::default();
            plan.diff(old.map(|(_, r)| r).unwrap_or(&empty), &new);
            stale_flows.extend(conntrack::stale_flows(old.map(|(s, _)| s), new_state));
            rendered.push((key.clone(), new_state.cloned(), new));
        }
        let maps = self.blocks.shards();
        let tx = plan.transaction(&self.base.table, self.endpoint_maps..maps);
        let services = dirty.len();
        if !tx.is_empty()
            && let Err(source) = self.applier.apply(tx.text())
        {
            self.full_needed = true;
            // Refused whole: the table is as before. Anything else: nobody knows; replace it.
            self.table_known &= matches!(
                source,
                podnet_nft::Error::Refused { .. }
                    | podnet_nft::Error::Unsupported(_)
                    | podnet_nft::Error::Rejected { .. }
            );
            self.dirty.extend(dirty);
            return Err(SyncError::Apply {
                kind: "incremental",
                table: self.base.table.clone(),
                services,
                source,
            });
        }
        for (key, state, r) in rendered {
            match state {
                Some(s) => self.applied.insert(key, (s, r)),
                None => self.applied.remove(&key),
            };
        }
        self.endpoint_maps = self.endpoint_maps.max(maps);
        Ok(SyncReport {
            full: false,
            services_changed: services,
            script_bytes: tx.text().len(),
            stale_flows,
        })
    }

    /// The objects of a Service as desired now (none when it is gone: its slot blocks are given up).
    fn render(&mut self, key: &ServiceKey) -> Rendered {
        match self.desired.get(key) {
            Some(s) => nft::render_service(&self.base, key, s, &mut self.blocks),
            None => {
                self.blocks.release(key);
                Rendered::default()
            }
        }
    }

    /// Records which map and set keys `key` asks for. Two Services may ask for one key (the same
    /// external IP and port, a node port reused before the old Service's deletion is seen): the
    /// smallest Service key gets it, so one bad object cannot make every transaction fail. Returns the
    /// other Services whose share changed.
    fn claim(&mut self, key: &ServiceKey, r: &Rendered) -> Vec<ServiceKey> {
        let new: Vec<(nft::Container, String)> = r.elements.keys().cloned().collect();
        let old = self.claimed.remove(key).unwrap_or_default();
        let mut affected = Vec::new();
        let winner = |claims: &HashMap<_, BTreeSet<ServiceKey>>, e: &(nft::Container, String)| {
            claims
                .get(e)
                .and_then(|c: &BTreeSet<ServiceKey>| c.first().cloned())
        };
        for e in old.iter().chain(&new) {
            let before = winner(&self.claims, e);
            let set = self.claims.entry(e.clone()).or_default();
            set.remove(key);
            if new.contains(e) {
                set.insert(key.clone());
            }
            if set.is_empty() {
                self.claims.remove(e);
            }
            let after = winner(&self.claims, e);
            if before != after {
                affected.extend(before.into_iter().chain(after).filter(|k| k != key));
            }
        }
        if !new.is_empty() {
            self.claimed.insert(key.clone(), new);
        }
        affected
    }

    /// `r` without the elements another Service won.
    fn owned(&self, key: &ServiceKey, mut r: Rendered) -> Rendered {
        r.elements.retain(|e, _| {
            self.claims
                .get(e)
                .and_then(|c| c.first())
                .is_none_or(|w| w == key)
        });
        r
    }

    fn render_all(&mut self) -> Vec<(ServiceKey, ServiceState, Rendered)> {
        let mut keys: Vec<ServiceKey> = self.desired.keys().cloned().collect();
        keys.sort();
        self.claims.clear();
        self.claimed.clear();
        let desired = &self.desired;
        self.blocks.retain(|k| desired.contains_key(k));
        let raw: Vec<(ServiceKey, Rendered)> = keys
            .into_iter()
            .map(|k| {
                let r = self.render(&k);
                self.claim(&k, &r);
                (k, r)
            })
            .collect();
        raw.into_iter()
            .map(|(k, r)| {
                let s = self.desired[&k].clone();
                let r = self.owned(&k, r);
                (k, s, r)
            })
            .collect()
    }

    /// Rebuilds the whole table from the desired state in one transaction: refilled in place when
    /// its state is known (the periodic resync: affinity is kept), replaced otherwise (the first
    /// sync, or after a refill failed).
    pub fn full(&mut self) -> Result<SyncReport, SyncError> {
        let r = self.full_inner();
        self.blocks.settle();
        r
    }

    fn full_inner(&mut self) -> Result<SyncReport, SyncError> {
        let rendered = self.render_all();
        let (tx, maps) = if self.table_known {
            let (chains, sets) = self.obsolete(&rendered);
            let maps = self.endpoint_maps.max(self.blocks.shards());
            let tx = nft::refill_transaction(
                &self.base,
                rendered.iter().map(|(_, _, r)| r),
                &chains,
                &sets,
                maps,
            );
            (tx, maps)
        } else {
            let maps = self.blocks.shards();
            let tx = nft::full_transaction(&self.base, rendered.iter().map(|(_, _, r)| r), maps);
            (tx, maps)
        };
        let changed = self.dirty.len();
        if let Err(source) = self.applier.apply(tx.text()) {
            self.full_needed = true;
            // A refused refill (the table was changed by hand in a way it cannot mend, or the
            // outcome is unknown): replace the table next time.
            self.table_known = false;
            return Err(SyncError::Apply {
                kind: "full",
                table: self.base.table.clone(),
                services: changed,
                source,
            });
        }
        self.table_known = true;
        self.endpoint_maps = maps;
        let mut stale_flows = Vec::new();
        for key in &self.dirty {
            stale_flows.extend(conntrack::stale_flows(
                self.applied.get(key).map(|(s, _)| s),
                self.desired.get(key),
            ));
        }
        self.applied = rendered.into_iter().map(|(k, s, r)| (k, (s, r))).collect();
        self.dirty.clear();
        self.full_needed = false;
        Ok(SyncReport {
            full: true,
            services_changed: changed,
            script_bytes: tx.text().len(),
            stale_flows,
        })
    }

    /// What was applied and is wanted no more: chains, and sets gone or declared differently.
    fn obsolete(
        &self,
        rendered: &[(ServiceKey, ServiceState, Rendered)],
    ) -> (BTreeSet<String>, BTreeMap<String, String>) {
        let mut chains: BTreeSet<String> = BTreeSet::new();
        let mut sets: BTreeMap<String, String> = BTreeMap::new();
        for (_, r) in self.applied.values() {
            chains.extend(r.chains.keys().cloned());
            sets.extend(r.sets.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        for (_, _, r) in rendered {
            for c in r.chains.keys() {
                chains.remove(c);
            }
            for (name, decl) in &r.sets {
                if sets.get(name) == Some(decl) {
                    sets.remove(name);
                }
            }
        }
        (chains, sets)
    }

    /// The transaction a full sync would apply now (for tests and benchmarks).
    pub fn full_text(&mut self) -> String {
        let rendered = self.render_all();
        let maps = self.blocks.shards();
        nft::full_transaction(&self.base, rendered.iter().map(|(_, _, r)| r), maps).into_text()
    }
}

/// The steps of an incremental transaction, collected over all changed Services and written in an
/// order the kernel accepts: map elements go before the chains they point to, chains are flushed
/// (dropping their references) before the chains and sets they referenced are deleted, and chains
/// and sets exist before rules and elements name them.
#[derive(Default)]
struct Plan {
    delete_elements: Vec<(nft::Container, String)>,
    add_chains: Vec<String>,
    flush_chains: Vec<String>,
    delete_sets: Vec<String>,
    add_sets: Vec<(String, String)>,
    rules: Vec<(String, Vec<String>)>,
    delete_chains: Vec<String>,
    add_elements: BTreeMap<(nft::Container, String), Option<String>>,
}

impl Plan {
    fn diff(&mut self, old: &Rendered, new: &Rendered) {
        if old == new {
            return;
        }
        for (k, v) in &old.elements {
            if new.elements.get(k) != Some(v) {
                self.delete_elements.push(k.clone());
            }
        }
        for (k, v) in &new.elements {
            if old.elements.get(k) != Some(v) {
                self.add_elements.insert(k.clone(), v.clone());
            }
        }
        // A set whose declaration changes is deleted and re-added; every chain naming it must drop
        // its references first, so the Service's chains are all rewritten then.
        let sets_changed = old.sets != new.sets;
        for (name, decl) in &old.sets {
            match new.sets.get(name) {
                Some(d) if d == decl => {}
                _ => self.delete_sets.push(name.clone()),
            }
        }
        for (name, decl) in &new.sets {
            if old.sets.get(name) != Some(decl) {
                self.add_sets.push((name.clone(), decl.clone()));
            }
        }
        for (name, rules) in &new.chains {
            match old.chains.get(name) {
                None => {
                    self.add_chains.push(name.clone());
                    self.rules.push((name.clone(), rules.clone()));
                }
                Some(r) if r != rules || sets_changed => {
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

    /// The transaction, declaring the endpoint maps `new_maps` first.
    fn transaction(&self, table: &str, new_maps: std::ops::Range<u32>) -> Transaction {
        let mut tx = Transaction::new("ip", table);
        nft::declare_endpoint_maps(&mut tx, new_maps);
        tx.delete_elements(&self.delete_elements);
        for c in &self.add_chains {
            tx.add_chain(c);
        }
        for c in &self.flush_chains {
            tx.flush_chain(c);
        }
        for s in &self.delete_sets {
            tx.delete_set(s);
        }
        for (s, decl) in &self.add_sets {
            tx.add_set(s, decl);
        }
        for (c, rules) in &self.rules {
            tx.add_rules(c, rules);
        }
        for c in &self.delete_chains {
            tx.delete_chain(c);
        }
        tx.add_elements(&self.add_elements);
        tx
    }
}

#[cfg(test)]
mod tests;

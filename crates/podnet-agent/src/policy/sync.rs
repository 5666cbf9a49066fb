//! From a change of the cluster to the smallest transaction that makes the table follow it.
//!
//! Like the service proxy's syncer: what was applied is remembered per owner, the ruleset is never
//! listed back, and a change touches only the objects of the owners it made dirty. The first sync
//! and any sync after a failure replace the table; the periodic resync refills it (every chain and
//! set flushed and written again in one transaction), which repairs hand-made changes and keeps
//! the drop counters.

use super::model::{Key, Labels, PodInfo, Policy};
use super::nft::{self, Base, Plan, Rebuild, Rendered};
use super::state::{Owner, State};
use crate::proxy::sync::{Apply, Netlink};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("apply {kind} transaction to table inet {table} ({owners} objects changed): {source}")]
    Apply {
        kind: &'static str,
        table: String,
        owners: usize,
        source: podnet_nft::Error,
    },
}

/// What one sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub full: bool,
    /// Selectors, policies and pods whose objects were rewritten.
    pub owners_changed: usize,
    pub script_bytes: usize,
}

pub struct Syncer {
    base: Base,
    applier: Box<dyn Apply>,
    state: State,
    applied: BTreeMap<Owner, Rendered>,
    /// Owners dirty in the state that a failed sync could not apply.
    pending: BTreeSet<Owner>,
    full: Option<Rebuild>,
}

impl Syncer {
    /// A syncer for node `node` applying over netlink; its first sync replaces the table.
    pub fn new(base: Base, node: impl Into<String>) -> Syncer {
        Syncer::with_applier(base, node, Box::new(Netlink::default()))
    }

    pub fn with_applier(base: Base, node: impl Into<String>, applier: Box<dyn Apply>) -> Syncer {
        Syncer {
            base,
            applier,
            state: State::new(node),
            applied: BTreeMap::new(),
            pending: BTreeSet::new(),
            full: Some(Rebuild::Replace),
        }
    }

    pub fn base(&self) -> &Base {
        &self.base
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn set_namespace(&mut self, name: &str, labels: Option<Labels>) {
        self.state.set_namespace(name, labels);
    }

    pub fn set_pod(&mut self, key: Key, info: Option<PodInfo>) {
        self.state.set_pod(key, info);
    }

    pub fn set_policy(&mut self, key: Key, policy: Option<Policy>) {
        self.state.set_policy(key, policy);
    }

    /// Makes the next sync a refill of the whole table (the periodic repair).
    pub fn request_full(&mut self) {
        if self.full.is_none() {
            self.full = Some(Rebuild::Refill);
        }
    }

    pub fn pending(&self) -> bool {
        self.full.is_some() || self.state.has_dirty() || !self.pending.is_empty()
    }

    /// Applies what changed since the last sync in one transaction (a rebuild when one is due). On
    /// failure nothing is assumed applied and the next sync replaces the table.
    pub fn sync(&mut self) -> Result<SyncReport, SyncError> {
        if let Some(how) = self.full {
            return self.rebuild(how);
        }
        let mut dirty = std::mem::take(&mut self.pending);
        dirty.extend(self.state.take_dirty());
        if dirty.is_empty() {
            return Ok(SyncReport::default());
        }
        let mut plan = Plan::default();
        let mut rendered = Vec::with_capacity(dirty.len());
        let empty = Rendered::default();
        for owner in &dirty {
            let new = self.state.render(&self.base, owner);
            plan.diff(self.applied.get(owner).unwrap_or(&empty), &new);
            rendered.push((owner.clone(), new));
        }
        let mut tx = plan.transaction(&self.base.table);
        // Pods programmed by this transaction lose their start-up hold in it.
        let holds = self.state.take_holds();
        for (_, ip) in &holds {
            nft::clear_pending(&mut tx, &self.base, *ip);
        }
        if !tx.is_empty()
            && let Err(source) = self.applier.apply(tx.text())
        {
            self.state.requeue_holds(holds);
            self.full = Some(Rebuild::Replace);
            let owners = dirty.len();
            self.pending = dirty;
            return Err(SyncError::Apply {
                kind: "incremental",
                table: self.base.table.clone(),
                owners,
                source,
            });
        }
        for (owner, r) in rendered {
            if r.is_empty() {
                self.applied.remove(&owner);
            } else {
                self.applied.insert(owner, r);
            }
        }
        Ok(SyncReport {
            full: false,
            owners_changed: dirty.len(),
            script_bytes: tx.text().len(),
        })
    }

    fn render_all(&mut self) -> BTreeMap<Owner, Rendered> {
        self.state.take_dirty();
        self.pending.clear();
        self.state
            .owners()
            .into_iter()
            .map(|o| {
                let r = self.state.render(&self.base, &o);
                (o, r)
            })
            .filter(|(_, r)| !r.is_empty())
            .collect()
    }

    fn rebuild(&mut self, how: Rebuild) -> Result<SyncReport, SyncError> {
        let desired = self.render_all();
        let obsolete = obsolete(&self.applied, &desired);
        let mut tx = nft::full_transaction(&self.base, desired.values(), how, &obsolete);
        let holds = self.state.take_holds();
        self.clear_all_pending(&mut tx);
        if let Err(source) = self.applier.apply(tx.text()) {
            self.state.requeue_holds(holds);
            self.full = Some(Rebuild::Replace);
            return Err(SyncError::Apply {
                kind: match how {
                    Rebuild::Replace => "full",
                    Rebuild::Refill => "refill",
                },
                table: self.base.table.clone(),
                owners: desired.len(),
                source,
            });
        }
        let owners = desired.len();
        self.applied = desired;
        self.full = None;
        Ok(SyncReport {
            full: true,
            owners_changed: owners,
            script_bytes: tx.text().len(),
        })
    }

    /// A rebuild clears the hold of every pod it programs (the first sync after a start-up finds
    /// the marks the plugin made while the agent was away).
    fn clear_all_pending(&self, tx: &mut nft::Transaction) {
        for ip in self.state.programmed() {
            nft::clear_pending(tx, &self.base, ip);
        }
    }

    /// The transaction a table replacement would apply now (tests, benchmarks).
    pub fn full_text(&mut self) -> String {
        let desired = self.render_all();
        let mut tx = nft::full_transaction(
            &self.base,
            desired.values(),
            Rebuild::Replace,
            &Rendered::default(),
        );
        self.clear_all_pending(&mut tx);
        tx.into_text()
    }

    /// Everything applied, as one merged set of objects (tests compare it with a fresh build).
    pub fn applied(&self) -> Rendered {
        merge(self.applied.values())
    }
}

/// All objects of several owners together.
pub fn merge<'a>(owners: impl IntoIterator<Item = &'a Rendered>) -> Rendered {
    let mut all = Rendered::default();
    for r in owners {
        all.chains.extend(r.chains.clone());
        all.sets.extend(r.sets.clone());
        all.counters.extend(r.counters.clone());
        all.elements.extend(r.elements.clone());
    }
    all
}

/// Chains, sets and counters applied and no longer wanted by anybody.
fn obsolete(applied: &BTreeMap<Owner, Rendered>, desired: &BTreeMap<Owner, Rendered>) -> Rendered {
    let old = merge(applied.values());
    let new = merge(desired.values());
    Rendered {
        chains: old
            .chains
            .into_iter()
            .filter(|(c, _)| !new.chains.contains_key(c))
            .collect(),
        sets: old
            .sets
            .into_iter()
            .filter(|(s, _)| !new.sets.contains_key(s))
            .collect(),
        counters: old.counters.difference(&new.counters).cloned().collect(),
        elements: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests;

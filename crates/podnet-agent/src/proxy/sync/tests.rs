//! The incremental path against the full one, through a model of the kernel's rules for a
//! transaction: references must exist when named, referenced chains and sets cannot be deleted,
//! elements cannot be deleted twice or added with another value.

use super::*;
use crate::proxy::model::{Endpoint, PortState, Protocol};
use proptest::prelude::*;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Table {
    chains: BTreeMap<String, Vec<String>>,
    sets: BTreeMap<String, String>,
    elements: BTreeMap<String, BTreeMap<String, String>>,
}

fn refs(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out = Vec::new();
    for w in words.windows(2) {
        if w[0] == "goto" || w[0] == "jump" {
            out.push(w[1].trim_end_matches(',').to_string());
        }
    }
    for w in &words {
        if let Some(set) = w.strip_prefix('@') {
            out.push(set.to_string());
        }
    }
    out
}

/// Applies one transaction to `t`, all or nothing, like the kernel.
fn interpret(t: &Option<Table>, script: &str) -> Result<Option<Table>, String> {
    let mut t = t.clone();
    for line in script.lines() {
        let w: Vec<&str> = line.splitn(5, ' ').collect();
        let (verb, what, name) = (w[0], w[1], w.get(4).copied().unwrap_or(""));
        let name_only = name.split(' ').next().unwrap_or("");
        let rest = name.split_once(' ').map(|(_, r)| r).unwrap_or("");
        if what == "table" {
            match verb {
                "add" => {
                    t.get_or_insert_with(Table::default);
                }
                "delete" => {
                    t.take().ok_or("delete of a missing table")?;
                }
                "flush" => {
                    for rules in t
                        .as_mut()
                        .ok_or("flush of a missing table")?
                        .chains
                        .values_mut()
                    {
                        rules.clear();
                    }
                }
                _ => return Err(format!("unknown: {line}")),
            }
            continue;
        }
        let tab = t.as_mut().ok_or_else(|| format!("no table for {line}"))?;
        let referenced = |tab: &Table, n: &str| {
            tab.chains
                .values()
                .flatten()
                .any(|r| refs(r).iter().any(|x| x == n))
                || tab
                    .elements
                    .values()
                    .flat_map(|m| m.values())
                    .any(|v| refs(v).iter().any(|x| x == n))
        };
        let exists = |tab: &Table, n: &str| {
            tab.chains.contains_key(n) || tab.sets.contains_key(n) || tab.elements.contains_key(n)
        };
        match (verb, what) {
            ("add", "chain") => {
                tab.chains.entry(name_only.to_string()).or_default();
            }
            ("add", "map") => {
                tab.elements.entry(name_only.to_string()).or_default();
            }
            ("add", "set") => {
                // Named sets with elements from the data path (affinity) vs element sets (cluster-ips).
                if rest.contains("dynamic") {
                    match tab.sets.get(name_only) {
                        Some(d) if d != rest => return Err(format!("set {name_only} redeclared")),
                        _ => {
                            tab.sets.insert(name_only.to_string(), rest.to_string());
                        }
                    }
                } else {
                    tab.elements.entry(name_only.to_string()).or_default();
                }
            }
            ("add", "rule") => {
                for r in refs(rest) {
                    if !exists(tab, &r) {
                        return Err(format!("{line}: {r} does not exist"));
                    }
                }
                tab.chains
                    .get_mut(name_only)
                    .ok_or_else(|| format!("{line}: no chain"))?
                    .push(rest.to_string());
            }
            ("flush", "map" | "set") => tab
                .elements
                .get_mut(name_only)
                .ok_or_else(|| format!("{line}: no map or set"))?
                .clear(),
            ("flush", "chain") => tab
                .chains
                .get_mut(name_only)
                .ok_or_else(|| format!("{line}: no chain"))?
                .clear(),
            ("delete", "chain") => {
                if referenced(tab, name_only) {
                    return Err(format!("{line}: chain in use"));
                }
                tab.chains
                    .remove(name_only)
                    .ok_or_else(|| format!("{line}: no chain"))?;
            }
            ("delete", "set") => {
                if referenced(tab, name_only) {
                    return Err(format!("{line}: set in use"));
                }
                tab.sets
                    .remove(name_only)
                    .ok_or_else(|| format!("{line}: no set"))?;
            }
            (verb @ ("add" | "delete"), "element") => {
                let body = rest.trim().trim_start_matches('{').trim_end_matches('}');
                for item in body.split(", ") {
                    let (k, v) = item.trim().split_once(" : ").unwrap_or((item.trim(), ""));
                    for r in refs(v) {
                        if !exists(tab, &r) {
                            return Err(format!("{line}: {r} does not exist"));
                        }
                    }
                    let m = tab
                        .elements
                        .get_mut(name_only)
                        .ok_or_else(|| format!("{line}: no map"))?;
                    if verb == "add" {
                        match m.get(k) {
                            Some(old) if old != v => return Err(format!("{line}: {k} exists")),
                            _ => {
                                m.insert(k.to_string(), v.to_string());
                            }
                        }
                    } else if m.remove(k).is_none() {
                        return Err(format!("{line}: no element {k}"));
                    }
                }
            }
            _ => return Err(format!("unknown: {line}")),
        }
    }
    Ok(t)
}

/// Applies to the model and records every transaction. Each transaction must also compile to
/// nf_tables messages (what the agent sends): every shape the renderer writes is one the netlink
/// writer knows.
struct Model {
    table: Arc<Mutex<Option<Table>>>,
    compiler: podnet_nft::nl::parse::Sets,
}

impl Model {
    fn new(table: Arc<Mutex<Option<Table>>>) -> Model {
        Model {
            table,
            compiler: Default::default(),
        }
    }
}

impl Apply for Model {
    fn apply(&mut self, script: &str) -> Result<(), podnet_nft::Error> {
        let mut compiler = self.compiler.clone();
        compiler
            .compile(script)
            .unwrap_or_else(|e| panic!("the netlink writer refuses the proxy's text: {e}"));
        let mut t = self.table.lock().unwrap();
        let next = interpret(&t, script).map_err(|stderr| podnet_nft::Error::Rejected {
            stderr,
            exists: false,
        })?;
        *t = next;
        self.compiler = compiler;
        Ok(())
    }
}

fn ep(i: u8) -> Endpoint {
    Endpoint {
        ip: std::net::Ipv4Addr::new(10, 244, 1, i),
        port: 8080,
    }
}

fn arb_port() -> impl Strategy<Value = PortState> {
    (
        prop::sample::select(vec![
            (Protocol::Tcp, 80u16),
            (Protocol::Udp, 53),
            (Protocol::Tcp, 443),
        ]),
        prop::collection::btree_set(1u8..6, 0..4),
        prop::collection::btree_set(1u8..6, 0..3),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec![30000u16, 30001])),
        prop::option::of(prop::sample::select(vec![30u32, 60])),
        any::<bool>(),
    )
        .prop_map(
            |((protocol, port), eps, local, il, el, np, aff, lb)| PortState {
                protocol,
                port,
                cluster_ip: Some(std::net::Ipv4Addr::new(10, 96, 0, port as u8)),
                node_port: np,
                external_ips: if lb {
                    vec!["192.0.2.1".parse().unwrap()]
                } else {
                    vec![]
                },
                cluster_endpoints: eps.iter().map(|i| ep(*i)).collect(),
                local_endpoints: local
                    .iter()
                    .filter(|i| eps.contains(i))
                    .map(|i| ep(*i))
                    .collect(),
                internal_local: il,
                external_local: el && (np.is_some() || lb),
                affinity: aff,
            },
        )
}

fn arb_change() -> impl Strategy<Value = (ServiceKey, Option<ServiceState>, bool)> {
    (
        prop::sample::select(vec!["a", "b"]),
        prop::sample::select(vec!["web", "db", "dns"]),
        prop::option::of(prop::collection::vec(arb_port(), 1..3)),
        any::<bool>(),
    )
        .prop_map(|(ns, name, ports, sync_now)| {
            let state = ports.map(|mut ports| {
                ports.sort_by_key(|p| (p.protocol, p.port));
                ports.dedup_by_key(|p| (p.protocol, p.port));
                // A cluster IP belongs to one Service: derive it from the name.
                let octet = match name {
                    "web" => 1,
                    "db" => 2,
                    _ => 3,
                } + if ns == "a" { 0 } else { 10 };
                for p in &mut ports {
                    p.cluster_ip = Some(std::net::Ipv4Addr::new(10, 96, 0, octet));
                }
                ServiceState { ports }
            });
            (ServiceKey::new(ns, name), state, sync_now)
        })
}

/// Bases the renderer must handle: no cluster CIDR, one, several (one not on a byte boundary),
/// another mark bit.
fn arb_base() -> impl Strategy<Value = Base> {
    prop::sample::select(vec![0usize, 1, 2, 3]).prop_map(|i| {
        let cidrs: &[&str] = match i {
            0 => &[],
            1 => &["10.244.0.0/16"],
            _ => &["10.244.0.0/16", "10.250.0.0/14"],
        };
        let mut b = Base::new(
            "pn-test",
            cidrs.iter().map(|c| c.parse().unwrap()).collect(),
        );
        if i == 3 {
            b.masquerade_mark = 0x8000;
        }
        b
    })
}

fn base() -> Base {
    Base::new("pn-test", vec!["10.244.0.0/16".parse().unwrap()])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any sequence of changes, applied in batches, leaves the table exactly as one full rebuild of the
    /// final state does, and every transaction is one the kernel accepts.
    #[test]
    fn incremental_equals_full(base in arb_base(), changes in prop::collection::vec(arb_change(), 1..25)) {
        let table = Arc::new(Mutex::new(None));
        let mut s = Syncer::with_applier(base, Box::new(Model::new(table.clone())));
        s.sync().unwrap();
        for (key, state, sync_now) in changes {
            s.set(key, state);
            if sync_now {
                let r = s.sync().map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(!r.full);
            }
        }
        s.sync().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let incremental = table.lock().unwrap().clone();
        let fresh = interpret(&None, &s.full_text()).unwrap();
        prop_assert_eq!(&incremental, &fresh);
        // The periodic resync refills the table in place: the same table again.
        s.request_full();
        let r = s.sync().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(r.full);
        prop_assert_eq!(table.lock().unwrap().clone(), fresh);
    }
}

fn arb_port_fixed() -> PortState {
    PortState {
        protocol: Protocol::Tcp,
        port: 80,
        cluster_ip: Some("10.96.0.1".parse().unwrap()),
        node_port: None,
        external_ips: vec![],
        cluster_endpoints: vec![ep(1)],
        local_endpoints: vec![],
        internal_local: false,
        external_local: false,
        affinity: None,
    }
}

#[test]
fn a_failed_transaction_makes_the_next_sync_full() {
    struct Flaky(u32);
    impl Apply for Flaky {
        fn apply(&mut self, _: &str) -> Result<(), podnet_nft::Error> {
            self.0 += 1;
            if self.0 == 2 {
                Err(podnet_nft::Error::Rejected {
                    stderr: "boom".into(),
                    exists: false,
                })
            } else {
                Ok(())
            }
        }
    }
    let mut s = Syncer::with_applier(base(), Box::new(Flaky(0)));
    assert!(s.sync().unwrap().full);
    s.set(
        ServiceKey::new("a", "web"),
        Some(ServiceState {
            ports: vec![arb_port_fixed()],
        }),
    );
    let e = s.sync().unwrap_err().to_string();
    assert!(
        e.contains("incremental") && e.contains("pn-test") && e.contains("boom"),
        "{e}"
    );
    assert!(s.sync().unwrap().full);
    assert!(!s.pending());
}

#[test]
fn unchanged_state_applies_nothing() {
    let table = Arc::new(Mutex::new(None));
    let mut s = Syncer::with_applier(base(), Box::new(Model::new(table)));
    let st = ServiceState { ports: vec![] };
    s.set(ServiceKey::new("a", "web"), Some(st.clone()));
    s.sync().unwrap();
    s.set(ServiceKey::new("a", "web"), Some(st));
    assert!(!s.pending());
}

/// An endpoint replaced (the count unchanged) is a change of map and set elements only: no rule,
/// no chain and no goto element, so the kernel commits it without re-validating the ruleset.
#[test]
fn an_endpoint_replaced_is_elements_only() {
    struct Record(Arc<Mutex<Vec<String>>>);
    impl Apply for Record {
        fn apply(&mut self, script: &str) -> Result<(), podnet_nft::Error> {
            self.0.lock().unwrap().push(script.to_string());
            Ok(())
        }
    }
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut s = Syncer::with_applier(base(), Box::new(Record(log.clone())));
    let key = ServiceKey::new("a", "web");
    let mut port = arb_port_fixed();
    port.cluster_endpoints = vec![ep(1), ep(2)];
    s.set(
        key.clone(),
        Some(ServiceState {
            ports: vec![port.clone()],
        }),
    );
    assert!(s.sync().unwrap().full);
    port.cluster_endpoints = vec![ep(1), ep(3)];
    s.set(key, Some(ServiceState { ports: vec![port] }));
    assert!(!s.sync().unwrap().full);
    let tx = log.lock().unwrap().last().unwrap().clone();
    for line in tx.lines() {
        assert!(
            line.starts_with("delete element ip pn-test endpoints")
                || line.starts_with("add element ip pn-test endpoints")
                || line.starts_with("delete element ip pn-test hairpin")
                || line.starts_with("add element ip pn-test hairpin"),
            "{tx}"
        );
        assert!(!line.contains("goto") && !line.contains("jump"), "{tx}");
    }
    assert!(
        tx.contains(&format!("{} . {}", ep(3).ip, ep(3).port)),
        "{tx}"
    );
}

//! The index against a fresh build: whatever order changes arrive in, and wherever syncs fall
//! between them, applying the dirty owners' renders must leave exactly what a state built from the
//! final objects renders.

use super::*;
use crate::policy::model::{self, NamedPort, Protocol, policy};
use crate::policy::sync::merge;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use proptest::prelude::*;
use serde_json::json;

fn base() -> Base {
    Base::new("podnet-policy")
}

fn pol(ns: &str, name: &str, spec: serde_json::Value) -> Policy {
    let obj: NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name}, "spec": spec}))
    .unwrap();
    policy(&obj).unwrap()
}

fn pod(ns: &str, ip: &str, node: &str, label: &str) -> PodInfo {
    PodInfo {
        uid: Default::default(),
        namespace: ns.into(),
        ip: ip.parse().unwrap(),
        node: node.into(),
        labels: json!({"pod": label}).as_object().cloned().unwrap(),
        ports: vec![NamedPort {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 8080,
        }],
    }
}

fn labels(v: serde_json::Value) -> Labels {
    v.as_object().cloned().unwrap()
}

/// Renders every dirty owner into `applied` (what a syncer would have applied).
fn sync(s: &mut State, applied: &mut BTreeMap<Owner, Rendered>) {
    for o in s.take_dirty() {
        let r = s.render(&base(), &o);
        if r.is_empty() {
            applied.remove(&o);
        } else {
            applied.insert(o, r);
        }
    }
}

fn everything(s: &State) -> Rendered {
    let all: Vec<Rendered> = s.owners().iter().map(|o| s.render(&base(), o)).collect();
    merge(all.iter())
}

#[test]
fn a_deny_all_policy_renders_pod_chains_for_this_nodes_pods_only() {
    let mut s = State::new("n1");
    s.set_namespace(
        "x",
        Some(labels(json!({"kubernetes.io/metadata.name": "x"}))),
    );
    s.set_pod(Key::new("x", "a"), Some(pod("x", "10.0.0.1", "n1", "a")));
    s.set_pod(Key::new("x", "b"), Some(pod("x", "10.0.0.2", "n2", "b")));
    s.set_policy(
        Key::new("x", "deny"),
        Some(pol(
            "x",
            "deny",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        )),
    );
    let all = everything(&s);
    assert_eq!(
        all.chains["pod-in-x/a"],
        vec![
            "ip saddr 10.0.0.1 accept",
            "jump pol-in-x/deny",
            "limit rate 10/second burst 20 packets log prefix \"podnet-policy ingress x/a by deny\" group 4011 snaplen 96",
            "counter name \"drop-in-x/deny\"",
            "counter drop",
        ]
    );
    assert_eq!(all.chains["pod-eg-x/a"][0], "ip daddr 10.0.0.1 accept");
    assert!(
        all.chains["pol-in-x/deny"].is_empty(),
        "no rule: nothing allowed"
    );
    assert!(!all.chains.contains_key("pod-in-x/b"), "x/b lives on n2");
    assert_eq!(
        all.elements[&("ingress-pods".to_string(), "10.0.0.1".to_string())],
        Some("goto pod-in-x/a".into())
    );
    assert_eq!(
        all.counters,
        ["drop-eg-x/deny", "drop-in-x/deny"]
            .map(String::from)
            .into()
    );
}

#[test]
fn selector_sets_are_shared_and_follow_labels() {
    let mut s = State::new("n1");
    let mut applied = BTreeMap::new();
    for ns in ["x", "y"] {
        s.set_namespace(ns, Some(labels(json!({"kubernetes.io/metadata.name": ns}))));
    }
    s.set_pod(Key::new("x", "a"), Some(pod("x", "10.0.0.1", "n1", "a")));
    s.set_pod(Key::new("y", "b"), Some(pod("y", "10.0.1.2", "n2", "b")));
    let from_y = json!({"podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}}}],
                     "ports": [{"port": 80}, {"protocol": "UDP", "port": 53, "endPort": 60}]}]});
    s.set_policy(Key::new("x", "p1"), Some(pol("x", "p1", from_y.clone())));
    s.set_policy(Key::new("x", "p2"), Some(pol("x", "p2", from_y)));
    sync(&mut s, &mut applied);
    let all = merge(applied.values());
    let sets: Vec<&String> = all.sets.keys().collect();
    assert_eq!(
        sets.len(),
        1,
        "one set for the two identical peers: {sets:?}"
    );
    let set = sets[0].clone();
    assert!(all.sets[&set].contains("namespaces kubernetes.io/metadata.name=y, pods <all>"));
    assert_eq!(
        all.chains["pol-in-x/p1"],
        vec![
            format!("ip saddr @{set} meta l4proto tcp th dport 80 accept"),
            format!("ip saddr @{set} meta l4proto udp th dport 53-60 accept"),
        ]
    );
    assert!(all.elements.contains_key(&(set.clone(), "10.0.1.2".into())));
    // y/b leaves namespace y's selector when its namespace is relabelled.
    s.set_namespace(
        "y",
        Some(labels(json!({"kubernetes.io/metadata.name": "elsewhere"}))),
    );
    let dirty = s.take_dirty();
    assert_eq!(dirty, [Owner::Selector(set.clone())].into());
    assert!(
        s.render(&base(), &Owner::Selector(set.clone()))
            .elements
            .is_empty()
    );
    // One policy gone: the set stays for the other; both gone: the set goes.
    s.set_policy(Key::new("x", "p1"), None);
    assert!(
        !s.render(&base(), &Owner::Selector(set.clone()))
            .sets
            .is_empty()
    );
    s.set_policy(Key::new("x", "p2"), None);
    assert!(s.render(&base(), &Owner::Selector(set)).is_empty());
    assert!(
        s.render(&base(), &Owner::Pod(Key::new("x", "a")))
            .is_empty()
    );
}

#[test]
fn a_policy_without_pods_here_is_not_programmed() {
    let mut s = State::new("n1");
    s.set_pod(Key::new("x", "a"), Some(pod("x", "10.0.0.1", "n2", "a")));
    s.set_policy(
        Key::new("x", "p"),
        Some(pol(
            "x",
            "p",
            json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}),
        )),
    );
    assert!(everything(&s).is_empty());
    // The pod moves here (a new pod with the same name, scheduled to n1).
    s.set_pod(Key::new("x", "a"), Some(pod("x", "10.0.0.1", "n1", "a")));
    let all = everything(&s);
    assert!(all.chains.contains_key("pol-in-x/p"));
    assert_eq!(all.sets.len(), 1);
}

#[test]
fn named_ports_become_address_protocol_port_sets() {
    let mut s = State::new("n1");
    s.set_pod(Key::new("x", "a"), Some(pod("x", "10.0.0.1", "n1", "a")));
    s.set_pod(Key::new("y", "b"), Some(pod("y", "10.0.1.2", "n2", "b")));
    s.set_policy(
        Key::new("x", "p"),
        Some(pol(
            "x",
            "p",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                   "ingress": [{"ports": [{"port": "http"}]}],
                   "egress": [{"to": [{"namespaceSelector": {}}], "ports": [{"port": "http"}, {"port": "nope"}]}]}),
        )),
    );
    let all = everything(&s);
    assert_eq!(
        all.chains["pol-in-x/p"],
        vec!["ip daddr . meta l4proto . th dport @np-in-x/p-0 accept"]
    );
    assert_eq!(
        all.chains["pol-eg-x/p"],
        vec!["ip daddr . meta l4proto . th dport @np-eg-x/p-0 accept"]
    );
    let ingress_set: Vec<&(String, String)> = all
        .elements
        .keys()
        .filter(|(s, _)| s == "np-in-x/p-0")
        .collect();
    assert_eq!(
        ingress_set,
        vec![&(
            "np-in-x/p-0".to_string(),
            "10.0.0.1 . tcp . 8080".to_string()
        )]
    );
    // Egress: every peer pod of the cluster serving "http".
    for ip in ["10.0.0.1", "10.0.1.2"] {
        assert!(
            all.elements
                .contains_key(&("np-eg-x/p-0".to_string(), format!("{ip} . tcp . 8080")))
        );
    }
    // A peer pod appearing elsewhere changes the egress set.
    s.take_dirty();
    s.set_pod(Key::new("z", "c"), Some(pod("z", "10.0.2.3", "n3", "c")));
    assert!(s.take_dirty().contains(&Owner::Policy(Key::new("x", "p"))));
}

#[test]
fn ip_blocks_render_with_their_exceptions() {
    let mut s = State::new("n1");
    s.set_pod(Key::new("x", "a"), Some(pod("x", "10.0.0.1", "n1", "a")));
    s.set_policy(
        Key::new("x", "p"),
        Some(pol(
            "x",
            "p",
            json!({"podSelector": {}, "policyTypes": ["Egress"],
                   "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.2.0.0/16"]}}]},
                              {"ports": [{"protocol": "SCTP"}]}]}),
        )),
    );
    assert_eq!(
        everything(&s).chains["pol-eg-x/p"],
        vec![
            "ip daddr 10.0.0.0/8 ip daddr != 10.1.0.0/16 ip daddr != 10.2.0.0/16 accept",
            "meta l4proto sctp accept",
        ]
    );
}

#[test]
fn two_pods_claiming_one_address_get_one_entry() {
    let mut s = State::new("n1");
    let mut applied = BTreeMap::new();
    s.set_policy(
        Key::new("x", "p"),
        Some(pol("x", "p", json!({"podSelector": {}}))),
    );
    s.set_pod(Key::new("x", "old"), Some(pod("x", "10.0.0.1", "n1", "a")));
    s.set_pod(Key::new("x", "new"), Some(pod("x", "10.0.0.1", "n1", "a")));
    sync(&mut s, &mut applied);
    let all = merge(applied.values());
    assert_eq!(
        all.elements[&("ingress-pods".to_string(), "10.0.0.1".to_string())],
        Some("goto pod-in-x/new".into()),
        "the smallest key wins"
    );
    // A rebuild clears the start-up holds of programmed addresses, but not of one two pods claim:
    // the one whose rules are not in force stays held.
    assert!(!s.programmed().contains(&"10.0.0.1".parse().unwrap()));
    s.set_pod(Key::new("x", "new"), None);
    sync(&mut s, &mut applied);
    let all = merge(applied.values());
    assert_eq!(
        all.elements[&("ingress-pods".to_string(), "10.0.0.1".to_string())],
        Some("goto pod-in-x/old".into())
    );
    assert_eq!(all, everything(&s));
    assert!(s.programmed().contains(&"10.0.0.1".parse().unwrap()));
}

#[test]
fn log_prefixes_fit_the_kernel() {
    let long: Vec<Key> = (0..20)
        .map(|i| Key::new("other", format!("policy-with-a-long-name-{i}")))
        .collect();
    let refs: Vec<&Key> = long.iter().collect();
    let p = nft::log_prefix(Direction::Ingress, &Key::new("x", "a"), &refs);
    assert!(p.len() <= 127 && p.ends_with("..."), "{p}");
    let p = nft::log_prefix(
        Direction::Egress,
        &Key::new("x", "a"),
        &[&Key::new("x", "p")],
    );
    assert_eq!(p, "podnet-policy egress x/a by p");
}

#[derive(Debug, Clone)]
enum Op {
    Ns(&'static str, Option<&'static str>),
    Pod(
        &'static str,
        &'static str,
        Option<(u8, &'static str, &'static str)>,
    ),
    Policy(&'static str, &'static str, Option<usize>),
    Sync,
}

fn specs() -> Vec<serde_json::Value> {
    vec![
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
               "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
        json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "red"}},
                                                         "podSelector": {"matchLabels": {"pod": "a"}}}],
                                              "ports": [{"port": "http"}, {"port": 81}]}]}),
        json!({"podSelector": {"matchLabels": {"pod": "b"}}, "policyTypes": ["Egress"],
               "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"team": "red"}}}, {"ipBlock": {"cidr": "10.0.0.0/30"}}],
                           "ports": [{"port": "http"}]}]}),
        json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]}),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let ns = prop::sample::select(vec!["x", "y"]);
    let name = prop::sample::select(vec!["a", "b", "c"]);
    prop_oneof![
        (
            ns.clone(),
            prop::option::of(prop::sample::select(vec!["red", "blue"]))
        )
            .prop_map(|(n, t)| Op::Ns(n, t)),
        (
            ns.clone(),
            name,
            prop::option::of((
                1u8..5,
                prop::sample::select(vec!["n1", "n2"]),
                prop::sample::select(vec!["a", "b"])
            ))
        )
            .prop_map(|(n, p, v)| Op::Pod(n, p, v)),
        (
            ns,
            prop::sample::select(vec!["p", "q"]),
            prop::option::of(0usize..5)
        )
            .prop_map(|(n, p, s)| Op::Policy(n, p, s)),
        Just(Op::Sync),
    ]
}

fn apply_op(s: &mut State, o: &Op) {
    match o {
        Op::Ns(n, t) => s.set_namespace(n, t.map(|t| labels(json!({"team": t})))),
        Op::Pod(n, p, v) => s.set_pod(
            Key::new(*n, *p),
            v.map(|(ip, node, l)| pod(n, &format!("10.0.0.{ip}"), node, l)),
        ),
        Op::Policy(n, p, spec) => s.set_policy(
            Key::new(*n, *p),
            spec.map(|i| pol(n, p, specs()[i].clone())),
        ),
        Op::Sync => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn incremental_renders_equal_a_fresh_build(ops in prop::collection::vec(op(), 1..40)) {
        let mut s = State::new("n1");
        let mut applied = BTreeMap::new();
        for o in &ops {
            apply_op(&mut s, o);
            if matches!(o, Op::Sync) {
                sync(&mut s, &mut applied);
            }
        }
        sync(&mut s, &mut applied);
        let incremental = merge(applied.values());
        prop_assert_eq!(&incremental, &everything(&s));
        // A fresh state fed the final objects (policies first, then namespaces, then pods) agrees.
        let mut last_ns = BTreeMap::new();
        let mut last_pod = BTreeMap::new();
        let mut last_pol = BTreeMap::new();
        for o in &ops {
            match o {
                Op::Ns(n, _) => { last_ns.insert(*n, o.clone()); }
                Op::Pod(n, p, _) => { last_pod.insert((*n, *p), o.clone()); }
                Op::Policy(n, p, _) => { last_pol.insert((*n, *p), o.clone()); }
                Op::Sync => {}
            }
        }
        let mut fresh = State::new("n1");
        for o in last_pol.values().chain(last_ns.values()).chain(last_pod.values()) {
            apply_op(&mut fresh, o);
        }
        prop_assert_eq!(&incremental, &everything(&fresh));
    }
}

/// A pod held by a finalizer after its containers stopped, as the API shows it: phase Running, its
/// old address, a deletion timestamp. Its address goes to a new pod with other labels; the old pod's
/// selector set must not let the newcomer in, and the newcomer's own set must hold it.
#[test]
fn a_pod_held_by_a_finalizer_leaves_the_selector_sets_and_its_address_goes_to_the_next_pod() {
    use k8s_openapi::api::core::v1::Pod;
    let api_pod = |name: &str, label: &str, deleting: bool| -> Pod {
        let mut v = json!({
            "metadata": {"namespace": "y", "name": name, "labels": {"pod": label},
                         "finalizers": ["example.com/hold"]},
            "spec": {"nodeName": "n2", "containers": [{"name": "c"}]},
            "status": {"phase": "Running", "podIP": "10.0.1.2", "containerStatuses": [
                {"name": "c", "image": "i", "imageID": "", "ready": !deleting, "restartCount": 0,
                 "state": if deleting { json!({"terminated": {"exitCode": 0}}) }
                          else { json!({"running": {}}) }}]},
        });
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2026-12-07T12:00:00Z");
        }
        serde_json::from_value(v).unwrap()
    };
    let mut s = State::new("n1");
    let mut applied = BTreeMap::new();
    for ns in ["x", "y"] {
        s.set_namespace(ns, Some(labels(json!({"kubernetes.io/metadata.name": ns}))));
    }
    s.set_pod(Key::new("x", "a"), Some(pod("x", "10.0.0.1", "n1", "a")));
    let any_ns = |label: &str| {
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"pod": label}}}]}]})
    };
    s.set_policy(
        Key::new("x", "from-b"),
        Some(pol("x", "from-b", any_ns("b"))),
    );
    s.set_policy(
        Key::new("x", "from-c"),
        Some(pol("x", "from-c", any_ns("c"))),
    );
    let set_of = |s: &State, policy: &str| -> String {
        let r = s.render(&base(), &Owner::Policy(Key::new("x", policy)));
        let rules = &r.chains[&format!("pol-in-x/{policy}")];
        rules[0]
            .split('@')
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .unwrap()
            .to_string()
    };
    let (set_b, set_c) = (set_of(&s, "from-b"), set_of(&s, "from-c"));
    let holds = |applied: &BTreeMap<Owner, Rendered>, set: &str| {
        merge(applied.values())
            .elements
            .contains_key(&(set.to_string(), "10.0.1.2".to_string()))
    };

    s.set_pod(
        Key::new("y", "old"),
        model::pod_info(&api_pod("old", "b", false)),
    );
    sync(&mut s, &mut applied);
    assert!(
        holds(&applied, &set_b),
        "a running y/old is a peer of from-b"
    );

    // Deleted, held by its finalizer, containers stopped: no longer the address's owner.
    s.set_pod(
        Key::new("y", "old"),
        model::pod_info(&api_pod("old", "b", true)),
    );
    sync(&mut s, &mut applied);
    assert!(
        !holds(&applied, &set_b),
        "a stopped pod held by a finalizer keeps its address in from-b's set"
    );
    // The address's next owner, labelled c, is let in by from-c only.
    s.set_pod(
        Key::new("y", "new"),
        model::pod_info(&api_pod("new", "c", false)),
    );
    sync(&mut s, &mut applied);
    assert!(!holds(&applied, &set_b));
    assert!(holds(&applied, &set_c));
    assert_eq!(merge(applied.values()), everything(&s));
}

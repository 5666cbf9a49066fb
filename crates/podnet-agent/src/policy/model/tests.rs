use super::*;
use proptest::prelude::*;
use serde_json::json;

fn np(ns: &str, name: &str, spec: serde_json::Value) -> Policy {
    let obj: NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": spec,
    }))
    .expect("a NetworkPolicy");
    policy(&obj).expect("namespaced and named")
}

fn pod(ns: &str, ip: &str, labels: serde_json::Value) -> PodInfo {
    PodInfo {
        uid: Default::default(),
        namespace: ns.into(),
        ip: ip.parse().unwrap(),
        node: "n1".into(),
        labels: labels.as_object().cloned().unwrap_or_default(),
        ports: vec![
            NamedPort {
                name: "http".into(),
                protocol: Protocol::Tcp,
                port: 8080,
            },
            NamedPort {
                name: "dns".into(),
                protocol: Protocol::Udp,
                port: 5353,
            },
        ],
    }
}

/// Namespaces x, y, z (labelled as the API server labels them, plus `team`), pods a, b in each.
fn cluster(policies: Vec<Policy>) -> Cluster {
    let mut c = Cluster {
        policies,
        ..Default::default()
    };
    for (i, ns) in ["x", "y", "z"].iter().enumerate() {
        c.namespaces.insert(
            ns.to_string(),
            json!({"kubernetes.io/metadata.name": ns, "team": if *ns == "z" { "blue" } else { "red" }})
                .as_object()
                .cloned()
                .unwrap(),
        );
        for (j, p) in ["a", "b"].iter().enumerate() {
            c.pods
                .push(pod(ns, &format!("10.0.{i}.{}", j + 1), json!({"pod": p})));
        }
    }
    c
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

// Addresses of the pods of `cluster`.
const XA: &str = "10.0.0.1";
const XB: &str = "10.0.0.2";
const YA: &str = "10.0.1.1";
const YB: &str = "10.0.1.2";
const ZA: &str = "10.0.2.1";
const OUTSIDE: &str = "192.0.2.7";

fn tcp(c: &Cluster, from: &str, to: &str, port: u16) -> bool {
    c.allows(ip(from), ip(to), Protocol::Tcp, port)
}

#[test]
fn no_policy_allows_everything() {
    let c = cluster(vec![]);
    assert!(tcp(&c, XA, YB, 80));
    assert!(tcp(&c, OUTSIDE, XA, 80));
}

#[test]
fn policy_types_default_to_ingress_plus_egress_when_egress_rules_exist() {
    let p = np("x", "p", json!({"podSelector": {}, "ingress": [{}]}));
    assert_eq!(
        p.ingress,
        Some(vec![Rule {
            peers: None,
            ports: None
        }])
    );
    assert_eq!(p.egress, None);
    // Egress rules and no policyTypes: both directions, and no ingress rule means deny all ingress.
    let p = np(
        "x",
        "p",
        json!({"podSelector": {}, "egress": [{"to": [{"podSelector": {}}]}]}),
    );
    assert_eq!(p.ingress, Some(vec![]));
    assert!(p.egress.is_some());
    let c = cluster(vec![p]);
    assert!(!tcp(&c, YA, XA, 80), "ingress is isolated by the default");
    assert!(!tcp(&c, XA, XB, 80), "x/b's ingress is isolated too");
    // An empty egress list does not add Egress.
    let p = np("x", "p", json!({"podSelector": {}, "egress": []}));
    assert_eq!(p.egress, None);
}

#[test]
fn explicit_policy_types_ignore_the_other_direction_rules() {
    let p = np(
        "x",
        "p",
        json!({"podSelector": {}, "policyTypes": ["Egress"], "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "zzz"}}}]}]}),
    );
    assert_eq!(p.ingress, None);
    assert_eq!(p.egress, Some(vec![]));
    let c = cluster(vec![p]);
    assert!(tcp(&c, YA, XA, 80), "ingress not isolated");
    assert!(!tcp(&c, XA, YA, 80), "egress denied");
    assert!(tcp(&c, XA, XA, 80), "a pod always reaches itself");
}

#[test]
fn default_deny_and_allow_all() {
    let deny = np(
        "x",
        "deny",
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    );
    let c = cluster(vec![deny.clone()]);
    assert!(!tcp(&c, YA, XA, 80));
    assert!(!tcp(&c, XB, XA, 80));
    assert!(!tcp(&c, OUTSIDE, XA, 80));
    assert!(tcp(&c, XA, YA, 80), "egress from x untouched");
    assert!(tcp(&c, YA, YB, 80), "y untouched");
    // Union: allow-all next to deny-all allows all.
    let allow = np("x", "allow", json!({"podSelector": {}, "ingress": [{}]}));
    let c = cluster(vec![deny, allow]);
    assert!(tcp(&c, OUTSIDE, XA, 80));
    assert!(tcp(&c, ZA, XB, 81));
}

#[test]
fn pod_selector_peers_stay_in_the_policy_namespace() {
    let p = np(
        "x",
        "p",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
               "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
    );
    let c = cluster(vec![p]);
    assert!(tcp(&c, XB, XA, 80));
    assert!(
        !tcp(&c, YB, XA, 80),
        "y/b has the label but not the namespace"
    );
    assert!(tcp(&c, YA, XB, 80), "x/b is not selected");
}

#[test]
fn namespace_selector_alone_takes_every_pod_of_the_namespaces() {
    let p = np(
        "x",
        "p",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
               "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}}}]}]}),
    );
    let c = cluster(vec![p]);
    assert!(tcp(&c, YA, XA, 80) && tcp(&c, YB, XA, 80));
    assert!(!tcp(&c, XB, XA, 80));
    assert!(!tcp(&c, ZA, XA, 80));
    assert!(
        !tcp(&c, OUTSIDE, XA, 80),
        "a namespaceSelector never matches outside addresses"
    );
}

#[test]
fn both_selectors_in_one_peer_and_versus_two_peers_or() {
    let and = np(
        "x",
        "and",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
               "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "red"}},
                                      "podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
    );
    let c = cluster(vec![and]);
    assert!(tcp(&c, XB, XA, 80) && tcp(&c, YB, XA, 80));
    assert!(!tcp(&c, YA, XA, 80), "namespace matches, pod does not");
    assert!(
        !tcp(&c, "10.0.2.2", XA, 80),
        "pod matches, namespace (blue) does not"
    );
    let or = np(
        "x",
        "or",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
               "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "red"}}},
                                     {"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
    );
    let c = cluster(vec![or]);
    assert!(tcp(&c, YA, XA, 80), "red namespace");
    assert!(tcp(&c, XB, XA, 80), "own namespace pod b");
    assert!(!tcp(&c, ZA, XA, 80), "blue, and not in x");
    assert!(
        !tcp(&c, "10.0.2.2", XA, 80),
        "z/b: pod b, but the pod peer is x's only"
    );
}

#[test]
fn match_expressions_select() {
    let p = np(
        "x",
        "p",
        json!({"podSelector": {"matchExpressions": [{"key": "pod", "operator": "In", "values": ["a"]}]},
               "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
                   {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["x"]}]}}]}]}),
    );
    let c = cluster(vec![p]);
    assert!(!tcp(&c, XB, XA, 80));
    assert!(tcp(&c, YA, XA, 80) && tcp(&c, ZA, XA, 80));
}

#[test]
fn ports_by_number_range_protocol_and_name() {
    let p = np(
        "x",
        "p",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
               "ingress": [{"ports": [{"port": 80}, {"protocol": "TCP", "port": 1000, "endPort": 1002},
                                      {"protocol": "UDP"}, {"port": "http"}, {"protocol": "UDP", "port": "dns"}]}]}),
    );
    let c = cluster(vec![p]);
    assert!(tcp(&c, YA, XA, 80));
    assert!(!tcp(&c, YA, XA, 81));
    assert!(tcp(&c, YA, XA, 1000) && tcp(&c, YA, XA, 1002) && !tcp(&c, YA, XA, 1003));
    assert!(c.allows(ip(YA), ip(XA), Protocol::Udp, 9));
    assert!(tcp(&c, YA, XA, 8080), "named port http is 8080 on x/a");
    assert!(
        !c.allows(ip(YA), ip(XA), Protocol::Sctp, 80),
        "TCP 80 is not SCTP 80"
    );
    // dns is UDP 5353; asked for over TCP it is not the same port.
    let only_dns_tcp = np(
        "x",
        "q",
        json!({"podSelector": {"matchLabels": {"pod": "b"}}, "ingress": [{"ports": [{"port": "dns"}]}]}),
    );
    let c = cluster(vec![only_dns_tcp]);
    assert!(!tcp(&c, YA, XB, 5353));
}

#[test]
fn egress_named_ports_resolve_on_the_destination() {
    let p = np(
        "x",
        "p",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
               "egress": [{"ports": [{"port": "http"}]}]}),
    );
    let mut c = cluster(vec![p]);
    c.pods[2].ports.clear(); // y/a has no named ports
    assert!(tcp(&c, XA, YB, 8080));
    assert!(!tcp(&c, XA, YA, 8080), "y/a does not name 8080 http");
    assert!(!tcp(&c, XA, OUTSIDE, 8080), "no pod, no name");
}

#[test]
fn sctp_only_policy_isolates_tcp() {
    let p = np(
        "x",
        "p",
        json!({"podSelector": {}, "ingress": [{"ports": [{"protocol": "SCTP", "port": 80}]}]}),
    );
    let c = cluster(vec![p]);
    assert!(!tcp(&c, YA, XA, 80));
    assert!(c.allows(ip(YA), ip(XA), Protocol::Sctp, 80));
}

#[test]
fn ip_blocks_with_except_and_union_of_peers() {
    let p = np(
        "x",
        "p",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
               "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}}]}]}),
    );
    assert_eq!(p.problems, Vec::<String>::new());
    let c = cluster(vec![p.clone()]);
    assert!(tcp(&c, ZA, XA, 80));
    assert!(!tcp(&c, YA, XA, 80), "excepted");
    assert!(!tcp(&c, OUTSIDE, XA, 80));
    // A second peer naming an excepted address allows it (peers are a union).
    let p2 = np(
        "x",
        "p2",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
               "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.1.1/32"}}]}]}),
    );
    let c = cluster(vec![p, p2]);
    assert!(tcp(&c, YA, XA, 80));
    assert!(!tcp(&c, YB, XA, 80));
    // Host bits are cleared as Go's ParseCIDR does.
    let p = np(
        "x",
        "p",
        json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "192.0.2.99/24"}}]}]}),
    );
    let c = cluster(vec![p]);
    assert!(tcp(&c, OUTSIDE, XA, 80));
}

#[test]
fn egress_to_ip_block() {
    let p = np(
        "x",
        "p",
        json!({"podSelector": {}, "policyTypes": ["Egress"],
               "egress": [{"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}], "ports": [{"port": 443}]}]}),
    );
    let c = cluster(vec![p]);
    assert!(tcp(&c, XA, OUTSIDE, 443));
    assert!(!tcp(&c, XA, OUTSIDE, 80));
    assert!(!tcp(&c, XA, YA, 443));
    assert!(tcp(&c, OUTSIDE, XA, 80), "ingress untouched");
}

#[test]
fn both_sides_must_allow() {
    let deny_egress = np(
        "x",
        "e",
        json!({"podSelector": {}, "policyTypes": ["Egress"]}),
    );
    let allow_in = np("y", "i", json!({"podSelector": {}, "ingress": [{}]}));
    let c = cluster(vec![deny_egress, allow_in]);
    assert!(
        !tcp(&c, XA, YA, 80),
        "the client side denies even if the server allows"
    );
    assert!(
        tcp(&c, YA, XA, 80),
        "replies are not new connections: the server side allows it"
    );
}

#[test]
fn broken_parts_match_nothing_and_are_reported() {
    let p = np(
        "x",
        "p",
        json!({"podSelector": {},
               "ingress": [{"from": [{"ipBlock": {"cidr": "not-a-cidr"}},
                                     {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}},
                                     {},
                                     {"ipBlock": {"cidr": "fd00::/8"}}],
                            "ports": [{"port": 0}, {"port": 90, "endPort": 80}, {"port": "x", "endPort": 9},
                                      {"protocol": "ICMP"}]}]}),
    );
    assert_eq!(p.problems.len(), 7, "{:?}", p.problems);
    let rule = &p.ingress.as_ref().unwrap()[0];
    assert_eq!(
        rule.peers,
        Some(vec![
            Peer::Nothing,
            Peer::Nothing,
            Peer::Nothing,
            Peer::Nothing
        ])
    );
    assert!(
        rule.ports
            .as_ref()
            .unwrap()
            .iter()
            .all(|p| *p == Port::Nothing)
    );
    let c = cluster(vec![p]);
    assert!(!tcp(&c, YA, XA, 80), "still isolating, allowing nothing");
}

#[test]
fn pods_without_a_part_in_policies() {
    let base: Pod = serde_json::from_value(json!({
        "metadata": {"namespace": "x", "name": "a", "labels": {"pod": "a"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [
            {"name": "http", "containerPort": 8080},
            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
            {"containerPort": 9000}]}]},
        "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "fd00::1"}, {"ip": "10.0.0.1"}]},
    }))
    .unwrap();
    let info = pod_info(&base).expect("a running pod with an address");
    assert_eq!(info.ip, ip("10.0.0.1"));
    assert_eq!(info.node, "n1");
    assert_eq!(info.named_port("http", Protocol::Tcp), Some(8080));
    assert_eq!(info.named_port("dns", Protocol::Udp), Some(53));
    assert_eq!(info.named_port("dns", Protocol::Tcp), None);
    assert_eq!(info.ports.len(), 2, "unnamed ports cannot be named");
    let mut host = base.clone();
    host.spec.as_mut().unwrap().host_network = Some(true);
    assert_eq!(pod_info(&host), None);
    let mut done = base.clone();
    done.status.as_mut().unwrap().phase = Some("Succeeded".into());
    assert_eq!(pod_info(&done), None);
    let mut pending = base;
    let st = pending.status.as_mut().unwrap();
    st.pod_ip = None;
    st.pod_ips = None;
    assert_eq!(pod_info(&pending), None);
}

/// A pod held by a finalizer after its containers stopped shows phase Running and its address for
/// as long as the finalizer stays; the address is free for a new pod by then.
#[test]
fn pods_being_deleted_leave_the_peers_once_their_containers_stopped() {
    let pod = |deleting: bool, states: serde_json::Value| -> Pod {
        let mut v = json!({
            "metadata": {"namespace": "x", "name": "a", "labels": {"pod": "a"},
                         "finalizers": ["example.com/hold"]},
            "spec": {"nodeName": "n1", "initContainers": [{"name": "init"}],
                     "containers": [{"name": "c1"}, {"name": "c2"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                       "initContainerStatuses": [{"name": "init", "image": "i", "imageID": "",
                           "ready": false, "restartCount": 0,
                           "state": {"terminated": {"exitCode": 0}}}],
                       "containerStatuses": states},
        });
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2026-12-07T12:00:00Z");
        }
        serde_json::from_value(v).unwrap()
    };
    let status = |name: &str, state: serde_json::Value| {
        json!({"name": name, "image": "i", "imageID": "", "ready": false, "restartCount": 0,
               "state": state})
    };
    let running = json!({"running": {"startedAt": "2026-12-07T11:00:00Z"}});
    let stopped = json!({"terminated": {"exitCode": 137}});
    let both_stopped = json!([status("c1", stopped.clone()), status("c2", stopped.clone())]);
    let one_running = json!([status("c1", stopped.clone()), status("c2", running.clone())]);

    assert!(pod_info(&pod(true, both_stopped.clone())).is_none());
    assert!(released_its_address(&pod(true, both_stopped.clone())));
    // Containers that never started (waiting) do not hold the address either.
    let waiting = json!([
        status("c1", json!({"waiting": {"reason": "ContainerCreating"}})),
        status("c2", stopped.clone())
    ]);
    assert!(pod_info(&pod(true, waiting)).is_none());
    // The grace period: still running, still the owner.
    assert!(pod_info(&pod(true, one_running)).is_some());
    // Not being deleted: a container that exited (restartPolicy Never, the other still running, or
    // waiting for a restart) does not release the sandbox's address.
    assert!(pod_info(&pod(false, both_stopped)).is_some());
    // Being deleted with no container statuses at all: nothing says they stopped.
    let mut bare = pod(true, json!([]));
    let st = bare.status.as_mut().unwrap();
    st.init_container_statuses = None;
    st.container_statuses = None;
    assert!(pod_info(&bare).is_some());
    let mut failed = pod(false, json!([status("c1", running)]));
    failed.status.as_mut().unwrap().phase = Some("Failed".into());
    assert!(pod_info(&failed).is_none());
}

#[test]
fn selector_texts_identify_equal_selectors() {
    let a = Selector::from_api(
        &serde_json::from_value(json!({"matchLabels": {"b": "2", "a": "1"}})).unwrap(),
    )
    .unwrap();
    let b = Selector::from_api(
        &serde_json::from_value(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}], "matchLabels": {"b": "2"}})).unwrap(),
    )
    .unwrap();
    assert_eq!(a.text(), "a=1,b=2");
    assert!(a.matches(json!({"a": "1", "b": "2"}).as_object().unwrap()));
    assert!(b.matches(json!({"a": "1", "b": "2"}).as_object().unwrap()));
    assert!(Selector::all().matches(&Labels::new()));
    assert!(!Selector::none().matches(&Labels::new()));
    assert!(
        Selector::from_api(
            &serde_json::from_value(
                json!({"matchExpressions": [{"key": "a", "operator": "Near"}]})
            )
            .unwrap()
        )
        .is_err()
    );
}

fn any_port() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(json!({})),
        (-5i32..70000).prop_map(|p| json!({"port": p})),
        (-5i32..70000, -5i32..70000).prop_map(|(p, e)| json!({"port": p, "endPort": e})),
        "[a-z0-9-]{0,8}".prop_map(|n| json!({"port": n})),
        prop::sample::select(vec!["TCP", "UDP", "SCTP", "ICMP", "", "tcp"])
            .prop_map(|p| json!({"protocol": p})),
        (-5i32..70000).prop_map(|e| json!({"endPort": e})),
    ]
}

fn any_peer() -> impl Strategy<Value = serde_json::Value> {
    let cidr = prop_oneof![
        "[0-9./:a-f]{0,20}",
        (any::<[u8; 4]>(), 0u8..40)
            .prop_map(|(a, l)| format!("{}.{}.{}.{}/{l}", a[0], a[1], a[2], a[3])),
    ];
    let sel = prop_oneof![
        Just(json!({})),
        "[a-z]{1,3}".prop_map(|v| json!({"matchLabels": {"pod": v}})),
        prop::sample::select(vec!["In", "NotIn", "Exists", "DoesNotExist", "Bogus"]).prop_map(
            |op| json!({"matchExpressions": [{"key": "pod", "operator": op, "values": ["a"]}]})
        ),
        Just(json!({"matchLabels": {"bad key!": "x"}})),
    ];
    prop_oneof![
        (cidr.clone(), prop::collection::vec(cidr, 0..3))
            .prop_map(|(c, e)| json!({"ipBlock": {"cidr": c, "except": e}})),
        sel.clone().prop_map(|s| json!({"podSelector": s})),
        sel.clone().prop_map(|s| json!({"namespaceSelector": s})),
        (sel.clone(), sel).prop_map(|(a, b)| json!({"namespaceSelector": a, "podSelector": b})),
        Just(json!({})),
    ]
}

fn any_rule() -> impl Strategy<Value = serde_json::Value> {
    (
        prop::option::of(prop::collection::vec(any_peer(), 0..3)),
        prop::option::of(prop::collection::vec(any_port(), 0..3)),
    )
        .prop_map(|(peers, ports)| {
            let mut r = serde_json::Map::new();
            if let Some(p) = peers {
                r.insert("from".into(), json!(p.clone()));
                r.insert("to".into(), json!(p));
            }
            if let Some(p) = ports {
                r.insert("ports".into(), json!(p));
            }
            serde_json::Value::Object(r)
        })
}

proptest! {
    /// Whatever a client wrote, reading it never panics, and an entry that could not be understood
    /// never allows anything: dropping it changes no verdict.
    #[test]
    fn untrusted_policies_never_allow_more_than_written(
        ingress in prop::option::of(prop::collection::vec(any_rule(), 0..3)),
        egress in prop::option::of(prop::collection::vec(any_rule(), 0..3)),
        types in prop::option::of(prop::collection::vec(prop::sample::select(vec!["Ingress", "Egress", "Other"]), 0..3)),
        port in 1u16..100,
    ) {
        let mut spec = serde_json::Map::new();
        spec.insert("podSelector".into(), json!({"matchLabels": {"pod": "a"}}));
        if let Some(i) = ingress { spec.insert("ingress".into(), json!(i)); }
        if let Some(e) = egress { spec.insert("egress".into(), json!(e)); }
        if let Some(t) = types { spec.insert("policyTypes".into(), json!(t)); }
        let obj: Result<NetworkPolicy, _> = serde_json::from_value(json!({
            "metadata": {"namespace": "x", "name": "p"}, "spec": spec}));
        let Ok(obj) = obj else { return Ok(()); };
        let p = policy(&obj).unwrap();
        let mut cleaned = p.clone();
        for rules in [cleaned.ingress.as_mut(), cleaned.egress.as_mut()].into_iter().flatten() {
            for r in rules.iter_mut() {
                // A rule whose every peer (or port) is broken matches nothing; keep it so.
                if let Some(ps) = r.peers.as_mut() {
                    ps.retain(|p| *p != Peer::Nothing);
                    if ps.is_empty() { ps.push(Peer::Block(Block { cidr: "255.255.255.255/32".parse().unwrap(), except: vec![] })); }
                }
                if let Some(ps) = r.ports.as_mut() {
                    ps.retain(|p| *p != Port::Nothing);
                    if ps.is_empty() { ps.push(Port::Range(Protocol::Tcp, 1, 1)); ps.push(Port::Range(Protocol::Udp, 1, 1)); }
                }
            }
        }
        let with = cluster(vec![p]);
        let without = cluster(vec![cleaned]);
        for from in [XA, XB, YA, ZA, OUTSIDE] {
            for to in [XA, XB, YA, OUTSIDE] {
                for proto in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
                    let port = if port == 1 { 2 } else { port };
                    prop_assert_eq!(
                        with.allows(ip(from), ip(to), proto, port),
                        without.allows(ip(from), ip(to), proto, port),
                        "{} -> {} {:?} {}", from, to, proto, port
                    );
                }
            }
        }
    }
}

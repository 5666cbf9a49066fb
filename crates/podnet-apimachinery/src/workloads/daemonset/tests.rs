use super::*;

const NOW: i64 = 1_700_000_000;

fn node(name: &str, labels: Value) -> Value {
    json!({"metadata": {"name": name, "labels": labels},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
}

fn ds(strategy: Value) -> Value {
    json!({"metadata": {"name": "agent", "uid": "u1", "generation": 2},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "updateStrategy": strategy,
        "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "a", "image": "busybox"}]}}}})
}

/// A daemon pod on `node` at revision `hash`, Ready (and so available) or not.
fn pod(name: &str, node: &str, hash: &str, ready: bool) -> Value {
    json!({"metadata": {"name": name, "creationTimestamp": "2023-11-14T00:00:00Z", "labels": {"controller-revision-hash": hash}},
        "spec": {"nodeName": node},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": "2023-11-14T00:00:00Z"}]}})
}

fn nodes3() -> Vec<Value> {
    vec![
        node("node1", json!({})),
        node("node2", json!({})),
        node("node3", json!({})),
    ]
}

#[test]
fn a_daemon_pod_tolerates_what_daemons_must_and_is_pinned_to_its_node() {
    let p = new_pod(&ds(json!({"type": "RollingUpdate"})), "node2", "h1");
    assert_eq!(p["metadata"]["generateName"], "agent-");
    assert_eq!(
        p["metadata"]["labels"],
        json!({"app": "agent", "controller-revision-hash": "h1", "pod-template-generation": "2"})
    );
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
    let keys: Vec<&str> = p["spec"]["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"node.kubernetes.io/unschedulable"));
    assert!(keys.contains(&"node.kubernetes.io/not-ready"));
    assert!(!keys.contains(&"node.kubernetes.io/network-unavailable"));
    assert_eq!(target_node(&p).as_deref(), Some("node2"));
}

#[test]
fn which_nodes_run_a_daemon() {
    let mut d = ds(json!({"type": "RollingUpdate"}));
    let plain = node("n", json!({"disk": "ssd"}));
    assert_eq!(node_fit(&d, &plain), (true, true));
    let mut cordoned = plain.clone();
    cordoned["spec"] = json!({"unschedulable": true, "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]});
    assert_eq!(
        node_fit(&d, &cordoned),
        (true, true),
        "daemons run on cordoned nodes"
    );
    let mut tainted = plain.clone();
    tainted["spec"] =
        json!({"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]});
    assert_eq!(
        node_fit(&d, &tainted),
        (false, true),
        "a NoSchedule taint keeps running pods"
    );
    tainted["spec"]["taints"][0]["effect"] = json!("NoExecute");
    assert_eq!(node_fit(&d, &tainted), (false, false));
    let mut not_ready = plain.clone();
    not_ready["status"]["conditions"][0]["status"] = json!("False");
    assert_eq!(
        node_fit(&d, &not_ready),
        (false, true),
        "no new pods on a node that is not ready, running ones stay"
    );
    d["spec"]["template"]["spec"]["nodeSelector"] = json!({"disk": "hdd"});
    assert_eq!(node_fit(&d, &plain), (false, false));
    d["spec"]["template"]["spec"]["nodeSelector"] = json!({"disk": "ssd"});
    assert_eq!(node_fit(&d, &plain), (true, true));
}

#[test]
fn every_matching_node_gets_one_pod() {
    let d =
        ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}));
    let pods = vec![
        pod("a", "node1", "h1", true),
        pod("b", "node1", "h1", true),
        pod("c", "gone", "h1", true),
    ];
    let p = plan(&d, &nodes3(), &pods, "h1", NOW);
    assert_eq!(p.create_on, ["node2", "node3"]);
    // the duplicate on node1 and the pod of a node that no longer exists go
    assert_eq!(p.delete, ["b", "c"]);
}

#[test]
fn rolling_update_without_surge_keeps_max_unavailable() {
    let d =
        ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}));
    let old = vec![
        pod("a", "node1", "h0", true),
        pod("b", "node2", "h0", true),
        pod("c", "node3", "h0", true),
    ];
    let p = plan(&d, &nodes3(), &old, "h1", NOW);
    assert_eq!((p.create_on.len(), p.delete.len()), (0, 1));
    // node1's new pod is not available yet: nothing more goes
    let mid = vec![
        pod("a2", "node1", "h1", false),
        pod("b", "node2", "h0", true),
        pod("c", "node3", "h0", true),
    ];
    assert_eq!(plan(&d, &nodes3(), &mid, "h1", NOW), Plan::default());
    // it is: the next old pod goes
    let mid = vec![
        pod("a2", "node1", "h1", true),
        pod("b", "node2", "h0", true),
        pod("c", "node3", "h0", true),
    ];
    assert_eq!(plan(&d, &nodes3(), &mid, "h1", NOW).delete, ["b"]);
    // an unavailable old pod is replaced at once, beside the budget
    let broken = vec![
        pod("a2", "node1", "h1", false),
        pod("b", "node2", "h0", false),
        pod("c", "node3", "h0", true),
    ];
    assert_eq!(plan(&d, &nodes3(), &broken, "h1", NOW).delete, ["b"]);
    // node1's old pod is gone and its new one only being created: that node is the one unavailable
    // node the budget allows, so no other old pod goes in the same sync
    let recreating = vec![pod("b", "node2", "h0", true), pod("c", "node3", "h0", true)];
    let p = plan(&d, &nodes3(), &recreating, "h1", NOW);
    assert_eq!((p.create_on, p.delete), (vec!["node1".to_string()], vec![]));
    // OnDelete: old pods stay
    let od = ds(json!({"type": "OnDelete"}));
    assert_eq!(plan(&od, &nodes3(), &old, "h1", NOW), Plan::default());
}

#[test]
fn rolling_update_with_surge_starts_new_pods_before_removing_old_ones() {
    let d =
        ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}));
    let old = vec![
        pod("a", "node1", "h0", true),
        pod("b", "node2", "h0", true),
        pod("c", "node3", "h0", true),
    ];
    let p = plan(&d, &nodes3(), &old, "h1", NOW);
    assert_eq!(p.create_on, ["node1"]);
    assert!(p.delete.is_empty());
    let surging = vec![
        pod("a", "node1", "h0", true),
        pod("a2", "node1", "h1", false),
        pod("b", "node2", "h0", true),
        pod("c", "node3", "h0", true),
    ];
    assert_eq!(plan(&d, &nodes3(), &surging, "h1", NOW), Plan::default());
    let ready = vec![
        pod("a", "node1", "h0", true),
        pod("a2", "node1", "h1", true),
        pod("b", "node2", "h0", true),
        pod("c", "node3", "h0", true),
    ];
    let p = plan(&d, &nodes3(), &ready, "h1", NOW);
    assert_eq!(p.delete, ["a"]);
    assert_eq!(p.create_on, ["node2"]);
}

#[test]
fn status_counts_nodes() {
    let mut d = ds(json!({"type": "RollingUpdate"}));
    d["spec"]["template"]["spec"]["nodeSelector"] = json!({"role": "edge"});
    let nodes = vec![
        node("node1", json!({"role": "edge"})),
        node("node2", json!({"role": "edge"})),
        node("node3", json!({})),
    ];
    let pods = vec![
        pod("a", "node1", "h1", true),
        pod("b", "node2", "h0", false),
        pod("c", "node3", "h1", true),
    ];
    let st = status(&d, &nodes, &pods, "h1", NOW);
    assert_eq!(
        st,
        json!({"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberMisscheduled": 1,
        "numberReady": 1, "numberAvailable": 1, "numberUnavailable": 1, "updatedNumberScheduled": 1})
    );
}

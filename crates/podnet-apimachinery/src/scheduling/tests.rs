//! The scheduler's choices and messages on small clusters.

use serde_json::{Value, json};

use super::*;

fn node(name: &str, labels: Value, ready: &str, taints: Value) -> Value {
    json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": {
            "conditions": [{"type": "Ready", "status": ready}],
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110", "ephemeral-storage": "10Gi"},
        },
    })
}

fn pod(name: &str, spec: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": name}}, "spec": spec})
}

fn on(mut p: Value, node: &str) -> Value {
    p["spec"]["nodeName"] = json!(node);
    p
}

fn run(p: &Value, nodes: &[Value], pods: &[Value]) -> Result<String, String> {
    schedule(
        p,
        &Cluster {
            nodes,
            pods,
            namespaces: &[],
        },
    )
    .map_err(|e| e.message())
}

#[test]
fn the_message_kube_scheduler_prints() {
    let nodes = [
        node("node1", json!({"disk": "hdd"}), "True", json!([])),
        node("node2", json!({"disk": "ssd"}), "False", json!([])),
    ];
    let p = pod(
        "web",
        json!({"nodeSelector": {"disk": "ssd"}, "containers": [{}]}),
    );
    assert_eq!(
        run(&p, &nodes, &[]).unwrap_err(),
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );
    assert_eq!(
        run(&p, &[], &[]).unwrap_err(),
        "no nodes available to schedule pods"
    );
}

#[test]
fn resources_and_preemption_wording() {
    let nodes = [
        node("node1", json!({}), "True", json!([])),
        node(
            "node2",
            json!({}),
            "True",
            json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
        ),
    ];
    let big =
        json!({"containers": [{"resources": {"requests": {"cpu": "1500m", "memory": "1Gi"}}}]});
    let placed = [on(pod("a", big.clone()), "node1")];
    let err = run(&pod("b", big), &nodes, &placed).unwrap_err();
    assert_eq!(
        err,
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}. preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling."
    );
    // memory too, on both nodes when both are full
    let huge = json!({"containers": [{"resources": {"requests": {"cpu": "3", "memory": "5Gi", "ephemeral-storage": "20Gi"}}}], "tolerations": [{"operator": "Exists"}]});
    let err = run(&pod("c", huge), &nodes, &[]).unwrap_err();
    assert!(
        err.starts_with("0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient ephemeral-storage, 2 Insufficient memory."),
        "{err}"
    );
}

#[test]
fn spreading_is_deterministic() {
    let nodes = [
        node("node-b", json!({}), "True", json!([])),
        node("node-a", json!({}), "True", json!([])),
    ];
    let p = pod("web", json!({"containers": [{}]}));
    // equal nodes: by name
    assert_eq!(run(&p, &nodes, &[]).unwrap(), "node-a");
    // the emptier node wins
    let placed = [on(pod("x", json!({"containers": [{}]})), "node-a")];
    assert_eq!(run(&p, &nodes, &placed).unwrap(), "node-b");
    // PreferNoSchedule steers, but does not forbid
    let soft = [
        node(
            "node-a",
            json!({}),
            "True",
            json!([{"key": "k", "effect": "PreferNoSchedule"}]),
        ),
        node("node-b", json!({}), "True", json!([])),
    ];
    assert_eq!(run(&p, &soft, &placed[..0]).unwrap(), "node-b");
    assert_eq!(run(&p, &soft[..1], &[]).unwrap(), "node-a");
}

#[test]
fn cordoned_not_ready_and_unreachable_nodes() {
    let mut cordoned = node("n1", json!({}), "True", json!([]));
    cordoned["spec"]["unschedulable"] = json!(true);
    let unknown = node("n2", json!({}), "Unknown", json!([]));
    let tainted = node(
        "n3",
        json!({}),
        "False",
        json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]),
    );
    let p = pod("web", json!({"containers": [{}]}));
    assert_eq!(
        run(
            &p,
            &[cordoned.clone(), unknown.clone(), tainted.clone()],
            &[]
        )
        .unwrap_err(),
        "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 1 node(s) were unschedulable. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
    // a pod tolerating everything (a DaemonSet's) may go anywhere, as upstream
    let tolerant = pod(
        "ds",
        json!({"containers": [{}], "tolerations": [{"operator": "Exists"}]}),
    );
    assert!(run(&tolerant, &[cordoned], &[]).is_ok());
    assert!(run(&tolerant, &[unknown], &[]).is_ok());
}

#[test]
fn node_affinity_and_node_name() {
    let nodes = [
        node("n1", json!({"zone": "a"}), "True", json!([])),
        node("n2", json!({"zone": "b"}), "True", json!([])),
    ];
    let p = pod(
        "web",
        json!({"containers": [{}], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}]}}}}),
    );
    assert_eq!(run(&p, &nodes, &[]).unwrap(), "n2");
    let pinned = pod(
        "web",
        json!({"containers": [{}], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]}}}}),
    );
    let mut cordoned = nodes.to_vec();
    cordoned[1]["spec"]["unschedulable"] = json!(true);
    assert_eq!(
        run(&pinned, &cordoned, &[]).unwrap_err(),
        "0/2 nodes are available: 1 node(s) didn't satisfy plugin(s) [NodeAffinity], 1 node(s) were unschedulable. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );
    assert_eq!(run(&pinned, &nodes, &[]).unwrap(), "n2");
    let named = pod("web", json!({"containers": [{}], "nodeName": "n9"}));
    assert_eq!(
        run(&named, &nodes, &[]).unwrap_err(),
        "0/2 nodes are available: 2 node(s) didn't match the requested node name. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );
}

#[test]
fn anti_affinity_spreads_replicas_and_then_refuses() {
    let nodes = [
        node(
            "n1",
            json!({"kubernetes.io/hostname": "n1"}),
            "True",
            json!([]),
        ),
        node(
            "n2",
            json!({"kubernetes.io/hostname": "n2"}),
            "True",
            json!([]),
        ),
    ];
    let spec = json!({"containers": [{}], "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    let mut replica = pod("web", spec);
    replica["metadata"]["labels"] = json!({"app": "web"});
    let first = run(&replica, &nodes, &[]).unwrap();
    let placed = vec![on(replica.clone(), &first)];
    let second = run(&replica, &nodes, &placed).unwrap();
    assert_ne!(first, second);
    let placed = vec![on(replica.clone(), "n1"), on(replica.clone(), "n2")];
    assert_eq!(
        run(&replica, &nodes, &placed).unwrap_err(),
        "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
    );
    // a plain pod matching their selector is kept away by their anti-affinity (symmetry)
    let mut plain = pod("other", json!({"containers": [{}]}));
    plain["metadata"]["labels"] = json!({"app": "web"});
    assert_eq!(
        run(&plain, &nodes, &placed).unwrap_err(),
        "0/2 nodes are available: 2 node(s) didn't satisfy existing pods anti-affinity rules. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
    );
}

#[test]
fn pod_affinity_follows_its_target_and_namespace_selectors() {
    let nodes = [
        node("n1", json!({"zone": "a"}), "True", json!([])),
        node("n2", json!({"zone": "b"}), "True", json!([])),
    ];
    let mut db = pod("db", json!({"containers": [{}]}));
    db["metadata"]["namespace"] = json!("data");
    let placed = [on(db, "n2")];
    let namespaces = [json!({"metadata": {"name": "data", "labels": {"team": "storage"}}})];
    let term = |extra: Value| {
        let mut t = json!({"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"});
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        pod(
            "web",
            json!({"containers": [{}], "affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [t]}}}),
        )
    };
    let c = Cluster {
        nodes: &nodes,
        pods: &placed,
        namespaces: &namespaces,
    };
    // same namespace only by default: nothing to join, and web is not a db itself
    assert_eq!(
        schedule(&term(json!({})), &c).unwrap_err().message(),
        "0/2 nodes are available: 2 node(s) didn't match pod affinity rules. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );
    assert_eq!(
        schedule(
            &term(json!({"namespaceSelector": {"matchLabels": {"team": "storage"}}})),
            &c
        ),
        Ok("n2".to_string())
    );
    assert_eq!(
        schedule(&term(json!({"namespaces": ["data"]})), &c),
        Ok("n2".to_string())
    );
    assert!(
        schedule(
            &term(json!({"namespaceSelector": {"matchLabels": {"team": "web"}}})),
            &c
        )
        .is_err()
    );
}

#[test]
fn too_many_pods() {
    let mut small = node("n1", json!({}), "True", json!([]));
    small["status"]["allocatable"]["pods"] = json!("1");
    let placed = [on(pod("a", json!({"containers": [{}]})), "n1")];
    assert_eq!(
        run(&pod("b", json!({"containers": [{}]})), &[small], &placed).unwrap_err(),
        "0/1 nodes are available: 1 Too many pods. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    );
}

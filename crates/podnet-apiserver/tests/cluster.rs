//! What nodes and their agents meet, driven by the real kubectl: Leases, the node lifecycle
//! controller, the scheduler's decisions and messages, service-account and node tokens, and the
//! writes a node agent makes (node and pod status, events, bindings, graceful deletion).

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{TestServer, s, table};
use serde_json::{Value, json};

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// A node as its agent registers it: Ready, with capacity, and `labels`.
fn node(t: &TestServer, name: &str, ready: &str, labels: Value) {
    let mut l = json!({"kubernetes.io/hostname": name});
    for (k, v) in labels.as_object().unwrap() {
        l[k] = v.clone();
    }
    let obj = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": l},
        "status": {
            "conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady", "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        },
    });
    t.k(&[
        "create",
        "-f",
        &t.file(&format!("node-{name}.json"), &obj.to_string()),
    ]);
}

fn pod_yaml(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: {name}\nspec:\n{extra_spec}  containers:\n  - name: c\n    image: busybox:1.36\n"
    )
}

fn events_of(t: &TestServer, pod: &str) -> String {
    t.k(&["describe", "pod", pod])
}

#[test]
fn leases_are_served_and_describe_node_shows_the_lease() {
    let t = TestServer::start();
    t.k(&["get", "namespace", "kube-node-lease"]);
    let res = t.k(&["api-resources", "--api-group=coordination.k8s.io"]);
    assert!(
        res.lines().any(|l| l.starts_with("leases")
            && l.contains("coordination.k8s.io/v1")
            && l.contains("true")
            && l.contains("Lease")),
        "{res}"
    );
    node(&t, "node1", "True", json!({}));
    let uid = t.k(&["get", "node", "node1", "-o", "jsonpath={.metadata.uid}"]);
    let lease = podnet_apiserver::controllers::nodelifecycle::node_lease(
        "node1",
        &uid,
        "2026-01-01T00:00:00.000000Z",
    );
    t.k(&["create", "-f", &t.file("lease.json", &lease.to_string())]);
    let rows = table(&t.k(&["get", "leases", "-n", "kube-node-lease"]));
    assert_eq!(rows[0], ["NAME", "HOLDER", "AGE"]);
    assert_eq!(&rows[1][..2], ["node1", "node1"]);
    // the agent renews: a merge patch of renewTime
    t.k(&[
        "patch",
        "lease",
        "node1",
        "-n",
        "kube-node-lease",
        "--type=merge",
        "-p",
        r#"{"spec":{"renewTime":"2026-01-01T00:00:10.000000Z"}}"#,
    ]);
    let d = t.k(&["describe", "node", "node1"]);
    assert!(!d.contains("Failed to get lease"), "{d}");
    assert!(d.contains("HolderIdentity:  node1"), "{d}");
    assert!(
        d.contains("RenewTime:       Thu, 01 Jan 2026 00:00:10 +0000"),
        "{d}"
    );
    // a watch sees the renewal
    let mut w = t
        .kubectl_cmd(&[
            "get",
            "lease",
            "node1",
            "-n",
            "kube-node-lease",
            "-w",
            "-o",
            "jsonpath={.spec.renewTime}{\"\\n\"}",
            "--request-timeout=20s",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    t.k(&[
        "patch",
        "lease",
        "node1",
        "-n",
        "kube-node-lease",
        "--type=merge",
        "-p",
        r#"{"spec":{"renewTime":"2026-01-01T00:00:20.000000Z"}}"#,
    ]);
    let mut out = String::new();
    t.eventually(20, "the watch to print the renewal", || {
        use std::io::Read;
        let mut buf = [0u8; 256];
        let n = w.stdout.as_mut().unwrap().read(&mut buf).unwrap_or(0);
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
        out.contains("2026-01-01T00:00:20.000000Z")
    });
    let _ = w.kill();
    let _ = w.wait();
    // the Lease goes with its Node (owner reference)
    t.k(&["delete", "node", "node1"]);
    t.eventually(30, "the lease to be collected", || {
        !t.kubectl(&["get", "lease", "node1", "-n", "kube-node-lease"])
            .status
            .success()
    });
}

#[test]
fn silent_nodes_go_unknown_and_unreachable_and_come_back() {
    let t = TestServer::start_with(|c| {
        c.node_monitor_period = Duration::from_millis(200);
        c.node_monitor_grace_period = Duration::from_secs(3);
    });
    node(&t, "node1", "True", json!({}));
    node(&t, "node2", "False", json!({}));
    t.k(&[
        "create",
        "-f",
        &t.file("web.yaml", &pod_yaml("web", "  nodeName: node1\n")),
    ]);
    t.mark_running("default", "web", "10.244.1.5");
    // a pod that tolerates an unreachable node for one second only
    let brief = "  nodeName: node1\n  tolerations:\n  - key: node.kubernetes.io/unreachable\n    operator: Exists\n    effect: NoExecute\n    tolerationSeconds: 1\n";
    t.k(&[
        "create",
        "-f",
        &t.file("brief.yaml", &pod_yaml("brief", brief)),
    ]);
    // Ready=False: the not-ready taints, at once
    t.eventually(20, "node2 to be tainted not-ready", || {
        t.k(&[
            "get",
            "node",
            "node2",
            "-o",
            "jsonpath={.spec.taints[*].key}:{.spec.taints[*].effect}",
        ]) == "node.kubernetes.io/not-ready node.kubernetes.io/not-ready:NoSchedule NoExecute"
    });
    // node1's agent renews its lease while it lives
    let kc = t.node_kubeconfig("node1");
    let uid = t.k(&["get", "node", "node1", "-o", "jsonpath={.metadata.uid}"]);
    let renew = |at: &str| {
        let lease = podnet_apiserver::controllers::nodelifecycle::node_lease("node1", &uid, at);
        let o = t.kubectl_with(
            &kc,
            &["apply", "-f", &t.file("lease.json", &lease.to_string())],
        );
        assert!(o.status.success(), "{}", s(&o.stderr));
    };
    for i in 0..6 {
        renew(&format!("2026-01-01T00:00:0{i}.000000Z"));
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(
        t.k(&[
            "get",
            "node",
            "node1",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"
        ]),
        "True"
    );
    // ... then it stops: Unknown, unreachable, its pods not Ready
    t.eventually(30, "node1 to turn Unknown", || {
        t.k(&[
            "get",
            "node",
            "node1",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ]) == "Unknown"
    });
    let d = t.k(&["describe", "node", "node1"]);
    for want in [
        "NodeStatusUnknown",
        "Kubelet stopped posting node status.",
        "node.kubernetes.io/unreachable:NoExecute",
        "NodeNotReady",
        "Node node1 status is now: NodeNotReady",
    ] {
        assert!(d.contains(want), "{want} missing:\n{d}");
    }
    let rows = table(&t.k(&["get", "nodes"]));
    assert_eq!(&rows[1][..2], ["node1", "NotReady"]);
    t.eventually(20, "web to stop being Ready", || {
        t.k(&[
            "get",
            "pod",
            "web",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ]) == "False"
    });
    assert!(events_of(&t, "web").contains("Node is not ready"));
    // taint-based eviction: past its tolerationSeconds the pod goes; web (300 s by default) stays
    t.eventually(20, "brief to be evicted", || {
        !t.kubectl(&["get", "pod", "brief"]).status.success()
    });
    let evicted = t.k(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=brief",
    ]);
    assert!(
        evicted.contains("TaintManagerEviction")
            && evicted.contains("Marking for deletion Pod default/brief"),
        "{evicted}"
    );
    assert!(t.kubectl(&["get", "pod", "web"]).status.success());
    // the agent comes back: it posts Ready with a strategic merge patch of its status (conditions
    // merge by type) and renews its lease; the taints go
    let now = podnet_apiserver::util::now_rfc3339();
    let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": now}]}});
    let o = t.kubectl_with(
        &kc,
        &[
            "patch",
            "node",
            "node1",
            "--subresource=status",
            "-p",
            &patch.to_string(),
        ],
    );
    assert!(o.status.success(), "{}", s(&o.stderr));
    renew("2026-01-01T00:01:00.000000Z");
    let n = json(&t.k(&["get", "node", "node1", "-o", "json"]));
    let types: Vec<&str> = n["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"MemoryPressure") && types.contains(&"Ready"),
        "{types:?}"
    );
    t.eventually(20, "the unreachable taints to go", || {
        t.k(&["get", "node", "node1", "-o", "jsonpath={.spec.taints}"])
            .is_empty()
    });
}

#[test]
fn scheduling_decisions_and_messages() {
    let t = TestServer::start();
    node(&t, "node1", "True", json!({"disk": "ssd"}));
    node(&t, "node2", "False", json!({"disk": "hdd"}));
    t.k(&[
        "create",
        "-f",
        &t.file(
            "web.yaml",
            &pod_yaml("web", "  nodeSelector:\n    disk: hdd\n"),
        ),
    ]);
    let msg = "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.";
    t.eventually(20, "FailedScheduling", || {
        events_of(&t, "web").contains(msg)
    });
    let p = json(&t.k(&["get", "pod", "web", "-o", "json"]));
    let cond = p["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "PodScheduled")
        .unwrap()
        .clone();
    assert_eq!(cond["status"], "False");
    assert_eq!(cond["reason"], "Unschedulable");
    assert_eq!(cond["message"], msg);
    let d = events_of(&t, "web");
    assert!(
        d.contains("Warning  FailedScheduling") && d.contains("default-scheduler"),
        "{d}"
    );
    // a node change retries it
    t.k(&["label", "node", "node1", "disk=hdd", "--overwrite"]);
    t.eventually(20, "web to be scheduled", || {
        t.k(&["get", "pod", "web", "-o", "jsonpath={.spec.nodeName}"]) == "node1"
    });
    let d = events_of(&t, "web");
    assert!(
        d.contains("Normal   Scheduled")
            && d.contains("Successfully assigned default/web to node1"),
        "{d}"
    );

    // requests against allocatable (2 cpu)
    t.k(&["create", "-f", &t.file("big.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n    resources:\n      requests:\n        cpu: 1500m\n")]);
    t.eventually(20, "big to be scheduled", || {
        t.k(&["get", "pod", "big", "-o", "jsonpath={.spec.nodeName}"]) == "node1"
    });
    t.k(&[
        "create",
        "-f",
        &t.file(
            "big2.yaml",
            &std::fs::read_to_string(t.path().join("big.yaml"))
                .unwrap()
                .replace("name: big", "name: big2"),
        ),
    ]);
    t.eventually(20, "big2's FailedScheduling", || {
        events_of(&t, "big2").contains("0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling.")
    });
    // freeing the cpu lets it in (a placed pod's deletion retries it)
    t.k(&["delete", "pod", "big", "--grace-period=0", "--force"]);
    t.eventually(20, "big2 to be scheduled", || {
        t.k(&["get", "pod", "big2", "-o", "jsonpath={.spec.nodeName}"]) == "node1"
    });

    // required anti-affinity by hostname: one replica per node
    node(&t, "node3", "True", json!({}));
    let spread = "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector:\n          matchLabels:\n            tier: cache\n        topologyKey: kubernetes.io/hostname\n";
    for name in ["cache-1", "cache-2", "cache-3"] {
        let y = pod_yaml(name, spread).replace(
            &format!("    app: {name}\n"),
            &format!("    app: {name}\n    tier: cache\n"),
        );
        t.k(&["create", "-f", &t.file(&format!("{name}.yaml"), &y)]);
    }
    t.eventually(20, "the third replica to be refused", || {
        events_of(&t, "cache-3").contains("0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 2 node(s) didn't match pod anti-affinity rules. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.")
            || events_of(&t, "cache-2").contains("didn't match pod anti-affinity rules")
    });
    let placed: Vec<String> = ["cache-1", "cache-2", "cache-3"]
        .iter()
        .map(|p| t.k(&["get", "pod", p, "-o", "jsonpath={.spec.nodeName}"]))
        .filter(|n| !n.is_empty())
        .collect();
    assert_eq!(placed.len(), 2, "{placed:?}");
    assert_ne!(placed[0], placed[1]);

    // cordon: the node stays out; tolerations let a pod onto the NotReady node
    t.k(&["cordon", "node3"]);
    let taints = t.k(&[
        "get",
        "node",
        "node3",
        "-o",
        "jsonpath={.spec.taints[*].key}",
    ]);
    assert_eq!(taints, "node.kubernetes.io/unschedulable");
    let tolerant = "  tolerations:\n  - key: node.kubernetes.io/not-ready\n    operator: Exists\n  nodeSelector:\n    kubernetes.io/hostname: node2\n";
    t.k(&[
        "create",
        "-f",
        &t.file("ds.yaml", &pod_yaml("ds", tolerant)),
    ]);
    t.eventually(20, "ds on node2", || {
        t.k(&["get", "pod", "ds", "-o", "jsonpath={.spec.nodeName}"]) == "node2"
    });
    // required node affinity with matchFields
    let fields = "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchFields:\n          - key: metadata.name\n            operator: In\n            values: [node3]\n";
    t.k(&[
        "create",
        "-f",
        &t.file("pinned.yaml", &pod_yaml("pinned", fields)),
    ]);
    t.eventually(20, "pinned to wait for the cordon", || {
        events_of(&t, "pinned").contains("0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't satisfy plugin(s) [NodeAffinity]. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")
    });
    t.k(&["uncordon", "node3"]);
    t.eventually(20, "pinned on node3", || {
        t.k(&["get", "pod", "pinned", "-o", "jsonpath={.spec.nodeName}"]) == "node3"
    });
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&b).unwrap()
}

fn token_kubeconfig(t: &TestServer, name: &str, token: &str) -> std::path::PathBuf {
    let p = t.path().join(name);
    podnet_apiserver::kubeconfig::write_standalone(&p, &t.url, &t.pki.ca_cert_pem, token).unwrap();
    p
}

#[test]
fn service_account_tokens_and_node_credentials() {
    let t = TestServer::start();
    t.k(&["create", "namespace", "team"]);
    t.eventually(20, "the default service account and the root CA", || {
        t.kubectl(&["get", "sa", "default", "-n", "team"])
            .status
            .success()
            && t.kubectl(&["get", "configmap", "kube-root-ca.crt", "-n", "team"])
                .status
                .success()
    });
    let ca = t.k(&[
        "get",
        "configmap",
        "kube-root-ca.crt",
        "-n",
        "team",
        "-o",
        "jsonpath={.data.ca\\.crt}",
    ]);
    assert_eq!(ca, t.pki.ca_cert_pem);
    // deleted: published again
    t.k(&["delete", "configmap", "kube-root-ca.crt", "-n", "team"]);
    t.eventually(20, "the root CA to come back", || {
        t.kubectl(&["get", "configmap", "kube-root-ca.crt", "-n", "team"])
            .status
            .success()
    });
    // the namespace name label, set by the server and not the client's to change
    assert_eq!(
        t.k(&["get", "ns", "team", "-o", "jsonpath={.metadata.labels}"]),
        r#"{"kubernetes.io/metadata.name":"team"}"#
    );
    t.k(&[
        "label",
        "ns",
        "team",
        "kubernetes.io/metadata.name=other",
        "--overwrite",
    ]);
    assert_eq!(
        t.k(&[
            "get",
            "ns",
            "-l",
            "kubernetes.io/metadata.name=team",
            "-o",
            "name"
        ])
        .trim(),
        "namespace/team"
    );

    // kubectl create token: a signed JWT with upstream's claims, accepted by the server
    let token = t
        .k(&["create", "token", "default", "-n", "team"])
        .trim()
        .to_string();
    let c = claims(&token);
    let sa_uid = t.k(&[
        "get",
        "sa",
        "default",
        "-n",
        "team",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    assert_eq!(c["iss"], "https://kubernetes.default.svc.cluster.local");
    assert_eq!(
        c["aud"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    assert_eq!(c["sub"], "system:serviceaccount:team:default");
    assert_eq!(
        c["kubernetes.io"],
        json!({"namespace": "team", "serviceaccount": {"name": "default", "uid": sa_uid}})
    );
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        3600
    );
    let kc = token_kubeconfig(&t, "sa-kubeconfig", &token);
    let o = t.kubectl_with(&kc, &["auth", "whoami"]);
    let who = s(&o.stdout);
    assert!(o.status.success(), "{}", s(&o.stderr));
    assert!(who.contains("system:serviceaccount:team:default"), "{who}");
    assert!(
        who.contains("[system:serviceaccounts system:serviceaccounts:team system:authenticated]"),
        "{who}"
    );
    // authenticated, but nothing bound to it yet: refused as kube-apiserver refuses it
    let o = t.kubectl_with(&kc, &["get", "pods", "-n", "team"]);
    assert!(
        s(&o.stderr).contains(r#"pods is forbidden: User "system:serviceaccount:team:default" cannot list resource "pods" in API group "" in the namespace "team""#),
        "{}",
        s(&o.stderr)
    );
    t.k(&[
        "create",
        "rolebinding",
        "default-view",
        "--clusterrole=view",
        "--serviceaccount=team:default",
        "-n",
        "team",
    ]);
    assert!(
        t.kubectl_with(&kc, &["get", "pods", "-n", "team"])
            .status
            .success()
    );
    assert!(t.k(&["auth", "whoami"]).contains("kubernetes-admin"));

    // duration and audience
    let long = t.k(&["create", "token", "default", "-n", "team", "--duration=2h"]);
    let c = claims(long.trim());
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        7200
    );
    let err = t.k_err(&["create", "token", "default", "-n", "team", "--duration=5m"]);
    assert!(
        err.contains("may not specify a duration less than 10 minutes"),
        "{err}"
    );
    let vault = t.k(&[
        "create",
        "token",
        "default",
        "-n",
        "team",
        "--audience=vault",
    ]);
    assert_eq!(claims(vault.trim())["aud"], json!(["vault"]));
    let o = t.kubectl_with(
        &token_kubeconfig(&t, "vault-kubeconfig", vault.trim()),
        &["get", "pods"],
    );
    assert!(
        !o.status.success() && s(&o.stderr).contains("Unauthorized"),
        "{}",
        s(&o.stderr)
    );

    // TokenReview: what a node agent asks about a caller's token (with the node's own credentials)
    let review = |tok: &str, aud: Value| -> Value {
        let r = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": tok, "audiences": aud}});
        let f = t.file("review.json", &r.to_string());
        // --validate=false: for a create-only kind kubectl finds no PATCH operation in the OpenAPI v3
        // document and asks /openapi/v2, which podnet does not serve
        let o = t.kubectl_with(
            &t.node_kubeconfig("node1"),
            &["create", "--validate=false", "-f", &f, "-o", "json"],
        );
        assert!(o.status.success(), "{}", s(&o.stderr));
        json(&s(&o.stdout))["status"].clone()
    };
    let st = review(&token, json!([]));
    assert_eq!(st["authenticated"], true);
    assert_eq!(st["user"]["username"], "system:serviceaccount:team:default");
    assert_eq!(
        st["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    let st = review(vault.trim(), json!(["vault", "other"]));
    assert_eq!(
        (st["authenticated"].clone(), st["audiences"].clone()),
        (json!(true), json!(["vault"]))
    );
    assert_eq!(review(vault.trim(), json!([]))["authenticated"], false);
    assert_eq!(
        review(&t.pki.token, json!([]))["user"]["username"],
        "kubernetes-admin"
    );
    // bound to a pod: dies with it
    t.k(&[
        "create",
        "-n",
        "team",
        "-f",
        &t.file("p.yaml", &pod_yaml("p", "")),
    ]);
    let pod_uid = t.k(&[
        "get",
        "pod",
        "p",
        "-n",
        "team",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let bound = t.k(&[
        "create",
        "token",
        "default",
        "-n",
        "team",
        "--bound-object-kind=Pod",
        "--bound-object-name=p",
    ]);
    assert_eq!(
        claims(bound.trim())["kubernetes.io"]["pod"],
        json!({"name": "p", "uid": pod_uid})
    );
    let bkc = token_kubeconfig(&t, "bound-kubeconfig", bound.trim());
    let who = s(&t.kubectl_with(&bkc, &["auth", "whoami"]).stdout);
    assert!(
        who.contains("authentication.kubernetes.io/pod-name") && who.contains("[p]"),
        "{who}"
    );
    let err = t.k_err(&[
        "create",
        "token",
        "default",
        "-n",
        "team",
        "--bound-object-kind=Pod",
        "--bound-object-name=nope",
    ]);
    assert!(err.contains(r#"pods "nope" not found"#), "{err}");
    t.k(&[
        "delete",
        "pod",
        "p",
        "-n",
        "team",
        "--grace-period=0",
        "--force",
    ]);
    let o = t.kubectl_with(&bkc, &["get", "pods"]);
    assert!(s(&o.stderr).contains("Unauthorized"), "{}", s(&o.stderr));
    // and every token of the service account dies with it
    t.k(&["delete", "sa", "default", "-n", "team"]);
    let o = t.kubectl_with(&kc, &["get", "pods"]);
    assert!(s(&o.stderr).contains("Unauthorized"), "{}", s(&o.stderr));
    // a token signed by someone else
    let forged = format!(
        "{}.{}.AAAA",
        token.split('.').next().unwrap(),
        token.split('.').nth(1).unwrap()
    );
    let o = t.kubectl_with(&token_kubeconfig(&t, "forged", &forged), &["get", "pods"]);
    assert!(s(&o.stderr).contains("Unauthorized"));

    // a node's own credentials
    let nkc = t.node_kubeconfig("node1");
    let who = s(&t.kubectl_with(&nkc, &["auth", "whoami"]).stdout);
    assert!(
        who.contains("system:node:node1") && who.contains("[system:nodes system:authenticated]"),
        "{who}"
    );
}

#[test]
fn what_a_node_agent_writes() {
    let t = TestServer::start();
    let kc = t.node_kubeconfig("node1");
    let k = |args: &[&str]| -> String {
        let o = t.kubectl_with(&kc, args);
        assert!(o.status.success(), "kubectl {args:?}: {}", s(&o.stderr));
        s(&o.stdout)
    };
    // the agent registers its node and reports it Ready
    node(&t, "node1", "False", json!({}));
    let now = podnet_apiserver::util::now_rfc3339();
    let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}],
        "nodeInfo": {"kubeletVersion": "podnet", "containerRuntimeVersion": "runc://1.1", "osImage": "Debian", "kernelVersion": "6.1", "operatingSystem": "linux", "architecture": "amd64", "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": ""}}});
    k(&[
        "patch",
        "node",
        "node1",
        "--subresource=status",
        "--type=merge",
        "-p",
        &ready.to_string(),
    ]);
    t.eventually(20, "node1 Ready and untainted", || {
        t.k(&[
            "get",
            "node",
            "node1",
            "-o",
            "jsonpath={.status.conditions[0].status}:{.spec.taints}",
        ]) == "True:"
    });
    // a pod bound through the binding subresource
    t.k(&[
        "create",
        "-f",
        &t.file(
            "web.yaml",
            &pod_yaml("web", "  schedulerName: my-scheduler\n"),
        ),
    ]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        t.k(&["get", "pod", "web", "-o", "jsonpath={.spec.nodeName}"]),
        "",
        "another scheduler's pod is left alone"
    );
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web"}, "target": {"apiVersion": "v1", "kind": "Node", "name": "node1"}});
    let bind = |kubeconfig: &std::path::Path| {
        t.kubectl_with(
            kubeconfig,
            &[
                "create",
                "--raw",
                "/api/v1/namespaces/default/pods/web/binding",
                "-f",
                &t.file("binding.json", &binding.to_string()),
            ],
        )
    };
    // binding is the scheduler's to do, not a node's
    let o = bind(&kc);
    assert!(
        s(&o.stderr).contains(r#"User "system:node:node1" cannot create resource "pods/binding" in API group "" in the namespace "default""#),
        "{}",
        s(&o.stderr)
    );
    let o = bind(&t.kubeconfig);
    assert!(o.status.success(), "{}", s(&o.stderr));
    assert_eq!(
        t.k(&["get", "pod", "web", "-o", "jsonpath={.spec.nodeName}"]),
        "node1"
    );
    // pod status: PUT of the status subresource, then strategic merge patches (conditions by type)
    let mut p = json(&t.k(&["get", "pod", "web", "-o", "json"]));
    p["status"]["phase"] = json!("Running");
    p["status"]["podIP"] = json!("10.244.1.7");
    p["status"]["podIPs"] = json!([{"ip": "10.244.1.7"}]);
    p["status"]["hostIP"] = json!("127.0.0.1");
    p["status"]["containerStatuses"] = json!([{"name": "c", "image": "busybox:1.36", "imageID": "", "ready": false, "restartCount": 0, "started": true, "state": {"running": {"startedAt": now}}}]);
    k(&[
        "replace",
        "--subresource=status",
        "-f",
        &t.file("status.json", &p.to_string()),
    ]);
    let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}],
        "containerStatuses": [{"name": "c", "image": "busybox:1.36", "imageID": "", "ready": true, "restartCount": 0, "started": true, "state": {"running": {"startedAt": now}}}]}});
    k(&[
        "patch",
        "pod",
        "web",
        "--subresource=status",
        "-p",
        &patch.to_string(),
    ]);
    let rows = table(&t.k(&["get", "pod", "web", "-o", "wide"]));
    assert_eq!(&rows[1][..3], ["web", "1/1", "Running"]);
    assert_eq!(rows[1][5], "10.244.1.7");
    let conds = t.k(&[
        "get",
        "pod",
        "web",
        "-o",
        "jsonpath={.status.conditions[*].type}",
    ]);
    assert!(
        conds.contains("PodScheduled")
            && conds.contains("Ready")
            && conds.contains("ContainersReady"),
        "{conds}"
    );
    // an event, as kubelet reports one
    let ev = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.pulled", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web", "uid": p["metadata"]["uid"], "apiVersion": "v1", "fieldPath": "spec.containers{c}"},
        "reason": "Pulled", "message": "Container image \"busybox:1.36\" already present on machine", "type": "Normal",
        "source": {"component": "kubelet", "host": "node1"}, "firstTimestamp": now, "lastTimestamp": now, "count": 1});
    k(&["create", "-f", &t.file("ev.json", &ev.to_string())]);
    let d = t.k(&["describe", "pod", "web"]);
    assert!(
        d.contains("Pulled") && d.contains("kubelet") && d.contains("already present on machine"),
        "{d}"
    );
    // graceful deletion: the pod stays Terminating until its node confirms with grace 0
    t.k(&["delete", "pod", "web", "--wait=false"]);
    let m = json(&t.k(&["get", "pod", "web", "-o", "json"]));
    assert!(m["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(m["metadata"]["deletionGracePeriodSeconds"], 30);
    assert_eq!(table(&t.k(&["get", "pod", "web"]))[1][2], "Terminating");
    k(&["delete", "pod", "web", "--grace-period=0", "--force"]);
    assert!(!t.kubectl(&["get", "pod", "web"]).status.success());
}

//! The real kubectl v1.35.2 against podnet's API server, with default flags, outputs asserted.

mod common;

use common::{TestServer, table};
use serde_json::Value;

const POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  containers:
  - name: nginx
    image: nginx:1.27
    ports:
    - containerPort: 80
  - name: sidecar
    image: busybox:1.36
    command: ["sh", "-c", "sleep 3600"]
"#;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn version_discovery_and_defaults() {
    let t = TestServer::start();
    let v = t.k(&["version"]);
    assert!(v.contains("Client Version: v1.35.2"), "{v}");
    assert!(v.contains("Server Version: v1.35.0"), "{v}");
    let ns = table(&t.k(&["get", "namespaces"]));
    assert_eq!(ns[0], ["NAME", "STATUS", "AGE"]);
    let names: Vec<&str> = ns[1..].iter().map(|r| r[0].as_str()).collect();
    assert!(
        names.contains(&"default") && names.contains(&"kube-system"),
        "{names:?}"
    );
    assert!(ns[1..].iter().all(|r| r[1] == "Active"));
    let res = t.k(&["api-resources"]);
    for (name, short) in [
        ("pods", "po"),
        ("deployments", "deploy"),
        ("services", "svc"),
        ("namespaces", "ns"),
        ("networkpolicies", "netpol"),
    ] {
        assert!(
            res.lines()
                .any(|l| l.starts_with(name) && l.contains(short)),
            "{name} {short} missing:\n{res}"
        );
    }
    let svc = table(&t.k(&["get", "svc", "kubernetes"]));
    assert_eq!(
        svc[0],
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    assert_eq!(
        &svc[1][..5],
        ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    );
    // the default service account appears for every namespace
    t.eventually(10, "default service account", || {
        t.kubectl(&["get", "sa", "default", "-n", "kube-system"])
            .status
            .success()
    });
}

#[test]
fn apply_create_then_changed_then_server_side() {
    let t = TestServer::start();
    let f = t.file("pod.yaml", POD);
    assert_eq!(t.k(&["apply", "-f", &f]).trim(), "pod/web created");
    // a status in the file is not the client's to set: the pod starts Pending
    let with_status = format!(
        "{}status:\n  phase: Running\n  podIP: 1.2.3.4\n",
        POD.replace("name: web", "name: st")
    );
    t.k(&["create", "-f", &t.file("st.yaml", &with_status)]);
    assert_eq!(
        t.k(&[
            "get",
            "pod",
            "st",
            "-o",
            "jsonpath={.status.phase}/{.status.podIP}"
        ]),
        "Pending/"
    );
    let p = json(&t.k(&["get", "pod", "web", "-o", "json"]));
    assert_eq!(p["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
    assert_eq!(p["spec"]["restartPolicy"], "Always");
    assert_eq!(p["status"]["phase"], "Pending");
    assert!(
        p["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    let rv1: u64 = p["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // the same apply again changes nothing
    assert_eq!(t.k(&["apply", "-f", &f]).trim(), "pod/web unchanged");
    // a changed apply: new image, new label, sidecar removed -> strategic merge patch with $setElementOrder and a delete directive
    let changed = POD
        .replace("nginx:1.27", "nginx:1.28")
        .replace("    app: web\n", "    app: web\n    tier: front\n");
    let f2 = t.file("pod2.yaml", &changed);
    assert_eq!(t.k(&["apply", "-f", &f2]).trim(), "pod/web configured");
    let p = json(&t.k(&["get", "pod", "web", "-o", "json"]));
    assert_eq!(p["spec"]["containers"][0]["image"], "nginx:1.28");
    assert_eq!(p["metadata"]["labels"]["tier"], "front");
    let rv2: u64 = p["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1);
    // a label dropped from the file is removed again by the next apply
    assert_eq!(t.k(&["apply", "-f", &f]).trim(), "pod/web configured");
    let p = json(&t.k(&["get", "pod", "web", "-o", "json"]));
    assert!(
        p["metadata"]["labels"].get("tier").is_none(),
        "{}",
        p["metadata"]["labels"]
    );
    assert_eq!(p["spec"]["containers"][0]["image"], "nginx:1.27");
    // server-side apply of the same object by another manager, then a change
    assert_eq!(
        t.k(&["apply", "--server-side", "-f", &f2]).trim(),
        "pod/web serverside-applied"
    );
    let p = json(&t.k(&["get", "pod", "web", "-o", "json", "--show-managed-fields"]));
    assert_eq!(p["spec"]["containers"][0]["image"], "nginx:1.28");
    let managers: Vec<&str> = p["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert!(managers.contains(&"kubectl"), "{managers:?}");
    // server-side apply creates too
    let cm = t.file(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: \"1\"\n",
    );
    assert_eq!(
        t.k(&["apply", "--server-side", "-f", &cm]).trim(),
        "configmap/ssa serverside-applied"
    );
    assert_eq!(t.k(&["get", "cm", "ssa", "-o", "jsonpath={.data.a}"]), "1");
    // unknown fields are rejected under kubectl's default strict validation
    let bad = t.file(
        "bad.yaml",
        &POD.replace(
            "    image: nginx:1.27\n",
            "    image: nginx:1.27\n    imagePullPolcy: Always\n",
        )
        .replace("name: web", "name: web2"),
    );
    let e = t.k_err(&["apply", "-f", &bad]);
    assert!(
        e.contains("unknown field \"spec.containers[0].imagePullPolcy\""),
        "{e}"
    );
}

#[test]
fn get_output_variants() {
    let t = TestServer::start();
    t.k(&["apply", "-f", &t.file("pod.yaml", POD)]);
    t.k(&["run", "tmp1", "--image=busybox:1.36", "--labels=app=other"]);
    let plain = table(&t.k(&["get", "pods"]));
    assert_eq!(plain[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    let web = plain.iter().find(|r| r[0] == "web").unwrap();
    assert_eq!(&web[1..4], ["0/2", "Pending", "0"]);
    let wide = t.k(&["get", "pods", "-o", "wide"]);
    assert!(
        wide.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .ends_with(&["IP", "NODE", "NOMINATED", "NODE", "READINESS", "GATES"]),
        "{wide}"
    );
    let j = json(&t.k(&["get", "pods", "-o", "json"]));
    assert_eq!(j["kind"], "List");
    assert_eq!(j["items"].as_array().unwrap().len(), 2);
    let y = t.k(&["get", "pod", "web", "-o", "yaml"]);
    assert!(y.contains("kind: Pod") && y.contains("name: web"), "{y}");
    assert_eq!(t.k(&["get", "pods", "-o", "name"]), "pod/tmp1\npod/web\n");
    assert_eq!(
        t.k(&["get", "pods", "-o", "jsonpath={.items[*].metadata.name}"]),
        "tmp1 web"
    );
    let cc = table(&t.k(&[
        "get",
        "pods",
        "-o",
        "custom-columns=NAME:.metadata.name,IMAGE:.spec.containers[0].image",
    ]));
    assert_eq!(
        cc,
        [
            vec!["NAME", "IMAGE"],
            vec!["tmp1", "busybox:1.36"],
            vec!["web", "nginx:1.27"]
        ]
    );
    let sorted = table(&t.k(&["get", "pods", "--sort-by=.metadata.creationTimestamp"]));
    assert_eq!(sorted.len(), 3);
    let byname = table(&t.k(&[
        "get",
        "pods",
        "--sort-by=.metadata.name",
        "-o",
        "custom-columns=N:.metadata.name",
    ]));
    assert_eq!(byname, [vec!["N"], vec!["tmp1"], vec!["web"]]);
    let sel = table(&t.k(&["get", "pods", "-l", "app=web"]));
    assert_eq!(sel.len(), 2);
    assert_eq!(sel[1][0], "web");
    assert_eq!(
        table(&t.k(&["get", "pods", "-l", "app in (other)", "-o", "name"])),
        [vec!["pod/tmp1"]]
    );
    assert!(t.k(&["get", "pods", "-l", "app=nothing"]).is_empty());
    let all = table(&t.k(&["get", "pods", "-A"]));
    assert_eq!(all[0][0], "NAMESPACE");
    assert!(all.iter().any(|r| r[0] == "default" && r[1] == "web"));
    let labels = t.k(&["get", "pods", "--show-labels"]);
    assert!(labels.contains("app=web"), "{labels}");
    let get_all = t.k(&["get", "all"]);
    assert!(
        get_all.contains("pod/web") && get_all.contains("service/kubernetes"),
        "{get_all}"
    );
    let e = t.k_err(&["get", "pods", "-l", "a=b=c"]);
    assert!(
        e.contains("unable to parse requirement") || e.contains("found '='"),
        "{e}"
    );
    let e = t.k_err(&["get", "pod", "nope"]);
    assert!(
        e.contains("Error from server (NotFound): pods \"nope\" not found"),
        "{e}"
    );
    let e = t.k_err(&["get", "pods", "--field-selector", "spec.bogus=1"]);
    assert!(e.contains("field label not supported: spec.bogus"), "{e}");
    assert_eq!(
        t.k(&[
            "get",
            "pods",
            "--field-selector",
            "metadata.name=web",
            "-o",
            "name"
        ]),
        "pod/web\n"
    );
}

#[test]
fn get_watch_streams_changes() {
    let t = TestServer::start();
    t.k(&["apply", "-f", &t.file("pod.yaml", POD)]);
    let child = t
        .kubectl_cmd(&["get", "pods", "-w", "--request-timeout=4s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    t.k(&["run", "tmp1", "--image=busybox:1.36"]);
    t.k(&["label", "pod", "web", "x=y"]);
    let out = child.wait_with_output().unwrap();
    // the server ends the watch at the request timeout: kubectl exits 0
    assert!(out.status.success(), "{}", common::s(&out.stderr));
    let out = common::s(&out.stdout);
    let rows = table(&out);
    assert_eq!(rows[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert!(rows.iter().filter(|r| r[0] == "web").count() >= 2, "{out}");
    assert!(rows.iter().any(|r| r[0] == "tmp1"), "{out}");
}

#[test]
fn describe_label_annotate_patch() {
    let t = TestServer::start();
    t.k(&["apply", "-f", &t.file("pod.yaml", POD)]);
    assert_eq!(
        t.k(&["label", "pod", "web", "tier=front"]).trim(),
        "pod/web labeled"
    );
    assert_eq!(
        t.k(&["annotate", "pod", "web", "note=hello"]).trim(),
        "pod/web annotated"
    );
    assert_eq!(
        t.k(&[
            "patch",
            "pod",
            "web",
            "-p",
            r#"{"metadata":{"labels":{"patched":"yes"}}}"#
        ])
        .trim(),
        "pod/web patched"
    );
    assert_eq!(
        t.k(&[
            "patch",
            "pod",
            "web",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"merged":"yes"}}}"#
        ])
        .trim(),
        "pod/web patched"
    );
    assert_eq!(
        t.k(&[
            "patch",
            "pod",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/containers/0/image","value":"nginx:1.29"}]"#
        ])
        .trim(),
        "pod/web patched"
    );
    let p = json(&t.k(&["get", "pod", "web", "-o", "json"]));
    assert_eq!(
        p["metadata"]["labels"],
        serde_json::json!({"app": "web", "tier": "front", "patched": "yes", "merged": "yes"})
    );
    assert_eq!(p["metadata"]["annotations"]["note"], "hello");
    assert_eq!(p["spec"]["containers"][0]["image"], "nginx:1.29");
    let e = t.k_err(&[
        "patch",
        "pod",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/nope"}]"#,
    ]);
    assert!(
        e.contains("The request is invalid") && e.contains("/spec/nope"),
        "{e}"
    );
    let d = t.k(&["describe", "pod", "web"]);
    for want in [
        "Name:             web",
        "Namespace:        default",
        "Status:           Pending",
        "nginx:1.29",
        "80/TCP",
        "Labels:           app=web",
        "FailedScheduling",
    ] {
        assert!(d.contains(want), "describe lacks {want:?}:\n{d}");
    }
    assert_eq!(
        t.k(&["label", "pod", "web", "tier-"]).trim(),
        "pod/web unlabeled"
    );
}

#[test]
fn create_commands_and_allocation() {
    let t = TestServer::start();
    assert_eq!(
        t.k(&["create", "deployment", "nginx", "--image=nginx"])
            .trim(),
        "deployment.apps/nginx created"
    );
    assert_eq!(
        t.k(&["create", "service", "nodeport", "nginx", "--tcp=80:80"])
            .trim(),
        "service/nginx created"
    );
    assert_eq!(
        t.k(&["create", "service", "clusterip", "web", "--tcp=8080:80"])
            .trim(),
        "service/web created"
    );
    assert_eq!(
        t.k(&["create", "namespace", "lab"]).trim(),
        "namespace/lab created"
    );
    assert_eq!(
        t.k(&["create", "configmap", "cm1", "--from-literal=a=b"])
            .trim(),
        "configmap/cm1 created"
    );
    assert_eq!(
        t.k(&["create", "secret", "generic", "s1", "--from-literal=a=b"])
            .trim(),
        "secret/s1 created"
    );
    assert_eq!(
        t.k(&[
            "expose",
            "deployment",
            "nginx",
            "--port=8080",
            "--target-port=80",
            "--name=nginx-exp"
        ])
        .trim(),
        "service/nginx-exp exposed"
    );
    assert_eq!(
        t.k(&["get", "secret", "s1", "-o", "jsonpath={.data.a}"]),
        "Yg=="
    );
    assert_eq!(
        t.k(&["get", "secret", "s1", "-o", "jsonpath={.type}"]),
        "Opaque"
    );
    let svcs = json(&t.k(&["get", "svc", "-o", "json"]));
    let mut ips = std::collections::HashSet::new();
    for s in svcs["items"].as_array().unwrap() {
        let ip: std::net::Ipv4Addr = s["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
        assert_eq!(ip.octets()[0], 10);
        assert!(
            (96..112).contains(&ip.octets()[1]),
            "{ip} outside 10.96.0.0/12"
        );
        assert!(ips.insert(ip), "duplicate {ip}");
    }
    let np = json(&t.k(&["get", "svc", "nginx", "-o", "json"]));
    let port = np["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&port), "{port}");
    let exp = json(&t.k(&["get", "svc", "nginx-exp", "-o", "json"]));
    assert_eq!(exp["spec"]["selector"]["app"], "nginx");
    // an explicit nodePort that is taken is refused
    let dup = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: dup\nspec:\n  type: NodePort\n  selector: {{app: x}}\n  ports: [{{port: 80, nodePort: {port}}}]\n"
    );
    let e = t.k_err(&["apply", "-f", &t.file("dup.yaml", &dup)]);
    assert!(e.contains("provided port is already allocated"), "{e}");
    let e = t.k_err(&["create", "deployment", "nginx", "--image=nginx"]);
    assert!(
        e.contains("deployments.apps \"nginx\" already exists"),
        "{e}"
    );
    // the controllers: a replicaset and a pending pod
    t.eventually(10, "nginx pod", || {
        t.k(&["get", "pods", "-l", "app=nginx", "-o", "name"])
            .starts_with("pod/nginx-")
    });
    let rs = table(&t.k(&["get", "rs"]));
    assert_eq!(rs[0], ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]);
    assert!(rs[1][0].starts_with("nginx-") && rs[1][1] == "1");
    let d = table(&t.k(&["get", "deploy"]));
    assert_eq!(d[0], ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert_eq!(&d[1][..2], ["nginx", "0/1"]);
    // the tutorials' queries
    let pods = t.k(&["get", "pods", "--output", "wide", "--selector=app=nginx"]);
    assert!(
        pods.contains("Pending") && pods.contains("<none>"),
        "{pods}"
    );
}

#[test]
fn scale_set_image_rollout_and_wait() {
    let t = TestServer::start();
    let node = common::fake_node::FakeNode::start(&t.pki);
    t.add_node("node1", node.port);
    let nodes = table(&t.k(&["get", "nodes", "--sort-by=.metadata.name", "--output=custom-columns=NAME:.metadata.name,IP:.status.addresses[0].address,PODS:.spec.podCIDR"]));
    assert_eq!(
        nodes,
        [
            vec!["NAME", "IP", "PODS"],
            vec!["node1", "127.0.0.1", "10.244.1.0/24"]
        ]
    );
    let n = table(&t.k(&["get", "nodes", "-o", "wide"]));
    assert_eq!(&n[1][..3], ["node1", "Ready", "<none>"]);
    t.k(&["create", "deployment", "web", "--image=nginx:1.27"]);
    assert_eq!(
        t.k(&["scale", "deployment", "web", "--replicas=2"]).trim(),
        "deployment.apps/web scaled"
    );
    // the scheduler binds the pods to node1; play its kubelet
    let running = |t: &TestServer| {
        let pods = json(&t.k(&["get", "pods", "-l", "app=web", "-o", "json"]));
        let mut n = 0;
        for (i, p) in pods["items"].as_array().unwrap().iter().enumerate() {
            let name = p["metadata"]["name"].as_str().unwrap();
            if p["metadata"].get("deletionTimestamp").is_some() {
                // the kubelet has stopped the containers: its final delete
                let _ = t.kubectl(&[
                    "delete",
                    "pod",
                    name,
                    "--grace-period=0",
                    "--force",
                    "--wait=false",
                ]);
                continue;
            }
            if p["spec"]["nodeName"] == "node1" && p["status"]["phase"] != "Running" {
                t.mark_running("default", name, &format!("10.244.1.{}", 10 + i));
            }
            if p["status"]["phase"] == "Running" {
                n += 1;
            }
        }
        n
    };
    t.eventually(20, "2 running pods", || running(&t) >= 2);
    let out = t.k(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    assert_eq!(
        t.k(&["set", "image", "deployment/web", "nginx=nginx:1.28"])
            .trim(),
        "deployment.apps/web image updated"
    );
    let child = t
        .kubectl_cmd(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    t.eventually(40, "new pods running", || {
        running(&t);
        let d = json(&t.k(&["get", "deploy", "web", "-o", "json"]));
        d["status"]["updatedReplicas"] == 2
            && d["status"]["availableReplicas"] == 2
            && d["status"]["replicas"] == 2
    });
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", common::s(&out.stderr));
    assert!(common::s(&out.stdout).contains("successfully rolled out"));
    let imgs = t.k(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].spec.containers[0].image}",
    ]);
    t.eventually(20, "old pods gone", || {
        running(&t);
        t.k(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ])
        .split(' ')
        .all(|i| i == "nginx:1.28")
    });
    let _ = imgs;
    // the endpoints controller lists the ready pods
    t.k(&["expose", "deployment", "web", "--port=80"]);
    t.eventually(10, "endpoints", || {
        t.k(&[
            "get",
            "endpoints",
            "web",
            "-o",
            "jsonpath={.subsets[0].addresses[*].ip}",
        ])
        .split(' ')
        .count()
            == 2
    });
    let ep = table(&t.k(&["get", "endpoints", "web"]));
    assert_eq!(ep[0], ["NAME", "ENDPOINTS", "AGE"]);
    assert!(ep[1][1].contains(":80"), "{ep:?}");
    assert!(
        t.k(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "name"
        ])
        .starts_with("endpointslice.discovery.k8s.io/web-")
    );
    // kubectl wait on a pod that becomes Ready
    t.k(&["apply", "-f", &t.file("pod.yaml", POD)]);
    let child = t
        .kubectl_cmd(&["wait", "--for=condition=Ready", "pod/web", "--timeout=30s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    t.eventually(10, "web bound", || {
        t.k(&["get", "pod", "web", "-o", "jsonpath={.spec.nodeName}"]) == "node1"
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    t.mark_running("default", "web", "10.244.1.50");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", common::s(&out.stderr));
    assert_eq!(common::s(&out.stdout).trim(), "pod/web condition met");
    let row = table(&t.k(&["get", "pod", "web", "-o", "wide"]));
    assert_eq!(&row[1][1..3], ["2/2", "Running"]);
    assert_eq!(&row[1][5..7], ["10.244.1.50", "node1"]);
    let podip = json(&t.k(&["get", "po", "web", "-ojson"]));
    assert_eq!(podip["status"]["podIP"], "10.244.1.50");
    let d = t.k(&["describe", "pod", "web"]);
    assert!(
        d.contains("Successfully assigned default/web to node1"),
        "{d}"
    );
    let n = t.k(&["describe", "node", "node1"]);
    for want in [
        "Name:               node1",
        "KubeletReady",
        "InternalIP:  127.0.0.1",
        "PodCIDR:                      10.244.1.0/24",
        "default                     web",
    ] {
        assert!(n.contains(want), "describe node lacks {want:?}:\n{n}");
    }
    // exec addresses a deployment's pod too
    assert_eq!(
        t.k(&["exec", "deploy/web", "--", "echo", "via", "deployment"]),
        "via deployment\n"
    );
}

#[test]
fn delete_graceful_and_namespaces() {
    let t = TestServer::start();
    t.k(&["apply", "-f", &t.file("pod.yaml", POD)]);
    assert_eq!(
        t.k(&["delete", "pod", "web"]).trim(),
        "pod \"web\" deleted from default namespace"
    );
    let e = t.k_err(&["get", "pod", "web"]);
    assert!(e.contains("NotFound"), "{e}");
    let e = t.k_err(&["delete", "pod", "nope"]);
    assert!(
        e.contains("Error from server (NotFound): pods \"nope\" not found"),
        "{e}"
    );
    // a pod on a live node terminates gracefully: kubectl waits (watch-list) until the node finishes
    let node = common::fake_node::FakeNode::start(&t.pki);
    t.add_node("node1", node.port);
    t.k(&["apply", "-f", &t.file("pod.yaml", POD)]);
    t.eventually(10, "bound", || {
        t.k(&["get", "pod", "web", "-o", "jsonpath={.spec.nodeName}"]) == "node1"
    });
    t.mark_running("default", "web", "10.244.1.9");
    let child = t
        .kubectl_cmd(&["delete", "pod", "web", "--timeout=30s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    t.eventually(10, "terminating", || {
        t.k(&["get", "pod", "web"]).contains("Terminating")
    });
    // the kubelet's final delete
    t.k(&[
        "delete",
        "pod",
        "web",
        "--grace-period=0",
        "--force",
        "--wait=false",
    ]);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", common::s(&out.stderr));
    assert_eq!(
        common::s(&out.stdout).trim(),
        "pod \"web\" deleted from default namespace"
    );
    // from here on the node's kubelet finishes pod deletions by itself
    let _kubelet = t.kubelet("node1", true);
    // a namespace goes with its objects
    t.k(&["create", "namespace", "lab"]);
    t.k(&["create", "deployment", "d1", "--image=nginx", "-n", "lab"]);
    t.k(&[
        "create",
        "configmap",
        "c1",
        "--from-literal=a=b",
        "-n",
        "lab",
    ]);
    t.eventually(10, "pods in lab", || {
        !t.k(&["get", "pods", "-n", "lab", "-o", "name"]).is_empty()
    });
    // a terminating namespace stays until it is empty, whatever else changes on it meanwhile
    t.k(&["create", "namespace", "slow"]);
    let fin = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"held","namespace":"slow","finalizers":["podnet.dev/hold"]}}"#;
    t.k(&["create", "-f", &t.file("held.json", fin)]);
    t.k(&["delete", "namespace", "slow", "--wait=false"]);
    t.k(&["label", "namespace", "slow", "touched=yes"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        t.k(&["get", "ns", "slow", "-o", "jsonpath={.status.phase}"]),
        "Terminating"
    );
    t.k(&[
        "patch",
        "cm",
        "held",
        "-n",
        "slow",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    t.eventually(15, "namespace slow to go", || {
        t.kubectl(&["get", "ns", "slow"]).status.code() == Some(1)
    });
    assert_eq!(
        t.k(&["delete", "namespace", "lab"]).trim(),
        "namespace \"lab\" deleted"
    );
    assert!(t.k_err(&["get", "ns", "lab"]).contains("NotFound"));
    assert!(t.k(&["get", "all", "-n", "lab", "-o", "name"]).is_empty());
    let e = t.k_err(&["delete", "namespace", "default"]);
    assert!(e.contains("forbidden"), "{e}");
    // deleting a deployment removes its replicasets and pods (garbage collection)
    t.k(&["create", "deployment", "d2", "--image=nginx"]);
    t.eventually(10, "d2 pod", || {
        !t.k(&["get", "pods", "-l", "app=d2", "-o", "name"])
            .is_empty()
    });
    t.k(&["delete", "deployment", "d2"]);
    t.eventually(10, "d2 pods collected", || {
        t.k(&["get", "rs,pods", "-l", "app=d2", "-o", "name"])
            .is_empty()
    });
}

#[test]
fn explain_uses_openapi() {
    let t = TestServer::start();
    let e = t.k(&["explain", "pod.spec.containers.ports"]);
    assert!(e.contains("KIND:       Pod"), "{e}");
    assert!(
        e.contains("containerPort\t<integer> -required-") || e.contains("containerPort"),
        "{e}"
    );
    let e = t.k(&["explain", "deployment.spec.replicas"]);
    assert!(e.contains("GROUP:      apps"), "{e}");
    assert!(e.contains("FIELD: replicas <integer>"), "{e}");
}

#[test]
fn logs_and_exec_relay_through_the_node() {
    let t = TestServer::start();
    let node = common::fake_node::FakeNode::start(&t.pki);
    t.add_node("node1", node.port);
    t.k(&["apply", "-f", &t.file("pod.yaml", POD)]);
    t.eventually(10, "bound", || {
        t.k(&["get", "pod", "web", "-o", "jsonpath={.spec.nodeName}"]) == "node1"
    });
    t.mark_running("default", "web", "10.244.1.7");
    assert_eq!(
        t.k(&["logs", "web", "-c", "nginx"]),
        "nginx line 1\nnginx line 2\nnginx line 3\nnginx line 4\nnginx line 5\n"
    );
    assert_eq!(
        t.k(&["logs", "web", "-c", "nginx", "--tail=2"]),
        "nginx line 4\nnginx line 5\n"
    );
    assert_eq!(
        t.k(&["logs", "web", "-c", "sidecar", "--previous"]),
        "sidecar previous run\n"
    );
    let e = t.k_err(&["logs", "web", "-c", "nginx", "--previous"]);
    assert!(
        e.contains("previous terminated container \"nginx\" in pod \"web\" not found"),
        "{e}"
    );
    let ts = t.k(&["logs", "web", "-c", "nginx", "--timestamps", "--tail=1"]);
    assert_eq!(ts, "2026-01-01T00:00:05.000000000Z nginx line 5\n");
    let f = t.k(&["logs", "web", "-c", "sidecar", "--follow"]);
    assert!(
        f.ends_with("sidecar line 5\nsidecar follow 1\nsidecar follow 2\nsidecar follow 3\n"),
        "{f}"
    );
    let e = t.k_err(&["logs", "web", "-c", "bogus"]);
    assert!(e.contains("bogus"), "{e}");
    // exec: output, exit codes, stdin, tty
    assert_eq!(
        t.k(&["exec", "web", "-c", "nginx", "--", "echo", "hi", "there"]),
        "hi there\n"
    );
    let o = t.kubectl(&["exec", "web", "-c", "nginx", "--", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", common::s(&o.stderr));
    assert!(common::s(&o.stderr).contains("bye from stderr"));
    let o = t.k_stdin(
        &["exec", "-i", "web", "-c", "nginx", "--", "cat"],
        "abc\ndef\n",
    );
    assert!(o.status.success(), "{}", common::s(&o.stderr));
    assert_eq!(common::s(&o.stdout), "abc\ndef\n");
    let o = t.k_stdin(
        &["exec", "-it", "web", "-c", "nginx", "--", "sh"],
        "ls -l\nexit 5\n",
    );
    assert_eq!(
        o.status.code(),
        Some(5),
        "stdout {} stderr {}",
        common::s(&o.stdout),
        common::s(&o.stderr)
    );
    assert!(
        common::s(&o.stdout).contains("you typed: ls -l"),
        "{}",
        common::s(&o.stdout)
    );
    // an idle session survives kubectl's pings (every 5 s)
    assert_eq!(
        t.k(&["exec", "web", "-c", "nginx", "--", "sleep", "11"]),
        "slept\n"
    );
    // a pod without a node cannot be reached
    t.k(&[
        "run",
        "lonely",
        "--image=busybox",
        "--overrides",
        r#"{"spec":{"nodeSelector":{"nowhere":"true"}}}"#,
    ]);
    let e = t.k_err(&["logs", "lonely"]);
    assert!(e.contains("does not have a host assigned"), "{e}");
}

#[test]
fn unauthorized_without_the_token() {
    let t = TestServer::start();
    let bad = std::fs::read_to_string(&t.kubeconfig)
        .unwrap()
        .replace(&t.pki.token, "wrong-token");
    let f = t.file("bad-kubeconfig", &bad);
    let o = t.kubectl(&["--kubeconfig", &f, "get", "pods"]);
    assert!(!o.status.success());
    let e = common::s(&o.stderr);
    assert!(
        e.contains("Unauthorized") || e.contains("You must be logged in"),
        "{e}"
    );
}

#[test]
fn state_survives_restart() {
    let t = TestServer::start();
    t.k(&["create", "configmap", "keep", "--from-literal=a=b"]);
    let rv1: u64 = t
        .k(&[
            "get",
            "cm",
            "keep",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .parse()
        .unwrap();
    // an event that happened long ago, and a fresh one
    for (name, when) in [
        ("old", "2020-01-01T00:00:00Z"),
        ("fresh", "2099-01-01T00:00:00Z"),
    ] {
        let ev = serde_json::json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": name},
            "involvedObject": {"kind": "ConfigMap", "name": "keep", "namespace": "default"},
            "reason": "Test", "message": name, "type": "Normal", "firstTimestamp": when, "lastTimestamp": when, "count": 1});
        t.k(&[
            "create",
            "-f",
            &t.file(&format!("ev-{name}.json"), &ev.to_string()),
        ]);
    }
    let (dir, pki, tools) = t.stop();
    let t = TestServer::start_in(dir, pki, tools, |_| {});
    assert_eq!(t.k(&["get", "cm", "keep", "-o", "jsonpath={.data.a}"]), "b");
    t.k(&["label", "cm", "keep", "x=y"]);
    let rv2: u64 = t
        .k(&[
            "get",
            "cm",
            "keep",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .parse()
        .unwrap();
    assert!(rv2 > rv1, "{rv2} <= {rv1}");
    // events expire an hour after they last happened
    t.eventually(10, "the old event to expire", || {
        t.k(&["get", "events", "-o", "name"]) == "event/fresh\n"
    });
}

/// EndpointSlices as upstream's controller writes them: a pod whose `subdomain` names a headless
/// Service gets its `hostname` (what cluster DNS answers `web-0.hl.ns.svc` from), and a terminating
/// pod stays in the slice marked terminating (serving while ready) but leaves the Endpoints object.
#[test]
fn endpoint_slices_carry_hostnames_and_terminating_pods() {
    let t = TestServer::start();
    let node = common::fake_node::FakeNode::start(&t.pki);
    t.add_node("node1", node.port);
    let manifest = r#"
apiVersion: v1
kind: Service
metadata: {name: hl}
spec:
  clusterIP: None
  selector: {app: hl}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, labels: {app: hl}}
spec:
  hostname: web-0
  subdomain: hl
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: other, labels: {app: hl}}
spec:
  hostname: other
  subdomain: elsewhere
  containers: [{name: c, image: busybox}]
"#;
    t.k(&["apply", "-f", &t.file("hl.yaml", manifest)]);
    for (pod, ip) in [("web-0", "10.244.1.20"), ("other", "10.244.1.21")] {
        t.eventually(10, "bound", || {
            t.k(&["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"]) == "node1"
        });
        t.mark_running("default", pod, ip);
    }
    let slice = || {
        json(&t.k(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=hl",
            "-o",
            "json",
        ]))["items"][0]
            .clone()
    };
    let endpoint = |s: &Value, ip: &str| {
        s["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["addresses"][0] == ip)
            .cloned()
    };
    t.eventually(10, "both endpoints", || {
        let s = slice();
        endpoint(&s, "10.244.1.20").is_some() && endpoint(&s, "10.244.1.21").is_some()
    });
    let s = slice();
    assert_eq!(endpoint(&s, "10.244.1.20").unwrap()["hostname"], "web-0");
    assert!(
        endpoint(&s, "10.244.1.21")
            .unwrap()
            .get("hostname")
            .is_none(),
        "a pod of another subdomain has no hostname here: {s}"
    );
    let ep = json(&t.k(&["get", "endpoints", "hl", "-o", "json"]));
    let addr = ep["subsets"][0]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["ip"] == "10.244.1.20")
        .cloned()
        .unwrap();
    assert_eq!(addr["hostname"], "web-0");
    // deleting web-0 (the node has not confirmed it yet): terminating in the slice, out of Endpoints
    t.k(&["delete", "pod", "web-0", "--wait=false"]);
    t.eventually(10, "web-0 terminating in the slice", || {
        endpoint(&slice(), "10.244.1.20").is_some_and(|e| e["conditions"]["terminating"] == true)
    });
    let e = endpoint(&slice(), "10.244.1.20").unwrap();
    assert_eq!(e["conditions"]["ready"], false);
    assert_eq!(e["conditions"]["serving"], true);
    let ips = t.k(&[
        "get",
        "endpoints",
        "hl",
        "-o",
        "jsonpath={.subsets[0].addresses[*].ip}",
    ]);
    assert_eq!(ips, "10.244.1.21");
}

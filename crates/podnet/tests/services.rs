//! Services and cluster DNS on the lab, driven with the real kubectl as a user would (issue 10's
//! "Must show"): ClusterIP from a pod on another node by address and by name, NodePort from the
//! router, from every node and from a node to itself, load spread and scaling, session affinity,
//! hairpin, a Service without endpoints refusing at once, client addresses preserved (pod to
//! ClusterIP, externalTrafficPolicy Local), UDP after an endpoint change, the `kubernetes` Service
//! from inside a pod; DNS records (Services, headless with per-pod names and SRV, pods) and names
//! outside the cluster through the lab's relay. Root tests; each has its own lab (torn down in
//! `Drop`, also on failure). Waits are bounded polls.

mod common;

use common::kube::*;
use common::*;
use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

/// Serves its own hostname over HTTP on 8080 (busybox httpd), so a response says which pod answered.
const WHOAMI: &str = r#"["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]"#;

fn manifests() -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: busybox
        command: {WHOAMI}
        ports: [{{containerPort: 8080}}]
        readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: echo}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: echo}}}}
  template:
    metadata: {{labels: {{app: echo}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: echo
        image: registry.k8s.io/echoserver:1.4
        # the machine's image store may hold an echoserver substitute from before it answered UDP
        imagePullPolicy: Always
        ports: [{{containerPort: 8080, protocol: TCP}}, {{containerPort: 8080, protocol: UDP}}]
        readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: echo}}
spec:
  type: NodePort
  selector: {{app: echo}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: echo-udp}}
spec:
  selector: {{app: echo}}
  ports: [{{name: udp, port: 9000, targetPort: 8080, protocol: UDP}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: hair, labels: {{app: hair}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: hair
    image: busybox
    command: {WHOAMI}
---
apiVersion: v1
kind: Service
metadata: {{name: hair}}
spec:
  selector: {{app: hair}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: nobody}}
spec:
  selector: {{app: nobody}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  nodeName: node1
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: busybox
    command: ["sleep", "3600"]
"#
    )
}

fn cluster_ip(lab: &Lab, svc: &str) -> String {
    lab.kubectl_ok(&["get", "svc", svc, "-o", "jsonpath={.spec.clusterIP}"])
}

/// `wget` from the client pod: the body, or the failure's text.
fn wget(lab: &Lab, url: &str) -> Result<String, String> {
    exec(lab, "client", &["timeout", "5", "wget", "-qO-", url]).map(|s| s.trim().to_string())
}

/// curl from inside one of the lab's namespaces (`router`, or a node's).
fn curl_in(lab: &Lab, netns: &str, url: &str) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &format!("{}-{netns}", lab.name)])
        .args(["curl", "-sS", "--max-time", "5", url])
        .output()
        .expect("run curl");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(text(&out))
    }
}

/// The hostnames that answered `n` requests to `url` from the client pod.
fn answering(lab: &Lab, url: &str, n: usize) -> BTreeSet<String> {
    (0..n)
        .map(|_| wget(lab, url).unwrap_or_else(|e| format!("error: {e}")))
        .collect()
}

fn pod_names(pods: &[serde_json::Value]) -> BTreeSet<String> {
    pods.iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
}

#[test]
fn cluster_ip_and_node_port_on_three_nodes() {
    let lab = Lab::up(&["--nodes", "3"]);
    apply(&lab, &manifests());
    let web = wait_deployment_ready(&lab, "default", "web", LONG);
    let echo = wait_deployment_ready(&lab, "default", "echo", LONG);
    let client = wait_pod_ready(&lab, "default", "client");
    wait_pod_ready(&lab, "default", "hair");
    wait_deployment_ready(&lab, "kube-system", "podnet-dns", Duration::from_secs(120));
    let client_ip = client["status"]["podIP"].as_str().unwrap().to_string();
    let web_ip = cluster_ip(&lab, "web");

    // ClusterIP from a pod, spread over the three pods (on any node).
    let url = format!("http://{web_ip}/");
    let seen = wait_for("all three web pods answering", LONG, || {
        let seen = answering(&lab, &url, 30);
        if seen == pod_names(&web) {
            Ok(seen)
        } else {
            Err(format!("{seen:?}"))
        }
    });
    assert_eq!(seen.len(), 3);

    // kubectl shows what the proxy uses.
    let described = lab.kubectl_ok(&["describe", "svc", "web"]);
    assert!(
        described
            .lines()
            .any(|l| l.starts_with("Endpoints:") && l.contains(":8080")),
        "{described}"
    );
    let slices = lab.kubectl_ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
    ]);
    assert!(slices.contains("8080"), "{slices}");

    // The client's own address reaches the server (no masquerade from pod to ClusterIP).
    let echo_ip = cluster_ip(&lab, "echo");
    let body = wget(&lab, &format!("http://{echo_ip}/")).unwrap();
    assert_eq!(
        field(&body, "client_address"),
        Some(client_ip.as_str()),
        "{body}"
    );

    // NodePort from the router, from every node to every node, and from a node to itself.
    let node_port = lab.kubectl_ok(&[
        "get",
        "svc",
        "echo",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    let nodes = ["node1", "node2", "node3"];
    for target in nodes {
        let url = format!("http://{}:{node_port}/", lab.underlay_ip(target));
        let body = curl_in(&lab, "router", &url).unwrap_or_else(|e| panic!("router -> {url}: {e}"));
        assert!(body.contains("CLIENT VALUES"), "{body}");
        for from in nodes {
            let body = curl_in(&lab, from, &url).unwrap_or_else(|e| panic!("{from} -> {url}: {e}"));
            assert!(body.contains("CLIENT VALUES"), "{from} -> {url}: {body}");
        }
    }

    // externalTrafficPolicy Local: the router's own address reaches the pod.
    lab.kubectl_ok(&[
        "patch",
        "svc",
        "echo",
        "-p",
        r#"{"spec":{"externalTrafficPolicy":"Local"}}"#,
    ]);
    let echo_node = echo[0]["spec"]["nodeName"].as_str().unwrap().to_string();
    let url = format!("http://{}:{node_port}/", lab.underlay_ip(&echo_node));
    wait_for(
        "the router's address preserved with eTP Local",
        LONG,
        || {
            let body = curl_in(&lab, "router", &url)?;
            match field(&body, "client_address") {
                Some("10.100.0.1") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    );

    // Hairpin: a pod reaching itself through its own Service.
    let hair_ip = cluster_ip(&lab, "hair");
    let me = exec(
        &lab,
        "hair",
        &[
            "timeout",
            "5",
            "wget",
            "-qO-",
            &format!("http://{hair_ip}/"),
        ],
    )
    .unwrap();
    assert_eq!(me.trim(), "hair");

    // No endpoints: refused at once, not a timeout.
    let nobody = cluster_ip(&lab, "nobody");
    let err = wget(&lab, &format!("http://{nobody}/")).unwrap_err();
    assert!(
        err.contains("refused"),
        "a Service without endpoints refuses: {err}"
    );

    // The `kubernetes` Service from inside a pod, by name, with the pod's service-account token:
    // refused until RBAC grants the service account something, then answered.
    let pod = echo[0]["metadata"]["name"].as_str().unwrap();
    let list_services = [
        "sh",
        "-c",
        "curl -sS --max-time 10 --cacert /var/run/secrets/kubernetes.io/serviceaccount/ca.crt -H \"Authorization: Bearer $(cat /var/run/secrets/kubernetes.io/serviceaccount/token)\" https://kubernetes.default.svc/api/v1/namespaces/default/services",
    ];
    let refused = exec(&lab, pod, &list_services).unwrap();
    assert!(
        refused.contains("\"code\":403") && refused.contains("services is forbidden"),
        "{refused}"
    );
    lab.kubectl_ok(&[
        "create",
        "rolebinding",
        "default-view",
        "--clusterrole=view",
        "--serviceaccount=default:default",
    ]);
    let list = exec(&lab, pod, &list_services).unwrap();
    assert!(
        list.contains("\"ServiceList\"") && list.contains("\"echo-udp\""),
        "{list}"
    );
    let env = exec(&lab, pod, &["env"]).unwrap();
    assert!(env.contains("KUBERNETES_SERVICE_HOST=10.96.0.1\n"), "{env}");

    // Session affinity: one pod answers a client.
    lab.kubectl_ok(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"sessionAffinity":"ClientIP"}}"#,
    ]);
    wait_for("session affinity", LONG, || {
        let seen = answering(&lab, &url_of(&web_ip), 15);
        if seen.len() == 1 && !seen.iter().next().unwrap().starts_with("error") {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });
    lab.kubectl_ok(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"sessionAffinity":"None"}}"#,
    ]);

    // Scaling down: only the remaining pod answers, within seconds.
    lab.kubectl_ok(&["scale", "deployment", "web", "--replicas", "1"]);
    let left = wait_deployment_ready(&lab, "default", "web", LONG);
    let left = pod_names(&left);
    wait_for("only the remaining web pod answering", LONG, || {
        let seen = answering(&lab, &url_of(&web_ip), 15);
        if seen == left {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });

    // UDP after an endpoint change: a client that keeps its source port reaches the new pod (the
    // stale conntrack entry towards the deleted one is removed).
    let udp_ip = cluster_ip(&lab, "echo-udp");
    let node1 = podnet_netns::NetNs::open(lab.node_netns("node1")).unwrap();
    let sock = node1.run(|| UdpSocket::bind("0.0.0.0:0")).unwrap().unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let target = format!("{udp_ip}:9000");
    let ask = |sock: &UdpSocket| -> Result<String, String> {
        sock.send_to(b"hi", &target).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).map_err(|e| e.to_string())?;
        let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
        field(&reply, "hostname").map(String::from).ok_or(reply)
    };
    let first = wait_for("a UDP answer through the Service", LONG, || ask(&sock));
    assert_eq!(first, echo[0]["metadata"]["name"].as_str().unwrap());
    lab.kubectl_ok(&["delete", "pod", &first, "--wait=false"]);
    let second = wait_for("a UDP answer from the replacement pod", LONG, || {
        let h = ask(&sock)?;
        if h != first { Ok(h) } else { Err(h) }
    });
    assert_ne!(second, first);
}

fn url_of(ip: &str) -> String {
    format!("http://{ip}/")
}

/// A resolver on the machine's loopback standing in for "the internet's DNS": `outside.example`
/// is 203.0.113.10, every other name NXDOMAIN. Returns its address.
fn fake_upstream() -> std::net::SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if let Some(reply) = fake_answer(&buf[..n]) {
                let _ = sock.send_to(&reply, from);
            }
        }
    });
    addr
}

fn fake_answer(q: &[u8]) -> Option<Vec<u8>> {
    // the question's name, as labels, and where it ends
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(at..at + len)?).to_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*q.get(at)?, *q.get(at + 1)?]);
    let end = at + 4;
    let known = labels.join(".") == "outside.example";
    let answers = u16::from(known && qtype == 1);
    let mut r = q[..2].to_vec();
    r.push(0x81);
    r.push(if known { 0x80 } else { 0x83 }); // RA; NXDOMAIN for unknown names
    r.extend_from_slice(&[0, 1, 0, answers as u8, 0, 0, 0, 0]);
    r.extend_from_slice(q.get(12..end)?);
    if answers == 1 {
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, 10]);
    }
    Some(r)
}

fn nslookup(lab: &Lab, args: &[&str]) -> Result<String, String> {
    exec(
        lab,
        "client",
        &[&["timeout", "5", "nslookup"], args].concat(),
    )
}

#[test]
fn cluster_dns_answers_services_pods_and_outside_names() {
    let upstream = fake_upstream().to_string();
    let lab = Lab::up(&["--upstream-dns", &upstream]);
    apply(
        &lab,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: client, image: busybox, command: ["sleep", "3600"]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: hl}}
spec:
  clusterIP: None
  selector: {{app: web}}
  ports: [{{name: http, port: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: web-0, labels: {{app: web}}}}
spec:
  hostname: web-0
  subdomain: hl
  terminationGracePeriodSeconds: 1
  containers: [{{name: web, image: busybox, command: {WHOAMI}, readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: web-1, labels: {{app: web}}}}
spec:
  hostname: web-1
  subdomain: hl
  terminationGracePeriodSeconds: 1
  containers: [{{name: web, image: busybox, command: {WHOAMI}, readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}}}]
"#
        ),
    );
    // The cluster DNS runs as clusters run CoreDNS: two replicas behind kube-dns at 10.96.0.10.
    wait_deployment_ready(&lab, "kube-system", "podnet-dns", Duration::from_secs(120));
    let svc = lab.kubectl_ok(&["get", "svc", "-n", "kube-system", "kube-dns"]);
    assert!(
        svc.contains("10.96.0.10") && svc.contains("53/UDP,53/TCP"),
        "{svc}"
    );
    let client = wait_pod_ready(&lab, "default", "client");
    let w0 = wait_pod_ready(&lab, "default", "web-0");
    let w1 = wait_pod_ready(&lab, "default", "web-1");
    let ip = |p: &serde_json::Value| p["status"]["podIP"].as_str().unwrap().to_string();

    let resolv = exec(&lab, "client", &["cat", "/etc/resolv.conf"]).unwrap();
    assert_eq!(
        resolv,
        "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
    );

    // A Service by its full name and by the search path.
    let web_ip = cluster_ip(&lab, "web");
    let full = wait_for("web.default.svc.cluster.local", LONG, || {
        nslookup(&lab, &["web.default.svc.cluster.local"])
    });
    assert!(full.contains(&format!("Address: {web_ip}")), "{full}");
    // busybox's nslookup tries every search domain and reports the misses with exit code 1 even when
    // one answered: read the answer, not the exit code.
    let short = nslookup(&lab, &["web"]).unwrap_or_else(|e| e);
    assert!(short.contains(&format!("Address: {web_ip}")), "{short}");
    let sys = nslookup(&lab, &["kubernetes.default.svc.cluster.local"]).unwrap_or_else(|e| e);
    assert!(sys.contains("Address: 10.96.0.1"), "{sys}");

    // Headless: the ready pods' addresses, per-pod names, SRV for the named port.
    let hl = wait_for("headless hl with both pods", LONG, || {
        let out = nslookup(&lab, &["hl.default.svc.cluster.local"])?;
        if out.contains(&ip(&w0)) && out.contains(&ip(&w1)) {
            Ok(out)
        } else {
            Err(out)
        }
    });
    assert!(!hl.contains(&web_ip), "{hl}");
    let one = nslookup(&lab, &["web-0.hl.default.svc.cluster.local"]).unwrap();
    assert!(one.contains(&format!("Address: {}", ip(&w0))), "{one}");
    let srv = nslookup(
        &lab,
        &["-type=SRV", "_http._tcp.hl.default.svc.cluster.local"],
    )
    .unwrap();
    assert!(
        srv.contains("web-0.hl.default.svc.cluster.local") && srv.contains("8080"),
        "{srv}"
    );

    // busybox's nslookup asks A and AAAA at once from one socket, through the Service's DNAT to one
    // of two replicas: the conntrack race that stalls such lookups for 5 s elsewhere must not (each
    // lookup here has 4 s).
    let burst = exec(
        &lab,
        "client",
        &["sh", "-c", "for i in $(seq 20); do timeout 4 nslookup web.default.svc.cluster.local >/dev/null || echo stalled $i; done"],
    )
    .unwrap();
    assert!(!burst.contains("stalled"), "{burst}");

    // A pod by its dashed address.
    let cip = ip(&client);
    let dashed = format!("{}.default.pod.cluster.local", cip.replace('.', "-"));
    let pod = nslookup(&lab, &[&dashed]).unwrap();
    assert!(pod.contains(&format!("Address: {cip}")), "{pod}");

    // Names that do not exist: NXDOMAIN, inside the cluster and outside.
    let missing = nslookup(&lab, &["missing.default.svc.cluster.local"]).unwrap_err();
    assert!(missing.contains("NXDOMAIN"), "{missing}");

    // A name outside the cluster, through the lab's relay to the machine side's resolver.
    let out = nslookup(&lab, &["outside.example."]).unwrap();
    assert!(out.contains("Address: 203.0.113.10"), "{out}");
    let none = nslookup(&lab, &["nothing.example."]).unwrap_err();
    assert!(none.contains("NXDOMAIN"), "{none}");

    // The node agents can be stopped gracefully: no signal is blocked for them (the lab daemon
    // blocks SIGTERM for itself, and a mask survives exec).
    let agents = agent_pids(&lab.name);
    assert_eq!(agents.len(), 2, "one agent per node");
    for pid in agents {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let blocked = status.lines().find(|l| l.starts_with("SigBlk:")).unwrap();
        assert_eq!(
            u64::from_str_radix(blocked.split_whitespace().nth(1).unwrap(), 16).unwrap()
                & (1 << 14),
            0,
            "SIGTERM blocked in agent {pid}: {blocked}"
        );
    }
}

/// The PIDs of a lab's node agents (by argv and environment).
fn agent_pids(lab: &str) -> Vec<u32> {
    let want = format!("PODNET_LAB={lab}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            cmd.split(|b| *b == 0).any(|a| a == b"node-agent")
                && env.split(|b| *b == 0).any(|a| a == want.as_bytes())
        })
        .collect()
}

//! LoadBalancer Services on the lab, driven with the real kubectl and reached from the lab's internet
//! host (`ip netns exec <lab>-internet curl ...`), as issue 14 asks: addresses assigned from the
//! `--lb-pool` (EXTERNAL-IP in `kubectl get svc`), reachable from outside, the client's address kept
//! with externalTrafficPolicy Local (and the router's route on the endpoint's node), a Service left
//! pending while the pool is exhausted, addresses released when a Service goes or changes type and
//! given to the next one. Root test with its own lab (torn down in `Drop`); waits are bounded polls.

mod common;

use common::kube::*;
use common::*;
use std::process::Command;

const MANIFESTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 1
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: echo
        image: registry.k8s.io/echoserver:1.4
        ports: [{containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  type: LoadBalancer
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: second}
spec:
  type: LoadBalancer
  selector: {app: echo}
  ports: [{name: http, port: 8000, targetPort: 8080}]
"#;

const THIRD: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: third}
spec:
  type: LoadBalancer
  selector: {app: echo}
  ports: [{name: http, port: 9000, targetPort: 8080}]
"#;

/// curl from the lab's internet host.
fn curl_internet(lab: &Lab, url: &str) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &format!("{}-internet", lab.name)])
        .args(["curl", "-sS", "--max-time", "5", url])
        .output()
        .expect("run curl");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(text(&out))
    }
}

fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
}

/// The EXTERNAL-IP column of `kubectl get svc NAME`.
fn external_ip(lab: &Lab, svc: &str) -> String {
    let out = lab.kubectl_ok(&["get", "svc", svc]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let col = header
        .iter()
        .position(|h| *h == "EXTERNAL-IP")
        .unwrap_or_else(|| panic!("no EXTERNAL-IP column: {out}"));
    lines
        .next()
        .and_then(|l| l.split_whitespace().nth(col))
        .unwrap_or_default()
        .to_string()
}

fn wait_external_ip(lab: &Lab, svc: &str) -> String {
    wait_for(
        &format!("an EXTERNAL-IP for {svc}"),
        LONG,
        || match external_ip(lab, svc) {
            ip if ip.starts_with("203.0.113.") => Ok(ip),
            other => Err(other),
        },
    )
}

fn router_route(lab: &Lab, ip: &str) -> String {
    let out = Command::new("ip")
        .args(["-n", &format!("{}-router", lab.name), "route", "show", ip])
        .output()
        .expect("run ip route");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// SIGKILLs the lab's daemon (the API server, its controllers and the router's routing).
fn kill_daemon(lab: &Lab) {
    let marker = format!("__lab-daemon\0--name\0{}", lab.name);
    let pids: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
        })
        .collect();
    assert_eq!(pids.len(), 1, "one daemon per lab");
    let st = Command::new("kill")
        .args(["-9", &pids[0]])
        .status()
        .unwrap();
    assert!(st.success());
    wait_for("the daemon gone", LONG, || {
        if std::path::Path::new(&format!("/proc/{}", pids[0])).exists() {
            Err("still there".to_string())
        } else {
            Ok(())
        }
    });
}

#[test]
fn load_balancer_addresses_assigned_reachable_and_released() {
    // a pool of two addresses, so the third Service waits for one
    let lab = Lab::up(&["--lb-pool", "203.0.113.200-203.0.113.201"]);
    apply(&lab, MANIFESTS);
    let echo = wait_deployment_ready(&lab, "default", "echo", LONG);
    let echo_node = echo[0]["spec"]["nodeName"].as_str().unwrap().to_string();

    let a = wait_external_ip(&lab, "echo");
    let b = wait_external_ip(&lab, "second");
    let mut both = [a.clone(), b.clone()];
    both.sort();
    assert_eq!(both, ["203.0.113.200", "203.0.113.201"]);

    // Reachable from the internet host on each address and its own port (eTP Cluster: the node
    // masquerades, so the pod sees a cluster-side address, not the client's).
    for (ip, port) in [(&a, 80), (&b, 8000)] {
        let url = format!("http://{ip}:{port}/");
        let body = wait_for(&format!("{url} from the internet host"), LONG, || {
            curl_internet(&lab, &url)
        });
        assert!(body.contains("CLIENT VALUES"), "{body}");
        assert_ne!(
            field(&body, "client_address"),
            Some("203.0.113.10"),
            "{body}"
        );
    }

    // The pool is exhausted: the third Service waits, and says why.
    apply(&lab, THIRD);
    wait_for("the third Service's AllocationFailed event", LONG, || {
        let ev = lab.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=third",
        ]);
        if ev.contains("AllocationFailed") && ev.contains("no address left in the pool") {
            Ok(())
        } else {
            Err(ev)
        }
    });
    assert_eq!(external_ip(&lab, "third"), "<pending>");

    // externalTrafficPolicy Local: the router sends the address to the endpoint's node, and the pod
    // sees the internet host's own address.
    lab.kubectl_ok(&[
        "patch",
        "svc",
        "echo",
        "-p",
        r#"{"spec":{"externalTrafficPolicy":"Local"}}"#,
    ]);
    let node_ip = lab.underlay_ip(&echo_node).to_string();
    let url = format!("http://{a}/");
    wait_for("the client's address kept with eTP Local", LONG, || {
        let body = curl_internet(&lab, &url)?;
        match field(&body, "client_address") {
            Some("203.0.113.10") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let route = router_route(&lab, &a);
    assert!(route.contains(&format!("via {node_ip}")), "{route}");

    // Deleting a Service returns its address; the waiting Service gets it and answers there.
    lab.kubectl_ok(&["delete", "svc", "second"]);
    let c = wait_external_ip(&lab, "third");
    assert_eq!(c, b, "the released address is reused");
    let url = format!("http://{c}:9000/");
    let body = wait_for(&format!("{url} from the internet host"), LONG, || {
        curl_internet(&lab, &url)
    });
    assert!(body.contains("CLIENT VALUES"), "{body}");

    // A control plane killed and restarted decides from the Services alone: the same addresses,
    // still routed and answering.
    kill_daemon(&lab);
    let out = lab.ok(&["up", "--api-port", "0"]);
    assert!(out.contains("restarted"), "{out}");
    assert_eq!(external_ip(&lab, "echo"), a);
    assert_eq!(external_ip(&lab, "third"), c);
    let body = wait_for(&format!("{url} after the restart"), LONG, || {
        curl_internet(&lab, &url)
    });
    assert!(body.contains("CLIENT VALUES"), "{body}");

    // Changing the type away from LoadBalancer releases the address: status cleared, route gone,
    // the address no longer answers.
    lab.kubectl_ok(&[
        "patch",
        "svc",
        "third",
        "-p",
        r#"{"spec":{"type":"ClusterIP"}}"#,
    ]);
    wait_for("third's address released", LONG, || {
        let ip = external_ip(&lab, "third");
        let route = router_route(&lab, &c);
        if ip == "<none>" && route.is_empty() {
            Ok(())
        } else {
            Err(format!("EXTERNAL-IP {ip}, route {route:?}"))
        }
    });
    assert!(curl_internet(&lab, &url).is_err());
}

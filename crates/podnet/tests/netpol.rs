//! NetworkPolicy truth tables on the lab, in the manner of the upstream network-policy e2e suite
//! (KEP-1611) and cyclonus: namespaces x, y, z, pods a, b, c in each (spread over two nodes), every
//! pod serving TCP and UDP on 80 and 81 (two podnet-echoserver containers, ports named
//! serve-80-tcp, serve-80-udp, serve-81-tcp, serve-81-udp). For each case of the list the policies
//! (and labels) are applied with the real kubectl, the full 9x9 matrix is probed for TCP 80, TCP 81
//! and UDP 80 from inside the pods' network namespaces, in parallel, and compared with the matrix the
//! case expects; a mismatch prints both matrices. A case is probed again (up to 8 times, a second
//! apart) while the agents catch up, as upstream's suite does. Then: a Service in front of a pod
//! (policies apply after its translation), the node reaching its isolated pods, `podnet policy
//! drops` and `kubectl describe networkpolicy`. One lab for the whole run (torn down in `Drop`).

mod common;

use common::kube::*;
use common::*;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NAMESPACES: [&str; 3] = ["x", "y", "z"];
const PODS: [&str; 3] = ["a", "b", "c"];
/// Connect (TCP) or answer (UDP) timeout of one probe. Allowed probes finish in milliseconds.
const PROBE: Duration = Duration::from_millis(1000);
const ATTEMPTS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Proto {
    Tcp,
    Udp,
}

type Port = (Proto, u16);
const PORTS: [Port; 3] = [(Proto::Tcp, 80), (Proto::Tcp, 81), (Proto::Udp, 80)];

/// A pod of the matrix: `x/a`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct P {
    ns: &'static str,
    pod: &'static str,
}

impl std::fmt::Display for P {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.ns, self.pod)
    }
}

fn all_pods() -> Vec<P> {
    NAMESPACES
        .iter()
        .flat_map(|ns| PODS.iter().map(move |pod| P { ns, pod }))
        .collect()
}

// YAML 1.1 reads a bare `y` as true: namespace names are quoted in every manifest.

/// Which node a pod runs on: neighbours in the matrix alternate, so every case crosses nodes and
/// stays on one.
fn node_of(i: usize) -> &'static str {
    if i.is_multiple_of(2) {
        "node1"
    } else {
        "node2"
    }
}

fn manifests() -> String {
    let mut out = String::new();
    for ns in NAMESPACES {
        out.push_str(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: '{ns}'}}\n---\n"
        ));
    }
    for (i, p) in all_pods().iter().enumerate() {
        let container = |port: u16| {
            format!(
                r#"
  - name: serve-{port}
    image: registry.k8s.io/echoserver:1.4
    imagePullPolicy: Always
    command: ["/usr/local/bin/podnet-echoserver", "--listen", "0.0.0.0:{port}"]
    ports:
    - {{name: serve-{port}-tcp, containerPort: {port}, protocol: TCP}}
    - {{name: serve-{port}-udp, containerPort: {port}, protocol: UDP}}
    readinessProbe: {{tcpSocket: {{port: {port}}}, periodSeconds: 1}}"#
            )
        };
        out.push_str(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {}, namespace: '{}', labels: {{pod: {}}}}}\nspec:\n  nodeName: {}\n  terminationGracePeriodSeconds: 1\n  containers:{}{}\n---\n",
            p.pod,
            p.ns,
            p.pod,
            node_of(i),
            container(80),
            container(81)
        ));
    }
    out
}

/// The lab's pods: address and the network namespace to probe from (by the pause process).
struct Matrix {
    ips: BTreeMap<P, Ipv4Addr>,
    netns: BTreeMap<P, std::path::PathBuf>,
}

fn pod_netns(lab: &Lab, p: P) -> std::path::PathBuf {
    for node in ["node1", "node2"] {
        let ps: serde_json::Value =
            serde_json::from_str(&lab.ok(&["node", "ps", node, "-o", "json"])).unwrap();
        for s in ps["sandboxes"].as_array().unwrap() {
            let r = &s["record"];
            if r["pod"]["namespace"] == p.ns && r["pod"]["name"] == p.pod && s["state"] == "Ready" {
                return format!("/proc/{}/ns/net", r["pause_pid"]).into();
            }
        }
    }
    panic!("no sandbox for {p}");
}

/// Whether a connection (TCP) or an answered datagram (UDP) gets through.
fn probe(netns: &std::path::Path, to: Ipv4Addr, (proto, port): Port) -> bool {
    let ns = podnet_netns::NetNs::open(netns).expect("open pod netns");
    let dst = SocketAddr::from((to, port));
    ns.run(|| match proto {
        Proto::Tcp => TcpStream::connect_timeout(&dst, PROBE).is_ok(),
        Proto::Udp => {
            let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
            s.set_read_timeout(Some(PROBE)).unwrap();
            if s.send_to(b"probe", dst).is_err() {
                return false;
            }
            let mut buf = [0u8; 512];
            s.recv_from(&mut buf).is_ok()
        }
    })
    .expect("enter pod netns")
}

type Expect = Box<dyn Fn(P, P, Port) -> bool>;

/// A case: what to do before probing, and the matrix it should produce.
struct Case {
    name: &'static str,
    /// kubectl invocations (`apply` takes the manifest on stdin: `["apply", YAML]`).
    steps: Vec<Vec<String>>,
    /// Continue from the previous case instead of starting from no policies and original labels.
    keep: bool,
    expect: Expect,
}

fn apply_yaml(yaml: &str) -> Vec<String> {
    vec!["apply".into(), yaml.into()]
}

fn kubectl_step(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn policy(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: '{ns}'}}\nspec:\n{spec}\n"
    )
}

fn is(p: P, ns: &str, pod: &str) -> bool {
    p.ns == ns && p.pod == pod
}

fn cases(m: &Matrix) -> Vec<Case> {
    let ip = |ns: &'static str, pod: &'static str| m.ips[&P { ns, pod }];
    let yb = ip("y", "b");
    let yc = ip("y", "c");
    let xa = |p: P| is(p, "x", "a");
    vec![
        Case {
            name: "no policies: everything allowed",
            steps: vec![],
            keep: false,
            expect: Box::new(|_, _, _| true),
        },
        Case {
            name: "deny all ingress in x (podSelector {}, policyTypes [Ingress])",
            steps: vec![apply_yaml(&policy(
                "x",
                "deny-ingress",
                "  podSelector: {}\n  policyTypes: [Ingress]",
            ))],
            keep: false,
            expect: Box::new(|_, t, _| t.ns != "x"),
        },
        Case {
            name: "deny all egress in x",
            steps: vec![apply_yaml(&policy(
                "x",
                "deny-egress",
                "  podSelector: {}\n  policyTypes: [Egress]",
            ))],
            keep: false,
            expect: Box::new(|f, _, _| f.ns != "x"),
        },
        Case {
            name: "deny all in x, both directions",
            steps: vec![apply_yaml(&policy(
                "x",
                "deny-all",
                "  podSelector: {}\n  policyTypes: [Ingress, Egress]",
            ))],
            keep: false,
            expect: Box::new(|f, t, _| f.ns != "x" && t.ns != "x"),
        },
        Case {
            name: "deny all ingress in x plus allow all ingress (union)",
            steps: vec![
                apply_yaml(&policy(
                    "x",
                    "deny-ingress",
                    "  podSelector: {}\n  policyTypes: [Ingress]",
                )),
                apply_yaml(&policy(
                    "x",
                    "allow-all",
                    "  podSelector: {}\n  ingress: [{}]",
                )),
            ],
            keep: false,
            expect: Box::new(|_, _, _| true),
        },
        Case {
            name: "podSelector: x/a accepts only x's pods labelled pod=b",
            steps: vec![apply_yaml(&policy(
                "x",
                "a-from-b",
                "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]",
            ))],
            keep: false,
            expect: Box::new(move |f, t, _| !xa(t) || is(f, "x", "b")),
        },
        Case {
            name: "podSelector with matchExpressions (pod In [b, c])",
            steps: vec![apply_yaml(&policy(
                "x",
                "a-from-bc",
                "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{podSelector: {matchExpressions: [{key: pod, operator: In, values: [b, c]}]}}]}]",
            ))],
            keep: false,
            expect: Box::new(move |f, t, _| !xa(t) || (f.ns == "x" && f.pod != "a")),
        },
        Case {
            name: "namespaceSelector: x/a accepts every pod of namespace y (kubernetes.io/metadata.name)",
            steps: vec![apply_yaml(&policy(
                "x",
                "a-from-y",
                "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: 'y'}}}]}]",
            ))],
            keep: false,
            expect: Box::new(move |f, t, _| !xa(t) || f.ns == "y"),
        },
        Case {
            name: "namespaceSelector AND podSelector in one peer: pods b outside x",
            steps: vec![apply_yaml(&policy(
                "x",
                "a-from-b-elsewhere",
                "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [x]}]}, podSelector: {matchLabels: {pod: b}}}]}]",
            ))],
            keep: false,
            expect: Box::new(move |f, t, _| !xa(t) || (f.ns != "x" && f.pod == "b")),
        },
        Case {
            name: "namespaceSelector OR podSelector as two peers: any pod outside x, or x/b",
            steps: vec![apply_yaml(&policy(
                "x",
                "a-from-elsewhere-or-b",
                "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [x]}]}}, {podSelector: {matchLabels: {pod: b}}}]}]",
            ))],
            keep: false,
            expect: Box::new(move |f, t, _| !xa(t) || f.ns != "x" || f.pod == "b"),
        },
        Case {
            name: "port by number: x/a accepts TCP 80 only",
            steps: vec![apply_yaml(&policy(
                "x",
                "a-80",
                "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{ports: [{port: 80}]}]",
            ))],
            keep: false,
            expect: Box::new(move |_, t, p| !xa(t) || p == (Proto::Tcp, 80)),
        },
        Case {
            name: "port by name: x/a accepts serve-81-tcp only (resolved from its containerPorts)",
            steps: vec![apply_yaml(&policy(
                "x",
                "a-named-81",
                "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{ports: [{port: serve-81-tcp}]}]",
            ))],
            keep: false,
            expect: Box::new(move |_, t, p| !xa(t) || p == (Proto::Tcp, 81)),
        },
        Case {
            name: "port range with endPort: x/a accepts TCP 81-90",
            steps: vec![apply_yaml(&policy(
                "x",
                "a-81-90",
                "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{ports: [{protocol: TCP, port: 81, endPort: 90}]}]",
            ))],
            keep: false,
            expect: Box::new(move |_, t, p| !xa(t) || p == (Proto::Tcp, 81)),
        },
        Case {
            name: "protocol: x/a accepts UDP (any port) only",
            steps: vec![apply_yaml(&policy(
                "x",
                "a-udp",
                "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{ports: [{protocol: UDP}]}]",
            ))],
            keep: false,
            expect: Box::new(move |_, t, p| !xa(t) || p.0 == Proto::Udp),
        },
        Case {
            name: "SCTP 80 only: TCP and UDP to x/a denied (SCTP is not TCP)",
            steps: vec![apply_yaml(&policy(
                "x",
                "a-sctp",
                "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{ports: [{protocol: SCTP, port: 80}]}]",
            ))],
            keep: false,
            expect: Box::new(move |_, t, _| !xa(t)),
        },
        Case {
            name: "ipBlock with except: x/a accepts 10.244.0.0/16 except y/b",
            steps: vec![apply_yaml(&policy(
                "x",
                "a-from-block",
                &format!(
                    "  podSelector: {{matchLabels: {{pod: a}}}}\n  ingress: [{{from: [{{ipBlock: {{cidr: 10.244.0.0/16, except: [{yb}/32]}}}}]}}]"
                ),
            ))],
            keep: false,
            expect: Box::new(move |f, t, _| !xa(t) || !is(f, "y", "b")),
        },
        Case {
            name: "ipBlock: an address both excepted and allowed by another peer is allowed",
            steps: vec![apply_yaml(&policy(
                "x",
                "a-from-blocks",
                &format!(
                    "  podSelector: {{matchLabels: {{pod: a}}}}\n  ingress: [{{from: [{{ipBlock: {{cidr: 10.244.0.0/16, except: [{yb}/32, {yc}/32]}}}}, {{ipBlock: {{cidr: {yb}/32}}}}]}}]"
                ),
            ))],
            keep: false,
            expect: Box::new(move |f, t, _| !xa(t) || !is(f, "y", "c")),
        },
        Case {
            name: "egress to namespace y on TCP 80 only",
            steps: vec![apply_yaml(&policy(
                "x",
                "a-to-y-80",
                "  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  egress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: 'y'}}}], ports: [{port: 80}]}]",
            ))],
            keep: false,
            expect: Box::new(move |f, t, p| !xa(f) || (t.ns == "y" && p == (Proto::Tcp, 80))),
        },
        Case {
            name: "egress to an ipBlock: x/a may reach y/c only",
            steps: vec![apply_yaml(&policy(
                "x",
                "a-to-yc",
                &format!(
                    "  podSelector: {{matchLabels: {{pod: a}}}}\n  policyTypes: [Egress]\n  egress: [{{to: [{{ipBlock: {{cidr: {yc}/32}}}}]}}]"
                ),
            ))],
            keep: false,
            expect: Box::new(move |f, t, _| !xa(f) || is(t, "y", "c")),
        },
        Case {
            name: "egress by port name: serve-81-tcp, resolved on each destination",
            steps: vec![apply_yaml(&policy(
                "x",
                "a-to-named",
                "  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  egress: [{ports: [{port: serve-81-tcp}]}]",
            ))],
            keep: false,
            expect: Box::new(move |f, _, p| !xa(f) || p == (Proto::Tcp, 81)),
        },
        Case {
            name: "policyTypes omitted with egress rules: Ingress and Egress (ingress denied too)",
            steps: vec![apply_yaml(&policy(
                "x",
                "a-egress-to-z",
                "  podSelector: {matchLabels: {pod: a}}\n  egress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: z}}}]}]",
            ))],
            keep: false,
            expect: Box::new(move |f, t, _| !xa(t) && (!xa(f) || t.ns == "z")),
        },
        Case {
            name: "policyTypes [Egress] ignores ingress rules",
            steps: vec![apply_yaml(&policy(
                "x",
                "a-egress-only",
                "  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  ingress: [{from: [{podSelector: {matchLabels: {pod: nobody}}}]}]\n  egress: [{}]",
            ))],
            keep: false,
            expect: Box::new(|_, _, _| true),
        },
        Case {
            name: "union of two policies on x/a: from y/a, and from z/b",
            steps: vec![
                apply_yaml(&policy(
                    "x",
                    "a-from-ya",
                    "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: 'y'}}, podSelector: {matchLabels: {pod: a}}}]}]",
                )),
                apply_yaml(&policy(
                    "x",
                    "a-from-zb",
                    "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: z}}, podSelector: {matchLabels: {pod: b}}}]}]",
                )),
            ],
            keep: false,
            expect: Box::new(move |f, t, _| !xa(t) || is(f, "y", "a") || is(f, "z", "b")),
        },
        Case {
            name: "the client side denies even when the server side allows",
            steps: vec![
                apply_yaml(&policy(
                    "y",
                    "deny-egress",
                    "  podSelector: {}\n  policyTypes: [Egress]",
                )),
                apply_yaml(&policy(
                    "x",
                    "allow-all",
                    "  podSelector: {}\n  ingress: [{}]",
                )),
            ],
            keep: false,
            expect: Box::new(|f, _, _| f.ns != "y"),
        },
        Case {
            name: "a policy updated: x/a from pod=b, then from pod=c instead",
            steps: vec![
                apply_yaml(&policy(
                    "x",
                    "a-from",
                    "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]",
                )),
                apply_yaml(&policy(
                    "x",
                    "a-from",
                    "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{podSelector: {matchLabels: {pod: c}}}]}]",
                )),
            ],
            keep: false,
            expect: Box::new(move |f, t, _| !xa(t) || is(f, "x", "c")),
        },
        Case {
            name: "a pod relabelled: x/b becomes pod=c and is let in",
            steps: vec![kubectl_step(&[
                "label",
                "pod",
                "b",
                "-n",
                "x",
                "pod=c",
                "--overwrite",
            ])],
            keep: true,
            expect: Box::new(move |f, t, _| !xa(t) || (f.ns == "x" && f.pod != "a")),
        },
        Case {
            name: "a namespace labelled: x/a from namespaces team=blue, then z gets team=blue",
            steps: vec![
                apply_yaml(&policy(
                    "x",
                    "a-from-blue",
                    "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {team: blue}}}]}]",
                )),
                kubectl_step(&["label", "namespace", "z", "team=blue"]),
            ],
            keep: false,
            expect: Box::new(move |f, t, _| !xa(t) || f.ns == "z"),
        },
        Case {
            name: "policies deleted: everything allowed again",
            steps: vec![kubectl_step(&[
                "delete",
                "networkpolicies",
                "--all",
                "--all-namespaces",
            ])],
            keep: true,
            expect: Box::new(|_, _, _| true),
        },
    ]
}

fn run_step(lab: &Lab, step: &[String]) {
    if step[0] == "apply" {
        apply(lab, &step[1]);
    } else {
        let args: Vec<&str> = step.iter().map(String::as_str).collect();
        lab.kubectl_ok(&args);
    }
}

/// Back to no policies (and the original labels, when a case changed them).
fn reset(lab: &Lab, labels: bool) {
    lab.kubectl_ok(&["delete", "networkpolicies", "--all", "--all-namespaces"]);
    if !labels {
        return;
    }
    for ns in NAMESPACES {
        lab.kubectl_ok(&["label", "namespace", ns, "team-"]);
        for pod in PODS {
            lab.kubectl_ok(&[
                "label",
                "pod",
                pod,
                "-n",
                ns,
                &format!("pod={pod}"),
                "--overwrite",
            ]);
        }
    }
}

/// Every pair, every port, at once; results by (from, to, port).
fn probe_all(m: &Arc<Matrix>) -> BTreeMap<(P, P, Port), bool> {
    let mut handles = Vec::new();
    for f in all_pods() {
        for t in all_pods() {
            for port in PORTS {
                let m = m.clone();
                handles.push(std::thread::spawn(move || {
                    ((f, t, port), probe(&m.netns[&f], m.ips[&t], port))
                }));
            }
        }
    }
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// The expected and the probed matrices side by side, per port: `.` allowed, `x` denied, and in
/// the probed one `A` (allowed, should be denied) or `D` (denied, should be allowed).
fn render(got: &BTreeMap<(P, P, Port), bool>, expect: &Expect) -> String {
    let pods = all_pods();
    let mut out = String::new();
    for port in PORTS {
        out.push_str(&format!("{port:?}   expected{}probed\n", " ".repeat(24)));
        let header: String = pods.iter().map(|p| format!("{p} ")).collect();
        out.push_str(&format!("      {header}    {header}\n"));
        for f in &pods {
            let mut want_row = String::new();
            let mut got_row = String::new();
            for t in &pods {
                let w = *f == *t || expect(*f, *t, port);
                let g = got[&(*f, *t, port)];
                want_row.push_str(if w { " .  " } else { " x  " });
                got_row.push_str(match (w, g) {
                    (true, true) => " .  ",
                    (false, false) => " x  ",
                    (false, true) => " A  ",
                    (true, false) => " D  ",
                });
            }
            out.push_str(&format!("  {f} {want_row}    {got_row}\n"));
        }
    }
    out
}

/// Probes until the matrix matches the case (bounded); returns the attempts it took.
fn verify(m: &Arc<Matrix>, case: &Case) -> Result<usize, String> {
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let got = probe_all(m);
        let wrong = got
            .iter()
            .filter(|((f, t, port), g)| (*f == *t || (case.expect)(*f, *t, *port)) != **g)
            .count();
        if wrong == 0 {
            return Ok(attempt);
        }
        last = format!(
            "{wrong} of {} probes differ after {attempt} attempts\n{}",
            got.len(),
            render(&got, &case.expect)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    Err(last)
}

#[test]
fn truth_tables() {
    let started = Instant::now();
    let lab = Lab::up(&["--nodes", "2"]);
    apply(&lab, &manifests());
    let mut ips = BTreeMap::new();
    let mut netns = BTreeMap::new();
    for p in all_pods() {
        let pod = wait_pod_ready(&lab, p.ns, p.pod);
        ips.insert(p, pod["status"]["podIP"].as_str().unwrap().parse().unwrap());
        netns.insert(p, pod_netns(&lab, p));
    }
    let m = Arc::new(Matrix { ips, netns });
    eprintln!("lab and 9 pods ready after {:?}", started.elapsed());

    let mut report = Vec::new();
    let mut failures = Vec::new();
    let mut relabelled = false;
    for case in cases(&m) {
        if !case.keep {
            reset(&lab, std::mem::take(&mut relabelled));
        }
        for step in &case.steps {
            relabelled |= step[0] == "label";
            run_step(&lab, step);
        }
        let t = Instant::now();
        match verify(&m, &case) {
            Ok(n) => report.push(format!(
                "ok    {} ({n} probe round{}, {:.1} s)",
                case.name,
                if n == 1 { "" } else { "s" },
                t.elapsed().as_secs_f64()
            )),
            Err(e) => {
                report.push(format!("FAIL  {}", case.name));
                failures.push(format!("case {:?}: {e}", case.name));
            }
        }
    }
    eprintln!(
        "{} cases, 243 probes each (9x9 pods x TCP 80, TCP 81, UDP 80):\n{}",
        report.len(),
        report.join("\n")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    beyond_the_matrix(&lab, &m);
    eprintln!("truth tables done in {:?}", started.elapsed());
}

/// Services, the node, `podnet policy drops` and `kubectl describe`, on the same lab.
fn beyond_the_matrix(lab: &Lab, m: &Arc<Matrix>) {
    reset(lab, true);
    let xa = P { ns: "x", pod: "a" };
    let xb = P { ns: "x", pod: "b" };
    let yb = P { ns: "y", pod: "b" };
    // A Service in front of x/a; x/a accepts only x/b. The policy sees the connection after the
    // Service's DNAT, with the client's own address.
    apply(
        lab,
        "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: x}\nspec:\n  selector: {pod: a}\n  ports: [{port: 8080, targetPort: 80}]\n",
    );
    apply(
        lab,
        &policy(
            "x",
            "a-from-b",
            "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]",
        ),
    );
    let svc: Ipv4Addr = lab
        .kubectl_ok(&[
            "get",
            "svc",
            "a",
            "-n",
            "x",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ])
        .parse()
        .unwrap();
    wait_for("x/b through the Service allowed, y/b denied", LONG, || {
        let from_xb = probe(&m.netns[&xb], svc, (Proto::Tcp, 8080));
        let from_yb = probe(&m.netns[&yb], svc, (Proto::Tcp, 8080));
        if from_xb && !from_yb {
            Ok(())
        } else {
            Err(format!("x/b allowed: {from_xb}, y/b allowed: {from_yb}"))
        }
    });

    // y/b, denied, pretends to be x/b, allowed (NET_RAW or NET_ADMIN in a pod is enough): its port
    // on its node lets only y/b's own address out (podnet-cni spoofCheck, on in the lab), so the
    // spoofed packets (or the ARP asking for the way out with x/b's address) are dropped and
    // counted there.
    let yb_node = get_json(lab, &["pod", "b", "-n", "y"]).unwrap()["spec"]["nodeName"]
        .as_str()
        .unwrap()
        .to_string();
    let before = spoof_drops(&lab.node_netns(&yb_node));
    let yb_ns = podnet_netns::NetNs::open(&m.netns[&yb]).expect("open y/b's netns");
    let stolen = m.ips[&xb];
    let added = yb_ns
        .run(|| {
            let added = std::process::Command::new("ip")
                .args(["addr", "add", &format!("{stolen}/32"), "dev", "eth0"])
                .status()
                .is_ok_and(|s| s.success());
            // UDP: one-way is enough (a reply would go to the real x/b anyway).
            let s = UdpSocket::bind((stolen, 0)).expect("bind the stolen address");
            for _ in 0..3 {
                let _ = s.send_to(b"spoofed", (m.ips[&xa], 80));
                std::thread::sleep(Duration::from_millis(100));
            }
            added
        })
        .expect("enter y/b's netns");
    assert!(added, "add {stolen} to y/b's eth0");
    let after = spoof_drops(&lab.node_netns(&yb_node));
    yb_ns
        .run(|| {
            std::process::Command::new("ip")
                .args(["addr", "del", &format!("{stolen}/32"), "dev", "eth0"])
                .status()
        })
        .expect("enter y/b's netns")
        .expect("give x/b's address back");
    assert!(
        after > before,
        "no spoofed frame counted on {yb_node}: {before} -> {after}"
    );

    // The node reaches its isolated pod (kubelet's probes): x/a stays Ready under the policy, and a
    // connection from its node's own namespace gets through.
    let a = get_json(lab, &["pod", "a", "-n", "x"]).unwrap();
    assert_eq!(condition(&a, "Ready").as_deref(), Some("True"));
    let node = a["spec"]["nodeName"].as_str().unwrap();
    assert!(
        probe(&lab.node_netns(node), m.ips[&xa], (Proto::Tcp, 80)),
        "node {node} -> x/a"
    );

    // What was denied, readably. The log is written by the agent's NFLOG listener a moment after the
    // drop, and rate-limited per pod: probe again until the line is there (bounded).
    // The log keeps earlier cases' drops too (y/b was denied by other policies before): the line
    // looked for is this policy's TCP drop.
    let this_drop = |l: &str| {
        l.contains(" x/a ")
            && l.contains(&format!("{}:", m.ips[&yb]))
            && l.contains("x/a-from-b")
            && l.contains("TCP")
    };
    let drops = wait_for("the drop from y/b to x/a in the log", LONG, || {
        let _ = probe(&m.netns[&yb], svc, (Proto::Tcp, 8080));
        let drops = lab.ok(&["policy", "drops", node]);
        if drops.lines().any(this_drop) {
            Ok(drops)
        } else {
            Err(drops)
        }
    });
    let counted = drops
        .lines()
        .find(|l| l.trim_start().starts_with("x/a-from-b") && l.contains("ingress"))
        .unwrap_or_else(|| panic!("no counter line for x/a-from-b:\n{drops}"));
    let packets: u64 = counted.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(packets > 0, "{drops}");
    let logged = drops
        .lines()
        .find(|l| this_drop(l))
        .unwrap_or_else(|| panic!("no logged drop from y/b to x/a:\n{drops}"));
    assert!(
        logged.contains("x/a-from-b") && logged.contains("TCP"),
        "{logged}"
    );
    eprintln!("podnet policy drops {node}:\n{drops}");

    // kubectl's own describer, against our API server.
    let described = lab.kubectl_ok(&["describe", "networkpolicy", "a-from-b", "-n", "x"]);
    for want in [
        "Name:         a-from-b",
        "Namespace:    x",
        "PodSelector:     pod=a",
        "Allowing ingress traffic:",
        "From:",
        "PodSelector: pod=b",
        "Not affecting egress traffic",
        "Policy Types: Ingress",
    ] {
        assert!(
            described.contains(want),
            "missing {want:?} in:\n{described}"
        );
    }
}

/// Frames dropped so far by podnet-cni's anti-spoofing on a node (every rule's counter).
fn spoof_drops(node_netns: &std::path::Path) -> u64 {
    let ns = podnet_netns::NetNs::open(node_netns).expect("open node netns");
    let out = ns
        .run(|| {
            std::process::Command::new("nft")
                .args(["list", "chain", "bridge", "podnet-cni", "antispoof-2"])
                .output()
                .expect("run nft")
        })
        .expect("enter node netns");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split("counter packets ").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

//! NetworkPolicy enforcement (podnet-agent) against kube-router's nftables NetworkPolicy layout,
//! regenerated.
//!
//! kube-router (cloudnativelabs/kube-router, pkg/controllers/netpol/npc_nftables.go) is the current
//! upstream nftables implementation of NetworkPolicy that can be rebuilt here (it cannot be
//! installed: no container registry). podnet's transactions go as netlink batches, as the agent
//! sends them; the anchor's through `nft -f`, as kube-router's go. Its layout, as this benchmark
//! writes it in the same run: table `ip kube-router-filter-ipv4`; one chain per policy named with the sync's
//! version (`KUBE-NWPLCY-<hash>`), with per-rule source and destination sets refilled on every
//! sync, rules that set the mark 0x10000 and return; one `KUBE-POD-FW-<hash>` chain per local pod
//! (common chain, node exemption, a jump per policy, default chain, log and reject when unmarked);
//! top-level INPUT/FORWARD/OUTPUT chains with two to three rules per local pod; every sync is a full
//! one: a transaction per policy, one per pod, one for the top level, then garbage collection (list
//! chains and sets, flush the stale chains, delete each in its own transaction). A change is another
//! full sync.
//!
//! The cluster: 1000 pods in 10 namespaces, all on the benchmark's node (the worst case for a node:
//! it programs every policy), 1000 policies (one per app, each selecting one pod; peers by pod
//! selector, by namespace and pod selector together, ports by number and range; one in ten adds an
//! ipBlock with an exception, one in four egress rules, one in twenty a named port).
//!
//! Measured: programming all 1000 from scratch; one change with all 1000 present (a policy edited,
//! a pod relabelled, a pod added); per-connection latency (TCP connect, one byte each way, close)
//! between two real pods the policies isolate, with podnet's table, with kube-router's and with none.
//!
//! Usage: policy-bench [--policies N (1000)] [--changes C (20)] [--connections K (500)] [--rounds R (20)]
//!        [--nodes N (10)] [--anchor 0|1 (1)]   (root; see bench/policy.sh)

use anyhow::{Context, Result, bail};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use podnet_agent::policy::model::{self, Key, Labels, NamedPort, PodInfo, Policy, Protocol};
use podnet_agent::policy::nft::Base;
use podnet_agent::policy::sync::Syncer;
use podnet_agent::proxy::sync::Apply;
use podnet_bench::{arg, ms, percentile};
use podnet_testkit::TestNs;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

const TABLE: &str = "podnet-policy";
const NODE: &str = "n1";
const NAMESPACES: usize = 10;
const SERVER: &str = "10.244.0.10";
const CLIENT: &str = "10.244.0.11";

fn ns_name(k: usize) -> String {
    format!("ns-{k}")
}

fn pod_ip(k: usize, i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, k as u8, 10 + i as u8)
}

/// The cluster: `per_ns` pods per namespace, app=app-<i> each, and one policy per pod.
struct Cluster {
    per_ns: usize,
    namespaces: Vec<(String, Labels)>,
    pods: Vec<(Key, PodInfo)>,
    policies: Vec<Policy>,
}

fn labels(v: serde_json::Value) -> Labels {
    v.as_object().cloned().unwrap_or_default()
}

fn pod(k: usize, i: usize, app: usize, node: &str) -> (Key, PodInfo) {
    (
        Key::new(ns_name(k), format!("pod-{i}")),
        PodInfo {
            uid: Default::default(),
            namespace: ns_name(k),
            ip: pod_ip(k, i),
            node: node.into(),
            labels: labels(json!({"app": format!("app-{app}"), "tier": format!("t{}", i % 5)})),
            ports: vec![NamedPort {
                name: "http".into(),
                protocol: Protocol::Tcp,
                port: 8080,
            }],
        },
    )
}

/// Policy `j` of namespace `k`; `port` is its first port (edits change it).
fn policy(k: usize, j: usize, per_ns: usize, port: u16) -> Policy {
    let mut ingress = vec![json!({
        "from": [
            {"podSelector": {"matchLabels": {"app": format!("app-{}", (j + 1) % per_ns)}}},
            {"namespaceSelector": {"matchLabels": {"team": format!("team-{}", j % 3)}},
             "podSelector": {"matchLabels": {"tier": format!("t{}", j % 5)}}},
        ],
        "ports": [{"port": port}, {"port": 9000, "endPort": 9100}],
    })];
    if j.is_multiple_of(10) {
        ingress.push(
            json!({"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.244.0.0/16"]}}],
                            "ports": [{"port": 443}]}),
        );
    }
    if j % 20 == 5 {
        ingress.push(json!({"ports": [{"port": "http"}]}));
    }
    let mut spec = json!({
        "podSelector": {"matchLabels": {"app": format!("app-{j}")}},
        "ingress": ingress,
    });
    if j % 4 == 1 {
        spec["policyTypes"] = json!(["Ingress", "Egress"]);
        spec["egress"] = json!([
            {"to": [{"podSelector": {"matchLabels": {"app": format!("app-{}", (j + per_ns - 1) % per_ns)}}}],
             "ports": [{"port": 8080}]},
            {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
             "ports": [{"protocol": "UDP", "port": 53}]},
        ]);
    }
    let obj: NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"namespace": ns_name(k), "name": format!("pol-{j}")},
        "spec": spec,
    }))
    .expect("a NetworkPolicy");
    model::policy(&obj).expect("named")
}

/// `nodes` = 1: every pod on this node (the worst case); more: pods spread round-robin.
fn cluster(policies: usize, nodes: usize) -> Cluster {
    let per_ns = policies.div_ceil(NAMESPACES).max(2);
    let namespaces = (0..NAMESPACES)
        .map(|k| {
            (
                ns_name(k),
                labels(json!({"kubernetes.io/metadata.name": ns_name(k), "team": format!("team-{}", k % 3)})),
            )
        })
        .collect();
    let mut pods = Vec::new();
    let mut pols = Vec::new();
    for k in 0..NAMESPACES {
        for i in 0..per_ns {
            let node = if (k * per_ns + i).is_multiple_of(nodes) {
                NODE
            } else {
                "elsewhere"
            };
            pods.push(pod(k, i, i, node));
            if pols.len() < policies {
                pols.push(policy(k, i, per_ns, 8080));
            }
        }
    }
    Cluster {
        per_ns,
        namespaces,
        pods,
        policies: pols,
    }
}

fn feed(s: &mut Syncer, c: &Cluster) {
    for (n, l) in &c.namespaces {
        s.set_namespace(n, Some(l.clone()));
    }
    for (k, p) in &c.pods {
        s.set_pod(k.clone(), Some(p.clone()));
    }
    for p in &c.policies {
        s.set_policy(p.key.clone(), Some(p.clone()));
    }
}

/// Applies as the agent does (netlink batches; strict: no fallback to `nft`) and remembers how long
/// the last application took.
struct Timed(
    podnet_agent::proxy::sync::Netlink,
    std::sync::Arc<std::sync::Mutex<Duration>>,
);

impl Apply for Timed {
    fn apply(&mut self, script: &str) -> Result<(), podnet_nft::Error> {
        let t = Instant::now();
        let r = self.0.apply(script);
        *self.1.lock().unwrap() = t.elapsed();
        r
    }
}

struct Discard;

impl Apply for Discard {
    fn apply(&mut self, _: &str) -> Result<(), podnet_nft::Error> {
        Ok(())
    }
}

fn nft_in(ns: &TestNs, script: &str) -> Result<()> {
    let mut child = ns
        .command("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("run nft")?;
    child.stdin.take().unwrap().write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "nft -f: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
        );
    }
    Ok(())
}

/// kube-router's nftables layout and sync, regenerated (see the module comment).
mod kube_router {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    const T: &str = "ip kube-router-filter-ipv4";
    const TOP: [(&str, &str); 3] = [
        ("KUBE-ROUTER-INPUT", "input"),
        ("KUBE-ROUTER-FORWARD", "forward"),
        ("KUBE-ROUTER-OUTPUT", "output"),
    ];

    fn h(parts: &[&str]) -> String {
        // kube-router: base32(sha256(...))[:16]; only the length matters here.
        let b: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
        format!("{:016X}", podnet_types::names::fnv1a64(&b))
    }

    /// Pods matched by a peer of `p` (what kube-router's evalPodPeer lists into a rule's set).
    fn peer_ips(c: &Cluster, peers: &[model::Peer]) -> Vec<Ipv4Addr> {
        let ns_labels = |ns: &str| {
            c.namespaces
                .iter()
                .find(|(n, _)| n == ns)
                .map(|(_, l)| l.clone())
                .unwrap_or_default()
        };
        c.pods
            .iter()
            .filter(|(_, pod)| {
                peers.iter().any(|peer| match peer {
                    model::Peer::Pods(pp) => pp.matches(pod, &ns_labels(&pod.namespace)),
                    _ => false,
                })
            })
            .map(|(_, pod)| pod.ip)
            .collect()
    }

    fn set(tx: &mut String, name: &str, ips: &[String], interval: bool) {
        let flags = if interval { " flags interval ;" } else { "" };
        tx.push_str(&format!(
            "add set {T} {name} {{ type ipv4_addr ;{flags} comment \"netpol set\" ; }}\nflush set {T} {name}\n"
        ));
        if !ips.is_empty() {
            tx.push_str(&format!(
                "add element {T} {name} {{ {} }}\n",
                ips.join(", ")
            ));
        }
    }

    fn mark_rule(tx: &mut String, chain: &str, src: &str, dst: &str, port: &model::Port) {
        let mut r = String::new();
        if !src.is_empty() {
            r.push_str(&format!("ip saddr @{src} "));
        }
        if !dst.is_empty() {
            r.push_str(&format!("ip daddr @{dst} "));
        }
        match port {
            model::Port::Range(p, a, b) if a == b => r.push_str(&format!("{} dport {a} ", p.nft())),
            model::Port::Range(p, a, b) => r.push_str(&format!("{} dport {a}-{b} ", p.nft())),
            model::Port::Protocol(p) => r.push_str(&format!("meta l4proto {} ", p.nft())),
            _ => {}
        }
        tx.push_str(&format!(
            "add rule {T} {chain} {r}counter meta mark set meta mark or 0x10000 return\n"
        ));
    }

    pub struct Sync {
        pub transactions: usize,
        pub elapsed: Duration,
    }

    /// One full sync, as kube-router does on every change.
    pub fn full_sync(ns: &TestNs, c: &Cluster, version: u64) -> Result<Sync> {
        let start = Instant::now();
        let v = version.to_string();
        let mut n = 0usize;
        let mut run = |tx: &str| -> Result<()> {
            n += 1;
            nft_in(ns, tx)
        };
        run(&format!(
            "add table {T} {{ comment \"rules for kube-router-filter-ipv4\" ; }}\n\
             add chain {T} KUBE-NWPLCY-DEFAULT\nflush chain {T} KUBE-NWPLCY-DEFAULT\n\
             add rule {T} KUBE-NWPLCY-DEFAULT counter meta mark set mark or 0x10000\n"
        ))?;
        run(&format!(
            "add chain {T} KUBE-NWPLCY-COMMON\nflush chain {T} KUBE-NWPLCY-COMMON\n\
             add rule {T} KUBE-NWPLCY-COMMON ct state invalid counter drop\n\
             add rule {T} KUBE-NWPLCY-COMMON ct state established,related counter accept\n\
             add rule {T} KUBE-NWPLCY-COMMON icmp type echo-request counter accept\n\
             add rule {T} KUBE-NWPLCY-COMMON icmp type destination-unreachable counter accept\n\
             add rule {T} KUBE-NWPLCY-COMMON icmp type time-exceeded counter accept\n"
        ))?;
        run(&format!(
            "add chain {T} KUBE-NWPLCY-TAIL\nflush chain {T} KUBE-NWPLCY-TAIL\n"
        ))?;
        let mut active_chains = BTreeSet::new();
        let mut active_sets = BTreeSet::new();
        let mut by_pod: BTreeMap<Ipv4Addr, Vec<(String, bool, bool)>> = BTreeMap::new();
        for p in &c.policies {
            let (pns, pname) = (p.key.namespace.as_str(), p.key.name.as_str());
            let chain = format!("KUBE-NWPLCY-{}", h(&[pns, pname, &v, "IPv4"]));
            active_chains.insert(chain.clone());
            let targets: Vec<String> = c
                .pods
                .iter()
                .filter(|(_, pod)| p.applies_to(pod))
                .map(|(_, pod)| pod.ip.to_string())
                .collect();
            let mut tx = format!("add chain {T} {chain}\nflush chain {T} {chain}\n");
            let dst = format!("KUBE-DST-{}", h(&[pns, pname, "IPv4"]));
            if let Some(rules) = &p.ingress {
                active_sets.insert(dst.clone());
                set(&mut tx, &dst, &targets, false);
                for (i, r) in rules.iter().enumerate() {
                    let ports: Vec<model::Port> = r.ports.clone().unwrap_or_default();
                    let pods: Vec<model::Peer> = r
                        .peers
                        .iter()
                        .flatten()
                        .filter(|x| matches!(x, model::Peer::Pods(_)))
                        .cloned()
                        .collect();
                    if !pods.is_empty() {
                        let src = format!(
                            "KUBE-SRC-{}",
                            h(&[pns, pname, "ingressrule", &i.to_string(), "IPv4"])
                        );
                        active_sets.insert(src.clone());
                        let ips: Vec<String> =
                            peer_ips(c, &pods).iter().map(|i| i.to_string()).collect();
                        set(&mut tx, &src, &ips, false);
                        for port in &ports {
                            mark_rule(&mut tx, &chain, &src, &dst, port);
                        }
                    }
                    for peer in r.peers.iter().flatten() {
                        if let model::Peer::Block(b) = peer {
                            let bs = format!(
                                "KUBE-SRC-{}",
                                h(&[pns, pname, "ingressrule", &i.to_string(), "ipblock"])
                            );
                            let ex = format!(
                                "KUBE-SRC-{}",
                                h(&[pns, pname, "ingressrule", &i.to_string(), "except"])
                            );
                            active_sets.insert(bs.clone());
                            active_sets.insert(ex.clone());
                            set(&mut tx, &bs, &[b.cidr.to_string()], true);
                            set(
                                &mut tx,
                                &ex,
                                &b.except.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                                true,
                            );
                            let sub = format!(
                                "KUBE-NWPLCY-{}",
                                h(&[pns, pname, &i.to_string(), "ipblock", &v])
                            );
                            active_chains.insert(sub.clone());
                            tx.push_str(&format!(
                                "add chain {T} {sub}\nflush chain {T} {sub}\n\
                                add rule {T} {sub} ip saddr @{ex} counter return\n\
                                add rule {T} {chain} counter jump {sub}\n"
                            ));
                            for port in &ports {
                                mark_rule(&mut tx, &sub, &bs, &dst, port);
                            }
                        }
                    }
                    if r.peers.is_none() {
                        let mut named = 0;
                        for port in &ports {
                            if let model::Port::Named(proto, name) = port {
                                let np = format!(
                                    "KUBE-DST-{}",
                                    h(&[
                                        pns,
                                        pname,
                                        "namedport",
                                        &i.to_string(),
                                        &named.to_string()
                                    ])
                                );
                                named += 1;
                                active_sets.insert(np.clone());
                                let ips: Vec<String> = c
                                    .pods
                                    .iter()
                                    .filter(|(_, pod)| {
                                        p.applies_to(pod) && pod.named_port(name, *proto).is_some()
                                    })
                                    .map(|(_, pod)| pod.ip.to_string())
                                    .collect();
                                set(&mut tx, &np, &ips, false);
                                mark_rule(
                                    &mut tx,
                                    &chain,
                                    "",
                                    &np,
                                    &model::Port::Range(*proto, 8080, 8080),
                                );
                            } else {
                                mark_rule(&mut tx, &chain, "", &dst, port);
                            }
                        }
                    }
                }
            }
            if let Some(rules) = &p.egress {
                let src = format!("KUBE-SRC-{}", h(&[pns, pname, "IPv4"]));
                active_sets.insert(src.clone());
                set(&mut tx, &src, &targets, false);
                for (i, r) in rules.iter().enumerate() {
                    let pods: Vec<model::Peer> = r.peers.iter().flatten().cloned().collect();
                    let dsts = format!(
                        "KUBE-DST-{}",
                        h(&[pns, pname, "egressrule", &i.to_string(), "IPv4"])
                    );
                    active_sets.insert(dsts.clone());
                    let ips: Vec<String> =
                        peer_ips(c, &pods).iter().map(|i| i.to_string()).collect();
                    set(&mut tx, &dsts, &ips, false);
                    for port in r.ports.iter().flatten() {
                        mark_rule(&mut tx, &chain, &src, &dsts, port);
                    }
                }
            }
            run(&tx)?;
            for t in &targets {
                by_pod.entry(t.parse().unwrap()).or_default().push((
                    chain.clone(),
                    p.ingress.is_some(),
                    p.egress.is_some(),
                ));
            }
        }
        let mut jumps = Vec::new();
        for (key, pod) in &c.pods {
            let fw = format!("KUBE-POD-FW-{}", h(&[&key.namespace, &key.name, &v]));
            active_chains.insert(fw.clone());
            let ip = pod.ip;
            let mut tx = format!(
                "add chain {T} {fw}\nflush chain {T} {fw}\n\
                 add rule {T} {fw} counter jump KUBE-NWPLCY-COMMON\n\
                 add rule {T} {fw} fib saddr type local ip daddr {ip} counter accept\n"
            );
            let (mut has_in, mut has_eg) = (false, false);
            for (chain, i, e) in by_pod.get(&ip).into_iter().flatten() {
                has_in |= *i;
                has_eg |= *e;
                let m = match (i, e) {
                    (true, true) => String::new(),
                    (true, false) => format!("ip daddr {ip} "),
                    _ => format!("ip saddr {ip} "),
                };
                tx.push_str(&format!("add rule {T} {fw} {m}counter jump {chain}\n"));
            }
            if !has_eg {
                tx.push_str(&format!(
                    "add rule {T} {fw} ip saddr {ip} counter jump KUBE-NWPLCY-DEFAULT\n"
                ));
            }
            if !has_in {
                tx.push_str(&format!(
                    "add rule {T} {fw} ip daddr {ip} counter jump KUBE-NWPLCY-DEFAULT\n"
                ));
            }
            tx.push_str(&format!(
                "add rule {T} {fw} meta mark and 0x10000 == 0x0 limit rate 10/minute burst 10 packets log group 100\n\
                 add rule {T} {fw} meta mark and 0x10000 == 0x0 counter reject\n\
                 add rule {T} {fw} meta mark set meta mark and 0xfffeffff\n\
                 add rule {T} {fw} meta mark set meta mark or 0x20000\n"
            ));
            run(&tx)?;
            jumps.push((ip, fw));
        }
        let mut top = String::new();
        for (chain, hook) in TOP {
            top.push_str(&format!(
                "add chain {T} {chain} {{ type filter hook {hook} priority filter ; }}\nflush chain {T} {chain}\n"
            ));
        }
        for (ip, fw) in &jumps {
            top.push_str(&format!(
                "add rule {T} KUBE-ROUTER-FORWARD ip daddr {ip} counter jump {fw}\n"
            ));
            top.push_str(&format!(
                "add rule {T} KUBE-ROUTER-OUTPUT ip daddr {ip} counter jump {fw}\n"
            ));
            for (chain, _) in TOP {
                top.push_str(&format!(
                    "add rule {T} {chain} ip saddr {ip} counter jump {fw}\n"
                ));
            }
        }
        for (chain, _) in TOP {
            top.push_str(&format!(
                "add rule {T} {chain} counter jump KUBE-NWPLCY-TAIL\n"
            ));
            top.push_str(&format!(
                "add rule {T} {chain} meta mark and 0x20000 == 0x20000 counter accept\n"
            ));
        }
        run(&top)?;
        // Garbage collection: pod chains, then policy chains, then sets.
        for prefix in ["KUBE-POD-FW-", "KUBE-NWPLCY-"] {
            let chains = list(ns, "chains")?;
            let fixed = [
                "KUBE-NWPLCY-DEFAULT",
                "KUBE-NWPLCY-COMMON",
                "KUBE-NWPLCY-TAIL",
            ];
            let stale: Vec<String> = chains
                .into_iter()
                .filter(|c| {
                    c.starts_with(prefix)
                        && !fixed.contains(&c.as_str())
                        && !active_chains.contains(c)
                })
                .collect();
            if !stale.is_empty() {
                run(&stale
                    .iter()
                    .map(|c| format!("flush chain {T} {c}\n"))
                    .collect::<String>())?;
                for c in &stale {
                    run(&format!("delete chain {T} {c}\n"))?;
                }
            }
        }
        for s in list(ns, "sets")? {
            if (s.starts_with("KUBE-SRC-") || s.starts_with("KUBE-DST-"))
                && !active_sets.contains(&s)
            {
                run(&format!("delete set {T} {s}\n"))?;
            }
        }
        Ok(Sync {
            transactions: n + 2,
            elapsed: start.elapsed(),
        })
    }

    /// `nft --json list chains|sets` of the table (knftables' List).
    fn list(ns: &TestNs, what: &str) -> Result<Vec<String>> {
        let out = ns
            .command("nft")
            .args(["--json", "list", what, "ip"])
            .stdout(Stdio::piped())
            .output()?;
        if !out.status.success() {
            bail!("nft list {what}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let kind = &what[..what.len() - 1];
        Ok(v["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.get(kind)?.get("name")?.as_str().map(String::from))
            .collect())
    }

    pub fn table_text(ns: &TestNs) -> String {
        ns.sh("nft", &["list", "table", "ip", "kube-router-filter-ipv4"])
    }
}

/// A node with two real pods on a bridge: the client and the server the policies isolate.
struct Lab {
    node: TestNs,
    client: TestNs,
    _server: TestNs,
}

fn lab() -> Lab {
    let node = TestNs::new("node");
    node.sh("ip", &["link", "add", "br0", "type", "bridge"]);
    node.sh("ip", &["addr", "add", "10.244.0.1/16", "dev", "br0"]);
    node.sh("ip", &["link", "set", "br0", "up"]);
    node.sh("ip", &["link", "set", "lo", "up"]);
    assert_eq!(
        node.sh("sysctl", &["-n", "net.bridge.bridge-nf-call-iptables"])
            .trim(),
        "1",
        "br_netfilter must pass bridged IPv4 through nftables"
    );
    let mut pods = Vec::new();
    for (i, addr) in [CLIENT, SERVER].iter().enumerate() {
        let pod = TestNs::new(&format!("pod{i}"));
        let host_if = format!("veth{i}");
        node.sh(
            "ip",
            &[
                "link",
                "add",
                &host_if,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                pod.name(),
            ],
        );
        node.sh("ip", &["link", "set", &host_if, "master", "br0", "up"]);
        pod.sh("ip", &["addr", "add", &format!("{addr}/16"), "dev", "eth0"]);
        pod.sh("ip", &["link", "set", "eth0", "up"]);
        pod.sh("ip", &["link", "set", "lo", "up"]);
        pods.push(pod);
    }
    // A node as podnet runs one: the service proxy's table is there (no Service needed), so conntrack
    // and NAT work on every packet whatever the policies; "no policy" means exactly that, not "no
    // conntrack".
    let mut proxy = podnet_agent::proxy::sync::Syncer::new(podnet_agent::proxy::nft::Base::new(
        "podnet-services",
        vec!["10.244.0.0/16".parse().unwrap()],
    ));
    nft_in(&node, &proxy.full_text()).expect("the proxy's table");
    let server = pods.pop().unwrap();
    let client = pods.pop().unwrap();
    let listener = server
        .run(|| TcpListener::bind((SERVER.parse::<Ipv4Addr>().unwrap(), 8080)))
        .expect("listen");
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            let mut b = [0u8; 1];
            if c.read_exact(&mut b).is_ok() {
                let _ = c.write_all(b"y");
            }
        }
    });
    Lab {
        node,
        client,
        _server: server,
    }
}

fn connections(lab: &Lab, k: usize) -> Result<Vec<Duration>> {
    let to: SocketAddr = format!("{SERVER}:8080").parse()?;
    lab.client
        .run(|| {
            let mut out = Vec::with_capacity(k);
            for _ in 0..k {
                let t = Instant::now();
                let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
                c.write_all(b"x")?;
                let mut b = [0u8; 1];
                c.read_exact(&mut b)?;
                drop(c);
                out.push(t.elapsed());
            }
            Ok::<_, std::io::Error>(out)
        })
        .context("client to server")
}

/// One change: wall time of the sync, wall time of its nft process, that process's CPU.
type ChangeTimes = (Duration, Duration, Duration);

/// CPU time (user + system) of the children this process has waited for: the nft processes.
fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn us(d: Duration) -> String {
    format!("{:.1} us", d.as_secs_f64() * 1e6)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// Programs the cluster from scratch and measures single changes; returns the namespace holding
/// kube-router's table (for the latency runs) when the anchor ran.
fn programming_and_changes(c: &Cluster, changes: usize, anchor: bool) -> Result<TestNs> {
    let n = c.policies.len();
    // 1. Programming from scratch, three times, each in a fresh namespace.
    let mut runs = Vec::new();
    let mut compute = Vec::new();
    let nft_time = std::sync::Arc::new(std::sync::Mutex::new(Duration::ZERO));
    let mut last = None;
    for _ in 0..3 {
        let t = Instant::now();
        let mut dry = Syncer::with_applier(Base::new(TABLE), NODE, Box::new(Discard));
        feed(&mut dry, c);
        dry.sync()?;
        compute.push(t.elapsed());
        let ns = TestNs::new("prog");
        let t = Instant::now();
        let mut s = Syncer::with_applier(
            Base::new(TABLE),
            NODE,
            Box::new(Timed(
                podnet_agent::proxy::sync::Netlink::strict(),
                nft_time.clone(),
            )),
        );
        feed(&mut s, c);
        let report = ns.run(|| s.sync())?;
        runs.push(t.elapsed());
        println!(
            "  podnet: one transaction of {} KiB, {:?}",
            report.script_bytes / 1024,
            runs.last().unwrap()
        );
        last = Some((ns, s));
    }
    let program = median(runs.clone());
    println!(
        "program {n} policies from scratch: podnet {} (median of 3: {}; Rust side alone {}), target < 1 s: {}",
        ms(program),
        runs.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", "),
        ms(median(compute)),
        verdict(program < Duration::from_secs(1))
    );
    let kr_ns = TestNs::new("kr");
    if anchor {
        let k = kube_router::full_sync(&kr_ns, c, 1)?;
        println!(
            "program {n} policies from scratch: kube-router layout {} ({} nft transactions); ratio podnet/kube-router {:.3}",
            ms(k.elapsed),
            k.transactions,
            program.as_secs_f64() / k.elapsed.as_secs_f64()
        );
    }

    // 2. One change with all present (to policies and pods of this node: others cost nothing here).
    let (ns, mut s) = last.expect("three runs");
    let local_pods: Vec<&(Key, PodInfo)> = c.pods.iter().filter(|(_, p)| p.node == NODE).collect();
    let local_policies: Vec<&Policy> = c
        .policies
        .iter()
        .filter(|p| local_pods.iter().any(|(_, pod)| p.applies_to(pod)))
        .collect();
    // Per kind of change: wall time of the sync, time spent applying (wall), and child processes'
    // CPU (none with netlink).
    let mut kinds: Vec<(&str, Vec<ChangeTimes>)> = vec![
        ("policy edited", vec![]),
        ("pod relabelled", vec![]),
        ("pod added", vec![]),
    ];
    let mut timed = |s: &mut Syncer, kind: usize, change: &dyn Fn(&mut Syncer)| -> Result<()> {
        *nft_time.lock().unwrap() = Duration::ZERO;
        let cpu = children_cpu();
        let t = Instant::now();
        change(s);
        ns.run(|| s.sync())?;
        let wall = t.elapsed();
        kinds[kind]
            .1
            .push((wall, *nft_time.lock().unwrap(), children_cpu() - cpu));
        Ok(())
    };
    for i in 0..changes {
        // A policy edited (its first port moves).
        let p = local_policies[(i * 37) % local_policies.len()];
        let (k, j) = (
            p.key.namespace.trim_start_matches("ns-").parse::<usize>()?,
            p.key.name.trim_start_matches("pol-").parse::<usize>()?,
        );
        let edited = policy(k, j, c.per_ns, 8100 + i as u16);
        timed(&mut s, 0, &|s| {
            s.set_policy(edited.key.clone(), Some(edited.clone()))
        })?;
        // A pod relabelled: it leaves one app's selector sets and policies for another's.
        let (key, mut info) = local_pods[(i * 53 + 7) % local_pods.len()].clone();
        info.labels = labels(json!({"app": format!("app-{}", (i * 7) % c.per_ns), "tier": "t9"}));
        timed(&mut s, 1, &|s| s.set_pod(key.clone(), Some(info.clone())))?;
        // A pod added.
        let (key, info) = pod(i % NAMESPACES, 200 + i, i % c.per_ns, NODE);
        timed(&mut s, 2, &|s| s.set_pod(key.clone(), Some(info.clone())))?;
    }
    let mut e50 = Duration::ZERO;
    for (kind, sample) in kinds {
        let mut wall: Vec<Duration> = sample.iter().map(|x| x.0).collect();
        let mut nft: Vec<Duration> = sample.iter().map(|x| x.1).collect();
        let mut cpu: Vec<Duration> = sample.iter().map(|x| x.2).collect();
        wall.sort();
        nft.sort();
        cpu.sort();
        let (w50, w95) = (percentile(&wall, 50.0), percentile(&wall, 95.0));
        let target = if kind == "policy edited" {
            e50 = w50;
            format!(
                " (target < 20 ms: {})",
                verdict(w50 < Duration::from_millis(20))
            )
        } else {
            String::new()
        };
        println!(
            "one change, {n} present, {kind}: p50 {} p95 {} of {changes}{target}; applying p50 {} (child CPU {})",
            ms(w50),
            ms(w95),
            ms(percentile(&nft, 50.0)),
            ms(percentile(&cpu, 50.0)),
        );
    }
    if anchor {
        // kube-router resyncs everything on any change, and collects the previous sync's chains.
        let k = kube_router::full_sync(&kr_ns, c, 2)?;
        println!(
            "one change, {n} present: kube-router layout {} (a full sync, {} nft transactions); ratio podnet/kube-router {:.4}",
            ms(k.elapsed),
            k.transactions,
            e50.as_secs_f64() / k.elapsed.as_secs_f64()
        );
    }
    drop(ns);
    Ok(kr_ns)
}

fn main() -> Result<()> {
    podnet_testkit::require_root();
    let n = arg("--policies", 1000) as usize;
    let changes = arg("--changes", 20) as usize;
    let conns = arg("--connections", 500) as usize;
    let rounds = arg("--rounds", 20) as usize;
    let anchor = arg("--anchor", 1) == 1;
    let nodes = arg("--nodes", 10) as usize;
    let c = cluster(n, 1);
    println!(
        "NetworkPolicy: podnet-agent (netlink batches) vs kube-router's nftables layout, regenerated (nft -f), same run"
    );
    println!(
        "nft: {}; {} policies over {} pods in {NAMESPACES} namespaces, every pod on this node",
        String::from_utf8_lossy(
            &std::process::Command::new("nft")
                .arg("--version")
                .output()?
                .stdout
        )
        .trim(),
        c.policies.len(),
        c.pods.len()
    );

    let kr_ns = programming_and_changes(&c, changes, anchor)?;
    if nodes > 1 {
        let spread = cluster(n, nodes);
        println!(
            "--- the same {} policies and {} pods spread over {nodes} nodes: this node runs {} pods and programs the policies selecting them",
            spread.policies.len(),
            spread.pods.len(),
            spread.pods.iter().filter(|(_, p)| p.node == NODE).count()
        );
        programming_and_changes(&spread, changes, false)?;
    }

    // 3. Per-connection latency between two isolated pods: no table, podnet's, kube-router's.
    let lab = lab();
    let mut s = Syncer::new(Base::new(TABLE), NODE);
    feed(&mut s, &c);
    let podnet_text = s.full_text();
    if let Ok(path) = std::env::var("PNT_POLICY_DUMP") {
        std::fs::write(&path, &podnet_text)?;
        println!("wrote podnet's table to {path}");
    }
    // kube-router's table as its last full sync left it, written back in one go per round.
    let kr_text = anchor.then(|| kube_router::table_text(&kr_ns));
    let clear = |lab: &Lab| -> Result<()> {
        nft_in(
            &lab.node,
            "add table inet podnet-policy\ndelete table inet podnet-policy\nadd table ip kube-router-filter-ipv4\ndelete table ip kube-router-filter-ipv4\n",
        )
    };
    // The empty table: the two hooked chains and their verdict maps, no pod isolated (the cost every
    // packet pays for the table's existence).
    let empty_text = {
        let mut e = Syncer::with_applier(Base::new(TABLE), NODE, Box::new(Discard));
        e.full_text()
    };
    let mut samples: Vec<(&str, Vec<Duration>)> = vec![
        ("none", vec![]),
        ("podnet", vec![]),
        ("podnet, no pod isolated", vec![]),
    ];
    if kr_text.is_some() {
        samples.push(("kube-router", vec![]));
    }
    // Conditions rotate within each round so none of them always runs first (the machine is shared).
    let k = samples.len();
    for round in 0..rounds {
        for i in 0..k {
            let (what, sample) = &mut samples[(round + i) % k];
            clear(&lab)?;
            match *what {
                "podnet" => nft_in(&lab.node, &podnet_text)?,
                "podnet, no pod isolated" => nft_in(&lab.node, &empty_text)?,
                "kube-router" => nft_in(&lab.node, kr_text.as_deref().unwrap())?,
                _ => {}
            }
            // Let the kernel finish with the previous table, warm up neighbours, then measure.
            std::thread::sleep(Duration::from_millis(300));
            connections(&lab, 50)?;
            sample.extend(connections(&lab, conns)?);
        }
    }
    clear(&lab)?;
    let mut base50 = Duration::ZERO;
    for (what, mut sample) in samples {
        sample.sort();
        let (p50, p99) = (percentile(&sample, 50.0), percentile(&sample, 99.0));
        if what == "none" {
            base50 = p50;
            println!(
                "connection latency, no policy: p50 {} p99 {} ({} connections)",
                us(p50),
                us(p99),
                sample.len()
            );
        } else {
            let r = p50.as_secs_f64() / base50.as_secs_f64();
            let target = if what == "podnet" {
                format!(", target within 5%: {}", verdict(r <= 1.05))
            } else {
                String::new()
            };
            println!(
                "connection latency, {what}: p50 {} p99 {}; p50 ratio to no policy {r:.3}{target}",
                us(p50),
                us(p99)
            );
        }
    }
    Ok(())
}

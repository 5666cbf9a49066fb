//! The service proxy (podnet-agent) against kube-proxy's nftables ruleset, regenerated.
//!
//! kube-proxy itself cannot be installed here (no container registry, not in Debian), so the anchor is
//! the ruleset kube-proxy's nftables mode writes for the same Services, rebuilt from its proxier's
//! layout (pkg/proxy/nftables/proxier.go: table `ip kube-proxy`, its fixed chains, `service-ips` /
//! `service-nodeports` / `no-endpoint-*` verdict maps, `cluster-ips`, one `service-<hash>-ns/name/proto/
//! port` chain per service port, one `endpoint-<hash>-...__ip/port` chain per endpoint), applied with
//! `nft -f` (as kube-proxy's knftables does; podnet sends its transactions as netlink batches). Its full sync writes everything (chains added and flushed, maps flushed and
//! refilled); its partial sync lists the table's chains and sets (as kube-proxy does every sync) and
//! rewrites the changed Service's chains. Both run in fresh namespaces this benchmark creates.
//!
//! Measured: time to program N Services (2-10 endpoints each) from scratch; one Service change with
//! 10k present (an endpoint replaced, as in a rollout; an endpoint added, as in a scale-up);
//! per-connection latency (TCP connect + request + close) through a Service with 1 and
//! with 10k Services installed.
//!
//! Usage: services-bench [--sizes-max N] [--anchor-max N] [--changes C] [--connections K]   (root; see bench/services.sh)

use anyhow::{Context, Result, bail};
use podnet_agent::proxy::model::{Endpoint, PortState, Protocol, ServiceKey, ServiceState};
use podnet_agent::proxy::nft::Base;
use podnet_agent::proxy::sync::Syncer;
use podnet_bench::{arg, ms, percentile};
use podnet_testkit::TestNs;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CIDR: &str = "10.244.0.0/16";

fn cluster_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 96 + (i >> 16) as u8, (i >> 8) as u8, i as u8)
}

/// Service `i`: TCP 80, a node port for the first 2000, 2 + i % 9 endpoints on 8080; `salt` moves
/// one endpoint (a rollout).
fn service(i: usize, salt: u32) -> ServiceState {
    let n = 2 + i % 9;
    let eps: Vec<Endpoint> = (0..n)
        .map(|j| {
            let x = (i * 10 + j) as u32 + if j == 0 { salt * 7919 } else { 0 };
            Endpoint {
                ip: Ipv4Addr::new(10, 244, (x >> 8) as u8, x as u8),
                port: 8080,
            }
        })
        .collect();
    let mut eps = eps;
    eps.sort();
    eps.dedup();
    ServiceState {
        ports: vec![PortState {
            protocol: Protocol::Tcp,
            port: 80,
            cluster_ip: Some(cluster_ip(i)),
            node_port: (i < 2000).then(|| 30000 + i as u16),
            external_ips: vec![],
            cluster_endpoints: eps,
            local_endpoints: vec![],
            internal_local: false,
            external_local: false,
            affinity: None,
        }],
    }
}

fn key(i: usize) -> ServiceKey {
    ServiceKey::new("bench", format!("svc-{i}"))
}

fn nft(ns: &TestNs, script: &str) -> Result<()> {
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
        bail!("nft -f: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn nft_list(ns: &TestNs, what: &str) -> Result<()> {
    let out = ns
        .command("nft")
        .args(["--json", "list", what, "ip"])
        .stdout(Stdio::piped())
        .output()?;
    if !out.status.success() {
        bail!("nft list {what}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// kube-proxy's nftables ruleset, regenerated (see the module comment).
mod kube_proxy {
    use super::*;

    fn hash(s: &str) -> String {
        // kube-proxy: base32(sha256(name))[:8]; only the length matters here.
        let h = podnet_types::names::fnv1a64(&[s.as_bytes()]);
        format!("{:08X}", h as u32)
    }

    pub fn svc_chain(i: usize) -> String {
        let n = format!("bench/svc-{i}/tcp/p80");
        format!("service-{}-{n}", hash(&n))
    }

    fn ext_chain(i: usize) -> String {
        let n = format!("bench/svc-{i}/tcp/p80");
        format!("external-{}-{n}", hash(&n))
    }

    fn ep_chain(i: usize, ep: &Endpoint) -> String {
        let n = format!("bench/svc-{i}/tcp/p80__{}/{}", ep.ip, ep.port);
        format!("endpoint-{}-{n}", hash(&n))
    }

    pub fn setup(tx: &mut String) {
        let lines = [
            "add table ip kube-proxy { comment \"rules for kube-proxy\" ; }",
            "add chain ip kube-proxy mark-for-masquerade",
            "flush chain ip kube-proxy mark-for-masquerade",
            "add rule ip kube-proxy mark-for-masquerade mark set mark or 0x4000",
            "add chain ip kube-proxy masquerading",
            "flush chain ip kube-proxy masquerading",
            "add rule ip kube-proxy masquerading mark and 0x4000 == 0 return",
            "add rule ip kube-proxy masquerading mark set mark xor 0x4000",
            "add rule ip kube-proxy masquerading masquerade fully-random",
            "add chain ip kube-proxy services",
            "flush chain ip kube-proxy services",
            "add chain ip kube-proxy service-endpoints-check",
            "flush chain ip kube-proxy service-endpoints-check",
            "add chain ip kube-proxy nodeport-endpoints-check",
            "flush chain ip kube-proxy nodeport-endpoints-check",
            "add chain ip kube-proxy firewall-check",
            "flush chain ip kube-proxy firewall-check",
            "add chain ip kube-proxy cluster-ips-check",
            "flush chain ip kube-proxy cluster-ips-check",
            "add chain ip kube-proxy reject-chain",
            "flush chain ip kube-proxy reject-chain",
            "add rule ip kube-proxy reject-chain reject",
            "add chain ip kube-proxy filter-prerouting { type filter hook prerouting priority -110 ; }",
            "flush chain ip kube-proxy filter-prerouting",
            "add chain ip kube-proxy filter-input { type filter hook input priority -110 ; }",
            "flush chain ip kube-proxy filter-input",
            "add chain ip kube-proxy filter-forward { type filter hook forward priority -110 ; }",
            "flush chain ip kube-proxy filter-forward",
            "add chain ip kube-proxy filter-output { type filter hook output priority -110 ; }",
            "flush chain ip kube-proxy filter-output",
            "add chain ip kube-proxy filter-output-post-dnat { type filter hook output priority -90 ; }",
            "flush chain ip kube-proxy filter-output-post-dnat",
            "add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }",
            "flush chain ip kube-proxy nat-prerouting",
            "add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }",
            "flush chain ip kube-proxy nat-output",
            "add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; }",
            "flush chain ip kube-proxy nat-postrouting",
            "add set ip kube-proxy cluster-ips { type ipv4_addr ; comment \"Active ClusterIPs\" ; }",
            "add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }",
            "add map ip kube-proxy service-nodeports { type inet_proto . inet_service : verdict ; comment \"NodePort traffic\" ; }",
            "add map ip kube-proxy no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to services with no endpoints\" ; }",
            "add map ip kube-proxy no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to service nodeports with no endpoints\" ; }",
            "add map ip kube-proxy firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment \"destinations that are subject to LoadBalancerSourceRanges\" ; }",
            "add rule ip kube-proxy filter-prerouting ct state new jump firewall-check",
            "add rule ip kube-proxy filter-input ct state new jump nodeport-endpoints-check",
            "add rule ip kube-proxy filter-input ct state new jump service-endpoints-check",
            "add rule ip kube-proxy filter-forward ct state new jump service-endpoints-check",
            "add rule ip kube-proxy filter-forward ct state new jump cluster-ips-check",
            "add rule ip kube-proxy filter-output ct state new jump service-endpoints-check",
            "add rule ip kube-proxy filter-output ct state new jump firewall-check",
            "add rule ip kube-proxy filter-output-post-dnat ct state new jump cluster-ips-check",
            "add rule ip kube-proxy nat-prerouting jump services",
            "add rule ip kube-proxy nat-output jump services",
            "add rule ip kube-proxy nat-postrouting jump masquerading",
            "add rule ip kube-proxy cluster-ips-check ip daddr @cluster-ips reject comment \"Reject traffic to invalid ports of ClusterIPs\"",
            "add rule ip kube-proxy cluster-ips-check ip daddr { 10.96.0.0/12 } drop comment \"Drop traffic to unallocated ClusterIPs\"",
            "add rule ip kube-proxy firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips",
            "add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips",
            "add rule ip kube-proxy services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports",
            "add rule ip kube-proxy service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
            "add rule ip kube-proxy nodeport-endpoints-check fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports",
        ];
        for l in lines {
            tx.push_str(l);
            tx.push('\n');
        }
    }

    /// The chains of Service `i` (added, flushed and refilled, as kube-proxy writes a changed Service).
    pub fn service_chains(tx: &mut String, i: usize, st: &ServiceState) {
        let p = &st.ports[0];
        let svc = svc_chain(i);
        let cip = p.cluster_ip.unwrap();
        let eps = &p.cluster_endpoints;
        for ep in eps {
            let c = ep_chain(i, ep);
            let _ = writeln!(tx, "add chain ip kube-proxy {c}");
            let _ = writeln!(tx, "flush chain ip kube-proxy {c}");
        }
        let _ = writeln!(tx, "add chain ip kube-proxy {svc}");
        let _ = writeln!(tx, "flush chain ip kube-proxy {svc}");
        if p.node_port.is_some() {
            let ext = ext_chain(i);
            let _ = writeln!(tx, "add chain ip kube-proxy {ext}");
            let _ = writeln!(tx, "flush chain ip kube-proxy {ext}");
            let _ = writeln!(tx, "add rule ip kube-proxy {ext} jump mark-for-masquerade");
            let _ = writeln!(tx, "add rule ip kube-proxy {ext} goto {svc}");
        }
        let _ = writeln!(
            tx,
            "add rule ip kube-proxy {svc} ip daddr {cip} tcp dport 80 ip saddr != {CIDR} jump mark-for-masquerade"
        );
        let arms: Vec<String> = eps
            .iter()
            .enumerate()
            .map(|(j, ep)| format!("{j} : goto {}", ep_chain(i, ep)))
            .collect();
        let _ = writeln!(
            tx,
            "add rule ip kube-proxy {svc} numgen random mod {} vmap {{ {} }}",
            eps.len(),
            arms.join(" , ")
        );
        for ep in eps {
            let c = ep_chain(i, ep);
            let _ = writeln!(
                tx,
                "add rule ip kube-proxy {c} ip saddr {} jump mark-for-masquerade",
                ep.ip
            );
            let _ = writeln!(
                tx,
                "add rule ip kube-proxy {c} meta l4proto tcp dnat to {}:{}",
                ep.ip, ep.port
            );
        }
    }

    pub fn elements(tx: &mut String, i: usize, st: &ServiceState) {
        let p = &st.ports[0];
        let cip = p.cluster_ip.unwrap();
        let _ = writeln!(tx, "add element ip kube-proxy cluster-ips {{ {cip} }}");
        let _ = writeln!(
            tx,
            "add element ip kube-proxy service-ips {{ {cip} . tcp . 80 : goto {} }}",
            svc_chain(i)
        );
        if let Some(np) = p.node_port {
            let _ = writeln!(
                tx,
                "add element ip kube-proxy service-nodeports {{ tcp . {np} : goto {} }}",
                ext_chain(i)
            );
        }
    }

    /// A full sync: fixed chains, maps flushed and refilled, every Service's chains.
    pub fn full(states: &[ServiceState]) -> String {
        let mut tx = String::new();
        setup(&mut tx);
        for m in [
            "cluster-ips",
            "service-ips",
            "service-nodeports",
            "no-endpoint-services",
            "no-endpoint-nodeports",
            "firewall-ips",
        ] {
            let kind = if m == "cluster-ips" { "set" } else { "map" };
            let _ = writeln!(tx, "flush {kind} ip kube-proxy {m}");
        }
        for (i, st) in states.iter().enumerate() {
            service_chains(&mut tx, i, st);
            elements(&mut tx, i, st);
        }
        tx
    }

    /// A partial sync after Service `i` changed from `old` to `new`: its chains rewritten, the
    /// endpoint chain no longer used flushed (kube-proxy deletes it in a later sync).
    pub fn partial(i: usize, old: &ServiceState, new: &ServiceState) -> String {
        let mut tx = String::new();
        service_chains(&mut tx, i, new);
        for ep in &old.ports[0].cluster_endpoints {
            if !new.ports[0].cluster_endpoints.contains(ep) {
                let _ = writeln!(tx, "flush chain ip kube-proxy {}", ep_chain(i, ep));
            }
        }
        tx
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    percentile(&v, 50.0)
}

fn line(what: &str, ours: Duration, anchor: Duration, target: Option<&str>) {
    let r = ours.as_secs_f64() / anchor.as_secs_f64();
    println!(
        "{what:<34} podnet {:>11}  kube-proxy's ruleset {:>11}  ratio {r:.3}{}",
        ms(ours),
        ms(anchor),
        target.map(|t| format!("  [{t}]")).unwrap_or_default()
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok { "meets" } else { "MISSES" }
}

/// Programs `n` Services from scratch in fresh namespaces; returns (ours, anchor) and leaves both
/// namespaces programmed.
#[allow(clippy::type_complexity)]
fn program(
    n: usize,
    with_anchor: bool,
) -> Result<(
    Duration,
    Option<Duration>,
    TestNs,
    Syncer,
    TestNs,
    Vec<ServiceState>,
)> {
    let states: Vec<ServiceState> = (0..n).map(|i| service(i, 0)).collect();
    let ours_ns = TestNs::new("svc-ours");
    let anchor_ns = TestNs::new("svc-kp");
    let mut syncer = Syncer::new(Base::new("podnet-services", vec![CIDR.parse()?]));
    let t = Instant::now();
    for (i, st) in states.iter().enumerate() {
        syncer.set(key(i), Some(st.clone()));
    }
    let r = ours_ns.run(|| syncer.sync());
    let ours = t.elapsed();
    r.context("podnet full sync")?;
    if !with_anchor {
        return Ok((ours, None, ours_ns, syncer, anchor_ns, states));
    }
    let t = Instant::now();
    nft_list(&anchor_ns, "chains").ok(); // kube-proxy (knftables) lists its family's objects every sync
    nft_list(&anchor_ns, "sets").ok();
    let tx = kube_proxy::full(&states);
    nft(&anchor_ns, &tx)?;
    let anchor = t.elapsed();
    Ok((ours, Some(anchor), ours_ns, syncer, anchor_ns, states))
}

/// A "node" with a bridge and two pods; a TCP server in the second pod on 8080.
struct Lab {
    node: TestNs,
    client: TestNs,
    _server: TestNs,
}

fn lab() -> Result<Lab> {
    let node = TestNs::new("lat-node");
    node.sh("ip", &["link", "add", "br0", "type", "bridge"]);
    node.sh("ip", &["addr", "add", "10.244.1.1/24", "dev", "br0"]);
    node.sh("ip", &["link", "set", "br0", "up"]);
    node.sh("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    let mut pods = Vec::new();
    for i in 0..2 {
        let pod = TestNs::new(&format!("lat-pod{i}"));
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
        pod.sh(
            "ip",
            &[
                "addr",
                "add",
                &format!("10.244.1.{}/24", 10 + i),
                "dev",
                "eth0",
            ],
        );
        pod.sh("ip", &["link", "set", "eth0", "up"]);
        pod.sh("ip", &["route", "add", "default", "via", "10.244.1.1"]);
        pods.push(pod);
    }
    let server = pods.pop().unwrap();
    let client = pods.pop().unwrap();
    let listener = server.run(|| TcpListener::bind("10.244.1.11:8080"))?;
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            let mut buf = [0u8; 16];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"ok\n");
        }
    });
    Ok(Lab {
        node,
        client,
        _server: server,
    })
}

fn the_service() -> ServiceState {
    ServiceState {
        ports: vec![PortState {
            protocol: Protocol::Tcp,
            port: 80,
            cluster_ip: Some(Ipv4Addr::new(10, 100, 0, 1)),
            node_port: None,
            external_ips: vec![],
            cluster_endpoints: vec![Endpoint {
                ip: Ipv4Addr::new(10, 244, 1, 11),
                port: 8080,
            }],
            local_endpoints: vec![],
            internal_local: false,
            external_local: false,
            affinity: None,
        }],
    }
}

/// `k` connections (connect, request, response, close) from the client pod through 10.100.0.1:80.
fn connections(lab: &Lab, k: usize) -> Result<Vec<Duration>> {
    let to: SocketAddr = "10.100.0.1:80".parse()?;
    lab.client
        .run(|| {
            let mut out = Vec::with_capacity(k);
            for _ in 0..k {
                let t = Instant::now();
                let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
                c.write_all(b"x")?;
                let mut buf = Vec::new();
                c.read_to_end(&mut buf)?;
                drop(c);
                out.push(t.elapsed());
            }
            Ok::<_, std::io::Error>(out)
        })
        .context("connect through the Service")
}

fn main() -> Result<()> {
    podnet_testkit::require_root();
    // Defaults keep the run near 3 minutes: the anchor's full sync grows quadratically (about 2 min
    // at 10k Services here, far longer at 30k), so 30k runs only on request (`--sizes-max 30000`) and
    // the anchor only up to `--anchor-max`.
    let max = arg("--sizes-max", 10_000) as usize;
    let anchor_max = arg("--anchor-max", 10_000) as usize;
    let changes = arg("--changes", 5) as usize;
    let conns = arg("--connections", 2000) as usize;
    println!(
        "service proxy: podnet-agent (netlink batches) vs kube-proxy's nftables ruleset, regenerated (nft -f), same run"
    );
    println!(
        "nft: {}",
        String::from_utf8_lossy(&Command::new("nft").arg("--version").output()?.stdout).trim()
    );

    // 1. Programming from scratch.
    let mut ten_k = None;
    for n in [1_000usize, 10_000, 30_000]
        .into_iter()
        .filter(|n| *n <= max)
    {
        let (ours, anchor, ons, syncer, ans, states) = program(n, n <= anchor_max)?;
        let target = (n == 10_000)
            .then(|| format!("podnet < 2 s: {}", verdict(ours < Duration::from_secs(2))));
        let what = format!("program {n} Services from scratch");
        match anchor {
            Some(anchor) => line(&what, ours, anchor, target.as_deref()),
            None => println!(
                "{what:<34} podnet {:>11}  (anchor skipped: --anchor-max)",
                ms(ours)
            ),
        }
        if n == 10_000 && n <= anchor_max {
            ten_k = Some((ons, syncer, ans, states));
        }
    }

    // 2. One Service changes with 10k present: an endpoint replaced (a rollout step: the count
    // stays), then an endpoint added (a scale-up: the count changes).
    if let Some((ons, mut syncer, ans, mut states)) = ten_k {
        type Change = fn(usize, usize, &ServiceState) -> ServiceState;
        let replaced: Change = |i, c, _| service(i, c as u32 + 1);
        let added: Change = |_, c, old| {
            let mut new = old.clone();
            new.ports[0].cluster_endpoints.push(Endpoint {
                ip: Ipv4Addr::new(10, 245, (c >> 8) as u8, c as u8),
                port: 8080,
            });
            new
        };
        for (what, change, shift) in [
            ("one Service change, 10k present", replaced, 0),
            ("one Service scaled up, 10k present", added, 131),
        ] {
            let (mut ours, mut anchor, mut anchor_tx) = (Vec::new(), Vec::new(), Vec::new());
            for c in 0..changes {
                let i = (c * 487 + shift) % states.len();
                let new = change(i, c, &states[i]);
                let t = Instant::now();
                syncer.set(key(i), Some(new.clone()));
                let r = ons
                    .run(|| syncer.sync())
                    .context("podnet incremental sync")?;
                ours.push(t.elapsed());
                assert!(!r.full && r.services_changed == 1);
                let t = Instant::now();
                nft_list(&ans, "chains")?;
                nft_list(&ans, "sets")?;
                let lists = t.elapsed();
                let tx = kube_proxy::partial(i, &states[i], &new);
                let t2 = Instant::now();
                nft(&ans, &tx)?;
                anchor_tx.push(t2.elapsed());
                anchor.push(lists + t2.elapsed());
                states[i] = new;
            }
            let ours = median(ours);
            line(
                what,
                ours,
                median(anchor),
                Some(&format!(
                    "podnet < 20 ms: {}",
                    verdict(ours < Duration::from_millis(20))
                )),
            );
            line(
                "  (anchor's transaction alone, no lists)",
                ours,
                median(anchor_tx),
                None,
            );
        }
    }

    // 3. Latency through a Service with 1 and with 10k Services installed (same lab, same pods).
    let lab = lab()?;
    let mut syncer = Syncer::new(Base::new("podnet-services", vec![CIDR.parse()?]));
    syncer.set(ServiceKey::new("bench", "the-one"), Some(the_service()));
    lab.node.run(|| syncer.sync()).context("sync 1 Service")?;
    connections(&lab, 200)?; // warm up
    let (mut one, mut many) = (Vec::new(), Vec::new());
    let rounds = 4;
    for _ in 0..rounds {
        one.extend(connections(&lab, conns / rounds)?);
        for i in 0..10_000 {
            syncer.set(key(i), Some(service(i, 0)));
        }
        lab.node
            .run(|| syncer.sync())
            .context("sync 10k Services")?;
        many.extend(connections(&lab, conns / rounds)?);
        for i in 0..10_000 {
            syncer.set(key(i), None);
        }
        lab.node
            .run(|| syncer.sync())
            .context("back to 1 Service")?;
    }
    one.sort();
    many.sort();
    let (p50_1, p99_1) = (percentile(&one, 50.0), percentile(&one, 99.0));
    let (p50_k, p99_k) = (percentile(&many, 50.0), percentile(&many, 99.0));
    let ratio = p50_k.as_secs_f64() / p50_1.as_secs_f64();
    println!(
        "connection latency, 1 Service      p50 {:>9}  p99 {:>9}   ({} connections)",
        ms(p50_1),
        ms(p99_1),
        one.len()
    );
    println!(
        "connection latency, 10k Services   p50 {:>9}  p99 {:>9}   p50 ratio {ratio:.3}  [within 5%: {}]",
        ms(p50_k),
        ms(p99_k),
        verdict(ratio <= 1.05)
    );
    Ok(())
}

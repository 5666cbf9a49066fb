//! The lab network, driven through the real `podnet` binary: three nodes in each mode, pods attached
//! with podnet-cni exactly as a runtime would, traffic between and out of them, mode switches, crash
//! recovery, and the machine's own namespace left untouched. Root tests; each uses its own lab name.

mod common;

use common::*;
use std::time::Duration;

/// Pods on different nodes reach each other over TCP and UDP with their real addresses; pods reach
/// the router and the internet, which sees the node's address.
fn cross_node_traffic(mode: &str) {
    let lab = Lab::up(&["--nodes", "3", "--mode", mode]);
    let a = lab.pod("node1");
    let b = lab.pod("node2");
    let c = lab.pod("node3");
    // Each from its node's podCIDR (the cluster DNS pods may have taken the first addresses).
    assert!(a.ip.to_string().starts_with("10.244.1."), "{}", a.ip);
    assert!(b.ip.to_string().starts_with("10.244.2."), "{}", b.ip);

    assert_eq!(
        tcp_source(&a, &b, 7001),
        a.ip,
        "{mode}: TCP node1 -> node2 keeps the pod's address"
    );
    assert_eq!(tcp_source(&c, &a, 7002), c.ip, "{mode}: TCP node3 -> node1");
    assert_eq!(
        udp_source(&b, &c, 7003),
        b.ip,
        "{mode}: UDP node2 -> node3 keeps the pod's address"
    );
    assert_eq!(udp_source(&a, &c, 7004), a.ip, "{mode}: UDP node1 -> node3");

    assert!(a.ping("10.100.0.1"), "{mode}: a pod reaches the router");
    let body = http_get_internet(&b);
    assert!(
        body.contains("You came from 10.100.0.3"),
        "{mode}: the internet sees node2's address:\n{body}"
    );

    let expected_mtu = if mode == "vxlan" { 1450 } else { 1500 };
    assert_eq!(
        a.mtu(),
        expected_mtu,
        "{mode}: pod MTU accounts for the encapsulation"
    );
}

#[test]
fn vxlan_three_nodes() {
    cross_node_traffic("vxlan");
}

#[test]
fn host_gw_three_nodes() {
    cross_node_traffic("host-gw");
}

#[test]
fn gateway_three_nodes() {
    cross_node_traffic("gateway");
}

#[test]
fn fifty_megabytes_cross_the_vxlan_overlay() {
    let lab = Lab::up(&["--nodes", "3", "--mode", "vxlan"]);
    let a = lab.pod("node1");
    let b = lab.pod("node3");
    let size = 50 * 1024 * 1024;
    assert_eq!(
        transfer(&a, &b, 7100, size),
        size,
        "every byte of a 50 MB stream arrives"
    );
}

#[test]
fn switching_modes_keeps_pods_and_their_traffic() {
    let lab = Lab::up(&["--nodes", "2", "--mode", "vxlan"]);
    let a = lab.pod("node1");
    let b = lab.pod("node2");
    let size = 8 * 1024 * 1024;
    for (i, mode) in ["host-gw", "gateway", "vxlan", "gateway", "host-gw"]
        .iter()
        .enumerate()
    {
        let out = lab.ok(&["mode", mode]);
        assert!(out.contains(&format!("-> {mode}")), "{out}");
        let port = 7200 + i as u16;
        assert_eq!(tcp_source(&a, &b, port), a.ip, "after switching to {mode}");
        // Full-size packets in both directions: the MTU followed the mode, nothing black-holes.
        assert_eq!(
            transfer(&b, &a, port + 100, size),
            size,
            "bulk transfer after switching to {mode}"
        );
        let mtu = if *mode == "vxlan" { 1450 } else { 1500 };
        assert_eq!((a.mtu(), b.mtu()), (mtu, mtu), "pod MTU in {mode}");
    }
    // Switching to the mode it is in changes nothing.
    let out = lab.ok(&["mode", "host-gw"]);
    assert!(
        out.contains("already in mode host-gw")
            && !out.contains("+ route")
            && !out.contains("- route"),
        "{out}"
    );
}

#[test]
fn up_twice_changes_nothing_and_a_killed_daemon_is_recovered() {
    let lab = Lab::up(&["--nodes", "2"]);
    let a = lab.pod("node1");
    let out = lab.ok(&["up", "--api-port", "0", "--nodes", "2"]);
    assert!(out.contains("already running"), "{out}");

    // kill -9 the daemon: the next `up` restarts it, the pod keeps its network.
    let pids: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .contains(&format!("__lab-daemon\0--name\0{}", lab.name))
                })
                .unwrap_or(false)
        })
        .collect();
    assert_eq!(pids.len(), 1, "one daemon per lab");
    std::process::Command::new("kill")
        .args(["-9", &pids[0]])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let out = lab.ok(&["up", "--api-port", "0"]);
    assert!(out.contains("restarted"), "{out}");
    assert!(http_get_internet(&a).contains("You came from 10.100.0.2"));
}

#[test]
fn node_list_and_exec() {
    let lab = Lab::up(&["--nodes", "3", "--mode", "host-gw"]);
    let nodes = lab.nodes();
    assert_eq!(nodes["mode"], "host-gw");
    let list = nodes["nodes"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[2]["name"], "node3");
    assert_eq!(list[2]["underlayIP"], "10.100.0.4");
    assert_eq!(list[2]["podCIDR"], "10.244.3.0/24");
    let table = lab.ok(&["node", "list"]);
    assert!(
        table.contains("node2") && table.contains("10.244.2.0/24"),
        "{table}"
    );

    assert_eq!(
        lab.ok(&["node", "exec", "node2", "--", "hostname"]).trim(),
        "node2"
    );
    // `ip netns` on a node lists that node's pod namespaces (the runtime keeps their files in the
    // node's run directory; node exec shows it as /run/netns).
    let pod_netns = std::path::PathBuf::from("/run/podnet")
        .join(&lab.name)
        .join("nodes/node2/netns");
    std::fs::create_dir_all(&pod_netns).unwrap();
    std::fs::write(pod_netns.join("pn-0123abcd"), "").unwrap();
    // The cluster DNS pods may run on node2 too, so its list holds their namespaces as well.
    let listed = lab.ok(&["node", "exec", "node2", "--", "ip", "netns", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.split_whitespace().next() == Some("pn-0123abcd")),
        "{listed}"
    );
    let other = lab.ok(&["node", "exec", "node1", "--", "ip", "netns", "list"]);
    assert!(!other.contains("pn-0123abcd"), "{other}");
    // The node's resolver is the lab's relay on the router, not the machine's (unreachable from it).
    let resolv = lab.ok(&["node", "exec", "node1", "--", "cat", "/etc/resolv.conf"]);
    assert_eq!(resolv, "nameserver 10.100.0.1\n");
    let routes = lab.ok(&["node", "exec", "node1", "--", "ip", "route"]);
    assert!(
        routes.contains("10.244.2.0/24 via 10.100.0.3 dev eth0"),
        "{routes}"
    );
    assert!(routes.contains("default via 10.100.0.1"), "{routes}");
    let links = lab.ok(&["node", "exec", "node1", "--", "ls", "/sys/class/net"]);
    assert!(
        links.contains("eth0") && !links.contains("pn-vxlan"),
        "sysfs shows the node's own links: {links}"
    );
    let out = lab.podnet(&["node", "exec", "node9", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no node node9"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_flags_are_refused_before_anything_is_made() {
    let lab = Lab::named();
    for (args, needle) in [
        (vec!["up", "--nodes", "0"], "--nodes"),
        (
            vec!["up", "--underlay", "10.100.0.0/30", "--nodes", "3"],
            "--underlay",
        ),
        (vec!["up", "--service-cidr", "10.96.0.0/12"], "overlap"),
        (vec!["up", "--mode", "ipip"], "unknown mode"),
        (vec!["mode", "host-gw"], "no lab named"),
    ] {
        let out = lab.podnet(&args);
        assert!(!out.status.success(), "{args:?} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!std::path::Path::new(&format!("/run/netns/{}-router", lab.name)).exists());
    }
}

/// `podnet up` killed with SIGKILL at random moments: the next `up` builds a working lab, and `down`
/// leaves nothing behind.
#[test]
fn a_killed_up_is_recovered_by_the_next_up_and_down() {
    let lab = Lab::named();
    // How long a whole `up` takes here: the kills are spread over that window.
    let started = std::time::Instant::now();
    lab.ok(&["up", "--api-port", "0", "--nodes", "3"]);
    let window = started.elapsed().as_micros() as u64;
    lab.ok(&["down"]);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("seed {seed}, up takes {window} us");
    let mut killed_midway = 0;
    for round in 0..8u64 {
        let mut child = lab
            .command()
            .args(["up", "--api-port", "0", "--nodes", "3"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let delay = (seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(round * 1442695040888963407)
            >> 33)
            % window;
        std::thread::sleep(Duration::from_micros(delay));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            killed_midway += 1;
        }
        if round % 2 == 0 {
            let out = lab.ok(&["up", "--api-port", "0", "--nodes", "3"]);
            assert!(
                out.contains("is up")
                    || out.contains("already running")
                    || out.contains("restarted"),
                "{out}"
            );
            let a = lab.pod("node1");
            let b = lab.pod("node3");
            assert_eq!(
                tcp_source(&a, &b, 7300 + round as u16),
                a.ip,
                "round {round}: the recovered lab carries traffic"
            );
        }
        lab.ok(&["down"]);
        assert_no_trace(&lab.name);
        let kc = std::fs::read_to_string(&lab.kubeconfig).unwrap_or_default();
        assert!(
            !kc.contains("server: https://127.0.0.1"),
            "round {round}: the lab's context left in the kubeconfig: {kc}"
        );
    }
    eprintln!("{killed_midway} of 8 `up`s were killed before they finished");
    assert!(killed_midway > 0, "no kill landed inside an `up`");
}

fn assert_no_trace(name: &str) {
    let netns: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    let left: Vec<&String> = netns
        .iter()
        .filter(|n| n.starts_with(&format!("{name}-")))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    for dir in [
        format!("/run/podnet/{name}"),
        format!("/var/lib/podnet/{name}"),
        format!("/run/podnet/{name}.lock"),
    ] {
        assert!(!std::path::Path::new(&dir).exists(), "{dir} left behind");
    }
    let daemons = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&format!("--name\0{name}\0")))
                .unwrap_or(false)
        })
        .count();
    assert_eq!(daemons, 0, "a daemon of {name} is still running");
}

/// The machine's own network namespace is the same before `up` and after `down`.
#[test]
fn the_host_namespace_is_unchanged_by_up_and_down() {
    let snapshot = || {
        let run = |args: &[&str]| {
            let out = std::process::Command::new(args[0])
                .args(&args[1..])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        (
            run(&["ip", "addr"]),
            run(&["ip", "route"]),
            run(&["ip", "-6", "route"]),
            run(&["nft", "list", "ruleset"]),
        )
    };
    let before = snapshot();
    {
        let lab = Lab::up(&["--nodes", "3", "--mode", "vxlan"]);
        let a = lab.pod("node1");
        let b = lab.pod("node2");
        assert_eq!(tcp_source(&a, &b, 7400), a.ip);
        lab.ok(&["mode", "gateway"]);
        lab.ok(&["down"]);
        assert_no_trace(&lab.name);
    }
    assert_eq!(
        snapshot(),
        before,
        "ip addr, ip route and nft list ruleset of the machine are unchanged"
    );
}

/// The control plane comes up with the lab: kubectl (through the kubeconfig `up` wrote) sees the
/// nodes as seed 004 lists them, objects survive a killed daemon, and `down` takes the lab's context
/// out of the kubeconfig again, restoring the previous current context.
#[test]
fn the_control_plane_comes_up_with_the_lab() {
    let lab = Lab::named();
    std::fs::write(
        &lab.kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster:\n    server: https://192.0.2.1:6443\n\
         users:\n- name: other\n  user:\n    token: x\ncontexts:\n- name: other\n  context:\n    cluster: other\n    user: other\n\
         current-context: other\n",
    )
    .unwrap();
    let out = lab.ok(&["up", "--api-port", "0", "--nodes", "3"]);
    assert!(out.contains("API server: https://127.0.0.1:"), "{out}");
    assert_eq!(
        lab.kubectl_ok(&["config", "current-context"]).trim(),
        "podnet"
    );

    let seed004 = lab.kubectl_ok(&[
        "get",
        "nodes",
        "--sort-by=.metadata.name",
        "--output=custom-columns=NAME:.metadata.name,IP:.status.addresses[0].address,PODS:.spec.podCIDR",
    ]);
    assert_eq!(
        seed004.split_whitespace().collect::<Vec<_>>(),
        [
            "NAME",
            "IP",
            "PODS",
            "node1",
            "10.100.0.2",
            "10.244.1.0/24",
            "node2",
            "10.100.0.3",
            "10.244.2.0/24",
            "node3",
            "10.100.0.4",
            "10.244.3.0/24"
        ]
    );
    // Each node's agent makes its node Ready within moments of `up`.
    let mut wide = String::new();
    for _ in 0..120 {
        wide = lab.kubectl_ok(&["get", "nodes", "-o", "wide"]);
        if !wide.contains("NotReady") && wide.matches(" Ready ").count() == 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        !wide.contains("NotReady")
            && wide.contains("10.100.0.4")
            && wide.contains("v1.35.0-podnet"),
        "{wide}"
    );

    // The nodes reach the API server on the router's address, as kubelets reach a control plane, and
    // its certificate is valid for that address.
    let kubectl = kubectl_bin().display().to_string();
    let kc = lab.kubeconfig.display().to_string();
    let cache = std::env::temp_dir()
        .join(format!("{}.kube-cache", lab.name))
        .display()
        .to_string();
    let from_node = lab.ok(&[
        "node",
        "exec",
        "node2",
        "--",
        &kubectl,
        "--kubeconfig",
        &kc,
        "--cache-dir",
        &cache,
        "--server",
        "https://10.100.0.1:6443",
        "get",
        "nodes",
        "-o",
        "name",
    ]);
    assert_eq!(from_node.lines().count(), 3, "{from_node}");

    lab.kubectl_ok(&["create", "configmap", "kept", "--from-literal=k=v"]);
    let pids: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .contains(&format!("__lab-daemon\0--name\0{}", lab.name))
                })
                .unwrap_or(false)
        })
        .collect();
    std::process::Command::new("kill")
        .args(["-9", &pids[0]])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    lab.ok(&["up", "--api-port", "0"]);
    assert!(
        lab.kubectl_ok(&["get", "configmap", "kept", "-o", "jsonpath={.data.k}"])
            .contains('v'),
        "acknowledged writes survive kill -9"
    );

    lab.ok(&["down"]);
    let kc = std::fs::read_to_string(&lab.kubeconfig).unwrap();
    assert!(!kc.contains("podnet"), "the lab's entries are gone: {kc}");
    assert!(
        kc.contains("current-context: other"),
        "the previous context is current again: {kc}"
    );
}

/// pods/log is relayed to the node that runs the pod, across the lab's network: the API server lives in
/// the machine's namespace and reaches node1's kubelet port (10.100.0.2:10250, TLS with a certificate
/// from the lab's CA) through the router. A few lines of Python stand in for the kubelet.
#[test]
fn logs_are_relayed_to_the_node_through_the_lab_network() {
    let lab = Lab::up(&["--nodes", "2"]);
    // A real pod on node1; its logs come from node1's agent, reached across the lab network.
    let dir = std::env::temp_dir().join(format!("{}-logs", lab.name));
    std::fs::create_dir_all(&dir).unwrap();
    let pod = dir.join("pod.yaml");
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  nodeName: node1\n  containers:\n  - name: httpd\n    image: busybox\n    command: [sh, -c, 'for i in 1 2 3 4 5 6 7; do echo line $i; done; sleep 3600']\n",
    )
    .unwrap();
    lab.kubectl_ok(&["apply", "-f", &pod.display().to_string()]);
    let _ = std::fs::remove_dir_all(&dir);
    let mut logs = String::new();
    for _ in 0..120 {
        let out = lab.kubectl(&["logs", "web", "--tail=5"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && text.contains("line 7") {
            logs = text;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(logs.trim(), "line 3\nline 4\nline 5\nline 6\nline 7");
}

/// Switching modes under live traffic loses no packet: new paths are built everywhere before old ones
/// are taken down everywhere.
#[test]
fn switching_modes_drops_no_packet() {
    let lab = Lab::up(&["--nodes", "3", "--mode", "vxlan"]);
    let a = lab.pod("node1");
    let b = lab.pod("node2");
    let receiver =
        b.ns.run(|| std::net::UdpSocket::bind((b.ip, 7500)))
            .unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let sender = a.ns.run(|| std::net::UdpSocket::bind((a.ip, 0))).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let send = {
        let stop = stop.clone();
        let to = std::net::SocketAddr::from((b.ip, 7500));
        std::thread::spawn(move || {
            let mut seq: u32 = 0;
            // One datagram every 0.5 ms, for at most 30 s.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && seq < 60_000 {
                let _ = sender.send_to(&seq.to_be_bytes(), to);
                seq += 1;
                std::thread::sleep(Duration::from_micros(500));
            }
            seq
        })
    };
    let recv = std::thread::spawn(move || {
        let mut got = std::collections::BTreeSet::new();
        let mut buf = [0u8; 4];
        while let Ok((n, _)) = receiver.recv_from(&mut buf) {
            if n == 4 {
                got.insert(u32::from_be_bytes(buf));
            }
        }
        got
    });
    std::thread::sleep(Duration::from_millis(200));
    for mode in ["host-gw", "gateway", "vxlan", "gateway", "host-gw", "vxlan"] {
        lab.ok(&["mode", mode]);
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = send.join().unwrap();
    let got = recv.join().unwrap();
    let lost: Vec<u32> = (0..sent).filter(|s| !got.contains(s)).collect();
    assert!(
        lost.is_empty(),
        "{} of {sent} datagrams lost across six mode switches: {:?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
}

/// `podnet mode` killed at random moments: the next `up` finishes the switch (or repairs what it
/// half-did), and traffic between nodes works again.
#[test]
fn a_killed_mode_switch_is_finished_by_the_next_up() {
    let lab = Lab::up(&["--nodes", "3", "--mode", "vxlan"]);
    let a = lab.pod("node1");
    let b = lab.pod("node2");
    let started = std::time::Instant::now();
    lab.ok(&["mode", "host-gw"]);
    let window = started.elapsed().as_micros() as u64;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("seed {seed}, a switch takes {window} us");
    let mut killed_midway = 0;
    for (round, mode) in ["vxlan", "gateway", "host-gw", "vxlan", "gateway", "host-gw"]
        .iter()
        .enumerate()
    {
        let mut child = lab
            .command()
            .args(["mode", mode])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let delay = (seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(round as u64 * 1442695040888963407)
            >> 33)
            % window;
        std::thread::sleep(Duration::from_micros(delay));
        let _ = child.kill();
        if !child.wait().unwrap().success() {
            killed_midway += 1;
        }
        let out = lab.ok(&["up", "--api-port", "0"]);
        assert!(out.contains("already running"), "{out}");
        let state: serde_json::Value = serde_json::from_slice(
            &std::fs::read(format!("/run/podnet/{}/state.json", lab.name)).unwrap(),
        )
        .unwrap();
        assert!(
            state.get("pending_mode").is_none(),
            "round {round}: a switch is still pending after up: {state}"
        );
        assert_eq!(
            tcp_source(&a, &b, 7600 + round as u16),
            a.ip,
            "round {round}: node1 -> node2 after the repair"
        );
        assert_eq!(
            tcp_source(&b, &a, 7700 + round as u16),
            b.ip,
            "round {round}: node2 -> node1 after the repair"
        );
    }
    eprintln!("{killed_midway} of 6 switches were killed before they finished");
    assert!(killed_midway > 0, "no kill landed inside a switch");
}

#[test]
fn up_on_a_running_lab_says_which_flags_it_did_not_apply() {
    let lab = Lab::up(&["--nodes", "2", "--mode", "vxlan"]);
    let out = lab.ok(&["up", "--api-port", "0", "--nodes", "3", "--mode", "gateway"]);
    assert!(
        out.contains("not applied to the running lab: --nodes 3, --mode gateway"),
        "{out}"
    );
    assert!(out.contains("nothing changed"), "{out}");
    let out = lab.ok(&["up", "--api-port", "0"]);
    assert!(
        !out.contains("not applied"),
        "unset flags ask for nothing: {out}"
    );

    // Drift made by hand (a stale overlay entry, a missing route) is put right by the next `up`.
    lab.ok(&[
        "node",
        "exec",
        "node1",
        "--",
        "bridge",
        "fdb",
        "append",
        "0a:58:0a:f4:09:00",
        "dev",
        "pn-vxlan",
        "dst",
        "10.100.0.9",
    ]);
    lab.ok(&[
        "node",
        "exec",
        "node2",
        "--",
        "ip",
        "route",
        "del",
        "10.244.1.0/24",
    ]);
    let out = lab.ok(&["up", "--api-port", "0"]);
    assert!(
        out.contains("node1: - fdb 0a:58:0a:f4:09:00 dst 10.100.0.9 dev pn-vxlan"),
        "{out}"
    );
    assert!(
        out.contains("node2: + route 10.244.1.0/24 via 10.244.1.0 dev pn-vxlan onlink"),
        "{out}"
    );
    // A VXLAN device left without its alias (podnet killed between creating it and naming it as
    // its own: the kernel takes no alias at creation) is replaced; one with another's alias is not.
    let alias = |text: &str| {
        lab.ok(&[
            "node", "exec", "node1", "--", "ip", "link", "set", "dev", "pn-vxlan", "alias", text,
        ]);
    };
    alias("");
    let out = lab.ok(&["up", "--api-port", "0"]);
    assert!(
        out.contains(
            "node1: - device pn-vxlan (left without its alias by an interrupted creation)"
        ),
        "{out}"
    );
    alias("someone else's");
    let failed = lab.podnet(&["up", "--api-port", "0"]);
    assert!(!failed.status.success());
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        err.contains("a device named pn-vxlan that podnet did not make is in the way"),
        "{err}"
    );
    lab.ok(&[
        "node", "exec", "node1", "--", "ip", "link", "del", "pn-vxlan",
    ]);
    lab.ok(&["up", "--api-port", "0"]);
    let out = lab.ok(&["up", "--api-port", "0"]);
    assert!(out.contains("nothing changed"), "{out}");
}

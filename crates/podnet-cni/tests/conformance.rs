//! CNI conformance of podnet-cni, every rule against every supported cniVersion (0.3.0 to 1.1.0).
//! Root tests: each creates its own namespaces (node, pods, an outside host) and removes them in Drop.

mod common;

use common::*;
use podnet_testkit::{TestNs, link};
use serde_json::{Value, json};
use std::net::{Ipv4Addr, SocketAddr};

fn v_at_least(v: &str, min: &str) -> bool {
    let parse = |s: &str| {
        s.split('.')
            .map(|p| p.parse::<u32>().unwrap())
            .collect::<Vec<_>>()
    };
    parse(v) >= parse(min)
}

// ---------------------------------------------------------------------------------------------
// ADD
// ---------------------------------------------------------------------------------------------

fn add_sets_up_pod_and_host(v: &str) {
    let node = Node::new();
    let pod = TestNs::new("pod");
    let result = node.add("c1", &pod, &node.conf(v)).ok().clone();
    let ip = pod_ip(&result);
    assert_eq!(
        ip,
        Ipv4Addr::new(10, 244, 1, 2),
        "first address after the gateway"
    );

    // Pod side: eth0 with the address, MTU, derived MAC, up; lo up; default route via the gateway; DAD off.
    let mut pnl = pod.netlink();
    let eth0 = pnl.link_by_name("eth0").unwrap().expect("eth0 in the pod");
    assert!(eth0.up);
    assert_eq!(eth0.mtu, 1400);
    assert_eq!(eth0.kind.as_deref(), Some("veth"));
    assert_eq!(
        podnet_types::names::format_mac(&eth0.mac.unwrap()),
        "0a:58:0a:f4:01:02"
    );
    assert!(pnl.link_by_name("lo").unwrap().unwrap().up, "lo is up");
    let addrs = pnl.addresses(Some(eth0.index)).unwrap();
    assert!(
        addrs.iter().any(|a| a.addr.to_string() == "10.244.1.2/24"),
        "{addrs:?}"
    );
    let routes = pnl.routes(false, podnet_netlink::RT_TABLE_MAIN).unwrap();
    assert!(
        routes.iter().any(|r| r.dst.to_string() == "0.0.0.0/0"
            && r.gateway == Some("10.244.1.1".parse().unwrap())),
        "{routes:?}"
    );
    let dad = pod.run(|| std::fs::read_to_string("/proc/sys/net/ipv6/conf/eth0/accept_dad"));
    if let Ok(dad) = dad {
        assert_eq!(dad.trim(), "0", "IPv6 DAD is off on the pod side");
    }

    // Host side: bridge with the gateway, veth on it with hairpin, forwarding on.
    let mut nl = node.ns.netlink();
    let bridge = nl.link_by_name("cni0").unwrap().expect("bridge");
    assert_eq!(bridge.kind.as_deref(), Some("bridge"));
    assert!(
        nl.addresses(Some(bridge.index))
            .unwrap()
            .iter()
            .any(|a| a.addr.to_string() == "10.244.1.1/24")
    );
    let host = result["interfaces"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let veth = nl.link_by_name(&host).unwrap().expect("host veth");
    assert_eq!(veth.master, Some(bridge.index));
    assert_eq!(veth.mtu, 1400);
    assert_eq!(nl.bridge_port_hairpin(veth.index).unwrap(), Some(true));
    assert_eq!(veth.alias.as_deref(), Some("podnet:podnet/c1/eth0"));
    let fwd = node
        .ns
        .run(|| std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap());
    assert_eq!(fwd.trim(), "1");

    // The pod reaches its gateway.
    assert!(
        pod.try_sh("busybox", &["ping", "-c", "1", "-W", "2", "10.244.1.1"])
            .status
            .success()
    );
    assert_eq!(
        node.reservations(),
        vec![("c1".to_string(), "10.244.1.2".to_string())]
    );
}

fn result_has_the_version_shape(v: &str) {
    let node = Node::new();
    let pod = TestNs::new("pod");
    let r = node.add("c1", &pod, &node.conf(v)).ok().clone();
    assert_eq!(r["cniVersion"], v);
    let ifaces = r["interfaces"].as_array().unwrap();
    assert_eq!(ifaces.len(), 2);
    assert!(
        ifaces[0].get("sandbox").is_none(),
        "host interface has no sandbox"
    );
    assert_eq!(ifaces[1]["name"], "eth0");
    assert_eq!(ifaces[1]["sandbox"], pod.path().display().to_string());
    assert_eq!(ifaces[1]["mac"], "0a:58:0a:f4:01:02");
    let ip = &r["ips"][0];
    assert_eq!(ip["address"], "10.244.1.2/24");
    assert_eq!(ip["gateway"], "10.244.1.1");
    assert_eq!(ip["interface"], 1);
    assert_eq!(
        ip.get("version").is_some(),
        !v_at_least(v, "1.0.0"),
        "ips[].version only before 1.0.0"
    );
    assert_eq!(
        ifaces[1].get("mtu").is_some(),
        v_at_least(v, "1.1.0"),
        "interface mtu only from 1.1.0"
    );
    assert_eq!(
        r["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}])
    );
}

fn add_refuses_an_existing_interface_and_leaves_nothing(v: &str) {
    let node = Node::new();
    let pod = TestNs::new("pod");
    let other = TestNs::new("other");
    // Something already called eth0 in the pod.
    link(
        &pod,
        "eth0",
        "192.0.2.1/24".parse().unwrap(),
        &other,
        "x0",
        "192.0.2.2/24".parse().unwrap(),
    );
    let r = node.add("c1", &pod, &node.conf(v));
    assert_eq!(r.err_code(), 105, "{}", r.stdout);
    assert!(r.err_msg().contains("eth0"), "{}", r.err_msg());
    assert!(node.host_veths().is_empty());
    assert!(node.reservations().is_empty());
    assert!(!node.has_link("cni0"), "nothing was created on the node");
}

fn same_node_pods_reach_each_other_with_real_addresses(v: &str) {
    let node = Node::new();
    let (a, b) = (TestNs::new("pa"), TestNs::new("pb"));
    let ra = node.add("ca", &a, &node.conf(v)).ok().clone();
    let rb = node.add("cb", &b, &node.conf(v)).ok().clone();
    let (ipa, ipb) = (pod_ip(&ra), pod_ip(&rb));
    assert_ne!(ipa, ipb);
    let seen = listen(&b, SocketAddr::new(ipb.into(), 8000));
    assert!(connect(&a, SocketAddr::new(ipb.into(), 8000)));
    assert_eq!(
        peer_seen(&seen).map(|p| p.ip()),
        Some(ipa.into()),
        "no NAT between pods"
    );
}

// ---------------------------------------------------------------------------------------------
// masquerade and host ports, against a simulated outside host (TEST-NET-3) linked to the node
// ---------------------------------------------------------------------------------------------

fn outside(node: &Node) -> TestNs {
    let world = TestNs::new("world");
    link(
        &node.ns,
        "uplink",
        "203.0.113.1/24".parse().unwrap(),
        &world,
        "eth0",
        "203.0.113.10/24".parse().unwrap(),
    );
    world
}

fn masquerade_applies_only_outside_the_cluster(v: &str) {
    let node = Node::new();
    let world = outside(&node);
    let pod = TestNs::new("pod");
    node.add("c1", &pod, &node.conf(v)).ok();
    let seen = listen(&world, "203.0.113.10:8000".parse().unwrap());
    assert!(
        connect(&pod, "203.0.113.10:8000".parse().unwrap()),
        "pod reaches the outside host"
    );
    assert_eq!(
        peer_seen(&seen).map(|p| p.ip().to_string()),
        Some("203.0.113.1".into()),
        "the outside host sees the node's address"
    );
    // An ADD after the first changes no firewall state: the masquerade chain is installed once.
    let before = node.ns.sh("nft", &["list", "table", "inet", "podnet-cni"]);
    let pod2 = TestNs::new("pod2");
    node.add("c2", &pod2, &node.conf(v)).ok();
    assert_eq!(
        node.ns.sh("nft", &["list", "table", "inet", "podnet-cni"]),
        before
    );
}

fn masquerade_is_off_when_not_asked(v: &str) {
    let node = Node::new();
    let world = outside(&node);
    // The outside host routes the pod subnet back to the node, so unmasqueraded traffic works too.
    world.sh(
        "ip",
        &["route", "add", "10.244.0.0/16", "via", "203.0.113.1"],
    );
    let pod = TestNs::new("pod");
    let mut conf = node.conf(v);
    conf["ipMasq"] = json!(false);
    let r = node.add("c1", &pod, &conf).ok().clone();
    let seen = listen(&world, "203.0.113.10:8000".parse().unwrap());
    assert!(connect(&pod, "203.0.113.10:8000".parse().unwrap()));
    assert_eq!(peer_seen(&seen).map(|p| p.ip()), Some(pod_ip(&r).into()));
    assert!(
        node.ns
            .try_sh("nft", &["list", "table", "inet", "podnet-cni"])
            .stdout
            .is_empty()
    );
}

fn host_ports_reach_the_pod_and_leave_with_del(v: &str) {
    let node = Node::new();
    let world = outside(&node);
    let pod = TestNs::new("pod");
    let mut conf = node.conf(v);
    conf["runtimeConfig"] =
        json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]});
    let r = node.add("c1", &pod, &conf).ok().clone();
    let ip = pod_ip(&r);

    let seen = listen(&pod, SocketAddr::new(ip.into(), 80));
    assert!(
        connect(&world, "203.0.113.1:8080".parse().unwrap()),
        "outside -> node:8080 -> pod:80"
    );
    assert_eq!(
        peer_seen(&seen).map(|p| p.ip().to_string()),
        Some("203.0.113.10".into()),
        "client address kept"
    );
    let seen = listen(&pod, SocketAddr::new(ip.into(), 80));
    assert!(
        connect(&node.ns, "203.0.113.1:8080".parse().unwrap()),
        "from the node itself"
    );
    assert!(peer_seen(&seen).is_some());

    // A second pod cannot take the same host port; it is refused and leaves nothing behind.
    let pod2 = TestNs::new("pod2");
    let r2 = node.add("c2", &pod2, &conf);
    assert_eq!(r2.err_code(), 102, "{}", r2.stdout);
    assert!(r2.err_msg().contains("8080/tcp"), "{}", r2.err_msg());
    assert_eq!(node.reservations().len(), 1);
    assert_eq!(node.host_veths().len(), 1);

    let del = with_prev(&conf, &r);
    node.run("DEL", "c1", Some(&pod), "eth0", &del).ok_empty();
    let map = node
        .ns
        .sh("nft", &["list", "map", "inet", "podnet-cni", "hostports"]);
    assert!(!map.contains("8080"), "mapping removed: {map}");
    assert!(!connect(&world, "203.0.113.1:8080".parse().unwrap()));
}

/// A pod reaching a host port that leads back to a pod on its own bridge is masqueraded (so replies
/// come back through the NAT); a pod reaching a pod of its bridge through someone else's DNAT (a
/// service proxy's ClusterIP) keeps its own address, as Kubernetes requires.
#[test]
fn only_host_port_hairpins_are_masqueraded() {
    let node = Node::new();
    let (server, client) = (TestNs::new("srv"), TestNs::new("cli"));
    let mut conf = node.conf("1.1.0");
    conf["runtimeConfig"] =
        json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]});
    let server_ip = pod_ip(&node.add("c1", &server, &conf).ok().clone());
    let client_ip = pod_ip(&node.add("c2", &client, &node.conf("1.1.0")).ok().clone());
    // A stand-in for a service proxy: 10.96.0.5:80 DNAT'd to the server pod, in a table of its own.
    let script = format!(
        "add table ip pnt-proxy\nadd chain ip pnt-proxy pre {{ type nat hook prerouting priority -100; }}\nadd rule ip pnt-proxy pre ip daddr 10.96.0.5 tcp dport 80 dnat to {server_ip}:80\n"
    );
    let mut nft = node.ns.command("nft");
    nft.args(["-f", "-"]).stdin(std::process::Stdio::piped());
    let mut child = nft.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), script.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    client.sh("ip", &["route", "add", "10.96.0.0/16", "via", "10.244.1.1"]);

    let seen = listen(&server, SocketAddr::new(server_ip.into(), 80));
    assert!(
        connect(&client, "10.96.0.5:80".parse().unwrap()),
        "through the proxy's DNAT"
    );
    assert_eq!(
        peer_seen(&seen).map(|p| p.ip().to_string()),
        Some(client_ip.to_string()),
        "a service DNAT keeps the client's address"
    );
    let seen = listen(&server, SocketAddr::new(server_ip.into(), 80));
    assert!(
        connect(&client, "10.244.1.1:8080".parse().unwrap()),
        "through the host port"
    );
    assert_eq!(
        peer_seen(&seen).map(|p| p.ip().to_string()),
        Some("10.244.1.1".into()),
        "a host-port hairpin is masqueraded to the bridge's address"
    );
}

// ---------------------------------------------------------------------------------------------
// DEL
// ---------------------------------------------------------------------------------------------

fn del_is_idempotent_and_needs_neither_netns_nor_prev_result(v: &str) {
    let node = Node::new();
    let pod = TestNs::new("pod");
    let conf = node.conf(v);
    let r = node.add("c1", &pod, &conf).ok().clone();
    node.run("DEL", "c1", Some(&pod), "eth0", &with_prev(&conf, &r))
        .ok_empty();
    assert!(node.host_veths().is_empty());
    assert!(node.reservations().is_empty());
    assert!(pod.netlink().link_by_name("eth0").unwrap().is_none());
    // Again, with and without the namespace and prevResult.
    node.run("DEL", "c1", Some(&pod), "eth0", &with_prev(&conf, &r))
        .ok_empty();
    node.run("DEL", "c1", None, "eth0", &conf).ok_empty();

    // Namespace already gone: DEL still releases everything.
    let pod2 = TestNs::new("pod2");
    node.add("c2", &pod2, &conf).ok();
    let gone = pod2.path().display().to_string();
    drop(pod2);
    let r = node.invoke(
        "DEL",
        &[
            ("CNI_CONTAINERID", "c2"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", &gone),
        ],
        conf.to_string().as_bytes(),
    );
    r.ok_empty();
    assert!(node.reservations().is_empty());
    assert!(node.host_veths().is_empty());
}

// ---------------------------------------------------------------------------------------------
// CHECK
// ---------------------------------------------------------------------------------------------

fn check_passes_after_add_and_names_what_is_missing(v: &str) {
    let node = Node::new();
    let pod = TestNs::new("pod");
    let conf = node.conf(v);
    let r = node.add("c1", &pod, &conf).ok().clone();
    let check = with_prev(&conf, &r);
    let run_check = || node.run("CHECK", "c1", Some(&pod), "eth0", &check);
    if !v_at_least(v, "0.4.0") {
        assert_eq!(
            run_check().err_code(),
            1,
            "CHECK does not exist before 0.4.0"
        );
        return;
    }
    run_check().ok_empty();

    pod.sh("ip", &["route", "del", "default"]);
    let r1 = run_check();
    assert_eq!(r1.err_code(), 104);
    assert!(r1.err_msg().contains("route 0.0.0.0/0"), "{}", r1.err_msg());
    pod.sh(
        "ip",
        &[
            "route",
            "add",
            "default",
            "via",
            "10.244.1.1",
            "dev",
            "eth0",
        ],
    );
    run_check().ok_empty();

    pod.sh("ip", &["addr", "flush", "dev", "eth0"]);
    let r2 = run_check();
    assert_eq!(r2.err_code(), 104);
    assert!(
        r2.err_msg().contains("lacks address 10.244.1.2/24"),
        "{}",
        r2.err_msg()
    );

    let host = r["interfaces"][0]["name"].as_str().unwrap();
    node.ns.sh("ip", &["link", "del", host]);
    let r3 = run_check();
    assert_eq!(r3.err_code(), 104);
    assert!(r3.err_msg().contains(host), "{}", r3.err_msg());

    let no_prev = node.run("CHECK", "c1", Some(&pod), "eth0", &conf);
    assert_eq!(no_prev.err_code(), 7);
}

fn check_notices_a_lost_reservation_and_masquerade(v: &str) {
    if !v_at_least(v, "0.4.0") {
        return;
    }
    let node = Node::new();
    let pod = TestNs::new("pod");
    let conf = node.conf(v);
    let r = node.add("c1", &pod, &conf).ok().clone();
    let check = with_prev(&conf, &r);
    let chain = podnet_cni::firewall::masq::chain(
        "podnet",
        "10.244.1.0/24".parse().unwrap(),
        "10.244.0.0/16".parse().unwrap(),
    );
    node.ns
        .sh("nft", &["flush", "chain", "inet", "podnet-cni", &chain]);
    let e = node.run("CHECK", "c1", Some(&pod), "eth0", &check);
    assert_eq!(e.err_code(), 104);
    assert!(e.err_msg().contains("lost its rules"), "{}", e.err_msg());
    node.ns
        .sh("nft", &["delete", "table", "inet", "podnet-cni"]);
    let e = node.run("CHECK", "c1", Some(&pod), "eth0", &check);
    assert_eq!(e.err_code(), 104);
    assert!(e.err_msg().contains("masquerade"), "{}", e.err_msg());

    let state = node.data.0.join("podnet/state.json");
    std::fs::write(&state, r#"{"format": 1, "reservations": {}}"#).unwrap();
    let e = node.run("CHECK", "c1", Some(&pod), "eth0", &check);
    assert_eq!(e.err_code(), 104);
    assert!(
        e.err_msg().contains("no address is reserved"),
        "{}",
        e.err_msg()
    );
}

// ---------------------------------------------------------------------------------------------
// GC and STATUS (1.1.0)
// ---------------------------------------------------------------------------------------------

fn gc_releases_everything_not_valid(v: &str) {
    let node = Node::new();
    let pods: Vec<TestNs> = (0..3).map(|_| TestNs::new("pod")).collect();
    let mut conf = node.conf(v);
    conf["runtimeConfig"] =
        json!({"portMappings": [{"hostPort": 9000, "containerPort": 80, "protocol": "tcp"}]});
    node.add("keep", &pods[0], &conf).ok();
    let plain = node.conf(v);
    node.add("drop1", &pods[1], &plain).ok();
    let mut conf3 = node.conf(v);
    conf3["runtimeConfig"] =
        json!({"portMappings": [{"hostPort": 9001, "containerPort": 80, "protocol": "udp"}]});
    node.add("drop2", &pods[2], &conf3).ok();

    let mut gc = node.conf(v);
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    let r = node.invoke("GC", &[], gc.to_string().as_bytes());
    if !v_at_least(v, "1.1.0") {
        assert_eq!(r.err_code(), 1, "GC does not exist before 1.1.0");
        return;
    }
    r.ok_empty();
    assert_eq!(
        node.reservations()
            .iter()
            .map(|(c, _)| c.as_str())
            .collect::<Vec<_>>(),
        vec!["keep"]
    );
    assert_eq!(
        node.host_veths(),
        vec![podnet_types::names::host_veth_name(
            "podnet", "keep", "eth0"
        )]
    );
    let maps = node.ns.sh("nft", &["list", "table", "inet", "podnet-cni"]);
    assert!(maps.contains("9000") && !maps.contains("9001"), "{maps}");

    // GC without the valid list is refused rather than treated as "nothing is valid".
    let r = node.invoke("GC", &[], node.conf(v).to_string().as_bytes());
    assert_eq!(r.err_code(), 7);
    assert_eq!(node.reservations().len(), 1);
}

fn status_reports_readiness_and_exhaustion(v: &str) {
    let node = Node::new();
    let mut conf = node.conf(v);
    conf["ipam"]["rangeStart"] = json!("10.244.1.2");
    conf["ipam"]["rangeEnd"] = json!("10.244.1.2");
    let r = node.invoke("STATUS", &[], conf.to_string().as_bytes());
    if !v_at_least(v, "1.1.0") {
        assert_eq!(r.err_code(), 1, "STATUS does not exist before 1.1.0");
        return;
    }
    r.ok_empty();
    let pod = TestNs::new("pod");
    node.add("c1", &pod, &conf).ok();
    let r = node.invoke("STATUS", &[], conf.to_string().as_bytes());
    assert_eq!(r.err_code(), 50);
    assert!(r.err_msg().contains("no free address"), "{}", r.err_msg());
    // The bridge vanishes under an attached pod: existing containers lost connectivity (51).
    node.ns.sh("ip", &["link", "del", "cni0"]);
    let r = node.invoke("STATUS", &[], conf.to_string().as_bytes());
    assert_eq!(r.err_code(), 51, "{}", r.stdout);
    assert!(
        r.err_msg().contains("bridge cni0 is gone"),
        "{}",
        r.err_msg()
    );
}

fn disable_check_and_disable_gc_are_honoured(v: &str) {
    let node = Node::new();
    let pod = TestNs::new("pod");
    let mut conf = node.conf(v);
    conf["disableCheck"] = json!(true);
    conf["disableGC"] = json!(true);
    let r = node.add("c1", &pod, &conf).ok().clone();
    pod.sh("ip", &["route", "del", "default"]);
    let check = node.run("CHECK", "c1", Some(&pod), "eth0", &with_prev(&conf, &r));
    if v_at_least(v, "0.4.0") {
        check.ok_empty();
    }
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    let r = node.invoke("GC", &[], gc.to_string().as_bytes());
    if v_at_least(v, "1.1.0") {
        r.ok_empty();
        assert_eq!(node.reservations().len(), 1, "disableGC: nothing released");
        assert_eq!(node.host_veths().len(), 1);
    }
}

// ---------------------------------------------------------------------------------------------
// chaining, rollback, bad input, exhaustion, delegation
// ---------------------------------------------------------------------------------------------

fn prev_result_is_carried_forward(v: &str) {
    let node = Node::new();
    let pod = TestNs::new("pod");
    let prev = json!({"cniVersion": v, "interfaces": [{"name": "lo0", "sandbox": pod.path().display().to_string()}],
                      "ips": [{"address": "192.0.2.5/24", "interface": 0}], "dns": {"nameservers": ["192.0.2.53"]}});
    let r = node
        .add("c1", &pod, &with_prev(&node.conf(v), &prev))
        .ok()
        .clone();
    let ifaces = r["interfaces"].as_array().unwrap();
    assert_eq!(ifaces.len(), 3);
    assert_eq!(ifaces[0]["name"], "lo0");
    assert_eq!(r["ips"][0]["address"], "192.0.2.5/24");
    assert_eq!(r["ips"][1]["address"], "10.244.1.2/24");
    assert_eq!(
        r["ips"][1]["interface"], 2,
        "index re-based after the previous interfaces"
    );
    assert_eq!(r["dns"]["nameservers"], json!(["192.0.2.53"]));
}

fn failure_part_way_rolls_everything_back(v: &str) {
    let node = Node::new();
    let pod = TestNs::new("pod");
    let other = TestNs::new("other");
    // The pod already has a default route through another interface: podnet's route cannot be added,
    // after the address, bridge and veth were made.
    link(
        &pod,
        "x0",
        "192.0.2.1/24".parse().unwrap(),
        &other,
        "x1",
        "192.0.2.2/24".parse().unwrap(),
    );
    pod.sh("ip", &["route", "add", "default", "via", "192.0.2.2"]);
    let r = node.add("c1", &pod, &node.conf(v));
    assert_eq!(r.err_code(), 100, "{}", r.stdout);
    assert!(
        r.err_msg().contains("add route 0.0.0.0/0"),
        "{}",
        r.err_msg()
    );
    assert!(node.host_veths().is_empty(), "veth removed");
    assert!(node.reservations().is_empty(), "address released");
    assert!(pod.netlink().link_by_name("eth0").unwrap().is_none());
    // The same ADD works once the obstacle is gone, and gets an address.
    pod.sh("ip", &["route", "del", "default"]);
    node.add("c1", &pod, &node.conf(v)).ok();
}

fn bad_input_gets_the_spec_code_and_changes_nothing(v: &str) {
    let node = Node::new();
    let pod = TestNs::new("pod");
    let netns = pod.path().display().to_string();
    let env = [
        ("CNI_CONTAINERID", "c1"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_NETNS", netns.as_str()),
    ];

    let r = node.invoke(
        "ADD",
        &env,
        br#"{"cniVersion": "1.1.0", "name": "podnet", "ipam": {"#,
    );
    assert_eq!(r.err_code(), 6, "malformed JSON is a decode error");

    let mut bad_cidr = node.conf(v);
    bad_cidr["ipam"]["subnet"] = json!("10.244.1.0/40");
    let r = node.invoke("ADD", &env, bad_cidr.to_string().as_bytes());
    assert_eq!(r.err_code(), 7);
    assert!(r.err_msg().starts_with("ipam.subnet"), "{}", r.err_msg());
    assert_eq!(
        r.json.as_ref().unwrap()["cniVersion"],
        v,
        "the error speaks the caller's version"
    );

    let mut outside = node.conf(v);
    outside["ipam"]["subnet"] = json!("10.99.1.0/24");
    let r = node.invoke("ADD", &env, outside.to_string().as_bytes());
    assert_eq!(r.err_code(), 7);
    assert!(
        r.err_msg().contains("not inside clusterCIDR 10.244.0.0/16"),
        "{}",
        r.err_msg()
    );

    let r = node.invoke("ADD", &env[..2], node.conf(v).to_string().as_bytes());
    assert_eq!(r.err_code(), 4);
    assert!(r.err_msg().contains("CNI_NETNS"), "{}", r.err_msg());

    let r = node.invoke(
        "ADD",
        &[
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/nonexistent/ns"),
        ],
        node.conf(v).to_string().as_bytes(),
    );
    assert_eq!(
        r.err_code(),
        3,
        "a namespace that does not exist is an unknown container"
    );
    let r = node.invoke(
        "ADD",
        &[
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/proc/self/status"),
        ],
        node.conf(v).to_string().as_bytes(),
    );
    assert_eq!(
        r.err_code(),
        4,
        "a path that is not a network namespace is a bad CNI_NETNS"
    );

    let mut old = node.conf(v);
    old["cniVersion"] = json!("0.2.0");
    assert_eq!(
        node.invoke("ADD", &env, old.to_string().as_bytes())
            .err_code(),
        1
    );

    assert!(!node.has_link("cni0"), "no bridge was created");
    assert!(node.host_veths().is_empty());
    assert!(node.reservations().is_empty());
    assert!(!node.data.0.join("podnet").exists(), "no state was written");
}

fn a_full_subnet_is_a_clear_error_that_leaves_nothing(v: &str) {
    let node = Node::new();
    let mut conf = node.conf(v);
    conf["ipam"]["rangeStart"] = json!("10.244.1.2");
    conf["ipam"]["rangeEnd"] = json!("10.244.1.4");
    let pods: Vec<TestNs> = (0..4).map(|_| TestNs::new("pod")).collect();
    for (i, p) in pods.iter().take(3).enumerate() {
        node.add(&format!("c{i}"), p, &conf).ok();
    }
    let r = node.add("c3", &pods[3], &conf);
    assert_eq!(r.err_code(), 101);
    assert!(r.err_msg().contains("no free address"), "{}", r.err_msg());
    assert_eq!(node.reservations().len(), 3);
    assert_eq!(node.host_veths().len(), 3);
    assert!(pods[3].netlink().link_by_name("eth0").unwrap().is_none());
}

fn delegated_ipam_follows_the_delegation_protocol(v: &str) {
    let node = Node::new();
    let pod = TestNs::new("pod");
    let mut conf = node.conf(v);
    conf["ipam"] = json!({"type": "host-local", "subnet": "10.244.7.0/24", "dataDir": node.data.0.join("host-local").display().to_string()});
    conf["dataDir"] = json!(node.data.0.display().to_string());
    let r = node.add("c1", &pod, &conf);
    if v == "1.1.0" {
        // Debian's host-local speaks up to 1.0.0: its own "incompatible version" error passes through.
        assert_eq!(r.err_code(), 1, "{}", r.stdout);
        assert!(node.host_veths().is_empty());
        return;
    }
    let result = r.ok().clone();
    assert_eq!(pod_ip(&result), Ipv4Addr::new(10, 244, 7, 2));
    assert!(
        node.data.0.join("host-local/podnet/10.244.7.2").exists(),
        "host-local holds the address"
    );
    node.run("DEL", "c1", Some(&pod), "eth0", &with_prev(&conf, &result))
        .ok_empty();
    assert!(
        !node.data.0.join("host-local/podnet/10.244.7.2").exists(),
        "DEL was delegated"
    );
}

macro_rules! for_every_version {
    ($($test:ident),* $(,)?) => {
        mod v0_3_0 { $( #[test] fn $test() { super::$test("0.3.0") } )* }
        mod v0_3_1 { $( #[test] fn $test() { super::$test("0.3.1") } )* }
        mod v0_4_0 { $( #[test] fn $test() { super::$test("0.4.0") } )* }
        mod v1_0_0 { $( #[test] fn $test() { super::$test("1.0.0") } )* }
        mod v1_1_0 { $( #[test] fn $test() { super::$test("1.1.0") } )* }
    };
}

for_every_version!(
    add_sets_up_pod_and_host,
    result_has_the_version_shape,
    add_refuses_an_existing_interface_and_leaves_nothing,
    same_node_pods_reach_each_other_with_real_addresses,
    masquerade_applies_only_outside_the_cluster,
    masquerade_is_off_when_not_asked,
    host_ports_reach_the_pod_and_leave_with_del,
    del_is_idempotent_and_needs_neither_netns_nor_prev_result,
    check_passes_after_add_and_names_what_is_missing,
    check_notices_a_lost_reservation_and_masquerade,
    gc_releases_everything_not_valid,
    status_reports_readiness_and_exhaustion,
    disable_check_and_disable_gc_are_honoured,
    prev_result_is_carried_forward,
    failure_part_way_rolls_everything_back,
    bad_input_gets_the_spec_code_and_changes_nothing,
    a_full_subnet_is_a_clear_error_that_leaves_nothing,
    delegated_ipam_follows_the_delegation_protocol,
);

#[test]
fn version_reports_every_supported_version() {
    let node = Node::new();
    let r = node.invoke("VERSION", &[], br#"{"cniVersion": "1.0.0"}"#);
    let v: Value = r.ok().clone();
    assert_eq!(v["cniVersion"], "1.0.0");
    assert_eq!(v["supportedVersions"], json!(ALL_VERSIONS));
}

// ---------------------------------------------------------------------------------------------
// Findings of the review, each once (they do not depend on the spec version)
// ---------------------------------------------------------------------------------------------

fn with_ports(node: &Node, ports: Value) -> Value {
    let mut c = node.conf("1.1.0");
    c["runtimeConfig"] = json!({ "portMappings": ports });
    c
}

fn map_text(node: &Node) -> String {
    String::from_utf8_lossy(
        &node
            .ns
            .try_sh("nft", &["list", "map", "inet", "podnet-cni", "hostports"])
            .stdout,
    )
    .into_owned()
}

#[test]
fn loopback_is_not_host_ported_and_node_local_services_keep_their_port() {
    let node = Node::new();
    let pod = TestNs::new("pod");
    let r = node
        .add(
            "c1",
            &pod,
            &with_ports(&node, json!([{"hostPort": 8080, "containerPort": 80}])),
        )
        .ok()
        .clone();
    let seen_pod = listen(&pod, SocketAddr::new(pod_ip(&r).into(), 80));
    let seen_local = listen(&node.ns, "127.0.0.1:8080".parse().unwrap());
    assert!(
        connect(&node.ns, "127.0.0.1:8080".parse().unwrap()),
        "the node's own 127.0.0.1:8080 stays reachable"
    );
    assert!(
        peer_seen(&seen_local).is_some(),
        "and it is the node-local service that answers"
    );
    drop(seen_pod);
}

#[test]
fn del_removes_only_mappings_that_point_at_its_own_pod() {
    let node = Node::new();
    let (p1, p2) = (TestNs::new("p1"), TestNs::new("p2"));
    let conf = with_ports(&node, json!([{"hostPort": 8080, "containerPort": 80}]));
    node.add("c1", &p1, &conf).ok();
    // The firewall lost c1's element (a flush, a reboot); c2 then got the port legitimately.
    node.ns.sh(
        "nft",
        &[
            "delete",
            "element",
            "inet",
            "podnet-cni",
            "hostports",
            "{ tcp . 8080 }",
        ],
    );
    let r2 = node.add("c2", &p2, &conf).ok().clone();
    node.run("DEL", "c1", Some(&p1), "eth0", &conf).ok_empty();
    assert!(
        map_text(&node).contains(&format!("tcp . 8080 : {} . 80", pod_ip(&r2))),
        "c2's mapping survives c1's DEL: {}",
        map_text(&node)
    );
}

#[test]
fn check_compares_host_ports_by_key_and_target() {
    let node = Node::new();
    let pod = TestNs::new("pod");
    let conf = with_ports(
        &node,
        json!([{"hostPort": 80, "containerPort": 80}, {"hostPort": 8080, "containerPort": 8080}]),
    );
    let r = node.add("c1", &pod, &conf).ok().clone();
    node.ns.sh(
        "nft",
        &[
            "delete",
            "element",
            "inet",
            "podnet-cni",
            "hostports",
            "{ tcp . 80 }",
        ],
    );
    let e = node.run("CHECK", "c1", Some(&pod), "eth0", &with_prev(&conf, &r));
    assert_eq!(e.err_code(), 104);
    assert!(
        e.err_msg().contains("host port 80/tcp is not mapped"),
        "{}",
        e.err_msg()
    );
}

#[test]
fn gc_removes_host_ports_nobody_recorded_in_its_subnet_only() {
    let node = Node::new();
    let pod = TestNs::new("pod");
    let conf = with_ports(&node, json!([{"hostPort": 8080, "containerPort": 80}]));
    node.add("keep", &pod, &conf).ok();
    // What a plugin killed between installing and recording used to leave, plus another network's.
    node.ns.sh(
        "nft",
        &[
            "add",
            "element",
            "inet",
            "podnet-cni",
            "hostports",
            "{ tcp . 9090 : 10.244.1.77 . 80 }",
        ],
    );
    node.ns.sh(
        "nft",
        &[
            "add",
            "element",
            "inet",
            "podnet-cni",
            "hostports",
            "{ tcp . 9191 : 10.245.9.9 . 80 }",
        ],
    );
    let mut gc = node.conf("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    node.invoke("GC", &[], gc.to_string().as_bytes()).ok_empty();
    let map = map_text(&node);
    assert!(
        !map.contains("9090"),
        "the stray mapping into this subnet is gone: {map}"
    );
    assert!(
        map.contains("8080") && map.contains("9191"),
        "the valid one and the other network's stay: {map}"
    );
}

#[test]
fn host_ports_are_the_nodes_whichever_network_asks() {
    let node = Node::new();
    let (p1, p2) = (TestNs::new("p1"), TestNs::new("p2"));
    node.add(
        "c1",
        &p1,
        &with_ports(&node, json!([{"hostPort": 8080, "containerPort": 80}])),
    )
    .ok();
    let mut other = with_ports(&node, json!([{"hostPort": 8080, "containerPort": 80}]));
    other["name"] = json!("other");
    other["bridge"] = json!("br-other");
    other["ipam"]["subnet"] = json!("10.244.9.0/24");
    let r = node.add("c2", &p2, &other);
    assert_eq!(r.err_code(), 102, "{}", r.stdout);
    assert!(
        r.err_msg().contains("8080/tcp") && r.err_msg().contains("already maps it"),
        "{}",
        r.err_msg()
    );
}

#[test]
fn networks_with_prefixed_names_keep_their_own_masquerade() {
    let node = Node::new();
    let (p1, p2) = (TestNs::new("p1"), TestNs::new("p2"));
    let mut a = node.conf("1.1.0");
    a["name"] = json!("net-2");
    a["bridge"] = json!("br-a");
    a["ipam"]["subnet"] = json!("10.244.5.0/24");
    let mut b = node.conf("1.1.0");
    b["name"] = json!("net");
    b["bridge"] = json!("br-b");
    b["ipam"]["subnet"] = json!("10.244.6.0/24");
    node.add("q1", &p1, &a).ok();
    node.add("q2", &p2, &b).ok();
    let ruleset = node.ns.sh("nft", &["list", "table", "inet", "podnet-cni"]);
    assert!(
        ruleset.contains("masq-net-2-") && ruleset.contains("10.244.5.0/24"),
        "{ruleset}"
    );
    assert!(ruleset.contains("10.244.6.0/24"), "{ruleset}");
}

#[test]
fn a_bridge_shared_by_two_networks_keeps_its_mac() {
    let node = Node::new();
    let (p1, p2) = (TestNs::new("p1"), TestNs::new("p2"));
    let mut a = node.conf("1.1.0");
    a["name"] = json!("neta");
    a["ipam"]["subnet"] = json!("10.244.11.0/24");
    let mut b = a.clone();
    b["name"] = json!("netb");
    b["ipam"]["subnet"] = json!("10.244.12.0/24");
    node.add("s1", &p1, &a).ok();
    let mac = |n: &Node| n.ns.netlink().link_by_name("cni0").unwrap().unwrap().mac;
    let before = mac(&node);
    node.add("s2", &p2, &b).ok();
    assert_eq!(
        mac(&node),
        before,
        "the second network must not change the bridge's MAC under the first's pods"
    );
    assert!(
        p1.try_sh("busybox", &["ping", "-c", "1", "-W", "2", "10.244.11.1"])
            .status
            .success(),
        "the first network's pod still reaches its gateway"
    );
}

#[test]
fn long_and_unusual_names_are_handled_without_leaks_or_panics() {
    let node = Node::new();
    let pod = TestNs::new("pod");
    let mut conf = node.conf("1.1.0");
    conf["name"] = json!(format!("n{}", "x".repeat(240)));
    node.add("q3", &pod, &conf).ok();
    node.run("DEL", "q3", Some(&pod), "eth0", &conf).ok_empty();
    assert!(node.host_veths().is_empty());
    let pod2 = TestNs::new("pod2");
    let mut conf = node.conf("1.1.0");
    conf["name"] = json!(format!("n{}", "y".repeat(200)));
    let r = node.run("ADD", &"c".repeat(45), Some(&pod2), "éé", &conf);
    assert!(r.json.is_some(), "a JSON answer, not a crash: {}", r.stdout);
    node.run("DEL", &"c".repeat(45), Some(&pod2), "éé", &conf)
        .ok_empty();
    assert!(node.host_veths().is_empty());
}

#[test]
fn a_corrupt_state_is_rebuilt_from_the_attachments_on_the_node() {
    let node = Node::new();
    let pods: Vec<TestNs> = (0..3).map(|_| TestNs::new("pod")).collect();
    let conf = with_ports(&node, json!([{"hostPort": 7070, "containerPort": 70}]));
    let plain = node.conf("1.1.0");
    let r1 = node.add("a1", &pods[0], &conf).ok().clone();
    let r2 = node.add("a2", &pods[1], &plain).ok().clone();
    std::fs::write(
        node.data.0.join("podnet/state.json"),
        b"{\"format\": 1, \"reservations\": {",
    )
    .unwrap();
    let r3 = node.add("a3", &pods[2], &plain).ok().clone();
    let ips = [pod_ip(&r1), pod_ip(&r2), pod_ip(&r3)];
    assert!(
        ips[2] != ips[0] && ips[2] != ips[1],
        "no address handed out twice: {ips:?}"
    );
    let mut held: Vec<String> = node.reservations().into_iter().map(|(c, _)| c).collect();
    held.sort();
    assert_eq!(held, ["a1", "a2", "a3"]);
    let state = std::fs::read_to_string(node.data.0.join("podnet/state.json")).unwrap();
    assert!(
        state.contains("7070"),
        "a1's host port was recovered from the firewall: {state}"
    );
    let kept = std::fs::read_dir(node.data.0.join("podnet"))
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains("corrupt"));
    assert!(kept, "the unreadable file is kept aside");
}

#[test]
fn status_and_del_create_nothing_and_status_knows_a_bridge_from_a_veth() {
    let node = Node::new();
    let mut conf = node.conf("1.1.0");
    conf["ipam"]["dataDir"] = json!("/proc/podnet-nowhere");
    node.run("DEL", "c1", None, "eth0", &conf).ok_empty();
    let r = node.invoke("STATUS", &[], conf.to_string().as_bytes());
    assert_eq!(
        r.err_code(),
        50,
        "a dataDir that cannot be created: {}",
        r.stdout
    );
    let other = TestNs::new("other");
    podnet_testkit::link(
        &node.ns,
        "cni0",
        "192.0.2.1/24".parse().unwrap(),
        &other,
        "x0",
        "192.0.2.2/24".parse().unwrap(),
    );
    let r = node.invoke("STATUS", &[], node.conf("1.1.0").to_string().as_bytes());
    assert_eq!(r.err_code(), 50);
    assert!(r.err_msg().contains("not a bridge"), "{}", r.err_msg());
}

#[test]
fn ipam_routes_may_go_through_their_own_gateway() {
    let node = Node::new();
    let pod = TestNs::new("pod");
    let mut conf = node.conf("1.1.0");
    conf["ipam"]["routes"] =
        json!([{"dst": "0.0.0.0/0"}, {"dst": "192.0.2.0/24", "gw": "10.244.1.254"}]);
    let r = node.add("c1", &pod, &conf).ok().clone();
    assert_eq!(
        r["routes"][1],
        json!({"dst": "192.0.2.0/24", "gw": "10.244.1.254"})
    );
    let routes = pod.sh("ip", &["route"]);
    assert!(
        routes.contains("192.0.2.0/24 via 10.244.1.254 dev eth0"),
        "{routes}"
    );
    node.run("CHECK", "c1", Some(&pod), "eth0", &with_prev(&conf, &r))
        .ok_empty();
}

// ---------------------------------------------------------------------------------------------
// Issue 7: the keys containerd sends, and a DEL that always finishes
// ---------------------------------------------------------------------------------------------

/// `runtimeConfig` exactly as containerd 1.6/1.7 (go-cni) marshals it: Go field names, no JSON tags.
fn containerd_runtime_config(host_port: u16) -> Value {
    json!({
        "portMappings": [{"HostPort": host_port, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}],
        "bandwidth": {"IngressRate": 10_000_000, "IngressBurst": 2_147_483_647, "EgressRate": 0, "EgressBurst": 0},
        "dns": {"Servers": ["10.96.0.10"], "Searches": ["default.svc.cluster.local"], "Options": ["ndots:5"]},
        "cgroupPath": "/kubepods/besteffort/pod1234",
        "io.kubernetes.cri.pod-annotations": {"kubernetes.io/ingress-bandwidth": "10M"}
    })
}

#[test]
fn host_ports_in_containerds_go_field_names_work_and_leave_with_del() {
    let node = Node::new();
    let world = outside(&node);
    let pod = TestNs::new("pod");
    let mut conf = node.conf("1.0.0");
    conf["runtimeConfig"] = containerd_runtime_config(18080);
    let add = node.add("c1", &pod, &conf);
    let r = add.ok().clone();
    assert!(
        add.stderr
            .contains("runtimeConfig.bandwidth: podnet-cni does not shape traffic"),
        "the ignored shaping is logged: {}",
        add.stderr
    );
    let ip = pod_ip(&r);
    let seen = listen(&pod, SocketAddr::new(ip.into(), 80));
    assert!(connect(&world, "203.0.113.1:18080".parse().unwrap()));
    assert!(peer_seen(&seen).is_some());
    node.run("CHECK", "c1", Some(&pod), "eth0", &with_prev(&conf, &r))
        .ok_empty();
    node.run("DEL", "c1", Some(&pod), "eth0", &with_prev(&conf, &r))
        .ok_empty();
    assert!(!map_text(&node).contains("18080"));
    assert!(node.reservations().is_empty());
}

#[test]
fn del_undoes_add_whatever_the_configuration_says_now() {
    let node = Node::new();
    let pod = TestNs::new("pod");
    let mut conf = node.conf("1.0.0");
    conf["runtimeConfig"] = containerd_runtime_config(18081);
    let r = node.add("c1", &pod, &conf).ok().clone();
    assert!(map_text(&node).contains("18081"));

    // The configuration DEL gets is broken in every field but the name (the issue's case first: a
    // runtimeConfig the plugin cannot read), and CNI_ARGS is malformed.
    let mut broken = with_prev(&conf, &r);
    broken["runtimeConfig"] = json!({"portMappings": [{"hostPort": "eighty"}]});
    broken["mtu"] = json!("big");
    broken["ipam"]["subnet"] = json!("10.244.1.0/40");
    broken["prevResult"] = json!({"ips": 5});
    broken["cniVersion"] = json!("0.2.0");
    let netns = pod.path().display().to_string();
    let del = node.invoke(
        "DEL",
        &[
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", &netns),
            ("CNI_ARGS", "K8S_POD_NAME"),
        ],
        broken.to_string().as_bytes(),
    );
    del.ok_empty();
    for logged in [
        "runtimeConfig.portMappings[0].hostPort",
        "mtu:",
        "ipam.subnet:",
        "prevResult.ips:",
        "CNI_ARGS:",
    ] {
        assert!(
            del.stderr.contains(logged),
            "{logged} logged: {}",
            del.stderr
        );
    }
    assert!(node.reservations().is_empty(), "address released");
    assert!(node.host_veths().is_empty(), "veth removed");
    assert!(!map_text(&node).contains("18081"), "host port removed");

    // Identifiers ADD would refuse cannot name anything ADD made: noted, and DEL succeeds.
    let del = node.invoke(
        "DEL",
        &[
            ("CNI_CONTAINERID", "-odd id/.."),
            ("CNI_IFNAME", "an-interface-name-too-long"),
        ],
        conf.to_string().as_bytes(),
    );
    del.ok_empty();
    assert!(
        del.stderr.contains("CNI_CONTAINERID:") && del.stderr.contains("CNI_IFNAME:"),
        "{}",
        del.stderr
    );

    // Input from which nothing can be found: nothing to undo, and DEL says so and succeeds.
    for stdin in [
        &b"not json"[..],
        br#"{"cniVersion": "1.0.0"}"#,
        br#"{"name": "../etc"}"#,
    ] {
        let del = node.invoke(
            "DEL",
            &[("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "eth0")],
            stdin,
        );
        del.ok_empty();
        assert!(del.stderr.contains("nothing to undo"), "{}", del.stderr);
    }
}

#[test]
fn a_sandbox_whose_add_was_refused_can_be_deleted() {
    let node = Node::new();
    let pod = TestNs::new("pod");
    let mut conf = node.conf("1.1.0");
    conf["runtimeConfig"] = json!({"portMappings": [{"ContainerPort": 80, "Protocol": "tcp"}]});
    let add = node.add("c1", &pod, &conf);
    assert_eq!(add.err_code(), 7);
    assert!(
        add.err_msg()
            .starts_with("runtimeConfig.portMappings[0].hostPort: missing"),
        "{}",
        add.err_msg()
    );
    assert!(node.host_veths().is_empty() && node.reservations().is_empty());
    // What a runtime does next: DEL with the same input, which must succeed or the sandbox is stuck.
    node.run("DEL", "c1", Some(&pod), "eth0", &conf).ok_empty();
    node.run("DEL", "c1", None, "eth0", &conf).ok_empty();

    // A bad mac is refused the same way.
    conf["runtimeConfig"] = json!({"mac": "01:00:5e:00:00:01"});
    let add = node.add("c1", &pod, &conf);
    assert_eq!(add.err_code(), 7);
    assert!(
        add.err_msg().starts_with("runtimeConfig.mac:"),
        "{}",
        add.err_msg()
    );
}

#[test]
fn check_and_gc_do_not_trip_over_capability_arguments() {
    let node = Node::new();
    let pod = TestNs::new("pod");
    let mut conf = node.conf("1.1.0");
    conf["runtimeConfig"] = json!({"portMappings": [{"hostPort": 18082, "containerPort": 80}]});
    let r = node.add("c1", &pod, &conf).ok().clone();
    let mut odd = with_prev(&conf, &r);
    odd["runtimeConfig"] = json!({"portMappings": "whatever", "bandwidth": 7});
    let check = node.run("CHECK", "c1", Some(&pod), "eth0", &odd);
    check.ok_empty();
    assert!(
        check.stderr.contains("runtimeConfig.portMappings"),
        "{}",
        check.stderr
    );
    // The host port recorded by ADD is still what CHECK checks: removing it is noticed.
    node.ns
        .sh("nft", &["flush", "map", "inet", "podnet-cni", "hostports"]);
    assert_eq!(
        node.run("CHECK", "c1", Some(&pod), "eth0", &odd).err_code(),
        104
    );

    let mut gc = node.conf("1.1.0");
    gc["runtimeConfig"] = json!({"portMappings": "whatever"});
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "c1", "ifname": "eth0"}]);
    node.invoke("GC", &[], gc.to_string().as_bytes()).ok_empty();
    assert_eq!(node.reservations().len(), 1, "the valid attachment is kept");
    gc["cni.dev/valid-attachments"] = json!([{"ContainerID": "c1", "IfName": "eth0"}]);
    node.invoke("GC", &[], gc.to_string().as_bytes()).ok_empty();
    assert_eq!(
        node.reservations().len(),
        1,
        "Go field names name the same attachment"
    );
    gc["cni.dev/valid-attachments"] = json!([{"containerID": 1}]);
    assert_eq!(
        node.invoke("GC", &[], gc.to_string().as_bytes()).err_code(),
        6,
        "a bad list never means none are valid"
    );
    assert_eq!(node.reservations().len(), 1);
}

#[test]
fn the_mac_capability_sets_the_pod_interface_address() {
    let node = Node::new();
    let pod = TestNs::new("pod");
    let mut conf = node.conf("1.1.0");
    conf["runtimeConfig"] = json!({"MAC": "c2:11:22:33:44:55"});
    let r = node.add("c1", &pod, &conf).ok().clone();
    assert_eq!(r["interfaces"][1]["mac"], "c2:11:22:33:44:55");
    let link = pod.netlink().link_by_name("eth0").unwrap().unwrap();
    assert_eq!(link.mac, Some([0xc2, 0x11, 0x22, 0x33, 0x44, 0x55]));
    node.run("CHECK", "c1", Some(&pod), "eth0", &with_prev(&conf, &r))
        .ok_empty();
    node.run("DEL", "c1", Some(&pod), "eth0", &conf).ok_empty();
}

#[test]
fn del_succeeds_when_the_delegated_ipam_is_not_installed() {
    let node = Node::new();
    let conf = json!({"cniVersion": "1.0.0", "name": "podnet", "type": "podnet-cni", "bridge": "cni0",
        "dataDir": node.data.0.display().to_string(), "ipam": {"type": "pnt-no-such-ipam"}});
    let del = node.run("DEL", "c1", None, "eth0", &conf);
    del.ok_empty();
    assert!(del.stderr.contains("pnt-no-such-ipam"), "{}", del.stderr);
    let netns_less_add = node.run("ADD", "c1", None, "eth0", &conf);
    assert_eq!(netns_less_add.err_code(), 4);
}

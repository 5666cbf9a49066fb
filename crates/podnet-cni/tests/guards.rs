//! The per-port guards ADD sets up (root; namespaces these tests create): anti-spoofing on the
//! bridge port (`spoofCheck`) and the NetworkPolicy start-up hold in podnet-agent's table. Every
//! spoofed frame that must be dropped is shown dropped twice: it does not arrive, and the rule that
//! drops it counts it; the same frame with the check off arrives, so the tests can fail.

mod common;

use common::{Node, pod_ip};
use podnet_testkit::TestNs;
use podnet_types::names;
use serde_json::Value;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::time::Duration;

const CHAIN: &str = "antispoof-2";

fn conf(node: &Node, spoof_check: bool) -> Value {
    let mut c = node.conf("1.1.0");
    c["spoofCheck"] = Value::Bool(spoof_check);
    c["policyHold"] = Value::Bool(true);
    c
}

/// Three pods on one node: a is the attacker, b the pod it pretends to be, c the target.
struct Pods {
    node: Node,
    a: TestNs,
    b: TestNs,
    c: TestNs,
    ip_a: Ipv4Addr,
    ip_b: Ipv4Addr,
    ip_c: Ipv4Addr,
}

fn pods(spoof_check: bool) -> Pods {
    let node = Node::new();
    let (a, b, c) = (TestNs::new("pa"), TestNs::new("pb"), TestNs::new("pc"));
    let conf = conf(&node, spoof_check);
    let ip_a = pod_ip(node.add("ca", &a, &conf).ok());
    let ip_b = pod_ip(node.add("cb", &b, &conf).ok());
    let ip_c = pod_ip(node.add("cc", &c, &conf).ok());
    Pods {
        node,
        a,
        b,
        c,
        ip_a,
        ip_b,
        ip_c,
    }
}

/// Sends one UDP datagram from `from` (an address of `ns`) to `to` and says whether `rx` got it.
fn udp_arrives(ns: &TestNs, from: SocketAddr, rx: &UdpSocket, to: SocketAddr) -> bool {
    let payload = format!("pnt-{from}");
    ns.run(|| {
        let s = UdpSocket::bind(from).unwrap_or_else(|e| panic!("bind {from}: {e}"));
        s.send_to(payload.as_bytes(), to)
            .unwrap_or_else(|e| panic!("send from {from} to {to}: {e}"));
    });
    rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 128];
    loop {
        match rx.recv_from(&mut buf) {
            Ok((n, _)) if buf[..n] == *payload.as_bytes() => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
}

fn listen(ns: &TestNs, at: SocketAddr) -> UdpSocket {
    ns.run(|| UdpSocket::bind(at))
        .unwrap_or_else(|e| panic!("listen on {at}: {e}"))
}

/// The packets counted by the guard's rule whose text contains `rule`.
fn dropped(node: &Node, rule: &str) -> u64 {
    let text = node
        .ns
        .sh("nft", &["list", "chain", "bridge", "podnet-cni", CHAIN]);
    let line = text
        .lines()
        .find(|l| l.contains(rule))
        .unwrap_or_else(|| panic!("no rule {rule:?} in {text}"));
    line.split("counter packets ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {line:?}"))
}

/// a takes b's address as a second one and sends from it; c's neighbour entry is made by hand so
/// no ARP from the stolen address is needed (that is the next test).
fn send_as_b(p: &Pods) -> bool {
    let mac_c = names::format_mac(&names::mac_for_ip(p.ip_c));
    p.a.sh(
        "ip",
        &["addr", "add", &format!("{}/32", p.ip_b), "dev", "eth0"],
    );
    p.a.sh(
        "ip",
        &[
            "neigh",
            "replace",
            &p.ip_c.to_string(),
            "lladdr",
            &mac_c,
            "dev",
            "eth0",
        ],
    );
    let to = SocketAddr::new(p.ip_c.into(), 7001);
    let rx = listen(&p.c, to);
    udp_arrives(&p.a, SocketAddr::new(p.ip_b.into(), 0), &rx, to)
}

#[test]
fn a_pod_cannot_send_with_another_pods_address() {
    let off = pods(false);
    assert!(
        send_as_b(&off),
        "without spoofCheck the stolen address passes"
    );

    let p = pods(true);
    // Its own address passes.
    let to = SocketAddr::new(p.ip_c.into(), 7000);
    let rx = listen(&p.c, to);
    assert!(udp_arrives(
        &p.a,
        SocketAddr::new(p.ip_a.into(), 0),
        &rx,
        to
    ));
    let before = dropped(&p.node, "ip saddr != @ports-ip");
    assert!(!send_as_b(&p), "a reached c as b");
    assert!(dropped(&p.node, "ip saddr != @ports-ip") > before);
    // b itself still reaches c: its address was not taken from it.
    let to = SocketAddr::new(p.ip_c.into(), 7002);
    let rx = listen(&p.c, to);
    assert!(udp_arrives(
        &p.b,
        SocketAddr::new(p.ip_b.into(), 0),
        &rx,
        to
    ));
}

/// ARP claiming b's address from a's port would teach c (and the node) to send b's traffic to a.
#[test]
fn a_pod_cannot_claim_another_pods_address_over_arp() {
    for check in [false, true] {
        let p = pods(check);
        // c learns b's real MAC.
        let to = SocketAddr::new(p.ip_b.into(), 7003);
        let rx = listen(&p.b, to);
        assert!(udp_arrives(
            &p.c,
            SocketAddr::new(p.ip_c.into(), 0),
            &rx,
            to
        ));
        // The kernel lets an ARP reply override an entry only after its locktime (1 s by default).
        std::thread::sleep(Duration::from_millis(1500));
        let mac_a = names::format_mac(&names::mac_for_ip(p.ip_a));
        // a sends gratuitous ARP replies for b's address (Linux updates an existing entry from them).
        p.a.sh(
            "ip",
            &["addr", "add", &format!("{}/32", p.ip_b), "dev", "eth0"],
        );
        let before = if check {
            dropped(&p.node, "arp saddr ip != @ports-ip")
        } else {
            0
        };
        let ip_b = p.ip_b;
        let own_mac = names::mac_for_ip(p.ip_a);
        p.a.run(|| gratuitous_arp("eth0", own_mac, ip_b, 3));
        let neigh = p.c.sh("ip", &["neigh", "show", &p.ip_b.to_string()]);
        if check {
            assert!(
                !neigh.contains(&mac_a),
                "c now sends b's traffic to a: {neigh}"
            );
            assert!(dropped(&p.node, "arp saddr ip != @ports-ip") > before);
        } else {
            assert!(
                neigh.contains(&mac_a),
                "without spoofCheck the ARP claim is believed: {neigh}"
            );
        }
    }
}

/// The bridge hands frames sent to an 802.1 reserved group address (01:80:c2:00:00:0e here) to
/// the port's own IP stack without passing them through the bridge's hooks, so the chain never sees
/// them: the port itself must refuse them (ADD sets `rp_filter` 1 and no IPv6 on it).
#[test]
fn frames_to_reserved_group_addresses_do_not_reach_the_node_as_another_pod() {
    let p = pods(true);
    for k in ["all", "default"] {
        p.node.ns.sh(
            "sysctl",
            &["-qw", &format!("net.ipv4.conf.{k}.rp_filter=0")],
        );
    }
    let ports: Vec<String> = p
        .node
        .ns
        .sh("ip", &["-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with(names::HOST_VETH_PREFIX))
        .collect();
    assert_eq!(ports.len(), 3, "{ports:?}");
    for port in &ports {
        for (key, want) in [
            (format!("net.ipv4.conf.{port}.rp_filter"), "1"),
            (format!("net.ipv6.conf.{port}.disable_ipv6"), "1"),
        ] {
            assert_eq!(p.node.ns.sh("sysctl", &["-n", &key]).trim(), want, "{key}");
        }
    }
    let gw: Ipv4Addr = p
        .node
        .ns
        .sh("ip", &["-4", "-o", "addr", "show", "dev", "cni0"])
        .split_whitespace()
        .nth(3)
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .expect("the bridge's gateway address");
    let at = SocketAddr::new(gw.into(), 9999);
    let rx = listen(&p.node.ns, at);
    rx.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mac_a = names::mac_for_ip(p.ip_a);
    let (ip_b, port_count) = (p.ip_b, ports.len());
    let arrives = |tag: &str| {
        let payload = format!("pnt-reserved-{tag}");
        let frame = ipv4_udp(
            [0x01, 0x80, 0xc2, 0, 0, 0x0e],
            mac_a,
            ip_b,
            gw,
            9999,
            &payload,
        );
        p.a.run(|| send_frames("eth0", &frame, 3));
        let mut buf = [0u8; 128];
        loop {
            match rx.recv_from(&mut buf) {
                Ok((n, from)) if buf[..n] == *payload.as_bytes() => return Some(from),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    };
    // What the port settings prevent: with them undone the node takes the frame as b's.
    for port in &ports {
        p.node.ns.sh(
            "sysctl",
            &["-qw", &format!("net.ipv4.conf.{port}.rp_filter=0")],
        );
    }
    let from = arrives("open");
    assert_eq!(
        from.map(|f| f.ip()),
        Some(ip_b.into()),
        "without the port settings the frame arrives as b's ({port_count} ports)"
    );
    for port in &ports {
        p.node.ns.sh(
            "sysctl",
            &["-qw", &format!("net.ipv4.conf.{port}.rp_filter=1")],
        );
    }
    assert_eq!(
        arrives("closed"),
        None,
        "the port took a reserved-group frame"
    );
}

/// An Ethernet frame carrying one IPv4 UDP datagram (no UDP checksum).
fn ipv4_udp(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    port: u16,
    payload: &str,
) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    let check = !((folded & 0xffff) + (folded >> 16)) as u16;
    ip[10..12].copy_from_slice(&check.to_be_bytes());
    let mut frame = dst_mac.to_vec();
    frame.extend_from_slice(&src_mac);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&5555u16.to_be_bytes());
    frame.extend_from_slice(&port.to_be_bytes());
    frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(payload.as_bytes());
    frame
}

/// Sends `frame` `count` times out of `ifname` (a packet socket in this thread's namespace).
fn send_frames(ifname: &str, frame: &[u8], count: usize) {
    let name = std::ffi::CString::new(ifname).unwrap();
    // SAFETY: a NUL-terminated name; the lookup goes through this thread's network namespace.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
    assert!(index > 0, "no {ifname} here");
    // SAFETY: a packet socket we own, a frame and an address that outlive the calls.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        assert!(
            fd >= 0,
            "packet socket: {}",
            std::io::Error::last_os_error()
        );
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = index;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&frame[..6]);
        for _ in 0..count {
            let n = libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(
                n,
                frame.len() as isize,
                "send: {}",
                std::io::Error::last_os_error()
            );
        }
        libc::close(fd);
    }
}

/// Sends `count` gratuitous ARP replies for `ip` out of `ifname`, from `mac` (the interface's).
fn gratuitous_arp(ifname: &str, mac: [u8; 6], ip: Ipv4Addr, count: usize) {
    let name = std::ffi::CString::new(ifname).unwrap();
    // SAFETY: a NUL-terminated name; the lookup goes through this thread's network namespace.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
    assert!(index > 0, "no {ifname} here");
    let mut frame = vec![0xffu8; 6];
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&[0x08, 0x06]); // ARP
    frame.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 2]); // Ethernet/IPv4, reply
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&ip.octets());
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&ip.octets());
    // SAFETY: a packet socket we own, a frame and an address that outlive the calls.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        assert!(
            fd >= 0,
            "packet socket: {}",
            std::io::Error::last_os_error()
        );
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = index;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        for _ in 0..count {
            let n = libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(
                n,
                frame.len() as isize,
                "send ARP: {}",
                std::io::Error::last_os_error()
            );
        }
        libc::close(fd);
    }
}

#[test]
fn a_pod_cannot_send_with_another_mac_or_another_link_local() {
    let p = pods(true);
    // IPv6 first (a MAC change takes the link-local away): the pod's own link-local passes, another
    // one does not.
    let ll = |ip: Ipv4Addr| names::link_local_for_mac(names::mac_for_ip(ip));
    // SAFETY: a NUL-terminated name, looked up in the namespace the closure runs in.
    let scope =
        |ns: &TestNs| -> u32 { ns.run(|| unsafe { libc::if_nametoindex(c"eth0".as_ptr()) }) };
    let (scope_a, scope_c) = (scope(&p.a), scope(&p.c));
    p.a.sh(
        "ip",
        &["-6", "addr", "add", "fe80::bad/64", "dev", "eth0", "nodad"],
    );
    let to_c = |port: u16| SocketAddr::V6(SocketAddrV6::new(ll(p.ip_c), port, 0, scope_c));
    let mac_c = names::format_mac(&names::mac_for_ip(p.ip_c));
    p.a.sh(
        "ip",
        &[
            "-6",
            "neigh",
            "replace",
            &ll(p.ip_c).to_string(),
            "lladdr",
            &mac_c,
            "dev",
            "eth0",
        ],
    );
    // The kernel may still hold the pod's own link-local as tentative for a moment after the
    // interface came up: wait until it is usable (bounded).
    let own = SocketAddr::V6(SocketAddrV6::new(ll(p.ip_a), 0, 0, scope_a));
    let mut bound = false;
    for _ in 0..50 {
        if p.a.run(|| UdpSocket::bind(own).is_ok()) {
            bound = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        bound,
        "{own} never became usable in pod a: {}",
        p.a.sh("ip", &["-6", "addr"])
    );
    let rx = listen(&p.c, to_c(7006));
    assert!(udp_arrives(&p.a, own, &rx, to_c(7006)));
    let before = dropped(&p.node, "ip6 saddr != @ports-ip6");
    let bad = SocketAddr::V6(SocketAddrV6::new(
        "fe80::bad".parse::<Ipv6Addr>().unwrap(),
        0,
        0,
        scope_a,
    ));
    let rx = listen(&p.c, to_c(7007));
    assert!(!udp_arrives(&p.a, bad, &rx, to_c(7007)));
    assert!(dropped(&p.node, "ip6 saddr != @ports-ip6") > before);

    // Another MAC (b's) on a's interface: even its own address no longer passes.
    let mac_b = names::format_mac(&names::mac_for_ip(p.ip_b));
    p.a.sh(
        "ip",
        &[
            "neigh",
            "replace",
            &p.ip_c.to_string(),
            "lladdr",
            &names::format_mac(&names::mac_for_ip(p.ip_c)),
            "dev",
            "eth0",
        ],
    );
    let to = SocketAddr::new(p.ip_c.into(), 7004);
    let rx = listen(&p.c, to);
    assert!(udp_arrives(
        &p.a,
        SocketAddr::new(p.ip_a.into(), 0),
        &rx,
        to
    ));
    let before = dropped(&p.node, "ether saddr != @ports-mac");
    p.a.sh("ip", &["link", "set", "eth0", "address", &mac_b]);
    let to = SocketAddr::new(p.ip_c.into(), 7005);
    let rx = listen(&p.c, to);
    assert!(!udp_arrives(
        &p.a,
        SocketAddr::new(p.ip_a.into(), 0),
        &rx,
        to
    ));
    assert!(dropped(&p.node, "ether saddr != @ports-mac") > before);
}

fn elements(node: &Node) -> String {
    node.ns
        .try_sh("nft", &["list", "table", "bridge", "podnet-cni"])
        .stdout
        .iter()
        .map(|b| *b as char)
        .collect()
}

#[test]
fn a_gone_ports_entries_are_inert_and_gc_takes_them_away() {
    let p = pods(true);
    let veth = |c: &str| names::host_veth_name("podnet", c, "eth0");
    let text = elements(&p.node);
    for c in ["ca", "cb", "cc"] {
        assert!(text.contains(&format!("\"{}\"", veth(c))), "{text}");
    }
    assert!(text.contains(&p.ip_a.to_string()));
    // The first ADD installs the table with nft; the next ones add their elements over netlink:
    // read back by nft, they must be the very keys nft would have written.
    let mac_c = names::mac_for_ip(p.ip_c);
    for key in [
        format!("\"{}\" . {}", veth("cc"), names::format_mac(&mac_c)),
        format!("\"{}\" . {}", veth("cc"), p.ip_c),
        format!("\"{}\" . {}", veth("cc"), names::link_local_for_mac(mac_c)),
    ] {
        assert!(text.contains(&key), "{key} missing from {text}");
    }
    // DEL leaves the port's elements, inert: they are keyed by its interface index, which dies with
    // it (nft lists them by the bare number now) and is never given to another interface.
    p.node
        .run("DEL", "ca", Some(&p.a), "eth0", &conf(&p.node, true))
        .ok_empty();
    let text = elements(&p.node);
    assert!(!text.contains(&veth("ca")), "{text}");
    let inert = |text: &str, ip: Ipv4Addr| {
        text.split([',', '{', '}', '\n'])
            .map(str::trim)
            .any(|el| el.ends_with(&format!(" . {ip}")) && el.as_bytes()[0].is_ascii_digit())
    };
    assert!(inert(&text, p.ip_a), "{text}");
    // The same attachment added again (same veth name) starts with only its own new elements.
    let a2 = TestNs::new("pa2");
    let ip_a2 = pod_ip(p.node.add("ca", &a2, &conf(&p.node, true)).ok());
    let text = elements(&p.node);
    assert!(
        text.contains(&format!("\"{}\" . {ip_a2}", veth("ca"))),
        "{text}"
    );
    if ip_a2 != p.ip_a {
        assert!(
            !text.contains(&format!("\"{}\" . {}", veth("ca"), p.ip_a)),
            "{text}"
        );
    }
    // A port removed behind the plugin's back (a DEL that never came) is no different. GC forgets
    // the elements of every gone port and keeps those of live ones.
    p.node.ns.sh("ip", &["link", "del", &veth("cb")]);
    let mut gc = conf(&p.node, true);
    gc["cni.dev/valid-attachments"] = serde_json::json!([
        {"containerID": "ca", "ifname": "eth0"}, {"containerID": "cc", "ifname": "eth0"}]);
    p.node
        .invoke("GC", &[], gc.to_string().as_bytes())
        .ok_empty();
    let text = elements(&p.node);
    assert!(!inert(&text, p.ip_a) && !inert(&text, p.ip_b), "{text}");
    assert!(!text.contains(&veth("cb")), "{text}");
    assert!(text.contains(&veth("cc")), "a live port keeps its entries");
    assert!(
        text.contains(&format!("\"{}\" . {ip_a2}", veth("ca"))),
        "{text}"
    );
}

/// podnet-agent's table for the hold, as the agent declares it (the agent's own tests check what
/// it does with it).
fn install_hold(node: &Node) {
    let script = format!(
        "add table inet {t}\nadd set inet {t} {s} {{ type ipv4_addr ; }}\n\
         add chain inet {t} {c} {{ type filter hook forward priority filter - 5 ; policy accept ; }}\n",
        t = names::POLICY_PENDING_TABLE,
        s = names::POLICY_PENDING_SET,
        c = names::POLICY_PENDING_CHAIN
    );
    let mut cmd = node.ns.command("nft");
    cmd.args(["-f", "-"]).stdin(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

fn held(node: &Node) -> String {
    node.ns.sh(
        "nft",
        &[
            "list",
            "set",
            "inet",
            names::POLICY_PENDING_TABLE,
            names::POLICY_PENDING_SET,
        ],
    )
}

#[test]
fn add_holds_a_new_address_for_the_policy_agent_only_where_the_agent_is() {
    // Without the agent's table: nothing is held and nothing is created.
    let node = Node::new();
    let a = TestNs::new("pa");
    node.add("ca", &a, &conf(&node, false)).ok();
    let tables = node.ns.sh("nft", &["list", "tables"]);
    assert!(
        !tables.contains(names::POLICY_PENDING_TABLE),
        "the plugin made the agent's table: {tables}"
    );

    // With it: ADD marks; DEL leaves a mark the agent has not cleared (the address's next pod comes
    // through ADD, which marks it anyway, and the agent clears it when it programs that pod); GC
    // clears the marks of the addresses it releases.
    let node = Node::new();
    install_hold(&node);
    let (a, b) = (TestNs::new("pa"), TestNs::new("pb"));
    let ip_a = pod_ip(node.add("ca", &a, &conf(&node, true)).ok());
    let ip_b = pod_ip(node.add("cb", &b, &conf(&node, false)).ok());
    let set = held(&node);
    assert!(
        set.contains(&ip_a.to_string()) && set.contains(&ip_b.to_string()),
        "{set}"
    );
    node.run("DEL", "ca", Some(&a), "eth0", &conf(&node, true))
        .ok_empty();
    assert!(held(&node).contains(&ip_a.to_string()));
    let mut gc = conf(&node, false);
    gc["cni.dev/valid-attachments"] = serde_json::json!([]);
    node.invoke("GC", &[], gc.to_string().as_bytes()).ok_empty();
    assert!(!held(&node).contains(&ip_b.to_string()), "{}", held(&node));
}

/// The plugin's netlink batches are transactions: one element that cannot be added (its set does
/// not exist) fails the batch, says why, and leaves the others out too.
#[test]
fn a_failed_element_batch_changes_nothing() {
    use podnet_nft::elements::key;
    use podnet_nft::{Element, NftFamily, Op};
    let node = Node::new();
    install_hold(&node);
    let good = Element {
        op: Op::Add,
        family: NftFamily::Inet,
        table: names::POLICY_PENDING_TABLE,
        set: names::POLICY_PENDING_SET,
        key: key::ipv4("10.244.1.77".parse().unwrap()),
    };
    let bad = Element {
        set: "no-such-set",
        ..good.clone()
    };
    let err = node
        .ns
        .run(|| podnet_nft::apply_elements(&[good.clone(), bad]))
        .expect_err("a missing set");
    assert!(
        err.to_string().contains("No such file or directory"),
        "{err}"
    );
    assert!(!held(&node).contains("10.244.1.77"), "{}", held(&node));
    node.ns
        .run(|| podnet_nft::apply_elements(&[good]))
        .expect("the good one alone");
    assert!(held(&node).contains("10.244.1.77"));
}

/// CHECK with spoofCheck reads the port's entries back and names a missing one.
#[test]
fn check_notices_a_port_whose_guard_is_gone() {
    let node = Node::new();
    let a = TestNs::new("pa");
    let conf = conf(&node, true);
    let result = node.add("ca", &a, &conf).ok().clone();
    let with_prev = common::with_prev(&conf, &result);
    node.run("CHECK", "ca", Some(&a), "eth0", &with_prev)
        .ok_empty();
    let ip = pod_ip(&result);
    let veth = names::host_veth_name("podnet", "ca", "eth0");
    node.ns.sh(
        "nft",
        &[
            "delete",
            "element",
            "bridge",
            "podnet-cni",
            "ports-ip",
            &format!("{{ \"{veth}\" . {ip} }}"),
        ],
    );
    let r = node.run("CHECK", "ca", Some(&a), "eth0", &with_prev);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.err_msg().contains("anti-spoofing entry"), "{}", r.stdout);
}

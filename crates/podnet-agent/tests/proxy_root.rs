//! The service proxy against the kernel, in namespaces these tests create and remove: a "node" with a
//! bridge, "pods" on it, and a client "outside" routed to the node. Services are fed to the syncer
//! directly (no API server). Relies on br_netfilter (built into the kernel) with
//! `net.bridge.bridge-nf-call-iptables = 1` in the node's namespace, which each test checks: replies
//! between pods on one bridge are bridged, and only br_netfilter makes them meet conntrack to be
//! un-DNATed.

use podnet_agent::proxy::model::{Endpoint, PortState, Protocol, ServiceKey, ServiceState};
use podnet_agent::proxy::nft::Base;
use podnet_agent::proxy::sync::Syncer;
use podnet_agent::proxy::{conntrack, sync::SyncReport};
use podnet_testkit::TestNs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

const TABLE: &str = "podnet-services";
const NODE_BRIDGE_IP: &str = "10.244.1.1";
const NODE_OUTSIDE_IP: &str = "192.168.77.1";
const OUTSIDE_IP: &str = "192.168.77.2";

struct Lab {
    node: TestNs,
    pods: Vec<(TestNs, Ipv4Addr)>,
    outside: TestNs,
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

impl Lab {
    fn new(pods: usize) -> Lab {
        let node = TestNs::new("node");
        node.sh("ip", &["link", "add", "br0", "type", "bridge"]);
        node.sh("ip", &["addr", "add", "10.244.1.1/24", "dev", "br0"]);
        node.sh("ip", &["link", "set", "br0", "up"]);
        node.sh("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
        let brnf = node.sh("sysctl", &["-n", "net.bridge.bridge-nf-call-iptables"]);
        assert_eq!(
            brnf.trim(),
            "1",
            "br_netfilter must pass bridged IPv4 through nftables in the node namespace"
        );
        let mut out = Vec::new();
        for i in 0..pods {
            let pod = TestNs::new(&format!("pod{i}"));
            let addr = Ipv4Addr::new(10, 244, 1, 10 + i as u8);
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
            // A pod reaching itself through its Service comes back out of its own bridge port.
            node.sh(
                "ip",
                &[
                    "link",
                    "set",
                    &host_if,
                    "type",
                    "bridge_slave",
                    "hairpin",
                    "on",
                ],
            );
            pod.sh("ip", &["addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
            pod.sh("ip", &["link", "set", "eth0", "up"]);
            pod.sh("ip", &["link", "set", "lo", "up"]);
            pod.sh("ip", &["route", "add", "default", "via", NODE_BRIDGE_IP]);
            out.push((pod, addr));
        }
        let outside = TestNs::new("outside");
        node.sh(
            "ip",
            &[
                "link",
                "add",
                "uplink",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                outside.name(),
            ],
        );
        node.sh(
            "ip",
            &[
                "addr",
                "add",
                &format!("{NODE_OUTSIDE_IP}/24"),
                "dev",
                "uplink",
            ],
        );
        node.sh("ip", &["link", "set", "uplink", "up"]);
        node.sh("ip", &["link", "set", "lo", "up"]);
        // The outside is the node's router: cluster IPs without a rule would be sent there.
        node.sh("ip", &["route", "add", "default", "via", OUTSIDE_IP]);
        outside.sh(
            "ip",
            &["addr", "add", &format!("{OUTSIDE_IP}/24"), "dev", "eth0"],
        );
        outside.sh("ip", &["link", "set", "eth0", "up"]);
        outside.sh("ip", &["route", "add", "default", "via", NODE_OUTSIDE_IP]);
        Lab {
            node,
            pods: out,
            outside,
        }
    }

    fn syncer(&self) -> Syncer {
        Syncer::with_applier(
            Base::new(TABLE, vec!["10.244.0.0/16".parse().unwrap()]),
            Box::new(podnet_agent::proxy::sync::Netlink::strict()),
        )
    }

    fn sync(&self, s: &mut Syncer) -> SyncReport {
        self.node.run(|| {
            let r = s.sync().expect("sync");
            let errors = conntrack::delete(&r.stale_flows);
            assert!(errors.is_empty(), "{errors:?}");
            r
        })
    }

    fn full(&self, s: &mut Syncer) {
        self.node.run(|| s.full().expect("full sync"));
    }

    /// A TCP server in pod `i` on `port`: answers each connection with "<its address> <peer>".
    fn tcp_server(&self, i: usize, port: u16) {
        let (ns, addr) = &self.pods[i];
        let listener = ns.run(|| TcpListener::bind((*addr, port)).expect("bind"));
        let me = *addr;
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let peer = conn
                    .peer_addr()
                    .map(|p| p.ip().to_string())
                    .unwrap_or_default();
                let mut conn = conn;
                let _ = conn.write_all(format!("{me} {peer}\n").as_bytes());
            }
        });
    }

    fn udp_server(&self, i: usize, port: u16) {
        let (ns, addr) = &self.pods[i];
        let sock = ns.run(|| UdpSocket::bind((*addr, port)).expect("bind udp"));
        let me = *addr;
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while let Ok((_, peer)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(format!("{me} {}\n", peer.ip()).as_bytes(), peer);
            }
        });
    }
}

/// Connects from `ns` and returns (server address, address the server saw), or the error kind.
fn tcp(ns: &TestNs, to: &str) -> Result<(String, String), ErrorKind> {
    let to: SocketAddr = to.parse().unwrap();
    ns.run(|| {
        let mut c =
            TcpStream::connect_timeout(&to, Duration::from_secs(3)).map_err(|e| e.kind())?;
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).map_err(|e| e.kind())?;
        let mut w = s.split_whitespace().map(String::from);
        Ok((w.next().unwrap_or_default(), w.next().unwrap_or_default()))
    })
}

fn udp(ns: &TestNs, sock: Option<&UdpSocket>, to: &str) -> Option<(String, String)> {
    let to: SocketAddr = to.parse().unwrap();
    let own;
    let s = match sock {
        Some(s) => s,
        None => {
            own = ns.run(|| UdpSocket::bind("0.0.0.0:0").unwrap());
            &own
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    s.send_to(b"hi", to).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    let mut w = text.split_whitespace().map(String::from);
    Some((w.next()?, w.next()?))
}

fn port(proto: Protocol, port: u16, cip: &str, eps: &[(Ipv4Addr, u16)]) -> PortState {
    let eps: Vec<Endpoint> = eps
        .iter()
        .map(|(ip, port)| Endpoint {
            ip: *ip,
            port: *port,
        })
        .collect();
    PortState {
        protocol: proto,
        port,
        cluster_ip: Some(ip(cip)),
        node_port: None,
        external_ips: vec![],
        local_endpoints: eps.clone(),
        cluster_endpoints: eps,
        internal_local: false,
        external_local: false,
        affinity: None,
    }
}

fn key(name: &str) -> ServiceKey {
    ServiceKey::new("default", name)
}

#[test]
fn cluster_ip_tcp_and_udp_from_a_pod_and_the_node_keep_the_client_address() {
    let lab = Lab::new(3);
    let server = lab.pods[1].1;
    lab.tcp_server(1, 8080);
    lab.udp_server(1, 5353);
    let mut s = lab.syncer();
    s.set(
        key("web"),
        Some(ServiceState {
            ports: vec![
                port(Protocol::Tcp, 80, "10.96.0.20", &[(server, 8080)]),
                port(Protocol::Udp, 53, "10.96.0.20", &[(server, 5353)]),
            ],
        }),
    );
    assert!(lab.sync(&mut s).full);
    let client = &lab.pods[0];
    let (who, seen) = tcp(&client.0, "10.96.0.20:80").expect("pod to cluster IP over TCP");
    assert_eq!(who, server.to_string());
    assert_eq!(
        seen,
        client.1.to_string(),
        "the server sees the client pod's own address"
    );
    let (who, seen) = udp(&client.0, None, "10.96.0.20:53").expect("pod to cluster IP over UDP");
    assert_eq!(
        (who.as_str(), seen.as_str()),
        (server.to_string().as_str(), client.1.to_string().as_str())
    );
    let (who, _) = tcp(&lab.node, "10.96.0.20:80").expect("node to cluster IP");
    assert_eq!(who, server.to_string());
    assert!(
        udp(&lab.node, None, "10.96.0.20:53").is_some(),
        "node to cluster IP over UDP"
    );
    // From outside the cluster (routed through the node) the source is masqueraded.
    let (_, seen) = tcp(&lab.outside, "10.96.0.20:80").expect("outside to cluster IP via the node");
    assert_eq!(seen, NODE_BRIDGE_IP);
}

#[test]
fn node_port_from_outside_and_from_the_node_itself() {
    let lab = Lab::new(2);
    let server = lab.pods[0].1;
    lab.tcp_server(0, 8080);
    let mut p = port(Protocol::Tcp, 80, "10.96.0.30", &[(server, 8080)]);
    p.node_port = Some(30080);
    let mut s = lab.syncer();
    s.set(
        key("np"),
        Some(ServiceState {
            ports: vec![p.clone()],
        }),
    );
    lab.sync(&mut s);
    let (who, seen) =
        tcp(&lab.outside, &format!("{NODE_OUTSIDE_IP}:30080")).expect("outside to node port");
    assert_eq!(who, server.to_string());
    assert_eq!(
        seen, NODE_BRIDGE_IP,
        "externalTrafficPolicy Cluster masquerades"
    );
    let (who, _) =
        tcp(&lab.node, &format!("{NODE_OUTSIDE_IP}:30080")).expect("node to its own node port");
    assert_eq!(who, server.to_string());
    let (who, _) =
        tcp(&lab.pods[1].0, &format!("{NODE_BRIDGE_IP}:30080")).expect("pod to node port");
    assert_eq!(who, server.to_string());
    // Loopback is not a node port address (as in kube-proxy's nftables mode).
    assert!(tcp(&lab.node, "127.0.0.1:30080").is_err());

    // externalTrafficPolicy Local: the outside client's address reaches the server.
    p.external_local = true;
    s.set(
        key("np"),
        Some(ServiceState {
            ports: vec![p.clone()],
        }),
    );
    assert!(!lab.sync(&mut s).full);
    let (_, seen) =
        tcp(&lab.outside, &format!("{NODE_OUTSIDE_IP}:30080")).expect("eTP Local node port");
    assert_eq!(seen, OUTSIDE_IP, "eTP Local preserves the client address");
    // No local endpoint: outside traffic is dropped (not refused), pods are still served.
    p.local_endpoints.clear();
    s.set(key("np"), Some(ServiceState { ports: vec![p] }));
    lab.sync(&mut s);
    let r = lab.outside.run(|| {
        let to: SocketAddr = format!("{NODE_OUTSIDE_IP}:30080").parse().unwrap();
        TcpStream::connect_timeout(&to, Duration::from_millis(500)).map_err(|e| e.kind())
    });
    assert_eq!(r.err(), Some(ErrorKind::TimedOut));
    assert!(tcp(&lab.pods[1].0, &format!("{NODE_BRIDGE_IP}:30080")).is_ok());
    // ... and the node reaching its own node port is served too (kubernetes#131765).
    assert!(
        tcp(&lab.node, &format!("{NODE_OUTSIDE_IP}:30080")).is_ok(),
        "the node to its own eTP Local node port without a local endpoint"
    );
}

#[test]
fn load_is_spread_and_affinity_keeps_one_endpoint() {
    let lab = Lab::new(3);
    lab.tcp_server(0, 8080);
    lab.tcp_server(1, 8080);
    let eps = [(lab.pods[0].1, 8080), (lab.pods[1].1, 8080)];
    let mut p = port(Protocol::Tcp, 80, "10.96.0.40", &eps);
    let mut s = lab.syncer();
    s.set(
        key("lb"),
        Some(ServiceState {
            ports: vec![p.clone()],
        }),
    );
    lab.sync(&mut s);
    let client = &lab.pods[2].0;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..64 {
        seen.insert(tcp(client, "10.96.0.40:80").expect("connect").0);
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(
        seen.len(),
        2,
        "both endpoints answer within 64 tries: {seen:?}"
    );

    p.affinity = Some(60);
    s.set(key("lb"), Some(ServiceState { ports: vec![p] }));
    lab.sync(&mut s);
    let first = tcp(client, "10.96.0.40:80").expect("connect").0;
    for _ in 0..20 {
        assert_eq!(tcp(client, "10.96.0.40:80").expect("connect").0, first);
    }
    let set = format!("aff-default/lb-tcp-80-{first}-8080");
    let listed = lab.node.sh("nft", &["list", "set", "ip", TABLE, &set]);
    assert!(listed.contains(&lab.pods[2].1.to_string()), "{listed}");
    // The periodic resync rewrites the table in place: the clients endpoints remember stay.
    s.request_full();
    assert!(lab.sync(&mut s).full);
    let listed = lab.node.sh("nft", &["list", "set", "ip", TABLE, &set]);
    assert!(
        listed.contains(&lab.pods[2].1.to_string()),
        "affinity survives the resync: {listed}"
    );
    for _ in 0..5 {
        assert_eq!(tcp(client, "10.96.0.40:80").expect("connect").0, first);
    }
}

#[test]
fn a_service_without_endpoints_refuses_at_once() {
    let lab = Lab::new(1);
    let mut s = lab.syncer();
    let mut p = port(Protocol::Tcp, 80, "10.96.0.50", &[]);
    p.node_port = Some(30050);
    s.set(key("empty"), Some(ServiceState { ports: vec![p] }));
    lab.sync(&mut s);
    let pod = &lab.pods[0].0;
    assert_eq!(
        tcp(pod, "10.96.0.50:80").err(),
        Some(ErrorKind::ConnectionRefused)
    );
    assert_eq!(
        tcp(&lab.node, "10.96.0.50:80").err(),
        Some(ErrorKind::ConnectionRefused)
    );
    assert_eq!(
        tcp(&lab.outside, &format!("{NODE_OUTSIDE_IP}:30050")).err(),
        Some(ErrorKind::ConnectionRefused)
    );
    // A port the Service does not have on its cluster IP is refused too.
    assert_eq!(
        tcp(pod, "10.96.0.50:81").err(),
        Some(ErrorKind::ConnectionRefused)
    );
    assert_eq!(
        tcp(&lab.node, "10.96.0.50:81").err(),
        Some(ErrorKind::ConnectionRefused)
    );
}

#[test]
fn hairpin_a_pod_reaches_itself_through_its_service() {
    let lab = Lab::new(1);
    let me = lab.pods[0].1;
    lab.tcp_server(0, 8080);
    let mut s = lab.syncer();
    s.set(
        key("self"),
        Some(ServiceState {
            ports: vec![port(Protocol::Tcp, 80, "10.96.0.60", &[(me, 8080)])],
        }),
    );
    lab.sync(&mut s);
    let (who, seen) = tcp(&lab.pods[0].0, "10.96.0.60:80").expect("hairpin");
    assert_eq!(who, me.to_string());
    assert_eq!(seen, NODE_BRIDGE_IP, "hairpin traffic is masqueraded");
}

#[test]
fn udp_after_an_endpoint_change_reaches_the_new_endpoint() {
    let lab = Lab::new(3);
    lab.udp_server(0, 5353);
    lab.udp_server(1, 5353);
    let mut s = lab.syncer();
    s.set(
        key("dns"),
        Some(ServiceState {
            ports: vec![port(
                Protocol::Udp,
                53,
                "10.96.0.10",
                &[(lab.pods[0].1, 5353)],
            )],
        }),
    );
    lab.sync(&mut s);
    let client = &lab.pods[2].0;
    // One socket, one 5-tuple: without the conntrack cleanup it would stay on the old endpoint.
    let sock = client.run(|| UdpSocket::bind("0.0.0.0:0").unwrap());
    assert_eq!(
        udp(client, Some(&sock), "10.96.0.10:53").unwrap().0,
        lab.pods[0].1.to_string()
    );
    s.set(
        key("dns"),
        Some(ServiceState {
            ports: vec![port(
                Protocol::Udp,
                53,
                "10.96.0.10",
                &[(lab.pods[1].1, 5353)],
            )],
        }),
    );
    let r = lab.sync(&mut s);
    assert!(!r.stale_flows.is_empty());
    assert_eq!(
        udp(client, Some(&sock), "10.96.0.10:53").unwrap().0,
        lab.pods[1].1.to_string()
    );

    // No endpoint, then one again: flows cached while rejecting are removed too.
    s.set(
        key("dns"),
        Some(ServiceState {
            ports: vec![port(Protocol::Udp, 53, "10.96.0.10", &[])],
        }),
    );
    lab.sync(&mut s);
    assert!(udp(client, Some(&sock), "10.96.0.10:53").is_none());
    s.set(
        key("dns"),
        Some(ServiceState {
            ports: vec![port(
                Protocol::Udp,
                53,
                "10.96.0.10",
                &[(lab.pods[0].1, 5353)],
            )],
        }),
    );
    lab.sync(&mut s);
    assert_eq!(
        udp(client, Some(&sock), "10.96.0.10:53").unwrap().0,
        lab.pods[0].1.to_string()
    );
}

#[test]
fn a_full_resync_repairs_hand_made_drift() {
    let lab = Lab::new(2);
    lab.tcp_server(0, 8080);
    let mut s = lab.syncer();
    s.set(
        key("web"),
        Some(ServiceState {
            ports: vec![port(
                Protocol::Tcp,
                80,
                "10.96.0.70",
                &[(lab.pods[0].1, 8080)],
            )],
        }),
    );
    lab.sync(&mut s);
    let client = &lab.pods[1].0;
    assert!(tcp(client, "10.96.0.70:80").is_ok());
    // Break it by hand: the service's map element, its chain's rules and the endpoint map's
    // elements go away.
    lab.node.sh(
        "nft",
        &[
            "delete",
            "element",
            "ip",
            TABLE,
            "service-ips",
            "{ 10.96.0.70 . tcp . 80 }",
        ],
    );
    lab.node.sh(
        "nft",
        &["flush", "chain", "ip", TABLE, "svc-default/web-tcp-80"],
    );
    lab.node
        .sh("nft", &["flush", "map", "ip", TABLE, "endpoints-0"]);
    lab.node.sh("nft", &["add", "chain", "ip", TABLE, "junk"]);
    lab.node
        .sh("nft", &["add", "rule", "ip", TABLE, "services", "drop"]);
    assert!(tcp(client, "10.96.0.70:80").is_err());
    // The periodic resync refills the table: the service answers again and the rule added by hand
    // is gone; the chain added by hand stays, unreachable.
    lab.full(&mut s);
    assert!(tcp(client, "10.96.0.70:80").is_ok());
    let listed = lab.node.sh("nft", &["list", "table", "ip", TABLE]);
    assert!(!listed.contains("drop"), "{listed}");
    // A table deleted by hand: the refill declares what it empties or deletes, so it rebuilds
    // the table by itself.
    lab.node.sh("nft", &["delete", "table", "ip", TABLE]);
    lab.full(&mut s);
    assert!(tcp(client, "10.96.0.70:80").is_ok());
    let listed = lab.node.sh("nft", &["list", "table", "ip", TABLE]);
    assert!(!listed.contains("chain junk"));
}

/// Two Services share the pod's endpoint, so both ask for its `hairpin` element; the one holding
/// it goes away and the other takes it over in the same transaction. The pod still reaches itself
/// masqueraded, through the cluster IP and through an eTP Local node port.
#[test]
fn hairpin_survives_the_service_that_held_the_shared_element() {
    let lab = Lab::new(1);
    let me = lab.pods[0].1;
    lab.tcp_server(0, 8080);
    let mut s = lab.syncer();
    let first = port(Protocol::Tcp, 80, "10.96.0.80", &[(me, 8080)]);
    let mut second = port(Protocol::Tcp, 80, "10.96.0.81", &[(me, 8080)]);
    second.node_port = Some(30081);
    second.external_local = true;
    s.set(key("a-first"), Some(ServiceState { ports: vec![first] }));
    s.set(
        key("b-second"),
        Some(ServiceState {
            ports: vec![second],
        }),
    );
    lab.sync(&mut s);
    let (_, seen) = tcp(&lab.pods[0].0, "10.96.0.81:80").expect("hairpin");
    assert_eq!(seen, NODE_BRIDGE_IP);
    s.set(key("a-first"), None);
    assert!(!lab.sync(&mut s).full);
    let listed = lab.node.sh("nft", &["list", "set", "ip", TABLE, "hairpin"]);
    assert!(listed.contains(&format!("{me} . {me}")), "{listed}");
    let (who, seen) = tcp(&lab.pods[0].0, "10.96.0.81:80").expect("hairpin, second Service");
    assert_eq!(
        (who.as_str(), seen.as_str()),
        (me.to_string().as_str(), NODE_BRIDGE_IP)
    );
    let (who, seen) = tcp(&lab.pods[0].0, &format!("{NODE_BRIDGE_IP}:30081"))
        .expect("hairpin through an eTP Local node port");
    assert_eq!(
        (who.as_str(), seen.as_str()),
        (me.to_string().as_str(), NODE_BRIDGE_IP)
    );
}

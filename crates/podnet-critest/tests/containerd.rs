//! podnet-cni under Debian's containerd (1.6) with its CRI plugin, driven over CRI as kubelet drives it:
//! sandboxes with none, one and two host ports get addresses, a container serving HTTP answers on its
//! host port from the node, stop and remove release the address and the host ports and leave no
//! sandbox, and a sandbox whose ADD failed is removable. Once with podnet-cni doing the host ports
//! (containerd sends them as Go field names, issue 7), once with the reference `portmap` plugin
//! chained after podnet-cni (prevResult chaining under a real runtime).
//!
//! Root test: containerd runs inside a `pnt-` node namespace with its own directories; everything is
//! removed when the guards drop, also when an assertion fails.

use podnet_critest::containerd::{self, Containerd, Settings};
use podnet_critest::cri::{self, runtime_service_client::RuntimeServiceClient};
use podnet_critest::image;
use podnet_testkit::TestNs;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const IMAGE: &str = "pnt.local/busybox:1";
/// The node's own address, on a dummy "uplink": host ports are reached through it.
const NODE_IP: &str = "10.100.0.2";
const SUBNET_PREFIX: &str = "10.89.7.";

/// The plugin, built from podnet-cni's entry point in this package (always current code).
fn podnet_cni() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_podnet-cni-critest"))
}

/// How host ports are done in a run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ports {
    /// podnet-cni declares the portMappings capability (and every other capability containerd sends).
    Podnet,
    /// The reference portmap plugin, chained after podnet-cni, declares it.
    Portmap,
}

fn conflist(network: &str, ipam_dir: &Path, ports: Ports) -> String {
    let range_end = match ports {
        Ports::Podnet => "10.89.7.20",
        // Three addresses: the fourth sandbox fails its ADD (pool exhausted).
        Ports::Portmap => "10.89.7.4",
    };
    let mut podnet = serde_json::json!({
        "type": "podnet-cni", "bridge": "pnc0", "ipMasq": true, "clusterCIDR": "10.89.0.0/16",
        "ipam": {"subnet": "10.89.7.0/24", "rangeStart": "10.89.7.2", "rangeEnd": range_end,
                 "dataDir": ipam_dir.display().to_string()},
    });
    let mut plugins = vec![];
    match ports {
        Ports::Podnet => {
            // Everything containerd 1.6 can send: it fills in only what a plugin declares.
            podnet["capabilities"] = serde_json::json!({"portMappings": true, "bandwidth": true,
                "dns": true, "cgroupPath": true, "io.kubernetes.cri.pod-annotations": true});
            plugins.push(podnet);
        }
        Ports::Portmap => {
            podnet["capabilities"] = serde_json::json!({"dns": true, "cgroupPath": true});
            plugins.push(podnet);
            plugins.push(
                serde_json::json!({"type": "portmap", "capabilities": {"portMappings": true}}),
            );
        }
    }
    serde_json::json!({"cniVersion": "1.0.0", "name": network, "plugins": plugins}).to_string()
}

/// One CRI call, bounded in time, with what it was for in the error.
fn call<T>(
    rt: &tokio::runtime::Runtime,
    what: &str,
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, tonic::Status> {
    // The timer must be made inside the runtime.
    match rt.block_on(async { tokio::time::timeout(Duration::from_secs(60), fut).await }) {
        Ok(r) => r.map(tonic::Response::into_inner),
        Err(_) => panic!("{what}: no answer from containerd within 60 s"),
    }
}

struct Cri {
    rt: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
}

impl Cri {
    fn connect(ctd: &Containerd) -> Cri {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let client = rt
            .block_on(podnet_critest::connect(&ctd.socket))
            .unwrap_or_else(|e| panic!("connect to {}: {e}", ctd.socket.display()));
        let mut cri = Cri { rt, client };
        // Ready as kubelet waits for it: both conditions true (the CNI config is read asynchronously).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = call(
                &cri.rt,
                "Status",
                cri.client.status(cri::StatusRequest { verbose: false }),
            )
            .expect("Status");
            let conditions = status.status.map(|s| s.conditions).unwrap_or_default();
            if conditions.len() >= 2 && conditions.iter().all(|c| c.status) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "containerd not ready within 20 s: {conditions:?}\n{}",
                ctd.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cri
    }

    fn run_sandbox(&mut self, config: &cri::PodSandboxConfig) -> Result<String, tonic::Status> {
        call(
            &self.rt,
            "RunPodSandbox",
            self.client.run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            }),
        )
        .map(|r| r.pod_sandbox_id)
    }

    fn sandbox_ip(&mut self, id: &str) -> Ipv4Addr {
        let status = call(
            &self.rt,
            "PodSandboxStatus",
            self.client
                .pod_sandbox_status(cri::PodSandboxStatusRequest {
                    pod_sandbox_id: id.to_string(),
                    verbose: false,
                }),
        )
        .expect("PodSandboxStatus")
        .status
        .expect("a status");
        let ip = status.network.expect("network status").ip;
        ip.parse()
            .unwrap_or_else(|_| panic!("sandbox {id} has no IPv4 address: {ip:?}"))
    }

    fn sandboxes(&mut self, labels: &[(&str, &str)]) -> Vec<String> {
        let filter = cri::PodSandboxFilter {
            label_selector: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        call(
            &self.rt,
            "ListPodSandbox",
            self.client.list_pod_sandbox(cri::ListPodSandboxRequest {
                filter: Some(filter),
            }),
        )
        .expect("ListPodSandbox")
        .items
        .into_iter()
        .map(|s| s.id)
        .collect()
    }

    /// StopPodSandbox then RemovePodSandbox, as kubelet does; both must succeed.
    fn stop_and_remove(&mut self, id: &str) -> Result<(), tonic::Status> {
        call(
            &self.rt,
            "StopPodSandbox",
            self.client.stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: id.to_string(),
            }),
        )?;
        call(
            &self.rt,
            "RemovePodSandbox",
            self.client
                .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                    pod_sandbox_id: id.to_string(),
                }),
        )?;
        Ok(())
    }
}

fn tcp(port: i32, host_port: i32) -> cri::PortMapping {
    cri::PortMapping {
        protocol: cri::Protocol::Tcp as i32,
        container_port: port,
        host_port,
        host_ip: String::new(),
    }
}

fn sandbox_config(
    ctd: &Containerd,
    name: &str,
    ports: Vec<cri::PortMapping>,
) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.to_string(),
            uid: format!("uid-{name}-{}", std::process::id()),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.to_string(),
        log_directory: ctd.log_dir().display().to_string(),
        dns_config: Some(cri::DnsConfig {
            servers: vec!["10.96.0.10".into()],
            searches: vec!["default.svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        }),
        port_mappings: ports,
        labels: HashMap::from([("pnt-case".to_string(), name.to_string())]),
        // containerd turns this into the bandwidth capability (IngressRate in Go field names).
        annotations: HashMap::from([(
            "kubernetes.io/ingress-bandwidth".to_string(),
            "10M".to_string(),
        )]),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: ctd.cgroup_parent.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Reservations in podnet-cni's IPAM state: address -> container ID.
fn reservations(ipam_dir: &Path, network: &str) -> HashMap<String, String> {
    let Ok(text) = std::fs::read_to_string(ipam_dir.join(network).join("state.json")) else {
        return HashMap::new();
    };
    let v: Value = serde_json::from_str(&text).expect("IPAM state is JSON");
    v["reservations"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(ip, r)| (ip.clone(), r["containerID"].as_str().unwrap_or("").into()))
                .collect()
        })
        .unwrap_or_default()
}

/// The node's host-port state as text: podnet's nft maps, or portmap's iptables NAT rules.
fn host_port_state(node: &TestNs, ports: Ports) -> String {
    let out = match ports {
        Ports::Podnet => node.try_sh("nft", &["list", "table", "inet", "podnet-cni"]),
        Ports::Portmap => node.try_sh("iptables-save", &["-t", "nat"]),
    };
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An HTTP GET from the node's namespace to the node's own address on `port`; the body, if any.
fn http_get(node: &TestNs, port: u16) -> Option<String> {
    let to = SocketAddr::new(NODE_IP.parse().unwrap(), port);
    node.run(|| {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        s.write_all(b"GET / HTTP/1.0\r\nHost: node\r\n\r\n").ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        Some(body)
    })
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn scenario(ports: Ports) {
    if !containerd::available() {
        // CI installs containerd (scripts/setup.sh), so there this never skips.
        eprintln!(
            "\n!!!!!!!! SKIPPED: containerd is not installed (apt-get install containerd, or scripts/setup.sh) !!!!!!!!\n"
        );
        return;
    }
    let started = Instant::now();
    let node = TestNs::new("crinode");
    node.sh("ip", &["link", "set", "lo", "up"]);
    // The node's uplink, with a host beyond it that reaches the node's address.
    let world = TestNs::new("criworld");
    podnet_testkit::link(
        &node,
        "pnt-up",
        format!("{NODE_IP}/24").parse().unwrap(),
        &world,
        "eth0",
        "10.100.0.1/24".parse().unwrap(),
    );
    let network = podnet_testkit::unique_name("net");
    let ipam = podnet_testkit::TempDir::new("criipam");
    let plugin = podnet_cni();
    let loopback = Path::new("/usr/lib/cni/loopback");
    let portmap = Path::new("/usr/lib/cni/portmap");
    let plugins: Vec<(&str, &Path)> = vec![
        ("podnet-cni", plugin.as_path()),
        ("loopback", loopback),
        ("portmap", portmap),
    ];
    let list = conflist(&network, &ipam.0, ports);
    let ctd = Containerd::start(
        &node,
        &Settings {
            conflist: &list,
            network: &network,
            plugins: &plugins,
            sandbox_image: IMAGE,
        },
    )
    .unwrap_or_else(|e| panic!("start containerd: {e}"));
    let archive = ctd.dir.join("busybox.tar");
    image::write_busybox_archive(Path::new("/bin/busybox"), IMAGE, &archive)
        .expect("busybox-static provides /bin/busybox");
    ctd.import(&archive).expect("import the image");
    let mut cri = Cri::connect(&ctd);
    let ready = started.elapsed();

    // Sandboxes with none, one and two host ports.
    let cases: [(&str, Vec<cri::PortMapping>); 3] = [
        ("none", vec![]),
        ("one", vec![tcp(80, 18080)]),
        ("two", vec![tcp(80, 18081), tcp(8080, 18082)]),
    ];
    let mut ids = HashMap::new();
    let mut run_times = Vec::new();
    for (name, p) in &cases {
        let t = Instant::now();
        let id = cri
            .run_sandbox(&sandbox_config(&ctd, name, p.clone()))
            .unwrap_or_else(|e| panic!("RunPodSandbox {name}: {e}\n{}", ctd.log()));
        run_times.push(t.elapsed());
        let ip = cri.sandbox_ip(&id);
        assert!(
            ip.to_string().starts_with(SUBNET_PREFIX),
            "{name} got {ip}, outside 10.89.7.0/24"
        );
        ids.insert(*name, (id, ip));
    }
    let held = reservations(&ipam.0, &network);
    assert_eq!(held.len(), 3, "one address per sandbox: {held:?}");
    for (id, ip) in ids.values() {
        assert_eq!(
            held.get(&ip.to_string()),
            Some(id),
            "{ip} is recorded for sandbox {id}"
        );
    }
    let state = host_port_state(&node, ports);
    for port in ["18080", "18081", "18082"] {
        assert!(state.contains(port), "host port {port} installed:\n{state}");
    }

    // A container serving HTTP in the one-port sandbox answers on its host port from the node.
    let (one_id, _) = ids["one"].clone();
    let created = call(
        &cri.rt,
        "CreateContainer",
        cri.client.create_container(cri::CreateContainerRequest {
            pod_sandbox_id: one_id.clone(),
            config: Some(cri::ContainerConfig {
                metadata: Some(cri::ContainerMetadata {
                    name: "web".into(),
                    attempt: 0,
                }),
                image: Some(cri::ImageSpec {
                    image: IMAGE.into(),
                    ..Default::default()
                }),
                command: ["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"]
                    .map(String::from)
                    .to_vec(),
                log_path: "web.log".into(),
                linux: Some(cri::LinuxContainerConfig::default()),
                ..Default::default()
            }),
            sandbox_config: Some(sandbox_config(&ctd, "one", cases[1].1.clone())),
        }),
    )
    .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", ctd.log()))
    .container_id;
    call(
        &cri.rt,
        "StartContainer",
        cri.client.start_container(cri::StartContainerRequest {
            container_id: created.clone(),
        }),
    )
    .unwrap_or_else(|e| panic!("StartContainer: {e}\n{}", ctd.log()));
    let mut body = None;
    for _ in 0..50 {
        body = http_get(&node, 18080).filter(|b| b.contains(image::INDEX_HTML.trim()));
        if body.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        body.is_some(),
        "busybox httpd in sandbox 'one' answered on {NODE_IP}:18080 from the node\n{}",
        host_port_state(&node, ports)
    );
    assert!(
        http_get(&world, 18080).is_some_and(|b| b.contains(image::INDEX_HTML.trim())),
        "and from a host beyond the node"
    );
    assert!(
        http_get(&node, 18083).is_none(),
        "no answer on a port nobody mapped"
    );

    // A sandbox whose ADD fails is removable: containerd runs DEL to clean up, which must succeed.
    let mut failing: Vec<(&str, cri::PodSandboxConfig, &str)> = Vec::new();
    match ports {
        Ports::Podnet => {
            failing.push((
                "taken",
                sandbox_config(&ctd, "taken", vec![tcp(80, 18080)]),
                "18080/tcp",
            ));
            let mut bad_ip = tcp(80, 18090);
            bad_ip.host_ip = "not-an-address".into();
            failing.push((
                "badip",
                sandbox_config(&ctd, "badip", vec![bad_ip]),
                "runtimeConfig.portMappings[0].hostIP",
            ));
        }
        Ports::Portmap => failing.push((
            "full",
            sandbox_config(&ctd, "full", vec![tcp(80, 18091)]),
            "no free address",
        )),
    }
    for (name, config, why) in &failing {
        let err = cri
            .run_sandbox(config)
            .expect_err("this sandbox's ADD must fail");
        assert!(
            err.message().contains(why),
            "RunPodSandbox {name} fails naming {why:?}: {}",
            err.message()
        );
        for id in cri.sandboxes(&[("pnt-case", name)]) {
            cri.stop_and_remove(&id).unwrap_or_else(|e| {
                panic!(
                    "a sandbox whose ADD failed is removable: {e}\n{}",
                    ctd.log()
                )
            });
        }
        assert!(
            cri.sandboxes(&[("pnt-case", name)]).is_empty(),
            "no sandbox {name} left"
        );
    }
    assert_eq!(
        reservations(&ipam.0, &network).len(),
        3,
        "the failed ADDs hold no address"
    );

    // Stop and remove release the addresses and the host ports and leave no sandbox behind.
    call(
        &cri.rt,
        "StopContainer",
        cri.client.stop_container(cri::StopContainerRequest {
            container_id: created.clone(),
            timeout: 0,
        }),
    )
    .expect("StopContainer");
    call(
        &cri.rt,
        "RemoveContainer",
        cri.client.remove_container(cri::RemoveContainerRequest {
            container_id: created,
        }),
    )
    .expect("RemoveContainer");
    // One sandbox at a time: each releases exactly its own address and host ports.
    let mut remove_times = Vec::new();
    let mut left: Vec<(&str, &[&str])> = vec![
        ("one", &["18080"]),
        ("two", &["18081", "18082"]),
        ("none", &[]),
    ];
    while !left.is_empty() {
        let (name, own_ports) = left.remove(0);
        let (id, ip) = &ids[name];
        let t = Instant::now();
        cri.stop_and_remove(id)
            .unwrap_or_else(|e| panic!("stop and remove {name}: {e}\n{}", ctd.log()));
        remove_times.push(t.elapsed());
        let held = reservations(&ipam.0, &network);
        assert!(
            !held.contains_key(&ip.to_string()),
            "{name}'s {ip} released: {held:?}"
        );
        assert_eq!(held.len(), left.len(), "the others keep theirs: {held:?}");
        let state = host_port_state(&node, ports);
        for port in own_ports {
            assert!(
                !state.contains(port),
                "{name}'s host port {port} removed:\n{state}"
            );
        }
        for port in left.iter().flat_map(|(_, p)| p.iter()) {
            assert!(
                state.contains(port),
                "host port {port} of another sandbox kept:\n{state}"
            );
        }
    }
    assert!(cri.sandboxes(&[]).is_empty(), "no sandbox left");
    assert!(
        reservations(&ipam.0, &network).is_empty(),
        "every address released"
    );
    let state = host_port_state(&node, ports);
    for port in ["18080", "18081", "18082", "18090", "18091"] {
        assert!(!state.contains(port), "host port {port} removed:\n{state}");
    }
    assert!(
        http_get(&node, 18080).is_none(),
        "nothing answers on 18080 any more"
    );
    let veths: Vec<String> = node
        .netlink()
        .links()
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .filter(|n| n.starts_with("pnv"))
        .collect();
    assert!(veths.is_empty(), "no host veth left: {veths:?}");
    // containerd drops its cached result of an attachment only when DEL succeeded.
    let cached: Vec<String> = std::fs::read_dir("/var/lib/cni/results")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("{network}-")))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        cached.is_empty(),
        "containerd holds no result of a DEL that failed: {cached:?}"
    );
    let log = ctd.log();
    assert!(
        !log.to_ascii_lowercase()
            .contains("failed to destroy network"),
        "every DEL succeeded:\n{log}"
    );
    if ports == Ports::Podnet {
        assert!(
            log.contains("runtimeConfig.bandwidth: podnet-cni does not shape traffic"),
            "podnet-cni read containerd's bandwidth capability and said it does not apply:\n{log}"
        );
    }

    run_times.sort();
    remove_times.sort();
    println!(
        "containerd {ports:?}: ready in {}; RunPodSandbox {} (3 sandboxes, sorted); stop+remove {}; whole run {}",
        ms(ready),
        run_times
            .iter()
            .map(|d| ms(*d))
            .collect::<Vec<_>>()
            .join(", "),
        remove_times
            .iter()
            .map(|d| ms(*d))
            .collect::<Vec<_>>()
            .join(", "),
        ms(started.elapsed())
    );
}

#[test]
fn containerd_cri_with_podnet_host_ports() {
    scenario(Ports::Podnet);
}

#[test]
fn containerd_cri_with_portmap_chained_after_podnet() {
    scenario(Ports::Portmap);
}

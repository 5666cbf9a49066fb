//! Driving a lab through the real `podnet` binary, with pods made the way a runtime makes them:
//! a namespace attached with `podnet-cni` using the node's own CNI configuration.

#![allow(dead_code)]

pub mod kube;

use podnet_testkit::{TestNs, cni_command, run_cni, unique_name};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

pub fn podnet_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_podnet"))
}

pub fn podnet_cni_bin() -> PathBuf {
    let p = podnet_bin().with_file_name("podnet-cni");
    assert!(
        p.is_file(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        p.display()
    );
    p
}

/// A lab with a unique name, removed when dropped (also when the test fails). It has its own kubeconfig
/// file and an API server port picked by the kernel, so labs run side by side and the machine's
/// `~/.kube/config` is never touched.
pub struct Lab {
    pub name: String,
    pub kubeconfig: PathBuf,
}

/// The real kubectl fetched by scripts/setup.sh.
pub fn kubectl_bin() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache/tools/kubectl");
    assert!(
        p.is_file(),
        "kubectl is missing at {}: run scripts/setup.sh",
        p.display()
    );
    p
}

impl Lab {
    /// A fresh lab name, without creating anything.
    pub fn named() -> Lab {
        podnet_testkit::require_root();
        // Lab names must start with a letter and be lowercase: `pnt-123-4-lab` fits.
        let name = unique_name("lab");
        let kubeconfig = std::env::temp_dir().join(format!("{name}.kubeconfig"));
        Lab { name, kubeconfig }
    }

    pub fn up(args: &[&str]) -> Lab {
        let lab = Lab::named();
        let out = lab.podnet(&[&["up", "--api-port", "0"], args].concat());
        assert!(
            out.status.success(),
            "podnet up failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(podnet_bin());
        cmd.env("PODNET_LAB", &self.name)
            .env("PODNET_CNI", podnet_cni_bin())
            .env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// Runs the real kubectl against this lab's API server (through the lab's kubeconfig).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        let cache = std::env::temp_dir().join(format!("{}.kube-cache", self.name));
        Command::new(kubectl_bin())
            .env("KUBECONFIG", &self.kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .output()
            .expect("run kubectl")
    }

    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn podnet(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run podnet")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.podnet(args);
        assert!(
            out.status.success(),
            "podnet {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn node_netns(&self, node: &str) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}-{node}", self.name))
    }

    pub fn nodes(&self) -> Value {
        serde_json::from_str(&self.ok(&["node", "list", "-o", "json"])).expect("node list json")
    }

    pub fn underlay_ip(&self, node: &str) -> Ipv4Addr {
        let nodes = self.nodes();
        let n = nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == node)
            .expect("node listed");
        n["underlayIP"].as_str().unwrap().parse().unwrap()
    }

    /// A pod on `node`: a namespace attached by podnet-cni with the node's own CNI configuration.
    pub fn pod(&self, node: &str) -> Pod {
        let ns = TestNs::new("pod");
        let paths = podnet_lab::LabPaths::new(&self.name);
        let list = podnet_lab::cniconf::read(&paths, node).expect("node CNI config");
        let mut conf = podnet_lab::cniconf::plugin_conf(&list);
        // Not a pod of the API: the policy agent would never lift a start-up hold on it.
        conf["policyHold"] = serde_json::Value::Bool(false);
        let cmd = cni_command(
            &self.node_netns(node),
            &podnet_cni_bin(),
            "ADD",
            ns.name(),
            &ns.path(),
            "eth0",
        );
        let out = run_cni(cmd, conf.to_string().as_bytes());
        assert!(
            out.status.success(),
            "ADD on {node} failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        let ip = result["ips"][0]["address"]
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        Pod {
            ns,
            ip,
            node: node.to_string(),
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = self.podnet(&["down"]);
        if !out.status.success() {
            eprintln!(
                "warning: podnet down for {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = std::fs::remove_file(&self.kubeconfig);
        let _ =
            std::fs::remove_dir_all(std::env::temp_dir().join(format!("{}.kube-cache", self.name)));
    }
}

pub struct Pod {
    pub ns: TestNs,
    pub ip: Ipv4Addr,
    pub node: String,
}

impl Pod {
    pub fn mtu(&self) -> u32 {
        self.ns
            .netlink()
            .link_by_name("eth0")
            .unwrap()
            .expect("eth0")
            .mtu
    }

    pub fn ping(&self, to: &str) -> bool {
        self.ns
            .try_sh("busybox", &["ping", "-c", "1", "-W", "2", to])
            .status
            .success()
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);

/// TCP from `a` to `b`: returns the source address `b` saw.
pub fn tcp_source(a: &Pod, b: &Pod, port: u16) -> Ipv4Addr {
    let to = SocketAddr::from((b.ip, port));
    let listener = b.ns.run(|| TcpListener::bind(to)).expect("listen");
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().expect("accept");
        s.write_all(b"pong").unwrap();
        peer
    });
    let mut reply = [0u8; 4];
    a.ns.run(|| {
        let mut s = TcpStream::connect_timeout(&to, TIMEOUT).expect("connect");
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.read_exact(&mut reply).expect("read reply");
    });
    assert_eq!(&reply, b"pong");
    match server.join().unwrap().ip() {
        std::net::IpAddr::V4(v4) => v4,
        other => panic!("unexpected peer {other}"),
    }
}

/// A UDP request/response from `a` to `b`: returns the source address `b` saw.
pub fn udp_source(a: &Pod, b: &Pod, port: u16) -> Ipv4Addr {
    let to = SocketAddr::from((b.ip, port));
    let server = b.ns.run(|| UdpSocket::bind(to)).expect("bind");
    server.set_read_timeout(Some(TIMEOUT)).unwrap();
    let client =
        a.ns.run(|| UdpSocket::bind((a.ip, 0)))
            .expect("bind client");
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    client.send_to(b"ping", to).unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = server.recv_from(&mut buf).expect("datagram arrives");
    assert_eq!(&buf[..n], b"ping");
    server.send_to(b"pong", from).unwrap();
    let (n, _) = client.recv_from(&mut buf).expect("reply arrives");
    assert_eq!(&buf[..n], b"pong");
    match from.ip() {
        std::net::IpAddr::V4(v4) => v4,
        other => panic!("unexpected peer {other}"),
    }
}

/// Sends `bytes` from `a` to `b` over TCP; returns how many arrived.
pub fn transfer(a: &Pod, b: &Pod, port: u16, bytes: usize) -> usize {
    let to = SocketAddr::from((b.ip, port));
    let listener = b.ns.run(|| TcpListener::bind(to)).expect("listen");
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut total = 0usize;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => panic!("receive: {e} after {total} bytes"),
            }
        }
        total
    });
    a.ns.run(|| {
        let mut s = TcpStream::connect_timeout(&to, TIMEOUT).expect("connect");
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        let chunk = vec![0x5au8; 1024 * 1024];
        let mut left = bytes;
        while left > 0 {
            let k = left.min(chunk.len());
            s.write_all(&chunk[..k]).expect("send");
            left -= k;
        }
    });
    server.join().unwrap()
}

/// An HTTP GET to the lab's internet host from inside a pod; returns the body.
pub fn http_get_internet(pod: &Pod) -> String {
    pod.ns.run(|| {
        let mut s = TcpStream::connect_timeout(&"203.0.113.10:80".parse().unwrap(), TIMEOUT)
            .expect("connect to the internet host");
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: 203.0.113.10\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read response");
        out
    })
}

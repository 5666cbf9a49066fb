//! A runtime's-eye harness: a "node" namespace the plugin runs in, pods as namespaces, and the plugin
//! binary invoked exactly as a CNI runtime does (environment + config on stdin).

#![allow(dead_code)]

use podnet_testkit::{TempDir, TestNs};
use serde_json::{Value, json};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

pub const ALL_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

pub fn plugin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_podnet-cni"))
}

/// What one plugin run printed and returned.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: i32,
    pub json: Option<Value>,
    pub stdout: String,
    /// The plugin's log.
    pub stderr: String,
}

impl Reply {
    pub fn ok(&self) -> &Value {
        assert_eq!(self.code, 0, "plugin failed: {}", self.stdout);
        self.json.as_ref().expect("a result on stdout")
    }

    pub fn ok_empty(&self) {
        assert_eq!(self.code, 0, "plugin failed: {}", self.stdout);
        assert!(
            self.stdout.trim().is_empty(),
            "expected no output, got {}",
            self.stdout
        );
    }

    /// The CNI error code; panics if the run succeeded.
    pub fn err_code(&self) -> u64 {
        assert_ne!(self.code, 0, "expected a failure, got {}", self.stdout);
        let j = self
            .json
            .as_ref()
            .unwrap_or_else(|| panic!("error without JSON: {:?}", self.stdout));
        j["code"].as_u64().expect("code")
    }

    pub fn err_msg(&self) -> String {
        self.json
            .as_ref()
            .and_then(|j| j["msg"].as_str())
            .unwrap_or_default()
            .to_string()
    }
}

/// A node: the runtime's namespace, with its own IPAM data directory.
pub struct Node {
    pub ns: TestNs,
    pub data: TempDir,
}

impl Node {
    pub fn new() -> Node {
        Node {
            ns: TestNs::new("node"),
            data: TempDir::new("ipam"),
        }
    }

    pub fn conf(&self, version: &str) -> Value {
        json!({
            "cniVersion": version,
            "name": "podnet",
            "type": "podnet-cni",
            "bridge": "cni0",
            "mtu": 1400,
            "ipMasq": true,
            "clusterCIDR": "10.244.0.0/16",
            "hairpinMode": true,
            "ipam": {"subnet": "10.244.1.0/24", "dataDir": self.data.0.display().to_string()},
            "capabilities": {"portMappings": true}
        })
    }

    /// Runs the plugin in this node's namespace as a runtime would.
    pub fn invoke(&self, command: &str, env: &[(&str, &str)], stdin: &[u8]) -> Reply {
        let mut cmd = self.ns.command(plugin());
        cmd.env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("CNI_COMMAND", command)
            .env("CNI_PATH", "/usr/lib/cni")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("run podnet-cni");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("write config");
        let out = child.wait_with_output().expect("wait for podnet-cni");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let json = serde_json::from_str(stdout.trim()).ok();
        Reply {
            code: out.status.code().unwrap_or(-1),
            json,
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn run(
        &self,
        command: &str,
        container: &str,
        pod: Option<&TestNs>,
        ifname: &str,
        conf: &Value,
    ) -> Reply {
        let netns = pod.map(|p| p.path().display().to_string());
        let mut env = vec![("CNI_CONTAINERID", container), ("CNI_IFNAME", ifname)];
        if let Some(n) = netns.as_deref() {
            env.push(("CNI_NETNS", n));
        }
        self.invoke(command, &env, conf.to_string().as_bytes())
    }

    pub fn add(&self, container: &str, pod: &TestNs, conf: &Value) -> Reply {
        self.run("ADD", container, Some(pod), "eth0", conf)
    }

    /// The reservations in the IPAM state file (container id -> address).
    pub fn reservations(&self) -> Vec<(String, String)> {
        let path = self.data.0.join("podnet/state.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Vec::new();
        };
        let v: Value = serde_json::from_str(&text).expect("state is JSON");
        v["reservations"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(ip, r)| (r["containerID"].as_str().unwrap().to_string(), ip.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Names of podnet host veths in the node.
    pub fn host_veths(&self) -> Vec<String> {
        self.ns
            .netlink()
            .links()
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .filter(|n| n.starts_with("pnv"))
            .collect()
    }

    pub fn has_link(&self, name: &str) -> bool {
        self.ns.netlink().link_by_name(name).unwrap().is_some()
    }
}

/// `conf` with `prevResult` set.
pub fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

/// The pod's IPv4 address from an ADD result.
pub fn pod_ip(result: &Value) -> Ipv4Addr {
    let addr = result["ips"][0]["address"].as_str().expect("address");
    addr.split('/').next().unwrap().parse().unwrap()
}

/// A TCP listener inside a namespace that reports the peer address of the first connection.
pub fn listen(ns: &TestNs, addr: SocketAddr) -> std::sync::mpsc::Receiver<SocketAddr> {
    let listener = ns
        .run(|| TcpListener::bind(addr))
        .unwrap_or_else(|e| panic!("listen on {addr}: {e}"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let accepted = listener.accept();
        // Close the listening socket before reporting, so the port is free for the next listener.
        drop(listener);
        if let Ok((_, peer)) = accepted {
            let _ = tx.send(peer);
        }
    });
    rx
}

/// Connects from inside a namespace; returns whether it connected within the timeout.
pub fn connect(ns: &TestNs, to: SocketAddr) -> bool {
    ns.run(|| TcpStream::connect_timeout(&to, Duration::from_secs(2)).is_ok())
}

pub fn peer_seen(rx: &std::sync::mpsc::Receiver<SocketAddr>) -> Option<SocketAddr> {
    rx.recv_timeout(Duration::from_secs(3)).ok()
}

//! Test harness: an API server on an ephemeral loopback port, the real kubectl and helm pointed at it
//! through a private kubeconfig, HOME and cache directory (never the user's ~/.kube).

#![allow(dead_code)]

pub mod client;
pub mod fake_node;

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use podnet_apiserver::{Config, Pki, ServerHandle, kubeconfig, pki};

/// Where scripts/setup.sh puts the real kubectl and helm. Missing tools fail the test.
pub fn tools_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/tools");
    for t in ["kubectl", "helm"] {
        assert!(
            dir.join(t).is_file(),
            "{} is missing: run scripts/setup.sh to fetch the real kubectl and helm (the end-to-end tests need them)",
            dir.join(t).display()
        );
    }
    dir
}

pub struct TestServer {
    pub dir: Option<tempfile::TempDir>,
    pub handle: Option<ServerHandle>,
    pub url: String,
    pub port: u16,
    pub kubeconfig: PathBuf,
    pub pki: Pki,
    tools: PathBuf,
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(|_| {})
    }

    pub fn start_with(f: impl FnOnce(&mut Config)) -> TestServer {
        let tools = tools_dir();
        let dir = tempfile::tempdir().expect("tempdir");
        let names = pki::server_names(
            Ipv4Addr::new(10, 100, 0, 1),
            Ipv4Addr::new(10, 96, 0, 1),
            &[],
        );
        let material = Pki::generate(&names).expect("pki");
        Self::start_in(dir, material, tools, f)
    }

    /// Starts a server on an existing data directory (restart tests).
    pub fn start_in(
        dir: tempfile::TempDir,
        material: Pki,
        tools: PathBuf,
        f: impl FnOnce(&mut Config),
    ) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let mut config = Config::new(dir.path().join("data"), material.clone());
        // the test nodes have no agent renewing their Lease: only the node lifecycle tests (which set
        // their own) should see them go unreachable
        config.node_monitor_grace_period = Duration::from_secs(3600);
        config.node_startup_grace_period = Duration::from_secs(3600);
        f(&mut config);
        let handle = podnet_apiserver::start(config, vec![listener]).expect("start API server");
        let url = format!("https://127.0.0.1:{port}");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            kubeconfig::render_yaml(&url, &material.ca_cert_pem, &material.token),
        )
        .unwrap();
        TestServer {
            dir: Some(dir),
            handle: Some(handle),
            url,
            port,
            kubeconfig,
            pki: material,
            tools,
        }
    }

    /// Stops the server, keeping its directory (for restarts).
    pub fn stop(mut self) -> (tempfile::TempDir, Pki, PathBuf) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
        (
            self.dir.take().expect("dir"),
            self.pki.clone(),
            self.tools.clone(),
        )
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("dir").path()
    }

    fn env(&self, c: &mut Command) {
        c.env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.path())
            .env("HELM_CACHE_HOME", self.path().join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.path().join("helm/config"))
            .env("HELM_DATA_HOME", self.path().join("helm/data"))
            .current_dir(self.path());
    }

    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.tools.join("kubectl"));
        c.arg("--cache-dir")
            .arg(self.path().join("kube-cache"))
            .args(args);
        self.env(&mut c);
        c
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args).output().expect("run kubectl")
    }

    /// Runs kubectl, asserts success, returns stdout.
    #[track_caller]
    pub fn k(&self, args: &[&str]) -> String {
        let o = self.kubectl(args);
        assert!(
            o.status.success(),
            "kubectl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            o.status,
            s(&o.stdout),
            s(&o.stderr)
        );
        s(&o.stdout)
    }

    /// Runs kubectl, asserts failure, returns stderr.
    #[track_caller]
    pub fn k_err(&self, args: &[&str]) -> String {
        let o = self.kubectl(args);
        assert!(
            !o.status.success(),
            "kubectl {args:?} unexpectedly succeeded:\n{}",
            s(&o.stdout)
        );
        s(&o.stderr)
    }

    /// Runs kubectl with `input` on stdin.
    #[track_caller]
    pub fn k_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut c = self.kubectl_cmd(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn kubectl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn helm(&self, args: &[&str]) -> Output {
        let mut c = Command::new(self.tools.join("helm"));
        c.args(args);
        self.env(&mut c);
        c.output().expect("run helm")
    }

    #[track_caller]
    pub fn h(&self, args: &[&str]) -> String {
        let o = self.helm(args);
        assert!(
            o.status.success(),
            "helm {args:?} failed:\nstdout: {}\nstderr: {}",
            s(&o.stdout),
            s(&o.stderr)
        );
        s(&o.stdout)
    }

    /// Writes a file into the test directory and returns its path.
    pub fn file(&self, name: &str, content: &str) -> String {
        let p = self.path().join(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    }

    /// Polls `f` until it returns true (at most `secs` seconds).
    #[track_caller]
    pub fn eventually(&self, secs: u64, what: &str, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(secs) {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out after {secs}s waiting for {what}");
    }

    /// Registers a Ready node backed by `node` (its kubelet address and port).
    pub fn add_node(&self, name: &str, port: u16) {
        let node = serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
                "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "20Gi"},
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "20Gi"},
                "nodeInfo": {"kubeletVersion": "v1.35.0", "osImage": "Debian GNU/Linux 12 (bookworm)", "kernelVersion": "6.1.0", "containerRuntimeVersion": "runc://1.1.5",
                    "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"},
            },
        });
        let f = self.file(&format!("node-{name}.json"), &node.to_string());
        self.k(&["create", "-f", &f]);
    }

    /// Writes a kubeconfig for node `node` with its own credentials (what the lab gives a node agent).
    pub fn node_kubeconfig(&self, node: &str) -> PathBuf {
        let creds = podnet_apiserver::auth::node_credentials(
            &self.pki,
            podnet_apiserver::auth::DEFAULT_ISSUER,
            node,
        )
        .expect("node credentials");
        let path = self.path().join(format!("kubeconfig-{node}"));
        kubeconfig::write_node(&path, &self.url, &self.pki.ca_cert_pem, &creds).expect("write");
        path
    }

    /// Runs kubectl with another kubeconfig (a node's, a token's); returns the output.
    pub fn kubectl_with(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        let mut c = self.kubectl_cmd(args);
        c.env("KUBECONFIG", kubeconfig);
        c.output().expect("run kubectl")
    }

    /// Plays the kubelet for `pod`: Running and Ready with an IP.
    pub fn mark_running(&self, ns: &str, pod: &str, ip: &str) {
        let spec: serde_json::Value =
            serde_json::from_str(&self.k(&["get", "pod", pod, "-n", ns, "-o", "json"])).unwrap();
        let statuses: Vec<serde_json::Value> = spec["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| serde_json::json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": true, "started": true, "restartCount": 0,
                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}))
            .collect();
        let patch = serde_json::json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "127.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}, {"type": "Initialized", "status": "True"}],
            "containerStatuses": statuses}});
        self.k(&[
            "patch",
            "pod",
            pod,
            "-n",
            ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch.to_string(),
        ]);
    }
}

/// Plays a node's kubelet in the background: pods bound to the node become Running and Ready (when
/// `run_pods`), and pods being deleted from it are finalized.
pub struct Kubelet {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl TestServer {
    pub fn kubelet(&self, node: &str, run_pods: bool) -> Kubelet {
        let api = self.handle.as_ref().expect("running").api();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let node = node.to_string();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let pods = podnet_apimachinery::resources::find("", "v1", "pods").unwrap();
            let mut ip = 100;
            while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                for p in api.list_values(pods, None) {
                    if p["spec"]["nodeName"] != node.as_str() {
                        continue;
                    }
                    let (ns, name) = (
                        p["metadata"]["namespace"].as_str().unwrap().to_string(),
                        p["metadata"]["name"].as_str().unwrap().to_string(),
                    );
                    if p["metadata"].get("deletionTimestamp").is_some() {
                        let _ = rt.block_on(api.force_remove(pods, &ns, &name));
                    } else if run_pods && p["status"]["phase"] != "Running" {
                        ip += 1;
                        let addr = format!("10.244.1.{ip}");
                        let _ = rt.block_on(api.mutate(pods, &ns, &name, Some("status"), |o| {
                            let statuses: Vec<serde_json::Value> = o["spec"]["containers"].as_array().unwrap().iter()
                                .map(|c| serde_json::json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": true, "started": true, "restartCount": 0,
                                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}))
                                .collect();
                            o["status"]["phase"] = serde_json::json!("Running");
                            o["status"]["podIP"] = serde_json::json!(addr);
                            o["status"]["podIPs"] = serde_json::json!([{"ip": addr}]);
                            o["status"]["containerStatuses"] = serde_json::json!(statuses);
                            o["status"]["conditions"] = serde_json::json!([{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]);
                            true
                        }));
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Kubelet {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
    }
}

pub fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The lines of a kubectl table, split into whitespace-separated cells.
pub fn table(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

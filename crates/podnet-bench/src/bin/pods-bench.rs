//! Pods on the lab against podman on the same machine, in the same run:
//! - `kubectl apply` of a two-container pod until the pod is Ready (seen by a `kubectl get -w`
//!   started beforehand), against `podman pod create` + two `podman run -d --pod` (infra container,
//!   CNI bridge network in a namespace of its own); the same busybox image (podnet's substitute,
//!   copied into podman's store), interleaved, p50/p95 over N pods;
//! - 100 pods over 3 nodes in one `kubectl apply`, until all are Ready, then one `kubectl delete`
//!   until all are gone;
//! - the memory of podnet's own processes (node agents, shims, pause processes) per running pod, as
//!   RSS (what `ps` shows, shared pages counted in each process) and PSS (shared pages divided).
//!
//! Usage: pods-bench [--pods N] [--many M]   (root; see bench/pods.sh)

use anyhow::{Context, Result, bail};
use podnet_bench::{arg, ms, p50_p95, ratio_line};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Both containers exit at once on SIGTERM (a plain `sleep` as PID 1 would wait out the grace period).
const CMD: &str = "trap 'exit 0' TERM; sleep 100000 & wait";
const IMAGE: &str = "docker.io/library/busybox:latest";
/// A pod seen by the watch: name, Ready, deleted, when.
type WatchEvent = (String, bool, bool, Instant);

fn pod_yaml(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - {{name: a, image: busybox, command: ['sh', '-c', \"{CMD}\"]}}\n  - {{name: b, image: busybox, command: ['sh', '-c', \"{CMD}\"]}}\n---\n"
    )
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A lab for the benchmark, taken down on drop.
struct Lab {
    name: String,
    kubeconfig: PathBuf,
    podnet: PathBuf,
    kubectl: PathBuf,
}

impl Lab {
    fn up(nodes: u32) -> Result<Lab> {
        let name = podnet_testkit::unique_name("bpods");
        let lab = Lab {
            kubeconfig: std::env::temp_dir().join(format!("{name}.kubeconfig")),
            podnet: std::env::current_exe()?.with_file_name("podnet"),
            kubectl: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache/tools/kubectl"),
            name,
        };
        run(
            lab.podnet()
                .args(["up", "--api-port", "0", "--nodes", &nodes.to_string()]),
            "podnet up",
        )?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let t = run(
                lab.kubectl().args(["get", "nodes", "--no-headers"]),
                "get nodes",
            )?;
            if t.lines().filter(|l| l.contains(" Ready ")).count() == nodes as usize {
                return Ok(lab);
            }
            if Instant::now() > deadline {
                bail!("nodes not Ready: {t}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn podnet(&self) -> Command {
        let mut c = Command::new(&self.podnet);
        c.env("PODNET_LAB", &self.name)
            .env("KUBECONFIG", &self.kubeconfig);
        c
    }

    fn kubectl(&self) -> Command {
        let mut c = Command::new(&self.kubectl);
        c.env("KUBECONFIG", &self.kubeconfig)
            .arg("--cache-dir")
            .arg(std::env::temp_dir().join(format!("{}.kube-cache", self.name)));
        c
    }

    fn apply(&self, yaml: &str) -> Result<()> {
        let mut child = self
            .kubectl()
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        child.stdin.take().unwrap().write_all(yaml.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("kubectl apply: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// A `kubectl get pods -w` whose events arrive on the channel: (pod, Ready, deleted, when seen).
    fn watch(&self) -> Result<(Child, mpsc::Receiver<WatchEvent>)> {
        let mut child = self
            .kubectl()
            .args(["get", "pods", "-w", "--output-watch-events", "-o", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let events = serde_json::Deserializer::from_reader(std::io::BufReader::new(stdout))
                .into_iter::<Value>();
            for ev in events.flatten() {
                let obj = &ev["object"];
                let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
                let ready = obj["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                let deleted = ev["type"] == "DELETED";
                if tx.send((name, ready, deleted, Instant::now())).is_err() {
                    return;
                }
            }
        });
        Ok((child, rx))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.podnet().arg("down").output();
        let _ = std::fs::remove_file(&self.kubeconfig);
        let _ =
            std::fs::remove_dir_all(std::env::temp_dir().join(format!("{}.kube-cache", self.name)));
    }
}

/// Waits on the watch until `done` holds for the state seen so far; returns when it did.
fn wait_watch(
    rx: &mpsc::Receiver<WatchEvent>,
    ready: &mut HashSet<String>,
    gone: &mut HashSet<String>,
    limit: Duration,
    done: &dyn Fn(&HashSet<String>, &HashSet<String>) -> bool,
) -> Result<Instant> {
    let deadline = Instant::now() + limit;
    let mut last = Instant::now();
    while !done(ready, gone) {
        let left = deadline.saturating_duration_since(Instant::now());
        let (name, is_ready, deleted, at) = rx
            .recv_timeout(left)
            .context("timed out waiting for pods")?;
        last = at;
        if deleted {
            gone.insert(name.clone());
            ready.remove(&name);
        } else if is_ready {
            ready.insert(name);
        }
    }
    Ok(last)
}

/// podman with its own storage, config and CNI network, every call inside a namespace of its own.
struct Podman {
    dir: tempfile::TempDir,
    netns: String,
}

impl Podman {
    fn new() -> Result<Podman> {
        let dir = tempfile::Builder::new()
            .prefix("pnt-pods-bench")
            .tempdir()?;
        let d = dir.path().display().to_string();
        let netns = podnet_testkit::unique_name("bpm");
        run(
            Command::new("ip").args(["netns", "add", &netns]),
            "ip netns add",
        )?;
        std::fs::create_dir_all(dir.path().join("net"))?;
        std::fs::create_dir_all(dir.path().join("tmp"))?;
        std::fs::write(
            dir.path().join("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{d}/graph\"\nrunroot = \"{d}/run\"\n"
            ),
        )?;
        std::fs::write(
            dir.path().join("containers.conf"),
            format!(
                "[network]\nnetwork_backend = \"cni\"\nnetwork_config_dir = \"{d}/net\"\ncni_plugin_dirs = [\"/usr/lib/cni\"]\n\
                 [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\ntmp_dir = \"{d}/tmp\"\n\
                 [containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n"
            ),
        )?;
        std::fs::write(
            dir.path().join("net/pntbench.conflist"),
            format!(
                r#"{{"cniVersion":"0.4.0","name":"pntbench","plugins":[{{"type":"bridge","bridge":"pntbr0","isGateway":true,"ipMasq":false,"ipam":{{"type":"host-local","ranges":[[{{"subnet":"10.88.0.0/16"}}]],"dataDir":"{d}/ipam"}}}}]}}"#
            ),
        )?;
        let p = Podman { dir, netns };
        // The same image as the lab's, from podnet's substitute; and an infra image whose
        // entrypoint sleeps (podman's own pause image needs catatonit, which Debian 12 lacks).
        run(
            Command::new("skopeo").args([
                "copy",
                "-q",
                &format!("oci:/var/lib/podnet/_substitutes:{IMAGE}"),
                &format!("containers-storage:[overlay@{d}/graph+{d}/run]{IMAGE}"),
            ]),
            "skopeo copy busybox into podman's store",
        )?;
        run(
            p.cmd().args(["create", "--name", "pausebase", IMAGE]),
            "podman create",
        )?;
        run(
            p.cmd().args([
                "commit",
                "-q",
                "--change",
                "ENTRYPOINT [\"/bin/sleep\"]",
                "--change",
                "CMD [\"1000000000\"]",
                "pausebase",
                "localhost/pnt-pause:latest",
            ]),
            "podman commit",
        )?;
        run(p.cmd().args(["rm", "pausebase"]), "podman rm")?;
        Ok(p)
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.netns))
            .arg("podman")
            .env(
                "CONTAINERS_STORAGE_CONF",
                self.dir.path().join("storage.conf"),
            )
            .env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
            .env("TMPDIR", self.dir.path().join("tmp"));
        c
    }

    /// One two-container pod, as the anchor: returns how long it took.
    fn pod(&self, name: &str) -> Result<Duration> {
        let started = Instant::now();
        run(
            self.cmd().args([
                "pod",
                "create",
                "--name",
                name,
                "--network",
                "pntbench",
                "--infra-image",
                "localhost/pnt-pause:latest",
            ]),
            "podman pod create",
        )?;
        for _ in 0..2 {
            run(
                self.cmd()
                    .args(["run", "-d", "--pod", name, IMAGE, "sh", "-c", CMD]),
                "podman run -d --pod",
            )?;
        }
        Ok(started.elapsed())
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .args(["pod", "rm", "-f", "-a", "-t", "0"])
            .output();
        let _ = self.cmd().args(["system", "reset", "-f"]).output();
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path().join("graph"))
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
    }
}

fn kb(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// RSS and PSS (kB) of the lab's agents, shims and pause processes, and how many of each.
fn podnet_memory(lab: &Lab) -> (u64, u64, HashMap<&'static str, usize>) {
    let pause = lab.podnet.with_file_name("podnet-pause");
    let (mut rss, mut pss) = (0, 0);
    let mut counts = HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let parent = std::fs::read(format!("/proc/{}/cmdline", kb(&status, "PPid:")))
            .map(|c| String::from_utf8_lossy(&c).into_owned())
            .unwrap_or_default();
        // An agent's own children between fork and exec (CNI plugins, the pause launcher) look
        // like agents: only the daemon's children are.
        let kind = if cmd.contains("node-agent")
            && parent.contains("__lab-daemon")
            && String::from_utf8_lossy(&environ).contains(&format!("PODNET_LAB={}\0", lab.name))
        {
            "agent"
        } else if cmd.contains("podnet-shim") && cmd.contains(&format!("/{}/", lab.name)) {
            "shim"
        } else if exe == pause {
            "pause"
        } else {
            continue;
        };
        let rollup =
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        rss += kb(&status, "VmRSS:");
        pss += kb(&rollup, "Pss:");
        *counts.entry(kind).or_default() += 1;
    }
    (rss, pss, counts)
}

fn main() -> Result<()> {
    let n = arg("--pods", 50) as usize;
    let many = arg("--many", 100) as usize;

    // 1. One pod at a time, interleaved with podman.
    eprintln!("two-container pods to Ready: {n} on a 2-node lab, {n} with podman, interleaved...");
    let lab = Lab::up(2)?;
    let podman = Podman::new()?;
    let (mut watcher, rx) = lab.watch()?;
    let (mut ready, mut gone) = (HashSet::new(), HashSet::new());
    // Warm-up: the image is in both nodes' stores and in podman's, caches are warm.
    for i in 0..2 {
        lab.apply(&pod_yaml(&format!("warm-{i}")))?;
    }
    wait_watch(
        &rx,
        &mut ready,
        &mut gone,
        Duration::from_secs(60),
        &|r, _| r.contains("warm-0") && r.contains("warm-1"),
    )?;
    podman.pod("warm")?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..n {
        let name = format!("p-{i}");
        let yaml = pod_yaml(&name);
        let started = Instant::now();
        lab.apply(&yaml)?;
        let at = wait_watch(
            &rx,
            &mut ready,
            &mut gone,
            Duration::from_secs(60),
            &|r, _| r.contains(&name),
        )?;
        ours.push(at.saturating_duration_since(started));
        theirs.push(podman.pod(&format!("p-{i}"))?);
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    drop(podman);
    drop(lab);
    let (o50, o95) = p50_p95(ours);
    let (t50, t95) = p50_p95(theirs);
    println!("two-container pod to Ready, {n} pods each, interleaved:");
    println!(
        "{}",
        ratio_line("pod Ready p50 (vs podman)", o50, t50, 0.35)
    );
    println!(
        "{}",
        ratio_line("pod Ready p95 (vs podman)", o95, t95, 0.35)
    );
    let verdict = if o50 < Duration::from_millis(150) {
        "meets"
    } else {
        "MISSES"
    };
    println!("pod Ready p50 {} ({verdict} target < 150 ms)", ms(o50));

    // 2. Many pods at once over three nodes.
    eprintln!("{many} pods over 3 nodes...");
    let lab = Lab::up(3)?;
    let (mut watcher, rx) = lab.watch()?;
    let (mut ready, mut gone) = (HashSet::new(), HashSet::new());
    lab.apply(&pod_yaml("warm"))?;
    wait_watch(
        &rx,
        &mut ready,
        &mut gone,
        Duration::from_secs(60),
        &|r, _| r.contains("warm"),
    )?;
    run(lab.kubectl().args(["delete", "pod", "warm"]), "delete warm")?;
    ready.clear();
    gone.clear();
    let names: Vec<String> = (0..many).map(|i| format!("m-{i}")).collect();
    let manifest: String = names.iter().map(|n| pod_yaml(n)).collect();
    let started = Instant::now();
    lab.apply(&manifest)?;
    let all_ready = wait_watch(
        &rx,
        &mut ready,
        &mut gone,
        Duration::from_secs(300),
        &|r, _| names.iter().all(|n| r.contains(n)),
    )?
    .saturating_duration_since(started);
    let per_node = run(
        lab.kubectl()
            .args(["get", "pods", "-o", "jsonpath={.items[*].spec.nodeName}"]),
        "get pods",
    )?;
    let mut spread: HashMap<&str, usize> = HashMap::new();
    for node in per_node.split_whitespace() {
        *spread.entry(node).or_default() += 1;
    }
    let (rss, pss, counts) = podnet_memory(&lab);
    let started = Instant::now();
    run(
        lab.kubectl()
            .args(["delete", "pods", "--all", "--wait=false"]),
        "delete pods --all",
    )?;
    let all_gone = wait_watch(
        &rx,
        &mut ready,
        &mut gone,
        Duration::from_secs(300),
        &|_, g| names.iter().all(|n| g.contains(n)),
    )?
    .saturating_duration_since(started);
    let _ = watcher.kill();
    let _ = watcher.wait();
    drop(lab);
    let mut spread: Vec<_> = spread.into_iter().collect();
    spread.sort();
    println!(
        "{many} two-container pods over 3 nodes ({spread:?}): all Ready {} ({} target < 10 s), all deleted {}",
        ms(all_ready),
        if all_ready < Duration::from_secs(10) {
            "meets"
        } else {
            "MISSES"
        },
        ms(all_gone)
    );
    let per_pod = |kb: u64| kb as f64 / 1024.0 / many as f64;
    println!(
        "podnet memory with {many} pods running ({:?}): RSS {:.2} MB/pod ({} target < 5 MB), PSS {:.2} MB/pod",
        {
            let mut c: Vec<_> = counts.into_iter().collect();
            c.sort();
            c
        },
        per_pod(rss),
        if per_pod(rss) < 5.0 {
            "meets"
        } else {
            "MISSES"
        },
        per_pod(pss)
    );
    Ok(())
}

//! podnet-cni against the reference `bridge` + `host-local` plugins (Debian's containernetworking-plugins),
//! both with ipMasq on, called the way a runtime calls them: one process per operation, config on
//! stdin, inside a node namespace. Runs are interleaved so both see the same machine state.
//!
//! Usage: cni-bench [--pods N] [--burst-rounds R] [--spoof-check 0|1]   (root; see bench/cni.sh)

use anyhow::{Context, Result, bail};
use podnet_bench::{arg, ms, p50_p95, ratio_line};
use podnet_testkit::{TempDir, TestNs};
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const BURST_PARALLEL: usize = 8;

struct Plugin {
    label: &'static str,
    bin: PathBuf,
    conf: Value,
    node: TestNs,
    pods: Vec<TestNs>,
    _data: TempDir,
}

impl Plugin {
    fn invoke(&self, command: &str, i: usize) -> Result<Duration> {
        let netns = self.pods[i].path().display().to_string();
        let container = format!("bench-{i}");
        let started = Instant::now();
        let mut child = self
            .node
            .command(&self.bin)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &container)
            .env("CNI_NETNS", &netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/usr/lib/cni")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("run {}", self.bin.display()))?;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(self.conf.to_string().as_bytes())?;
        let out = child.wait_with_output()?;
        let took = started.elapsed();
        if !out.status.success() {
            bail!(
                "{} {command} {container}: {}{}",
                self.label,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(took)
    }

    /// ADD (or DEL) of every pod, `BURST_PARALLEL` at a time; returns the wall time.
    fn burst(&self, command: &str) -> Result<Duration> {
        let next = Mutex::new(0usize);
        let failure = Mutex::new(None);
        let started = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..BURST_PARALLEL {
                s.spawn(|| {
                    loop {
                        let i = {
                            let mut n = next.lock().unwrap();
                            if *n >= self.pods.len() {
                                break;
                            }
                            *n += 1;
                            *n - 1
                        };
                        if let Err(e) = self.invoke(command, i) {
                            *failure.lock().unwrap() = Some(e);
                            break;
                        }
                    }
                });
            }
        });
        let wall = started.elapsed();
        match failure.into_inner().unwrap() {
            Some(e) => Err(e),
            None => Ok(wall),
        }
    }
}

/// The kernel's own cost of removing a pod's veth (bridged, peer in another namespace), measured with
/// one netlink DELLINK from this process: the floor under any DEL that waits for the removal.
/// Its pod namespaces are made up front: deleting a namespace sets off asynchronous kernel cleanup that
/// would slow every measurement running next to it.
struct Floor {
    node: TestNs,
    bridge: u32,
    pods: Vec<TestNs>,
}

impl Floor {
    fn new(pods: usize) -> Result<Floor> {
        let node = TestNs::new("fnode");
        let bridge = node.netlink().ensure_bridge("br0", None, None)?.index;
        Ok(Floor {
            node,
            bridge,
            pods: (0..pods).map(|_| TestNs::new("fpod")).collect(),
        })
    }

    fn one(&self, i: usize) -> Result<Duration> {
        let pod = &self.pods[i];
        let mut nl = self.node.netlink();
        nl.create_veth(&podnet_netlink::VethSpec {
            name: "fv0",
            peer_name: "eth0",
            peer_netns_fd: Some(pod.ns().fd()),
            master: Some(self.bridge),
            up: true,
            ..Default::default()
        })?;
        let started = Instant::now();
        nl.delete_link_by_name("fv0")?;
        Ok(started.elapsed())
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<()> {
    podnet_testkit::require_root();
    let pods = arg("--pods", 100) as usize;
    let rounds = arg("--burst-rounds", 3) as usize;
    let spoof_check = arg("--spoof-check", 1) != 0;
    let podnet_bin = std::env::var("PODNET_CNI_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let exe = std::env::current_exe().expect("own path");
            exe.with_file_name("podnet-cni")
        });
    let reference = PathBuf::from("/usr/lib/cni/bridge");
    if !reference.is_file() {
        bail!(
            "reference plugin {} missing: run scripts/setup.sh (containernetworking-plugins)",
            reference.display()
        );
    }
    if !podnet_bin.is_file() {
        bail!(
            "podnet-cni not found at {}: build it with cargo build --release -p podnet-cni",
            podnet_bin.display()
        );
    }

    let make = |label: &'static str, bin: PathBuf, conf: fn(&str) -> Value| -> Plugin {
        let data = TempDir::new("bench-ipam");
        Plugin {
            label,
            bin,
            conf: conf(&data.0.display().to_string()),
            node: TestNs::new("bnode"),
            pods: (0..pods).map(|_| TestNs::new("bpod")).collect(),
            _data: data,
        }
    };
    let mut ours = make("podnet-cni", podnet_bin, |dir| {
        json!({"cniVersion": "1.0.0", "name": "bench", "type": "podnet-cni", "bridge": "cni0", "ipMasq": true,
               "clusterCIDR": "10.244.0.0/16", "hairpinMode": true, "ipam": {"subnet": "10.244.1.0/24", "dataDir": dir}})
    });
    // podnet-cni's anti-spoofing (on in the lab's configuration): one netlink batch more per ADD.
    ours.conf["spoofCheck"] = json!(spoof_check);
    let anchor = make("bridge+host-local", reference, |dir| {
        json!({"cniVersion": "1.0.0", "name": "bench", "type": "bridge", "bridge": "cni0", "isGateway": true,
               "ipMasq": true, "hairpinMode": true,
               "ipam": {"type": "host-local", "subnet": "10.244.1.0/24", "dataDir": dir, "routes": [{"dst": "0.0.0.0/0"}]}})
    });

    println!(
        "CNI ADD/DEL: podnet-cni (spoofCheck {}) vs reference bridge+host-local (containernetworking-plugins), ipMasq on for both",
        if spoof_check { "on" } else { "off" }
    );
    println!(
        "{pods} pods, sequential then {rounds} bursts of {pods} at {BURST_PARALLEL} in parallel; runs interleaved\n"
    );

    // Warm-up: the first ADD of each plugin creates the bridge and its firewall state.
    for p in [&ours, &anchor] {
        p.invoke("ADD", 0)?;
        p.invoke("DEL", 0)?;
    }

    let (mut add_ours, mut add_ref, mut del_ours, mut del_ref) = (vec![], vec![], vec![], vec![]);
    // The order inside each round rotates: what runs right after another plugin's teardown inherits the
    // kernel's deferred work (RCU callbacks), and no side should always be the one that pays it.
    for i in 0..pods {
        if i % 2 == 0 {
            add_ours.push(ours.invoke("ADD", i)?);
            add_ref.push(anchor.invoke("ADD", i)?);
        } else {
            add_ref.push(anchor.invoke("ADD", i)?);
            add_ours.push(ours.invoke("ADD", i)?);
        }
    }
    let floor = Floor::new(pods)?;
    let mut del_floor = vec![];
    for i in 0..pods {
        for step in 0..3 {
            match (i + step) % 3 {
                0 => del_ours.push(ours.invoke("DEL", i)?),
                1 => del_ref.push(anchor.invoke("DEL", i)?),
                _ => del_floor.push(floor.one(i)?),
            }
        }
    }
    let (f50, _) = p50_p95(del_floor);
    let (a50, a95) = p50_p95(add_ours);
    let (ra50, ra95) = p50_p95(add_ref);
    let (d50, d95) = p50_p95(del_ours);
    let (rd50, rd95) = p50_p95(del_ref);
    println!("sequential          podnet p50 / p95          reference p50 / p95");
    println!(
        "ADD                 {:>9} / {:>9}    {:>9} / {:>9}",
        ms(a50),
        ms(a95),
        ms(ra50),
        ms(ra95)
    );
    println!(
        "DEL                 {:>9} / {:>9}    {:>9} / {:>9}\n",
        ms(d50),
        ms(d95),
        ms(rd50),
        ms(rd95)
    );

    let (mut bo, mut br, mut bdo, mut bdr) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        bo.push(ours.burst("ADD")?);
        br.push(anchor.burst("ADD")?);
        bdo.push(ours.burst("DEL")?);
        bdr.push(anchor.burst("DEL")?);
    }
    println!("{}", ratio_line("ADD p50", a50, ra50, 0.25));
    println!("{}", ratio_line("DEL p50", d50, rd50, 0.25));
    println!("{}", ratio_line("ADD p95", a95, ra95, 0.25));
    println!("{}", ratio_line("DEL p95", d95, rd95, 0.25));
    println!(
        "{}",
        ratio_line(
            &format!("{pods}-pod ADD burst x{BURST_PARALLEL} (wall)"),
            median(bo),
            median(br),
            0.25
        )
    );
    println!(
        "{}",
        ratio_line(
            &format!("{pods}-pod DEL burst x{BURST_PARALLEL} (wall)"),
            median(bdo),
            median(bdr),
            0.25
        )
    );

    println!(
        "\nDEL floor, measured interleaved with the DELs above: the kernel removing one bridged veth (a single\n\
         netlink DELLINK from an already running process, which waits for an RCU barrier) p50 {} = {:.3} of the\n\
         reference DEL p50. podnet-cni DEL p50 = floor + {} (process start, IPAM release).",
        ms(f50),
        f50.as_secs_f64() / rd50.as_secs_f64(),
        ms(d50.saturating_sub(f50))
    );
    Ok(())
}

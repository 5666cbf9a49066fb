//! Lab throughput with iperf3 (TCP, one stream) against two namespaces joined by a bare veth pair, in
//! the same run, interleaved: same node (pod -> bridge -> pod), cross-node host-gw, cross-node vxlan.
//! Also times `podnet up --nodes 3` and `podnet down`.
//!
//! Usage: lab-bench [--seconds S] [--rounds R]   (root; see bench/lab.sh)

use anyhow::{Context, Result, bail};
use podnet_bench::{arg, ms};
use podnet_testkit::{TestNs, cni_command, command_in, link, run_cni, unique_name};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An iperf3 server in the namespace at `ns` (one test, then it exits).
fn iperf_server(ns: &Path, bind: Ipv4Addr) -> Result<Child> {
    let child = command_in(ns, "iperf3")
        .args(["-s", "-1", "-B", &bind.to_string(), "-p", "5201"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start iperf3 -s (install it: scripts/setup.sh)")?;
    std::thread::sleep(Duration::from_millis(150));
    Ok(child)
}

/// Gbit/s received by the server of one iperf3 TCP test from `from` to `to_ip` in `to`.
fn iperf(from: &Path, to: &Path, to_ip: Ipv4Addr, seconds: u64) -> Result<f64> {
    let mut server = iperf_server(to, to_ip)?;
    // No CPU pinning: on a multi-hop path the whole forwarding chain runs in softirq on the sender's
    // CPU, and pinning would load that CPU with the client too, which no real node does.
    let out = command_in(from, "iperf3")
        .args([
            "-c",
            &to_ip.to_string(),
            "-p",
            "5201",
            "-t",
            &seconds.to_string(),
            "-J",
        ])
        .output()?;
    let _ = server.wait();
    let json: Value = serde_json::from_slice(&out.stdout).context("iperf3 -J output")?;
    if let Some(err) = json["error"].as_str() {
        bail!("iperf3 to {to_ip}: {err}");
    }
    let bps = json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("bits_per_second")?;
    Ok(bps / 1e9)
}

struct Podnet {
    lab: String,
    bin: PathBuf,
    cni: PathBuf,
}

impl Podnet {
    fn run(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.bin)
            .env("PODNET_LAB", &self.lab)
            .env("PODNET_CNI", &self.cni)
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!("podnet {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn node_ns(&self, node: &str) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}-{node}", self.lab))
    }

    /// A pod on `node`, attached with podnet-cni and the node's configuration.
    fn pod(&self, node: &str) -> Result<(TestNs, Ipv4Addr)> {
        let ns = TestNs::new("bpod");
        let list = podnet_lab::cniconf::read(&podnet_lab::LabPaths::new(&self.lab), node)?;
        let mut conf = podnet_lab::cniconf::plugin_conf(&list);
        // Not pods of the API: the policy agent would never lift a start-up hold on them.
        conf["policyHold"] = serde_json::Value::Bool(false);
        let cmd = cni_command(
            &self.node_ns(node),
            &self.cni,
            "ADD",
            ns.name(),
            &ns.path(),
            "eth0",
        );
        let out = run_cni(cmd, conf.to_string().as_bytes());
        let result: Value = serde_json::from_slice(&out.stdout).context("ADD result")?;
        let ip = result["ips"][0]["address"]
            .as_str()
            .context("address")?
            .split('/')
            .next()
            .unwrap()
            .parse()?;
        Ok((ns, ip))
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() -> Result<()> {
    podnet_testkit::require_root();
    let seconds = arg("--seconds", 3);
    let rounds = arg("--rounds", 5);
    let exe = std::env::current_exe()?;
    let podnet = Podnet {
        lab: unique_name("blab"),
        bin: exe.with_file_name("podnet"),
        cni: exe.with_file_name("podnet-cni"),
    };
    for b in [&podnet.bin, &podnet.cni] {
        if !b.is_file() {
            bail!(
                "{} missing: cargo build --release -p podnet -p podnet-cni",
                b.display()
            );
        }
    }

    // Timing of up and down, 3 nodes.
    let (mut ups, mut downs) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let t = Instant::now();
        podnet.run(&["up", "--nodes", "3", "--api-port", "0", "--no-kubeconfig"])?;
        ups.push(t.elapsed());
        let t = Instant::now();
        podnet.run(&["down"])?;
        downs.push(t.elapsed());
    }
    ups.sort();
    downs.sort();

    // The anchor: two namespaces joined by a bare veth pair.
    let (va, vb) = (TestNs::new("bare-a"), TestNs::new("bare-b"));
    link(
        &va,
        "eth0",
        "10.250.0.1/24".parse()?,
        &vb,
        "eth0",
        "10.250.0.2/24".parse()?,
    );

    podnet.run(&[
        "up",
        "--nodes",
        "3",
        "--mode",
        "host-gw",
        "--api-port",
        "0",
        "--no-kubeconfig",
    ])?;
    let result = (|| -> Result<()> {
        let (p1, ip1) = podnet.pod("node1")?;
        let (p1b, ip1b) = podnet.pod("node1")?;
        let (p2, ip2) = podnet.pod("node2")?;
        let _ = ip1;
        let (mut bare, mut same, mut hostgw, mut vxlan) = (vec![], vec![], vec![], vec![]);
        for round in 0..rounds {
            eprintln!("round {}/{rounds}", round + 1);
            bare.push(iperf(
                &va.path(),
                &vb.path(),
                "10.250.0.2".parse()?,
                seconds,
            )?);
            podnet.run(&["mode", "host-gw"])?;
            same.push(iperf(&p1.path(), &p1b.path(), ip1b, seconds)?);
            hostgw.push(iperf(&p1.path(), &p2.path(), ip2, seconds)?);
            podnet.run(&["mode", "vxlan"])?;
            vxlan.push(iperf(&p1.path(), &p2.path(), ip2, seconds)?);
        }
        // Each round's ratio is taken against the anchor measured in that same round, so slow drifts
        // in the machine's load (this is a shared 2-vCPU VM) cancel out; the median ratio is reported.
        let ratios = |xs: &[f64]| median(xs.iter().zip(&bare).map(|(x, b)| x / b).collect());
        println!(
            "Lab throughput: iperf3, one TCP stream, {seconds} s, {rounds} interleaved rounds (median)\n"
        );
        println!(
            "bare veth pair (anchor)            {:6.2} Gbit/s",
            median(bare.clone())
        );
        for (what, xs, target) in [
            ("same node (pod-bridge-pod)", &same, 0.9),
            ("cross-node host-gw", &hostgw, 0.8),
            ("cross-node vxlan", &vxlan, 0.7),
        ] {
            let r = ratios(xs);
            let verdict = if r >= target { "meets" } else { "MISSES" };
            println!(
                "{what:<34} {:6.2} Gbit/s   ratio {r:.2}  ({verdict} target >= {target})",
                median(xs.clone())
            );
        }
        Ok(())
    })();
    let _ = podnet.run(&["down"]);
    result?;
    println!(
        "\npodnet up --nodes 3: median {} (min {}, max {}); podnet down: median {} (min {}, max {})",
        ms(ups[2]),
        ms(ups[0]),
        ms(ups[4]),
        ms(downs[2]),
        ms(downs[0]),
        ms(downs[4])
    );
    Ok(())
}

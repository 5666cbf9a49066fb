//! Concurrency and crash safety: 200 ADDs 16 at a time, then plugins killed with SIGKILL at random
//! moments, then GC with the surviving attachments. IPAM must hold exactly the survivors, and no stray
//! veth may remain. Root test; everything lives in namespaces it creates.

mod common;

use common::*;
use podnet_testkit::TestNs;
use podnet_types::names;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashSet};
use std::io::Write;
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PODS: usize = 200;
const PARALLEL: usize = 16;

/// Runs `jobs` on `PARALLEL` worker threads.
fn parallel<T: Send>(jobs: Vec<Box<dyn FnOnce() -> T + Send + '_>>) -> Vec<T> {
    let queue = Mutex::new(jobs.into_iter().enumerate().collect::<Vec<_>>());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL {
            s.spawn(|| {
                loop {
                    let job = queue.lock().unwrap().pop();
                    let Some((i, job)) = job else { break };
                    let r = job();
                    results.lock().unwrap().push((i, r));
                }
            });
        }
    });
    let mut r = results.into_inner().unwrap();
    r.sort_by_key(|(i, _)| *i);
    r.into_iter().map(|(_, v)| v).collect()
}

/// xorshift64*: enough randomness for kill timings, reproducible from the printed seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn spawn_add(node: &Node, container: &str, pod: &TestNs, conf: &Value) -> Child {
    let mut child = podnet_testkit::cni_command(
        &node.ns.path(),
        &plugin(),
        "ADD",
        container,
        &pod.path(),
        "eth0",
    )
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn podnet-cni");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    child
}

#[test]
fn two_hundred_concurrent_adds_then_kills_then_gc() {
    let node = Node::new();
    let conf = node.conf("1.1.0");
    let pods: Vec<TestNs> = (0..PODS).map(|_| TestNs::new("sp")).collect();

    // Phase 1: 200 ADDs, 16 at a time.
    let started = Instant::now();
    let jobs: Vec<Box<dyn FnOnce() -> Reply + Send + '_>> = pods
        .iter()
        .enumerate()
        .map(|(i, pod)| {
            let (node, conf) = (&node, &conf);
            Box::new(move || node.add(&format!("p{i}"), pod, conf))
                as Box<dyn FnOnce() -> Reply + Send>
        })
        .collect();
    let replies = parallel(jobs);
    let took = started.elapsed();
    let ips: BTreeSet<String> = replies.iter().map(|r| pod_ip(r.ok()).to_string()).collect();
    assert_eq!(ips.len(), PODS, "{PODS} distinct addresses");
    eprintln!("{PODS} ADDs, {PARALLEL} at a time: {took:?}");

    // Every pod reaches its gateway.
    let unreachable: Vec<usize> = pods
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            !p.try_sh("busybox", &["ping", "-c", "1", "-W", "2", "10.244.1.1"])
                .status
                .success()
        })
        .map(|(i, _)| i)
        .collect();
    assert!(
        unreachable.is_empty(),
        "pods that cannot reach the gateway: {unreachable:?}"
    );
    assert_eq!(node.reservations().len(), PODS);

    // Phase 2: tear the 200 down, then bursts of ADDs killed at random moments.
    let jobs: Vec<Box<dyn FnOnce() -> Reply + Send + '_>> = pods
        .iter()
        .enumerate()
        .map(|(i, pod)| {
            let (node, conf) = (&node, &conf);
            Box::new(move || node.run("DEL", &format!("p{i}"), Some(pod), "eth0", conf))
                as Box<dyn FnOnce() -> Reply + Send>
        })
        .collect();
    for r in parallel(jobs) {
        r.ok_empty();
    }
    assert!(node.reservations().is_empty());
    assert!(node.host_veths().is_empty());

    let seed = std::env::var("PODNET_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("kill timings seed: PODNET_STRESS_SEED={seed}");
    let rng = Mutex::new(Rng(seed));
    // Kill after a random delay up to about one typical ADD under this load, so deaths land in every
    // phase (before the reservation, between it and the veth, during pod setup, after).
    let typical = took * PARALLEL as u32 / PODS as u32;
    let max_delay_us = (typical.as_micros() as u64).max(1000);

    // Bursts over the pods that have no surviving attachment yet, until some killed ADD has left state
    // behind for GC to find (at most three bursts; each kill is a real SIGKILL of a running plugin).
    let mut survivors: Vec<String> = Vec::new();
    let mut killed: Vec<String> = Vec::new();
    for round in 0..3 {
        let free: Vec<(usize, &TestNs)> = pods
            .iter()
            .enumerate()
            .filter(|(i, _)| !survivors.iter().any(|c| c.ends_with(&format!("-{i}"))))
            .collect();
        let jobs: Vec<Box<dyn FnOnce() -> (String, bool) + Send + '_>> = free
            .into_iter()
            .map(|(i, pod)| {
                let (node, conf, rng) = (&node, &conf, &rng);
                Box::new(move || {
                    let container = format!("k{round}-{i}");
                    let delay = rng.lock().unwrap().next() % max_delay_us;
                    let mut child = spawn_add(node, &container, pod, conf);
                    std::thread::sleep(Duration::from_micros(delay));
                    let _ = child.kill();
                    let out = child.wait_with_output().unwrap();
                    // A survivor is an ADD the runtime saw succeed: exit 0 with a result.
                    let ok = out.status.success()
                        && serde_json::from_slice::<Value>(&out.stdout).is_ok();
                    (container, ok)
                }) as Box<dyn FnOnce() -> (String, bool) + Send>
            })
            .collect();
        for (container, ok) in parallel(jobs) {
            if ok {
                survivors.push(container)
            } else {
                killed.push(container)
            }
        }
        let leaked_addrs = node
            .reservations()
            .iter()
            .filter(|(c, _)| killed.contains(c))
            .count();
        let leaked_veths = node
            .host_veths()
            .iter()
            .filter(|v| {
                killed
                    .iter()
                    .any(|c| names::host_veth_name("podnet", c, "eth0") == **v)
            })
            .count();
        eprintln!(
            "kill burst {round}: {} survivors so far, {} killed part-way, leaving {leaked_addrs} addresses and {leaked_veths} veths",
            survivors.len(),
            killed.len()
        );
        if leaked_addrs + leaked_veths > 0 {
            break;
        }
        assert!(
            round < 2,
            "three bursts of SIGKILLs left no state behind: timings never hit a crash window"
        );
    }

    // GC with the survivors as the valid attachments.
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = Value::Array(
        survivors
            .iter()
            .map(|c| json!({"containerID": c, "ifname": "eth0"}))
            .collect(),
    );
    node.invoke("GC", &[], gc.to_string().as_bytes()).ok_empty();

    let held: HashSet<String> = node.reservations().into_iter().map(|(c, _)| c).collect();
    let want: HashSet<String> = survivors.iter().cloned().collect();
    assert_eq!(held, want, "IPAM holds exactly the surviving attachments");
    let veths: HashSet<String> = node.host_veths().into_iter().collect();
    let want_veths: HashSet<String> = survivors
        .iter()
        .map(|c| names::host_veth_name("podnet", c, "eth0"))
        .collect();
    assert_eq!(
        veths, want_veths,
        "no stray veth remains, and every survivor keeps its own"
    );
    for (i, pod) in pods.iter().enumerate() {
        let has_eth0 = pod.netlink().link_by_name("eth0").unwrap().is_some();
        let survived = survivors.iter().any(|c| c.ends_with(&format!("-{i}")));
        assert_eq!(
            has_eth0, survived,
            "pod {i}: eth0 present only for a survivor"
        );
    }
}

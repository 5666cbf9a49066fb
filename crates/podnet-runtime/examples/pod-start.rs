//! Benchmark driver for `bench/runtime.sh`: starts N two-container pods (sandbox + busybox httpd +
//! busybox sleep) on a throwaway node under /tmp/pnt-bench-*, timing each from "run sandbox" until
//! both containers run, then reports p50/p95, removal time, and the resident memory of the pause
//! and supervisor processes. Root only; everything it makes is removed at the end.
//!
//! Usage: pod-start [--pods N] [--pause PATH]

use podnet_runtime::{ContainerSpec, PodRef, Runtime, RuntimeConfig, SandboxSpec, crilog};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn rss_kib(pid: u32, field: &str) -> u64 {
    let file = if field == "Pss:" {
        "smaps_rollup"
    } else {
        "status"
    };
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let opt = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let pods: usize = opt("--pods").map(|v| v.parse()).transpose()?.unwrap_or(20);
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let pause = opt("--pause")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("podnet-pause"));
    let base = PathBuf::from(format!("/tmp/pnt-bench-{}", std::process::id()));
    let rootfs = base.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin"))?;
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))?;
    for a in ["sh", "httpd", "sleep"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a))?;
    }
    std::fs::create_dir_all(rootfs.join("www"))?;
    let cfg = RuntimeConfig {
        state_dir: base.join("state"),
        netns_dir: base.join("netns"),
        runc_root: base.join("runc"),
        cgroup_parent: format!("/pnt-bench-{}", std::process::id()),
        runc: "runc".into(),
        pause,
        shim: dir.join("podnet-shim"),
    };
    let rt = Runtime::new(cfg)?;
    let result = run(&rt, &rootfs, &base, pods);
    let cleanup = rt.remove_all();
    let _ = std::fs::remove_dir_all(&base);
    result?;
    cleanup?;
    Ok(())
}

fn run(rt: &Runtime, rootfs: &Path, base: &Path, pods: usize) -> anyhow::Result<()> {
    let mut starts = Vec::new();
    let (mut t_sandbox, mut t_create, mut t_start) = (Vec::new(), Vec::new(), Vec::new());
    let mut sandboxes = Vec::new();
    for i in 0..pods {
        let name = format!("bench-{i}");
        let t = Instant::now();
        let sb = rt.run_sandbox(&SandboxSpec {
            pod: PodRef {
                namespace: "default".into(),
                name: name.clone(),
                uid: format!("uid-{i}"),
            },
            attempt: 0,
            hostname: name.clone(),
            host_network: false,
            share_pid: false,
            labels: Default::default(),
        })?;
        t_sandbox.push(t.elapsed());
        for (c, cmd) in [
            ("httpd", vec!["httpd", "-f", "-p", "80", "-h", "/www"]),
            ("sleep", vec!["sleep", "3600"]),
        ] {
            let tc = Instant::now();
            let id = rt.create_container(
                &sb.id,
                &ContainerSpec {
                    name: c.into(),
                    attempt: 0,
                    image: "busybox".into(),
                    rootfs: rootfs.to_path_buf(),
                    args: cmd.iter().map(|s| s.to_string()).collect(),
                    env: vec![],
                    cwd: String::new(),
                    user: Default::default(),
                    security: Default::default(),
                    resources: Default::default(),
                    mounts: vec![],
                    log_path: crilog::container_log_path(&base.join("logs").join(&name), c, 0),
                    log_max_bytes: 0,
                    log_max_files: 0,
                    stdin: false,
                    stdin_once: false,
                    tty: false,
                    pid_namespace: None,
                    labels: Default::default(),
                },
            )?;
            t_create.push(tc.elapsed());
            let ts = Instant::now();
            rt.start_container(&id)?;
            t_start.push(ts.elapsed());
        }
        starts.push(t.elapsed());
        sandboxes.push(sb);
    }
    let (mut pause_rss, mut pause_pss, mut shim_rss, mut shim_pss, mut shims) = (0, 0, 0, 0, 0);
    for sb in &sandboxes {
        pause_rss += rss_kib(sb.pause_pid, "VmRSS:");
        pause_pss += rss_kib(sb.pause_pid, "Pss:");
    }
    for c in rt.list_containers()? {
        if let Some(p) = c.shim_pid {
            shim_rss += rss_kib(p, "VmRSS:");
            shim_pss += rss_kib(p, "Pss:");
            shims += 1;
        }
    }
    let mut removes = Vec::new();
    for sb in &sandboxes {
        let t = Instant::now();
        rt.stop_sandbox(&sb.id, Duration::ZERO)?;
        rt.remove_sandbox(&sb.id)?;
        removes.push(t.elapsed());
    }
    let n = sandboxes.len().max(1) as u64;
    println!(
        "pods: {pods} (sandbox + httpd + sleep, runc {})",
        runc_version()
    );
    println!(
        "start (sandbox + 2 containers running): p50 {:.1} ms  p95 {:.1} ms",
        pct(&mut starts, 0.5),
        pct(&mut starts, 0.95)
    );
    println!(
        "  of which: sandbox p50 {:.1} ms, each runc create (via supervisor) p50 {:.1} ms, each runc start p50 {:.1} ms",
        pct(&mut t_sandbox, 0.5),
        pct(&mut t_create, 0.5),
        pct(&mut t_start, 0.5)
    );
    println!(
        "remove (stop + remove sandbox):          p50 {:.1} ms  p95 {:.1} ms",
        pct(&mut removes, 0.5),
        pct(&mut removes, 0.95)
    );
    println!(
        "pause: RSS {} KiB, PSS {} KiB per pod",
        pause_rss / n,
        pause_pss / n
    );
    let s = shims.max(1);
    println!(
        "podnet-shim: RSS {} KiB, PSS {} KiB per container ({shims} running)",
        shim_rss / s,
        shim_pss / s
    );
    println!(
        "podnet memory per pod (pause + 2 shims, PSS): {} KiB",
        pause_pss / n + 2 * shim_pss / s
    );
    Ok(())
}

fn runc_version() -> String {
    std::process::Command::new("runc")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.trim_start_matches("runc version ").to_string())
        })
        .unwrap_or_default()
}

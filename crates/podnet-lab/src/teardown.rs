//! Removing a lab: best-effort, every error reported, and working from what is on the machine rather
//! than from the state file, so a lab left half-built by a crash or `kill -9` goes away too.

use crate::paths::LabPaths;
use podnet_netns::persist::{self, NETNS_RUN_DIR};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// What teardown did and what it could not do.
#[derive(Debug, Default)]
pub struct Report {
    pub removed: Vec<String>,
    pub errors: Vec<String>,
}

/// The lab daemon's argument that marks it, for finding it by its command line.
pub const DAEMON_ARG: &str = "__lab-daemon";

pub(crate) fn cmdline(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn all_pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The daemons of this lab: processes whose command line is `podnet __lab-daemon --name <lab>`.
pub fn daemon_pids(paths: &LabPaths) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|pid| {
            let args = cmdline(*pid);
            args.iter().any(|a| a == DAEMON_ARG)
                && args
                    .windows(2)
                    .any(|w| w[0] == "--name" && w[1] == paths.name)
        })
        .collect()
}

/// Processes living in the namespace bound at `path` (compared by device and inode).
fn pids_in_netns(path: &Path) -> Vec<u32> {
    let Ok(target) = fs::metadata(path) else {
        return Vec::new();
    };
    all_pids()
        .into_iter()
        .filter(|pid| {
            fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino())
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

/// Sends `signal` to each pid and waits (bounded) until they are gone.
pub(crate) fn stop(pids: &[u32], signal: i32, wait: Duration) -> Vec<u32> {
    for pid in pids {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(*pid as i32, signal) };
    }
    let deadline = Instant::now() + wait;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Stops the lab's daemon(s): SIGTERM, then SIGKILL after two seconds.
pub fn stop_daemons(paths: &LabPaths, report: &mut Report) {
    let pids = daemon_pids(paths);
    if pids.is_empty() {
        return;
    }
    let left = stop(&pids, libc::SIGTERM, Duration::from_secs(2));
    let left = stop(&left, libc::SIGKILL, Duration::from_secs(2));
    for pid in &pids {
        if left.contains(pid) {
            report.errors.push(format!("lab daemon {pid} did not stop"));
        } else {
            report.removed.push(format!("daemon {pid}"));
        }
    }
}

/// Removes everything of the lab named in `paths`.
pub fn teardown(paths: &LabPaths) -> Report {
    let mut report = Report::default();
    stop_daemons(paths, &mut report);
    // The daemon stops its agents; agents left by a daemon that was killed are stopped here.
    report.errors.extend(crate::agents::stop_all(paths));
    remove_pods(paths, &mut report);
    crate::mirror::stop(paths, &mut report);

    let netns: Vec<String> = fs::read_dir(NETNS_RUN_DIR)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| paths.owns_netns(n))
                .collect()
        })
        .unwrap_or_default();
    for name in &netns {
        let path = Path::new(NETNS_RUN_DIR).join(name);
        // Whatever still runs inside (pods, shells from `podnet node exec`) would keep the namespace,
        // and the links in it, alive after its file is gone.
        let inside = pids_in_netns(&path);
        let left = stop(&inside, libc::SIGKILL, Duration::from_secs(2));
        if !left.is_empty() {
            report.errors.push(format!(
                "processes {left:?} in namespace {name} did not stop"
            ));
        }
        match persist::remove(&path) {
            Ok(true) => report.removed.push(format!("namespace {name}")),
            Ok(false) => {}
            Err(e) => report.errors.push(format!("delete namespace {name}: {e}")),
        }
    }

    if let Ok(entries) = fs::read_dir(paths.ns_dir()) {
        for entry in entries.flatten() {
            let path = entry.path();
            if let Err(e) = persist::remove(&path) {
                report
                    .errors
                    .push(format!("remove {}: {e}", path.display()));
            }
        }
    }
    for dir in [paths.run_dir(), paths.data_dir()] {
        match fs::remove_dir_all(&dir) {
            Ok(()) => report.removed.push(format!("{}", dir.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => report.errors.push(format!("remove {}: {e}", dir.display())),
        }
    }
    report
}

/// Removes every pod the lab's nodes run: containers, supervisors, pause processes, network namespace
/// files, cgroups (the runtime's `remove_all`, which finds them from its records and by name), then the
/// containers' root filesystems in the shared image store. Found from the directories, so this also
/// works after a crash.
fn remove_pods(paths: &LabPaths, report: &mut Report) {
    let mut nodes: Vec<String> = Vec::new();
    for dir in [
        paths.run_dir().join("nodes"),
        paths.data_dir().join("nodes"),
    ] {
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !nodes.contains(&name) {
                nodes.push(name);
            }
        }
    }
    for node in &nodes {
        let cfg = paths.runtime_config(node);
        if !cfg.state_dir.exists() && !cfg.netns_dir.exists() {
            continue;
        }
        match podnet_runtime::Runtime::new(cfg).and_then(|rt| rt.remove_all()) {
            Ok(()) => report.removed.push(format!("pods of node {node}")),
            Err(e) => report
                .errors
                .push(format!("remove the pods of node {node}: {e}")),
        }
    }
    let store_root = Path::new(crate::paths::DATA_ROOT).join("images");
    if store_root.exists()
        && let Ok(store) = podnet_oci::Store::open(&store_root)
    {
        let mine = paths.data_dir();
        for r in store.rootfs_records().unwrap_or_default() {
            if r.mountpoint.starts_with(&mine)
                && let Err(e) = store.remove_rootfs(&r.key)
            {
                report.errors.push(format!(
                    "remove the root filesystem {}: {e}",
                    r.mountpoint.display()
                ));
            }
        }
    }
}

/// Whether anything of the lab is on the machine (namespaces, daemons, directories).
pub fn leftovers(paths: &LabPaths) -> bool {
    let netns = fs::read_dir(NETNS_RUN_DIR)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .any(|n| paths.owns_netns(&n))
        })
        .unwrap_or(false);
    netns
        || paths.run_dir().exists()
        || paths.data_dir().exists()
        || !daemon_pids(paths).is_empty()
        || !crate::mirror::registry_pids(paths).is_empty()
}

pub fn daemon_alive(pid: u32, paths: &LabPaths) -> bool {
    alive(pid) && daemon_pids(paths).contains(&pid)
}

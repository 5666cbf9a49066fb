//! Container cgroups on this machine's hybrid layout (cgroup v1 controllers plus a v2 mount): runc
//! creates `<parent>/<pod uid>/<container id>` in every hierarchy; podnet removes what runc leaves
//! (the pod and node levels, and everything after a crash) in every hierarchy too.

use crate::error::{Error, Result};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Mount points of every cgroup hierarchy (v1 and v2), from `/proc/self/mountinfo`.
pub fn hierarchies() -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    parse_mountinfo(&text)
}

fn parse_mountinfo(text: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in text.lines() {
        // Fields: id parent major:minor root mountpoint options [optional...] - fstype source super
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fstype = right.split(' ').next().unwrap_or("");
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        if let Some(mp) = left.split(' ').nth(4) {
            let mp = PathBuf::from(mp.replace("\\040", " "));
            if !out.contains(&mp) {
                out.push(mp);
            }
        }
    }
    out
}

fn rel(path: &str) -> &str {
    path.trim_start_matches('/')
}

/// Directories of `path` in each hierarchy where it exists.
pub fn dirs(path: &str) -> Vec<PathBuf> {
    hierarchies()
        .into_iter()
        .map(|h| h.join(rel(path)))
        .filter(|d| d.is_dir())
        .collect()
}

/// Reads a control file of `path` from whichever hierarchy has it (`memory.limit_in_bytes`).
pub fn read(path: &str, file: &str) -> Option<String> {
    dirs(path)
        .into_iter()
        .map(|d| d.join(file))
        .find_map(|f| fs::read_to_string(f).ok())
        .map(|s| s.trim().to_string())
}

/// PIDs of every process in `path` or below, in any hierarchy.
pub fn pids(path: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for d in dirs(path) {
        walk(&d, &mut |dir| {
            if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
                out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
        });
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), f);
            }
        }
    }
    f(dir);
}

/// Removes `path` and everything below it in every hierarchy (children first). Missing is fine; a
/// cgroup that still holds processes is an error naming it.
pub fn remove(path: &str) -> Result<()> {
    if rel(path).is_empty() {
        return Err(Error::Invalid("refusing to remove the root cgroup".into()));
    }
    let mut errors = Vec::new();
    for d in dirs(path) {
        walk(&d, &mut |dir| match fs::remove_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => errors.push(Error::io(format!("remove cgroup {}", dir.display()), e)),
        });
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Many {
            what: format!("remove cgroup {path}"),
            errors,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_v1_and_v2_hierarchies_in_mountinfo() {
        let text = "\
30 24 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw shared:9 - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
40 24 0:5 / /proc rw - proc proc rw";
        assert_eq!(
            parse_mountinfo(text),
            vec![
                PathBuf::from("/sys/fs/cgroup/unified"),
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"),
                PathBuf::from("/sys/fs/cgroup/memory")
            ]
        );
    }

    #[test]
    fn never_removes_the_root() {
        assert!(remove("/").is_err());
        assert!(remove("").is_err());
    }
}

//! The records a restarted agent adopts from: one JSON file per sandbox and per container, written
//! atomically (temporary file, rename), plus the small files the supervisor writes.

use crate::error::{Error, Result};
use crate::spec::{ContainerSpec, PodRef};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What is kept about a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: String,
    pub pod: PodRef,
    pub attempt: u32,
    pub hostname: String,
    pub host_network: bool,
    pub share_pid: bool,
    /// Host PID of the pause process.
    pub pause_pid: u32,
    /// Start time of the pause process (clock ticks since boot, `/proc/PID/stat` field 22): a PID
    /// that was reused by another process does not match it.
    pub pause_start: u64,
    /// The bind-mounted network namespace; `None` for host-network pods.
    pub netns: Option<PathBuf>,
    /// The tmpfs shared as every container's `/dev/shm`.
    pub shm: PathBuf,
    /// Unix time in nanoseconds.
    pub created_ns: i64,
    pub labels: BTreeMap<String, String>,
}

/// What is kept about a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub sandbox_id: String,
    pub pod: PodRef,
    pub spec: ContainerSpec,
    /// Absolute cgroup path (the same in every hierarchy).
    pub cgroup: String,
    pub created_ns: i64,
    /// Its supervisor writes an [`InitRecord`] once `runc create` is done (records from before
    /// that have none: their state comes from runc).
    #[serde(default)]
    pub init_record: bool,
}

/// Written by the supervisor when the container's main process is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The exit status, or 128 + signal number when killed by a signal (as containerd reports it).
    pub exit_code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// Unix time in nanoseconds.
    pub finished_ns: i64,
}

/// The file of the [`InitRecord`] in a container's state directory.
pub const INIT_FILE: &str = "init.json";

/// The container's init process as its supervisor saw it right after `runc create`: its host PID
/// and start time, so the container's state is read from `/proc` instead of asking runc (a Go
/// process per question) on every look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitRecord {
    pub pid: u32,
    /// Clock ticks since boot (`/proc/PID/stat` field 22): a reused PID does not match it.
    pub start: u64,
}

/// Writes `value` as JSON to `path` atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::Invalid(format!("encode {}: {e}", path.display())))?;
    write_atomic(path, &bytes)
}

/// Replaced by rename, so a reader (or an agent killed midway) sees the old or the new content,
/// never a part. Not fsynced: these files describe processes, mounts and namespaces, none of which
/// survive the power cut an fsync guards against, and a pod start writes a dozen of them.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| Error::io(format!("write {}", path.display()), e))
}

/// Reads a JSON record; `Ok(None)` if the file does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Invalid(format!("read {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
    }
}

/// Names of the entries of `dir` (empty if it does not exist), sorted.
pub fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("list {}", dir.display()), e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.ends_with(".tmp"))
        .collect();
    names.sort();
    Ok(names)
}

/// Reads a file holding one decimal number (a pid file).
pub fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A random 32-hex-digit id (16 bytes from the kernel's CSPRNG).
pub fn new_id() -> Result<String> {
    use std::io::Read;
    let mut buf = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| Error::io("generate an id from /dev/urandom", e))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Ids are generated here, but callers pass them back in: refuse anything that could escape a
/// directory or confuse runc.
pub fn check_id(kind: &'static str, id: &str) -> Result<()> {
    if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(Error::NotFound {
            kind,
            id: id.to_string(),
        })
    }
}

/// Unix time now, in nanoseconds.
pub fn now_ns() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_nanos() as i64
}

//! What the caller asks for: a sandbox ([`SandboxSpec`]) and containers in it ([`ContainerSpec`]).
//! Plain data, already resolved by the caller (the kubelet combines the image's config with the pod
//! spec; the image store hands over a mounted root filesystem).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Which pod a sandbox belongs to; used in names, errors and records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A pod sandbox: the pause process and the namespaces it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    pub pod: PodRef,
    /// Restart count of the sandbox for this pod (kubelet's sandbox attempt).
    #[serde(default)]
    pub attempt: u32,
    /// The pod's hostname (set in its UTS namespace, written to its `/etc/hostname`).
    pub hostname: String,
    /// Run in the node's network (and UTS) namespace: `hostNetwork: true`.
    #[serde(default)]
    pub host_network: bool,
    /// One PID namespace for the whole pod with pause as PID 1: `shareProcessNamespace: true`.
    /// Without it each container gets its own PID namespace, as upstream.
    #[serde(default)]
    pub share_pid: bool,
    /// Free-form labels kept in the record (the kubelet stores what it needs to adopt the sandbox).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The pod's `/etc/hosts` and `/etc/resolv.conf`, bind-mounted into every container. Render them with
/// [`crate::etc::hosts`] and [`crate::etc::resolv_conf`] once the pod's IP is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcFiles {
    pub hosts: String,
    pub resolv_conf: String,
}

/// One container. Every field is final: nothing is looked up in the image here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// The container's name in its pod (`nginx`).
    pub name: String,
    /// Restart count (kubelet's attempt); part of the log file name by convention.
    #[serde(default)]
    pub attempt: u32,
    /// The image reference, kept for listing only.
    #[serde(default)]
    pub image: String,
    /// A mounted root filesystem (from the image store). It is not modified or removed by the runtime.
    pub rootfs: PathBuf,
    /// The resolved command line: entrypoint + args. Must not be empty.
    pub args: Vec<String>,
    /// `NAME=value` pairs, in order.
    #[serde(default)]
    pub env: Vec<String>,
    /// Working directory; `/` when empty.
    #[serde(default)]
    pub cwd: String,
    #[serde(default)]
    pub user: User,
    #[serde(default)]
    pub security: Security,
    #[serde(default)]
    pub resources: Resources,
    /// Volumes and other bind mounts, in order.
    #[serde(default)]
    pub mounts: Vec<BindMount>,
    /// Where the CRI-format log goes (kubelet: `/var/log/pods/<ns>_<name>_<uid>/<container>/<attempt>.log`).
    pub log_path: PathBuf,
    /// Rotate the log when it would grow past this many bytes (0: 10 MiB, kubelet's default).
    #[serde(default)]
    pub log_max_bytes: u64,
    /// How many files to keep including the live one (0: 5, kubelet's default).
    #[serde(default)]
    pub log_max_files: u32,
    /// `stdin: true`: the container's stdin stays open, fed by `kubectl attach -i` sessions through
    /// its supervisor's attach socket; otherwise it reads /dev/null.
    #[serde(default)]
    pub stdin: bool,
    /// `stdinOnce: true`: that stdin is closed when the first attach session ends its input.
    #[serde(default)]
    pub stdin_once: bool,
    /// `tty: true`: the container's stdio is a pseudo-terminal whose master its supervisor holds
    /// (output to the log and attach clients, input from them, resizes from `kubectl attach -t`).
    #[serde(default)]
    pub tty: bool,
    /// A PID namespace to join instead of the pod's (an ephemeral container that targets another
    /// container joins that container's, to see its processes: `kubectl debug --target`).
    #[serde(default)]
    pub pid_namespace: Option<PathBuf>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The identity the process runs as (`runAsUser`, `runAsGroup`, `supplementalGroups`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub additional_gids: Vec<u32>,
}

/// securityContext as it reaches the runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    /// All capabilities, all host devices, no masked or read-only paths, writable /sys.
    #[serde(default)]
    pub privileged: bool,
    /// Added to the default set, by name with or without `CAP_` (`NET_ADMIN`).
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// Removed from the default set; `ALL` drops everything not added.
    #[serde(default)]
    pub cap_drop: Vec<String>,
    #[serde(default)]
    pub readonly_rootfs: bool,
    /// `allowPrivilegeEscalation: false` sets no_new_privs.
    #[serde(default)]
    pub no_new_privileges: bool,
}

/// Resource limits turned into cgroup settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// cgroup v1 `cpu.shares` (kubelet: requests.cpu millicores * 1024 / 1000, at least 2).
    #[serde(default)]
    pub cpu_shares: Option<u64>,
    /// `cpu.cfs_quota_us` (kubelet: limits.cpu millicores * period / 1000).
    #[serde(default)]
    pub cpu_quota: Option<i64>,
    /// `cpu.cfs_period_us` (100000 when a quota is set and this is not).
    #[serde(default)]
    pub cpu_period: Option<u64>,
    /// `memory.limit_in_bytes`.
    #[serde(default)]
    pub memory_limit: Option<i64>,
}

impl Resources {
    /// Kubernetes' conversions from millicores: shares from the request, quota from the limit.
    pub fn from_millicores(
        request_m: Option<u64>,
        limit_m: Option<u64>,
        memory: Option<i64>,
    ) -> Resources {
        const PERIOD: u64 = 100_000;
        Resources {
            cpu_shares: request_m.map(|m| (m * 1024 / 1000).max(2)),
            cpu_quota: limit_m.map(|m| ((m * PERIOD / 1000).max(1000)) as i64),
            cpu_period: limit_m.map(|_| PERIOD),
            memory_limit: memory,
        }
    }
}

/// A bind mount from the node into the container (volumes, or any host path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    pub source: PathBuf,
    pub destination: PathBuf,
    #[serde(default)]
    pub readonly: bool,
}

/// A process to run inside a running container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSpec {
    pub args: Vec<String>,
    /// Added to the container's environment.
    pub env: Vec<String>,
    /// Defaults to the container's working directory.
    pub cwd: Option<String>,
    /// Defaults to the container's user.
    pub user: Option<User>,
    /// A pseudo-terminal (`kubectl exec -t`): input and output go through the pty master, stderr
    /// merged into it.
    pub tty: bool,
    /// A pipe to the process's stdin (`kubectl exec -i` without `-t`); otherwise it reads /dev/null.
    pub stdin: bool,
    /// Initial terminal size (columns, rows) when `tty`.
    pub size: Option<(u16, u16)>,
}

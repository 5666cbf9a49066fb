//! Where one node's runtime keeps its state and which binaries it runs. Everything is derived from a
//! [`RuntimeConfig`], so a restarted agent finds all of it again from the same configuration.

use std::path::{Path, PathBuf};

/// One node's runtime. Two nodes (two lab nodes, or a test) never share any of these directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Records, bundles, sandbox files: `/run/podnet/<lab>/nodes/<node>/runtime`.
    pub state_dir: PathBuf,
    /// Pod network namespaces are bind-mounted here, one file per sandbox. The lab bind-mounts this
    /// directory over `/run/netns` inside `podnet node exec`, so `ip netns` there lists the node's pods.
    pub netns_dir: PathBuf,
    /// runc's `--root`: per node, so `runc list` shows exactly this node's containers.
    pub runc_root: PathBuf,
    /// Absolute cgroup path under which every container's cgroup is made, in every hierarchy:
    /// `/podnet/<node>`; containers get `<parent>/<pod uid>/<container id>`.
    pub cgroup_parent: String,
    pub runc: PathBuf,
    pub pause: PathBuf,
    pub shim: PathBuf,
}

impl RuntimeConfig {
    /// The standard layout under one directory per node (the lab uses
    /// `/run/podnet/<lab>/nodes/<node>`, see `podnet_lab::paths::LabPaths::node_run_dir`):
    /// `runtime/` for state, `netns/` for pod network namespaces (bind-mounted over `/run/netns` by
    /// `podnet node exec`, so `ip netns` there lists the node's pods), `runc/` for runc's root.
    /// Binaries are found next to the running executable, else on `PATH`.
    pub fn under(dir: &Path, cgroup_parent: impl Into<String>) -> RuntimeConfig {
        RuntimeConfig {
            state_dir: dir.join("runtime"),
            netns_dir: dir.join(NETNS_SUBDIR),
            runc_root: dir.join("runc"),
            cgroup_parent: cgroup_parent.into(),
            runc: PathBuf::from("runc"),
            pause: sibling_binary("podnet-pause"),
            shim: sibling_binary("podnet-shim"),
        }
    }

    pub(crate) fn sandboxes_dir(&self) -> PathBuf {
        self.state_dir.join("sandboxes")
    }

    pub(crate) fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.sandboxes_dir().join(id)
    }

    pub(crate) fn containers_dir(&self) -> PathBuf {
        self.state_dir.join("containers")
    }

    pub(crate) fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }

    /// The bind-mounted network namespace of a sandbox (`ip netns` shows it as `pn-<id>`).
    pub fn netns_path(&self, sandbox_id: &str) -> PathBuf {
        self.netns_dir.join(netns_name(sandbox_id))
    }
}

/// The subdirectory of [`RuntimeConfig::under`] holding the pods' network namespace files.
pub const NETNS_SUBDIR: &str = "netns";

/// The file name of a sandbox's network namespace.
pub fn netns_name(sandbox_id: &str) -> String {
    format!("pn-{sandbox_id}")
}

/// `name` next to the current executable if it is there (installed together), else `name` for `PATH`.
pub fn sibling_binary(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

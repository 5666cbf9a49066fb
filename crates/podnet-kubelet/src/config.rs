//! The node agent's configuration: one JSON file per node, written by whoever deploys the agent (the
//! lab, for its nodes), read once at start.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentConfig {
    /// The Node this agent is (its name in the API).
    pub node: String,
    /// The node's address on the cluster network (InternalIP), where its kubelet port listens.
    pub internal_ip: String,
    /// A kubeconfig with the node's own credentials.
    pub kubeconfig: PathBuf,
    /// Where the node keeps pods, volumes, logs, CNI results and runtime state.
    pub state_dir: PathBuf,
    pub cni_conf_dir: PathBuf,
    pub cni_bin_dirs: Vec<PathBuf>,
    /// The kubelet port's serving certificate and key (PEM), signed by the cluster CA.
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    /// The bearer token the API server presents when it relays logs and exec to the node.
    pub api_server_token_file: PathBuf,
    /// The cluster CA (PEM), written into pods' service-account volumes as `ca.crt`.
    pub ca_cert: PathBuf,
    pub cluster_dns: Vec<String>,
    pub cluster_domain: String,
    /// The node's resolv.conf (kubelet's `--resolv-conf`): what `dnsPolicy: Default` pods get and what
    /// ClusterFirst pods' search path extends.
    #[serde(default = "default_resolv_conf")]
    pub resolv_conf: PathBuf,
    /// The image store shared by the machine's nodes.
    pub image_store: PathBuf,
    /// containerd-style registry hosts directory (`<host>/hosts.toml`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_hosts_dir: Option<PathBuf>,
    /// A network namespace to open registry connections from (the lab's nodes are cut off from the
    /// machine's network; their pulls dial from the machine's namespace). `None`: the agent's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_netns: Option<PathBuf>,
    /// The cgroup under which pods go (`/podnet/<lab>-<node>`).
    pub cgroup_parent: String,
    /// The runtime's volatile state: records, runc's root, pods' network namespace files.
    pub runtime_dir: PathBuf,
}

fn default_resolv_conf() -> PathBuf {
    PathBuf::from("/etc/resolv.conf")
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("parse {}: {e}", path.display()))
    }

    /// Writes the file atomically (owner-only: it names credential files).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(self).expect("serializes");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| format!("write {}: {e}", tmp.display()))?;
        std::io::Write::write_all(&mut f, &bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| format!("write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("replace {}: {e}", path.display()))
    }

    pub fn pods_dir(&self) -> PathBuf {
        self.state_dir.join("pods")
    }

    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.pods_dir().join(uid)
    }

    /// Creates the pods directory closed to other users (0750, as kubelet keeps
    /// `/var/lib/kubelet/pods`): the pods' volumes under it hold their secrets and service-account
    /// tokens. An existing directory is closed too (labs made before this was done).
    pub fn create_pods_dir(&self) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.pods_dir();
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)))
            .map_err(|e| format!("create the pods directory {}: {e}", dir.display()))
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.state_dir.join("logs")
    }

    pub fn cni_cache_dir(&self) -> PathBuf {
        self.state_dir.join("cni-cache")
    }

    /// The pod runtime's layout for this node.
    pub fn runtime_config(&self) -> podnet_runtime::RuntimeConfig {
        podnet_runtime::RuntimeConfig {
            state_dir: self.runtime_dir.join("runtime"),
            netns_dir: self.runtime_dir.join("netns"),
            runc_root: self.runtime_dir.join("runc"),
            cgroup_parent: self.cgroup_parent.clone(),
            runc: PathBuf::from("runc"),
            pause: podnet_runtime::sibling_binary("podnet-pause"),
            shim: podnet_runtime::sibling_binary("podnet-shim"),
        }
    }

    /// Where containers' root filesystems are mounted.
    pub fn rootfs_dir(&self) -> PathBuf {
        self.state_dir.join("rootfs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_pods_directory_is_closed_to_other_users() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg: AgentConfig = serde_json::from_value(serde_json::json!({
            "node": "n", "internalIp": "10.0.0.2", "kubeconfig": "k", "stateDir": tmp.path(),
            "cniConfDir": "c", "cniBinDirs": [], "servingCert": "s", "servingKey": "s",
            "apiServerTokenFile": "t", "caCert": "ca", "clusterDns": [], "clusterDomain": "d",
            "imageStore": "i", "cgroupParent": "/p", "runtimeDir": "r", "apiHost": "h", "apiPort": 1
        }))
        .unwrap();
        // One made open by an earlier version is closed as well.
        std::fs::create_dir(cfg.pods_dir()).unwrap();
        std::fs::set_permissions(cfg.pods_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
        cfg.create_pods_dir().unwrap();
        let mode = std::fs::metadata(cfg.pods_dir())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o007, 0, "{mode:o}");
    }
}

//! Where a lab keeps everything, derived from its name alone, so teardown can find every piece even
//! when the state file is gone.

use std::path::PathBuf;

pub const RUN_ROOT: &str = "/run/podnet";
pub const DATA_ROOT: &str = "/var/lib/podnet";
pub const DEFAULT_LAB: &str = "pn";

/// Lab names: a lowercase letter, then lowercase letters, digits and `-`; at most 32 characters.
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.len() <= 32;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "lab name {name:?}: use a lowercase letter, then letters, digits or '-' (at most 32)"
        ))
    }
}

/// The namespaces and files of one lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabPaths {
    pub name: String,
}

impl LabPaths {
    pub fn new(name: &str) -> LabPaths {
        LabPaths {
            name: name.to_string(),
        }
    }

    pub fn router_netns(&self) -> String {
        format!("{}-router", self.name)
    }

    pub fn internet_netns(&self) -> String {
        format!("{}-internet", self.name)
    }

    pub fn node_netns(&self, node: &str) -> String {
        format!("{}-{node}", self.name)
    }

    /// Whether a network namespace name belongs to this lab: `<lab>-router`, `<lab>-internet` or
    /// `<lab>-node<N>`. Exact roles only, so another lab or tool with a similar prefix is never touched.
    pub fn owns_netns(&self, netns: &str) -> bool {
        let Some(role) = netns
            .strip_prefix(&self.name)
            .and_then(|r| r.strip_prefix('-'))
        else {
            return false;
        };
        role == "router"
            || role == "internet"
            || role
                .strip_prefix("node")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }

    pub fn run_dir(&self) -> PathBuf {
        PathBuf::from(RUN_ROOT).join(&self.name)
    }

    pub fn lock_file(&self) -> PathBuf {
        PathBuf::from(RUN_ROOT).join(format!("{}.lock", self.name))
    }

    pub fn state_file(&self) -> PathBuf {
        self.run_dir().join("state.json")
    }

    pub fn ns_dir(&self) -> PathBuf {
        self.run_dir().join("ns")
    }

    pub fn uts_file(&self, node: &str) -> PathBuf {
        self.ns_dir().join(format!("{node}.uts"))
    }

    /// A node's runtime directory: pod sandboxes, runc state and, in `netns/`, the pods' network
    /// namespace files (`podnet_runtime::RuntimeConfig::under` lays it out).
    pub fn node_run_dir(&self, node: &str) -> PathBuf {
        self.run_dir().join("nodes").join(node)
    }

    /// The pod runtime's layout for a node: state under [`Self::node_run_dir`], cgroups under
    /// `/podnet/<lab>-<node>`.
    pub fn runtime_config(&self, node: &str) -> podnet_runtime::RuntimeConfig {
        podnet_runtime::RuntimeConfig::under(
            &self.node_run_dir(node),
            format!("/podnet/{}-{node}", self.name),
        )
    }

    /// The node's pod network namespaces, shown as `/run/netns` inside `podnet node exec`.
    pub fn node_netns_dir(&self, node: &str) -> PathBuf {
        self.node_run_dir(node).join("netns")
    }

    pub fn daemon_log(&self) -> PathBuf {
        self.run_dir().join("daemon.log")
    }

    pub fn daemon_ready(&self) -> PathBuf {
        self.run_dir().join("daemon.ready")
    }

    /// The image mirror's configuration: its path is on the registry's command line, which is how
    /// the lab's registry is found (also after a crash).
    pub fn registry_config(&self) -> PathBuf {
        self.run_dir().join("registry.yml")
    }

    pub fn registry_log(&self) -> PathBuf {
        self.run_dir().join("registry.log")
    }

    /// Registry endpoints per registry host, containerd-style: `<dir>/<registry>/hosts.toml`. The
    /// node agent and `podnet image --lab` pull through it.
    pub fn hosts_dir(&self) -> PathBuf {
        self.data_dir().join("hosts.d")
    }

    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(DATA_ROOT).join(&self.name)
    }

    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.data_dir().join("nodes").join(node)
    }

    /// The node's CNI configuration directory (bind-mounted on /etc/cni/net.d by `podnet node exec`).
    pub fn cni_conf_dir(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("cni/net.d")
    }

    pub fn cni_bin_dir(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("cni/bin")
    }

    pub fn ipam_dir(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("ipam")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owns_only_its_own_roles() {
        let p = LabPaths::new("pn");
        assert!(p.owns_netns("pn-router"));
        assert!(p.owns_netns("pn-internet"));
        assert!(p.owns_netns("pn-node12"));
        assert!(!p.owns_netns("pn-node"));
        assert!(!p.owns_netns("pn-demo-node"));
        assert!(!p.owns_netns("pnx-router"));
        assert!(!p.owns_netns("pn-nodeX"));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("pn").is_ok());
        assert!(check_name("lab-2").is_ok());
        assert!(check_name("2lab").is_err());
        assert!(check_name("Lab").is_err());
        assert!(check_name("a/b").is_err());
    }
}

//! Each node's CNI configuration: the network config a runtime on that node reads, pointing at
//! `podnet-cni` for the node's podCIDR, and a bin directory holding the plugin.

use crate::error::{Error, Result, io};
use crate::paths::LabPaths;
use podnet_types::lab::{Mode, NodePlan, Plan};
use serde_json::{Value, json};
use std::fs;
use std::path::{Path, PathBuf};

pub const CONF_FILE: &str = "10-podnet.conflist";
pub const NETWORK_NAME: &str = "podnet";
/// The node bridge every node's pods hang on.
pub const BRIDGE: &str = "cni0";

/// Finds the plugin: `$PODNET_CNI`, else `podnet-cni` next to the running executable.
pub fn find_plugin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("PODNET_CNI") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(io("find the running executable"))?;
    let beside = exe.with_file_name("podnet-cni");
    if beside.is_file() {
        Ok(beside)
    } else {
        Err(Error::Other(format!(
            "podnet-cni not found beside {} (build it: cargo build -p podnet-cni, or set PODNET_CNI)",
            exe.display()
        )))
    }
}

/// The network configuration list for one node.
pub fn conflist(paths: &LabPaths, plan: &Plan, mode: Mode, node: &NodePlan) -> Value {
    json!({
        "cniVersion": "1.1.0",
        "cniVersions": ["0.3.1", "0.4.0", "1.0.0", "1.1.0"],
        "name": NETWORK_NAME,
        "plugins": [{
            "type": "podnet-cni",
            "bridge": BRIDGE,
            "mtu": plan.pod_mtu(mode),
            "ipMasq": true,
            "clusterCIDR": plan.spec.cluster_cidr.to_string(),
            "hairpinMode": true,
            "spoofCheck": true,
            "policyHold": true,
            "ipam": {"subnet": node.pod_cidr.to_string(), "dataDir": paths.ipam_dir(&node.name).display().to_string()},
            "capabilities": {"portMappings": true}
        }]
    })
}

/// The single plugin configuration a runtime derives from the list for `podnet-cni` (what it gets on stdin).
pub fn plugin_conf(list: &Value) -> Value {
    let mut conf = list["plugins"][0].clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    conf["name"] = list["name"].clone();
    conf
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).map_err(io(format!("write {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(io(format!("replace {}", path.display())))
}

/// Writes (or rewrites, after a mode change) the node's configuration and plugin link.
pub fn write(
    paths: &LabPaths,
    plan: &Plan,
    mode: Mode,
    node: &NodePlan,
    plugin: &Path,
) -> Result<()> {
    let conf_dir = paths.cni_conf_dir(&node.name);
    let bin_dir = paths.cni_bin_dir(&node.name);
    for d in [&conf_dir, &bin_dir, &paths.ipam_dir(&node.name)] {
        fs::create_dir_all(d).map_err(io(format!("create {}", d.display())))?;
    }
    let text =
        serde_json::to_vec_pretty(&conflist(paths, plan, mode, node)).expect("config serializes");
    write_atomic(&conf_dir.join(CONF_FILE), &text)?;
    let link = bin_dir.join("podnet-cni");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(plugin, &link).map_err(io(format!(
        "link {} to {}",
        link.display(),
        plugin.display()
    )))
}

/// Reads a node's configuration back.
pub fn read(paths: &LabPaths, node: &str) -> Result<Value> {
    let path = paths.cni_conf_dir(node).join(CONF_FILE);
    let bytes = fs::read(&path).map_err(io(format!("read {}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Other(format!("{}: {e}", path.display())))
}

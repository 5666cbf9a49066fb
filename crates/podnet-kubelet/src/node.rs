//! The node's presence in the API, as kubelet keeps it: the Node's status (addresses, capacity and
//! allocatable, nodeInfo, daemonEndpoints, conditions) and a Lease in `kube-node-lease` renewed every
//! 10 s. The node lifecycle controller reads the Lease: a node that stops renewing goes NotReady.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::time::Duration;

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const LEASE_DURATION_SECONDS: i32 = 40;
pub const RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// What kubelet reports as its version (kubectl's VERSION column): the API level podnet serves, marked.
pub const KUBELET_VERSION: &str = "v1.35.0-podnet";
pub const KUBELET_PORT: u16 = 10250;

/// Facts about the node the agent reports.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    pub name: String,
    pub internal_ip: String,
    pub cpus: u32,
    pub memory_bytes: u64,
    pub ephemeral_bytes: u64,
    pub max_pods: u32,
    pub runtime_version: String,
    pub kernel: String,
    pub os_image: String,
    pub boot_id: String,
    pub machine_id: String,
}

impl NodeFacts {
    /// Reads the machine's facts (a lab node shares the machine's CPUs, memory and disk).
    pub fn probe(name: &str, internal_ip: &str, root: &std::path::Path) -> NodeFacts {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024);
        let ephemeral_bytes = nix::sys::statvfs::statvfs(root)
            .map(|s| s.blocks() * s.fragment_size())
            .unwrap_or(0);
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let os_image = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| "Linux".into());
        NodeFacts {
            name: name.to_string(),
            internal_ip: internal_ip.to_string(),
            cpus,
            memory_bytes,
            ephemeral_bytes,
            max_pods: 110,
            runtime_version: format!("podnet://{}", env!("CARGO_PKG_VERSION")),
            kernel: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            os_image,
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            machine_id: read("/etc/machine-id"),
        }
    }
}

/// The status the agent posts: Ready with kubelet's reasons and messages, and what the node offers.
/// Allocatable is capacity less what kubelet reserves by default for eviction (100Mi of memory).
pub fn node_status(
    f: &NodeFacts,
    ready: Result<(), String>,
    now: &str,
    previous: Option<&Node>,
) -> Value {
    let mem_ki = f.memory_bytes / 1024;
    let alloc_mem_ki = mem_ki.saturating_sub(100 * 1024);
    let capacity = json!({
        "cpu": f.cpus.to_string(),
        "memory": format!("{mem_ki}Ki"),
        "pods": f.max_pods.to_string(),
        "ephemeral-storage": format!("{}Ki", f.ephemeral_bytes / 1024),
    });
    let allocatable = json!({
        "cpu": f.cpus.to_string(),
        "memory": format!("{alloc_mem_ki}Ki"),
        "pods": f.max_pods.to_string(),
        "ephemeral-storage": format!("{}Ki", f.ephemeral_bytes / 1024 * 9 / 10),
    });
    let transition = |kind: &str, status: &str| -> String {
        previous
            .and_then(|n| n.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
            .filter(|c| c.status == status)
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0.to_string())
            .unwrap_or_else(|| now.to_string())
    };
    let cond = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": transition(kind, status)})
    };
    let ready_cond = match &ready {
        Ok(()) => cond(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
        ),
        Err(why) => cond("Ready", "False", "KubeletNotReady", why),
    };
    json!({
        "addresses": [
            {"type": "InternalIP", "address": f.internal_ip},
            {"type": "Hostname", "address": f.name}
        ],
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ready_cond,
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
        "nodeInfo": {
            "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            "operatingSystem": "linux",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "containerRuntimeVersion": f.runtime_version,
            "kernelVersion": f.kernel,
            "osImage": f.os_image,
            "bootID": f.boot_id,
            "machineID": f.machine_id,
            "systemUUID": f.machine_id,
        }
    })
}

/// Posts the node's status (a merge patch of `status`, as kubelet's strategic patch amounts to here).
pub async fn post_status(
    client: &kube::Client,
    facts: &NodeFacts,
    ready: Result<(), String>,
) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let previous = nodes.get_opt(&facts.name).await?;
    let now = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or(jiff::Timestamp::now())
        .to_string();
    let status = node_status(facts, ready, &now, previous.as_ref());
    nodes
        .patch_status(
            &facts.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await?;
    Ok(())
}

/// Creates or renews the node's Lease (holder = the node, 40 s, owned by the Node so it goes with it).
pub async fn renew_lease(client: &kube::Client, node: &str) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let now = MicroTime(jiff::Timestamp::now());
    match leases.get_opt(node).await? {
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(Default::default);
            spec.renew_time = Some(now);
            spec.holder_identity = Some(node.to_string());
            spec.lease_duration_seconds = Some(LEASE_DURATION_SECONDS);
            leases.replace(node, &PostParams::default(), &lease).await?;
        }
        None => {
            let nodes: Api<Node> = Api::all(client.clone());
            let owner = nodes.get_opt(node).await?.and_then(|n| {
                Some(OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: node.to_string(),
                    uid: n.metadata.uid?,
                    ..Default::default()
                })
            });
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(node.to_string()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    owner_references: owner.map(|o| vec![o]),
                    ..Default::default()
                },
                spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                    holder_identity: Some(node.to_string()),
                    lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                    renew_time: Some(now),
                    ..Default::default()
                }),
            };
            leases.create(&PostParams::default(), &lease).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> NodeFacts {
        NodeFacts {
            name: "node1".into(),
            internal_ip: "10.100.0.2".into(),
            cpus: 2,
            memory_bytes: 24 * 1024 * 1024 * 1024,
            ephemeral_bytes: 100 * 1024 * 1024 * 1024,
            max_pods: 110,
            runtime_version: "podnet://0.1.0".into(),
            kernel: "6.1".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            boot_id: "b".into(),
            machine_id: "m".into(),
        }
    }

    #[test]
    fn status_reports_ready_and_keeps_transition_times() {
        let s = node_status(&facts(), Ok(()), "2026-01-01T00:00:10Z", None);
        let ready = &s["conditions"][3];
        assert_eq!(ready["type"], "Ready");
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["reason"], "KubeletReady");
        assert_eq!(s["capacity"]["cpu"], "2");
        assert_eq!(
            s["allocatable"]["memory"],
            format!("{}Ki", 24 * 1024 * 1024 - 100 * 1024)
        );
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        let node: Node =
            serde_json::from_value(json!({"metadata": {"name": "node1"}, "status": s})).unwrap();
        let later = node_status(&facts(), Ok(()), "2026-01-01T00:01:00Z", Some(&node));
        assert_eq!(
            later["conditions"][3]["lastTransitionTime"],
            "2026-01-01T00:00:10Z"
        );
        assert_eq!(
            later["conditions"][3]["lastHeartbeatTime"],
            "2026-01-01T00:01:00Z"
        );
        let down = node_status(
            &facts(),
            Err("container runtime is down".into()),
            "2026-01-01T00:02:00Z",
            Some(&node),
        );
        assert_eq!(down["conditions"][3]["status"], "False");
        assert_eq!(
            down["conditions"][3]["lastTransitionTime"],
            "2026-01-01T00:02:00Z"
        );
    }
}

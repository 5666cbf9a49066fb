//! The lab's control plane, run inside the lab daemon: the API server listening on 127.0.0.1 in the
//! machine's namespace (for kubectl) and on the router's underlay address (for the nodes), with a CA
//! and serving certificate made for this lab, and the lab's nodes registered as Node objects.

use crate::error::{Error, Result, io, ns};
use crate::paths::LabPaths;
use crate::state::LabState;
use podnet_apimachinery::resources;
use podnet_apiserver::controllers::nodelifecycle::{LEASE_NAMESPACE, node_lease};
use podnet_apiserver::registry::{FieldValidation, WriteOptions};
use podnet_apiserver::{Cidr, Config, Pki, ServerHandle, pki};
use podnet_netns::{NetNs, persist};
use podnet_types::lab::NodePlan;
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

/// The API server's port on the router (what nodes use, as a kubelet uses the control plane's).
pub const ROUTER_API_PORT: u16 = 6443;
const DIAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub fn pki_dir(paths: &LabPaths) -> PathBuf {
    paths.data_dir().join("apiserver/pki")
}

/// The CA, serving certificate and token of the lab (made on first use, kept across daemon restarts).
pub fn load_pki(paths: &LabPaths, state: &LabState) -> Result<Pki> {
    let service =
        Cidr::parse(&state.plan.spec.service_cidr.to_string()).expect("plan CIDRs are valid");
    let first = service.nth(1).expect("service CIDR has room");
    let names = pki::server_names(state.plan.router_ip, first, &[]);
    Pki::load_or_generate(&pki_dir(paths), &names)
        .map_err(|e| Error::Other(format!("PKI of lab {}: {e}", paths.name)))
}

/// Starts the API server. `host_port` is the port on 127.0.0.1 in the calling thread's namespace
/// (0 picks a free one); the router listener is made inside the router's namespace.
pub fn start(
    paths: &LabPaths,
    state: &LabState,
    host_port: u16,
) -> Result<(ServerHandle, SocketAddr)> {
    let pki = load_pki(paths, state)?;
    let host = TcpListener::bind(("127.0.0.1", host_port))
        .map_err(io(format!("listen on 127.0.0.1:{host_port}")))?;
    let host_addr = host
        .local_addr()
        .map_err(io("read the API server's address"))?;
    let router_path = persist::netns_path(&paths.router_netns());
    let router =
        NetNs::open(&router_path).map_err(ns(format!("open {}", router_path.display())))?;
    let router_ip = state.plan.router_ip;
    let on_router = router
        .run(|| TcpListener::bind((router_ip, ROUTER_API_PORT)))
        .map_err(ns("enter the router"))?
        .map_err(io(format!(
            "listen on {router_ip}:{ROUTER_API_PORT} in the router"
        )))?;

    // Nodes (their kubelet port, for pods/log and pods/exec) are on the underlay, which only the
    // router's namespace reaches: connections to them are made from a thread inside it.
    let dialer: podnet_apiserver::Dialer = std::sync::Arc::new(move |addr: String| {
        router
            .run(|| {
                std::net::TcpStream::connect_timeout(
                    &addr.parse().map_err(std::io::Error::other)?,
                    DIAL_TIMEOUT,
                )
            })
            .map_err(std::io::Error::other)?
    });
    let connector = podnet_apiserver::HttpsNodeConnector::with_dialer(&pki, dialer);
    let mut config = Config::new(paths.data_dir().join("apiserver"), pki);
    config.node_connector = std::sync::Arc::new(connector);
    config.service_cidr = Cidr::parse(&state.plan.spec.service_cidr.to_string()).expect("valid");
    config.advertise_address = router_ip;
    config.advertise_port = ROUTER_API_PORT;
    config.lb_pool = Some(podnet_apimachinery::loadbalancer::Pool {
        first: state.plan.spec.lb_pool.first,
        last: state.plan.spec.lb_pool.last,
    });
    let handle = podnet_apiserver::start(config, vec![host, on_router])
        .map_err(|e| Error::Other(format!("start the API server: {e}")))?;
    Ok((handle, host_addr))
}

/// The Node object of a lab node. Its Ready condition says what is true: the network is there, but no
/// pod runtime runs on the node, so the scheduler leaves pods Pending rather than binding them to a
/// node that would never start them.
pub fn node_object(node: &NodePlan, lab: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": {
                "kubernetes.io/hostname": node.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
                "podnet.dev/lab": lab,
            }
        },
        "spec": {
            "podCIDR": node.pod_cidr.to_string(),
            "podCIDRs": [node.pod_cidr.to_string()],
            // What Kubernetes' node lifecycle controller puts on a node that is not Ready.
            "taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]
        }
    })
}

fn node_status(node: &NodePlan, now: &str) -> Value {
    json!({
        "addresses": [
            {"type": "InternalIP", "address": node.underlay_ip.to_string()},
            {"type": "Hostname", "address": node.name}
        ],
        "conditions": [{
            "type": "Ready",
            "status": "False",
            "reason": LAB_READY_REASON,
            "message": "podnet lab node: the network is up (podnet-cni, routes); no pod runtime runs on this node yet",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now
        }],
        "nodeInfo": {
            "architecture": std::env::consts::ARCH.replace("x86_64", "amd64"),
            "operatingSystem": "linux",
            "kubeletVersion": format!("podnet-{}", env!("CARGO_PKG_VERSION")),
            "containerRuntimeVersion": "none",
            "kernelVersion": nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default(),
            "osImage": "podnet lab",
            "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": ""
        }
    })
}

/// The reason of the Ready condition the lab posts for a node no agent runs on.
const LAB_READY_REASON: &str = "PodRuntimeNotRunning";

/// Whether the Node's status is still the lab's placeholder (no Ready condition, or the lab's own).
fn lab_owns_status(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .is_none_or(|c| c["reason"] == LAB_READY_REASON)
}

/// Creates the Node objects of every lab node and their Leases, in-process, and refreshes the status
/// of those whose status is still the lab's placeholder.
pub fn register_nodes(handle: &ServerHandle, state: &LabState) -> Result<()> {
    let api = handle.api();
    let def = resources::find("", "v1", "nodes").expect("nodes are served");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("start a runtime"))?;
    let now = podnet_apiserver::util::now_rfc3339();
    rt.block_on(async {
        for node in &state.plan.nodes {
            if api.get(def, "", &node.name).is_err() {
                let opts = WriteOptions {
                    field_manager: Some("podnet-lab".into()),
                    validation: FieldValidation::Strict,
                    ..Default::default()
                };
                api.create(def, "", node_object(node, &state.name), &opts)
                    .await
                    .map_err(|e| {
                        Error::Other(format!("register node {}: {}", node.name, e.message))
                    })?;
            }
            let status = node_status(node, &now);
            api.mutate(def, "", &node.name, Some("status"), |o| {
                // once the node's agent (or the node lifecycle controller) has posted a Ready
                // condition of its own, the status is theirs
                if !lab_owns_status(o) || o.get("status") == Some(&status) {
                    return false;
                }
                o["status"] = status.clone();
                true
            })
            .await
            .map_err(|e| {
                Error::Other(format!("set status of node {}: {}", node.name, e.message))
            })?;
            // the node's Lease, as a kubelet creates it on registration (its agent renews it); not
            // renewed, the node lifecycle controller marks the node unreachable after the grace period
            let leases = resources::find("coordination.k8s.io", "v1", "leases").expect("served");
            if api.get(leases, LEASE_NAMESPACE, &node.name).is_err() {
                let uid = api
                    .get(def, "", &node.name)
                    .map(|n| podnet_apimachinery::object::uid(&n).to_string())
                    .unwrap_or_default();
                let lease = node_lease(&node.name, &uid, &podnet_apiserver::util::now_micro());
                match api
                    .create(leases, LEASE_NAMESPACE, lease, &WriteOptions::default())
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.reason == "AlreadyExists" => {}
                    Err(e) => {
                        return Err(Error::Other(format!(
                            "create the lease of node {}: {}",
                            node.name, e.message
                        )));
                    }
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_leaves_an_agents_status_alone() {
        assert!(lab_owns_status(&json!({"status": {}})));
        assert!(lab_owns_status(
            &json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": LAB_READY_REASON}]}})
        ));
        for reason in ["KubeletReady", "NodeStatusUnknown"] {
            assert!(!lab_owns_status(
                &json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": reason}]}})
            ));
        }
    }
}

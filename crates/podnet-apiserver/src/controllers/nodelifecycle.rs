//! The node lifecycle controller, as kube-controller-manager runs it: a node is healthy while its
//! kubelet renews the node's Lease in `kube-node-lease` (or posts status heartbeats). When neither
//! happens for the grace period, the node's conditions turn Unknown ("Kubelet stopped posting node
//! status.") and the pods on it stop being Ready. Taints follow the conditions (TaintNodesByCondition
//! and the NoExecute taints of taint-based eviction): Ready=False -> `not-ready`, Unknown ->
//! `unreachable`, pressure conditions and cordoning -> their NoSchedule taints; they go when the
//! condition clears. Pods that do not tolerate a node's NoExecute taints (or only for
//! `tolerationSeconds`, 300 s by default for not-ready and unreachable) are deleted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use podnet_apimachinery::resources::{self, ResourceDef};
use podnet_apimachinery::scheduling::{TAINT_NOT_READY, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE};
use podnet_apimachinery::{ApiError, object};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{record_event, set_condition};
use crate::registry::{Api, store_resource};
use crate::util;

/// The namespace of node Leases; each node's Lease is named after the node.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The Lease duration a kubelet writes (its `nodeLeaseDurationSeconds`).
pub const LEASE_DURATION_SECS: i64 = 40;
/// How often a kubelet renews its Lease (a quarter of the duration).
pub const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);

const COMPONENT: &str = "node-controller";

/// The Lease a node's agent creates (and then renews by updating `spec.renewTime`), owned by its Node
/// so that it goes with it. `renew_time` is a MicroTime (`2026-01-01T00:00:00.000000Z`).
pub fn node_lease(node: &str, node_uid: &str, renew_time: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}],
        },
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": LEASE_DURATION_SECS,
            "renewTime": renew_time,
        },
    })
}

fn nodes() -> &'static ResourceDef {
    resources::find("", "v1", "nodes").expect("served")
}

fn pods() -> &'static ResourceDef {
    resources::find("", "v1", "pods").expect("served")
}

fn leases() -> &'static ResourceDef {
    resources::find("coordination.k8s.io", "v1", "leases").expect("served")
}

/// What was last seen of a node's heartbeats, and when something changed.
struct Health {
    probe: Instant,
    heartbeat: String,
    renew: String,
    /// The Ready status at the end of the last pass (to report transitions once).
    ready: String,
}

fn condition<'a>(node: &'a Value, ty: &str) -> Option<&'a Value> {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c["type"] == ty)
}

fn cond_status<'a>(node: &'a Value, ty: &str) -> Option<&'a str> {
    condition(node, ty).and_then(|c| c["status"].as_str())
}

/// The conditions a kubelet posts; all turn Unknown when it goes silent.
const KUBELET_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// Taint keys this controller owns.
const MANAGED: [&str; 7] = [
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    TAINT_UNSCHEDULABLE,
    "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/disk-pressure",
    "node.kubernetes.io/pid-pressure",
    "node.kubernetes.io/network-unavailable",
];

/// The managed taints a node should carry, as (key, effect).
pub fn desired_taints(node: &Value) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    match cond_status(node, "Ready") {
        Some("False") => {
            out.push((TAINT_NOT_READY, "NoSchedule"));
            out.push((TAINT_NOT_READY, "NoExecute"));
        }
        Some("Unknown") => {
            out.push((TAINT_UNREACHABLE, "NoSchedule"));
            out.push((TAINT_UNREACHABLE, "NoExecute"));
        }
        _ => {}
    }
    for (cond, key) in [
        ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
        ("DiskPressure", "node.kubernetes.io/disk-pressure"),
        ("PIDPressure", "node.kubernetes.io/pid-pressure"),
        (
            "NetworkUnavailable",
            "node.kubernetes.io/network-unavailable",
        ),
    ] {
        if cond_status(node, cond) == Some("True") {
            out.push((key, "NoSchedule"));
        }
    }
    if node.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
        out.push((TAINT_UNSCHEDULABLE, "NoSchedule"));
    }
    out
}

/// Brings the node's managed taints to `desired_taints`; returns whether anything changed.
pub fn reconcile_taints(node: &mut Value, now_rfc3339: &str) -> bool {
    let want = desired_taints(node);
    let current: Vec<Value> = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let key_effect = |t: &Value| {
        (
            t["key"].as_str().unwrap_or("").to_string(),
            t["effect"].as_str().unwrap_or("").to_string(),
        )
    };
    let mut next: Vec<Value> = current
        .iter()
        .filter(|t| {
            let (k, e) = key_effect(t);
            !MANAGED.contains(&k.as_str()) || want.iter().any(|(wk, we)| *wk == k && *we == e)
        })
        .cloned()
        .collect();
    for (k, e) in &want {
        if !next
            .iter()
            .any(|t| key_effect(t) == (k.to_string(), e.to_string()))
        {
            let mut t = json!({"key": k, "effect": e});
            if *e == "NoExecute" {
                t["timeAdded"] = json!(now_rfc3339);
            }
            next.push(t);
        }
    }
    if next == current {
        return false;
    }
    if !node.get("spec").is_some_and(Value::is_object) {
        node["spec"] = json!({});
    }
    if next.is_empty() {
        node["spec"]
            .as_object_mut()
            .expect("object")
            .remove("taints");
    } else {
        node["spec"]["taints"] = Value::Array(next);
    }
    true
}

/// Turns the kubelet's conditions Unknown (the node went silent); returns whether anything changed.
pub fn mark_unknown(node: &mut Value) -> bool {
    let created = object::meta_str(node, "creationTimestamp")
        .unwrap_or("")
        .to_string();
    let mut changed = false;
    for ty in KUBELET_CONDITIONS {
        let existing = condition(node, ty).is_some();
        if existing {
            if cond_status(node, ty) != Some("Unknown") {
                changed |= set_condition(
                    node,
                    ty,
                    "Unknown",
                    "NodeStatusUnknown",
                    "Kubelet stopped posting node status.",
                );
            }
        } else {
            changed |= set_condition(
                node,
                ty,
                "Unknown",
                "NodeStatusNeverUpdated",
                "Kubelet never posted node status.",
            );
            if let Some(c) = node["status"]["conditions"]
                .as_array_mut()
                .and_then(|cs| cs.iter_mut().find(|c| c["type"] == ty))
            {
                c["lastHeartbeatTime"] = json!(created);
                c.as_object_mut().map(|m| m.remove("lastProbeTime"));
            }
        }
    }
    changed
}

/// Runs the controller until `shutdown`: one pass every `node_monitor_period` and after each node or
/// Lease change.
pub async fn run(api: Arc<Api>, mut shutdown: watch::Receiver<bool>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(64);
    let mut forwarders = Vec::new();
    for res in [store_resource(nodes()), store_resource(leases())] {
        let Ok(mut w) = api.store.watch(&res, None, None) else {
            continue;
        };
        let tx = tx.clone();
        forwarders.push(tokio::spawn(async move {
            // a watcher that fell behind only needs the next pass, which reads everything afresh
            while let Ok(Some(_)) | Err(_) = w.next().await {
                if tx.try_send(()).is_err() && tx.is_closed() {
                    return;
                }
            }
        }));
    }
    drop(tx);
    let mut health: HashMap<String, Health> = HashMap::new();
    let mut tick = tokio::time::interval(api.cfg.node_monitor_period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(()) = rx.recv() => {
                while rx.try_recv().is_ok() {}
            }
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            break;
        }
        if let Err(e) = pass(&api, &mut health).await {
            tracing::debug!(error = %e.message, "node lifecycle pass failed; next pass retries");
        }
    }
    for f in forwarders {
        f.abort();
    }
}

async fn pass(api: &Arc<Api>, health: &mut HashMap<String, Health>) -> Result<(), ApiError> {
    let now = Instant::now();
    let all = api.list_values(nodes(), None);
    health.retain(|name, _| all.iter().any(|n| object::name(n) == name));
    let mut not_ready = Vec::new();
    for node in &all {
        let name = object::name(node).to_string();
        let heartbeat = condition(node, "Ready")
            .and_then(|c| c["lastHeartbeatTime"].as_str())
            .unwrap_or("")
            .to_string();
        let renew = api
            .get(leases(), LEASE_NAMESPACE, &name)
            .ok()
            .and_then(|l| {
                l.pointer("/spec/renewTime")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .unwrap_or_default();
        let h = health.entry(name.clone()).or_insert_with(|| Health {
            probe: now,
            heartbeat: heartbeat.clone(),
            renew: renew.clone(),
            ready: String::new(),
        });
        if h.heartbeat != heartbeat || h.renew != renew {
            h.probe = now;
            h.heartbeat = heartbeat;
            h.renew = renew;
        }
        let grace = if condition(node, "Ready").is_some() {
            api.cfg.node_monitor_grace_period
        } else {
            api.cfg.node_startup_grace_period
        };
        let mut current = node.clone();
        if now.duration_since(h.probe) > grace
            && cond_status(node, "Ready") != Some("Unknown")
            && let Some(out) = api
                .mutate(nodes(), "", &name, Some("status"), mark_unknown)
                .await?
        {
            current = out.value();
            // our own write is not a heartbeat
            h.heartbeat = condition(&current, "Ready")
                .and_then(|c| c["lastHeartbeatTime"].as_str())
                .unwrap_or("")
                .to_string();
        }
        let ready_now = cond_status(&current, "Ready").unwrap_or("").to_string();
        let was_ready = std::mem::replace(&mut h.ready, ready_now.clone()) == "True";
        if was_ready && ready_now != "True" {
            record_event(
                api,
                &current,
                "Normal",
                "NodeNotReady",
                &format!("Node {name} status is now: NodeNotReady"),
                COMPONENT,
            )
            .await;
        }
        let stamp = util::now_rfc3339();
        api.mutate(nodes(), "", &name, None, |n| reconcile_taints(n, &stamp))
            .await?;
        if cond_status(&current, "Ready") != Some("True") {
            not_ready.push(name);
        }
    }
    if !not_ready.is_empty() {
        mark_pods_not_ready(api, &not_ready).await?;
    }
    evict_for_no_execute(api).await
}

/// The taint eviction controller's job: pods on a node with NoExecute taints they do not tolerate (or
/// tolerate only for `tolerationSeconds`, which have passed) are deleted.
async fn evict_for_no_execute(api: &Arc<Api>) -> Result<(), ApiError> {
    let tainted: HashMap<String, Value> = api
        .list_values(nodes(), None)
        .into_iter()
        .filter(|n| {
            podnet_apimachinery::scheduling::taints::taints(n)
                .iter()
                .any(|t| t["effect"] == "NoExecute")
        })
        .map(|n| (object::name(&n).to_string(), n))
        .collect();
    if tainted.is_empty() {
        return Ok(());
    }
    let now = util::now_unix();
    for p in api.list_values(pods(), None) {
        let Some(node) = tainted.get(object::str_at(&p, "spec.nodeName").unwrap_or("")) else {
            continue;
        };
        if object::is_deleting(&p) {
            continue;
        }
        let due = podnet_apimachinery::scheduling::taints::eviction_time(&p, node, now);
        if due.is_none_or(|at| at > now) {
            continue;
        }
        let (ns, name) = (object::namespace(&p), object::name(&p));
        record_event(
            api,
            &p,
            "Normal",
            "TaintManagerEviction",
            &format!("Marking for deletion Pod {ns}/{name}"),
            "taint-eviction-controller",
        )
        .await;
        match api
            .delete(pods(), ns, name, &crate::registry::DeleteOptions::default())
            .await
        {
            Ok(_) => {}
            Err(e) if e.reason == "NotFound" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Pods on nodes that are not Ready are not Ready either (their kubelet cannot vouch for them).
async fn mark_pods_not_ready(api: &Arc<Api>, nodes: &[String]) -> Result<(), ApiError> {
    for p in api.list_values(pods(), None) {
        let on = object::str_at(&p, "spec.nodeName").unwrap_or("");
        if !nodes.iter().any(|n| n == on) || !super::pod_ready(&p) {
            continue;
        }
        let (ns, name) = (object::namespace(&p), object::name(&p));
        let changed = api
            .mutate(pods(), ns, name, Some("status"), |o| {
                super::pod_ready(o) && set_condition(o, "Ready", "False", "", "")
            })
            .await?;
        if changed.is_some() {
            record_event(
                api,
                &p,
                "Warning",
                "NodeNotReady",
                "Node is not ready",
                COMPONENT,
            )
            .await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ready: Option<&str>, taints: Value) -> Value {
        let conds = match ready {
            Some(s) => {
                json!([{"type": "Ready", "status": s, "lastHeartbeatTime": "2026-01-01T00:00:00Z"}])
            }
            None => json!([]),
        };
        json!({"metadata": {"name": "n1", "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"taints": taints}, "status": {"conditions": conds}})
    }

    fn keys(n: &Value) -> Vec<String> {
        n["spec"]["taints"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| {
                        format!(
                            "{}:{}",
                            t["key"].as_str().unwrap(),
                            t["effect"].as_str().unwrap()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn taints_follow_readiness() {
        let now = "2026-01-01T00:01:00Z";
        let mut n = node(
            Some("False"),
            json!([{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]),
        );
        assert!(reconcile_taints(&mut n, now));
        assert_eq!(
            keys(&n),
            [
                "dedicated:NoSchedule",
                "node.kubernetes.io/not-ready:NoSchedule",
                "node.kubernetes.io/not-ready:NoExecute"
            ]
        );
        assert_eq!(n["spec"]["taints"][2]["timeAdded"], now);
        assert!(!reconcile_taints(&mut n, now), "idempotent");
        n["status"]["conditions"][0]["status"] = json!("Unknown");
        assert!(reconcile_taints(&mut n, now));
        assert_eq!(
            keys(&n),
            [
                "dedicated:NoSchedule",
                "node.kubernetes.io/unreachable:NoSchedule",
                "node.kubernetes.io/unreachable:NoExecute"
            ]
        );
        n["status"]["conditions"][0]["status"] = json!("True");
        n["spec"]["unschedulable"] = json!(true);
        assert!(reconcile_taints(&mut n, now));
        assert_eq!(
            keys(&n),
            [
                "dedicated:NoSchedule",
                "node.kubernetes.io/unschedulable:NoSchedule"
            ]
        );
        n["spec"]["unschedulable"] = json!(false);
        n["spec"]["taints"] = json!([]);
        assert!(!reconcile_taints(&mut n, now));
    }

    #[test]
    fn silent_nodes_turn_unknown() {
        let mut n = node(Some("True"), json!([]));
        assert!(mark_unknown(&mut n));
        let ready = condition(&n, "Ready").unwrap();
        assert_eq!(ready["status"], "Unknown");
        assert_eq!(ready["reason"], "NodeStatusUnknown");
        assert_eq!(ready["message"], "Kubelet stopped posting node status.");
        // the heartbeat stays what the kubelet last posted
        assert_eq!(ready["lastHeartbeatTime"], "2026-01-01T00:00:00Z");
        let mem = condition(&n, "MemoryPressure").unwrap();
        assert_eq!(mem["reason"], "NodeStatusNeverUpdated");
        assert_eq!(mem["message"], "Kubelet never posted node status.");
        assert!(!mark_unknown(&mut n));
        let mut fresh = node(None, json!([]));
        assert!(mark_unknown(&mut fresh));
        assert_eq!(
            condition(&fresh, "Ready").unwrap()["reason"],
            "NodeStatusNeverUpdated"
        );
    }

    #[test]
    fn lease_shape() {
        let l = node_lease("n1", "u1", "2026-01-01T00:00:00.000000Z");
        assert_eq!(l["metadata"]["namespace"], LEASE_NAMESPACE);
        assert_eq!(l["spec"]["holderIdentity"], "n1");
        assert_eq!(l["metadata"]["ownerReferences"][0]["kind"], "Node");
    }
}

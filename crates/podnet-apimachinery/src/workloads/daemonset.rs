//! DaemonSets: which nodes run a daemon pod (kube's `NodeShouldRunDaemonPod`), the pod made for a
//! node, and one sync's plan: pods to create (per node) and to delete, from the manage loop and the
//! RollingUpdate strategy (maxUnavailable, or maxSurge), and the status `kubectl get ds` shows.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{REVISION_HASH_LABEL, available_in, controller_ref, pod_from_template, pod_ready};
use crate::object;
use crate::scheduling::{effective_taints, nodeaffinity, taints};

/// The legacy label holding the DaemonSet's generation at the time the pod was made.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

/// The tolerations every daemon pod gets (kube's `AddOrUpdateDaemonPodTolerations`): it stays on
/// nodes that are not ready or unreachable, and goes on nodes under pressure or cordoned (and,
/// with the host's network, nodes whose network is not ready).
fn default_tolerations(host_network: bool) -> Vec<Value> {
    let mut t = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        t.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    t.into_iter()
        .map(|(k, e)| json!({"key": k, "operator": "Exists", "effect": e}))
        .collect()
}

fn add_default_tolerations(spec: &mut Value) {
    let host_network = spec.get("hostNetwork") == Some(&json!(true));
    if !spec.get("tolerations").is_some_and(Value::is_array) {
        spec["tolerations"] = json!([]);
    }
    let list = spec["tolerations"].as_array_mut().expect("array");
    for t in default_tolerations(host_network) {
        if !list
            .iter()
            .any(|x| x["key"] == t["key"] && x["effect"] == t["effect"])
        {
            list.push(t);
        }
    }
}

/// Pins a pod to `node` through a required node affinity term on the node's name (replacing the
/// template's required terms, which the controller has already checked), so the scheduler binds it
/// there (kube's `ReplaceDaemonSetPodNodeNameNodeAffinity`).
fn pin_to_node(spec: &mut Value, node: &str) {
    let term = json!({"nodeSelectorTerms": [{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": [node]}]}]});
    if !spec.get("affinity").is_some_and(Value::is_object) {
        spec["affinity"] = json!({});
    }
    if !spec["affinity"]
        .get("nodeAffinity")
        .is_some_and(Value::is_object)
    {
        spec["affinity"]["nodeAffinity"] = json!({});
    }
    spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = term;
}

/// The daemon pod for `node` at revision `hash`.
pub fn new_pod(ds: &Value, node: &str, hash: &str) -> Value {
    let generation = object::i64_at(ds, "metadata.generation")
        .unwrap_or(1)
        .to_string();
    let tmpl = ds
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut pod = pod_from_template(
        &tmpl,
        controller_ref(ds, "apps/v1", "DaemonSet"),
        &[
            (REVISION_HASH_LABEL, hash),
            (TEMPLATE_GENERATION_LABEL, &generation),
        ],
    );
    pod["metadata"]["generateName"] = json!(format!("{}-", object::name(ds)));
    if !pod["spec"].is_object() {
        pod["spec"] = json!({});
    }
    add_default_tolerations(&mut pod["spec"]);
    pin_to_node(&mut pod["spec"], node);
    pod
}

/// `(should run, should continue running)` on `node`: the template's node name, node selector and
/// required node affinity must match; NoSchedule and NoExecute taints must be tolerated to start,
/// NoExecute ones to keep running.
pub fn node_fit(ds: &Value, node: &Value) -> (bool, bool) {
    let name = object::name(node);
    let mut probe =
        json!({"spec": ds.pointer("/spec/template/spec").cloned().unwrap_or_else(|| json!({}))});
    if let Some(n) = object::str_at(&probe, "spec.nodeName").filter(|n| !n.is_empty())
        && n != name
    {
        return (false, false);
    }
    add_default_tolerations(&mut probe["spec"]);
    if !nodeaffinity::matches(&probe, node) {
        return (false, false);
    }
    let tols = taints::tolerations(&probe);
    let node_taints = effective_taints(node);
    let untolerated = |effects: &[&str]| {
        node_taints.iter().any(|t| {
            effects.contains(&t["effect"].as_str().unwrap_or_default())
                && !taints::tolerated(tols, t)
        })
    };
    if untolerated(&["NoSchedule", "NoExecute"]) {
        return (false, !untolerated(&["NoExecute"]));
    }
    (true, true)
}

/// The node a daemon pod belongs to: where it is bound, else the node its affinity pins it to.
pub fn target_node(pod: &Value) -> Option<String> {
    if let Some(n) = object::str_at(pod, "spec.nodeName").filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    pod.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)?
        .iter()
        .flat_map(|t| t.get("matchFields").and_then(Value::as_array).into_iter().flatten())
        .find(|f| f["key"] == "metadata.name" && f["operator"] == "In")
        .and_then(|f| f.pointer("/values/0"))
        .and_then(Value::as_str)
        .map(String::from)
}

/// Whether a pod runs the DaemonSet's current template.
pub fn is_updated(pod: &Value, hash: &str, generation: i64) -> bool {
    let labels = object::labels(pod);
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    match label(REVISION_HASH_LABEL) {
        Some(h) => h == hash,
        None => label(TEMPLATE_GENERATION_LABEL) == Some(&generation.to_string()),
    }
}

/// What one sync does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Nodes that get a new pod.
    pub create_on: Vec<String>,
    /// Pods to delete, by name.
    pub delete: Vec<String>,
    /// When availability changes by time alone (minReadySeconds), in seconds.
    pub recheck_in: Option<i64>,
}

struct Ctx<'a> {
    hash: &'a str,
    generation: i64,
    min_ready: i64,
    now: i64,
}

impl Ctx<'_> {
    fn available(&self, p: &Value) -> bool {
        available_in(p, self.min_ready, self.now) == Some(0)
    }
    fn updated(&self, p: &Value) -> bool {
        is_updated(p, self.hash, self.generation)
    }
    /// The node's one new and one old live pod; `None` when it has more than one of either.
    fn new_and_old<'p>(
        &self,
        pods: &[&'p Value],
    ) -> Option<(Option<&'p Value>, Option<&'p Value>)> {
        let (mut new, mut old) = (None, None);
        for p in pods.iter().filter(|p| !object::is_deleting(p)) {
            let slot = if self.updated(p) { &mut new } else { &mut old };
            if slot.is_some() {
                return None;
            }
            *slot = Some(*p);
        }
        Some((new, old))
    }
}

fn created(p: &Value) -> &str {
    object::str_at(p, "metadata.creationTimestamp").unwrap_or_default()
}

/// Pods by the node they belong to; pods for no node are listed under "".
fn by_node(pods: &[Value]) -> BTreeMap<String, Vec<&Value>> {
    let mut m: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for p in pods {
        m.entry(target_node(p).unwrap_or_default())
            .or_default()
            .push(p);
    }
    m
}

/// One sync of a DaemonSet whose current revision has `hash`, over `nodes` and its own `pods`.
pub fn plan(ds: &Value, nodes: &[Value], pods: &[Value], hash: &str, now: i64) -> Plan {
    let ctx = Ctx {
        hash,
        generation: object::i64_at(ds, "metadata.generation").unwrap_or(1),
        min_ready: object::i64_at(ds, "spec.minReadySeconds").unwrap_or(0),
        now,
    };
    let mut plan = Plan::default();
    let mut delete: BTreeSet<String> = BTreeSet::new();
    let pods_by_node = by_node(pods);
    let fits: BTreeMap<&str, (bool, bool)> = nodes
        .iter()
        .map(|n| (object::name(n), node_fit(ds, n)))
        .collect();
    // pods for nodes that are gone (the pod GC's job upstream)
    for (node, ps) in &pods_by_node {
        if !fits.contains_key(node.as_str()) {
            delete.extend(
                ps.iter()
                    .filter(|p| !object::is_deleting(p))
                    .map(|p| object::name(p).to_string()),
            );
        }
    }
    // the manage loop
    for (node, (run, keep)) in &fits {
        let here = pods_by_node.get(*node).map(Vec::as_slice).unwrap_or(&[]);
        let live: Vec<&Value> = here
            .iter()
            .copied()
            .filter(|p| !object::is_deleting(p))
            .collect();
        if *run && here.is_empty() {
            plan.create_on.push(node.to_string());
        } else if *keep {
            // a pod that finished (failed, evicted) is replaced: deleted now, created next sync
            let (finished, mut running): (Vec<&Value>, Vec<&Value>) =
                live.iter().partition(|p| super::pod_finished(p));
            delete.extend(finished.iter().map(|p| object::name(p).to_string()));
            // more than one pod of a revision: the oldest of each stays
            running.sort_by_key(|p| created(p));
            let mut seen_new = false;
            let mut seen_old = false;
            for p in running {
                let seen = if ctx.updated(p) {
                    &mut seen_new
                } else {
                    &mut seen_old
                };
                if *seen {
                    delete.insert(object::name(p).to_string());
                }
                *seen = true;
            }
        } else {
            delete.extend(live.iter().map(|p| object::name(p).to_string()));
        }
    }
    if ds
        .pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        != Some("OnDelete")
    {
        rolling_update(ds, &ctx, &fits, &pods_by_node, &mut plan, &mut delete);
    }
    // when a Ready pod becomes available, the numbers change without any event
    plan.recheck_in = pods
        .iter()
        .filter_map(|p| available_in(p, ctx.min_ready, now))
        .filter(|s| *s > 0)
        .min();
    plan.delete = delete.into_iter().collect();
    plan
}

/// kube's `rollingUpdate` of the DaemonSet controller: without a surge, old pods are deleted (the
/// manage loop recreates them) while at most maxUnavailable nodes lack an available pod; with a
/// surge, new pods start beside old ones (at most maxSurge at a time) and an old pod goes once the
/// new one on its node is available.
fn rolling_update(
    ds: &Value,
    ctx: &Ctx,
    fits: &BTreeMap<&str, (bool, bool)>,
    pods_by_node: &BTreeMap<String, Vec<&Value>>,
    plan: &mut Plan,
    delete: &mut BTreeSet<String>,
) {
    let desired = fits.values().filter(|(run, _)| *run).count() as i64;
    let ru = ds.pointer("/spec/updateStrategy/rollingUpdate");
    let mut max_surge = super::scaled(ru.and_then(|r| r.get("maxSurge")), desired, &json!(0), true);
    let mut max_unavailable = super::scaled(
        ru.and_then(|r| r.get("maxUnavailable")),
        desired,
        &json!(1),
        true,
    );
    if max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    if max_surge > 0 {
        max_unavailable = 0;
    } else {
        max_surge = 0;
    }
    let nodes_with_pods = pods_by_node
        .iter()
        .filter(|(n, _)| fits.contains_key(n.as_str()));
    if max_surge == 0 {
        // A node whose pod is only now being created has no available pod either (upstream rolls
        // only once its creations are observed, by when the new pod counts as unavailable).
        let mut unavailable = plan.create_on.len() as i64;
        let mut replace: Vec<String> = Vec::new();
        let mut candidates: Vec<String> = Vec::new();
        for (_, pods) in nodes_with_pods {
            let Some((new, old)) = ctx.new_and_old(pods) else {
                unavailable += 1;
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable += 1,
                (Some(n), None) => {
                    if !ctx.available(n) {
                        unavailable += 1;
                    }
                }
                (None, Some(o)) => {
                    if !ctx.available(o) {
                        replace.push(object::name(o).to_string());
                        unavailable += 1;
                    } else if unavailable < max_unavailable {
                        candidates.push(object::name(o).to_string());
                    }
                }
            }
        }
        let room = (max_unavailable - unavailable).clamp(0, candidates.len() as i64) as usize;
        delete.extend(replace);
        delete.extend(candidates.into_iter().take(room));
        return;
    }
    let mut surged = 0;
    let mut allowed: Vec<String> = Vec::new();
    let mut candidates: Vec<String> = Vec::new();
    for (node, pods) in nodes_with_pods {
        let Some((new, old)) = ctx.new_and_old(pods) else {
            surged += 1;
            continue;
        };
        match (new, old) {
            (_, None) => {}
            (None, Some(o)) => {
                if !ctx.available(o) {
                    if fits.get(node.as_str()).is_some_and(|(run, _)| *run) {
                        allowed.push(node.clone());
                    } else {
                        delete.insert(object::name(o).to_string());
                    }
                } else if surged < max_surge {
                    candidates.push(node.clone());
                }
            }
            (Some(n), Some(o)) => {
                if ctx.available(n) {
                    delete.insert(object::name(o).to_string());
                } else {
                    surged += 1;
                }
            }
        }
    }
    let room = (max_surge - surged).clamp(0, candidates.len() as i64) as usize;
    plan.create_on.extend(allowed);
    plan.create_on.extend(candidates.into_iter().take(room));
}

/// The status fields the controller computes (`desiredNumberScheduled` ... `numberUnavailable`).
pub fn status(ds: &Value, nodes: &[Value], pods: &[Value], hash: &str, now: i64) -> Value {
    let generation = object::i64_at(ds, "metadata.generation").unwrap_or(1);
    let min_ready = object::i64_at(ds, "spec.minReadySeconds").unwrap_or(0);
    let live: Vec<Value> = pods
        .iter()
        .filter(|p| !object::is_deleting(p) && !super::pod_finished(p))
        .cloned()
        .collect();
    let pods_by_node = by_node(&live);
    let (mut desired, mut current, mut misscheduled, mut ready, mut available, mut updated) =
        (0, 0, 0, 0, 0, 0);
    for n in nodes {
        let (run, _) = node_fit(ds, n);
        let here = pods_by_node.get(object::name(n));
        let scheduled = here.is_some_and(|v| !v.is_empty());
        if !run {
            if scheduled {
                misscheduled += 1;
            }
            continue;
        }
        desired += 1;
        let Some(here) = here.filter(|v| !v.is_empty()) else {
            continue;
        };
        current += 1;
        let oldest = here.iter().min_by_key(|p| created(p)).expect("non-empty");
        if pod_ready(oldest) {
            ready += 1;
            if available_in(oldest, min_ready, now) == Some(0) {
                available += 1;
            }
        }
        if is_updated(oldest, hash, generation) {
            updated += 1;
        }
    }
    json!({
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled,
        "numberReady": ready,
        "numberAvailable": available,
        "numberUnavailable": desired - available,
        "updatedNumberScheduled": updated,
    })
}

#[cfg(test)]
mod tests;

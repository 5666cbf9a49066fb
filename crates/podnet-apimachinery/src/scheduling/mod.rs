//! Pod placement as kube-scheduler's default profile decides it, for the fields podnet honours:
//! filters (NodeUnschedulable, NodeName, TaintToleration, NodeAffinity, NodeResourcesFit,
//! InterPodAffinity, in that order; the first that rejects a node names the reason), then a score
//! that spreads pods, then the FailedScheduling message worded as kube-scheduler words it. Pure: the
//! caller passes the cluster's state.

pub mod nodeaffinity;
pub mod podaffinity;
pub mod quantity;
pub mod resources;
pub mod taints;

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use resources::NodeUsage;

/// Reason of the NodeUnschedulable plugin.
pub const UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// Reason of the NodeName plugin.
pub const NODE_NAME: &str = "node(s) didn't match the requested node name";
/// Reason of the NodeAffinity plugin.
pub const NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// What nodes left out by the NodeAffinity PreFilter (`matchFields` on the node name) are told.
pub const NODE_AFFINITY_PREFILTER: &str = "node(s) didn't satisfy plugin(s) [NodeAffinity]";
/// Reasons of the InterPodAffinity plugin.
pub const POD_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const POD_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
/// What preemption says of a node where evicting pods could not help / found nothing to evict.
pub const PREEMPTION_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";
/// The message when the cluster has no nodes at all.
pub const NO_NODES: &str = "no nodes available to schedule pods";

/// The taint the node lifecycle controller puts on a node whose Ready condition is False.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// ... Unknown (its kubelet stopped reporting).
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// ... `spec.unschedulable` (cordoned).
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// Why one node was rejected: the reasons and whether evicting lower-priority pods could help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reasons: Vec<String>,
    /// `UnschedulableAndUnresolvable` in the scheduler's terms.
    pub unresolvable: bool,
}

impl Rejection {
    fn hard(reason: impl Into<String>) -> Rejection {
        Rejection {
            reasons: vec![reason.into()],
            unresolvable: true,
        }
    }
    fn soft(reasons: Vec<String>) -> Rejection {
        Rejection {
            reasons,
            unresolvable: false,
        }
    }
}

/// Why a pod fits no node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub num_nodes: usize,
    /// Per rejected node.
    pub rejections: BTreeMap<String, Rejection>,
}

fn histogram<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for i in items {
        *counts.entry(i).or_insert(0) += 1;
    }
    // "<count> <reason>" strings sorted as strings, as Go's sort.Strings orders them
    let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    parts.join(", ")
}

impl FitError {
    /// The message of the FailedScheduling event and the PodScheduled condition.
    pub fn message(&self) -> String {
        if self.num_nodes == 0 {
            return NO_NODES.to_string();
        }
        let reasons = histogram(
            self.rejections
                .values()
                .flat_map(|r| r.reasons.iter().map(String::as_str)),
        );
        let preemption = histogram(self.rejections.values().map(|r| {
            if r.unresolvable {
                PREEMPTION_NOT_HELPFUL
            } else {
                NO_VICTIMS
            }
        }));
        format!(
            "0/{n} nodes are available: {reasons}. preemption: 0/{n} nodes are available: {preemption}.",
            n = self.num_nodes
        )
    }
}

/// What the scheduler knows of the cluster.
pub struct Cluster<'a> {
    pub nodes: &'a [Value],
    /// Pods assigned to nodes and not finished (terminating ones included: they still hold their
    /// resources).
    pub pods: &'a [Value],
    pub namespaces: &'a [Value],
}

fn name(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The node's Ready condition status (`True`, `False`, `Unknown`), if it has one.
pub fn ready_status(node: &Value) -> Option<&str> {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
}

/// The node's taints, plus the NoSchedule taint its readiness implies when the node lifecycle
/// controller has not put it there yet (a node is only a candidate once Ready, as with upstream's
/// admission-time `not-ready` taint).
pub fn effective_taints(node: &Value) -> Vec<Value> {
    let mut out = taints::taints(node).to_vec();
    let implied = match ready_status(node) {
        Some("True") => None,
        Some("Unknown") => Some(TAINT_UNREACHABLE),
        _ => Some(TAINT_NOT_READY),
    };
    if let Some(key) = implied
        && !out
            .iter()
            .any(|t| t["key"] == key && t["effect"] == "NoSchedule")
    {
        out.push(json!({"key": key, "effect": "NoSchedule"}));
    }
    out
}

/// Scores and chooses among the feasible nodes: fewest untolerated PreferNoSchedule taints, then the
/// least full (cpu and memory), then the fewest pods, then the name (deterministic).
fn choose<'a>(
    pod: &Value,
    feasible: &[&'a Value],
    pod_req: &resources::Amounts,
    usage: &HashMap<&str, NodeUsage>,
) -> Option<&'a Value> {
    let none = NodeUsage::default();
    feasible.iter().copied().min_by_key(|n| {
        let u = usage.get(name(n)).unwrap_or(&none);
        (
            taints::untolerated_prefer_no_schedule(pod, n),
            resources::fullness(pod_req, &resources::allocatable(n), u),
            u.pods,
            name(n).to_string(),
        )
    })
}

/// Picks a node for `pod`, or says why none fits.
pub fn schedule(pod: &Value, cluster: &Cluster) -> Result<String, FitError> {
    let mut node_labels: HashMap<&str, &Map<String, Value>> = HashMap::new();
    let empty_map = Map::new();
    let empty = &empty_map;
    for n in cluster.nodes {
        node_labels.insert(
            name(n),
            n.pointer("/metadata/labels")
                .and_then(Value::as_object)
                .unwrap_or(empty),
        );
    }
    let mut usage: HashMap<&str, NodeUsage> = HashMap::new();
    let mut placed = Vec::new();
    for p in cluster.pods {
        let Some(node) = p.pointer("/spec/nodeName").and_then(Value::as_str) else {
            continue;
        };
        usage.entry(node).or_default().add_pod(p);
        if let Some(labels) = node_labels.get(node) {
            placed.push(podaffinity::Placed {
                pod: p,
                node_labels: labels,
            });
        }
    }
    let ns_labels: HashMap<&str, &Map<String, Value>> = cluster
        .namespaces
        .iter()
        .map(|ns| {
            (
                name(ns),
                ns.pointer("/metadata/labels")
                    .and_then(Value::as_object)
                    .unwrap_or(empty),
            )
        })
        .collect();
    let lookup = |ns: &str| -> &Map<String, Value> { ns_labels.get(ns).copied().unwrap_or(empty) };
    let affinity = podaffinity::State::new(pod, &placed, &lookup);
    let pod_req = resources::pod_requests(pod);
    let wanted_node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    let none = NodeUsage::default();
    let candidates = nodeaffinity::prefilter_names(pod);

    let mut feasible = Vec::new();
    let mut rejections = BTreeMap::new();
    for n in cluster.nodes {
        let tols = taints::tolerations(pod);
        let verdict = if candidates.as_ref().is_some_and(|c| !c.contains(name(n))) {
            Err(Rejection::hard(NODE_AFFINITY_PREFILTER))
        } else if n.pointer("/spec/unschedulable") == Some(&Value::Bool(true))
            && !taints::tolerated(
                tols,
                &json!({"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}),
            )
        {
            Err(Rejection::hard(UNSCHEDULABLE))
        } else if wanted_node.is_some_and(|w| w != name(n)) {
            Err(Rejection::hard(NODE_NAME))
        } else if let Some(t) = effective_taints(n).iter().find(|t| {
            matches!(t["effect"].as_str(), Some("NoSchedule" | "NoExecute"))
                && !taints::tolerated(tols, t)
        }) {
            Err(Rejection::hard(format!(
                "node(s) had untolerated taint {}",
                taints::describe(t)
            )))
        } else if !nodeaffinity::matches(pod, n) {
            Err(Rejection::hard(NODE_AFFINITY))
        } else {
            let short = resources::insufficient(
                &pod_req,
                &resources::allocatable(n),
                usage.get(name(n)).unwrap_or(&none),
            );
            if !short.is_empty() {
                Err(Rejection::soft(short))
            } else {
                match affinity.check(node_labels.get(name(n)).copied().unwrap_or(empty)) {
                    Ok(()) => Ok(()),
                    Err(podaffinity::Violation::Affinity) => Err(Rejection::hard(POD_AFFINITY)),
                    Err(podaffinity::Violation::AntiAffinity) => {
                        Err(Rejection::soft(vec![POD_ANTI_AFFINITY.to_string()]))
                    }
                    Err(podaffinity::Violation::ExistingAntiAffinity) => {
                        Err(Rejection::soft(vec![EXISTING_ANTI_AFFINITY.to_string()]))
                    }
                }
            }
        };
        match verdict {
            Ok(()) => feasible.push(n),
            Err(r) => {
                rejections.insert(name(n).to_string(), r);
            }
        }
    }
    match choose(pod, &feasible, &pod_req, &usage) {
        Some(n) => Ok(name(n).to_string()),
        None => Err(FitError {
            num_nodes: cluster.nodes.len(),
            rejections,
        }),
    }
}

#[cfg(test)]
mod tests;

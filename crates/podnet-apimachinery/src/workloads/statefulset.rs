//! StatefulSets: pods with stable names (`web-0`, `web-1`, ...) and DNS identities, created in
//! ordinal order and removed in reverse (OrderedReady: one at a time, each waiting for the one before
//! to be Running and Ready; Parallel: all at once), updated from the highest ordinal down to the
//! partition (RollingUpdate) or only when deleted (OnDelete); the status `kubectl rollout status`
//! reads. Mirrors kube's `defaultStatefulSetControl.updateStatefulSet`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{
    REVISION_HASH_LABEL, available_in, controller_ref, pod_from_template, running_and_ready,
};
use crate::object;

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// The ordinal of a pod named `<set>-<n>`.
pub fn ordinal_of(set: &str, pod: &str) -> Option<i64> {
    let n = pod.strip_prefix(set)?.strip_prefix('-')?;
    if n.is_empty() || (n.len() > 1 && n.starts_with('0')) {
        return None;
    }
    n.parse().ok().filter(|n: &i64| *n >= 0)
}

/// A revision of the set: its ControllerRevision name and the pod template it records.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    pub name: String,
    pub template: Value,
}

/// The pod with ordinal `ordinal` at `rev`.
pub fn new_pod(set: &Value, ordinal: i64, rev: &Revision) -> Value {
    let set_name = object::name(set);
    let name = format!("{set_name}-{ordinal}");
    let index = ordinal.to_string();
    let mut pod = pod_from_template(
        &rev.template,
        controller_ref(set, "apps/v1", "StatefulSet"),
        &[
            (REVISION_HASH_LABEL, rev.name.as_str()),
            (POD_NAME_LABEL, name.as_str()),
            (POD_INDEX_LABEL, index.as_str()),
        ],
    );
    pod["metadata"]["name"] = json!(name);
    if !pod["spec"].is_object() {
        pod["spec"] = json!({});
    }
    // the identity the governing (headless) Service gives a DNS name: <pod>.<service>.<ns>.svc
    pod["spec"]["hostname"] = json!(name);
    if let Some(svc) = object::str_at(set, "spec.serviceName").filter(|s| !s.is_empty()) {
        pod["spec"]["subdomain"] = json!(svc);
    }
    pod
}

fn revision_of(p: &Value) -> &str {
    object::labels(p)
        .and_then(|l| l.get(REVISION_HASH_LABEL))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// What one sync does.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Ordinals to create, and whether at the update revision (else the current one).
    pub create: Vec<(i64, bool)>,
    /// Pods to delete, by name, in this order.
    pub delete: Vec<String>,
    /// When availability changes by time alone (minReadySeconds), in seconds.
    pub recheck_in: Option<i64>,
}

struct Set<'a> {
    start: i64,
    replicas: i64,
    parallel: bool,
    rolling: bool,
    partition: i64,
    min_ready: i64,
    now: i64,
    update: &'a str,
}

impl Set<'_> {
    fn healthy(&self, p: &Value) -> bool {
        running_and_ready(p) && available_in(p, self.min_ready, self.now) == Some(0)
    }
    /// Whether a missing pod is made at the update revision (kube's newVersionedStatefulSetPod).
    fn at_update(&self, ordinal: i64) -> bool {
        !(self.rolling && ordinal < self.start + self.partition)
    }
}

/// One sync: `pods` are the set's own pods, `update` the name of the revision of its current spec.
pub fn plan(set: &Value, pods: &[Value], update: &str, now: i64) -> Plan {
    let s = Set {
        start: object::i64_at(set, "spec.ordinals.start").unwrap_or(0),
        replicas: object::i64_at(set, "spec.replicas").unwrap_or(1).max(0),
        parallel: object::str_at(set, "spec.podManagementPolicy") == Some("Parallel"),
        rolling: object::str_at(set, "spec.updateStrategy.type") != Some("OnDelete"),
        partition: object::i64_at(set, "spec.updateStrategy.rollingUpdate.partition").unwrap_or(0),
        min_ready: object::i64_at(set, "spec.minReadySeconds").unwrap_or(0),
        now,
        update,
    };
    let name = object::name(set);
    let by_ordinal: BTreeMap<i64, &Value> = pods
        .iter()
        .filter_map(|p| ordinal_of(name, object::name(p)).map(|o| (o, p)))
        .collect();
    let mut plan = Plan {
        recheck_in: pods
            .iter()
            .filter_map(|p| available_in(p, s.min_ready, now))
            .filter(|x| *x > 0)
            .min(),
        ..Plan::default()
    };
    let end = s.start + s.replicas;
    // the replicas, in ordinal order
    for ord in s.start..end {
        match by_ordinal.get(&ord) {
            None => {
                plan.create.push((ord, s.at_update(ord)));
                if !s.parallel {
                    return plan;
                }
            }
            Some(p) if super::pod_finished(p) && !object::is_deleting(p) => {
                // a pod that failed (or, evicted, finished) is made again
                plan.delete.push(object::name(p).to_string());
                if !s.parallel {
                    return plan;
                }
            }
            Some(p) if !s.parallel && !s.healthy(p) => return plan,
            Some(_) => {}
        }
    }
    // scale down: the highest ordinal first
    let condemned: Vec<&Value> = by_ordinal
        .iter()
        .rev()
        .filter(|(o, _)| **o < s.start || **o >= end)
        .map(|(_, p)| *p)
        .collect();
    for p in condemned {
        if object::is_deleting(p) {
            if !s.parallel {
                return plan;
            }
            continue;
        }
        plan.delete.push(object::name(p).to_string());
        if !s.parallel {
            return plan;
        }
    }
    // pods not owned under their ordinal's name are not this controller's business
    if !s.rolling || !plan.delete.is_empty() || !plan.create.is_empty() {
        return plan;
    }
    // RollingUpdate: from the highest ordinal down to the partition, one pod at a time
    for ord in (s.start + s.partition.max(0)..end).rev() {
        let Some(p) = by_ordinal.get(&ord) else {
            return plan;
        };
        if revision_of(p) != s.update && !object::is_deleting(p) {
            plan.delete.push(object::name(p).to_string());
            return plan;
        }
        if !s.healthy(p) {
            return plan;
        }
    }
    plan
}

/// The status fields the controller computes from the pods, with the revisions.
pub fn status(set: &Value, pods: &[Value], current: &str, update: &str, now: i64) -> Value {
    let min_ready = object::i64_at(set, "spec.minReadySeconds").unwrap_or(0);
    let (mut replicas, mut ready, mut available, mut at_current, mut at_update) = (0, 0, 0, 0, 0);
    for p in pods {
        let created = !super::phase(p).is_empty();
        if created {
            replicas += 1;
        }
        if running_and_ready(p) {
            ready += 1;
            if available_in(p, min_ready, now) == Some(0) {
                available += 1;
            }
        }
        if created && !object::is_deleting(p) {
            if revision_of(p) == current {
                at_current += 1;
            }
            if revision_of(p) == update {
                at_update += 1;
            }
        }
    }
    let mut current = current.to_string();
    // a finished rolling update: the update revision becomes the current one
    if object::str_at(set, "spec.updateStrategy.type") != Some("OnDelete")
        && at_update == replicas
        && ready == replicas
    {
        current = update.to_string();
        at_current = at_update;
    }
    json!({
        "replicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": available,
        "currentReplicas": at_current,
        "updatedReplicas": at_update,
        "currentRevision": current,
        "updateRevision": update,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn set(replicas: i64, policy: &str, strategy: Value) -> Value {
        json!({"metadata": {"name": "web", "uid": "u"}, "spec": {"replicas": replicas, "serviceName": "nginx",
            "podManagementPolicy": policy, "updateStrategy": strategy,
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    }

    fn pod(ord: i64, rev: &str, ready: bool) -> Value {
        json!({"metadata": {"name": format!("web-{ord}"), "labels": {"controller-revision-hash": rev}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    fn rolling(partition: i64) -> Value {
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": partition}})
    }

    #[test]
    fn names_and_identity() {
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-01"), None);
        assert_eq!(ordinal_of("web", "webx-1"), None);
        assert_eq!(ordinal_of("web", "web-"), None);
        let s = set(3, "OrderedReady", rolling(0));
        let rev = Revision {
            name: "web-abc".into(),
            template: s["spec"]["template"].clone(),
        };
        let p = new_pod(&s, 2, &rev);
        assert_eq!(p["metadata"]["name"], "web-2");
        assert_eq!(p["spec"]["hostname"], "web-2");
        assert_eq!(p["spec"]["subdomain"], "nginx");
        assert_eq!(
            p["metadata"]["labels"],
            json!({"app": "web", "controller-revision-hash": "web-abc",
            "statefulset.kubernetes.io/pod-name": "web-2", "apps.kubernetes.io/pod-index": "2"})
        );
    }

    #[test]
    fn ordered_ready_starts_one_pod_at_a_time_in_order() {
        let s = set(3, "OrderedReady", rolling(0));
        assert_eq!(plan(&s, &[], "r1", NOW).create, [(0, true)]);
        // web-0 is not ready yet: wait
        assert_eq!(plan(&s, &[pod(0, "r1", false)], "r1", NOW), Plan::default());
        assert_eq!(
            plan(&s, &[pod(0, "r1", true)], "r1", NOW).create,
            [(1, true)]
        );
        // Parallel: everything at once
        let p = set(3, "Parallel", rolling(0));
        assert_eq!(
            plan(&p, &[], "r1", NOW).create,
            [(0, true), (1, true), (2, true)]
        );
    }

    #[test]
    fn scale_down_goes_from_the_highest_ordinal() {
        let s = set(1, "OrderedReady", rolling(0));
        let pods = vec![pod(0, "r1", true), pod(1, "r1", true), pod(2, "r1", true)];
        assert_eq!(plan(&s, &pods, "r1", NOW).delete, ["web-2"]);
        let mut terminating = pods.clone();
        terminating[2]["metadata"]["deletionTimestamp"] = json!("2023-11-14T00:00:00Z");
        assert_eq!(
            plan(&s, &terminating, "r1", NOW),
            Plan::default(),
            "waits for web-2 to go"
        );
        let p = set(1, "Parallel", rolling(0));
        assert_eq!(plan(&p, &pods, "r1", NOW).delete, ["web-2", "web-1"]);
    }

    #[test]
    fn rolling_update_goes_down_to_the_partition() {
        let s = set(3, "OrderedReady", rolling(1));
        let old = vec![pod(0, "r1", true), pod(1, "r1", true), pod(2, "r1", true)];
        assert_eq!(plan(&s, &old, "r2", NOW).delete, ["web-2"]);
        // web-2 came back at r2 but is not ready: wait
        let mid = vec![pod(0, "r1", true), pod(1, "r1", true), pod(2, "r2", false)];
        assert_eq!(plan(&s, &mid, "r2", NOW), Plan::default());
        let mid = vec![pod(0, "r1", true), pod(1, "r1", true), pod(2, "r2", true)];
        assert_eq!(plan(&s, &mid, "r2", NOW).delete, ["web-1"]);
        // web-0 is below the partition: it stays at r1, and a missing web-0 is made at r1
        let done = vec![pod(0, "r1", true), pod(1, "r2", true), pod(2, "r2", true)];
        assert_eq!(plan(&s, &done, "r2", NOW), Plan::default());
        assert_eq!(plan(&s, &done[1..], "r2", NOW).create, [(0, false)]);
        // OnDelete: nothing is replaced
        let od = set(3, "OrderedReady", json!({"type": "OnDelete"}));
        assert_eq!(plan(&od, &old, "r2", NOW), Plan::default());
    }

    #[test]
    fn status_moves_the_current_revision_when_done() {
        let s = set(2, "OrderedReady", rolling(0));
        let st = status(
            &s,
            &[pod(0, "r1", true), pod(1, "r2", true)],
            "r1",
            "r2",
            NOW,
        );
        assert_eq!(
            (
                st["currentRevision"].as_str(),
                st["currentReplicas"].as_i64(),
                st["updatedReplicas"].as_i64()
            ),
            (Some("r1"), Some(1), Some(1))
        );
        let st = status(
            &s,
            &[pod(0, "r2", true), pod(1, "r2", true)],
            "r1",
            "r2",
            NOW,
        );
        assert_eq!(
            (
                st["currentRevision"].as_str(),
                st["currentReplicas"].as_i64(),
                st["readyReplicas"].as_i64()
            ),
            (Some("r2"), Some(2), Some(2))
        );
    }
}

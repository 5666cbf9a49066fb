//! The decisions of the workload controllers as pure functions of the objects they read (and the
//! time, passed in): which pods a DaemonSet, StatefulSet or Job creates and deletes next, which
//! revision a pod belongs to, Job back-off and completion indexes. The API server's controllers do
//! the reading and writing around them.

pub mod daemonset;
pub mod disruption;
pub mod history;
pub mod job;
pub mod statefulset;

use serde_json::{Value, json};

use crate::object;
use crate::time::parse_rfc3339;

/// The label that names a pod's (or a revision's) ControllerRevision hash.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// Whether a pod's Ready condition is True.
pub fn pod_ready(p: &Value) -> bool {
    ready_since(p).is_some()
}

/// When the pod's Ready condition became True (`Some(None)` if the time is unknown).
fn ready_since(p: &Value) -> Option<Option<i64>> {
    p.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .map(|c| {
            c.get("lastTransitionTime")
                .and_then(Value::as_str)
                .and_then(parse_rfc3339)
        })
}

/// Seconds until a pod counts as available (Ready for `min_ready` seconds): `Some(0)` when it is,
/// `None` when it is not Ready at all.
pub fn available_in(p: &Value, min_ready: i64, now: i64) -> Option<i64> {
    let since = ready_since(p)?;
    if min_ready <= 0 {
        return Some(0);
    }
    match since {
        Some(t) => Some((t + min_ready - now).max(0)),
        None => Some(min_ready),
    }
}

/// Ready for at least `min_ready` seconds.
pub fn pod_available(p: &Value, min_ready: i64, now: i64) -> bool {
    available_in(p, min_ready, now) == Some(0)
}

pub fn phase(p: &Value) -> &str {
    object::str_at(p, "status.phase").unwrap_or_default()
}

/// Succeeded or Failed: the pod will never run again.
pub fn pod_finished(p: &Value) -> bool {
    matches!(phase(p), "Succeeded" | "Failed")
}

/// Running and Ready, not being deleted (what ordered StatefulSets wait for).
pub fn running_and_ready(p: &Value) -> bool {
    phase(p) == "Running" && pod_ready(p) && !object::is_deleting(p)
}

/// An int-or-percent of `total`, rounded up or down (`GetScaledValueFromIntOrPercent`).
pub fn scaled(v: Option<&Value>, total: i64, default: &Value, round_up: bool) -> i64 {
    match v.unwrap_or(default) {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) => {
                let x = p * total;
                if round_up { (x + 99) / 100 } else { x / 100 }
            }
            None => s.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

/// A controller owner reference to `owner` (`apiVersion`, `kind` given).
pub fn controller_ref(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": object::name(owner),
        "uid": object::uid(owner), "controller": true, "blockOwnerDeletion": true})
}

/// A pod from a template (`tmpl` is a PodTemplateSpec) with extra labels, owned by `owner_ref`.
pub fn pod_from_template(tmpl: &Value, owner_ref: Value, extra_labels: &[(&str, &str)]) -> Value {
    let mut meta = tmpl.get("metadata").cloned().unwrap_or_else(|| json!({}));
    if !meta.is_object() {
        meta = json!({});
    }
    if let Value::Object(m) = &mut meta {
        m.remove("name");
        m.remove("namespace");
        m.remove("generateName");
        let labels = m.entry("labels").or_insert_with(|| json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        for (k, v) in extra_labels {
            labels[*k] = json!(v);
        }
        m.insert("ownerReferences".into(), json!([owner_ref]));
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": tmpl.get("spec").cloned().unwrap_or_else(|| json!({}))})
}

/// The time a finished pod finished: its containers' latest `finishedAt`, else `fallback`.
pub fn finished_at(p: &Value, fallback: i64) -> i64 {
    let at = |path: &str| object::str_at(p, path).and_then(parse_rfc3339);
    ["initContainerStatuses", "containerStatuses"]
        .iter()
        .filter_map(|f| p.pointer(&format!("/status/{f}")).and_then(Value::as_array))
        .flatten()
        .filter_map(|s| {
            s.pointer("/state/terminated/finishedAt")
                .and_then(Value::as_str)
                .and_then(parse_rfc3339)
        })
        .max()
        // A pod that failed without a container's end (evicted, never started): as upstream's
        // getFinishedTime, when it stopped being Ready, else when it was deleted or created. Never
        // "now", or a back-off counted from it would start over at every sync.
        .or_else(|| {
            p.pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready" && c["status"] == "False")
                .and_then(|c| c["lastTransitionTime"].as_str())
                .and_then(parse_rfc3339)
        })
        .or_else(|| at("metadata.deletionTimestamp"))
        .or_else(|| at("metadata.creationTimestamp"))
        .unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_without_a_containers_end_finished_when_it_stopped_being_ready_or_was_created() {
        let evicted = json!({"metadata": {"creationTimestamp": "2023-11-14T22:00:00Z"},
            "status": {"phase": "Failed", "reason": "Evicted",
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2023-11-14T22:13:10Z"}]}});
        assert_eq!(finished_at(&evicted, 1), 1_699_999_990);
        let bare = json!({"metadata": {"creationTimestamp": "2023-11-14T22:13:10Z"}, "status": {"phase": "Failed"}});
        assert_eq!(finished_at(&bare, 1), 1_699_999_990);
        assert_eq!(finished_at(&json!({}), 7), 7);
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2023-11-14T22:13:10Z"}]}});
        let t = 1_700_000_000; // 22:13:20
        assert_eq!(available_in(&p, 0, t), Some(0));
        assert_eq!(available_in(&p, 5, t), Some(0));
        assert_eq!(available_in(&p, 30, t), Some(20));
        assert!(!pod_available(&p, 30, t));
        assert!(running_and_ready(&p));
        let not_ready = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}});
        assert_eq!(available_in(&not_ready, 0, t), None);
        assert_eq!(scaled(None, 3, &json!("25%"), true), 1);
        assert_eq!(scaled(Some(&json!("50%")), 5, &json!(1), false), 2);
    }
}

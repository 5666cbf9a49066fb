//! Jobs: the pods a Job makes (Indexed ones carry their completion index), completed indexes as
//! the status writes them (`0-2,5`), the exponential back-off between failed pods, and the
//! restart-count limit of `restartPolicy: OnFailure`. Mirrors kube's job controller.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{controller_ref, finished_at, pod_from_template};
use crate::object;

/// The finalizer that keeps a Job's pod until the Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// Annotation (and label) holding an Indexed Job pod's index.
pub const INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// The environment variable an Indexed Job's containers read their index from.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// The first retry waits 10 s, each further one twice as long, up to 6 minutes.
pub const BACKOFF_BASE: i64 = 10;
pub const BACKOFF_MAX: i64 = 360;

pub fn indexed(job: &Value) -> bool {
    object::str_at(job, "spec.completionMode") == Some("Indexed")
}

/// A pod's completion index (Indexed Jobs).
pub fn index_of(pod: &Value) -> Option<i64> {
    pod.pointer("/metadata/annotations")
        .and_then(|a| a.get(INDEX_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .filter(|i: &i64| *i >= 0)
}

/// A new pod of `job` (with its completion `index` for Indexed Jobs).
pub fn new_pod(job: &Value, index: Option<i64>) -> Value {
    let tmpl = job
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let idx = index.map(|i| i.to_string());
    let extra: Vec<(&str, &str)> = idx
        .as_deref()
        .map(|i| vec![(INDEX_ANNOTATION, i)])
        .unwrap_or_default();
    let mut pod = pod_from_template(&tmpl, controller_ref(job, "batch/v1", "Job"), &extra);
    let name = object::name(job);
    pod["metadata"]["finalizers"] = json!([TRACKING_FINALIZER]);
    match &idx {
        None => pod["metadata"]["generateName"] = json!(format!("{name}-")),
        Some(i) => {
            pod["metadata"]["generateName"] = json!(format!("{name}-{i}-"));
            if !pod["metadata"]
                .get("annotations")
                .is_some_and(Value::is_object)
            {
                pod["metadata"]["annotations"] = json!({});
            }
            pod["metadata"]["annotations"][INDEX_ANNOTATION] = json!(i);
            if !pod["spec"].is_object() {
                pod["spec"] = json!({});
            }
            // a stable host name per index (<job>-<index>), as upstream sets it
            pod["spec"]["hostname"] = json!(format!("{name}-{i}"));
            let env = json!({"name": INDEX_ENV, "valueFrom": {"fieldRef": {
                "fieldPath": format!("metadata.annotations['{INDEX_ANNOTATION}']")}}});
            for list in ["initContainers", "containers"] {
                if let Some(Value::Array(cs)) = pod["spec"].get_mut(list) {
                    for c in cs {
                        if !c.get("env").is_some_and(Value::is_array) {
                            c["env"] = json!([]);
                        }
                        c["env"].as_array_mut().expect("array").push(env.clone());
                    }
                }
            }
        }
    }
    pod
}

/// Parses `status.completedIndexes` (`1,3-5`).
pub fn parse_indexes(s: &str) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i64>(), b.parse::<i64>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(i) = part.parse() {
                    out.insert(i);
                }
            }
        }
    }
    out
}

/// Writes a set of indexes as `status.completedIndexes` does: ranges of three or more joined by `-`.
pub fn format_indexes(set: &BTreeSet<i64>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last = iter.next().expect("peeked");
        }
        match last - first {
            0 => parts.push(first.to_string()),
            1 => {
                parts.push(first.to_string());
                parts.push(last.to_string());
            }
            _ => parts.push(format!("{first}-{last}")),
        }
    }
    parts.join(",")
}

/// The indexes a new pod is needed for: not completed, not held by an active pod; lowest first,
/// at most `room`.
pub fn indexes_to_start(
    completions: i64,
    completed: &BTreeSet<i64>,
    active: &BTreeSet<i64>,
    room: usize,
) -> Vec<i64> {
    (0..completions)
        .filter(|i| !completed.contains(i) && !active.contains(i))
        .take(room)
        .collect()
}

/// Seconds to wait before the next pod may start: 10 s after the first failure since the last
/// success, doubling with each further one (at most 6 minutes), counted from the last failure.
pub fn backoff_remaining(finished: &[Value], now: i64) -> i64 {
    let mut events: Vec<(i64, bool)> = finished
        .iter()
        .map(|p| (finished_at(p, now), super::phase(p) == "Failed"))
        .collect();
    events.sort();
    let last_success = events.iter().rposition(|(_, failed)| !failed);
    let failures: Vec<i64> = events[last_success.map_or(0, |i| i + 1)..]
        .iter()
        .map(|(t, _)| *t)
        .collect();
    let Some(last_failure) = failures.last() else {
        return 0;
    };
    let mut delay = BACKOFF_BASE;
    for _ in 1..failures.len() {
        delay = (delay * 2).min(BACKOFF_MAX);
    }
    (last_failure + delay - now).max(0)
}

/// restartPolicy OnFailure restarts containers in place: their restarts count against the
/// backoffLimit (kube's `pastBackoffLimitOnFailure`).
pub fn restarts_past_limit(job: &Value, active: &[&Value]) -> bool {
    if object::str_at(job, "spec.template.spec.restartPolicy") != Some("OnFailure") {
        return false;
    }
    let limit = object::i64_at(job, "spec.backoffLimit").unwrap_or(6);
    let restarts: i64 = active
        .iter()
        .flat_map(|p| {
            ["initContainerStatuses", "containerStatuses"]
                .iter()
                .filter_map(|f| p.pointer(&format!("/status/{f}")).and_then(Value::as_array))
                .flatten()
        })
        .filter_map(|s| s.get("restartCount").and_then(Value::as_i64))
        .sum();
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(phase: &str, at: &str) -> Value {
        json!({"status": {"phase": phase, "containerStatuses": [{"state": {"terminated": {"finishedAt": at}}}]}})
    }

    #[test]
    fn index_sets_round_trip() {
        let s = parse_indexes("0-2,5,7,8");
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), [0, 1, 2, 5, 7, 8]);
        assert_eq!(format_indexes(&s), "0-2,5,7,8");
        assert_eq!(format_indexes(&BTreeSet::new()), "");
        let active: BTreeSet<i64> = [3].into();
        assert_eq!(
            indexes_to_start(6, &parse_indexes("0,1"), &active, 2),
            [2, 4]
        );
    }

    #[test]
    fn backoff_doubles_after_each_failure_and_resets_after_a_success() {
        let t0 = 1_700_000_000; // 2023-11-14T22:13:20Z
        assert_eq!(backoff_remaining(&[], t0), 0);
        let one = [finished("Failed", "2023-11-14T22:13:20Z")];
        assert_eq!(backoff_remaining(&one, t0), 10);
        assert_eq!(backoff_remaining(&one, t0 + 4), 6);
        let two = [
            finished("Failed", "2023-11-14T22:13:00Z"),
            finished("Failed", "2023-11-14T22:13:20Z"),
        ];
        assert_eq!(backoff_remaining(&two, t0), 20);
        let after_success = [
            finished("Failed", "2023-11-14T22:12:00Z"),
            finished("Succeeded", "2023-11-14T22:13:00Z"),
            finished("Failed", "2023-11-14T22:13:20Z"),
        ];
        assert_eq!(backoff_remaining(&after_success, t0), 10);
        let many: Vec<Value> = (0..10)
            .map(|i| finished("Failed", &format!("2023-11-14T22:13:{:02}Z", i + 10)))
            .collect();
        assert_eq!(backoff_remaining(&many, 1_700_000_000 - 1), BACKOFF_MAX);
    }

    #[test]
    fn indexed_pods_know_their_index() {
        let job = json!({"metadata": {"name": "work", "uid": "u"}, "spec": {"completionMode": "Indexed",
            "template": {"metadata": {"labels": {"job-name": "work"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}});
        let p = new_pod(&job, Some(3));
        assert_eq!(p["metadata"]["generateName"], "work-3-");
        assert_eq!(p["metadata"]["annotations"][INDEX_ANNOTATION], "3");
        assert_eq!(p["metadata"]["labels"][INDEX_ANNOTATION], "3");
        assert_eq!(p["metadata"]["finalizers"], json!([TRACKING_FINALIZER]));
        assert_eq!(p["spec"]["hostname"], "work-3");
        assert_eq!(
            p["spec"]["containers"][0]["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
        assert_eq!(index_of(&p), Some(3));
        let plain = new_pod(&json!({"metadata": {"name": "pi"}, "spec": {}}), None);
        assert_eq!(plain["metadata"]["generateName"], "pi-");
    }

    #[test]
    fn on_failure_restarts_count() {
        let job = |limit: i64| json!({"spec": {"backoffLimit": limit, "template": {"spec": {"restartPolicy": "OnFailure"}}}});
        let p = json!({"status": {"containerStatuses": [{"restartCount": 2}]}});
        assert!(restarts_past_limit(&job(2), &[&p]));
        assert!(!restarts_past_limit(&job(3), &[&p]));
        assert!(restarts_past_limit(&job(0), &[&p]));
    }
}

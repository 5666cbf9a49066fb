//! Taints and tolerations, as `v1.Toleration.ToleratesTaint` and the TaintToleration plugin read them.

use serde_json::Value;

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Whether one toleration tolerates one taint.
pub fn toleration_tolerates(t: &Value, taint: &Value) -> bool {
    let effect = s(t, "effect");
    if !effect.is_empty() && effect != s(taint, "effect") {
        return false;
    }
    let key = s(t, "key");
    if !key.is_empty() && key != s(taint, "key") {
        return false;
    }
    match s(t, "operator") {
        "" | "Equal" => s(t, "value") == s(taint, "value"),
        "Exists" => true,
        _ => false,
    }
}

/// The pod's tolerations.
pub fn tolerations(pod: &Value) -> &[Value] {
    pod.pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Whether any of `tols` tolerates `taint`.
pub fn tolerated(tols: &[Value], taint: &Value) -> bool {
    tols.iter().any(|t| toleration_tolerates(t, taint))
}

/// A node's taints.
pub fn taints(node: &Value) -> &[Value] {
    node.pointer("/spec/taints")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The first NoSchedule or NoExecute taint of the node the pod does not tolerate (PreferNoSchedule
/// only weighs in scoring).
pub fn first_untolerated<'a>(pod: &Value, node: &'a Value) -> Option<&'a Value> {
    let tols = tolerations(pod);
    taints(node)
        .iter()
        .find(|t| matches!(s(t, "effect"), "NoSchedule" | "NoExecute") && !tolerated(tols, t))
}

/// How many PreferNoSchedule taints of the node the pod does not tolerate (lower is better).
pub fn untolerated_prefer_no_schedule(pod: &Value, node: &Value) -> usize {
    let tols = tolerations(pod);
    taints(node)
        .iter()
        .filter(|t| s(t, "effect") == "PreferNoSchedule" && !tolerated(tols, t))
        .count()
}

/// When a pod on a node must go because of the node's NoExecute taints, as the taint eviction
/// controller decides: `None` if it may stay (no NoExecute taint, or every one tolerated forever);
/// otherwise the Unix time to delete it at: at once (`since`) if a taint is not tolerated, else the
/// earliest `timeAdded` of the taints plus the smallest `tolerationSeconds` of the tolerations used.
pub fn eviction_time(pod: &Value, node: &Value, now: i64) -> Option<i64> {
    let no_execute: Vec<&Value> = taints(node)
        .iter()
        .filter(|t| s(t, "effect") == "NoExecute")
        .collect();
    if no_execute.is_empty() {
        return None;
    }
    let tols = tolerations(pod);
    let since = no_execute
        .iter()
        .filter_map(|t| crate::time::parse_rfc3339(s(t, "timeAdded")))
        .min()
        .unwrap_or(now);
    let mut min_secs: Option<i64> = None;
    for taint in &no_execute {
        let used: Vec<&Value> = tols
            .iter()
            .filter(|t| toleration_tolerates(t, taint))
            .collect();
        if used.is_empty() {
            return Some(since.min(now));
        }
        for t in used {
            if let Some(secs) = t.get("tolerationSeconds").and_then(Value::as_i64) {
                min_secs = Some(min_secs.map_or(secs, |m| m.min(secs)));
            }
        }
    }
    min_secs.map(|secs| since + secs.max(0))
}

/// `{key: value}` as kube-scheduler prints an untolerated taint.
pub fn describe(taint: &Value) -> String {
    format!("{{{}: {}}}", s(taint, "key"), s(taint, "value"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn toleration_rules() {
        let taint = json!({"key": "k", "value": "v", "effect": "NoSchedule"});
        for (tol, ok) in [
            (json!({"key": "k", "operator": "Equal", "value": "v"}), true),
            (
                json!({"key": "k", "value": "v", "effect": "NoSchedule"}),
                true,
            ),
            (json!({"key": "k", "value": "other"}), false),
            (json!({"key": "k", "operator": "Exists"}), true),
            (
                json!({"key": "k", "operator": "Exists", "effect": "NoExecute"}),
                false,
            ),
            (json!({"operator": "Exists"}), true),
            (json!({"key": "other", "operator": "Exists"}), false),
            (json!({"key": "k", "operator": "Lt", "value": "v"}), false),
        ] {
            assert_eq!(toleration_tolerates(&tol, &taint), ok, "{tol}");
        }
    }

    #[test]
    fn no_execute_eviction() {
        let now = 1_767_225_600; // 2026-01-01T00:00:00Z
        let node = json!({"spec": {"taints": [
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
        ]}});
        let defaults = json!({"spec": {"tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        ]}});
        assert_eq!(eviction_time(&defaults, &node, now + 10), Some(now + 300));
        assert_eq!(
            eviction_time(&json!({"spec": {}}), &node, now + 10),
            Some(now)
        );
        let forever = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        assert_eq!(eviction_time(&forever, &node, now), None);
        assert_eq!(eviction_time(&defaults, &json!({"spec": {}}), now), None);
    }

    #[test]
    fn first_untolerated_skips_prefer_no_schedule() {
        let node = json!({"spec": {"taints": [
            {"key": "soft", "effect": "PreferNoSchedule"},
            {"key": "a", "value": "1", "effect": "NoExecute"},
            {"key": "b", "effect": "NoSchedule"},
        ]}});
        let pod = json!({"spec": {"tolerations": [{"key": "a", "operator": "Exists"}]}});
        let t = first_untolerated(&pod, &node).unwrap();
        assert_eq!(describe(t), "{b: }");
        assert_eq!(untolerated_prefer_no_schedule(&pod, &node), 1);
        let all = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        assert!(first_untolerated(&all, &node).is_none());
    }
}

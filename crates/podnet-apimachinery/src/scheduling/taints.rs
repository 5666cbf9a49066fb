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

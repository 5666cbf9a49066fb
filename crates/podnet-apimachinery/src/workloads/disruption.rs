//! PodDisruptionBudget status, as the disruption controller computes it: how many of the pods a budget
//! selects are healthy, how many must be, and so how many may be disrupted now.

use serde_json::{Value, json};

use super::{pod_ready, scaled};
use crate::object;

/// The counts of a budget's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub expected: i64,
    pub current_healthy: i64,
    pub desired_healthy: i64,
    pub disruptions_allowed: i64,
}

/// The budget's counts over the `pods` its selector matches. `expected_scale` is the sum of the
/// replicas of the controllers owning them, `None` when a pod has no controller with a scale (then
/// a percentage or maxUnavailable cannot be computed and, like Kubernetes, nothing may be disrupted).
pub fn counts(pdb: &Value, pods: &[&Value], expected_scale: Option<i64>) -> Counts {
    let live: Vec<&&Value> = pods.iter().filter(|p| !object::is_deleting(p)).collect();
    let current_healthy = live.iter().filter(|p| pod_ready(p)).count() as i64;
    let min = pdb.pointer("/spec/minAvailable");
    let max = pdb.pointer("/spec/maxUnavailable");
    let (expected, desired) = match (min, max, expected_scale) {
        // an integer minAvailable needs no controller: the pods present are what is expected
        (Some(Value::Number(n)), _, _) => (live.len() as i64, n.as_i64().unwrap_or(0)),
        (Some(m), _, Some(scale)) => (scale, scaled(Some(m), scale, &json!(0), true)),
        (None, Some(m), Some(scale)) => (
            scale,
            (scale - scaled(Some(m), scale, &json!(0), true)).max(0),
        ),
        (None, None, Some(scale)) => (scale, scale),
        (_, _, None) => {
            return Counts {
                expected: 0,
                current_healthy,
                desired_healthy: 0,
                disruptions_allowed: 0,
            };
        }
    };
    Counts {
        expected,
        current_healthy,
        desired_healthy: desired,
        disruptions_allowed: (current_healthy - desired).max(0),
    }
}

/// The budget's `status`, keeping the condition's transition time when its status is unchanged.
pub fn status(pdb: &Value, c: Counts, now: &str) -> Value {
    let allowed = c.disruptions_allowed > 0;
    let previous = pdb
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "DisruptionAllowed"));
    let status = if allowed { "True" } else { "False" };
    let since = match previous {
        Some(p) if p["status"] == status => p["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    let generation = object::i64_at(pdb, "metadata.generation").unwrap_or(1);
    json!({
        "observedGeneration": generation,
        "disruptionsAllowed": c.disruptions_allowed,
        "currentHealthy": c.current_healthy,
        "desiredHealthy": c.desired_healthy,
        "expectedPods": c.expected,
        "conditions": [{
            "type": "DisruptionAllowed", "status": status,
            "reason": if allowed { "SufficientPods" } else { "InsufficientPods" },
            "message": "", "observedGeneration": generation, "lastTransitionTime": since,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ready: bool) -> Value {
        json!({"status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    #[test]
    fn min_available_and_max_unavailable() {
        let (r, n) = (pod(true), pod(false));
        let pods = [&r, &r, &r, &n];
        let pdb = |spec: Value| json!({"spec": spec});
        let c = counts(&pdb(json!({"minAvailable": 2})), &pods, None);
        assert_eq!(
            c,
            Counts {
                expected: 4,
                current_healthy: 3,
                desired_healthy: 2,
                disruptions_allowed: 1
            }
        );
        let c = counts(&pdb(json!({"minAvailable": "50%"})), &pods, Some(4));
        assert_eq!((c.desired_healthy, c.disruptions_allowed), (2, 1));
        let c = counts(&pdb(json!({"maxUnavailable": 1})), &pods, Some(4));
        assert_eq!((c.desired_healthy, c.disruptions_allowed), (3, 0));
        // 25% of 3 rounds up to one pod that may be unavailable
        let c = counts(
            &pdb(json!({"maxUnavailable": "25%"})),
            &[&r, &r, &r],
            Some(3),
        );
        assert_eq!((c.desired_healthy, c.disruptions_allowed), (2, 1));
        // no controller to scale from: nothing may be disrupted
        let c = counts(&pdb(json!({"maxUnavailable": 1})), &pods, None);
        assert_eq!(c.disruptions_allowed, 0);
        let s = status(&pdb(json!({})), c, "2026-01-01T00:00:00Z");
        assert_eq!(s["conditions"][0]["reason"], "InsufficientPods");
    }
}

//! ResourceQuota accounting as Kubernetes' quota evaluators do it: what an object uses of a quota
//! (object counts, `count/<resource>`, a pod's cpu and memory requests and limits, a Service's node
//! ports), the usage of a namespace, and the admission decision with kube-apiserver's wording. Amounts
//! are thousandths of the unit, as the scheduler's.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::scheduling::quantity::parse_milli;
use crate::scheduling::resources::pod_requests;

/// Amounts per quota resource name (`pods`, `requests.cpu`, `count/deployments.apps`), in thousandths.
pub type Usage = BTreeMap<String, i128>;

const UNIT: i128 = 1000;
const COMPUTE: &[&str] = &["cpu", "memory", "ephemeral-storage"];

/// Whether a pod no longer uses quota: finished, or being deleted.
fn released(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    ) || pod.pointer("/metadata/deletionTimestamp").is_some()
}

fn pod_limits(pod: &Value) -> Usage {
    let mut out = Usage::new();
    for c in pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(m) = c.pointer("/resources/limits").and_then(Value::as_object) {
            for (k, v) in m {
                if let Some(q) = v.as_str().and_then(parse_milli) {
                    *out.entry(k.clone()).or_insert(0) += q;
                }
            }
        }
    }
    out
}

/// What one object of `plural` in `group` uses.
pub fn usage_of(group: &str, plural: &str, obj: &Value) -> Usage {
    let mut u = Usage::new();
    let count = if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    };
    if group.is_empty() && plural == "pods" && released(obj) {
        return u;
    }
    u.insert(count, UNIT);
    if !group.is_empty() {
        return u;
    }
    match plural {
        "pods" => {
            u.insert("pods".into(), UNIT);
            for (k, v) in pod_requests(obj) {
                if COMPUTE.contains(&k.as_str()) {
                    u.insert(k.clone(), v);
                    u.insert(format!("requests.{k}"), v);
                }
            }
            for (k, v) in pod_limits(obj) {
                if COMPUTE.contains(&k.as_str()) {
                    u.insert(format!("limits.{k}"), v);
                }
            }
        }
        "services" => {
            u.insert("services".into(), UNIT);
            let ty = obj.pointer("/spec/type").and_then(Value::as_str);
            let ports = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map_or(0, Vec::len) as i128;
            if matches!(ty, Some("NodePort" | "LoadBalancer")) {
                u.insert("services.nodeports".into(), ports * UNIT);
            }
            if ty == Some("LoadBalancer") {
                u.insert("services.loadbalancers".into(), UNIT);
            }
        }
        "configmaps"
        | "secrets"
        | "persistentvolumeclaims"
        | "replicationcontrollers"
        | "resourcequotas" => {
            u.insert(plural.into(), UNIT);
        }
        _ => {}
    }
    u
}

/// The sum of usages.
pub fn sum<'a>(usages: impl IntoIterator<Item = &'a Usage>) -> Usage {
    let mut out = Usage::new();
    for u in usages {
        for (k, v) in u {
            *out.entry(k.clone()).or_insert(0) += v;
        }
    }
    out
}

/// A quota's `spec.hard` (or `status.hard`) as amounts.
pub fn hard_of(quota: &Value, field: &str) -> Usage {
    quota
        .pointer(&format!("/{field}/hard"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), parse_milli(v.as_str()?)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// An amount as a quantity string (`500m`, `2`, `128Mi`).
pub fn format(resource: &str, milli: i128) -> String {
    if milli % UNIT != 0 {
        return format!("{milli}m");
    }
    let n = milli / UNIT;
    if resource.contains("memory") || resource.contains("storage") {
        for (suffix, shift) in [("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)] {
            let unit = 1i128 << shift;
            if n != 0 && n % unit == 0 {
                return format!("{}{suffix}", n / unit);
            }
        }
    }
    n.to_string()
}

fn list(resources: &[&String], of: &Usage) -> String {
    resources
        .iter()
        .map(|r| format!("{r}={}", format(r, of.get(*r).copied().unwrap_or(0))))
        .collect::<Vec<_>>()
        .join(",")
}

/// Admission of a new object using `delta` in a namespace where the quota `name` with `hard` has
/// `used`: `Err` with kube-apiserver's message (`exceeded quota: q, requested: pods=1, used:
/// pods=2, limited: pods=2`) when a tracked resource would go over.
pub fn admit(name: &str, hard: &Usage, used: &Usage, delta: &Usage) -> Result<(), String> {
    let over: Vec<&String> = hard
        .iter()
        .filter(|(k, h)| {
            let d = delta.get(*k).copied().unwrap_or(0);
            d > 0 && used.get(*k).copied().unwrap_or(0) + d > **h
        })
        .map(|(k, _)| k)
        .collect();
    if over.is_empty() {
        return Ok(());
    }
    Err(format!(
        "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
        list(&over, delta),
        list(&over, used),
        list(&over, hard)
    ))
}

/// The compute resources a quota tracks that a pod's containers must all state (a quota on
/// `requests.cpu` needs every container's cpu request): `Err("must specify ...")` as Kubernetes
/// words it.
pub fn missing_compute(hard: &Usage, pod: &Value) -> Result<(), String> {
    let containers: Vec<&Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut missing = Vec::new();
    for key in hard.keys() {
        let (part, res) = match key.split_once('.') {
            Some(("requests", r)) => ("requests", r),
            Some(("limits", r)) => ("limits", r),
            None if COMPUTE.contains(&key.as_str()) => ("requests", key.as_str()),
            _ => continue,
        };
        if !COMPUTE.contains(&res) {
            continue;
        }
        let lacking: Vec<&str> = containers
            .iter()
            .filter(|c| {
                // a limit alone also sets the request (the API server defaults it)
                let has = |p: &str| c.pointer(&format!("/resources/{p}/{res}")).is_some();
                !(has(part) || (part == "requests" && has("limits")))
            })
            .filter_map(|c| c.get("name").and_then(Value::as_str))
            .collect();
        if !lacking.is_empty() {
            missing.push(format!("{key} for: {}", lacking.join(",")));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("must specify {}", missing.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(cpu: &str, mem_limit: &str) -> Value {
        json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}, "limits": {"memory": mem_limit}}}]}})
    }

    #[test]
    fn usage_of_pods_services_and_counts() {
        let u = usage_of("", "pods", &pod("250m", "128Mi"));
        assert_eq!(u["pods"], 1000);
        assert_eq!(u["count/pods"], 1000);
        assert_eq!(u["requests.cpu"], 250);
        assert_eq!(u["cpu"], 250);
        assert_eq!(u["limits.memory"], 128 * 1024 * 1024 * 1000);
        // a memory limit is also the request
        assert_eq!(u["requests.memory"], 128 * 1024 * 1024 * 1000);
        let mut done = pod("1", "1Gi");
        done["status"] = json!({"phase": "Succeeded"});
        assert!(usage_of("", "pods", &done).is_empty());
        let svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}});
        let u = usage_of("", "services", &svc);
        assert_eq!((u["services"], u["services.nodeports"]), (1000, 2000));
        assert_eq!(
            usage_of("apps", "deployments", &json!({}))["count/deployments.apps"],
            1000
        );
    }

    #[test]
    fn admission_and_its_messages() {
        let hard: Usage = [
            ("pods".to_string(), 2000),
            ("requests.cpu".to_string(), 1000),
        ]
        .into();
        let used: Usage = [
            ("pods".to_string(), 2000),
            ("requests.cpu".to_string(), 500),
        ]
        .into();
        let delta = usage_of("", "pods", &pod("250m", "1Gi"));
        assert_eq!(
            admit("compute", &hard, &used, &delta).unwrap_err(),
            "exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2"
        );
        let used: Usage = [
            ("pods".to_string(), 1000),
            ("requests.cpu".to_string(), 900),
        ]
        .into();
        assert_eq!(
            admit("compute", &hard, &used, &delta).unwrap_err(),
            "exceeded quota: compute, requested: requests.cpu=250m, used: requests.cpu=900m, limited: requests.cpu=1"
        );
        let used: Usage = [
            ("pods".to_string(), 1000),
            ("requests.cpu".to_string(), 750),
        ]
        .into();
        assert!(admit("compute", &hard, &used, &delta).is_ok());
        let hard: Usage = [
            ("limits.cpu".to_string(), 1000),
            ("requests.memory".to_string(), 1000),
        ]
        .into();
        assert_eq!(
            missing_compute(&hard, &pod("1", "1Gi")).unwrap_err(),
            "must specify limits.cpu for: c"
        );
        assert_eq!(format("memory", 128 * 1024 * 1024 * 1000), "128Mi");
        assert_eq!(format("requests.cpu", 1500), "1500m");
    }
}

//! Resource requests of pods and what is left on a node, as the NodeResourcesFit plugin computes them.

use std::collections::BTreeMap;

use serde_json::Value;

use super::quantity::parse_milli;

/// Amounts per resource name, in thousandths of the unit (cpu in millicores, memory in milli-bytes).
pub type Amounts = BTreeMap<String, i128>;

fn add(into: &mut Amounts, from: &Amounts) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(0) += v;
    }
}

fn max_into(into: &mut Amounts, from: &Amounts) {
    for (k, v) in from {
        let e = into.entry(k.clone()).or_insert(0);
        *e = (*e).max(*v);
    }
}

/// A container's requests; a resource with only a limit requests its limit (the API server defaults
/// requests from limits).
fn container_requests(c: &Value) -> Amounts {
    let mut out = Amounts::new();
    for part in ["limits", "requests"] {
        if let Some(m) = c
            .pointer(&format!("/resources/{part}"))
            .and_then(Value::as_object)
        {
            for (k, v) in m {
                if let Some(q) = v
                    .as_str()
                    .and_then(parse_milli)
                    .or_else(|| v.as_i64().map(|n| i128::from(n) * 1000))
                {
                    out.insert(k.clone(), q);
                }
            }
        }
    }
    out
}

fn list<'a>(pod: &'a Value, field: &str) -> &'a [Value] {
    pod.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// What a pod requests: the larger of its containers' sum (plus sidecars) and its peak during init
/// (each init container with the sidecars started before it), plus the pod overhead.
pub fn pod_requests(pod: &Value) -> Amounts {
    let mut regular = Amounts::new();
    for c in list(pod, "containers") {
        add(&mut regular, &container_requests(c));
    }
    let mut sidecars = Amounts::new();
    let mut init_peak = Amounts::new();
    for c in list(pod, "initContainers") {
        let r = container_requests(c);
        if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            add(&mut sidecars, &r);
            max_into(&mut init_peak, &sidecars);
        } else {
            let mut during = r;
            add(&mut during, &sidecars);
            max_into(&mut init_peak, &during);
        }
    }
    add(&mut regular, &sidecars);
    max_into(&mut regular, &init_peak);
    if let Some(m) = pod.pointer("/spec/overhead").and_then(Value::as_object) {
        let mut o = Amounts::new();
        for (k, v) in m {
            if let Some(q) = v.as_str().and_then(parse_milli) {
                o.insert(k.clone(), q);
            }
        }
        add(&mut regular, &o);
    }
    regular.retain(|_, v| *v != 0);
    regular
}

/// The node's allocatable resources (its capacity when it reports no allocatable).
pub fn allocatable(node: &Value) -> Amounts {
    let m = node
        .pointer("/status/allocatable")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .or_else(|| node.pointer("/status/capacity").and_then(Value::as_object));
    let mut out = Amounts::new();
    for (k, v) in m.into_iter().flatten() {
        if let Some(q) = v.as_str().and_then(parse_milli) {
            out.insert(k.clone(), q);
        }
    }
    out
}

/// What the pods already on a node request, and how many they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeUsage {
    pub requested: Amounts,
    pub pods: usize,
    /// cpu and memory with the non-zero defaults (for scoring only).
    pub nonzero: [i128; 2],
}

/// The scheduler's defaults for pods that request no cpu / memory when it scores nodes.
const NONZERO_DEFAULTS: [(&str, i128); 2] =
    [("cpu", 100 * 1000), ("memory", 200 * 1024 * 1024 * 1000)];

fn nonzero(req: &Amounts) -> [i128; 2] {
    NONZERO_DEFAULTS
        .map(|(name, default)| req.get(name).copied().filter(|v| *v > 0).unwrap_or(default))
}

impl NodeUsage {
    pub fn add_pod(&mut self, pod: &Value) {
        let req = pod_requests(pod);
        let nz = nonzero(&req);
        self.nonzero[0] += nz[0];
        self.nonzero[1] += nz[1];
        add(&mut self.requested, &req);
        self.pods += 1;
    }
}

/// The NodeResourcesFit reasons (`Too many pods`, `Insufficient cpu`, ...) why the pod does not fit;
/// empty when it fits.
pub fn insufficient(pod_req: &Amounts, alloc: &Amounts, used: &NodeUsage) -> Vec<String> {
    let mut reasons = Vec::new();
    let allowed_pods = alloc.get("pods").copied().unwrap_or(0) / 1000;
    if used.pods as i128 + 1 > allowed_pods {
        reasons.push("Too many pods".to_string());
    }
    for (name, want) in pod_req {
        if name == "pods" || *want <= 0 {
            continue;
        }
        let have = alloc.get(name).copied().unwrap_or(0);
        let taken = used.requested.get(name).copied().unwrap_or(0);
        if *want > have - taken {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    reasons
}

/// How full the node would be with the pod, in thousandths, averaged over cpu and memory (the
/// LeastAllocated score, inverted). Pods that request nothing count as 100m cpu and 200Mi memory, as
/// the scheduler's non-zero defaults do, so that best-effort pods still spread.
pub fn fullness(pod_req: &Amounts, alloc: &Amounts, used: &NodeUsage) -> i128 {
    let want = nonzero(pod_req);
    let mut total = 0;
    for (i, (name, _)) in NONZERO_DEFAULTS.iter().enumerate() {
        let have = alloc.get(*name).copied().unwrap_or(0);
        total += if have <= 0 {
            1000
        } else {
            ((used.nonzero[i] + want[i]) * 1000 / have).min(1000)
        };
    }
    total / 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn amounts(pairs: &[(&str, i128)]) -> Amounts {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn pod_requests_sum_containers_and_take_the_init_peak() {
        let pod = json!({"spec": {
            "containers": [
                {"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"resources": {"limits": {"cpu": "200m"}}},
            ],
            "initContainers": [
                {"resources": {"requests": {"cpu": "1", "memory": "1Mi"}}},
                {"restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}},
            ],
            "overhead": {"cpu": "10m"},
        }});
        let r = pod_requests(&pod);
        // containers 300m + sidecar 50m = 350m < init peak 1000m; +10m overhead
        assert_eq!(r["cpu"], 1010);
        assert_eq!(r["memory"], 64 * 1024 * 1024 * 1000);
        assert!(pod_requests(&json!({"spec": {"containers": [{}]}})).is_empty());
    }

    #[test]
    fn fit_reasons() {
        let alloc = amounts(&[("cpu", 2000), ("memory", 1000 * 1000), ("pods", 2000)]);
        let mut used = NodeUsage::default();
        used.add_pod(
            &json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1500m"}}}]}}),
        );
        let want = amounts(&[("cpu", 600), ("memory", 10)]);
        assert_eq!(insufficient(&want, &alloc, &used), ["Insufficient cpu"]);
        assert!(insufficient(&amounts(&[("cpu", 500)]), &alloc, &used).is_empty());
        used.add_pod(&json!({"spec": {}}));
        assert_eq!(
            insufficient(
                &amounts(&[("cpu", 500), ("nvidia.com/gpu", 1000)]),
                &alloc,
                &used
            ),
            ["Too many pods", "Insufficient nvidia.com/gpu"]
        );
        // a node that reports nothing takes no pods
        assert_eq!(
            insufficient(&Amounts::new(), &Amounts::new(), &NodeUsage::default()),
            ["Too many pods"]
        );
    }

    #[test]
    fn fullness_grows_with_load() {
        let alloc = amounts(&[("cpu", 4000), ("memory", 8 * 1024 * 1024 * 1024 * 1000)]);
        let empty = NodeUsage::default();
        let mut busy = NodeUsage::default();
        busy.add_pod(&json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "2"}}}]}}));
        assert!(
            fullness(&Amounts::new(), &alloc, &empty) < fullness(&Amounts::new(), &alloc, &busy)
        );
    }
}

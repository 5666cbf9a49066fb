//! Required inter-pod affinity and anti-affinity, as the InterPodAffinity plugin evaluates them:
//! the incoming pod's affinity terms, its anti-affinity terms, and the anti-affinity terms of the pods
//! already placed (symmetry).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::selector::LabelSelector;

/// A `PodAffinityTerm`, resolved against the pod that carries it.
#[derive(Debug, Clone)]
pub struct Term {
    selector: LabelSelector,
    namespaces: HashSet<String>,
    namespace_selector: LabelSelector,
    pub topology_key: String,
}

impl Term {
    /// `owner_ns` is the namespace of the pod carrying the term: with neither `namespaces` nor a
    /// `namespaceSelector` the term looks at that namespace only. A term whose selectors do not parse
    /// selects nothing.
    fn parse(t: &Value, owner_ns: &str) -> Term {
        let nothing = || LabelSelector::from_object(None).expect("nothing");
        let selector = LabelSelector::from_object(t.get("labelSelector").filter(|v| !v.is_null()))
            .unwrap_or_else(|_| nothing());
        let ns_sel = t.get("namespaceSelector").filter(|v| !v.is_null());
        let mut namespaces: HashSet<String> = t
            .get("namespaces")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        if namespaces.is_empty() && ns_sel.is_none() {
            namespaces.insert(owner_ns.to_string());
        }
        Term {
            selector,
            namespaces,
            namespace_selector: LabelSelector::from_object(ns_sel).unwrap_or_else(|_| nothing()),
            topology_key: t
                .get("topologyKey")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        }
    }

    /// Whether `pod` (whose namespace has `ns_labels`) is selected by the term.
    pub fn matches(&self, pod: &Value, ns_labels: &Map<String, Value>) -> bool {
        let ns = pod
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        (self.namespaces.contains(ns) || self.namespace_selector.matches_map(ns_labels))
            && self
                .selector
                .matches(pod.pointer("/metadata/labels").and_then(Value::as_object))
    }
}

/// The required terms of `kind` (`podAffinity` / `podAntiAffinity`) of a pod.
pub fn required_terms(pod: &Value, kind: &str) -> Vec<Term> {
    let ns = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    pod.pointer(&format!(
        "/spec/affinity/{kind}/requiredDuringSchedulingIgnoredDuringExecution"
    ))
    .and_then(Value::as_array)
    .map(|a| a.iter().map(|t| Term::parse(t, ns)).collect())
    .unwrap_or_default()
}

/// Which InterPodAffinity rule a node breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    Affinity,
    AntiAffinity,
    ExistingAntiAffinity,
}

type Pair = (String, String);

/// What the plugin's PreFilter computes once per pod: topology pairs where matching pods run.
#[derive(Debug, Default)]
pub struct State {
    affinity: Vec<Term>,
    anti: Vec<Term>,
    affinity_counts: HashMap<Pair, usize>,
    anti_counts: HashMap<Pair, usize>,
    existing_anti_counts: HashMap<Pair, usize>,
    self_match: bool,
}

/// A placed pod and the labels of its node.
pub struct Placed<'a> {
    pub pod: &'a Value,
    pub node_labels: &'a Map<String, Value>,
}

fn label<'a>(labels: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    labels.get(key).and_then(Value::as_str)
}

impl State {
    /// `ns_labels` gives a namespace's labels (empty for unknown namespaces).
    pub fn new<'a>(
        pod: &Value,
        placed: &[Placed<'a>],
        ns_labels: &dyn Fn(&str) -> &'a Map<String, Value>,
    ) -> State {
        let affinity = required_terms(pod, "podAffinity");
        let anti = required_terms(pod, "podAntiAffinity");
        let pod_ns = pod
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let own_ns_labels = ns_labels(pod_ns);
        let mut st = State {
            self_match: affinity.iter().all(|t| t.matches(pod, own_ns_labels)),
            ..State::default()
        };
        for p in placed {
            let p_ns = p
                .pod
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("");
            let p_ns_labels = ns_labels(p_ns);
            // a placed pod counts for affinity only when it matches every term
            if !affinity.is_empty() && affinity.iter().all(|t| t.matches(p.pod, p_ns_labels)) {
                for t in &affinity {
                    if let Some(v) = label(p.node_labels, &t.topology_key) {
                        *st.affinity_counts
                            .entry((t.topology_key.clone(), v.to_string()))
                            .or_insert(0) += 1;
                    }
                }
            }
            for t in &anti {
                if t.matches(p.pod, p_ns_labels)
                    && let Some(v) = label(p.node_labels, &t.topology_key)
                {
                    *st.anti_counts
                        .entry((t.topology_key.clone(), v.to_string()))
                        .or_insert(0) += 1;
                }
            }
            for t in required_terms(p.pod, "podAntiAffinity") {
                if t.matches(pod, own_ns_labels)
                    && let Some(v) = label(p.node_labels, &t.topology_key)
                {
                    *st.existing_anti_counts
                        .entry((t.topology_key.clone(), v.to_string()))
                        .or_insert(0) += 1;
                }
            }
        }
        st.affinity = affinity;
        st.anti = anti;
        st
    }

    fn count(m: &HashMap<Pair, usize>, key: &str, labels: &Map<String, Value>) -> usize {
        label(labels, key)
            .and_then(|v| m.get(&(key.to_string(), v.to_string())))
            .copied()
            .unwrap_or(0)
    }

    /// Checks a node (by its labels), in the plugin's order.
    pub fn check(&self, node_labels: &Map<String, Value>) -> Result<(), Violation> {
        if !self.affinity.is_empty() {
            // every topology key must be on the node
            if self
                .affinity
                .iter()
                .any(|t| label(node_labels, &t.topology_key).is_none())
            {
                return Err(Violation::Affinity);
            }
            let pods_exist = self
                .affinity
                .iter()
                .all(|t| Self::count(&self.affinity_counts, &t.topology_key, node_labels) > 0);
            // the first pod of a group that has affinity to itself may go anywhere
            if !(pods_exist || self.affinity_counts.is_empty() && self.self_match) {
                return Err(Violation::Affinity);
            }
        }
        if self
            .anti
            .iter()
            .any(|t| Self::count(&self.anti_counts, &t.topology_key, node_labels) > 0)
        {
            return Err(Violation::AntiAffinity);
        }
        if self
            .existing_anti_counts
            .iter()
            .any(|((k, v), n)| *n > 0 && label(node_labels, k) == Some(v.as_str()))
        {
            return Err(Violation::ExistingAntiAffinity);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ns: &str, labels: Value, affinity: Value) -> Value {
        json!({"metadata": {"namespace": ns, "labels": labels}, "spec": {"affinity": affinity}})
    }

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn term(app: &str, key: &str) -> Value {
        json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key})
    }

    #[test]
    fn affinity_anti_affinity_and_symmetry() {
        let empty = Map::new();
        let ns = |_: &str| &empty;
        let n1 = labels(json!({"kubernetes.io/hostname": "n1", "zone": "a"}));
        let n2 = labels(json!({"kubernetes.io/hostname": "n2", "zone": "a"}));
        let n3 = labels(json!({"kubernetes.io/hostname": "n3", "zone": "b"}));
        let db = pod("default", json!({"app": "db"}), json!({}));
        let placed = [Placed {
            pod: &db,
            node_labels: &n1,
        }];

        // affinity to db by zone: n1 and n2 (zone a), not n3
        let web = pod(
            "default",
            json!({"app": "web"}),
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("db", "zone")]}}),
        );
        let st = State::new(&web, &placed, &ns);
        assert_eq!(st.check(&n1), Ok(()));
        assert_eq!(st.check(&n2), Ok(()));
        assert_eq!(st.check(&n3), Err(Violation::Affinity));
        assert_eq!(st.check(&empty), Err(Violation::Affinity));

        // anti-affinity to db by hostname: anywhere but n1
        let apart = pod(
            "default",
            json!({"app": "web"}),
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("db", "kubernetes.io/hostname")]}}),
        );
        let st = State::new(&apart, &placed, &ns);
        assert_eq!(st.check(&n1), Err(Violation::AntiAffinity));
        assert_eq!(st.check(&n2), Ok(()));

        // a placed pod's anti-affinity keeps matching pods out of its zone
        let loner = pod(
            "default",
            json!({"app": "loner"}),
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("web", "zone")]}}),
        );
        let placed = [Placed {
            pod: &loner,
            node_labels: &n1,
        }];
        let plain = pod("default", json!({"app": "web"}), json!({}));
        let st = State::new(&plain, &placed, &ns);
        assert_eq!(st.check(&n2), Err(Violation::ExistingAntiAffinity));
        assert_eq!(st.check(&n3), Ok(()));
    }

    #[test]
    fn first_pod_of_a_self_affine_group_and_namespaces() {
        let none = Map::new();
        let ns = |_: &str| &none;
        let n1 = labels(json!({"zone": "a"}));
        let first = pod(
            "default",
            json!({"app": "cache"}),
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("cache", "zone")]}}),
        );
        assert_eq!(State::new(&first, &[], &ns).check(&n1), Ok(()));
        // a pod that does not match its own terms has nothing to join
        let other = pod(
            "default",
            json!({"app": "x"}),
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("cache", "zone")]}}),
        );
        assert_eq!(
            State::new(&other, &[], &ns).check(&n1),
            Err(Violation::Affinity)
        );
        // terms look in the pod's own namespace unless told otherwise
        let cache = pod("other", json!({"app": "cache"}), json!({}));
        let placed = [Placed {
            pod: &cache,
            node_labels: &n1,
        }];
        let n2 = labels(json!({"zone": "b"}));
        let st = State::new(&other, &placed, &ns);
        assert_eq!(st.check(&n1), Err(Violation::Affinity));
        let mut t = term("cache", "zone");
        t["namespaces"] = json!(["other"]);
        let named = pod(
            "default",
            json!({}),
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [t]}}),
        );
        let st = State::new(&named, &placed, &ns);
        assert_eq!(st.check(&n1), Ok(()));
        assert_eq!(st.check(&n2), Err(Violation::Affinity));
        let mut t = term("cache", "zone");
        t["namespaceSelector"] = json!({});
        let all_ns = pod(
            "default",
            json!({}),
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [t]}}),
        );
        assert_eq!(State::new(&all_ns, &placed, &ns).check(&n1), Ok(()));
    }
}

//! `spec.nodeSelector` and `requiredDuringSchedulingIgnoredDuringExecution` node affinity, as the
//! NodeAffinity plugin applies them: both must match.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

fn strs(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// One `NodeSelectorRequirement` against a value that may be absent (a label, or the node's name for
/// `matchFields`). Unknown operators and malformed Gt/Lt values match nothing.
fn requirement(req: &Value, actual: Option<&str>) -> bool {
    let values = strs(req.get("values"));
    match req.get("operator").and_then(Value::as_str).unwrap_or("") {
        "In" => actual.is_some_and(|a| values.contains(&a)),
        "NotIn" => actual.is_none_or(|a| !values.contains(&a)),
        "Exists" => actual.is_some(),
        "DoesNotExist" => actual.is_none(),
        op @ ("Gt" | "Lt") => {
            let [bound] = values.as_slice() else {
                return false;
            };
            let (Ok(bound), Some(Ok(a))) = (bound.parse::<i64>(), actual.map(str::parse::<i64>))
            else {
                return false;
            };
            if op == "Gt" { a > bound } else { a < bound }
        }
        _ => false,
    }
}

/// Whether a `NodeSelectorTerm` matches: every expression on labels and every field requirement (only
/// `metadata.name` exists) hold; an empty term matches nothing.
pub fn term_matches(term: &Value, labels: &Map<String, Value>, node_name: &str) -> bool {
    let exprs = term
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let fields = term
        .get("matchFields")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|e| {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        requirement(e, labels.get(key).and_then(Value::as_str))
    }) && fields.iter().all(|f| {
        f.get("key").and_then(Value::as_str) == Some("metadata.name")
            && requirement(f, Some(node_name))
    })
}

/// The NodeAffinity plugin's PreFilter: when every required term names nodes
/// (`matchFields: metadata.name In [...]`), only those nodes are candidates. `None`: all nodes are.
pub fn prefilter_names(pod: &Value) -> Option<BTreeSet<String>> {
    let terms = pod
        .pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)?;
    let mut names: Option<BTreeSet<String>> = None;
    for t in terms {
        let mut term_names: Option<BTreeSet<String>> = None;
        for f in t
            .get("matchFields")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            if f.get("key").and_then(Value::as_str) == Some("metadata.name")
                && f.get("operator").and_then(Value::as_str) == Some("In")
            {
                let set: BTreeSet<String> = strs(f.get("values"))
                    .into_iter()
                    .map(String::from)
                    .collect();
                // requirements within a term are ANDed
                term_names = Some(match term_names {
                    None => set,
                    Some(prev) => prev.intersection(&set).cloned().collect(),
                });
            }
        }
        // a term that names no node leaves every node eligible (terms are ORed)
        let term_names = term_names?;
        names.get_or_insert_with(BTreeSet::new).extend(term_names);
    }
    names
}

/// Whether the node satisfies the pod's nodeSelector and required node affinity.
pub fn matches(pod: &Value, node: &Value) -> bool {
    let empty = Map::new();
    let labels = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let name = node
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Some(sel) = pod.pointer("/spec/nodeSelector").and_then(Value::as_object)
        && !sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    match pod.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution")
    {
        Some(Value::Object(required)) => required
            .get("nodeSelectorTerms")
            .and_then(Value::as_array)
            .is_some_and(|terms| terms.iter().any(|t| term_matches(t, labels, name))),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}})
    }

    fn with_terms(terms: Value) -> Value {
        json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}})
    }

    #[test]
    fn node_selector() {
        let n = node("n1", json!({"disk": "ssd", "zone": "a"}));
        assert!(matches(
            &json!({"spec": {"nodeSelector": {"disk": "ssd"}}}),
            &n
        ));
        assert!(!matches(
            &json!({"spec": {"nodeSelector": {"disk": "hdd"}}}),
            &n
        ));
        assert!(!matches(
            &json!({"spec": {"nodeSelector": {"gpu": "yes"}}}),
            &n
        ));
        assert!(matches(&json!({"spec": {}}), &n));
    }

    #[test]
    fn operators() {
        let n = node("n1", json!({"disk": "ssd", "cores": "8"}));
        let expr = |op: &str, key: &str, values: Value| {
            with_terms(
                json!([{"matchExpressions": [{"key": key, "operator": op, "values": values}]}]),
            )
        };
        for (pod, want) in [
            (expr("In", "disk", json!(["ssd", "nvme"])), true),
            (expr("In", "disk", json!(["hdd"])), false),
            (expr("In", "absent", json!(["x"])), false),
            (expr("NotIn", "disk", json!(["hdd"])), true),
            (expr("NotIn", "disk", json!(["ssd"])), false),
            (expr("NotIn", "absent", json!(["x"])), true),
            (expr("Exists", "disk", Value::Null), true),
            (expr("Exists", "absent", Value::Null), false),
            (expr("DoesNotExist", "absent", Value::Null), true),
            (expr("DoesNotExist", "disk", Value::Null), false),
            (expr("Gt", "cores", json!(["4"])), true),
            (expr("Gt", "cores", json!(["8"])), false),
            (expr("Lt", "cores", json!(["16"])), true),
            (expr("Lt", "cores", json!(["8"])), false),
            (expr("Gt", "disk", json!(["1"])), false),
            (expr("Gt", "absent", json!(["1"])), false),
            (expr("Gt", "cores", json!(["x"])), false),
            (expr("Bogus", "disk", json!(["ssd"])), false),
        ] {
            assert_eq!(matches(&pod, &n), want, "{pod}");
        }
    }

    #[test]
    fn terms_are_ored_and_fields_name_the_node() {
        let n = node("n1", json!({"disk": "ssd"}));
        let either = with_terms(json!([
            {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},
        ]));
        assert!(matches(&either, &n));
        let other = with_terms(
            json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]),
        );
        assert!(!matches(&other, &n));
        let not_me = with_terms(
            json!([{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}]),
        );
        assert!(!matches(&not_me, &n));
        // an empty term matches nothing; expressions within a term are ANDed
        assert!(!matches(&with_terms(json!([{}])), &n));
        let both = with_terms(json!([{"matchExpressions": [
            {"key": "disk", "operator": "In", "values": ["ssd"]},
            {"key": "zone", "operator": "Exists"},
        ]}]));
        assert!(!matches(&both, &n));
        assert_eq!(prefilter_names(&either), None);
        assert_eq!(
            prefilter_names(&other),
            Some(BTreeSet::from(["n2".to_string()]))
        );
        // nodeSelector and affinity must both hold
        let mut sel_and_aff = either.clone();
        sel_and_aff["spec"]["nodeSelector"] = json!({"disk": "hdd"});
        assert!(!matches(&sel_and_aff, &n));
    }
}

//! ClusterRole aggregation: a ClusterRole with an `aggregationRule` holds the union of the rules of
//! every other ClusterRole its selectors match (how `admin`, `edit` and `view` pick up the rules
//! that charts and add-ons label `rbac.authorization.k8s.io/aggregate-to-*`).

use serde_json::Value;

use crate::object;
use crate::selector::LabelSelector;

/// The rules `role` should hold, if it aggregates: the rules of the matching ClusterRoles among
/// `all`, in name order, each rule once. `None` for a role without an aggregation rule.
pub fn rules(role: &Value, all: &[Value]) -> Option<Vec<Value>> {
    let selectors: Vec<LabelSelector> = role
        .pointer("/aggregationRule/clusterRoleSelectors")?
        .as_array()?
        .iter()
        .filter_map(|s| LabelSelector::from_object(Some(s)).ok())
        // an empty selector would select every role, itself included: Kubernetes ignores it too
        .filter(|s| !s.is_empty())
        .collect();
    let me = object::name(role);
    let mut sources: Vec<&Value> = all
        .iter()
        .filter(|r| object::name(r) != me)
        .filter(|r| selectors.iter().any(|s| s.matches(object::labels(r))))
        .collect();
    sources.sort_by_key(|r| object::name(r).to_string());
    let mut out: Vec<Value> = Vec::new();
    for r in sources {
        for rule in r
            .get("rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !out.contains(rule) {
                out.push(rule.clone());
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unions_the_matching_roles_once_each() {
        let view = json!({"metadata": {"name": "view"}, "aggregationRule": {"clusterRoleSelectors": [
            {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]}});
        let pods = json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]});
        let crd =
            json!({"verbs": ["list"], "apiGroups": ["example.com"], "resources": ["widgets"]});
        let all = vec![
            view.clone(),
            json!({"metadata": {"name": "b", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}, "rules": [pods, crd]}),
            json!({"metadata": {"name": "a", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}, "rules": [pods]}),
            json!({"metadata": {"name": "c", "labels": {"other": "true"}}, "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]}),
        ];
        assert_eq!(rules(&view, &all), Some(vec![pods, crd]));
        assert_eq!(rules(&all[1], &all), None);
        let everything =
            json!({"metadata": {"name": "x"}, "aggregationRule": {"clusterRoleSelectors": [{}]}});
        assert_eq!(rules(&everything, &all), Some(vec![]));
    }
}

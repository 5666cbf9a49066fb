//! The Node authorizer: what a node agent (`system:node:NAME` in group `system:nodes`) may do, as
//! kube-apiserver's Node authorizer and NodeRestriction admission allow it. A node reads a Secret,
//! ConfigMap or PersistentVolumeClaim only when a pod bound to it refers to it, mints tokens only
//! for service accounts of its pods, and writes only its own Node, its own Lease and its own pods'
//! status; everything else it may do is the static node rules
//! ([`podnet_apimachinery::rbac::defaults::node_rules`]).

use podnet_apimachinery::rbac::{self, Attributes, PolicyRule};
use podnet_apimachinery::resources;
use serde_json::Value;

use super::Decision;
use crate::auth::UserInfo;
use crate::registry::Api;

/// The node a user is, if it is one.
pub fn node_name(user: &UserInfo) -> Option<&str> {
    let name = user.username.strip_prefix("system:node:")?;
    (user.groups.iter().any(|g| g == "system:nodes") && !name.is_empty()).then_some(name)
}

fn no_relationship(node: &str) -> Decision {
    Decision::NoOpinion(format!(
        "no relationship found between node '{node}' and this object"
    ))
}

pub fn authorize(api: &Api, user: &UserInfo, a: &Attributes) -> Decision {
    let Some(node) = node_name(user) else {
        return Decision::NoOpinion(String::new());
    };
    if !a.resource_request {
        return Decision::NoOpinion(String::new());
    }
    let write = !matches!(a.verb.as_str(), "get" | "list" | "watch");
    match (
        a.api_group.as_str(),
        a.resource.as_str(),
        a.subresource.as_str(),
    ) {
        ("", "secrets" | "configmaps" | "persistentvolumeclaims", sub) => {
            if !matches!(a.verb.as_str(), "get" | "list" | "watch") {
                return Decision::NoOpinion("can only read resources of this type".into());
            }
            if !sub.is_empty() {
                return Decision::NoOpinion("cannot read subresource".into());
            }
            if a.namespace.is_empty() {
                return Decision::NoOpinion("can only read namespaced object of this type".into());
            }
            if a.name.is_empty() {
                return Decision::NoOpinion("No Object name found".into());
            }
            let referenced = pods_on(api, node, &a.namespace)
                .iter()
                .any(|p| refers_to(p, &a.resource, &a.name));
            if referenced {
                Decision::Allow
            } else {
                no_relationship(node)
            }
        }
        ("", "serviceaccounts", "token") => {
            if a.verb != "create" {
                return Decision::NoOpinion(
                    "can only create tokens for individual service accounts".into(),
                );
            }
            let used = pods_on(api, node, &a.namespace)
                .iter()
                .any(|p| service_account(p) == a.name);
            if used {
                Decision::Allow
            } else {
                no_relationship(node)
            }
        }
        // a create names no object in its path: its name is the body's (kube's NodeRestriction)
        ("", "nodes", "" | "status") if write && !a.name.is_empty() && a.name != node => {
            Decision::Deny(format!(
                "node {node:?} is not allowed to modify node {:?}",
                a.name
            ))
        }
        ("coordination.k8s.io", "leases", "")
            if write
                && (a.namespace != "kube-node-lease" || (!a.name.is_empty() && a.name != node)) =>
        {
            Decision::Deny(
                "can only access node lease with the same name as the requesting node".into(),
            )
        }
        ("", "pods", "" | "status") if write && a.verb != "create" => {
            let pods = resources::find("", "v1", "pods").expect("pods are served");
            let on_node = api
                .get(pods, &a.namespace, &a.name)
                .ok()
                .is_some_and(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node));
            if on_node {
                static_rules(a)
            } else {
                Decision::Deny(format!(
                    "node {node:?} can only modify pods with spec.nodeName set to itself"
                ))
            }
        }
        _ => static_rules(a),
    }
}

fn static_rules(a: &Attributes) -> Decision {
    let rules: Vec<PolicyRule> = rbac::defaults::node_rules()
        .iter()
        .map(PolicyRule::from_json)
        .collect();
    if rbac::rules_allow(a, &rules) {
        Decision::Allow
    } else {
        Decision::NoOpinion(String::new())
    }
}

fn pods_on(api: &Api, node: &str, namespace: &str) -> Vec<Value> {
    let pods = resources::find("", "v1", "pods").expect("pods are served");
    api.list_values(pods, Some(namespace))
        .into_iter()
        .filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node))
        .collect()
}

fn service_account(pod: &Value) -> &str {
    pod.pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
}

/// Whether a pod's spec names a Secret, ConfigMap or PersistentVolumeClaim (`resource`) `name`:
/// volumes (also projected), environment, image pull secrets.
pub fn refers_to(pod: &Value, resource: &str, name: &str) -> bool {
    let spec = &pod["spec"];
    let arr = |v: &Value, k: &str| -> Vec<Value> {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let is = |v: Option<&Value>| v.and_then(Value::as_str) == Some(name);
    let (volume_key, volume_name, env_ref, env_from) = match resource {
        "secrets" => ("secret", "secretName", "secretKeyRef", "secretRef"),
        "configmaps" => ("configMap", "name", "configMapKeyRef", "configMapRef"),
        "persistentvolumeclaims" => {
            return arr(spec, "volumes")
                .iter()
                .any(|v| is(v.pointer("/persistentVolumeClaim/claimName")));
        }
        _ => return false,
    };
    if resource == "secrets"
        && arr(spec, "imagePullSecrets")
            .iter()
            .any(|s| is(s.get("name")))
    {
        return true;
    }
    for v in arr(spec, "volumes") {
        if is(v.get(volume_key).and_then(|s| s.get(volume_name))) {
            return true;
        }
        let sources = v
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if sources
            .iter()
            .any(|s| is(s.get(volume_key).and_then(|s| s.get("name"))))
        {
            return true;
        }
    }
    ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| arr(spec, k))
        .any(|c| {
            arr(&c, "env")
                .iter()
                .any(|e| is(e.pointer(&format!("/valueFrom/{env_ref}/name"))))
                || arr(&c, "envFrom")
                    .iter()
                    .any(|e| is(e.pointer(&format!("/{env_from}/name"))))
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pods_refer_to_their_secrets_configmaps_and_claims() {
        let pod = json!({"spec": {
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [
                {"name": "a", "secret": {"secretName": "vol-secret"}},
                {"name": "b", "configMap": {"name": "vol-cm"}},
                {"name": "c", "projected": {"sources": [{"secret": {"name": "proj-secret"}}, {"configMap": {"name": "proj-cm"}}]}},
                {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
            ],
            "containers": [{"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "env-cm"}}]}],
            "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-secret"}}]}],
        }});
        for s in [
            "pull",
            "vol-secret",
            "proj-secret",
            "env-secret",
            "init-secret",
        ] {
            assert!(refers_to(&pod, "secrets", s), "{s}");
        }
        for c in ["vol-cm", "proj-cm", "env-cm"] {
            assert!(refers_to(&pod, "configmaps", c), "{c}");
        }
        assert!(refers_to(&pod, "persistentvolumeclaims", "data"));
        assert!(!refers_to(&pod, "secrets", "vol-cm"));
        assert!(!refers_to(&pod, "configmaps", "vol-secret"));
        assert!(!refers_to(&pod, "secrets", "other"));
    }
}

/// NodeRestriction's check of a create's body: a node creates only its own Node and its own Lease in
/// `kube-node-lease` (the authorizer sees no name in a create's path).
pub fn admit_create(
    user: &UserInfo,
    kind: &str,
    group: &str,
    namespace: &str,
    name: &str,
) -> Result<(), podnet_apimachinery::ApiError> {
    let Some(node) = node_name(user) else {
        return Ok(());
    };
    let own = match (group, kind) {
        ("", "Node") => name == node,
        ("coordination.k8s.io", "Lease") => namespace == "kube-node-lease" && name == node,
        _ => return Ok(()),
    };
    if own {
        Ok(())
    } else {
        Err(podnet_apimachinery::ApiError::forbidden(format!(
            "node {node:?} is not allowed to create {kind} {name:?}: a node creates only its own"
        )))
    }
}

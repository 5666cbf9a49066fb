//! The roles and bindings a cluster starts with (Kubernetes' bootstrap policy for the resources
//! podnet serves, plus the roles of podnet's own node agent), labelled
//! `kubernetes.io/bootstrapping: rbac-defaults` and reconciled by the API server at every start.

use serde_json::{Value, json};

pub const BOOTSTRAP_LABEL: &str = "kubernetes.io/bootstrapping";
pub const BOOTSTRAP_VALUE: &str = "rbac-defaults";
/// Set to `"false"` on a default object to keep the server's reconciliation away from it.
pub const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
/// Every verb a resource serves: the one list the discovery documents use.
const ALL: &[&str] = crate::resources::ALL_VERBS;

fn rule(verbs: &[&str], group: &str, resources: &[&str]) -> Value {
    json!({"apiGroups": [group], "resources": resources, "verbs": verbs})
}

fn urls(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"nonResourceURLs": urls, "verbs": verbs})
}

fn meta(name: &str, extra_labels: &[(&str, &str)]) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert(BOOTSTRAP_LABEL.into(), json!(BOOTSTRAP_VALUE));
    for (k, v) in extra_labels {
        labels.insert((*k).into(), json!(v));
    }
    json!({"name": name, "labels": labels, "annotations": {AUTOUPDATE: "true"}})
}

fn cluster_role(name: &str, labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta(name, labels), "rules": rules})
}

fn aggregated(name: &str, labels: &[(&str, &str)], aggregate_to: &str) -> Value {
    let mut r = cluster_role(name, labels, vec![]);
    r["aggregationRule"] = json!({"clusterRoleSelectors": [
        {"matchLabels": {format!("rbac.authorization.k8s.io/aggregate-to-{aggregate_to}"): "true"}}
    ]});
    r
}

const TO_ADMIN: (&str, &str) = ("rbac.authorization.k8s.io/aggregate-to-admin", "true");
const TO_EDIT: (&str, &str) = ("rbac.authorization.k8s.io/aggregate-to-edit", "true");
const TO_VIEW: (&str, &str) = ("rbac.authorization.k8s.io/aggregate-to-view", "true");

/// What a node may do whatever RBAC says (the Node authorizer grants these to `system:nodes`, and
/// narrows secrets, configmaps, service-account tokens and writes to the node's own objects).
pub fn node_rules() -> Vec<Value> {
    vec![
        rule(&["create"], "authentication.k8s.io", &["tokenreviews"]),
        rule(
            &["create"],
            "authorization.k8s.io",
            &["subjectaccessreviews", "localsubjectaccessreviews"],
        ),
        rule(READ, "", &["services"]),
        rule(&["create", "get", "list", "watch"], "", &["nodes"]),
        // reading a status back (as `kubectl patch --subresource=status` does first) shows a node
        // nothing its `get nodes` and `get pods` do not; Kubernetes' node rules leave it out
        rule(&["get", "update", "patch"], "", &["nodes/status"]),
        rule(&["update", "patch"], "", &["nodes"]),
        rule(&["create", "update", "patch"], "", &["events"]),
        rule(READ, "", &["pods"]),
        // no `create` of pods (NodeRestriction allows only mirror pods, which podnet has none of: a
        // node that could create a pod naming any Secret or service account could then read or mint
        // them) and no evictions (a node would evict any pod)
        rule(&["delete"], "", &["pods"]),
        rule(&["get", "update", "patch"], "", &["pods/status"]),
        rule(READ, "", &["secrets", "configmaps"]),
        rule(
            &["get"],
            "",
            &["persistentvolumeclaims", "persistentvolumes"],
        ),
        rule(&["get"], "", &["endpoints"]),
        rule(
            &["get", "create", "update", "patch", "delete"],
            "coordination.k8s.io",
            &["leases"],
        ),
        rule(&["create"], "", &["serviceaccounts/token"]),
    ]
}

/// What podnet's node agent's networking part reads (the service proxy and NetworkPolicy): the
/// ClusterRole a real-cluster deployment binds to the agent's service account.
pub fn podnet_agent_rules() -> Vec<Value> {
    vec![
        rule(
            &["list", "watch"],
            "",
            &["services", "endpoints", "pods", "namespaces"],
        ),
        rule(READ, "", &["nodes"]),
        rule(&["list", "watch"], "discovery.k8s.io", &["endpointslices"]),
        rule(
            &["list", "watch"],
            "networking.k8s.io",
            &["networkpolicies"],
        ),
        rule(&["create", "patch", "update"], "", &["events"]),
    ]
}

/// The default ClusterRoles.
pub fn cluster_roles() -> Vec<Value> {
    vec![
        cluster_role(
            "cluster-admin",
            &[],
            vec![rule(&["*"], "*", &["*"]), urls(&["*"], &["*"])],
        ),
        aggregated("admin", &[], "admin"),
        aggregated("edit", &[TO_ADMIN], "edit"),
        aggregated("view", &[TO_EDIT], "view"),
        cluster_role(
            "system:aggregate-to-admin",
            &[TO_ADMIN],
            vec![
                rule(
                    &["create"],
                    "authorization.k8s.io",
                    &["localsubjectaccessreviews"],
                ),
                rule(ALL, "rbac.authorization.k8s.io", &["rolebindings", "roles"]),
            ],
        ),
        cluster_role("system:aggregate-to-edit", &[TO_EDIT], edit_rules()),
        cluster_role("system:aggregate-to-view", &[TO_VIEW], view_rules()),
        cluster_role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["create"],
                    "authentication.k8s.io",
                    &["selfsubjectreviews"],
                ),
                rule(
                    &["create"],
                    "authorization.k8s.io",
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:discovery",
            &[],
            vec![urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            vec![urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        cluster_role(
            "system:auth-delegator",
            &[],
            vec![
                rule(&["create"], "authentication.k8s.io", &["tokenreviews"]),
                rule(
                    &["create"],
                    "authorization.k8s.io",
                    &["subjectaccessreviews"],
                ),
            ],
        ),
        cluster_role("system:node", &[], node_rules()),
        cluster_role(
            "system:node-proxier",
            &[],
            vec![
                rule(&["list", "watch"], "", &["services", "endpoints"]),
                rule(READ, "", &["nodes"]),
                rule(&["create", "patch", "update"], "", &["events"]),
                rule(&["list", "watch"], "discovery.k8s.io", &["endpointslices"]),
            ],
        ),
        cluster_role("system:podnet-agent", &[], podnet_agent_rules()),
    ]
}

fn edit_rules() -> Vec<Value> {
    vec![
        rule(
            READ,
            "",
            &[
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "secrets",
                "services/proxy",
            ],
        ),
        rule(&["impersonate"], "", &["serviceaccounts"]),
        rule(
            WRITE,
            "",
            &[
                "pods",
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
            ],
        ),
        rule(&["create"], "", &["pods/eviction"]),
        rule(
            WRITE,
            "",
            &[
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
                "services/proxy",
            ],
        ),
        rule(&["create"], "", &["serviceaccounts/token"]),
        rule(
            WRITE,
            "apps",
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
            ],
        ),
        rule(WRITE, "autoscaling", &["horizontalpodautoscalers"]),
        rule(WRITE, "batch", &["cronjobs", "jobs"]),
        rule(WRITE, "policy", &["poddisruptionbudgets"]),
        rule(
            WRITE,
            "networking.k8s.io",
            &["ingresses", "networkpolicies"],
        ),
        rule(WRITE, "coordination.k8s.io", &["leases"]),
        rule(WRITE, "discovery.k8s.io", &["endpointslices"]),
    ]
}

fn view_rules() -> Vec<Value> {
    vec![
        rule(
            READ,
            "",
            &[
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
            ],
        ),
        rule(
            READ,
            "",
            &[
                "bindings",
                "events",
                "limitranges",
                "namespaces/status",
                "pods/log",
                "pods/status",
                "replicationcontrollers/status",
                "resourcequotas",
                "resourcequotas/status",
            ],
        ),
        rule(READ, "", &["namespaces"]),
        rule(READ, "discovery.k8s.io", &["endpointslices"]),
        rule(
            READ,
            "apps",
            &[
                "controllerrevisions",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
            ],
        ),
        rule(
            READ,
            "autoscaling",
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
        ),
        rule(
            READ,
            "batch",
            &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
        ),
        rule(
            READ,
            "policy",
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
        ),
        rule(
            READ,
            "networking.k8s.io",
            &["ingresses", "ingresses/status", "networkpolicies"],
        ),
        rule(READ, "coordination.k8s.io", &["leases"]),
    ]
}

fn subject(kind: &str, name: &str) -> Value {
    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name})
}

fn binding(name: &str, role: &str, subjects: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": meta(name, &[]),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

/// The default ClusterRoleBindings.
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding(
            "cluster-admin",
            "cluster-admin",
            vec![subject("Group", "system:masters")],
        ),
        binding(
            "system:basic-user",
            "system:basic-user",
            vec![subject("Group", "system:authenticated")],
        ),
        binding(
            "system:discovery",
            "system:discovery",
            vec![subject("Group", "system:authenticated")],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            vec![
                subject("Group", "system:authenticated"),
                subject("Group", "system:unauthenticated"),
            ],
        ),
        // as in Kubernetes: nodes get their rules from the Node authorizer, not from this binding
        binding("system:node", "system:node", vec![]),
        binding(
            "system:node-proxier",
            "system:node-proxier",
            vec![subject("User", "system:kube-proxy")],
        ),
        binding(
            "system:podnet-agent",
            "system:podnet-agent",
            vec![subject("Group", "system:nodes")],
        ),
    ]
}

/// Reconciles a stored default object with its default: `None` when nothing is to change, else
/// the object to store. Rules, subjects, labels and annotations missing from the stored object are
/// added (what an administrator added is kept); an object annotated `autoupdate: "false"` is left
/// alone; a ClusterRole's aggregationRule is put back to the default's.
pub fn reconcile(stored: &Value, default: &Value) -> Option<Value> {
    let ann = stored.pointer(&format!(
        "/metadata/annotations/{}",
        AUTOUPDATE.replace('/', "~1")
    ));
    if ann.and_then(Value::as_str) == Some("false") {
        return None;
    }
    let mut out = stored.clone();
    for field in ["labels", "annotations"] {
        if let Some(want) = default["metadata"][field].as_object() {
            for (k, v) in want {
                if out["metadata"][field].get(k).is_none() {
                    out["metadata"][field][k] = v.clone();
                }
            }
        }
    }
    let list = if default.get("roleRef").is_some() {
        "subjects"
    } else {
        "rules"
    };
    if default.get("aggregationRule").is_some() {
        out["aggregationRule"] = default["aggregationRule"].clone();
    } else {
        for item in default[list].as_array().into_iter().flatten() {
            let have = out[list].as_array().is_some_and(|a| a.contains(item));
            if !have {
                match out[list].as_array_mut() {
                    Some(a) => a.push(item.clone()),
                    None => out[list] = json!([item]),
                }
            }
        }
    }
    (out != *stored).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_labelled_and_bindings_name_existing_roles() {
        let roles = cluster_roles();
        let names: Vec<&str> = roles
            .iter()
            .map(|r| r["metadata"]["name"].as_str().unwrap())
            .collect();
        for want in [
            "cluster-admin",
            "admin",
            "edit",
            "view",
            "system:basic-user",
            "system:discovery",
            "system:public-info-viewer",
            "system:node",
        ] {
            assert!(names.contains(&want), "{want}");
        }
        for o in roles.iter().chain(cluster_role_bindings().iter()) {
            assert_eq!(o["metadata"]["labels"][BOOTSTRAP_LABEL], BOOTSTRAP_VALUE);
        }
        for b in cluster_role_bindings() {
            assert!(names.contains(&b["roleRef"]["name"].as_str().unwrap()));
        }
    }

    #[test]
    fn reconcile_adds_what_is_missing_and_keeps_additions() {
        let default = &cluster_roles()[0];
        assert_eq!(reconcile(default, default), None);
        let mut trimmed = default.clone();
        trimmed["rules"] = json!([{"verbs": ["get"], "apiGroups": ["x"], "resources": ["y"]}]);
        let fixed = reconcile(&trimmed, default).unwrap();
        assert_eq!(fixed["rules"].as_array().unwrap().len(), 3);
        let mut pinned = trimmed.clone();
        pinned["metadata"]["annotations"][AUTOUPDATE] = json!("false");
        assert_eq!(reconcile(&pinned, default), None);
        let b = &cluster_role_bindings()[0];
        let mut extra = b.clone();
        extra["subjects"] =
            json!([{"kind": "User", "name": "me", "apiGroup": "rbac.authorization.k8s.io"}]);
        let fixed = reconcile(&extra, b).unwrap();
        assert_eq!(fixed["subjects"].as_array().unwrap().len(), 2);
    }
}

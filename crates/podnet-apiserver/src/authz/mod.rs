//! Who may do what: the administrator (group `system:masters`) may do everything; a node
//! (`system:node:NAME`) gets what the Node authorizer grants it ([`node`]); everything else is decided
//! by RBAC over the Roles, ClusterRoles and bindings in the store, as kube-apiserver's
//! `--authorization-mode=Node,RBAC` does.

pub mod defaults;
pub mod escalation;
pub mod node;

use podnet_apimachinery::rbac::{self, Attributes, Bindings, PolicyRule, User};
use podnet_apimachinery::{ApiError, resources};
use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::registry::Api;

/// The group whose members are never refused.
pub const MASTERS: &str = "system:masters";

/// An authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refused outright (the Node authorizer's restrictions), with the reason.
    Deny(String),
    /// Nothing allowed it; the reason (may be empty) goes into the 403 message.
    NoOpinion(String),
}

impl Decision {
    pub fn allowed(&self) -> bool {
        *self == Decision::Allow
    }

    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow => "",
            Decision::Deny(r) | Decision::NoOpinion(r) => r,
        }
    }
}

fn rbac_user(u: &UserInfo) -> User {
    User {
        name: u.username.clone(),
        groups: u.groups.clone(),
    }
}

fn rbac_def(plural: &str) -> &'static resources::ResourceDef {
    resources::find(rbac::GROUP, "v1", plural).expect("RBAC resources are served")
}

/// The roles and bindings of the store that a request in `namespace` reads.
struct StoreBindings {
    cluster_role_bindings: Vec<Value>,
    role_bindings: Vec<Value>,
}

impl StoreBindings {
    fn read(api: &Api, namespace: &str) -> StoreBindings {
        StoreBindings {
            cluster_role_bindings: api.list_values(rbac_def("clusterrolebindings"), None),
            role_bindings: if namespace.is_empty() {
                Vec::new()
            } else {
                api.list_values(rbac_def("rolebindings"), Some(namespace))
            },
        }
    }

    fn with<T>(&self, api: &Api, f: impl FnOnce(&Bindings<'_>) -> T) -> T {
        let role = |kind: &str, ns: &str, name: &str| -> Option<Value> {
            let def = match kind {
                "Role" => rbac_def("roles"),
                "ClusterRole" => rbac_def("clusterroles"),
                _ => return None,
            };
            api.get(def, ns, name).ok()
        };
        f(&Bindings {
            cluster_role_bindings: &self.cluster_role_bindings,
            role_bindings: &self.role_bindings,
            role: &role,
        })
    }
}

/// Decides a request: system:masters, then the Node authorizer, then RBAC (reasons of the
/// authorizers that had no opinion are joined, as kube-apiserver's union authorizer joins them).
pub fn authorize(api: &Api, user: &UserInfo, a: &Attributes) -> Decision {
    if user.groups.iter().any(|g| g == MASTERS) {
        return Decision::Allow;
    }
    let mut reasons = Vec::new();
    match node::authorize(api, user, a) {
        Decision::NoOpinion(r) => reasons.push(r),
        decided => return decided,
    }
    let sb = StoreBindings::read(api, &a.namespace);
    match sb.with(api, |b| b.authorize(&rbac_user(user), a)) {
        Ok(()) => return Decision::Allow,
        Err(denial) => reasons.push(denial.reason()),
    }
    reasons.retain(|r| !r.is_empty());
    Decision::NoOpinion(reasons.join("\n"))
}

/// Every rule that applies to `user` in `namespace` (SelfSubjectRulesReview): RBAC's, and the
/// Node authorizer's static rules for a node.
pub fn rules_for(api: &Api, user: &UserInfo, namespace: &str) -> (Vec<PolicyRule>, String) {
    let sb = StoreBindings::read(api, namespace);
    let (mut rules, denial) = sb.with(api, |b| b.rules_for(&rbac_user(user), namespace));
    if node::node_name(user).is_some() {
        rules.extend(
            rbac::defaults::node_rules()
                .iter()
                .map(PolicyRule::from_json),
        );
    }
    (rules, denial.reason())
}

/// The 403 for a refused request, worded as kube-apiserver words it:
/// `pods "web" is forbidden: User "u" cannot get resource "pods" in API group "" in the namespace "x"`.
pub fn forbidden(user: &str, a: &Attributes, reason: &str) -> ApiError {
    let mut msg = rbac::forbidden_message(user, a);
    if !reason.is_empty() {
        msg = format!("{msg}: {reason}");
    }
    let mut details = json!({});
    let message = if !a.resource_request {
        format!("forbidden: {msg}")
    } else {
        details["kind"] = json!(a.resource);
        if !a.api_group.is_empty() {
            details["group"] = json!(a.api_group);
        }
        let qualified = if a.api_group.is_empty() {
            a.resource.clone()
        } else {
            format!("{}.{}", a.resource, a.api_group)
        };
        if a.name.is_empty() {
            format!("{qualified} is forbidden: {msg}")
        } else {
            details["name"] = json!(a.name);
            format!("{qualified} {:?} is forbidden: {msg}", a.name)
        }
    };
    let mut e = ApiError::forbidden(message);
    e.details = Some(details);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_status_names_the_resource_and_object() {
        let a = Attributes::resource("list", "", "pods", "default", "");
        let e = forbidden("system:serviceaccount:default:x", &a, "");
        assert_eq!(
            e.message,
            "pods is forbidden: User \"system:serviceaccount:default:x\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        assert_eq!(e.code, 403);
        assert_eq!(e.details, Some(json!({"kind": "pods"})));
        let a = Attributes::resource("get", "apps", "deployments/scale", "x", "d");
        let e = forbidden(
            "u",
            &a,
            "RBAC: role.rbac.authorization.k8s.io \"r\" not found",
        );
        assert_eq!(
            e.message,
            "deployments.apps \"d\" is forbidden: User \"u\" cannot get resource \"deployments/scale\" in API group \"apps\" in the namespace \"x\": RBAC: role.rbac.authorization.k8s.io \"r\" not found"
        );
        assert_eq!(
            e.details,
            Some(json!({"kind": "deployments", "group": "apps", "name": "d"}))
        );
        let e = forbidden("u", &Attributes::non_resource("get", "/metrics"), "");
        assert_eq!(
            e.message,
            "forbidden: User \"u\" cannot get path \"/metrics\""
        );
    }
}

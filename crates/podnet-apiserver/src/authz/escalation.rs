//! RBAC's privilege-escalation prevention: a user may write a Role or ClusterRole only with rules
//! they hold themselves (or the `escalate` verb on it), and a binding only to a role whose rules
//! they hold (or the `bind` verb on it); aggregation rules need cluster-wide full rights.
//! Without it, anyone allowed to write roles or bindings could give themselves anything.

use podnet_apimachinery::rbac::{self, Attributes, PolicyRule};
use podnet_apimachinery::resources::ResourceDef;
use podnet_apimachinery::{ApiError, object};
use serde_json::Value;

use super::{Decision, MASTERS};
use crate::auth::UserInfo;
use crate::registry::Api;

/// Checks a write of `obj` (a Role, ClusterRole or binding, as it would be stored) by `user`.
pub fn check(
    api: &Api,
    user: &UserInfo,
    r: &ResourceDef,
    namespace: &str,
    obj: &Value,
) -> Result<(), ApiError> {
    if r.group != rbac::GROUP || user.groups.iter().any(|g| g == MASTERS) {
        return Ok(());
    }
    let name = object::name(obj);
    let ns = if r.namespaced { namespace } else { "" };
    let may = |verb: &str, resource: &str, name: &str| {
        let a = Attributes::resource(verb, rbac::GROUP, resource, ns, name);
        super::authorize(api, user, &a) == Decision::Allow
    };
    let (wanted, via) = match r.kind {
        "Role" | "ClusterRole" => {
            if may("escalate", r.plural, name) {
                return Ok(());
            }
            if obj.get("aggregationRule").is_some_and(|a| !a.is_null()) {
                let full = PolicyRule::from_json(
                    &serde_json::json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
                );
                if !uncovered(api, user, "", &[full]).is_empty() {
                    return Err(forbidden(
                        r,
                        name,
                        "must have cluster-admin privileges to use the aggregationRule",
                    ));
                }
                return Ok(());
            }
            (PolicyRule::of_role(obj), ns)
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let kind = obj
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let role = obj
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let plural = if kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            if may("bind", plural, role) {
                return Ok(());
            }
            let def = podnet_apimachinery::resources::find(rbac::GROUP, "v1", plural)
                .expect("RBAC resources are served");
            let role_ns = if kind == "Role" { ns } else { "" };
            // A binding to a role that does not exist is refused (not checked against no rules):
            // the role could be made later with rules its binder never held.
            let rules = api
                .get(def, role_ns, role)
                .map(|v| PolicyRule::of_role(&v))?;
            (rules, ns)
        }
        _ => return Ok(()),
    };
    let missing = uncovered(api, user, via, &wanted);
    if missing.is_empty() {
        return Ok(());
    }
    let groups: Vec<String> = user.groups.iter().map(|g| format!("{g:?}")).collect();
    let list: Vec<String> = missing.iter().map(describe).collect();
    Err(forbidden(
        r,
        name,
        &format!(
            "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
            user.username,
            groups.join(" "),
            list.join("\n")
        ),
    ))
}

fn forbidden(r: &ResourceDef, name: &str, why: &str) -> ApiError {
    let mut e = ApiError::forbidden(format!(
        "{}.{} {name:?} is forbidden: {why}",
        r.plural, r.group
    ));
    e.details = Some(serde_json::json!({"name": name, "group": r.group, "kind": r.plural}));
    e
}

/// The single permissions of `wanted` that none of the user's rules in `namespace` allows.
fn uncovered(
    api: &Api,
    user: &UserInfo,
    namespace: &str,
    wanted: &[PolicyRule],
) -> Vec<Attributes> {
    let (held, _) = super::rules_for(api, user, namespace);
    atoms(wanted)
        .into_iter()
        .filter(|a| !rbac::rules_allow(a, &held))
        .collect()
}

/// A rule broken into single permissions (one verb, group, resource and name, or one verb and URL),
/// whose values are taken literally: a requested `*` is only held through a `*`.
fn atoms(rules: &[PolicyRule]) -> Vec<Attributes> {
    let mut out = Vec::new();
    for r in rules {
        for verb in &r.verbs {
            for url in &r.non_resource_urls {
                out.push(Attributes::non_resource(verb, url));
            }
            let names: Vec<&str> = if r.resource_names.is_empty() {
                vec![""]
            } else {
                r.resource_names.iter().map(String::as_str).collect()
            };
            for group in &r.api_groups {
                for resource in &r.resources {
                    for name in &names {
                        out.push(Attributes::resource(verb, group, resource, "", name));
                    }
                }
            }
        }
    }
    out
}

fn describe(a: &Attributes) -> String {
    if !a.resource_request {
        return format!("{{NonResourceURLs:[{:?}], Verbs:[{:?}]}}", a.path, a.verb);
    }
    let resource = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let names = if a.name.is_empty() {
        String::new()
    } else {
        format!(", ResourceNames:[{:?}]", a.name)
    };
    format!(
        "{{APIGroups:[{:?}], Resources:[{resource:?}]{names}, Verbs:[{:?}]}}",
        a.api_group, a.verb
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_break_into_literal_permissions() {
        let r = PolicyRule::from_json(&serde_json::json!({
            "verbs": ["get", "list"], "apiGroups": ["", "apps"], "resources": ["pods"], "resourceNames": ["a"]
        }));
        let a = atoms(&[r]);
        assert_eq!(a.len(), 4);
        let held = [PolicyRule::from_json(&serde_json::json!({
            "verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]
        }))];
        let missing: Vec<_> = a.iter().filter(|x| !rbac::rules_allow(x, &held)).collect();
        assert_eq!(missing.len(), 2);
        assert_eq!(
            describe(missing[0]),
            "{APIGroups:[\"apps\"], Resources:[\"pods\"], ResourceNames:[\"a\"], Verbs:[\"get\"]}"
        );
        // asking for a wildcard is only held through a wildcard
        let wild = PolicyRule::from_json(
            &serde_json::json!({"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}),
        );
        let asked = atoms(std::slice::from_ref(&wild));
        assert!(!rbac::rules_allow(&asked[0], &held));
        assert!(rbac::rules_allow(&asked[0], &[wild]));
    }
}

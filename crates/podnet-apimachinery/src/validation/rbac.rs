//! Roles, ClusterRoles and their bindings, with the field paths and messages of Kubernetes' RBAC
//! validation.

use serde_json::Value;

use super::names;
use crate::status::FieldError;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The rules of a Role (`namespaced`) or ClusterRole.
pub(super) fn role(obj: &Value, namespaced: bool, errs: &mut Vec<FieldError>) {
    let rules = obj.get("rules").and_then(Value::as_array);
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        let at = |f: &str| format!("rules[{i}].{f}");
        if strings(rule.get("verbs")).is_empty() {
            errs.push(FieldError::required(
                at("verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = strings(rule.get("nonResourceURLs"));
        if !urls.is_empty() {
            let value = rule["nonResourceURLs"].clone();
            if namespaced {
                errs.push(FieldError::invalid(
                    at("nonResourceURLs"),
                    value.clone(),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            let resource_fields = ["apiGroups", "resources", "resourceNames"];
            if resource_fields
                .iter()
                .any(|f| !strings(rule.get(*f)).is_empty())
            {
                errs.push(FieldError::invalid(
                    at("nonResourceURLs"),
                    value,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if strings(rule.get("apiGroups")).is_empty() {
            errs.push(FieldError::required(
                at("apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if strings(rule.get("resources")).is_empty() {
            errs.push(FieldError::required(
                at("resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

/// A RoleBinding (`namespaced`) or ClusterRoleBinding; `old` on update (the roleRef is immutable).
pub(super) fn binding(
    obj: &Value,
    old: Option<&Value>,
    namespaced: bool,
    errs: &mut Vec<FieldError>,
) {
    let r = obj.get("roleRef").cloned().unwrap_or(Value::Null);
    let s = |f: &str| r.get(f).and_then(Value::as_str).unwrap_or_default();
    if s("apiGroup") != RBAC_GROUP {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            s("apiGroup"),
            &[RBAC_GROUP],
        ));
    }
    let kinds: &[&'static str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&s("kind")) {
        errs.push(FieldError::not_supported("roleRef.kind", s("kind"), kinds));
    }
    if s("name").is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else {
        for msg in names::path_segment(s("name")) {
            errs.push(FieldError::invalid("roleRef.name", s("name"), msg));
        }
    }
    let subjects = obj.get("subjects").and_then(Value::as_array);
    for (i, sub) in subjects.into_iter().flatten().enumerate() {
        subject(sub, namespaced, &format!("subjects[{i}]"), errs);
    }
    if let Some(old) = old
        && old.get("roleRef") != obj.get("roleRef")
    {
        errs.push(FieldError::invalid(
            "roleRef",
            r.clone(),
            "cannot change roleRef",
        ));
    }
}

fn subject(sub: &Value, namespaced: bool, path: &str, errs: &mut Vec<FieldError>) {
    let s = |f: &str| sub.get(f).and_then(Value::as_str).unwrap_or_default();
    let name = s("name");
    if name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    }
    match s("kind") {
        "ServiceAccount" => {
            if !name.is_empty() {
                for msg in names::dns1123_subdomain(name) {
                    errs.push(FieldError::invalid(format!("{path}.name"), name, msg));
                }
            }
            if !s("apiGroup").is_empty() {
                errs.push(FieldError::not_supported(
                    format!("{path}.apiGroup"),
                    s("apiGroup"),
                    &[""],
                ));
            }
            if !namespaced && s("namespace").is_empty() {
                errs.push(FieldError::required(format!("{path}.namespace"), ""));
            }
        }
        "User" | "Group" => {
            if s("apiGroup") != RBAC_GROUP {
                errs.push(FieldError::not_supported(
                    format!("{path}.apiGroup"),
                    s("apiGroup"),
                    &[RBAC_GROUP],
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            format!("{path}.kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

//! Validation per kind, with the field paths and messages of Kubernetes' validation code.

mod batch;
pub mod names;
mod other;
mod pod;
mod rbac;
mod scheduling;
mod service;
mod workloads;

use serde_json::{Map, Value};

use crate::status::FieldError;

pub use pod::validate_pod_spec;
pub use scheduling::SYSTEM_CLASSES;
pub use workloads::NO_CLAIMS;

/// Validates an object of `kind` for create (`old` is `None`) or update.
pub fn validate(
    group: &str,
    kind: &str,
    obj: &Value,
    old: Option<&Value>,
    namespaced: bool,
) -> Vec<FieldError> {
    let mut errs = metadata(kind, obj, namespaced);
    match (group, kind) {
        ("", "Pod") => pod::validate(obj, old, &mut errs),
        ("", "Service") => service::validate(obj, old, &mut errs),
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet") => {
            workloads::validate(kind, obj, old, &mut errs)
        }
        ("batch", "Job") => batch::job(obj, old, &mut errs),
        ("batch", "CronJob") => batch::cronjob(obj, &mut errs),
        ("", "ConfigMap") | ("", "Secret") => other::config_data(kind, obj, old, &mut errs),
        ("networking.k8s.io", "Ingress") => other::ingress(obj, &mut errs),
        ("networking.k8s.io", "NetworkPolicy") => other::network_policy(obj, &mut errs),
        ("discovery.k8s.io", "EndpointSlice") => other::endpoint_slice(obj, &mut errs),
        ("", "Endpoints") => other::endpoints(obj, &mut errs),
        ("", "Event") => other::event(obj, &mut errs),
        ("policy", "PodDisruptionBudget") => other::pod_disruption_budget(obj, &mut errs),
        ("", "ResourceQuota") => other::resource_quota(obj, &mut errs),
        ("scheduling.k8s.io", "PriorityClass") => scheduling::priority_class(obj, old, &mut errs),
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => {
            rbac::role(obj, namespaced, &mut errs)
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            rbac::binding(obj, old, namespaced, &mut errs)
        }
        _ => {}
    }
    if let Some(old) = old {
        for f in ["name", "namespace", "uid", "creationTimestamp"] {
            let (a, b) = (
                obj.pointer(&format!("/metadata/{f}")),
                old.pointer(&format!("/metadata/{f}")),
            );
            if f != "name" && f != "namespace" && a.is_none() {
                continue; // unset on update means "keep"
            }
            if a != b {
                errs.push(FieldError::invalid(
                    format!("metadata.{f}"),
                    a.cloned().unwrap_or(Value::Null),
                    "field is immutable",
                ));
            }
        }
    }
    errs
}

/// Which name syntax a kind uses.
fn name_rule(kind: &str) -> fn(&str) -> Vec<String> {
    match kind {
        "Namespace" => names::dns1123_label,
        "Service" => names::dns1035_label,
        "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => names::path_segment,
        _ => names::dns1123_subdomain,
    }
}

fn metadata(kind: &str, obj: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = Map::new();
    let meta = obj
        .get("metadata")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let name = meta.get("name").and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for msg in name_rule(kind)(name) {
            errs.push(FieldError::invalid("metadata.name", name, msg));
        }
    }
    if !namespaced
        && meta
            .get("namespace")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty())
    {
        errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    if let Some(Value::Object(labels)) = meta.get("labels") {
        for (k, v) in labels {
            for msg in names::qualified_name(k) {
                errs.push(FieldError::invalid("metadata.labels", k.as_str(), msg));
            }
            match v.as_str() {
                Some(s) => {
                    for msg in names::label_value(s) {
                        errs.push(FieldError::invalid("metadata.labels", s, msg));
                    }
                }
                None => errs.push(FieldError::invalid(
                    "metadata.labels",
                    v.clone(),
                    "label values must be strings",
                )),
            }
        }
    }
    if let Some(Value::Object(ann)) = meta.get("annotations") {
        let mut total = 0;
        for (k, v) in ann {
            for msg in names::qualified_name(&k.to_lowercase()) {
                errs.push(FieldError::invalid("metadata.annotations", k.as_str(), msg));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            errs.push(FieldError::too_long("metadata.annotations", "", 256 * 1024));
        }
    }
    if let Some(Value::Array(fins)) = meta.get("finalizers") {
        for (i, f) in fins.iter().enumerate() {
            let s = f.as_str().unwrap_or_default();
            for msg in names::qualified_name(s) {
                errs.push(FieldError::invalid(
                    format!("metadata.finalizers[{i}]"),
                    s,
                    msg,
                ));
            }
        }
    }
    errs
}

/// Port numbers: 1..=65535.
pub(crate) fn port_range(field: String, v: Option<&Value>, errs: &mut Vec<FieldError>) {
    match v.and_then(Value::as_i64) {
        None | Some(0) => errs.push(FieldError::required(field, "")),
        Some(p) if !(1..=65535).contains(&p) => errs.push(FieldError::invalid(
            field,
            p,
            "must be between 1 and 65535, inclusive",
        )),
        _ => {}
    }
}

pub(crate) const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

pub(crate) fn protocol(field: String, v: Option<&Value>, errs: &mut Vec<FieldError>) {
    match v.and_then(Value::as_str) {
        None => errs.push(FieldError::required(field, "")),
        Some(p) if !PROTOCOLS.contains(&p) => {
            errs.push(FieldError::not_supported(field, p, PROTOCOLS))
        }
        _ => {}
    }
}

/// IANA service names (port names): at most 15 characters, lowercase alphanumerics and '-', at least
/// one letter, no leading/trailing/double '-'.
pub(crate) fn port_name(field: String, name: &str, errs: &mut Vec<FieldError>) {
    let mut msgs = Vec::new();
    if name.len() > 15 {
        msgs.push("must be no more than 15 characters");
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        msgs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if name.contains("--") {
        msgs.push("must not contain consecutive hyphens");
    }
    if !name.bytes().any(|c| c.is_ascii_lowercase()) {
        msgs.push("must contain at least one letter (a-z)");
    }
    if name.starts_with('-') || name.ends_with('-') {
        msgs.push("must not begin or end with a hyphen");
    }
    for m in msgs {
        errs.push(FieldError::invalid(field.clone(), name, m));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_immutable_config_map_stays_immutable() {
        let old = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}});
        let unset = json!({"metadata": {"name": "c"}, "immutable": false, "data": {"a": "1"}});
        let errs = validate("", "ConfigMap", &unset, Some(&old), true);
        assert_eq!(
            errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["immutable: Forbidden: field is immutable when `immutable` is set"]
        );
        assert!(
            validate("", "Secret", &unset, Some(&old), true)
                .iter()
                .any(|e| e.to_string().starts_with("immutable: Forbidden"))
        );
        assert!(validate("", "ConfigMap", &old, Some(&old), true).is_empty());
    }

    #[test]
    fn metadata_rules() {
        let e = validate("", "ConfigMap", &json!({"metadata": {}}), None, true);
        assert_eq!(
            e[0].to_string(),
            "metadata.name: Required value: name or generateName is required"
        );
        let e = validate(
            "",
            "ConfigMap",
            &json!({"metadata": {"name": "Bad_Name"}}),
            None,
            true,
        );
        assert_eq!(e[0].field, "metadata.name");
        let e = validate(
            "",
            "Service",
            &json!({"metadata": {"name": "1svc"}, "spec": {"ports": [{"port": 80, "protocol": "TCP"}]}}),
            None,
            true,
        );
        assert!(e.iter().any(|e| e.field == "metadata.name"));
        let e = validate(
            "",
            "ConfigMap",
            &json!({"metadata": {"name": "x", "labels": {"a b": "c"}}}),
            None,
            true,
        );
        assert!(e.iter().any(|e| e.field == "metadata.labels"));
    }
}

//! Services.

use std::collections::HashSet;

use serde_json::Value;

use super::{port_name, port_range, protocol};
use crate::status::FieldError;

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const AFFINITY: &[&str] = &["ClientIP", "None"];

pub(super) fn validate(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if !TYPES.contains(&ty) {
        errs.push(FieldError::not_supported("spec.type", ty, TYPES));
    }
    if let Some(a) = spec.get("sessionAffinity").and_then(Value::as_str)
        && !AFFINITY.contains(&a)
    {
        errs.push(FieldError::not_supported(
            "spec.sessionAffinity",
            a,
            AFFINITY,
        ));
    }
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    let ports = spec
        .get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if ty == "ExternalName" {
        if spec
            .get("externalName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            errs.push(FieldError::required("spec.externalName", ""));
        }
    } else if ports.is_empty() && !headless {
        errs.push(FieldError::required("spec.ports", ""));
    }
    let mut names = HashSet::new();
    let mut seen = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            errs.push(FieldError::required(format!("{pp}.name"), ""));
        } else if !name.is_empty() {
            for m in super::names::dns1123_label(name) {
                errs.push(FieldError::invalid(format!("{pp}.name"), name, m));
            }
            if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(format!("{pp}.name"), name));
            }
        }
        port_range(format!("{pp}.port"), p.get("port"), errs);
        protocol(format!("{pp}.protocol"), p.get("protocol"), errs);
        let key = (p.get("port").cloned(), p.get("protocol").cloned());
        if !seen.insert(format!("{key:?}")) {
            errs.push(FieldError::duplicate(
                pp.clone(),
                format!(
                    "{}/{}",
                    key.0.unwrap_or_default(),
                    key.1
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default()
                ),
            ));
        }
        match p.get("targetPort") {
            Some(Value::Number(n)) => {
                let n = n.as_i64().unwrap_or(0);
                if !(1..=65535).contains(&n) {
                    errs.push(FieldError::invalid(
                        format!("{pp}.targetPort"),
                        n,
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
            Some(Value::String(s)) => port_name(format!("{pp}.targetPort"), s, errs),
            _ => {}
        }
        if let Some(np) = p.get("nodePort").and_then(Value::as_i64)
            && np != 0
            && ty != "NodePort"
            && ty != "LoadBalancer"
        {
            errs.push(FieldError::forbidden(
                format!("{pp}.nodePort"),
                "may not be used when `type` is 'ClusterIP'",
            ));
        }
    }
    if let Some(old) = old {
        let (a, b) = (spec.get("clusterIP"), old.pointer("/spec/clusterIP"));
        if a.is_some()
            && a != b
            && old.pointer("/spec/type").and_then(Value::as_str) != Some("ExternalName")
        {
            errs.push(FieldError::invalid(
                "spec.clusterIP",
                a.cloned().unwrap_or(Value::Null),
                "field is immutable",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_rules() {
        let mut e = Vec::new();
        validate(&json!({"spec": {"type": "ClusterIP"}}), None, &mut e);
        assert_eq!(e[0].to_string(), "spec.ports: Required value");
        let mut e = Vec::new();
        validate(
            &json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP"}]}}),
            None,
            &mut e,
        );
        assert_eq!(e[0].to_string(), "spec.ports[0].name: Required value");
        let mut e = Vec::new();
        validate(
            &json!({"spec": {"type": "Weird", "ports": [{"port": 80, "protocol": "TCP"}]}}),
            None,
            &mut e,
        );
        assert!(
            e[0].to_string()
                .starts_with("spec.type: Unsupported value: \"Weird\"")
        );
    }
}

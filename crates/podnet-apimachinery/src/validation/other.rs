//! ConfigMaps, Secrets, Ingresses, NetworkPolicies, EndpointSlices, Endpoints, Events.

use serde_json::Value;

use super::{port_range, protocol};
use crate::status::FieldError;

const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
const MAX_DATA: usize = 1024 * 1024;

pub(super) fn config_data(
    kind: &str,
    obj: &Value,
    old: Option<&Value>,
    errs: &mut Vec<FieldError>,
) {
    let fields: &[&str] = if kind == "Secret" {
        &["data", "stringData"]
    } else {
        &["data", "binaryData"]
    };
    let mut total = 0;
    for f in fields {
        if let Some(Value::Object(m)) = obj.get(*f) {
            for (k, v) in m {
                let ok = !k.is_empty()
                    && k.len() <= 253
                    && k.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
                if !ok {
                    errs.push(FieldError::invalid(
                        format!("{f}[{k}]"),
                        k.as_str(),
                        CONFIG_KEY_MSG,
                    ));
                }
                if k == "." || k == ".." {
                    errs.push(FieldError::invalid(
                        format!("{f}[{k}]"),
                        k.as_str(),
                        "must not be '.' or '..'",
                    ));
                }
                total += v.as_str().map_or(0, str::len);
            }
        }
    }
    if total > MAX_DATA {
        errs.push(FieldError::too_long("data", "", MAX_DATA));
    }
    if let Some(old) = old {
        if old.get("immutable") == Some(&Value::Bool(true)) {
            // once immutable, always immutable: unsetting the flag would open the data again
            if obj.get("immutable") != Some(&Value::Bool(true)) {
                errs.push(FieldError::forbidden(
                    "immutable",
                    "field is immutable when `immutable` is set",
                ));
            }
            for f in fields {
                if obj.get(*f) != old.get(*f) {
                    errs.push(FieldError::forbidden(
                        *f,
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
        }
        if kind == "Secret" && obj.get("type") != old.get("type") {
            errs.push(FieldError::invalid(
                "type",
                obj.get("type").cloned().unwrap_or(Value::Null),
                "field is immutable",
            ));
        }
    }
}

pub(super) fn ingress(obj: &Value, errs: &mut Vec<FieldError>) {
    let rules = obj
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if rules.is_empty() && obj.pointer("/spec/defaultBackend").is_none() {
        errs.push(FieldError::invalid(
            "spec",
            obj.get("spec").cloned().unwrap_or(Value::Null),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    for (i, r) in rules.iter().enumerate() {
        let Some(paths) = r.pointer("/http/paths").and_then(Value::as_array) else {
            continue;
        };
        for (j, p) in paths.iter().enumerate() {
            let pp = format!("spec.rules[{i}].http.paths[{j}]");
            match p.get("pathType").and_then(Value::as_str) {
                None => errs.push(FieldError::required(
                    format!("{pp}.pathType"),
                    "pathType must be specified",
                )),
                Some(t) if !["Exact", "Prefix", "ImplementationSpecific"].contains(&t) => errs
                    .push(FieldError::not_supported(
                        format!("{pp}.pathType"),
                        t,
                        &["Exact", "ImplementationSpecific", "Prefix"],
                    )),
                _ => {}
            }
            if p.pointer("/backend/service").is_none() && p.pointer("/backend/resource").is_none() {
                errs.push(FieldError::invalid(
                    format!("{pp}.backend"),
                    p.get("backend").cloned().unwrap_or(Value::Null),
                    "one backend must be specified",
                ));
            }
        }
    }
}

pub(super) fn network_policy(obj: &Value, errs: &mut Vec<FieldError>) {
    for dir in ["ingress", "egress"] {
        if let Some(rules) = obj
            .pointer(&format!("/spec/{dir}"))
            .and_then(Value::as_array)
        {
            for (i, r) in rules.iter().enumerate() {
                if let Some(ports) = r.get("ports").and_then(Value::as_array) {
                    for (j, p) in ports.iter().enumerate() {
                        protocol(
                            format!("spec.{dir}[{i}].ports[{j}].protocol"),
                            p.get("protocol"),
                            errs,
                        );
                    }
                }
            }
        }
    }
    if let Some(types) = obj.pointer("/spec/policyTypes").and_then(Value::as_array) {
        for (i, t) in types.iter().enumerate() {
            let s = t.as_str().unwrap_or_default();
            if s != "Ingress" && s != "Egress" {
                errs.push(FieldError::not_supported(
                    format!("spec.policyTypes[{i}]"),
                    s,
                    &["Egress", "Ingress"],
                ));
            }
        }
    }
}

pub(super) fn endpoint_slice(obj: &Value, errs: &mut Vec<FieldError>) {
    match obj.get("addressType").and_then(Value::as_str) {
        None => errs.push(FieldError::required("addressType", "")),
        Some(t) if !["IPv4", "IPv6", "FQDN"].contains(&t) => errs.push(FieldError::not_supported(
            "addressType",
            t,
            &["FQDN", "IPv4", "IPv6"],
        )),
        _ => {}
    }
    if let Some(eps) = obj.get("endpoints").and_then(Value::as_array) {
        for (i, e) in eps.iter().enumerate() {
            if e.get("addresses")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            {
                errs.push(FieldError::required(
                    format!("endpoints[{i}].addresses"),
                    "must contain at least 1 address",
                ));
            }
        }
    }
}

pub(super) fn endpoints(obj: &Value, errs: &mut Vec<FieldError>) {
    if let Some(subsets) = obj.get("subsets").and_then(Value::as_array) {
        for (i, s) in subsets.iter().enumerate() {
            if let Some(ports) = s.get("ports").and_then(Value::as_array) {
                for (j, p) in ports.iter().enumerate() {
                    port_range(format!("subsets[{i}].ports[{j}].port"), p.get("port"), errs);
                }
            }
        }
    }
}

pub(super) fn event(obj: &Value, errs: &mut Vec<FieldError>) {
    if obj.pointer("/involvedObject").is_none() {
        errs.push(FieldError::required("involvedObject", ""));
    }
}

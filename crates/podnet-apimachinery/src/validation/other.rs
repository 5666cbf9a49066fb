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

/// NetworkPolicy as upstream validates it (pkg/apis/networking/validation): selectors, peers (one
/// kind each, ipBlock alone), ipBlock CIDRs with strict-subset exceptions, ports (number or IANA
/// name, endPort only after a numeric port and not below it), protocols and policyTypes.
pub(super) fn network_policy(obj: &Value, errs: &mut Vec<FieldError>) {
    label_selector("spec.podSelector", obj.pointer("/spec/podSelector"), errs);
    for (dir, peers) in [("ingress", "from"), ("egress", "to")] {
        let rules = obj
            .pointer(&format!("/spec/{dir}"))
            .and_then(Value::as_array);
        for (i, r) in rules.into_iter().flatten().enumerate() {
            for (j, p) in r
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                policy_port(&format!("spec.{dir}[{i}].ports[{j}]"), p, errs);
            }
            for (j, p) in r
                .get(peers)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                policy_peer(&format!("spec.{dir}[{i}].{peers}[{j}]"), p, errs);
            }
        }
    }
    if let Some(types) = obj.pointer("/spec/policyTypes").and_then(Value::as_array) {
        if types.len() > 2 {
            errs.push(FieldError::invalid(
                "spec.policyTypes",
                Value::Array(types.clone()),
                "may not specify more than two policyTypes",
            ));
            return;
        }
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

fn label_selector(field: &str, sel: Option<&Value>, errs: &mut Vec<FieldError>) {
    if let Some(sel) = sel.filter(|s| !s.is_null())
        && let Err(e) = crate::selector::LabelSelector::from_object(Some(sel))
    {
        errs.push(FieldError::invalid(field, sel.clone(), e.to_string()));
    }
}

fn policy_port(at: &str, p: &Value, errs: &mut Vec<FieldError>) {
    if let Some(proto) = p.get("protocol").filter(|v| !v.is_null()) {
        protocol(format!("{at}.protocol"), Some(proto), errs);
    }
    let end = p.get("endPort").and_then(Value::as_i64);
    match p.get("port").filter(|v| !v.is_null()) {
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(0);
            if !(1..=65535).contains(&n) {
                errs.push(FieldError::invalid(
                    format!("{at}.port"),
                    n,
                    "must be between 1 and 65535, inclusive",
                ));
            }
            if let Some(e) = end {
                if e < n {
                    errs.push(FieldError::invalid(
                        format!("{at}.endPort"),
                        e,
                        "must be greater than or equal to `port`",
                    ));
                }
                if !(1..=65535).contains(&e) {
                    errs.push(FieldError::invalid(
                        format!("{at}.endPort"),
                        e,
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
        Some(Value::String(name)) => {
            if let Some(e) = end {
                errs.push(FieldError::invalid(
                    format!("{at}.endPort"),
                    e,
                    "may not be specified when `port` is non-numeric",
                ));
            }
            super::port_name(format!("{at}.port"), name, errs);
        }
        Some(other) => errs.push(FieldError::invalid(
            format!("{at}.port"),
            other.clone(),
            "must be a port number or name",
        )),
        None => {
            if let Some(e) = end {
                errs.push(FieldError::invalid(
                    format!("{at}.endPort"),
                    e,
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
}

fn policy_peer(at: &str, p: &Value, errs: &mut Vec<FieldError>) {
    let present = |k: &str| p.get(k).is_some_and(|v| !v.is_null());
    let mut kinds = 0;
    for k in ["podSelector", "namespaceSelector"] {
        if present(k) {
            kinds += 1;
            label_selector(&format!("{at}.{k}"), p.get(k), errs);
        }
    }
    if present("ipBlock") {
        kinds += 1;
        ip_block(&format!("{at}.ipBlock"), &p["ipBlock"], errs);
    }
    if kinds == 0 {
        errs.push(FieldError::required(at, "must specify a peer"));
    } else if kinds > 1 && present("ipBlock") {
        errs.push(FieldError::forbidden(
            at,
            "may not specify both ipBlock and another peer",
        ));
    }
}

/// A CIDR as (address bits, prefix length, IPv6?), Go's ParseCIDR leniency included (host bits set).
fn cidr(s: &str) -> Option<(u128, u8, bool)> {
    let (addr, len) = s.split_once('/')?;
    let len: u8 = len.parse().ok()?;
    match addr.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(a) if len <= 32 => Some((u128::from(u32::from(a)), len, false)),
        std::net::IpAddr::V6(a) if len <= 128 => Some((u128::from(a), len, true)),
        _ => None,
    }
}

fn ip_block(at: &str, b: &Value, errs: &mut Vec<FieldError>) {
    let Some(c) = b
        .get("cidr")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
    else {
        errs.push(FieldError::required(format!("{at}.cidr"), ""));
        return;
    };
    let Some((net, len, v6)) = cidr(c) else {
        errs.push(FieldError::invalid(
            format!("{at}.cidr"),
            c,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        ));
        return;
    };
    let bits = if v6 { 128 } else { 32 };
    let mask = |l: u8| {
        if l == 0 {
            0
        } else {
            (!0u128 << (bits - u32::from(l))) & if v6 { !0 } else { 0xffff_ffff }
        }
    };
    for (i, e) in b
        .get("except")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let es = e.as_str().unwrap_or_default();
        let field = format!("{at}.except[{i}]");
        match cidr(es) {
            None => errs.push(FieldError::invalid(
                field,
                es,
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            )),
            Some((enet, elen, ev6)) => {
                if ev6 != v6 || elen <= len || (enet & mask(len)) != (net & mask(len)) {
                    errs.push(FieldError::invalid(
                        field,
                        es,
                        "must be a strict subset of `cidr`",
                    ));
                }
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

/// PodDisruptionBudget: one of minAvailable and maxUnavailable, non-negative, percentages at most 100%.
pub(super) fn pod_disruption_budget(obj: &Value, errs: &mut Vec<FieldError>) {
    let min = obj.pointer("/spec/minAvailable");
    let max = obj.pointer("/spec/maxUnavailable");
    if min.is_some() && max.is_some() {
        errs.push(FieldError::invalid(
            "spec",
            obj.get("spec").cloned().unwrap_or(Value::Null),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for (f, v) in [("minAvailable", min), ("maxUnavailable", max)] {
        let ok = match v {
            None => true,
            Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n >= 0),
            Some(Value::String(s)) => s
                .strip_suffix('%')
                .and_then(|p| p.parse::<i64>().ok())
                .is_some_and(|p| (0..=100).contains(&p)),
            _ => false,
        };
        if !ok {
            errs.push(FieldError::invalid(
                format!("spec.{f}"),
                v.cloned().unwrap_or(Value::Null),
                "must be a non-negative integer or a percentage between 0% and 100%",
            ));
        }
    }
}

/// ResourceQuota: quantities that parse; scopes are not supported here and refused rather than ignored.
pub(super) fn resource_quota(obj: &Value, errs: &mut Vec<FieldError>) {
    for (k, v) in obj
        .pointer("/spec/hard")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let ok = v
            .as_str()
            .and_then(crate::scheduling::quantity::parse_milli)
            .is_some_and(|q| q >= 0);
        if !ok {
            errs.push(FieldError::invalid(
                format!("spec.hard[{k}]"),
                v.clone(),
                "must be a non-negative quantity",
            ));
        }
    }
    for f in ["scopes", "scopeSelector"] {
        if obj
            .pointer(&format!("/spec/{f}"))
            .is_some_and(|v| !v.is_null() && v != &Value::Array(vec![]))
        {
            errs.push(FieldError::forbidden(
                format!("spec.{f}"),
                "quota scopes are not supported by this cluster",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(spec: Value) -> Vec<String> {
        let mut errs = Vec::new();
        network_policy(&json!({"spec": spec}), &mut errs);
        errs.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn valid_policies_pass() {
        assert_eq!(
            errors(
                json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"a": "b"}}, "namespaceSelector": {}},
                                      {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                             "ports": [{"port": 80}, {"port": 81, "endPort": 90, "protocol": "TCP"}, {"port": "http"}, {"protocol": "SCTP"}]}],
                "egress": [{}]})
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn broken_ports_peers_and_blocks_are_refused_as_upstream_words_it() {
        let e = errors(json!({"podSelector": {}, "ingress": [{
            "ports": [{"port": 0}, {"port": 90, "endPort": 80}, {"port": "http", "endPort": 90},
                      {"endPort": 9}, {"port": "Bad_Name"}, {"protocol": "ICMP"}],
            "from": [{}, {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}},
                     {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.0.0/8", "192.168.0.0/24", "x"]}},
                     {"ipBlock": {"cidr": "nope"}},
                     {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}]}]}));
        let has = |needle: &str| {
            assert!(
                e.iter().any(|m| m.contains(needle)),
                "{needle:?} not in {e:#?}"
            );
        };
        has("spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535");
        has(
            "spec.ingress[0].ports[1].endPort: Invalid value: 80: must be greater than or equal to `port`",
        );
        has(
            "spec.ingress[0].ports[2].endPort: Invalid value: 90: may not be specified when `port` is non-numeric",
        );
        has(
            "spec.ingress[0].ports[3].endPort: Invalid value: 9: may not be specified when `port` is not specified",
        );
        has("spec.ingress[0].ports[4].port");
        has("spec.ingress[0].ports[5].protocol: Unsupported value: \"ICMP\"");
        has("spec.ingress[0].from[0]: Required value: must specify a peer");
        has("spec.ingress[0].from[1]: Forbidden: may not specify both ipBlock and another peer");
        has(
            "spec.ingress[0].from[2].ipBlock.except[0]: Invalid value: \"10.0.0.0/8\": must be a strict subset of `cidr`",
        );
        has(
            "spec.ingress[0].from[2].ipBlock.except[1]: Invalid value: \"192.168.0.0/24\": must be a strict subset of `cidr`",
        );
        has("spec.ingress[0].from[2].ipBlock.except[2]: Invalid value: \"x\"");
        has("spec.ingress[0].from[3].ipBlock.cidr: Invalid value: \"nope\"");
        has("spec.ingress[0].from[4].podSelector");
        assert_eq!(
            errors(json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress", "Ingress"]})),
            vec![
                "spec.policyTypes: Invalid value: [\"Ingress\",\"Egress\",\"Ingress\"]: may not specify more than two policyTypes"
            ]
        );
    }
}

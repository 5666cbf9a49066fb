//! Pods and pod templates.

use std::collections::HashSet;

use serde_json::Value;

use super::{names, port_name, port_range, protocol};
use crate::status::FieldError;

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];

pub(super) fn validate(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    match obj.get("spec") {
        Some(spec) => validate_pod_spec(spec, "spec", errs),
        None => errs.push(FieldError::required("spec.containers", "")),
    }
    if let Some(old) = old {
        update(obj, old, errs);
    }
}

/// Validates a PodSpec at `path` (`spec` or `spec.template.spec`).
pub fn validate_pod_spec(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let mut names_seen = HashSet::new();
    match spec.get("containers").and_then(Value::as_array) {
        None => errs.push(FieldError::required(format!("{path}.containers"), "")),
        Some(cs) if cs.is_empty() => {
            errs.push(FieldError::required(format!("{path}.containers"), ""))
        }
        Some(cs) => {
            for (i, c) in cs.iter().enumerate() {
                container(c, &format!("{path}.containers[{i}]"), &mut names_seen, errs);
            }
        }
    }
    if let Some(cs) = spec.get("initContainers").and_then(Value::as_array) {
        for (i, c) in cs.iter().enumerate() {
            container(
                c,
                &format!("{path}.initContainers[{i}]"),
                &mut names_seen,
                errs,
            );
        }
    }
    if let Some(rp) = spec.get("restartPolicy").and_then(Value::as_str)
        && !RESTART_POLICIES.contains(&rp)
    {
        errs.push(FieldError::not_supported(
            format!("{path}.restartPolicy"),
            rp,
            RESTART_POLICIES,
        ));
    }
    if let Some(dp) = spec.get("dnsPolicy").and_then(Value::as_str)
        && !DNS_POLICIES.contains(&dp)
    {
        errs.push(FieldError::not_supported(
            format!("{path}.dnsPolicy"),
            dp,
            DNS_POLICIES,
        ));
    }
    if let Some(t) = spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        && t < 0
    {
        errs.push(FieldError::invalid(
            format!("{path}.terminationGracePeriodSeconds"),
            t,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(n) = spec.get("nodeName").and_then(Value::as_str) {
        for m in names::dns1123_subdomain(n) {
            errs.push(FieldError::invalid(format!("{path}.nodeName"), n, m));
        }
    }
    let mut vols = HashSet::new();
    if let Some(vs) = spec.get("volumes").and_then(Value::as_array) {
        for (i, v) in vs.iter().enumerate() {
            let n = v.get("name").and_then(Value::as_str).unwrap_or_default();
            let f = format!("{path}.volumes[{i}].name");
            if n.is_empty() {
                errs.push(FieldError::required(f, ""));
            } else {
                for m in names::dns1123_label(n) {
                    errs.push(FieldError::invalid(f.clone(), n, m));
                }
                if !vols.insert(n.to_string()) {
                    errs.push(FieldError::duplicate(f, n));
                }
            }
        }
    }
}

fn container(c: &Value, path: &str, seen: &mut HashSet<String>, errs: &mut Vec<FieldError>) {
    let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else {
        for m in names::dns1123_label(name) {
            errs.push(FieldError::invalid(format!("{path}.name"), name, m));
        }
        if !seen.insert(name.to_string()) {
            errs.push(FieldError::duplicate(format!("{path}.name"), name));
        }
    }
    if c.get("image")
        .and_then(Value::as_str)
        .is_none_or(|s| s.trim().is_empty())
    {
        errs.push(FieldError::required(format!("{path}.image"), ""));
    }
    if let Some(p) = c.get("imagePullPolicy").and_then(Value::as_str)
        && !PULL_POLICIES.contains(&p)
    {
        errs.push(FieldError::not_supported(
            format!("{path}.imagePullPolicy"),
            p,
            PULL_POLICIES,
        ));
    }
    let mut port_names = HashSet::new();
    if let Some(ports) = c.get("ports").and_then(Value::as_array) {
        for (i, p) in ports.iter().enumerate() {
            let pp = format!("{path}.ports[{i}]");
            port_range(format!("{pp}.containerPort"), p.get("containerPort"), errs);
            if let Some(hp) = p.get("hostPort").and_then(Value::as_i64)
                && hp != 0
                && !(1..=65535).contains(&hp)
            {
                errs.push(FieldError::invalid(
                    format!("{pp}.hostPort"),
                    hp,
                    "must be between 1 and 65535, inclusive",
                ));
            }
            protocol(format!("{pp}.protocol"), p.get("protocol"), errs);
            if let Some(n) = p.get("name").and_then(Value::as_str) {
                port_name(format!("{pp}.name"), n, errs);
                if !port_names.insert(n.to_string()) {
                    errs.push(FieldError::duplicate(format!("{pp}.name"), n));
                }
            }
        }
    }
    if let Some(env) = c.get("env").and_then(Value::as_array) {
        for (i, e) in env.iter().enumerate() {
            if e.get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                errs.push(FieldError::required(format!("{path}.env[{i}].name"), ""));
            }
        }
    }
    if let Some(vms) = c.get("volumeMounts").and_then(Value::as_array) {
        for (i, vm) in vms.iter().enumerate() {
            if vm
                .get("mountPath")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                errs.push(FieldError::required(
                    format!("{path}.volumeMounts[{i}].mountPath"),
                    "",
                ));
            }
        }
    }
}

/// Pod updates may only change images, activeDeadlineSeconds, tolerations (additions) and a few more.
fn update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let strip = |p: &Value| -> Value {
        let mut s = p.get("spec").cloned().unwrap_or(Value::Null);
        for list in ["containers", "initContainers"] {
            if let Some(Value::Array(cs)) = s.get_mut(list) {
                for c in cs {
                    if let Value::Object(m) = c {
                        m.remove("image");
                    }
                }
            }
        }
        if let Value::Object(m) = &mut s {
            for f in [
                // changed through the ephemeralcontainers subresource, checked below
                "ephemeralContainers",
                "activeDeadlineSeconds",
                "tolerations",
                "terminationGracePeriodSeconds",
                "schedulingGates",
            ] {
                m.remove(f);
            }
            // nodeName may be set once, by binding
            if old.pointer("/spec/nodeName").is_none() {
                m.remove("nodeName");
            }
        }
        s
    };
    if strip(new) != strip(old) {
        errs.push(FieldError::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
    ephemeral_update(new, old, errs);
}

/// Ephemeral containers are only added: each keeps its spec once it exists, names are unique among
/// all of the pod's containers, and they have no ports, probes, lifecycle or resources (upstream's
/// validateEphemeralContainers).
fn ephemeral_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let list = |p: &Value| -> Vec<Value> {
        p.pointer("/spec/ephemeralContainers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (now, before) = (list(new), list(old));
    for b in &before {
        let name = b["name"].as_str().unwrap_or_default();
        match now.iter().find(|c| c["name"] == name) {
            None => errs.push(FieldError::forbidden(
                "spec.ephemeralContainers",
                format!("existing ephemeral containers {name:?} may not be removed"),
            )),
            Some(c) if c != b => errs.push(FieldError::forbidden(
                "spec.ephemeralContainers",
                format!("existing ephemeral containers {name:?} may not be changed"),
            )),
            _ => {}
        }
    }
    let mut names: HashSet<String> = ["containers", "initContainers"]
        .iter()
        .filter_map(|l| new.pointer(&format!("/spec/{l}")).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect();
    for (i, c) in now.iter().enumerate() {
        let path = format!("spec.ephemeralContainers[{i}]");
        let name = c["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            errs.push(FieldError::required(format!("{path}.name"), ""));
        } else if !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(format!("{path}.name"), name));
        }
        if c["image"].as_str().is_none_or(str::is_empty) {
            errs.push(FieldError::required(format!("{path}.image"), ""));
        }
        for f in [
            "ports",
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "lifecycle",
            "resources",
            "resizePolicy",
            "restartPolicy",
        ] {
            let set = match c.get(f) {
                None | Some(Value::Null) => false,
                Some(Value::Object(m)) => !m.is_empty(),
                Some(Value::Array(a)) => !a.is_empty(),
                Some(_) => true,
            };
            if set {
                errs.push(FieldError::forbidden(
                    format!("{path}.{f}"),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
        // Mounts name the pod's volumes, without subPath (upstream's ephemeral container rules).
        let volumes: HashSet<&str> = new
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v["name"].as_str())
            .collect();
        for (j, m) in c["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let mname = m["name"].as_str().unwrap_or_default();
            if !volumes.contains(mname) {
                errs.push(FieldError::not_found(
                    format!("{path}.volumeMounts[{j}].name"),
                    mname,
                ));
            }
            if m["subPath"].as_str().is_some_and(|x| !x.is_empty()) {
                errs.push(FieldError::forbidden(
                    format!("{path}.volumeMounts[{j}].subPath"),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
        // The target may be any container of the pod, an init container too.
        if let Some(t) = c["targetContainerName"].as_str()
            && !["containers", "initContainers"].iter().any(|l| {
                new.pointer(&format!("/spec/{l}"))
                    .and_then(Value::as_array)
                    .is_some_and(|cs| cs.iter().any(|x| x["name"] == t))
            })
        {
            errs.push(FieldError::not_found(
                format!("{path}.targetContainerName"),
                t,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errs(pod: Value) -> Vec<String> {
        let mut e = Vec::new();
        validate(&pod, None, &mut e);
        e.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn pod_rules() {
        assert_eq!(
            errs(json!({"spec": {}})),
            vec!["spec.containers: Required value"]
        );
        let e = errs(
            json!({"spec": {"restartPolicy": "Sometimes", "containers": [
            {"name": "a", "image": "x", "ports": [{"containerPort": 80, "protocol": "XYZ"}]},
            {"name": "a"}]}}),
        );
        assert!(e.contains(&"spec.containers[0].ports[0].protocol: Unsupported value: \"XYZ\": supported values: \"SCTP\", \"TCP\", \"UDP\"".to_string()), "{e:?}");
        assert!(e.contains(&"spec.containers[1].name: Duplicate value: \"a\"".to_string()));
        assert!(e.contains(&"spec.containers[1].image: Required value".to_string()));
        assert!(
            e.iter()
                .any(|m| m.starts_with("spec.restartPolicy: Unsupported value: \"Sometimes\""))
        );
        let e = errs(
            json!({"spec": {"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 70000, "protocol": "TCP"}]}]}}),
        );
        assert_eq!(
            e,
            vec![
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"
            ]
        );
    }

    #[test]
    fn ephemeral_containers_are_only_added() {
        let old = json!({"spec": {"containers": [{"name": "a", "image": "x"}],
            "ephemeralContainers": [{"name": "debugger-1", "image": "busybox"}]}});
        let texts = |new: Value| {
            let mut e = Vec::new();
            update(&new, &old, &mut e);
            e.iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        let added = json!({"spec": {"containers": [{"name": "a", "image": "x"}], "ephemeralContainers": [
            {"name": "debugger-1", "image": "busybox"}, {"name": "debugger-2", "image": "busybox", "targetContainerName": "a"}]}});
        assert!(texts(added).is_empty());
        let removed = json!({"spec": {"containers": [{"name": "a", "image": "x"}], "ephemeralContainers": []}});
        assert_eq!(
            texts(removed),
            [
                "spec.ephemeralContainers: Forbidden: existing ephemeral containers \"debugger-1\" may not be removed"
            ]
        );
        let bad = json!({"spec": {"containers": [{"name": "a", "image": "x"}], "ephemeralContainers": [
            {"name": "debugger-1", "image": "busybox"}, {"name": "a", "image": "busybox", "ports": [{"containerPort": 80}], "targetContainerName": "zz"}]}});
        assert_eq!(
            texts(bad),
            [
                "spec.ephemeralContainers[1].name: Duplicate value: \"a\"",
                "spec.ephemeralContainers[1].ports: Forbidden: cannot be set for an Ephemeral Container",
                "spec.ephemeralContainers[1].targetContainerName: Not found: \"zz\"",
            ]
        );
        let mounts = json!({"spec": {"containers": [{"name": "a", "image": "x"}], "initContainers": [{"name": "init", "image": "x"}],
            "volumes": [{"name": "data", "emptyDir": {}}], "ephemeralContainers": [
            {"name": "d", "image": "busybox", "restartPolicy": "Always", "targetContainerName": "init",
             "volumeMounts": [{"name": "nope", "mountPath": "/x"}, {"name": "data", "mountPath": "/d", "subPath": "s"}]}]}});
        let mut e = Vec::new();
        ephemeral_update(&mounts, &json!({"spec": {}}), &mut e);
        assert_eq!(
            e.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "spec.ephemeralContainers[0].restartPolicy: Forbidden: cannot be set for an Ephemeral Container",
                "spec.ephemeralContainers[0].volumeMounts[0].name: Not found: \"nope\"",
                "spec.ephemeralContainers[0].volumeMounts[1].subPath: Forbidden: cannot be set for an Ephemeral Container",
            ]
        );
    }

    #[test]
    fn pod_updates_are_restricted() {
        let old = json!({"spec": {"containers": [{"name": "a", "image": "x"}]}});
        let mut e = Vec::new();
        validate(
            &json!({"spec": {"containers": [{"name": "a", "image": "y"}]}}),
            Some(&old),
            &mut e,
        );
        assert!(e.is_empty());
        validate(
            &json!({"spec": {"containers": [{"name": "b", "image": "y"}]}}),
            Some(&old),
            &mut e,
        );
        assert_eq!(e[0].field, "spec");
    }
}

//! Deployments, ReplicaSets, DaemonSets and StatefulSets.

use serde_json::Value;

use super::pod::validate_pod_spec;
use crate::selector::LabelSelector;
use crate::status::FieldError;

/// The selector and pod template every workload has: a non-empty selector matching the template's
/// labels, a valid pod spec, and the restart policies the kind allows.
pub(super) fn selector_and_template(
    spec: &Value,
    path: &str,
    kind_word: &str,
    restart_policies: &[&'static str],
    errs: &mut Vec<FieldError>,
) {
    match spec.get("selector") {
        None | Some(Value::Null) => errs.push(FieldError::required(format!("{path}.selector"), "")),
        Some(sel) => match LabelSelector::from_object(Some(sel)) {
            Err(e) => errs.push(FieldError::invalid(
                format!("{path}.selector"),
                sel.clone(),
                e.0,
            )),
            Ok(s) if s.is_empty() => errs.push(FieldError::invalid(
                format!("{path}.selector"),
                sel.clone(),
                format!("empty selector is invalid for {kind_word}"),
            )),
            Ok(s) => {
                let labels = spec
                    .pointer("/template/metadata/labels")
                    .and_then(Value::as_object);
                if !s.matches(labels) {
                    errs.push(FieldError::invalid(
                        format!("{path}.template.metadata.labels"),
                        spec.pointer("/template/metadata/labels")
                            .cloned()
                            .unwrap_or(Value::Null),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        },
    }
    match spec.pointer("/template/spec") {
        Some(ps) => {
            validate_pod_spec(ps, &format!("{path}.template.spec"), errs);
            // unset only before defaulting (which sets Always)
            if let Some(rp) = ps.get("restartPolicy").and_then(Value::as_str)
                && !restart_policies.contains(&rp)
            {
                errs.push(FieldError::not_supported(
                    format!("{path}.template.spec.restartPolicy"),
                    rp,
                    restart_policies,
                ));
            }
        }
        None => errs.push(FieldError::required(
            format!("{path}.template.spec.containers"),
            "",
        )),
    }
}

/// A non-negative integer field, when set.
pub(super) fn non_negative(spec: &Value, path: &str, field: &str, errs: &mut Vec<FieldError>) {
    if let Some(v) = spec.get(field).and_then(Value::as_i64)
        && v < 0
    {
        errs.push(FieldError::invalid(
            format!("{path}.{field}"),
            v,
            "must be greater than or equal to 0",
        ));
    }
}

/// An int-or-percent (`maxSurge`, `maxUnavailable`); returns whether it is non-zero.
fn int_or_percent(v: Option<&Value>, field: &str, errs: &mut Vec<FieldError>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(0);
            if n < 0 {
                errs.push(FieldError::invalid(
                    field,
                    n,
                    "must be greater than or equal to 0",
                ));
            }
            n != 0
        }
        Some(Value::String(s)) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) => {
                if p > 100 {
                    errs.push(FieldError::invalid(
                        field,
                        s.as_str(),
                        "must not be greater than 100%",
                    ));
                }
                p != 0
            }
            None => {
                errs.push(FieldError::invalid(
                    field,
                    s.as_str(),
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                ));
                false
            }
        },
        Some(other) => {
            errs.push(FieldError::invalid(
                field,
                other.clone(),
                "must be an integer or percentage (e.g '5%')",
            ));
            false
        }
    }
}

fn selector_immutable(spec: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    if let Some(old) = old {
        let (a, b) = (spec.get("selector"), old.pointer("/spec/selector"));
        if a != b {
            errs.push(FieldError::invalid(
                "spec.selector",
                a.cloned().unwrap_or(Value::Null),
                "field is immutable",
            ));
        }
    }
}

pub(super) fn validate(kind: &str, obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    non_negative(&spec, "spec", "replicas", errs);
    non_negative(&spec, "spec", "minReadySeconds", errs);
    non_negative(&spec, "spec", "revisionHistoryLimit", errs);
    let word = kind.to_lowercase();
    selector_and_template(&spec, "spec", &word, &["Always"], errs);
    if (kind == "DaemonSet" || kind == "StatefulSet")
        && spec
            .pointer("/template/spec/activeDeadlineSeconds")
            .is_some_and(|v| !v.is_null())
    {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
    match kind {
        "Deployment" => deployment_strategy(&spec, errs),
        "DaemonSet" => daemonset_strategy(&spec, errs),
        "StatefulSet" => statefulset(&spec, old, errs),
        _ => {}
    }
    selector_immutable(&spec, old, errs);
}

fn deployment_strategy(spec: &Value, errs: &mut Vec<FieldError>) {
    let Some(t) = spec.pointer("/strategy/type").and_then(Value::as_str) else {
        return;
    };
    if t != "RollingUpdate" && t != "Recreate" {
        errs.push(FieldError::not_supported(
            "spec.strategy.type",
            t,
            &["Recreate", "RollingUpdate"],
        ));
    }
    if t == "Recreate" && spec.pointer("/strategy/rollingUpdate").is_some() {
        errs.push(FieldError::forbidden(
            "spec.strategy.rollingUpdate",
            "may not be specified when strategy `type` is 'Recreate'",
        ));
    }
    if t == "RollingUpdate" {
        let ru = spec.pointer("/strategy/rollingUpdate");
        let surge = int_or_percent(
            ru.and_then(|r| r.get("maxSurge")),
            "spec.strategy.rollingUpdate.maxSurge",
            errs,
        );
        let unavailable = int_or_percent(
            ru.and_then(|r| r.get("maxUnavailable")),
            "spec.strategy.rollingUpdate.maxUnavailable",
            errs,
        );
        if ru.is_some() && !surge && !unavailable {
            errs.push(FieldError::invalid(
                "spec.strategy.rollingUpdate.maxUnavailable",
                ru.and_then(|r| r.get("maxUnavailable"))
                    .cloned()
                    .unwrap_or(Value::Null),
                "may not be 0 when `maxSurge` is 0",
            ));
        }
    }
}

/// DaemonSets roll with either a surge or unavailable pods, never both (upstream's
/// ValidateRollingUpdateDaemonSet).
fn daemonset_strategy(spec: &Value, errs: &mut Vec<FieldError>) {
    let Some(t) = spec.pointer("/updateStrategy/type").and_then(Value::as_str) else {
        return;
    };
    match t {
        "OnDelete" => {}
        "RollingUpdate" => {
            let ru = spec.pointer("/updateStrategy/rollingUpdate");
            let surge = int_or_percent(
                ru.and_then(|r| r.get("maxSurge")),
                "spec.updateStrategy.rollingUpdate.maxSurge",
                errs,
            );
            let unavailable = int_or_percent(
                ru.and_then(|r| r.get("maxUnavailable")),
                "spec.updateStrategy.rollingUpdate.maxUnavailable",
                errs,
            );
            match (unavailable, surge) {
                (true, true) => errs.push(FieldError::invalid(
                    "spec.updateStrategy.rollingUpdate.maxSurge",
                    ru.and_then(|r| r.get("maxSurge"))
                        .cloned()
                        .unwrap_or(Value::Null),
                    "may not be set when maxUnavailable is non-zero",
                )),
                (false, false) => errs.push(FieldError::required(
                    "spec.updateStrategy.rollingUpdate.maxUnavailable",
                    "cannot be 0 when maxSurge is 0",
                )),
                _ => {}
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.updateStrategy.type",
            other,
            &["OnDelete", "RollingUpdate"],
        )),
    }
}

/// The PersistentVolumeClaim API is not served yet: a StatefulSet whose pods need claims is refused
/// rather than run without its volumes.
pub const NO_CLAIMS: &str = "volumeClaimTemplates need PersistentVolumeClaims (core/v1 persistentvolumeclaims), which this cluster does not serve yet; remove them or use a volume of the pod template (emptyDir, hostPath)";

fn statefulset(spec: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    if let Some(p) = spec.get("podManagementPolicy").and_then(Value::as_str)
        && p != "OrderedReady"
        && p != "Parallel"
    {
        errs.push(FieldError::not_supported(
            "spec.podManagementPolicy",
            p,
            &["OrderedReady", "Parallel"],
        ));
    }
    match spec.pointer("/updateStrategy/type").and_then(Value::as_str) {
        None | Some("RollingUpdate") => {
            if let Some(ru) = spec.pointer("/updateStrategy/rollingUpdate") {
                non_negative(ru, "spec.updateStrategy.rollingUpdate", "partition", errs);
            }
        }
        Some("OnDelete") => {
            if spec
                .pointer("/updateStrategy/rollingUpdate")
                .is_some_and(|v| !v.is_null())
            {
                errs.push(FieldError::invalid(
                    "spec.updateStrategy.rollingUpdate",
                    spec.pointer("/updateStrategy/rollingUpdate")
                        .cloned()
                        .unwrap_or(Value::Null),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        Some(other) => errs.push(FieldError::not_supported(
            "spec.updateStrategy.type",
            other,
            &["OnDelete", "RollingUpdate"],
        )),
    }
    if spec
        .get("volumeClaimTemplates")
        .and_then(Value::as_array)
        .is_some_and(|v| !v.is_empty())
    {
        errs.push(FieldError::forbidden(
            "spec.volumeClaimTemplates",
            NO_CLAIMS,
        ));
    }
    // Served in the schema (beta upstream), not implemented here: refused by name rather than
    // accepted and ignored (updates go one pod at a time).
    if spec
        .pointer("/updateStrategy/rollingUpdate/maxUnavailable")
        .is_some_and(|v| !v.is_null())
    {
        errs.push(FieldError::forbidden(
            "spec.updateStrategy.rollingUpdate.maxUnavailable",
            "not supported by this cluster: StatefulSet updates replace one pod at a time; remove the field",
        ));
    }
    if let Some(start) = spec.pointer("/ordinals/start").and_then(Value::as_i64)
        && start < 0
    {
        errs.push(FieldError::invalid(
            "spec.ordinals.start",
            start,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(old) = old.and_then(|o| o.get("spec")) {
        // only these may change after creation
        const MUTABLE: &[&str] = &[
            "replicas",
            "ordinals",
            "template",
            "updateStrategy",
            "revisionHistoryLimit",
            "persistentVolumeClaimRetentionPolicy",
            "minReadySeconds",
        ];
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Value::Object(m) = &mut v {
                for f in MUTABLE {
                    m.remove(*f);
                }
            }
            v
        };
        if strip(spec) != strip(old) {
            errs.push(FieldError::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selector_must_match_template() {
        let d = json!({"spec": {"selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let mut e = Vec::new();
        validate("Deployment", &d, None, &mut e);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].field, "spec.template.metadata.labels");
        let mut e = Vec::new();
        validate("Deployment", &json!({"spec": {}}), None, &mut e);
        assert!(
            e.iter()
                .any(|e| e.to_string() == "spec.selector: Required value")
        );
    }
}

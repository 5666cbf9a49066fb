//! Deployments and ReplicaSets.

use serde_json::Value;

use super::pod::validate_pod_spec;
use crate::selector::LabelSelector;
use crate::status::FieldError;

pub(super) fn validate(kind: &str, obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    if let Some(r) = spec.get("replicas").and_then(Value::as_i64)
        && r < 0
    {
        errs.push(FieldError::invalid(
            "spec.replicas",
            r,
            "must be greater than or equal to 0",
        ));
    }
    match spec.get("selector") {
        None | Some(Value::Null) => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => match LabelSelector::from_object(Some(sel)) {
            Err(e) => errs.push(FieldError::invalid("spec.selector", sel.clone(), e.0)),
            Ok(s) if s.is_empty() => errs.push(FieldError::invalid(
                "spec.selector",
                sel.clone(),
                "empty selector is invalid for deployment",
            )),
            Ok(s) => {
                let labels = spec
                    .pointer("/template/metadata/labels")
                    .and_then(Value::as_object);
                if !s.matches(labels) {
                    errs.push(FieldError::invalid(
                        "spec.template.metadata.labels",
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
            validate_pod_spec(ps, "spec.template.spec", errs);
            if let Some(rp) = ps.get("restartPolicy").and_then(Value::as_str)
                && rp != "Always"
            {
                errs.push(FieldError::not_supported(
                    "spec.template.spec.restartPolicy",
                    rp,
                    &["Always"],
                ));
            }
        }
        None => errs.push(FieldError::required("spec.template.spec.containers", "")),
    }
    if kind == "Deployment"
        && let Some(t) = spec.pointer("/strategy/type").and_then(Value::as_str)
    {
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
    }
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

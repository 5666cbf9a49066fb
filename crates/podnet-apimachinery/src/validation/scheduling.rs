//! PriorityClasses, with the messages of Kubernetes' scheduling validation.

use serde_json::Value;

use crate::status::FieldError;

/// The classes every cluster has, and their values.
pub const SYSTEM_CLASSES: &[(&str, i64)] = &[
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// The highest value a class that is not a system class may have.
const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;

pub(super) fn priority_class(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let value = obj.get("value").and_then(Value::as_i64).unwrap_or(0);
    if name.starts_with("system-") {
        let why = match SYSTEM_CLASSES.iter().find(|(n, _)| *n == name) {
            None => Some(format!(
                "priority class {name} is not a known system priority class"
            )),
            Some((_, v)) if *v != value => {
                Some(format!("value of priority class {name} should be {v}"))
            }
            Some(_) => None,
        };
        if let Some(why) = why {
            errs.push(FieldError::forbidden(
                "metadata.name",
                format!(
                    "priority class names with 'system-' prefix are reserved for system use only. error: {why}"
                ),
            ));
        }
    } else if value > HIGHEST_USER_PRIORITY {
        errs.push(FieldError::forbidden(
            "value",
            format!("maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"),
        ));
    }
    if let Some(p) = obj.get("preemptionPolicy").and_then(Value::as_str)
        && !matches!(p, "PreemptLowerPriority" | "Never")
    {
        errs.push(FieldError::not_supported(
            "preemptionPolicy",
            p,
            &["Never", "PreemptLowerPriority"],
        ));
    }
    if let Some(old) = old {
        if old.get("value").and_then(Value::as_i64).unwrap_or(0) != value {
            errs.push(FieldError::forbidden(
                "value",
                "may not be changed in an update.",
            ));
        }
        if old.get("preemptionPolicy") != obj.get("preemptionPolicy") {
            errs.push(FieldError::invalid(
                "preemptionPolicy",
                obj.get("preemptionPolicy").cloned().unwrap_or(Value::Null),
                "field is immutable",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn errors(obj: Value, old: Option<Value>) -> Vec<String> {
        let mut errs = Vec::new();
        priority_class(&obj, old.as_ref(), &mut errs);
        errs.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn reserved_names_values_and_immutability() {
        assert!(errors(json!({"metadata": {"name": "high"}, "value": 1000}), None).is_empty());
        assert!(
            errors(
                json!({"metadata": {"name": "system-cluster-critical"}, "value": 2_000_000_000}),
                None
            )
            .is_empty()
        );
        assert_eq!(
            errors(
                json!({"metadata": {"name": "system-mine"}, "value": 1}),
                None
            ),
            [
                "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: priority class system-mine is not a known system priority class"
            ]
        );
        assert_eq!(
            errors(
                json!({"metadata": {"name": "huge"}, "value": 1_000_000_001}),
                None
            ),
            ["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]
        );
        assert_eq!(
            errors(
                json!({"metadata": {"name": "high"}, "value": 2, "preemptionPolicy": "Never"}),
                Some(
                    json!({"metadata": {"name": "high"}, "value": 1, "preemptionPolicy": "Never"})
                )
            ),
            ["value: Forbidden: may not be changed in an update."]
        );
    }
}

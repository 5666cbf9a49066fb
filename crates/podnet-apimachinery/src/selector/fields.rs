//! Field selectors (`metadata.name=web,status.phase!=Failed`) over the fields each kind supports.

use serde_json::Value;

use super::labels::SelectorError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub value: String,
    pub equals: bool,
}

/// A parsed field selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

/// The fields a kind supports in field selectors (besides `metadata.name` and `metadata.namespace`).
pub fn supported_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Secret" => &["type"],
        "Namespace" => &["status.phase"],
        "Node" => &["spec.unschedulable"],
        "ReplicaSet" => &["status.replicas"],
        "Service" => &["spec.clusterIP", "spec.type"],
        _ => &[],
    }
}

fn lookup<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(obj, |v, seg| v.get(seg))
}

/// The string value of a selectable field, as the API server's field set renders it (absent -> "").
pub fn field_value(obj: &Value, field: &str) -> String {
    match field {
        "source" => {
            return lookup(obj, "source.component")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
        }
        "spec.hostNetwork" | "spec.unschedulable" => {
            return lookup(obj, field)
                .and_then(Value::as_bool)
                .unwrap_or(false)
                .to_string();
        }
        _ => {}
    }
    match lookup(obj, field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ if field == "status.replicas" => "0".into(),
        _ => String::new(),
    }
}

impl FieldSelector {
    /// Parses a selector and checks that every field is supported for `kind`.
    pub fn parse(s: &str, kind: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector::default());
        }
        for part in split_unescaped(s) {
            let part = part.trim();
            let (field, value, equals) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, true)
            } else {
                return Err(SelectorError(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if field != "metadata.name"
                && field != "metadata.namespace"
                && !supported_fields(kind).contains(&field)
            {
                return Err(SelectorError(format!("field label not supported: {field}")));
            }
            requirements.push(FieldRequirement {
                field: field.to_string(),
                value: unescape(value),
                equals,
            });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.requirements
            .iter()
            .all(|r| (field_value(obj, &r.field) == r.value) == r.equals)
    }

    /// The value required for `metadata.name`, if the selector pins one (watch-list by name).
    pub fn pinned_name(&self) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.equals && r.field == "metadata.name")
            .map(|r| r.value.as_str())
    }
}

/// Splits on commas not preceded by a backslash (field selector values may escape `,`, `=` and `\`).
fn split_unescaped(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            out.last_mut().expect("non-empty").push('\\');
            out.last_mut().expect("non-empty").push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            out.push(String::new());
        } else {
            out.last_mut().expect("non-empty").push(c);
        }
    }
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_by_node_and_phase() {
        let pod = json!({"metadata": {"name": "a", "namespace": "d"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let s = FieldSelector::parse(
            "spec.nodeName=n1,status.phase!=Succeeded,status.phase!=Failed",
            "Pod",
        )
        .unwrap();
        assert!(s.matches(&pod));
        let s = FieldSelector::parse("spec.nodeName=", "Pod").unwrap();
        assert!(!s.matches(&pod));
        assert!(s.matches(&json!({"spec": {}})));
        assert_eq!(
            FieldSelector::parse("metadata.name=a", "Pod")
                .unwrap()
                .pinned_name(),
            Some("a")
        );
    }

    #[test]
    fn events_by_involved_object() {
        let ev = json!({"involvedObject": {"name": "web", "namespace": "default", "uid": "u1"}});
        let s = FieldSelector::parse(
            "involvedObject.name=web,involvedObject.namespace=default,involvedObject.uid=u1",
            "Event",
        )
        .unwrap();
        assert!(s.matches(&ev));
    }

    #[test]
    fn unsupported_fields_are_errors() {
        assert_eq!(
            FieldSelector::parse("spec.foo=x", "Pod").unwrap_err().0,
            "field label not supported: spec.foo"
        );
        assert!(FieldSelector::parse("garbage", "Pod").is_err());
    }
}

//! The four patch types of the Kubernetes API.

pub mod apply;
pub mod meta;
pub mod strategic;

use serde_json::Value;

/// A patch body's type, from its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902 (`application/json-patch+json`).
    Json,
    /// RFC 7396 (`application/merge-patch+json`).
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// Server-side apply (`application/apply-patch+yaml`, also `+cbor` is not supported).
    Apply,
}

impl PatchType {
    /// Parses a Content-Type header (parameters ignored).
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The body is not a valid patch of its type (400).
    #[error("{0}")]
    Invalid(String),
    /// The patch is well-formed but cannot apply to this object (422).
    #[error("{0}")]
    Unprocessable(String),
}

/// Applies an RFC 7396 merge patch.
pub fn merge(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::Invalid(
            "merge patch must be a JSON object".into(),
        ));
    }
    let mut out = original.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
}

/// Applies an RFC 6902 JSON patch.
pub fn json(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::Invalid(format!("json patch is invalid: {e}")))?;
    let mut out = original.clone();
    json_patch::patch(&mut out, &ops).map_err(|e| PatchError::Unprocessable(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
    }

    #[test]
    fn merge_and_json_patch() {
        let o = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        assert_eq!(
            merge(&o, &json!({"metadata": {"labels": {"a": null, "c": "3"}}})).unwrap(),
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}})
        );
        let p = json!([{"op": "replace", "path": "/metadata/labels/a", "value": "9"}, {"op": "remove", "path": "/metadata/labels/b"}]);
        assert_eq!(
            json(&o, &p).unwrap(),
            json!({"metadata": {"labels": {"a": "9"}}})
        );
        assert!(matches!(
            json(&o, &json!([{"op": "remove", "path": "/nope"}])),
            Err(PatchError::Unprocessable(_))
        ));
        assert!(matches!(
            json(&o, &json!({"op": "x"})),
            Err(PatchError::Invalid(_))
        ));
        assert!(merge(&o, &json!([1])).is_err());
    }
}

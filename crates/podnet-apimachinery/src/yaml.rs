//! YAML <-> JSON values, through serde-saphyr (panic-free parsing with limits against hostile input).

use serde_json::Value;

/// Why a YAML document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct YamlError(pub String);

/// Parses one YAML document into a JSON value (JSON is valid YAML, so this reads both).
pub fn from_slice(bytes: &[u8]) -> Result<Value, YamlError> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| YamlError(format!("yaml: invalid UTF-8: {e}")))?;
    if text.trim().is_empty() {
        return Err(YamlError("Object 'Kind' is missing in '{}'".into()));
    }
    let v: Value = serde_saphyr::from_str(text)
        .map_err(|e| YamlError(format!("yaml: {}", first_line(&e.to_string()))))?;
    Ok(v)
}

/// Serializes a JSON value as YAML.
pub fn to_string(v: &Value) -> Result<String, YamlError> {
    serde_saphyr::to_string(v).map_err(|e| YamlError(e.to_string()))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_yaml_and_json() {
        let v = from_slice(
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: \"1\"\n  b: yes\n",
        )
        .unwrap();
        assert_eq!(v["metadata"]["name"], "x");
        assert_eq!(v["data"]["a"], "1");
        let j = from_slice(br#"{"a": [1, 2]}"#).unwrap();
        assert_eq!(j, json!({"a": [1, 2]}));
        assert!(from_slice(b"a: [1, 2").is_err());
        assert!(from_slice(b"").is_err());
    }

    #[test]
    fn round_trips() {
        let v = json!({"a": {"b": [1, "two", true]}, "c": null});
        assert_eq!(from_slice(to_string(&v).unwrap().as_bytes()).unwrap(), v);
    }
}

//! Typed reads of optional fields from a JSON object, with errors that name the field.
//!
//! Configs come from administrators and runtimes; a message like `mtu: expected a whole number from 68
//! to 65535, got "big"` is worth more than serde's positional errors.

use serde_json::{Map, Value};

/// A field that is present but unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

/// A view of one JSON object, remembering its path for messages (`ipam.subnet`).
pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
    path: String,
}

fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        format!(
            "{}...",
            &s[..s.char_indices().nth(77).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

impl<'a> Fields<'a> {
    pub fn new(obj: &'a Map<String, Value>, path: &str) -> Self {
        Self {
            obj,
            path: path.to_string(),
        }
    }

    pub fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The raw value, with `null` treated as absent (as Go's JSON decoding does).
    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    pub fn string(&self, key: &str) -> Result<Option<&'a str>, FieldError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(v) => Err(FieldError::new(
                self.path_of(key),
                format!("expected a string, got {}", show(v)),
            )),
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, FieldError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(FieldError::new(
                self.path_of(key),
                format!("expected true or false, got {}", show(v)),
            )),
        }
    }

    pub fn uint(&self, key: &str, min: u64, max: u64) -> Result<Option<u64>, FieldError> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(FieldError::new(
                    self.path_of(key),
                    format!(
                        "expected a whole number from {min} to {max}, got {}",
                        show(v)
                    ),
                )),
            },
        }
    }

    pub fn object(&self, key: &str) -> Result<Option<Fields<'a>>, FieldError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Object(o)) => Ok(Some(Fields::new(o, &self.path_of(key)))),
            Some(v) => Err(FieldError::new(
                self.path_of(key),
                format!("expected an object, got {}", show(v)),
            )),
        }
    }

    pub fn array(&self, key: &str) -> Result<Option<&'a Vec<Value>>, FieldError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(v) => Err(FieldError::new(
                self.path_of(key),
                format!("expected a list, got {}", show(v)),
            )),
        }
    }

    pub fn strings(&self, key: &str) -> Result<Vec<String>, FieldError> {
        let Some(list) = self.array(key)? else {
            return Ok(Vec::new());
        };
        list.iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    FieldError::new(
                        format!("{}[{i}]", self.path_of(key)),
                        format!("expected a string, got {}", show(v)),
                    )
                })
            })
            .collect()
    }

    /// Parses a string field with `FromStr`, naming the field and the bad value on failure.
    pub fn parsed<T: std::str::FromStr>(
        &self,
        key: &str,
        what: &str,
    ) -> Result<Option<T>, FieldError> {
        let Some(s) = self.string(key)? else {
            return Ok(None);
        };
        s.parse::<T>()
            .map(Some)
            .map_err(|_| FieldError::new(self.path_of(key), format!("{s:?} is not {what}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_nested_field() {
        let v = json!({"ipam": {"subnet": 5, "routes": [{"dst": 1}]}, "mtu": "big", "flag": null});
        let f = Fields::new(v.as_object().unwrap(), "");
        let ipam = f.object("ipam").unwrap().unwrap();
        assert_eq!(
            ipam.string("subnet").unwrap_err().to_string(),
            "ipam.subnet: expected a string, got 5"
        );
        assert_eq!(
            f.uint("mtu", 68, 65535).unwrap_err().to_string(),
            "mtu: expected a whole number from 68 to 65535, got \"big\""
        );
        assert_eq!(f.bool("flag").unwrap(), None, "null reads as absent");
        assert_eq!(f.string("missing").unwrap(), None);
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let long = "x".repeat(500);
        let v = json!({ "n": long });
        let f = Fields::new(v.as_object().unwrap(), "");
        let msg = f.uint("n", 0, 1).unwrap_err().to_string();
        assert!(msg.len() < 150, "{msg}");
    }
}

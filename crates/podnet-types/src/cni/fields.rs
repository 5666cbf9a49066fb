//! Typed reads of optional fields from a JSON object, with errors that name the field.
//!
//! Configs come from administrators and runtimes; a message like `mtu: expected a whole number from 68
//! to 65535, got "big"` is worth more than serde's positional errors.
//!
//! # Key matching: Go's rule
//! Keys match the way Go's `encoding/json` matches them to struct fields, because that is what every
//! other CNI plugin (and libcni itself) does, and runtimes rely on it: containerd 1.6/1.7 (go-cni) sends
//! capability arguments such as `portMappings` as Go field names (`{"HostPort":8080,...}`), and
//! administrators write `"ipmasq"` or `"IPAM"` and get a working network from the reference plugins.
//! A key is found by its exact spelling first; otherwise by a case-insensitive match, folded as Go
//! folds (`unicode.ToUpper(unicode.ToLower(r))` per character, so the Kelvin sign matches `k` and the
//! long s matches `s`). Go lets the last of several case-variants in the document win; a JSON object's
//! order is not something podnet reads (or wants to depend on), so several *different* values under
//! case-variants of a key with no exact spelling among them are refused as ambiguous, naming the keys.

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

    /// The raw value under `key` (matched by Go's rule, see the module docs), with `null` treated as
    /// absent (as Go's JSON decoding does).
    pub fn raw(&self, key: &str) -> Result<Option<&'a Value>, FieldError> {
        lookup(self.obj, key).map_err(|keys| {
            FieldError::new(
                self.path_of(key),
                format!(
                    "ambiguous: {} differ only in case and hold different values",
                    keys.join(" and ")
                ),
            )
        })
    }

    pub fn string(&self, key: &str) -> Result<Option<&'a str>, FieldError> {
        match self.raw(key)? {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(v) => Err(FieldError::new(
                self.path_of(key),
                format!("expected a string, got {}", show(v)),
            )),
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, FieldError> {
        match self.raw(key)? {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(FieldError::new(
                self.path_of(key),
                format!("expected true or false, got {}", show(v)),
            )),
        }
    }

    pub fn uint(&self, key: &str, min: u64, max: u64) -> Result<Option<u64>, FieldError> {
        match self.raw(key)? {
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
        match self.raw(key)? {
            None => Ok(None),
            Some(Value::Object(o)) => Ok(Some(Fields::new(o, &self.path_of(key)))),
            Some(v) => Err(FieldError::new(
                self.path_of(key),
                format!("expected an object, got {}", show(v)),
            )),
        }
    }

    pub fn array(&self, key: &str) -> Result<Option<&'a Vec<Value>>, FieldError> {
        match self.raw(key)? {
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

/// One character as Go's `encoding/json` folds it for key matching, for field names made of ASCII (all
/// of podnet's are). Go maps every rune to `ToUpper(ToLower(r))`; the only non-ASCII runes that land on
/// an ASCII letter that way are these four, so the table is exact for ASCII names.
fn fold(c: char) -> Option<char> {
    match c {
        'a'..='z' => Some(c.to_ascii_uppercase()),
        '\u{17F}' => Some('S'),             // long s: ToUpper gives S
        '\u{212A}' => Some('K'),            // Kelvin sign: ToLower gives k
        '\u{130}' | '\u{131}' => Some('I'), // dotted capital I (ToLower: i), dotless i (ToUpper: I)
        _ if c.is_ascii() => Some(c),
        // Any other non-ASCII rune folds to a non-ASCII rune, so it can never match an ASCII name.
        _ => None,
    }
}

/// Whether JSON key `key` matches the ASCII field name `name` under Go's case-insensitive rule.
pub fn key_matches(key: &str, name: &str) -> bool {
    let mut k = key.chars();
    let mut n = name.chars();
    loop {
        match (k.next(), n.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) => {
                if fold(a).is_none() || fold(a) != fold(b) {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// The value of field `name` in `obj` by Go's rule: the exact key first, else the case-insensitive
/// match. `null` counts as absent, as in Go, where it leaves the field alone: `{"mtu": null, "MTU": 9000}`
/// reads 9000. `Err` lists the keys when several case-variants (and no exact key) hold different values.
pub fn lookup<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a Value>, Vec<String>> {
    if let Some(v) = obj.get(name).filter(|v| !v.is_null()) {
        return Ok(Some(v));
    }
    let mut found: Option<(&String, &'a Value)> = None;
    let mut clash = Vec::new();
    let candidates = obj
        .iter()
        .filter(|(k, v)| !v.is_null() && key_matches(k, name));
    for (k, v) in candidates {
        match found {
            None => found = Some((k, v)),
            Some((first, fv)) if fv != v => {
                if clash.is_empty() {
                    clash.push(format!("{first:?}"));
                }
                clash.push(format!("{k:?}"));
            }
            Some(_) => {}
        }
    }
    if clash.is_empty() {
        Ok(found.map(|(_, v)| v))
    } else {
        Err(clash)
    }
}

/// A copy of `v` whose keys matching one of `names` (Go's rule) are spelled exactly as in `names`, for
/// types read with serde's derive (which matches keys exactly). Other keys and non-objects are kept as
/// they are. `Err` names the field whose case-variants are ambiguous.
pub fn canonical(v: &Value, names: &[&str]) -> Result<Value, String> {
    let Some(obj) = v.as_object() else {
        return Ok(v.clone());
    };
    let mut out = obj.clone();
    for name in names {
        match lookup(obj, name) {
            // Only nulls (or nothing): absent, as Go reads it.
            Ok(None) => out.retain(|k, _| !key_matches(k, name)),
            Ok(Some(found)) => {
                out.retain(|k, _| !key_matches(k, name));
                out.insert((*name).to_string(), found.clone());
            }
            Err(keys) => {
                return Err(format!(
                    "{name}: ambiguous: {} differ only in case and hold different values",
                    keys.join(" and ")
                ));
            }
        }
    }
    Ok(Value::Object(out))
}

/// Whether `obj` has field `name` set to `true` (Go's key rule); anything else, or an ambiguity, is false.
pub fn flag(obj: &Value, name: &str) -> bool {
    obj.as_object()
        .and_then(|o| lookup(o, name).ok().flatten())
        .and_then(Value::as_bool)
        == Some(true)
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
        assert_eq!(
            f.bool("FLAG").unwrap(),
            None,
            "null reads as absent, any spelling"
        );
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

    #[test]
    fn keys_match_as_go_matches_them() {
        for (key, name, expect) in [
            ("hostPort", "hostPort", true),
            ("HostPort", "hostPort", true),
            ("HOSTPORT", "hostPort", true),
            ("hostport", "hostPort", true),
            ("hostIP", "hostIP", true),
            ("HostIP", "hostIP", true),
            ("host_port", "hostPort", false),
            ("hostPor", "hostPort", false),
            ("hostPortx", "hostPort", false),
            ("", "mtu", false),
            // Go's fold: the long s is an s, the Kelvin sign a k, dotted/dotless i an i.
            ("ho\u{17F}tPort", "hostPort", true),
            ("\u{212A}ey", "key", true),
            ("\u{130}pam", "ipam", true),
            ("\u{131}pam", "ipam", true),
            ("\u{e9}", "e", false),
            (
                "cni.dev/Valid-Attachments",
                "cni.dev/valid-attachments",
                true,
            ),
        ] {
            assert_eq!(key_matches(key, name), expect, "{key:?} vs {name:?}");
        }
    }

    #[test]
    fn the_exact_key_wins_and_different_variants_are_ambiguous() {
        let v = json!({"hostPort": 1, "HostPort": 2, "HOSTPORT": 3});
        let f = Fields::new(v.as_object().unwrap(), "m");
        assert_eq!(
            f.uint("hostPort", 0, 9).unwrap(),
            Some(1),
            "exact spelling preferred"
        );
        let v = json!({"HostPort": 2, "HOSTPORT": 3});
        let f = Fields::new(v.as_object().unwrap(), "m");
        let e = f.uint("hostPort", 0, 9).unwrap_err().to_string();
        assert!(e.starts_with("m.hostPort: ambiguous:"), "{e}");
        assert!(
            e.contains("\"HOSTPORT\"") && e.contains("\"HostPort\""),
            "{e}"
        );
        let v = json!({"HostPort": 2, "HOSTPORT": 2});
        let f = Fields::new(v.as_object().unwrap(), "m");
        assert_eq!(
            f.uint("hostPort", 0, 9).unwrap(),
            Some(2),
            "same value: no ambiguity"
        );
        let v = json!({"mtu": null, "MTU": 9000});
        let f = Fields::new(v.as_object().unwrap(), "");
        assert_eq!(
            f.uint("mtu", 0, 9999).unwrap(),
            Some(9000),
            "null leaves the field alone, as in Go"
        );
        let v = json!({"dns": {"nameservers": null, "Search": ["a"], "SEARCH": null}});
        assert_eq!(
            canonical(&v["dns"], &["nameservers", "search"]).unwrap(),
            json!({"search": ["a"]})
        );
        let v = json!({"Capabilities": {"PortMappings": true}});
        assert!(flag(&v["Capabilities"], "portMappings"));
        assert!(!flag(&v, "portMappings"));
    }
}

//! Label selectors: the query-string syntax (`app=web,tier!=db,env in (a,b),!legacy`) and the
//! `metav1.LabelSelector` object form (`matchLabels` / `matchExpressions`).

use serde_json::{Map, Value};

use crate::validation::names;

/// Why a selector is invalid. The message follows apimachinery's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Exists,
    NotExists,
    Equals,
    NotEquals,
    In,
    NotIn,
    Gt,
    Lt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let v = labels
            .and_then(|l| l.get(&self.key))
            .and_then(Value::as_str);
        match self.op {
            Op::Exists => v.is_some(),
            Op::NotExists => v.is_none(),
            Op::Equals | Op::In => v.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Op::NotEquals | Op::NotIn => !v.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Op::Gt | Op::Lt => {
                let (Some(v), Some(bound)) = (
                    v.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|b| b.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.op == Op::Gt {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
    /// `matchLabels`/`matchExpressions` can express "matches nothing" (a nil selector); the query syntax
    /// cannot.
    pub nothing: bool,
}

impl LabelSelector {
    pub fn everything() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty() && !self.nothing
    }

    /// Matches an object's `metadata.labels` (absent labels match like an empty map).
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Matches a plain map of labels.
    pub fn matches_map(&self, labels: &Map<String, Value>) -> bool {
        self.matches(Some(labels))
    }

    /// Parses the query-string form.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut p = Parser {
            s: s.as_bytes(),
            pos: 0,
        };
        let mut requirements = Vec::new();
        p.skip_ws();
        if p.at_end() {
            return Ok(Self::default());
        }
        loop {
            requirements.push(p.requirement()?);
            p.skip_ws();
            if p.at_end() {
                break;
            }
            if !p.eat(b',') {
                return Err(SelectorError(format!(
                    "unable to parse requirement: found '{}', expected: ',' or 'end of string'",
                    p.peek_token()
                )));
            }
        }
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// Converts a `metav1.LabelSelector` object. `None`/null selects nothing; `{}` selects everything.
    pub fn from_object(sel: Option<&Value>) -> Result<Self, SelectorError> {
        let Some(Value::Object(sel)) = sel else {
            return Ok(LabelSelector {
                requirements: Vec::new(),
                nothing: true,
            });
        };
        let mut requirements = Vec::new();
        if let Some(Value::Object(ml)) = sel.get("matchLabels") {
            for (k, v) in ml {
                let v = v.as_str().ok_or_else(|| {
                    SelectorError(format!("matchLabels value for {k:?} is not a string"))
                })?;
                check_key(k)?;
                check_value(v)?;
                requirements.push(Requirement {
                    key: k.clone(),
                    op: Op::Equals,
                    values: vec![v.to_string()],
                });
            }
        }
        if let Some(Value::Array(exprs)) = sel.get("matchExpressions") {
            for e in exprs {
                let key = e
                    .get("key")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                check_key(&key)?;
                let values: Vec<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let op = match e
                    .get("operator")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                {
                    "In" => Op::In,
                    "NotIn" => Op::NotIn,
                    "Exists" => Op::Exists,
                    "DoesNotExist" => Op::NotExists,
                    other => {
                        return Err(SelectorError(format!(
                            "{other:?} is not a valid label selector operator"
                        )));
                    }
                };
                if matches!(op, Op::In | Op::NotIn) && values.is_empty() {
                    return Err(SelectorError("values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty".into()));
                }
                requirements.push(Requirement { key, op, values });
            }
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }
}

impl std::fmt::Display for LabelSelector {
    /// The canonical query-string form (as `metav1.FormatLabelSelector` prints it).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.nothing {
            return write!(f, "<none>");
        }
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| match r.op {
                Op::Exists => r.key.clone(),
                Op::NotExists => format!("!{}", r.key),
                Op::Equals => format!("{}={}", r.key, r.values.join(",")),
                Op::NotEquals => format!("{}!={}", r.key, r.values.join(",")),
                Op::In => format!("{} in ({})", r.key, r.values.join(",")),
                Op::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
                Op::Gt => format!("{}>{}", r.key, r.values.join(",")),
                Op::Lt => format!("{}<{}", r.key, r.values.join(",")),
            })
            .collect();
        write!(f, "{}", parts.join(","))
    }
}

fn check_key(k: &str) -> Result<(), SelectorError> {
    let errs = names::qualified_name(k);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(SelectorError(format!(
            "key: Invalid value: {k:?}: {}",
            errs.join("; ")
        )))
    }
}

fn check_value(v: &str) -> Result<(), SelectorError> {
    let errs = names::label_value(v);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(SelectorError(format!(
            "values[0]: Invalid value: {v:?}: {}",
            errs.join("; ")
        )))
    }
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn eat_str(&mut self, t: &str) -> bool {
        if self.s[self.pos..].starts_with(t.as_bytes()) {
            self.pos += t.len();
            true
        } else {
            false
        }
    }
    fn peek_token(&self) -> String {
        let rest = &self.s[self.pos..];
        let n = rest
            .iter()
            .take_while(|c| !c.is_ascii_whitespace() && **c != b',')
            .count()
            .max(1);
        String::from_utf8_lossy(&rest[..n.min(rest.len())]).into_owned()
    }
    fn is_ident_char(c: u8) -> bool {
        !(c.is_ascii_whitespace() || matches!(c, b',' | b'=' | b'!' | b'(' | b')' | b'<' | b'>'))
    }
    fn ident(&mut self) -> String {
        let start = self.pos;
        while self.pos < self.s.len() && Self::is_ident_char(self.s[self.pos]) {
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.pos]).into_owned()
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        self.skip_ws();
        let negated = self.eat(b'!');
        self.skip_ws();
        let key = self.ident();
        if key.is_empty() {
            return Err(SelectorError(format!(
                "unable to parse requirement: found '{}', expected: identifier",
                if self.at_end() {
                    "end of string".to_string()
                } else {
                    self.peek_token()
                }
            )));
        }
        check_key(&key).map_err(|e| SelectorError(format!("unable to parse requirement: {e}")))?;
        if negated {
            return Ok(Requirement {
                key,
                op: Op::NotExists,
                values: vec![],
            });
        }
        self.skip_ws();
        if self.at_end() || self.s[self.pos] == b',' {
            return Ok(Requirement {
                key,
                op: Op::Exists,
                values: vec![],
            });
        }
        let op = if self.eat_str("==") || self.eat(b'=') {
            Op::Equals
        } else if self.eat_str("!=") {
            Op::NotEquals
        } else if self.eat(b'>') {
            Op::Gt
        } else if self.eat(b'<') {
            Op::Lt
        } else if self.eat_str("notin") {
            Op::NotIn
        } else if self.eat_str("in") {
            Op::In
        } else {
            return Err(SelectorError(format!(
                "unable to parse requirement: found '{}', expected: in, notin, =, ==, !=, gt, lt",
                self.peek_token()
            )));
        };
        self.skip_ws();
        let values = match op {
            Op::In | Op::NotIn => {
                if !self.eat(b'(') {
                    return Err(SelectorError(format!(
                        "unable to parse requirement: found '{}', expected: '('",
                        self.peek_token()
                    )));
                }
                let mut vals = Vec::new();
                loop {
                    self.skip_ws();
                    let v = self.ident();
                    vals.push(v);
                    self.skip_ws();
                    if self.eat(b')') {
                        break;
                    }
                    if !self.eat(b',') {
                        return Err(SelectorError("unable to parse requirement: found end of string, expected: ',' or ')'".into()));
                    }
                }
                vals
            }
            _ => vec![self.ident()],
        };
        for v in &values {
            if matches!(op, Op::Gt | Op::Lt) {
                if v.parse::<i64>().is_err() {
                    return Err(SelectorError(format!(
                        "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: {v:?}"
                    )));
                }
            } else {
                check_value(v)
                    .map_err(|e| SelectorError(format!("unable to parse requirement: {e}")))?;
            }
        }
        Ok(Requirement { key, op, values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn parses_and_matches() {
        let l = labels(json!({"app": "web", "tier": "front", "n": "5"}));
        for (sel, want) in [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=web,tier=front", true),
            ("app in (web, db)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("missing!=x", true),
            ("n>4", true),
            ("n<4", false),
            ("example.com/key=v", false),
        ] {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(Some(&l)), want, "{sel}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for sel in [
            "a=b=c", "=x", "a in b", "a in (b", "a=", "a=b c", "a=-bad-", "n>x", "A B",
        ] {
            if sel == "a=" {
                // the empty value is valid: `a=` matches a=""
                assert!(LabelSelector::parse(sel).is_ok());
                continue;
            }
            assert!(LabelSelector::parse(sel).is_err(), "{sel} should fail");
        }
    }

    #[test]
    fn object_selectors() {
        let s =
            LabelSelector::from_object(Some(&json!({"matchLabels": {"app": "nginx"}}))).unwrap();
        assert!(s.matches(Some(&labels(json!({"app": "nginx", "x": "y"})))));
        assert!(!s.matches(None));
        assert_eq!(s.to_string(), "app=nginx");
        let none = LabelSelector::from_object(None).unwrap();
        assert!(!none.matches(Some(&labels(json!({})))));
        let all = LabelSelector::from_object(Some(&json!({}))).unwrap();
        assert!(all.matches(None));
        let e = LabelSelector::from_object(Some(
            &json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x", "y"]}]}),
        ))
        .unwrap();
        assert_eq!(e.to_string(), "a in (x,y)");
    }
}

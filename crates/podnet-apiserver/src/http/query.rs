//! Query strings: percent-decoding into an ordered multimap.

/// Decoded `key=value` pairs in order (keys may repeat: `command=a&command=b`).
#[derive(Debug, Clone, Default)]
pub struct Query(pub Vec<(String, String)>);

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        let Some(q) = q else { return Query::default() };
        Query(
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(p), String::new()),
                })
                .collect(),
        )
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, k: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean parameter (`true`/`1`; absent = false).
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true") | Some("1") | Some("True"))
    }

    /// An integer parameter; a malformed one is a 400.
    pub fn int(&self, k: &str) -> Result<Option<i64>, podnet_apimachinery::ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                podnet_apimachinery::ApiError::bad_request(format!(
                    "invalid value {v:?} for query parameter {k}: must be an integer"
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+%28a%29&command=sh&command=-c&x",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert_eq!(q.all("command"), ["sh", "-c"]);
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(Query::parse(Some("a=%zz&b=%4")).get("a"), Some("%zz"));
        assert_eq!(Query::parse(Some("b=%4")).get("b"), Some("%4"));
    }
}

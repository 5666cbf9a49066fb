//! Registry credentials: docker-style `config.json` (`auths` entries with `auth` = base64("user:pass") or
//! `username`/`password`), explicit credentials (the kubelet decodes imagePullSecrets into the same
//! format), and the `WWW-Authenticate` challenges registries answer with.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;

/// A user name and password (or identity token as password) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password, also not in debug logs.
        write!(f, "Credentials({}, ***)", self.username)
    }
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }
    /// The `Authorization: Basic ...` value.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("read credentials file {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("parse credentials {what}: {cause}")]
    Parse { what: String, cause: String },
}

/// Credentials per registry host, as in a docker `config.json` or a `.dockerconfigjson` secret.
#[derive(Debug, Clone, Default)]
pub struct Keychain {
    by_host: HashMap<String, Credentials>,
}

#[derive(serde::Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
}

#[derive(serde::Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

impl Keychain {
    pub fn empty() -> Keychain {
        Keychain::default()
    }

    /// Read a docker-style `config.json`.
    pub fn from_file(path: &Path) -> Result<Keychain, AuthError> {
        let bytes = std::fs::read(path).map_err(|cause| AuthError::Read {
            path: path.display().to_string(),
            cause,
        })?;
        Keychain::from_json(&path.display().to_string(), &bytes)
    }

    /// Parse a docker-style config (`{"auths": {...}}`), e.g. a secret's `.dockerconfigjson`. `what`
    /// names the source in errors.
    pub fn from_json(what: &str, bytes: &[u8]) -> Result<Keychain, AuthError> {
        let parse = |cause: String| AuthError::Parse {
            what: what.to_string(),
            cause,
        };
        let file: ConfigFile = serde_json::from_slice(bytes).map_err(|e| parse(e.to_string()))?;
        let mut by_host = HashMap::new();
        for (key, entry) in file.auths {
            let creds = if let Some(auth) = entry.auth.filter(|a| !a.is_empty()) {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|e| parse(format!("auths[{key}].auth: {e}")))?;
                let raw = String::from_utf8(raw)
                    .map_err(|_| parse(format!("auths[{key}].auth: not UTF-8")))?;
                let (u, p) = raw
                    .split_once(':')
                    .ok_or_else(|| parse(format!("auths[{key}].auth: no ':' in user:password")))?;
                Credentials::new(u, p)
            } else if let Some(token) = entry.identitytoken {
                Credentials::new("<token>", token)
            } else if let (Some(u), Some(p)) = (entry.username, entry.password) {
                Credentials::new(u, p)
            } else {
                continue;
            };
            by_host.insert(normalise_host(&key), creds);
        }
        Ok(Keychain { by_host })
    }

    /// Add (or replace) the credentials of one registry host.
    pub fn insert(&mut self, registry: &str, creds: Credentials) {
        self.by_host.insert(normalise_host(registry), creds);
    }

    /// Entries of `other` win over ours (pod secrets over the node's file).
    pub fn merge(&mut self, other: &Keychain) {
        for (k, v) in &other.by_host {
            self.by_host.insert(k.clone(), v.clone());
        }
    }

    /// The credentials for a registry host (`docker.io`, `localhost:5000`).
    pub fn get(&self, registry: &str) -> Option<&Credentials> {
        self.by_host.get(&normalise_host(registry))
    }

    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }
}

/// `https://index.docker.io/v1/` -> `docker.io`; `http://host:5000/x` -> `host:5000`.
fn normalise_host(key: &str) -> String {
    let s = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = s.split('/').next().unwrap_or(s).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        _ => host,
    }
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parse `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// `k="v", k2=v2` (values may be quoted and hold commas).
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &q[end.min(q.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.insert(key, value);
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_auth_and_username_forms() {
        let json = br#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "dXNlcjpwYTpzcw=="},
            "localhost:5000": {"username": "u2", "password": "p2"},
            "empty.example": {}
        }}"#;
        let k = Keychain::from_json("test", json).unwrap();
        assert_eq!(k.get("docker.io"), Some(&Credentials::new("user", "pa:ss")));
        assert_eq!(k.get("localhost:5000"), Some(&Credentials::new("u2", "p2")));
        assert_eq!(k.get("empty.example"), None);
    }

    #[test]
    fn bad_auth_names_the_entry() {
        let e = Keychain::from_json(
            "secret default/pull",
            br#"{"auths":{"r.io":{"auth":"!!"}}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("secret default/pull"), "{e}");
        assert!(e.to_string().contains("auths[r.io]"), "{e}");
    }

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/nginx:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn debug_hides_the_password() {
        assert!(!format!("{:?}", Credentials::new("u", "secret")).contains("secret"));
    }
}

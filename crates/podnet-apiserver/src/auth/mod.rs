//! Who a request comes from: the cluster administrator's bearer token, service-account tokens minted
//! by the TokenRequest API (signed JWTs bound to their service account and optionally to a pod, secret
//! or node, checked against the store on every request), and node tokens (`system:node:NAME`, group
//! `system:nodes`) that the lab gives each node's agent. Until RBAC exists every authenticated user may
//! do everything.

mod jwt;
pub mod tokens;

use std::collections::BTreeMap;

use podnet_apimachinery::{object, resources};
use serde_json::{Value, json};

pub use jwt::{JwtError, Signer};

use crate::config::Config;
use crate::pki::Pki;
use crate::registry::Api;

/// The issuer (and audience) of tokens when the configuration does not say otherwise: kubeadm's
/// `--service-account-issuer` default.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The user the administrator token stands for.
pub const ADMIN_USER: &str = "kubernetes-admin";

/// Clock skew tolerated on `exp` and `nbf`, as kube-apiserver's JWT validation allows.
const LEEWAY_SECS: i64 = 60;

/// An authenticated user, as `kubectl auth whoami` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The `userInfo` object of a SelfSubjectReview.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"username": self.username, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = json!(self.uid);
        }
        if !self.extra.is_empty() {
            v["extra"] = json!(self.extra);
        }
        v
    }
}

/// Authenticates bearer tokens.
pub struct Authenticator {
    admin_token: String,
    pub signer: Signer,
    pub issuer: String,
}

impl Authenticator {
    pub fn new(cfg: &Config) -> Result<Authenticator, JwtError> {
        Ok(Authenticator {
            admin_token: cfg.pki.token.clone(),
            signer: Signer::new(&cfg.pki.sa_key_pem)?,
            issuer: cfg.service_account_issuer.clone(),
        })
    }

    /// The user behind `Authorization: Bearer <token>`, if the token is valid now.
    pub fn authenticate(&self, api: &Api, token: &str) -> Option<UserInfo> {
        self.review(api, token, std::slice::from_ref(&self.issuer))
            .map(|(user, _)| user)
    }

    /// What the TokenReview API answers: the user behind `token` if it is valid now for one of
    /// `audiences`, and those of `audiences` it is valid for. The administrator token is valid for
    /// any audience (as kube-apiserver's audience-less static tokens are).
    pub fn review(
        &self,
        api: &Api,
        token: &str,
        audiences: &[String],
    ) -> Option<(UserInfo, Vec<String>)> {
        if crate::util::secret_eq(token.as_bytes(), self.admin_token.as_bytes()) {
            let user = UserInfo {
                username: ADMIN_USER.into(),
                groups: vec!["system:masters".into(), "system:authenticated".into()],
                ..UserInfo::default()
            };
            return Some((user, audiences.to_vec()));
        }
        if token.matches('.').count() != 2 {
            return None;
        }
        let claims = self.signer.verify(token).ok()?;
        let valid_for =
            self.check_times_and_audience(&claims, crate::util::now_unix(), audiences)?;
        self.user_of(api, &claims).map(|u| (u, valid_for))
    }

    fn user_of(&self, api: &Api, claims: &Value) -> Option<UserInfo> {
        let k8s = claims.get("kubernetes.io")?;
        let sub = claims.get("sub").and_then(Value::as_str)?;
        if k8s.get("serviceaccount").is_none() {
            let node = sub.strip_prefix("system:node:")?;
            (k8s.pointer("/node/name").and_then(Value::as_str) == Some(node)).then(|| UserInfo {
                username: sub.to_string(),
                groups: vec!["system:nodes".into(), "system:authenticated".into()],
                ..UserInfo::default()
            })
        } else {
            service_account_user(api, claims, sub)
        }
    }

    /// Checks issuer and times; returns which of `audiences` the token's `aud` names (none: invalid).
    fn check_times_and_audience(
        &self,
        claims: &Value,
        now: i64,
        audiences: &[String],
    ) -> Option<Vec<String>> {
        let num = |k: &str| claims.get(k).and_then(Value::as_i64);
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return None;
        }
        if num("exp")? + LEEWAY_SECS <= now {
            return None;
        }
        if num("nbf").is_some_and(|nbf| nbf - LEEWAY_SECS > now) {
            return None;
        }
        let aud: Vec<&str> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let valid: Vec<String> = audiences
            .iter()
            .filter(|a| aud.contains(&a.as_str()))
            .cloned()
            .collect();
        (!valid.is_empty()).then_some(valid)
    }

    /// Mints a token (claims prepared by the caller get `iss`, `iat`, `nbf`, `exp` and `jti`).
    pub fn mint(
        &self,
        mut claims: Value,
        now: i64,
        expiration_secs: i64,
    ) -> Result<String, JwtError> {
        claims["iss"] = json!(self.issuer);
        claims["iat"] = json!(now);
        claims["nbf"] = json!(now);
        claims["exp"] = json!(now + expiration_secs);
        claims["jti"] = json!(crate::util::new_uid());
        self.signer.sign(&claims)
    }
}

/// Whether the object a claim names (`{"name", "uid"}`) still exists with that uid and is not long
/// gone into deletion.
fn bound_object_alive(api: &Api, plural: &str, ns: &str, claim: &Value) -> bool {
    let Some(def) = resources::find("", "v1", plural) else {
        return false;
    };
    let name = claim.get("name").and_then(Value::as_str).unwrap_or("");
    let uid = claim.get("uid").and_then(Value::as_str).unwrap_or("");
    let Ok(obj) = api.get(def, ns, name) else {
        return false;
    };
    if object::uid(&obj) != uid {
        return false;
    }
    // like kube-apiserver: a pod being deleted keeps its token for a minute of its grace period
    match object::meta_str(&obj, "deletionTimestamp")
        .and_then(podnet_apimachinery::time::parse_rfc3339)
    {
        Some(at) => at > crate::util::now_unix() - LEEWAY_SECS,
        None => true,
    }
}

fn service_account_user(api: &Api, claims: &Value, sub: &str) -> Option<UserInfo> {
    let k8s = &claims["kubernetes.io"];
    let ns = k8s.get("namespace").and_then(Value::as_str)?;
    let sa = &k8s["serviceaccount"];
    let sa_name = sa.get("name").and_then(Value::as_str)?;
    if sub != format!("system:serviceaccount:{ns}:{sa_name}") {
        return None;
    }
    if !bound_object_alive(api, "serviceaccounts", ns, sa) {
        return None;
    }
    let mut extra = BTreeMap::new();
    for (kind, plural, scoped) in [
        ("pod", "pods", true),
        ("secret", "secrets", true),
        ("node", "nodes", false),
    ] {
        if let Some(claim) = k8s.get(kind) {
            // a node claim on a pod-bound token only informs; the pod is what the token is bound to
            let informative = kind == "node" && k8s.get("pod").is_some();
            if !informative && !bound_object_alive(api, plural, if scoped { ns } else { "" }, claim)
            {
                return None;
            }
            if kind != "secret" {
                for f in ["name", "uid"] {
                    if let Some(v) = claim.get(f).and_then(Value::as_str) {
                        extra.insert(
                            format!("authentication.kubernetes.io/{kind}-{f}"),
                            vec![v.to_string()],
                        );
                    }
                }
            }
        }
    }
    if let Some(jti) = claims.get("jti").and_then(Value::as_str) {
        extra.insert(
            "authentication.kubernetes.io/credential-id".into(),
            vec![format!("JTI={jti}")],
        );
    }
    Some(UserInfo {
        username: sub.to_string(),
        uid: sa
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
        extra,
    })
}

/// A node's credentials: a bearer token for user `system:node:NAME` in group `system:nodes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCredentials {
    pub username: String,
    pub token: String,
}

/// How long a node token is valid (the lab mints a fresh one on every start).
pub const NODE_TOKEN_VALIDITY_SECS: i64 = 365 * 24 * 3600;

/// Mints the credentials of node `node` with the server's signing key, for an API server whose
/// `service_account_issuer` is `issuer` ([`DEFAULT_ISSUER`] unless configured otherwise). The node
/// agent presents the token as a kubelet presents its client certificate.
pub fn node_credentials(pki: &Pki, issuer: &str, node: &str) -> Result<NodeCredentials, JwtError> {
    let signer = Signer::new(&pki.sa_key_pem)?;
    let now = crate::util::now_unix();
    let username = format!("system:node:{node}");
    let claims = json!({
        "iss": issuer, "sub": username, "aud": [issuer],
        "iat": now, "nbf": now, "exp": now + NODE_TOKEN_VALIDITY_SECS,
        "jti": crate::util::new_uid(),
        "kubernetes.io": {"node": {"name": node}},
    });
    Ok(NodeCredentials {
        token: signer.sign(&claims)?,
        username,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator {
            admin_token: "admin-token".into(),
            signer: Signer::new(&rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap(),
            issuer: DEFAULT_ISSUER.into(),
        }
    }

    #[test]
    fn times_and_audiences() {
        let a = auth();
        let now = 1_000_000;
        let api_aud = [DEFAULT_ISSUER.to_string()];
        let ok =
            json!({"iss": DEFAULT_ISSUER, "aud": [DEFAULT_ISSUER], "exp": now + 10, "nbf": now});
        assert_eq!(
            a.check_times_and_audience(&ok, now, &api_aud),
            Some(api_aud.to_vec())
        );
        let mut expired = ok.clone();
        expired["exp"] = json!(now - 61);
        assert!(
            a.check_times_and_audience(&expired, now, &api_aud)
                .is_none()
        );
        let mut future = ok.clone();
        future["nbf"] = json!(now + 120);
        assert!(a.check_times_and_audience(&future, now, &api_aud).is_none());
        let mut other_aud = ok.clone();
        other_aud["aud"] = json!(["vault", "db"]);
        assert!(
            a.check_times_and_audience(&other_aud, now, &api_aud)
                .is_none()
        );
        assert_eq!(
            a.check_times_and_audience(&other_aud, now, &["db".to_string(), "x".to_string()]),
            Some(vec!["db".to_string()])
        );
        let mut other_iss = ok;
        other_iss["iss"] = json!("https://elsewhere");
        assert!(
            a.check_times_and_audience(&other_iss, now, &api_aud)
                .is_none()
        );
    }
}

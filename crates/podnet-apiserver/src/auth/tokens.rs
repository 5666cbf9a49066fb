//! The TokenRequest API (`POST serviceaccounts/{name}/token`): a signed, expiring token for a service
//! account, optionally bound to a pod, secret or node so that it dies with that object.

use podnet_apimachinery::{ApiError, FieldError, object, resources};
use serde_json::{Value, json};

use super::Authenticator;
use crate::registry::{Api, objref};

/// What a TokenRequest without `expirationSeconds` gets (kube-apiserver's default).
pub const DEFAULT_EXPIRATION_SECS: i64 = 3600;
const MIN_EXPIRATION_SECS: i64 = 600;
const MAX_EXPIRATION_SECS: i64 = 1 << 32;

fn invalid(sa: &str, errs: &[FieldError]) -> ApiError {
    ApiError::invalid("TokenRequest", "authentication.k8s.io", sa, errs)
}

/// Answers a TokenRequest for service account `sa_name` in `ns`: the request object with defaults and
/// `status.token` / `status.expirationTimestamp`.
pub fn create(
    api: &Api,
    auth: &Authenticator,
    ns: &str,
    sa_name: &str,
    req: &Value,
) -> Result<Value, ApiError> {
    let sa_def = resources::find("", "v1", "serviceaccounts").expect("served");
    let sa = api.get(sa_def, ns, sa_name)?;
    let spec = req.get("spec").cloned().unwrap_or_else(|| json!({}));
    let expiration = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECS,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| ApiError::bad_request("spec.expirationSeconds must be an integer"))?,
    };
    if expiration < MIN_EXPIRATION_SECS {
        return Err(invalid(
            sa_name,
            &[FieldError::invalid(
                "spec.expirationSeconds",
                expiration,
                "may not specify a duration less than 10 minutes",
            )],
        ));
    }
    if expiration > MAX_EXPIRATION_SECS {
        return Err(invalid(
            sa_name,
            &[FieldError::invalid(
                "spec.expirationSeconds",
                expiration,
                "may not specify a duration larger than 2^32 seconds",
            )],
        ));
    }
    let audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| vec![auth.issuer.clone()]);

    let mut k8s = json!({
        "namespace": ns,
        "serviceaccount": {"name": sa_name, "uid": object::uid(&sa)},
    });
    let bound = spec.get("boundObjectRef").filter(|b| !b.is_null()).cloned();
    if let Some(b) = &bound {
        let kind = b.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = b.get("name").and_then(Value::as_str).unwrap_or("");
        let (plural, claim, scoped) = match kind {
            "Pod" => ("pods", "pod", true),
            "Secret" => ("secrets", "secret", true),
            "Node" => ("nodes", "node", false),
            other => {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token to object of type {other}"
                )));
            }
        };
        let def = resources::find("", "v1", plural).expect("served");
        let obj = api.get(def, if scoped { ns } else { "" }, name)?;
        let uid = object::uid(&obj);
        if let Some(want) = b
            .get("uid")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            && want != uid
        {
            return Err(ApiError::conflict(
                objref(def, name),
                &format!(
                    "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            ));
        }
        if kind == "Pod" {
            let pod_sa = object::str_at(&obj, "spec.serviceAccountName").unwrap_or("default");
            if pod_sa != sa_name {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount {sa_name:?} to pod running with different serviceaccount name."
                )));
            }
            // the node the pod runs on, as kube-apiserver adds it
            if let Some(node) = object::str_at(&obj, "spec.nodeName").filter(|n| !n.is_empty()) {
                let nodes = resources::find("", "v1", "nodes").expect("served");
                if let Ok(n) = api.get(nodes, "", node) {
                    k8s["node"] = json!({"name": node, "uid": object::uid(&n)});
                }
            }
        }
        k8s[claim] = json!({"name": name, "uid": uid});
    }
    let now = crate::util::now_unix();
    let claims = json!({
        "sub": format!("system:serviceaccount:{ns}:{sa_name}"),
        "aud": audiences,
        "kubernetes.io": k8s,
    });
    let token = auth.mint(claims, now, expiration).map_err(|e| {
        ApiError::internal(format!("sign token for serviceaccount {ns}/{sa_name}: {e}"))
    })?;
    let mut out_spec =
        json!({"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": null});
    if let Some(b) = bound {
        out_spec["boundObjectRef"] = b;
    }
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": sa_name, "namespace": ns, "creationTimestamp": crate::util::now_rfc3339()},
        "spec": out_spec,
        "status": {
            "token": token,
            "expirationTimestamp": podnet_apimachinery::time::format_unix(now + expiration, 0).unwrap_or_default(),
        },
    }))
}

//! The ServiceAccount admission step for pods, as kube-apiserver's plugin does it on create: the pod
//! runs as `default` unless it names a service account, the service account must exist, and unless
//! automounting is off (in the pod or its service account) the pod gets the projected
//! `kube-api-access-*` volume (a bound token, the cluster CA, the namespace) mounted read-only at
//! `/var/run/secrets/kubernetes.io/serviceaccount` in every container.

use super::{Api, key};
use podnet_apimachinery::{ApiError, resources};
use serde_json::{Value, json};

pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The token's life as upstream projects it (an hour and a little, so clients see it renewed).
const TOKEN_SECONDS: i64 = 3607;

/// Waits (bounded) for the `default` service account of a namespace made a moment ago: the service
/// account controller adds it right after the namespace appears.
pub(crate) async fn await_default(reg: &Api, namespace: &str, pod: &Value) {
    let named = pod["spec"]["serviceAccountName"]
        .as_str()
        .filter(|s| !s.is_empty());
    if named.is_some_and(|n| n != "default") {
        return;
    }
    let sa_def = resources::find("", "v1", "serviceaccounts").expect("service accounts are served");
    for _ in 0..50 {
        if reg.store.get(&key(sa_def, namespace, "default")).is_some() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub(crate) fn service_account(reg: &Api, namespace: &str, pod: &mut Value) -> Result<(), ApiError> {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let name = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| {
            spec.get("serviceAccount")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or("default")
        .to_string();
    spec.insert("serviceAccountName".into(), json!(name));
    spec.insert("serviceAccount".into(), json!(name));
    let sa_def = resources::find("", "v1", "serviceaccounts").expect("service accounts are served");
    let Some(entry) = reg.store.get(&key(sa_def, namespace, &name)) else {
        return Err(ApiError::forbidden(format!(
            "error looking up service account {namespace}/{name}: serviceaccount \"{name}\" not found"
        )));
    };
    let sa: Value = serde_json::from_slice(&entry.object).unwrap_or(Value::Null);
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            sa.get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true);
    if !automount {
        return Ok(());
    }
    let mounted_by_hand = |c: &Value| {
        c.get("volumeMounts")
            .and_then(Value::as_array)
            .is_some_and(|ms| {
                ms.iter()
                    .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT_PATH))
            })
    };
    let volumes = spec
        .entry("volumes")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .expect("volumes is a list");
    let existing = volumes
        .iter()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .find(|n| n.starts_with("kube-api-access-"))
        .map(str::to_string);
    let volume_name = match existing {
        Some(n) => n,
        None => {
            let n = format!("kube-api-access-{}", crate::util::random_suffix(5));
            volumes.push(json!({
                "name": n,
                "projected": {
                    "defaultMode": 420,
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
                    ]
                }
            }));
            n
        }
    };
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if mounted_by_hand(c) {
                continue;
            }
            let Some(obj) = c.as_object_mut() else {
                continue;
            };
            obj.entry("volumeMounts")
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .expect("volumeMounts is a list")
                .push(json!({"name": volume_name, "mountPath": MOUNT_PATH, "readOnly": true}));
        }
    }
    Ok(())
}

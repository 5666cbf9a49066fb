//! Namespaces: a `default` ServiceAccount (the service account controller's job) and the
//! `kube-root-ca.crt` ConfigMap holding the cluster CA (the root CA publisher's) in every active
//! namespace, put back if deleted or changed; a terminating namespace has its objects deleted, then
//! its `kubernetes` finalizer removed, then goes.

use std::sync::Arc;

use podnet_apimachinery::{ApiError, object, resources};
use podnet_apistore::{ObjectKey, WatchEvent};
use serde_json::{Value, json};

use super::{BoxFut, Controller};
use crate::registry::{Api, DeleteOptions, WriteOptions, store_resource};

pub struct NamespaceController;

fn ns_def() -> &'static resources::ResourceDef {
    resources::find("", "v1", "namespaces").expect("served")
}

impl Controller for NamespaceController {
    fn name(&self) -> &'static str {
        "namespace"
    }

    fn watches(&self) -> Vec<String> {
        vec![
            "namespaces".into(),
            "serviceaccounts".into(),
            "configmaps".into(),
        ]
    }

    fn keys(&self, _api: &Api, ev: &WatchEvent) -> Vec<ObjectKey> {
        let ns = match ev.key.resource.as_str() {
            "namespaces" => ev.key.name.clone(),
            "configmaps" if ev.key.name != ROOT_CA_CONFIGMAP => return vec![],
            "serviceaccounts" if ev.key.name != "default" => return vec![],
            _ => ev.key.namespace.clone(),
        };
        vec![ObjectKey::new("namespaces", "", ns)]
    }

    fn all_keys(&self, api: &Api) -> Vec<ObjectKey> {
        super::keys_of(api, "namespaces")
    }

    fn reconcile<'a>(&'a self, api: &'a Arc<Api>, key: &'a ObjectKey) -> BoxFut<'a> {
        Box::pin(async move {
            let Ok(ns) = api.get(ns_def(), "", &key.name) else {
                return Ok(());
            };
            if object::is_deleting(&ns) {
                return finalize(api, &key.name).await;
            }
            let sa = resources::find("", "v1", "serviceaccounts").expect("served");
            if api.get_entry(sa, &key.name, "default").is_err() {
                let obj = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": key.name}});
                match api
                    .create(sa, &key.name, obj, &WriteOptions::default())
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.reason == "AlreadyExists" || e.code == 403 || e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            publish_root_ca(api, &key.name).await
        })
    }
}

/// The ConfigMap every namespace gets with the cluster's CA, for in-cluster clients.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

async fn publish_root_ca(api: &Arc<Api>, ns: &str) -> Result<(), ApiError> {
    let cm = resources::find("", "v1", "configmaps").expect("served");
    let ca = api.cfg.pki.ca_cert_pem.clone();
    let want_data = json!({"ca.crt": ca});
    match api.get(cm, ns, ROOT_CA_CONFIGMAP) {
        Ok(_) => {
            api.mutate(cm, ns, ROOT_CA_CONFIGMAP, None, |o| {
                let annotated = o
                    .pointer("/metadata/annotations/kubernetes.io~1description")
                    .and_then(Value::as_str)
                    == Some(ROOT_CA_DESCRIPTION);
                if o.get("data") == Some(&want_data) && annotated {
                    return false;
                }
                o["data"] = want_data.clone();
                let meta = object::meta_mut(o);
                if !meta.get("annotations").is_some_and(Value::is_object) {
                    meta.insert("annotations".into(), json!({}));
                }
                meta["annotations"]["kubernetes.io/description"] = json!(ROOT_CA_DESCRIPTION);
                true
            })
            .await?;
            Ok(())
        }
        Err(_) => {
            let obj = json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": ns, "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}},
                "data": want_data,
            });
            match api.create(cm, ns, obj, &WriteOptions::default()).await {
                Ok(_) => Ok(()),
                Err(e) if e.reason == "AlreadyExists" || e.code == 403 || e.code == 404 => Ok(()),
                Err(e) => Err(e),
            }
        }
    }
}

/// Deletes everything in the namespace; once it is empty, removes the namespace.
async fn finalize(api: &Arc<Api>, name: &str) -> Result<(), ApiError> {
    let mut remaining = 0;
    for r in resources::RESOURCES
        .iter()
        .filter(|r| r.namespaced && r.has_verb("delete"))
    {
        let items = api.store.list(&store_resource(r), Some(name)).0;
        for (k, e) in items {
            remaining += 1;
            let v: Value = serde_json::from_slice(&e.object).unwrap_or(Value::Null);
            if object::is_deleting(&v) {
                continue;
            }
            match api
                .delete(
                    r,
                    &k.namespace,
                    &k.name,
                    &DeleteOptions {
                        propagation: Some("Background".into()),
                        ..Default::default()
                    },
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.reason == "NotFound" => {}
                Err(e) => return Err(e),
            }
        }
    }
    if remaining > 0 {
        // look again shortly: deletions may be graceful
        let still: usize = resources::RESOURCES
            .iter()
            .filter(|r| r.namespaced)
            .map(|r| api.store.list(&store_resource(r), Some(name)).0.len())
            .sum();
        if still > 0 {
            return Err(ApiError::conflict(
                crate::registry::objref(ns_def(), name),
                &format!("{still} objects remain in the namespace"),
            ));
        }
    }
    api.mutate(ns_def(), "", name, None, |ns| {
        let fins = ns
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if fins.is_empty() {
            return false;
        }
        ns["spec"]["finalizers"] = json!(
            fins.into_iter()
                .filter(|f| f != "kubernetes")
                .collect::<Vec<_>>()
        );
        true
    })
    .await?;
    let ns = api.get(ns_def(), "", name)?;
    let spec_empty = ns
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if spec_empty && object::finalizers(&ns).is_empty() {
        api.force_remove(ns_def(), "", name).await?;
    }
    Ok(())
}

//! The resource quota controller: keeps every ResourceQuota's `status.hard` (its spec's) and
//! `status.used` (recomputed from the objects of its namespace), what `kubectl describe quota` and
//! `kubectl get quota` show.

use std::sync::Arc;

use podnet_apimachinery::{object, quota, resources};
use podnet_apistore::{ObjectKey, WatchEvent};
use serde_json::{Map, Value, json};

use super::{BoxFut, Controller};
use crate::registry::{Api, quota_usage};

pub struct ResourceQuotaController;

const QUOTAS: &str = "resourcequotas";

impl Controller for ResourceQuotaController {
    fn name(&self) -> &'static str {
        "resourcequota"
    }

    fn watches(&self) -> Vec<String> {
        [
            QUOTAS,
            "pods",
            "services",
            "configmaps",
            "secrets",
            "serviceaccounts",
            "apps/deployments",
            "apps/replicasets",
            "apps/statefulsets",
            "apps/daemonsets",
            "batch/jobs",
            "batch/cronjobs",
        ]
        .map(String::from)
        .to_vec()
    }

    /// One key per namespace that has quotas: any change there may move any of them.
    fn keys(&self, api: &Api, ev: &WatchEvent) -> Vec<ObjectKey> {
        let ns = &ev.key.namespace;
        if ns.is_empty() || api.store.list(QUOTAS, Some(ns)).0.is_empty() {
            return vec![];
        }
        vec![ObjectKey::new(QUOTAS, ns, "")]
    }

    fn all_keys(&self, api: &Api) -> Vec<ObjectKey> {
        let mut keys: Vec<ObjectKey> = api
            .store
            .list(QUOTAS, None)
            .0
            .into_iter()
            .map(|(k, _)| ObjectKey::new(QUOTAS, &k.namespace, ""))
            .collect();
        keys.dedup();
        keys
    }

    fn reconcile<'a>(&'a self, api: &'a Arc<Api>, key: &'a ObjectKey) -> BoxFut<'a> {
        Box::pin(async move {
            let def = resources::find("", "v1", QUOTAS).expect("served");
            for q in api.list_values(def, Some(&key.namespace)) {
                let hard = quota::hard_of(&q, "spec");
                let used = quota_usage(api, &key.namespace, &hard);
                let used: Map<String, Value> = used
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(quota::format(k, *v))))
                    .collect();
                let status = json!({
                    "hard": q.pointer("/spec/hard").cloned().unwrap_or_else(|| json!({})),
                    "used": used,
                });
                api.mutate(def, &key.namespace, object::name(&q), Some("status"), |o| {
                    if o.get("status") == Some(&status) {
                        return false;
                    }
                    o["status"] = status.clone();
                    true
                })
                .await?;
            }
            Ok(())
        })
    }
}

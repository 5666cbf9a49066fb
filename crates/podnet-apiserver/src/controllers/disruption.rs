//! The disruption controller: keeps every PodDisruptionBudget's status (healthy, desired and expected
//! pods, the disruptions allowed now, the DisruptionAllowed condition) from the pods it selects and
//! the scale of their controllers.

use std::collections::BTreeMap;
use std::sync::Arc;

use podnet_apimachinery::selector::LabelSelector;
use podnet_apimachinery::workloads::disruption;
use podnet_apimachinery::{object, resources};
use podnet_apistore::{ObjectKey, WatchEvent};
use serde_json::Value;

use super::{BoxFut, Controller, keys_of};
use crate::registry::Api;
use crate::util;

pub struct DisruptionController;

const PDBS: &str = "policy/poddisruptionbudgets";

impl Controller for DisruptionController {
    fn name(&self) -> &'static str {
        "disruption"
    }

    fn watches(&self) -> Vec<String> {
        vec![
            PDBS.into(),
            "pods".into(),
            "apps/replicasets".into(),
            "apps/statefulsets".into(),
        ]
    }

    /// A budget's own events name it; any other change may concern every budget of its namespace.
    fn keys(&self, api: &Api, ev: &WatchEvent) -> Vec<ObjectKey> {
        if ev.key.resource == PDBS {
            return vec![ev.key.clone()];
        }
        api.store
            .list(PDBS, Some(&ev.key.namespace))
            .0
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    fn all_keys(&self, api: &Api) -> Vec<ObjectKey> {
        keys_of(api, PDBS)
    }

    fn reconcile<'a>(&'a self, api: &'a Arc<Api>, key: &'a ObjectKey) -> BoxFut<'a> {
        Box::pin(async move {
            let def = resources::find("policy", "v1", "poddisruptionbudgets").expect("served");
            let Ok(pdb) = api.get(def, &key.namespace, &key.name) else {
                return Ok(());
            };
            let pods_def = resources::find("", "v1", "pods").expect("served");
            // policy/v1: no selector selects nothing, an empty one every pod of the namespace
            let selector = match pdb.pointer("/spec/selector") {
                None | Some(Value::Null) => None,
                Some(s) => LabelSelector::from_object(Some(s)).ok(),
            };
            let pods: Vec<Value> = match &selector {
                None => Vec::new(),
                Some(sel) => api
                    .list_values(pods_def, Some(&key.namespace))
                    .into_iter()
                    .filter(|p| sel.matches(object::labels(p)))
                    .filter(|p| !podnet_apimachinery::workloads::pod_finished(p))
                    .collect(),
            };
            let scale = expected_scale(api, &key.namespace, &pods);
            let refs: Vec<&Value> = pods.iter().collect();
            let counts = disruption::counts(&pdb, &refs, scale);
            let status = disruption::status(&pdb, counts, &util::now_rfc3339());
            api.mutate(def, &key.namespace, &key.name, Some("status"), |o| {
                if o.get("status") == Some(&status) {
                    return false;
                }
                o["status"] = status.clone();
                true
            })
            .await?;
            Ok(())
        })
    }
}

/// The replicas of the controllers owning `pods` (each counted once); `None` if a pod has none.
fn expected_scale(api: &Api, ns: &str, pods: &[Value]) -> Option<i64> {
    let mut owners: BTreeMap<String, i64> = BTreeMap::new();
    for p in pods {
        let c = object::controller_ref(p)?;
        let plural = match c["kind"].as_str()? {
            "ReplicaSet" => "replicasets",
            "StatefulSet" => "statefulsets",
            _ => return None,
        };
        let def = resources::find("apps", "v1", plural)?;
        let owner = api.get(def, ns, c["name"].as_str()?).ok()?;
        let replicas = owner
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        owners.insert(object::uid(&owner).to_string(), replicas);
    }
    Some(owners.values().sum())
}

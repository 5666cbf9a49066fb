//! DaemonSets: one pod per node that matches (the plan is
//! [`podnet_apimachinery::workloads::daemonset`]), each pinned to its node by a required node
//! affinity term that the scheduler honours, rolled by RollingUpdate (maxUnavailable or maxSurge)
//! or OnDelete, with a ControllerRevision per template (for `kubectl rollout history/undo ds`) and
//! the status `kubectl get ds` and `rollout status ds` read.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use podnet_apimachinery::resources::{self, ResourceDef};
use podnet_apimachinery::workloads::{REVISION_HASH_LABEL, daemonset};
use podnet_apimachinery::{ApiError, object};
use podnet_apistore::{ObjectKey, WatchEvent};
use serde_json::{Value, json};

use super::{BoxFut, Controller, Timers, history, record_event};
use crate::registry::{Api, DeleteOptions, WriteOptions};
use crate::util;

#[derive(Default)]
pub struct DaemonSetController {
    timers: Timers,
}

const COMPONENT: &str = "daemonset-controller";

fn ds_def() -> &'static ResourceDef {
    resources::find("apps", "v1", "daemonsets").expect("served")
}

fn pods_def() -> &'static ResourceDef {
    resources::find("", "v1", "pods").expect("served")
}

fn nodes_def() -> &'static ResourceDef {
    resources::find("", "v1", "nodes").expect("served")
}

fn key(ns: &str, name: &str) -> ObjectKey {
    ObjectKey::new("apps/daemonsets", ns, name)
}

impl Controller for DaemonSetController {
    fn name(&self) -> &'static str {
        "daemonset"
    }

    fn watches(&self) -> Vec<String> {
        vec![
            "apps/daemonsets".into(),
            "pods".into(),
            "nodes".into(),
            "apps/controllerrevisions".into(),
        ]
    }

    fn keys(&self, api: &Api, ev: &WatchEvent) -> Vec<ObjectKey> {
        match ev.key.resource.as_str() {
            "apps/daemonsets" => vec![ev.key.clone()],
            // a node that comes, goes or changes (labels, taints, readiness) concerns every set
            "nodes" => self.all_keys(api),
            _ => {
                let Ok(v) = serde_json::from_slice::<Value>(&ev.object) else {
                    return vec![];
                };
                match object::controller_ref(&v) {
                    Some(c) if c["kind"] == "DaemonSet" => vec![key(
                        object::namespace(&v),
                        c["name"].as_str().unwrap_or_default(),
                    )],
                    _ => vec![],
                }
            }
        }
    }

    fn all_keys(&self, api: &Api) -> Vec<ObjectKey> {
        super::keys_of(api, "apps/daemonsets")
    }

    fn reconcile<'a>(&'a self, api: &'a Arc<Api>, key: &'a ObjectKey) -> BoxFut<'a> {
        Box::pin(async move { self.sync(api, key).await })
    }

    fn timers(&self) -> Option<&Timers> {
        Some(&self.timers)
    }
}

impl DaemonSetController {
    async fn sync(&self, api: &Arc<Api>, k: &ObjectKey) -> Result<(), ApiError> {
        let Ok(ds) = api.get(ds_def(), &k.namespace, &k.name) else {
            return Ok(());
        };
        if object::is_deleting(&ds) {
            return Ok(());
        }
        let ns = k.namespace.as_str();
        let (rev, revs) = history::ensure(api, &ds, "DaemonSet").await?;
        let hash = rev
            .pointer("/metadata/labels")
            .and_then(|l| l.get(REVISION_HASH_LABEL))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let nodes = api.list_values(nodes_def(), None);
        let pods = super::replicaset::claim(api, pods_def(), &ds, "DaemonSet", "apps/v1").await;
        let now = util::now_unix();
        let plan = daemonset::plan(&ds, &nodes, &pods, &hash, now);
        for node in &plan.create_on {
            let pod = daemonset::new_pod(&ds, node, &hash);
            match api
                .create(pods_def(), ns, pod, &WriteOptions::default())
                .await
            {
                Ok(o) => {
                    let msg = format!("Created pod: {}", object::name(&o.value()));
                    record_event(api, &ds, "Normal", "SuccessfulCreate", &msg, COMPONENT).await;
                }
                Err(e) => {
                    let msg = format!("Error creating: {}", e.message);
                    record_event(api, &ds, "Warning", "FailedCreate", &msg, COMPONENT).await;
                    return Err(e);
                }
            }
        }
        for name in &plan.delete {
            match api
                .delete(pods_def(), ns, name, &DeleteOptions::default())
                .await
            {
                Ok(_) => {
                    let msg = format!("Deleted pod: {name}");
                    record_event(api, &ds, "Normal", "SuccessfulDelete", &msg, COMPONENT).await;
                }
                Err(e) if e.reason == "NotFound" => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(s) = plan.recheck_in {
            self.timers.after(k, Duration::from_secs(s as u64));
        }
        // status from what is there now
        let pods = super::replicaset::owned(api, pods_def(), ns, object::uid(&ds));
        let mut live: HashSet<String> = pods
            .iter()
            .filter_map(|p| {
                object::labels(p)
                    .and_then(|l| l.get(REVISION_HASH_LABEL))
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .collect();
        live.insert(hash.clone());
        history::prune(api, &ds, &revs, &live).await?;
        let counts = daemonset::status(&ds, &nodes, &pods, &hash, now);
        let generation = object::i64_at(&ds, "metadata.generation").unwrap_or(1);
        api.mutate(ds_def(), ns, &k.name, Some("status"), |o| {
            let mut st = counts.clone();
            st["observedGeneration"] = json!(generation);
            if let Some(c) = o.pointer("/status/collisionCount") {
                st["collisionCount"] = c.clone();
            }
            if let Some(c) = o.pointer("/status/conditions") {
                st["conditions"] = c.clone();
            }
            if o.get("status") == Some(&st) {
                return false;
            }
            o["status"] = st;
            true
        })
        .await?;
        Ok(())
    }
}

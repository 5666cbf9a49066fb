//! StatefulSets: stable pod names and DNS identities, ordered (OrderedReady) or Parallel start and
//! scale-down, RollingUpdate with a partition or OnDelete, a ControllerRevision per template and the
//! status `kubectl rollout status sts` reads. The decisions are
//! [`podnet_apimachinery::workloads::statefulset`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use podnet_apimachinery::resources::{self, ResourceDef};
use podnet_apimachinery::workloads::{REVISION_HASH_LABEL, statefulset};
use podnet_apimachinery::{ApiError, object};
use podnet_apistore::{ObjectKey, WatchEvent};
use serde_json::{Value, json};

use super::{BoxFut, Controller, Timers, history, record_event};
use crate::registry::{Api, DeleteOptions, WriteOptions};
use crate::util;

#[derive(Default)]
pub struct StatefulSetController {
    timers: Timers,
}

const COMPONENT: &str = "statefulset-controller";

fn sts_def() -> &'static ResourceDef {
    resources::find("apps", "v1", "statefulsets").expect("served")
}

fn pods_def() -> &'static ResourceDef {
    resources::find("", "v1", "pods").expect("served")
}

impl Controller for StatefulSetController {
    fn name(&self) -> &'static str {
        "statefulset"
    }

    fn watches(&self) -> Vec<String> {
        vec![
            "apps/statefulsets".into(),
            "pods".into(),
            "apps/controllerrevisions".into(),
        ]
    }

    fn keys(&self, _api: &Api, ev: &WatchEvent) -> Vec<ObjectKey> {
        if ev.key.resource == "apps/statefulsets" {
            return vec![ev.key.clone()];
        }
        super::controller_key(ev, "StatefulSet", "apps/statefulsets")
    }

    fn all_keys(&self, api: &Api) -> Vec<ObjectKey> {
        super::keys_of(api, "apps/statefulsets")
    }

    fn reconcile<'a>(&'a self, api: &'a Arc<Api>, key: &'a ObjectKey) -> BoxFut<'a> {
        Box::pin(async move { self.sync(api, key).await })
    }

    fn timers(&self) -> Option<&Timers> {
        Some(&self.timers)
    }
}

/// The revision a pod template was recorded as: its name and template.
fn revision(rev: &Value) -> statefulset::Revision {
    let mut template = rev
        .pointer("/data/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Value::Object(m) = &mut template {
        m.remove("$patch");
    }
    statefulset::Revision {
        name: object::name(rev).to_string(),
        template,
    }
}

impl StatefulSetController {
    async fn sync(&self, api: &Arc<Api>, k: &ObjectKey) -> Result<(), ApiError> {
        let Ok(set) = api.get(sts_def(), &k.namespace, &k.name) else {
            return Ok(());
        };
        if object::is_deleting(&set) {
            return Ok(());
        }
        let ns = k.namespace.as_str();
        let (update_rev, revs) = history::ensure(api, &set, "StatefulSet").await?;
        let update = revision(&update_rev);
        // the current revision: what the last finished rollout left (else the update revision)
        let current = object::str_at(&set, "status.currentRevision")
            .and_then(|n| revs.iter().find(|r| object::name(r) == n))
            .map(revision)
            .unwrap_or_else(|| update.clone());
        let pods = super::replicaset::claim(api, pods_def(), &set, "StatefulSet", "apps/v1").await;
        let now = util::now_unix();
        let plan = statefulset::plan(&set, &pods, &update.name, now);
        for (ordinal, at_update) in &plan.create {
            let rev = if *at_update { &update } else { &current };
            let pod = statefulset::new_pod(&set, *ordinal, rev);
            let pod_name = object::name(&pod).to_string();
            match api
                .create(pods_def(), ns, pod, &WriteOptions::default())
                .await
            {
                Ok(_) => {
                    let msg = format!("create Pod {pod_name} in StatefulSet {} successful", k.name);
                    record_event(api, &set, "Normal", "SuccessfulCreate", &msg, COMPONENT).await;
                }
                // The previous pod of that name is still being deleted (the next event retries), or
                // a pod of that name belongs to something else: say so, as upstream does.
                Err(e) if e.reason == "AlreadyExists" => {
                    let deleting = api
                        .get_entry(pods_def(), ns, &pod_name)
                        .ok()
                        .and_then(|en| serde_json::from_slice::<Value>(&en.object).ok())
                        .is_some_and(|p| object::is_deleting(&p));
                    if !deleting {
                        let msg = format!(
                            "create Pod {pod_name} in StatefulSet {} failed error: {}",
                            k.name, e.message
                        );
                        record_event(api, &set, "Warning", "FailedCreate", &msg, COMPONENT).await;
                    }
                }
                Err(e) => {
                    let msg = format!(
                        "create Pod {pod_name} in StatefulSet {} failed error: {}",
                        k.name, e.message
                    );
                    record_event(api, &set, "Warning", "FailedCreate", &msg, COMPONENT).await;
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
                    let msg = format!("delete Pod {name} in StatefulSet {} successful", k.name);
                    record_event(api, &set, "Normal", "SuccessfulDelete", &msg, COMPONENT).await;
                }
                Err(e) if e.reason == "NotFound" => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(s) = plan.recheck_in {
            self.timers.after(k, Duration::from_secs(s as u64));
        }
        let pods = super::replicaset::owned(api, pods_def(), ns, object::uid(&set));
        let counts = statefulset::status(&set, &pods, &current.name, &update.name, now);
        let mut live: HashSet<String> = pods
            .iter()
            .filter_map(|p| {
                object::labels(p)
                    .and_then(|l| l.get(REVISION_HASH_LABEL))
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .collect();
        live.insert(current.name.clone());
        live.insert(update.name.clone());
        history::prune(api, &set, &revs, &live).await?;
        let generation = object::i64_at(&set, "metadata.generation").unwrap_or(1);
        api.mutate(sts_def(), ns, &k.name, Some("status"), |o| {
            let mut st = counts.clone();
            st["observedGeneration"] = json!(generation);
            st["collisionCount"] = o
                .pointer("/status/collisionCount")
                .cloned()
                .unwrap_or(json!(0));
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

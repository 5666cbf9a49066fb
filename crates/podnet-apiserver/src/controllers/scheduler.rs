//! The scheduler: binds each Pending pod (of `default-scheduler`) to a node chosen by
//! [`podnet_apimachinery::scheduling`] (node name, cordons, taints and tolerations, node selector and
//! affinity, resource requests, pod affinity and anti-affinity; then spreading). A pod that fits
//! nowhere gets PodScheduled=False (Unschedulable) and a FailedScheduling event worded as
//! kube-scheduler words it, and is retried whenever nodes or placed pods change (and at every resync).
//! It also clears pods whose graceful deletion the node never finished.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use podnet_apimachinery::resources::{self, ResourceDef};
use podnet_apimachinery::scheduling::{self, Cluster};
use podnet_apimachinery::{ApiError, object, time};
use podnet_apistore::{ObjectKey, WatchEvent};
use serde_json::{Value, json};

use super::{BoxFut, Controller, pod_active, record_event, set_condition};
use crate::registry::Api;
use crate::util;

#[derive(Default)]
pub struct Scheduler {
    /// Placed pods (assigned, not finished), refreshed at most every [`PLACED_TTL`] (a burst of
    /// scheduling decisions must not rescan every pod for each pod), extended by each binding in
    /// between and dropped when a placed pod goes away.
    placed: Mutex<Option<(Instant, Arc<Vec<Value>>)>>,
    /// Pods that fit nowhere last time: retried when nodes or placed pods change.
    unschedulable: Mutex<BTreeSet<ObjectKey>>,
}

const PLACED_TTL: Duration = Duration::from_secs(2);

fn terminal(p: &Value) -> bool {
    matches!(
        object::str_at(p, "status.phase"),
        Some("Succeeded" | "Failed")
    )
}

impl Scheduler {
    fn placed(&self, api: &Api) -> Arc<Vec<Value>> {
        let mut guard = self.placed.lock().expect("scheduler lock");
        if let Some((at, pods)) = guard.as_ref()
            && at.elapsed() < PLACED_TTL
        {
            return pods.clone();
        }
        let pods: Arc<Vec<Value>> = Arc::new(
            api.list_values(pods(), None)
                .into_iter()
                .filter(|p| !unscheduled(p) && !terminal(p))
                .collect(),
        );
        *guard = Some((Instant::now(), pods.clone()));
        pods
    }

    fn bound(&self, pod: &Value, node: &str) {
        if let Some((_, pods)) = self.placed.lock().expect("scheduler lock").as_mut() {
            let mut p = pod.clone();
            p["spec"]["nodeName"] = json!(node);
            // copy-on-write: free when no scheduling decision holds the list any more
            Arc::make_mut(pods).push(p);
        }
    }

    fn forget_placed(&self) {
        *self.placed.lock().expect("scheduler lock") = None;
    }
}

/// How long past its deletion deadline a terminating pod may linger before it is removed anyway.
const FORCE_AFTER_SECS: i64 = 60;

fn pods() -> &'static ResourceDef {
    resources::find("", "v1", "pods").expect("served")
}

fn nodes() -> &'static ResourceDef {
    resources::find("", "v1", "nodes").expect("served")
}

fn unscheduled(p: &Value) -> bool {
    object::str_at(p, "spec.nodeName").is_none_or(str::is_empty)
}

impl Controller for Scheduler {
    fn name(&self) -> &'static str {
        "scheduler"
    }

    fn watches(&self) -> Vec<String> {
        vec!["pods".into(), "nodes".into()]
    }

    fn keys(&self, _api: &Api, ev: &WatchEvent) -> Vec<ObjectKey> {
        let retry = || -> Vec<ObjectKey> {
            self.unschedulable
                .lock()
                .expect("scheduler lock")
                .iter()
                .cloned()
                .collect()
        };
        if ev.key.resource == "nodes" {
            return retry();
        }
        let Ok(p) = serde_json::from_slice::<Value>(&ev.object) else {
            return vec![];
        };
        let deleted = ev.ty == podnet_apistore::EventType::Deleted;
        if unscheduled(&p) {
            if deleted {
                self.unschedulable
                    .lock()
                    .expect("scheduler lock")
                    .remove(&ev.key);
                return vec![];
            }
            return vec![ev.key.clone()];
        }
        // a placed pod changed: what it frees or what its labels attract may let others fit
        if deleted || terminal(&p) || object::is_deleting(&p) {
            self.forget_placed();
        }
        let mut keys = retry();
        if object::is_deleting(&p) && !deleted {
            keys.push(ev.key.clone());
        }
        keys
    }

    fn all_keys(&self, api: &Api) -> Vec<ObjectKey> {
        api.store
            .list("pods", None)
            .0
            .into_iter()
            .filter(|(_, e)| {
                serde_json::from_slice::<Value>(&e.object)
                    .is_ok_and(|p| unscheduled(&p) || object::is_deleting(&p))
            })
            .map(|(k, _)| k)
            .collect()
    }

    fn reconcile<'a>(&'a self, api: &'a Arc<Api>, key: &'a ObjectKey) -> BoxFut<'a> {
        Box::pin(async move { schedule(self, api, &key.namespace, &key.name).await })
    }
}

async fn schedule(sched: &Scheduler, api: &Arc<Api>, ns: &str, name: &str) -> Result<(), ApiError> {
    let Ok(pod) = api.get(pods(), ns, name) else {
        return Ok(());
    };
    if object::is_deleting(&pod) {
        let deadline = object::str_at(&pod, "metadata.deletionTimestamp")
            .and_then(time::parse_rfc3339)
            .unwrap_or(0);
        if util::now_unix() > deadline + FORCE_AFTER_SECS {
            api.force_remove(pods(), ns, name).await?;
        }
        return Ok(());
    }
    if !unscheduled(&pod) || !pod_active(&pod) {
        sched
            .unschedulable
            .lock()
            .expect("scheduler lock")
            .remove(&key(ns, name));
        return Ok(());
    }
    if object::str_at(&pod, "spec.schedulerName").is_some_and(|s| s != SCHEDULER_NAME) {
        return Ok(());
    }
    let decision = {
        let all_nodes = api.list_values(nodes(), None);
        let placed = sched.placed(api);
        let namespaces = api.list_values(
            resources::find("", "v1", "namespaces").expect("served"),
            None,
        );
        scheduling::schedule(
            &pod,
            &Cluster {
                nodes: &all_nodes,
                pods: &placed,
                namespaces: &namespaces,
            },
        )
    };
    let node_name = match decision {
        Ok(n) => n,
        Err(fit) => {
            sched
                .unschedulable
                .lock()
                .expect("scheduler lock")
                .insert(key(ns, name));
            let msg = fit.message();
            let changed = api
                .mutate(pods(), ns, name, Some("status"), |p| {
                    set_condition(p, "PodScheduled", "False", "Unschedulable", &msg)
                })
                .await?;
            if changed.is_some() {
                record_event(
                    api,
                    &pod,
                    "Warning",
                    "FailedScheduling",
                    &msg,
                    SCHEDULER_NAME,
                )
                .await;
            }
            return Ok(());
        }
    };
    sched
        .unschedulable
        .lock()
        .expect("scheduler lock")
        .remove(&key(ns, name));
    match api.bind(pods(), ns, name, &node_name).await {
        Ok(()) => {
            sched.bound(&pod, &node_name);
            record_event(
                api,
                &pod,
                "Normal",
                "Scheduled",
                &format!("Successfully assigned {ns}/{name} to {node_name}"),
                SCHEDULER_NAME,
            )
            .await;
            Ok(())
        }
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

fn key(ns: &str, name: &str) -> ObjectKey {
    ObjectKey::new("pods", ns, name)
}

/// The scheduler's name: pods naming another scheduler are left to it.
pub const SCHEDULER_NAME: &str = "default-scheduler";

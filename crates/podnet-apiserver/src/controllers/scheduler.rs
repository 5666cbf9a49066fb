//! A simple scheduler: binds each Pending pod to a Ready, schedulable node whose taints it tolerates
//! and whose labels match its nodeSelector, preferring the node with the fewest pods. Without such a
//! node the pod stays Pending with PodScheduled=False (Unschedulable) and a FailedScheduling event.
//! It also clears pods whose graceful deletion the node never finished.

use std::collections::HashMap;
use std::sync::Arc;

use podnet_apimachinery::resources::{self, ResourceDef};
use podnet_apimachinery::{ApiError, object, time};
use podnet_apistore::{ObjectKey, WatchEvent};
use serde_json::Value;

use super::{BoxFut, Controller, pod_active, record_event, set_condition};
use crate::registry::Api;
use crate::util;

#[derive(Default)]
pub struct Scheduler {
    /// Active pods per node, recounted at most every [`LOAD_TTL`] (a burst of scheduling decisions
    /// must not rescan every pod for each pod) and bumped by each binding in between.
    load: std::sync::Mutex<Option<(std::time::Instant, HashMap<String, usize>)>>,
}

const LOAD_TTL: std::time::Duration = std::time::Duration::from_secs(2);

impl Scheduler {
    fn load(&self, api: &Api) -> HashMap<String, usize> {
        let mut guard = self.load.lock().expect("scheduler lock");
        if let Some((at, counts)) = guard.as_ref()
            && at.elapsed() < LOAD_TTL
        {
            return counts.clone();
        }
        let mut counts = HashMap::new();
        for p in api.list_values(pods(), None) {
            if let Some(n) = object::str_at(&p, "spec.nodeName").filter(|n| !n.is_empty())
                && pod_active(&p)
            {
                *counts.entry(n.to_string()).or_insert(0) += 1;
            }
        }
        *guard = Some((std::time::Instant::now(), counts.clone()));
        counts
    }

    fn bound(&self, node: &str) {
        if let Some((_, counts)) = self.load.lock().expect("scheduler lock").as_mut() {
            *counts.entry(node.to_string()).or_insert(0) += 1;
        }
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

    fn keys(&self, api: &Api, ev: &WatchEvent) -> Vec<ObjectKey> {
        if ev.key.resource == "nodes" {
            return self.all_keys(api);
        }
        match serde_json::from_slice::<Value>(&ev.object) {
            Ok(p)
                if (unscheduled(&p) || object::is_deleting(&p))
                    && ev.ty != podnet_apistore::EventType::Deleted =>
            {
                vec![ev.key.clone()]
            }
            _ => vec![],
        }
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

fn node_ready(n: &Value) -> bool {
    n.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn tolerates(pod: &Value, taint: &Value) -> bool {
    let effect = taint.get("effect").and_then(Value::as_str).unwrap_or("");
    if effect == "PreferNoSchedule" {
        return true;
    }
    let tols = pod
        .pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    tols.iter().any(|t| {
        let key_ok = match t.get("key").and_then(Value::as_str) {
            None | Some("") => t.get("operator").and_then(Value::as_str) == Some("Exists"),
            Some(k) => Some(k) == taint.get("key").and_then(Value::as_str),
        };
        let op_ok = match t.get("operator").and_then(Value::as_str).unwrap_or("Equal") {
            "Exists" => true,
            _ => {
                t.get("value").and_then(Value::as_str).unwrap_or("")
                    == taint.get("value").and_then(Value::as_str).unwrap_or("")
            }
        };
        let effect_ok = t
            .get("effect")
            .and_then(Value::as_str)
            .is_none_or(|e| e.is_empty() || e == effect);
        key_ok && op_ok && effect_ok
    })
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
        return Ok(());
    }
    let all_nodes = api.list_values(nodes(), None);
    let selector = pod
        .pointer("/spec/nodeSelector")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut not_ready = 0;
    let mut tainted = 0;
    let mut unschedulable = 0;
    let mut mismatched = 0;
    let mut feasible = Vec::new();
    for n in &all_nodes {
        if !node_ready(n) {
            not_ready += 1;
        } else if n.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
            unschedulable += 1;
        } else if !n
            .pointer("/spec/taints")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|t| t.get("effect").and_then(Value::as_str) != Some("PreferNoSchedule"))
            .all(|t| tolerates(&pod, t))
        {
            tainted += 1;
        } else if !selector
            .iter()
            .all(|(k, v)| object::labels(n).and_then(|l| l.get(k)) == Some(v))
        {
            mismatched += 1;
        } else {
            feasible.push(n);
        }
    }
    if feasible.is_empty() {
        let msg = if all_nodes.is_empty() {
            "no nodes available to schedule pods".to_string()
        } else {
            let mut reasons = Vec::new();
            if not_ready > 0 {
                reasons.push(format!(
                    "{not_ready} node(s) had untolerated taint {{node.kubernetes.io/not-ready: }}"
                ));
            }
            if unschedulable > 0 {
                reasons.push(format!("{unschedulable} node(s) were unschedulable"));
            }
            if tainted > 0 {
                reasons.push(format!("{tainted} node(s) had untolerated taint(s)"));
            }
            if mismatched > 0 {
                reasons.push(format!(
                    "{mismatched} node(s) didn't match Pod's node affinity/selector"
                ));
            }
            format!(
                "0/{} nodes are available: {}.",
                all_nodes.len(),
                reasons.join(", ")
            )
        };
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
                "default-scheduler",
            )
            .await;
        }
        return Ok(());
    }
    let load = sched.load(api);
    let node = feasible
        .into_iter()
        .min_by_key(|n| {
            (
                load.get(object::name(n)).copied().unwrap_or(0),
                object::name(n).to_string(),
            )
        })
        .expect("non-empty");
    let node_name = object::name(node).to_string();
    match api.bind(pods(), ns, name, &node_name).await {
        Ok(()) => {
            sched.bound(&node_name);
            record_event(
                api,
                &pod,
                "Normal",
                "Scheduled",
                &format!("Successfully assigned {ns}/{name} to {node_name}"),
                "default-scheduler",
            )
            .await;
            Ok(())
        }
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

//! ReplicaSets: keep `spec.replicas` pods that match the template and are owned by the set.

use std::sync::Arc;

use podnet_apimachinery::resources::{self, ResourceDef};
use podnet_apimachinery::{ApiError, object, workloads};
use podnet_apistore::{ObjectKey, WatchEvent};
use serde_json::{Value, json};

use super::{BoxFut, Controller, Timers, pod_active, pod_ready, record_event};
use crate::registry::{Api, DeleteOptions, WriteOptions};
use crate::util;

#[derive(Default)]
pub struct ReplicaSetController {
    timers: Timers,
}

fn rs_def() -> &'static ResourceDef {
    resources::find("apps", "v1", "replicasets").expect("served")
}

fn pods_def() -> &'static ResourceDef {
    resources::find("", "v1", "pods").expect("served")
}

/// Pods owned (as controller) by the object with `uid`.
pub fn owned(api: &Api, r: &ResourceDef, ns: &str, uid: &str) -> Vec<Value> {
    api.list_values(r, Some(ns))
        .into_iter()
        .filter(|p| {
            object::controller_ref(p)
                .and_then(|c| c.get("uid"))
                .and_then(Value::as_str)
                == Some(uid)
        })
        .collect()
}

/// The objects of `r` that `owner` (a `kind` of `api_version`) controls, after adopting the orphans
/// its selector matches, as kube's ControllerRefManager claims them: an object with no controller,
/// not being deleted, whose labels match gets `owner` as its controller. So a set deleted with
/// `--cascade=orphan` and created again takes its pods (and revisions) back instead of colliding
/// with them.
pub async fn claim(
    api: &Arc<Api>,
    r: &'static ResourceDef,
    owner: &Value,
    kind: &str,
    api_version: &str,
) -> Vec<Value> {
    let ns = object::namespace(owner);
    let uid = object::uid(owner);
    let Ok(selector) =
        podnet_apimachinery::selector::LabelSelector::from_object(owner.pointer("/spec/selector"))
    else {
        return owned(api, r, ns, uid);
    };
    let mut claimed = Vec::new();
    for obj in api.list_values(r, Some(ns)) {
        match object::controller_ref(&obj) {
            Some(c) if c.get("uid").and_then(Value::as_str) == Some(uid) => claimed.push(obj),
            Some(_) => {}
            None => {
                let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
                if object::is_deleting(&obj) || selector.is_empty() || !selector.matches(labels) {
                    continue;
                }
                let reference = json!({"apiVersion": api_version, "kind": kind,
                    "name": object::name(owner), "uid": uid, "controller": true, "blockOwnerDeletion": true});
                let adopted = api
                    .mutate(r, ns, object::name(&obj), None, |o| {
                        if object::controller_ref(o).is_some() {
                            return false;
                        }
                        let refs = o["metadata"]["ownerReferences"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default();
                        let mut refs: Vec<Value> =
                            refs.into_iter().filter(|x| x["uid"] != uid).collect();
                        refs.push(reference.clone());
                        o["metadata"]["ownerReferences"] = Value::Array(refs);
                        true
                    })
                    .await;
                if let Ok(Some(_)) = adopted
                    && let Ok(entry) = api.get_entry(r, ns, object::name(&obj))
                    && let Ok(v) = serde_json::from_slice::<Value>(&entry.object)
                {
                    claimed.push(v);
                }
            }
        }
    }
    claimed
}

impl Controller for ReplicaSetController {
    fn name(&self) -> &'static str {
        "replicaset"
    }

    fn watches(&self) -> Vec<String> {
        vec!["apps/replicasets".into(), "pods".into()]
    }

    fn keys(&self, _api: &Api, ev: &WatchEvent) -> Vec<ObjectKey> {
        if ev.key.resource == "apps/replicasets" {
            return vec![ev.key.clone()];
        }
        super::controller_key(ev, "ReplicaSet", "apps/replicasets")
    }

    fn all_keys(&self, api: &Api) -> Vec<ObjectKey> {
        super::keys_of(api, "apps/replicasets")
    }

    fn reconcile<'a>(&'a self, api: &'a Arc<Api>, key: &'a ObjectKey) -> BoxFut<'a> {
        Box::pin(async move {
            let recheck = sync(api, &key.namespace, &key.name).await?;
            if let Some(s) = recheck {
                self.timers
                    .after(key, std::time::Duration::from_secs(s as u64));
            }
            Ok(())
        })
    }

    fn timers(&self) -> Option<&Timers> {
        Some(&self.timers)
    }
}

fn pod_from_template(rs: &Value) -> Value {
    let tmpl = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let mut meta = tmpl.get("metadata").cloned().unwrap_or(json!({}));
    if let Value::Object(m) = &mut meta {
        m.remove("name");
        m.remove("namespace");
        m.insert(
            "generateName".into(),
            json!(format!("{}-", object::name(rs))),
        );
        m.insert(
            "ownerReferences".into(),
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": object::name(rs), "uid": object::uid(rs), "controller": true, "blockOwnerDeletion": true}]),
        );
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": tmpl.get("spec").cloned().unwrap_or(json!({}))})
}

/// Deletion preference: unscheduled first, then not ready, then the newest.
fn deletion_rank(p: &Value) -> (u8, u8, std::cmp::Reverse<String>) {
    let unscheduled = object::str_at(p, "spec.nodeName").is_none_or(str::is_empty);
    (
        u8::from(!unscheduled),
        u8::from(pod_ready(p)),
        std::cmp::Reverse(
            object::str_at(p, "metadata.creationTimestamp")
                .unwrap_or("")
                .to_string(),
        ),
    )
}

/// Syncs one set; returns in how many seconds a Ready pod becomes available (minReadySeconds),
/// when one will.
async fn sync(api: &Arc<Api>, ns: &str, name: &str) -> Result<Option<i64>, ApiError> {
    let Ok(rs) = api.get(rs_def(), ns, name) else {
        return Ok(None);
    };
    if object::is_deleting(&rs) {
        return Ok(None);
    }
    let desired = object::i64_at(&rs, "spec.replicas").unwrap_or(1).max(0) as usize;
    let mut active: Vec<Value> = owned(api, pods_def(), ns, object::uid(&rs))
        .into_iter()
        .filter(pod_active)
        .collect();
    if active.len() < desired {
        for _ in active.len()..desired {
            let out = api
                .create(
                    pods_def(),
                    ns,
                    pod_from_template(&rs),
                    &WriteOptions::default(),
                )
                .await?;
            let pod = out.value();
            record_event(
                api,
                &rs,
                "Normal",
                "SuccessfulCreate",
                &format!("Created pod: {}", object::name(&pod)),
                "replicaset-controller",
            )
            .await;
            active.push(pod);
        }
    } else if active.len() > desired {
        active.sort_by_key(deletion_rank);
        let extra: Vec<Value> = active.drain(..active.len() - desired).collect();
        for p in extra {
            match api
                .delete(pods_def(), ns, object::name(&p), &DeleteOptions::default())
                .await
            {
                Ok(_)
                | Err(ApiError {
                    reason: "NotFound", ..
                }) => {}
                Err(e) => return Err(e),
            }
            record_event(
                api,
                &rs,
                "Normal",
                "SuccessfulDelete",
                &format!("Deleted pod: {}", object::name(&p)),
                "replicaset-controller",
            )
            .await;
        }
    }
    let now = util::now_unix();
    let min_ready = object::i64_at(&rs, "spec.minReadySeconds").unwrap_or(0);
    let ready = active.iter().filter(|p| pod_ready(p)).count();
    let available = active
        .iter()
        .filter(|p| workloads::pod_available(p, min_ready, now))
        .count();
    let recheck = active
        .iter()
        .filter_map(|p| workloads::available_in(p, min_ready, now))
        .filter(|s| *s > 0)
        .min();
    let generation = object::i64_at(&rs, "metadata.generation").unwrap_or(1);
    let n = active.len();
    api.mutate(rs_def(), ns, name, Some("status"), |o| {
        let mut st =
            json!({"replicas": n, "fullyLabeledReplicas": n, "observedGeneration": generation});
        if ready > 0 {
            st["readyReplicas"] = json!(ready);
        }
        if available > 0 {
            st["availableReplicas"] = json!(available);
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
    Ok(recheck)
}

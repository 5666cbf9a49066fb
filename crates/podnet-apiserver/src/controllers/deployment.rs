//! Deployments: one ReplicaSet per pod template (named `<deployment>-<pod-template-hash>`), rolled
//! from old to new within maxSurge/maxUnavailable (RollingUpdate) or all at once (Recreate), with the
//! status fields and conditions `kubectl rollout status` reads.

use std::sync::Arc;

use podnet_apimachinery::resources::{self, ResourceDef};
use podnet_apimachinery::{ApiError, object};
use podnet_apistore::{ObjectKey, WatchEvent};
use serde_json::{Value, json};

use super::{BoxFut, Controller, Timers, record_event};
use crate::registry::{Api, WriteOptions};
use crate::util;

#[derive(Default)]
pub struct DeploymentController {
    timers: Timers,
}

const REVISION: &str = "deployment.kubernetes.io/revision";

fn deploy_def() -> &'static ResourceDef {
    resources::find("apps", "v1", "deployments").expect("served")
}

fn rs_def() -> &'static ResourceDef {
    resources::find("apps", "v1", "replicasets").expect("served")
}

impl Controller for DeploymentController {
    fn name(&self) -> &'static str {
        "deployment"
    }

    fn watches(&self) -> Vec<String> {
        vec!["apps/deployments".into(), "apps/replicasets".into()]
    }

    fn keys(&self, _api: &Api, ev: &WatchEvent) -> Vec<ObjectKey> {
        if ev.key.resource == "apps/deployments" {
            return vec![ev.key.clone()];
        }
        super::controller_key(ev, "Deployment", "apps/deployments")
    }

    fn all_keys(&self, api: &Api) -> Vec<ObjectKey> {
        super::keys_of(api, "apps/deployments")
    }

    fn reconcile<'a>(&'a self, api: &'a Arc<Api>, key: &'a ObjectKey) -> BoxFut<'a> {
        Box::pin(async move {
            if let Some(s) = sync(api, &key.namespace, &key.name).await? {
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

/// An int-or-percent of `total`, rounded up or down.
fn scaled(v: Option<&Value>, total: i64, default: &str, round_up: bool) -> i64 {
    let v = v.cloned().unwrap_or(json!(default));
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) => {
                let x = p * total;
                if round_up { (x + 99) / 100 } else { x / 100 }
            }
            None => s.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

fn revision(v: &Value) -> i64 {
    v.pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn replicas(v: &Value) -> i64 {
    object::i64_at(v, "spec.replicas").unwrap_or(0)
}

fn status_i(v: &Value, f: &str) -> i64 {
    v.pointer(&format!("/status/{f}"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// The template with the pod-template-hash label, and the hash.
fn template_with_hash(d: &Value) -> (Value, String) {
    let tmpl = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let hash = util::safe_hash(serde_json::to_string(&tmpl).unwrap_or_default().as_bytes());
    let mut t = tmpl;
    if !t.get("metadata").is_some_and(Value::is_object) {
        t["metadata"] = json!({});
    }
    if !t["metadata"].get("labels").is_some_and(Value::is_object) {
        t["metadata"]["labels"] = json!({});
    }
    t["metadata"]["labels"]["pod-template-hash"] = json!(hash);
    (t, hash)
}

async fn scale_rs(api: &Arc<Api>, d: &Value, rs: &Value, to: i64) -> Result<(), ApiError> {
    let from = replicas(rs);
    if from == to {
        return Ok(());
    }
    let desired = replicas(d);
    api.mutate(
        rs_def(),
        object::namespace(rs),
        object::name(rs),
        None,
        |o| {
            o["spec"]["replicas"] = json!(to);
            let ann = object::meta_mut(o)
                .entry("annotations")
                .or_insert_with(|| json!({}));
            ann["deployment.kubernetes.io/desired-replicas"] = json!(desired.to_string());
            true
        },
    )
    .await?;
    let (verb, _) = if to > from { ("up", 0) } else { ("down", 0) };
    record_event(
        api,
        d,
        "Normal",
        "ScalingReplicaSet",
        &format!(
            "Scaled {verb} replica set {} from {from} to {to}",
            object::name(rs)
        ),
        "deployment-controller",
    )
    .await;
    Ok(())
}

/// Syncs one deployment; returns in how many seconds its progress deadline passes, while a rollout
/// is under way (nothing else would wake the controller to report it).
async fn sync(api: &Arc<Api>, ns: &str, name: &str) -> Result<Option<i64>, ApiError> {
    let Ok(d) = api.get(deploy_def(), ns, name) else {
        return Ok(None);
    };
    if object::is_deleting(&d) {
        return Ok(None);
    }
    let desired = replicas(&d).max(0);
    let (tmpl, hash) = template_with_hash(&d);
    let mut sets: Vec<Value> = api
        .list_values(rs_def(), Some(ns))
        .into_iter()
        .filter(|rs| {
            object::controller_ref(rs)
                .and_then(|c| c.get("uid"))
                .and_then(Value::as_str)
                == Some(object::uid(&d))
        })
        .collect();
    let max_rev = sets.iter().map(revision).max().unwrap_or(0);
    let new_idx = sets.iter().position(|rs| {
        rs.pointer("/metadata/labels/pod-template-hash")
            .and_then(Value::as_str)
            == Some(&hash)
    });
    let recreate = d.pointer("/spec/strategy/type").and_then(Value::as_str) == Some("Recreate");
    let paused = d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true);
    let new_rs = match new_idx {
        Some(i) => {
            let rs = sets.remove(i);
            // rolled back to an older template, it becomes the newest revision; the deployment's
            // annotations (a change-cause) follow it, as kube's SetNewReplicaSetAnnotations does
            let next = if revision(&rs) < max_rev {
                max_rev + 1
            } else {
                revision(&rs)
            };
            let min_ready = object::i64_at(&d, "spec.minReadySeconds").unwrap_or(0);
            let d_ann = d.pointer("/metadata/annotations").cloned();
            api.mutate(rs_def(), ns, object::name(&rs), None, |o| {
                let mut changed = false;
                if let Some(new) =
                    new_rs_annotations(d_ann.as_ref(), o.pointer("/metadata/annotations"), next)
                {
                    object::meta_mut(o).insert("annotations".into(), new);
                    changed = true;
                }
                if object::i64_at(o, "spec.minReadySeconds").unwrap_or(0) != min_ready {
                    o["spec"]["minReadySeconds"] = json!(min_ready);
                    changed = true;
                }
                changed
            })
            .await?;
            Some(api.get(rs_def(), ns, object::name(&rs))?)
        }
        // a paused deployment starts no rollout: a new template waits for the resume (kube's sync
        // without createIfNotExisted)
        None if paused => None,
        None => {
            let mut labels = tmpl
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or(json!({}));
            labels["pod-template-hash"] = json!(hash);
            let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
            if !selector.get("matchLabels").is_some_and(Value::is_object) {
                selector["matchLabels"] = json!({});
            }
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let rs_name = format!("{name}-{hash}");
            let rs = json!({
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name,
                    "namespace": ns,
                    "labels": labels,
                    "annotations": new_rs_annotations(d.pointer("/metadata/annotations"), Some(&json!({
                        "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                        "deployment.kubernetes.io/max-replicas": desired.to_string(),
                    })), max_rev + 1),
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": object::uid(&d), "controller": true, "blockOwnerDeletion": true}],
                },
                "spec": {"replicas": 0, "minReadySeconds": object::i64_at(&d, "spec.minReadySeconds").unwrap_or(0), "selector": selector, "template": tmpl},
            });
            Some(
                match api.create(rs_def(), ns, rs, &WriteOptions::default()).await {
                    Ok(o) => o.value(),
                    Err(e) if e.reason == "AlreadyExists" => api.get(rs_def(), ns, &rs_name)?,
                    Err(e) => return Err(e),
                },
            )
        }
    };
    let old_total: i64 = sets.iter().map(replicas).sum();
    if paused {
        scale_paused(api, &d, new_rs.as_ref(), &sets, desired).await?;
    } else if let Some(new_rs) = &new_rs
        && recreate
    {
        for rs in &sets {
            scale_rs(api, &d, rs, 0).await?;
        }
        let old_pods: i64 = sets.iter().map(|rs| status_i(rs, "replicas")).sum();
        if old_pods == 0 {
            scale_rs(api, &d, new_rs, desired).await?;
        }
    } else if let Some(new_rs) = &new_rs {
        let ru = d.pointer("/spec/strategy/rollingUpdate");
        let surge = scaled(ru.and_then(|r| r.get("maxSurge")), desired, "25%", true);
        let mut unavailable = scaled(
            ru.and_then(|r| r.get("maxUnavailable")),
            desired,
            "25%",
            false,
        );
        if surge == 0 && unavailable == 0 {
            unavailable = 1;
        }
        // the new set grows within the surge budget (kube's NewRSNewReplicas)
        let new_cur = replicas(new_rs);
        let new_target = if new_cur >= desired {
            desired
        } else {
            let room = (desired + surge - (old_total + new_cur)).max(0);
            new_cur + room.min(desired - new_cur)
        };
        if new_target != new_cur {
            scale_rs(api, &d, new_rs, new_target).await?;
        }
        sets.sort_by_key(revision);
        for (rs, to) in sets.iter().zip(old_scale_down(
            &sets,
            new_rs,
            new_target,
            desired,
            unavailable,
        )) {
            if to != replicas(rs) {
                scale_rs(api, &d, rs, to).await?;
            }
        }
    }
    // status, from the sets as they are now
    let new_rs = new_rs.map(|rs| api.get(rs_def(), ns, object::name(&rs)).unwrap_or(rs));
    let sets: Vec<Value> = sets
        .iter()
        .filter_map(|rs| api.get(rs_def(), ns, object::name(rs)).ok())
        .collect();
    let all: Vec<&Value> = sets.iter().chain(new_rs.as_ref()).collect();
    let total: i64 = all.iter().map(|rs| status_i(rs, "replicas")).sum();
    let ready: i64 = all.iter().map(|rs| status_i(rs, "readyReplicas")).sum();
    let available: i64 = all.iter().map(|rs| status_i(rs, "availableReplicas")).sum();
    let updated = new_rs.as_ref().map_or(0, |rs| status_i(rs, "replicas"));
    let ru = d.pointer("/spec/strategy/rollingUpdate");
    let max_unavailable = if recreate {
        0
    } else {
        scaled(
            ru.and_then(|r| r.get("maxUnavailable")),
            desired,
            "25%",
            false,
        )
    };
    let generation = object::i64_at(&d, "metadata.generation").unwrap_or(1);
    let new_name = new_rs
        .as_ref()
        .map_or("", |rs| object::name(rs))
        .to_string();
    let complete = updated == desired
        && available >= desired
        && total == updated
        && new_rs.as_ref().is_some_and(|rs| replicas(rs) == desired);
    // paused before its new set exists: the revision stays that of the running set
    let rev = new_rs.as_ref().map(|rs| revision(rs).to_string());
    api.mutate(deploy_def(), ns, name, None, |o| {
        let Some(rev) = &rev else { return false };
        let ann = object::meta_mut(o)
            .entry("annotations")
            .or_insert_with(|| json!({}));
        if ann.get(REVISION).and_then(Value::as_str) == Some(rev.as_str()) {
            return false;
        }
        ann[REVISION] = json!(rev);
        true
    })
    .await?;
    let deadline = object::i64_at(&d, "spec.progressDeadlineSeconds").unwrap_or(600);
    api.mutate(deploy_def(), ns, name, Some("status"), |o| {
        let mut st = json!({"observedGeneration": generation, "replicas": total, "updatedReplicas": updated});
        if ready > 0 {
            st["readyReplicas"] = json!(ready);
        }
        if available > 0 {
            st["availableReplicas"] = json!(available);
        }
        if desired - available > 0 {
            st["unavailableReplicas"] = json!(desired - available);
        }
        let old_conds = o.pointer("/status/conditions").cloned().unwrap_or(json!([]));
        let mut conds = old_conds.clone();
        let (astatus, areason, amsg) = if available >= desired - max_unavailable {
            ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        } else {
            ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
        };
        upsert_condition(&mut conds, "Available", astatus, areason, amsg);
        let old_status = o.get("status").cloned().unwrap_or(json!({}));
        let progressed = progressed(&old_status, &st);
        let timed_out = !paused && !complete && !progressed && past_deadline(&old_conds, &new_name, deadline);
        let (pstatus, preason, pmsg) = if paused {
            ("Unknown", "DeploymentPaused", "Deployment is paused".to_string())
        } else if complete {
            ("True", "NewReplicaSetAvailable", format!("ReplicaSet {new_name:?} has successfully progressed."))
        } else if timed_out {
            ("False", "ProgressDeadlineExceeded", format!("ReplicaSet {new_name:?} has timed out progressing."))
        } else {
            ("True", "ReplicaSetUpdated", format!("ReplicaSet {new_name:?} is progressing."))
        };
        upsert_condition(&mut conds, "Progressing", pstatus, preason, &pmsg);
        if progressed && !paused {
            // progress restarts the deadline (lastUpdateTime is what it counts from)
            touch_condition(&mut conds, "Progressing");
        }
        st["conditions"] = conds;
        // leave the timestamps alone when nothing else changed
        let mut cmp_old = o.get("status").cloned().unwrap_or(json!({}));
        let mut cmp_new = st.clone();
        strip_times(&mut cmp_old);
        strip_times(&mut cmp_new);
        if cmp_old == cmp_new {
            return false;
        }
        o["status"] = st;
        true
    })
    .await?;
    if complete {
        cleanup(api, &d, &sets).await?;
    }
    if paused || complete {
        return Ok(None);
    }
    // when the deadline passes without progress, the Progressing condition must say so
    let progressing = api.get(deploy_def(), ns, name).ok().and_then(|o| {
        o.pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"))
            .cloned()
    });
    // Already said (upstream's requeueStuckDeployment): nothing to wake up for until it changes.
    if progressing
        .as_ref()
        .is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded")
    {
        return Ok(None);
    }
    let since = progressing
        .as_ref()
        .and_then(|c| c["lastUpdateTime"].as_str())
        .and_then(podnet_apimachinery::time::parse_rfc3339)
        .unwrap_or_else(util::now_unix);
    Ok(Some((since + deadline - util::now_unix()).max(0) + 1))
}

/// kube's cleanupDeployment: old sets scaled to zero beyond `revisionHistoryLimit` go, oldest first.
async fn cleanup(api: &Arc<Api>, d: &Value, old: &[Value]) -> Result<(), ApiError> {
    let Some(limit) = object::i64_at(d, "spec.revisionHistoryLimit") else {
        return Ok(());
    };
    let mut idle: Vec<&Value> = old
        .iter()
        .filter(|rs| replicas(rs) == 0 && status_i(rs, "replicas") == 0 && !object::is_deleting(rs))
        .collect();
    let excess = idle.len() as i64 - limit.max(0);
    if excess <= 0 {
        return Ok(());
    }
    idle.sort_by_key(|rs| revision(rs));
    for rs in idle.into_iter().take(excess as usize) {
        match api
            .delete(
                rs_def(),
                object::namespace(rs),
                object::name(rs),
                &crate::registry::DeleteOptions::default(),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.reason == "NotFound" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Annotations a deployment leaves to itself (kube's skipCopyAnnotation).
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";

/// The annotations of the deployment's new set: the deployment's own (a change-cause) copied, and
/// the revision; a set that comes back (`rollout undo`) keeps its earlier numbers in
/// `revision-history`. `None` when nothing changes.
fn new_rs_annotations(
    d_ann: Option<&Value>,
    rs_ann: Option<&Value>,
    revision: i64,
) -> Option<Value> {
    let mut ann = rs_ann
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    let before = ann.clone();
    if let Some(Value::Object(d)) = d_ann {
        for (k, v) in d {
            if !NOT_COPIED.contains(&k.as_str()) {
                ann[k] = v.clone();
            }
        }
    }
    let old: i64 = ann
        .get(REVISION)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if old < revision {
        if old > 0 {
            let history = ann
                .get(REVISION_HISTORY)
                .and_then(Value::as_str)
                .unwrap_or("");
            let joined = if history.is_empty() {
                old.to_string()
            } else {
                format!("{history},{old}")
            };
            ann[REVISION_HISTORY] = json!(joined);
        }
        ann[REVISION] = json!(revision.to_string());
    }
    (ann != before || rs_ann.is_none()).then_some(ann)
}

/// A paused deployment only follows its replica count (kube's `scale` of a paused sync): the one
/// active set, or the newest when none is active, takes it; sets in the middle of a rollout stay as
/// they are until the resume.
async fn scale_paused(
    api: &Arc<Api>,
    d: &Value,
    new_rs: Option<&Value>,
    old: &[Value],
    desired: i64,
) -> Result<(), ApiError> {
    let all: Vec<&Value> = old.iter().chain(new_rs).collect();
    let active: Vec<&Value> = all.iter().copied().filter(|rs| replicas(rs) > 0).collect();
    let target = match active.as_slice() {
        [one] => Some(*one),
        [] => new_rs.or_else(|| all.iter().copied().max_by_key(|rs| revision(rs))),
        _ => None,
    };
    match target {
        Some(rs) => scale_rs(api, d, rs, desired).await,
        None => Ok(()),
    }
}

/// The sizes the old sets (oldest first) shrink to, as kube's reconcileOldReplicaSets decides. The
/// deployment must be able to keep `desired - max_unavailable` pods available counting the new set's
/// unavailable ones, so at most `all - min_available - new_unavailable` old replicas go: their
/// unavailable ones first, then available ones while more than `min_available` are available. A
/// rollout whose new pods never become available therefore stops at the surge, with the old pods
/// kept, instead of replacing them all.
fn old_scale_down(
    sets: &[Value],
    new_rs: &Value,
    new_replicas: i64,
    desired: i64,
    max_unavailable: i64,
) -> Vec<i64> {
    let mut sizes: Vec<i64> = sets.iter().map(replicas).collect();
    let min_available = desired - max_unavailable;
    let all: i64 = sizes.iter().sum::<i64>() + new_replicas;
    let new_unavailable = new_replicas - status_i(new_rs, "availableReplicas");
    let max_down = all - min_available - new_unavailable;
    if sizes.iter().all(|n| *n == 0) || max_down <= 0 {
        return sizes;
    }
    // unhealthy replicas first
    let mut down = 0;
    for (rs, size) in sets.iter().zip(sizes.iter_mut()) {
        let unhealthy = (*size - status_i(rs, "availableReplicas")).max(0);
        let n = unhealthy.min(max_down - down);
        *size -= n;
        down += n;
    }
    // then available ones, keeping min_available
    let available: i64 = sets
        .iter()
        .map(|rs| status_i(rs, "availableReplicas"))
        .sum::<i64>()
        + status_i(new_rs, "availableReplicas");
    let mut budget = (available - min_available).max(0);
    for size in sizes.iter_mut() {
        let n = (*size).min(budget);
        *size -= n;
        budget -= n;
    }
    sizes
}

/// kube's DeploymentProgressing: more updated, ready or available replicas, or fewer old ones.
fn progressed(old: &Value, new: &Value) -> bool {
    let n = |v: &Value, f: &str| v.get(f).and_then(Value::as_i64).unwrap_or(0);
    let old_leftover = n(old, "replicas") - n(old, "updatedReplicas");
    let new_leftover = n(new, "replicas") - n(new, "updatedReplicas");
    n(new, "updatedReplicas") > n(old, "updatedReplicas")
        || new_leftover < old_leftover
        || n(new, "readyReplicas") > n(old, "readyReplicas")
        || n(new, "availableReplicas") > n(old, "availableReplicas")
}

/// kube's DeploymentTimedOut: the rollout to `new_rs` has made no progress for
/// progressDeadlineSeconds since the Progressing condition's lastUpdateTime (or already timed out; a
/// condition about another set means a new rollout, whose clock starts now). Without this `kubectl
/// rollout status` waits forever on a rollout that cannot finish instead of reporting the exceeded
/// deadline.
fn past_deadline(conds: &Value, new_rs: &str, deadline_secs: i64) -> bool {
    let Some(c) = conds
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"))
        .filter(|c| {
            c["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("{new_rs:?}")))
        })
    else {
        return false;
    };
    match c["reason"].as_str() {
        Some("ProgressDeadlineExceeded") => true,
        Some("ReplicaSetUpdated") => c["lastUpdateTime"]
            .as_str()
            .and_then(podnet_apimachinery::time::parse_rfc3339)
            .is_some_and(|t| t + deadline_secs < util::now_unix()),
        _ => false,
    }
}

/// Sets a condition's lastUpdateTime to now.
fn touch_condition(conds: &mut Value, ty: &str) {
    if let Some(c) = conds
        .as_array_mut()
        .and_then(|cs| cs.iter_mut().find(|c| c["type"] == ty))
    {
        c["lastUpdateTime"] = json!(util::now_rfc3339());
    }
}

fn strip_times(st: &mut Value) {
    if let Some(Value::Array(cs)) = st.get_mut("conditions") {
        for c in cs {
            if let Value::Object(m) = c {
                m.remove("lastUpdateTime");
                m.remove("lastTransitionTime");
            }
        }
    }
}

/// Deployment conditions carry lastUpdateTime and lastTransitionTime.
fn upsert_condition(conds: &mut Value, ty: &str, status: &str, reason: &str, message: &str) {
    let now = util::now_rfc3339();
    let Value::Array(list) = conds else { return };
    match list.iter_mut().find(|c| c["type"] == ty) {
        Some(c) => {
            if c["status"] != status {
                c["lastTransitionTime"] = json!(now);
            }
            if c["status"] != status || c["reason"] != reason || c["message"] != message {
                c["lastUpdateTime"] = json!(now);
            }
            c["status"] = json!(status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        None => list.push(json!({"type": ty, "status": status, "lastUpdateTime": now, "lastTransitionTime": now, "reason": reason, "message": message})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(replicas: i64, available: i64) -> Value {
        json!({"spec": {"replicas": replicas}, "status": {"availableReplicas": available}})
    }

    #[test]
    fn old_sets_keep_the_minimum_while_new_pods_are_unavailable() {
        // 4 replicas, 25%/25%: surge 1, unavailable 1; no pod of either set is available
        assert_eq!(old_scale_down(&[rs(4, 0)], &rs(1, 0), 1, 4, 1), [3]);
        assert_eq!(old_scale_down(&[rs(3, 0)], &rs(2, 0), 2, 4, 1), [3]);
        // old pods available, new ones never: one old pod goes for the surge, then it stops
        assert_eq!(old_scale_down(&[rs(4, 4)], &rs(1, 0), 1, 4, 1), [3]);
        assert_eq!(old_scale_down(&[rs(3, 3)], &rs(2, 0), 2, 4, 1), [3]);
        // new pods available: the old set goes down as they come up
        assert_eq!(old_scale_down(&[rs(3, 3)], &rs(2, 2), 2, 4, 1), [1]);
        assert_eq!(old_scale_down(&[rs(1, 1)], &rs(4, 4), 4, 4, 1), [0]);
    }

    #[test]
    fn a_rollout_without_progress_times_out() {
        let long_ago = "2020-01-01T00:00:00Z";
        let conds = |reason: &str, rs: &str| {
            json!([{"type": "Progressing", "status": "True", "reason": reason,
                "message": format!("ReplicaSet {rs:?} is progressing."), "lastUpdateTime": long_ago}])
        };
        assert!(past_deadline(
            &conds("ReplicaSetUpdated", "web-1"),
            "web-1",
            600
        ));
        // a new rollout (another set) starts its own clock; a finished one never times out
        assert!(!past_deadline(
            &conds("ReplicaSetUpdated", "web-1"),
            "web-2",
            600
        ));
        assert!(!past_deadline(
            &conds("NewReplicaSetAvailable", "web-1"),
            "web-1",
            600
        ));
        let recent = json!([{"type": "Progressing", "reason": "ReplicaSetUpdated",
            "message": "ReplicaSet \"web-1\" is progressing.", "lastUpdateTime": util::now_rfc3339()}]);
        assert!(!past_deadline(&recent, "web-1", 600));
        // progress: more updated/ready/available replicas or fewer old ones
        let st = |replicas: i64, updated: i64, available: i64| json!({"replicas": replicas, "updatedReplicas": updated, "availableReplicas": available});
        assert!(progressed(&st(5, 1, 0), &st(5, 2, 0)));
        assert!(progressed(&st(5, 2, 0), &st(4, 2, 0)));
        assert!(progressed(&st(5, 2, 0), &st(5, 2, 1)));
        assert!(!progressed(&st(5, 2, 1), &st(5, 2, 1)));
    }

    #[test]
    fn the_new_set_carries_the_change_cause_and_its_earlier_revisions() {
        let d = json!({"kubernetes.io/change-cause": "kubectl set image", REVISION: "3",
            "kubectl.kubernetes.io/last-applied-configuration": "{}"});
        let created = new_rs_annotations(Some(&d), None, 4).unwrap();
        assert_eq!(
            created,
            json!({"kubernetes.io/change-cause": "kubectl set image", REVISION: "4"})
        );
        assert_eq!(new_rs_annotations(Some(&d), Some(&created), 4), None);
        // rolled back to revision 2: it becomes 5 and remembers 2
        let old = json!({REVISION: "2"});
        let back = new_rs_annotations(None, Some(&old), 5).unwrap();
        assert_eq!(back, json!({REVISION: "5", REVISION_HISTORY: "2"}));
        let again = new_rs_annotations(None, Some(&back), 7).unwrap();
        assert_eq!(again[REVISION_HISTORY], "2,5");
    }

    #[test]
    fn surge_and_unavailable_rounding() {
        assert_eq!(scaled(None, 3, "25%", true), 1);
        assert_eq!(scaled(None, 3, "25%", false), 0);
        assert_eq!(scaled(Some(&json!(2)), 3, "25%", false), 2);
        assert_eq!(scaled(Some(&json!("50%")), 4, "25%", false), 2);
    }
}

//! ControllerRevisions of DaemonSets and StatefulSets (kube's controller history): one revision per
//! distinct pod template, named `<parent>-<hash>`, numbered in the order templates were used; a
//! template used again (a `rollout undo`) gets its old revision renumbered as the newest.

use std::collections::HashSet;
use std::sync::Arc;

use podnet_apimachinery::resources::{self, ResourceDef};
use podnet_apimachinery::workloads::{REVISION_HASH_LABEL, history};
use podnet_apimachinery::{ApiError, object};
use serde_json::{Value, json};

use crate::registry::{Api, DeleteOptions, WriteOptions};

pub fn revisions_def() -> &'static ResourceDef {
    resources::find("apps", "v1", "controllerrevisions").expect("served")
}

/// The revisions `parent` controls, oldest first.
pub fn owned(api: &Api, parent: &Value) -> Vec<Value> {
    let mut revs = super::replicaset::owned(
        api,
        revisions_def(),
        object::namespace(parent),
        object::uid(parent),
    );
    revs.sort_by_key(history::number);
    revs
}

/// The revision recording `parent`'s current template, created (or renumbered as the newest) if
/// needed. Returns it with all revisions after the change.
pub async fn ensure(
    api: &Arc<Api>,
    parent: &Value,
    kind: &str,
) -> Result<(Value, Vec<Value>), ApiError> {
    let ns = object::namespace(parent);
    let data = history::template_patch(parent);
    // Revisions left by a set deleted with --cascade=orphan are taken back, so its history goes on.
    super::replicaset::claim(api, revisions_def(), parent, kind, "apps/v1").await;
    let mut revs = owned(api, parent);
    if let Some(rev) = history::find_equal(&revs, &data).cloned() {
        let next = history::next_number(&revs);
        if history::number(&rev) == next - 1 {
            return Ok((rev, revs));
        }
        // an older template is back: its revision becomes the newest
        let out = api
            .mutate(revisions_def(), ns, object::name(&rev), None, |r| {
                r["revision"] = json!(next);
                true
            })
            .await?;
        let rev = out.map(|o| o.value()).unwrap_or(rev);
        revs.retain(|r| object::uid(r) != object::uid(&rev));
        revs.push(rev.clone());
        return Ok((rev, revs));
    }
    let collisions = object::i64_at(parent, "status.collisionCount").unwrap_or(0);
    let hash = history::hash(&data, collisions);
    let mut labels = parent
        .pointer("/spec/template/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    labels[REVISION_HASH_LABEL] = json!(hash);
    let mut meta = json!({
        "name": format!("{}-{hash}", object::name(parent)),
        "namespace": ns,
        "labels": labels,
        "ownerReferences": [podnet_apimachinery::workloads::controller_ref(parent, "apps/v1", kind)],
    });
    // the parent's annotations (a change-cause among them) go with the revision, as the
    // DaemonSet and StatefulSet controllers copy them
    if let Some(a) = parent
        .pointer("/metadata/annotations")
        .filter(|a| a.as_object().is_some_and(|m| !m.is_empty()))
    {
        meta["annotations"] = a.clone();
    }
    let rev = json!({
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": meta,
        "data": data,
        "revision": history::next_number(&revs),
    });
    let created = match api
        .create(revisions_def(), ns, rev, &WriteOptions::default())
        .await
    {
        Ok(o) => o.value(),
        // a revision of that name with other data: a hash collision; the next sync retries with
        // a bumped collision count
        Err(e) if e.reason == "AlreadyExists" => {
            let name = format!("{}-{hash}", object::name(parent));
            let existing = api.get(revisions_def(), ns, &name)?;
            if existing.get("data") != Some(&data) {
                bump_collisions(api, parent, kind).await?;
                return Err(ApiError::conflict(
                    crate::registry::objref(revisions_def(), &name),
                    "hash collision; retrying with a new collision count",
                ));
            }
            existing
        }
        Err(e) => return Err(e),
    };
    revs.push(created.clone());
    Ok((created, revs))
}

async fn bump_collisions(api: &Arc<Api>, parent: &Value, kind: &str) -> Result<(), ApiError> {
    let def = match kind {
        "DaemonSet" => resources::find("apps", "v1", "daemonsets"),
        _ => resources::find("apps", "v1", "statefulsets"),
    }
    .expect("served");
    api.mutate(
        def,
        object::namespace(parent),
        object::name(parent),
        Some("status"),
        |o| {
            let n = object::i64_at(o, "status.collisionCount").unwrap_or(0);
            o["status"]["collisionCount"] = json!(n + 1);
            true
        },
    )
    .await
    .map(|_| ())
}

/// Deletes the oldest revisions beyond `spec.revisionHistoryLimit` that nothing uses (`live`:
/// names or hashes of the current revisions and of the pods' revisions).
pub async fn prune(
    api: &Arc<Api>,
    parent: &Value,
    revs: &[Value],
    live: &HashSet<String>,
) -> Result<(), ApiError> {
    let limit = object::i64_at(parent, "spec.revisionHistoryLimit").unwrap_or(10);
    for name in history::to_prune(revs, live, limit) {
        match api
            .delete(
                revisions_def(),
                object::namespace(parent),
                &name,
                &DeleteOptions::default(),
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

//! Garbage collection by ownerReferences: when every owner of an object is gone, the object goes
//! (background propagation). Owners being deleted with `foregroundDeletion` go after their dependents;
//! with `orphan`, their dependents lose the reference instead.

use std::sync::Arc;

use podnet_apimachinery::resources::{self, ResourceDef};
use podnet_apimachinery::{ApiError, object};
use podnet_apistore::{EventType, ObjectKey, WatchEvent};
use serde_json::{Value, json};

use super::{BoxFut, Controller};
use crate::registry::{Api, DeleteOptions, store_resource};

pub struct GarbageCollector;

/// Resources that can have (or be) owners.
fn tracked() -> Vec<&'static ResourceDef> {
    resources::RESOURCES
        .iter()
        .filter(|r| r.has_verb("delete") && r.kind != "Event" && r.kind != "Namespace")
        .collect()
}

/// GC keys are per owner uid: resource "gc", namespace of the dependents, name = uid.
fn gc_key(ns: &str, uid: &str) -> ObjectKey {
    ObjectKey::new("gc", ns, uid)
}

fn owner_refs(v: &Value) -> Vec<Value> {
    v.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn find_by_uid(api: &Api, ns: &str, r: &ResourceDef, name: &str, uid: &str) -> Option<Value> {
    let v = api.get(r, ns, name).ok()?;
    (object::uid(&v) == uid).then_some(v)
}

fn owner_def(oref: &Value) -> Option<&'static ResourceDef> {
    let kind = oref.get("kind")?.as_str()?;
    let api_version = oref.get("apiVersion")?.as_str()?;
    resources::find_kind(api_version, kind)
}

impl Controller for GarbageCollector {
    fn name(&self) -> &'static str {
        "garbage-collector"
    }

    fn watches(&self) -> Vec<String> {
        tracked().into_iter().map(store_resource).collect()
    }

    fn keys(&self, _api: &Api, ev: &WatchEvent) -> Vec<ObjectKey> {
        let Ok(v) = serde_json::from_slice::<Value>(&ev.object) else {
            return vec![];
        };
        let mut keys = Vec::new();
        let deleting_with_policy = object::finalizers(&v)
            .iter()
            .any(|f| f == "foregroundDeletion" || f == "orphan");
        if ev.ty == EventType::Deleted || deleting_with_policy {
            keys.push(gc_key(object::namespace(&v), object::uid(&v)));
        }
        // a dependent whose owner is already gone, or one whose owner waits for it to go
        {
            for o in owner_refs(&v) {
                if let Some(uid) = o.get("uid").and_then(Value::as_str) {
                    keys.push(gc_key(object::namespace(&v), uid));
                }
            }
        }
        keys
    }

    fn all_keys(&self, api: &Api) -> Vec<ObjectKey> {
        let mut keys = Vec::new();
        for r in tracked() {
            for (_, e) in api.store.list(&store_resource(r), None).0 {
                let Ok(v) = serde_json::from_slice::<Value>(&e.object) else {
                    continue;
                };
                for o in owner_refs(&v) {
                    if let Some(uid) = o.get("uid").and_then(Value::as_str) {
                        keys.push(gc_key(object::namespace(&v), uid));
                    }
                }
                if object::finalizers(&v)
                    .iter()
                    .any(|f| f == "foregroundDeletion" || f == "orphan")
                {
                    keys.push(gc_key(object::namespace(&v), object::uid(&v)));
                }
            }
        }
        keys
    }

    fn reconcile<'a>(&'a self, api: &'a Arc<Api>, key: &'a ObjectKey) -> BoxFut<'a> {
        Box::pin(async move { collect(api, &key.namespace, &key.name).await })
    }
}

/// Handles the dependents of the owner with `uid` (whose dependents live in `ns`; `""` for a
/// cluster-scoped owner, whose dependents may live in any namespace, as a Node's Lease does).
async fn collect(api: &Arc<Api>, ns: &str, uid: &str) -> Result<(), ApiError> {
    // find the dependents and, through their references, the owner
    let mut dependents: Vec<(&'static ResourceDef, Value)> = Vec::new();
    for r in tracked() {
        let scope = if r.namespaced && !ns.is_empty() {
            Some(ns)
        } else {
            None
        };
        for (_, e) in api.store.list(&store_resource(r), scope).0 {
            let Ok(v) = serde_json::from_slice::<Value>(&e.object) else {
                continue;
            };
            if owner_refs(&v)
                .iter()
                .any(|o| o.get("uid").and_then(Value::as_str) == Some(uid))
            {
                dependents.push((r, v));
            }
        }
    }
    let oref = dependents.first().and_then(|(_, v)| {
        owner_refs(v)
            .into_iter()
            .find(|o| o.get("uid").and_then(Value::as_str) == Some(uid))
    });
    let owner = oref.as_ref().and_then(|o| {
        let d = owner_def(o)?;
        let name = o.get("name")?.as_str()?;
        Some((
            d,
            find_by_uid(api, if d.namespaced { ns } else { "" }, d, name, uid)?,
        ))
    });
    // an owner being deleted in the foreground or orphaning, found by its own key
    let owner = owner.or_else(|| find_owner_by_uid(api, ns, uid));
    match owner {
        None => {
            // the owner is gone: a dependent with another solid owner only loses the reference;
            // others go, in the way their own finalizers ask (background otherwise)
            for (r, v) in dependents {
                if solid_owner_besides(api, &v, uid) {
                    strip_ref(api, r, &v, uid).await?;
                } else if !object::is_deleting(&v) {
                    delete_dependent(api, r, &v, "Background").await?;
                }
            }
            Ok(())
        }
        Some((od, ov)) => {
            if !object::is_deleting(&ov) {
                return Ok(());
            }
            let fins = object::finalizers(&ov);
            if fins.iter().any(|f| f == "orphan") {
                for (r, v) in &dependents {
                    strip_ref(api, r, v, uid).await?;
                }
                remove_finalizer(api, od, &ov, "orphan").await?;
            } else if fins.iter().any(|f| f == "foregroundDeletion") {
                // kube's foreground deletion: every dependent goes (in the foreground itself when
                // it has dependents of its own, so the chain unwinds from the bottom), and the
                // owner waits for those whose reference blocks its deletion
                let owners = owner_uids(api, ns);
                let mut blocking = 0;
                for (r, v) in &dependents {
                    if blocks(v, uid) {
                        blocking += 1;
                    }
                    if object::is_deleting(v) {
                        continue;
                    }
                    if solid_owner_besides(api, v, uid) {
                        strip_ref(api, r, v, uid).await?;
                        if blocks(v, uid) {
                            blocking -= 1;
                        }
                        continue;
                    }
                    let policy = if owners.contains(object::uid(v)) {
                        "Foreground"
                    } else {
                        "Background"
                    };
                    delete_dependent(api, r, v, policy).await?;
                }
                if blocking > 0 {
                    return Err(ApiError::conflict(
                        crate::registry::objref(od, object::name(&ov)),
                        "waiting for dependents to be deleted",
                    ));
                }
                remove_finalizer(api, od, &ov, "foregroundDeletion").await?;
            }
            Ok(())
        }
    }
}

/// Whether `v`'s reference to the owner `uid` has `blockOwnerDeletion`.
fn blocks(v: &Value, uid: &str) -> bool {
    owner_refs(v).iter().any(|o| {
        o.get("uid").and_then(Value::as_str) == Some(uid)
            && o.get("blockOwnerDeletion") == Some(&json!(true))
    })
}

/// Uids that own something in `ns` (to know which dependents have dependents of their own).
fn owner_uids(api: &Api, ns: &str) -> std::collections::HashSet<String> {
    let mut out = std::collections::HashSet::new();
    for r in tracked() {
        let scope = if r.namespaced && !ns.is_empty() {
            Some(ns)
        } else {
            None
        };
        for (_, e) in api.store.list(&store_resource(r), scope).0 {
            if let Ok(v) = serde_json::from_slice::<Value>(&e.object) {
                out.extend(
                    owner_refs(&v)
                        .iter()
                        .filter_map(|o| o.get("uid").and_then(Value::as_str).map(String::from)),
                );
            }
        }
    }
    out
}

/// Whether `v` has an owner other than `uid` that exists and is not itself waiting for its
/// dependents to go (upstream's "solid" owner).
fn solid_owner_besides(api: &Api, v: &Value, uid: &str) -> bool {
    owner_refs(v).iter().any(|o| {
        let ouid = o.get("uid").and_then(Value::as_str).unwrap_or("");
        ouid != uid
            && owner_def(o).is_some_and(|d| {
                let ns = if d.namespaced {
                    object::namespace(v)
                } else {
                    ""
                };
                let name = o.get("name").and_then(Value::as_str).unwrap_or("");
                find_by_uid(api, ns, d, name, ouid).is_some_and(|owner| {
                    !(object::is_deleting(&owner)
                        && object::finalizers(&owner)
                            .iter()
                            .any(|f| f == "foregroundDeletion"))
                })
            })
    })
}

async fn delete_dependent(
    api: &Arc<Api>,
    r: &'static ResourceDef,
    v: &Value,
    policy: &str,
) -> Result<(), ApiError> {
    match api
        .delete(
            r,
            object::namespace(v),
            object::name(v),
            &DeleteOptions {
                propagation: Some(policy.into()),
                uid: Some(object::uid(v).to_string()),
                ..Default::default()
            },
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.reason == "NotFound" || e.reason == "Conflict" => Ok(()),
        Err(e) => Err(e),
    }
}

fn find_owner_by_uid(api: &Api, ns: &str, uid: &str) -> Option<(&'static ResourceDef, Value)> {
    for r in tracked() {
        let scope = if r.namespaced { Some(ns) } else { None };
        for (_, e) in api.store.list(&store_resource(r), scope).0 {
            let Ok(v) = serde_json::from_slice::<Value>(&e.object) else {
                continue;
            };
            if object::uid(&v) == uid {
                return Some((r, v));
            }
        }
    }
    None
}

async fn strip_ref(
    api: &Arc<Api>,
    r: &'static ResourceDef,
    v: &Value,
    uid: &str,
) -> Result<(), ApiError> {
    let uid = uid.to_string();
    api.mutate(r, object::namespace(v), object::name(v), None, |o| {
        let refs = owner_refs(o);
        let kept: Vec<Value> = refs
            .iter()
            .filter(|x| x.get("uid").and_then(Value::as_str) != Some(&uid))
            .cloned()
            .collect();
        if kept.len() == refs.len() {
            return false;
        }
        let m = object::meta_mut(o);
        if kept.is_empty() {
            m.remove("ownerReferences");
        } else {
            m.insert("ownerReferences".into(), json!(kept));
        }
        true
    })
    .await
    .map(|_| ())
}

async fn remove_finalizer(
    api: &Arc<Api>,
    r: &'static ResourceDef,
    v: &Value,
    fin: &str,
) -> Result<(), ApiError> {
    api.mutate(r, object::namespace(v), object::name(v), None, |o| {
        let fins = object::finalizers(o);
        if !fins.iter().any(|f| f == fin) {
            return false;
        }
        let kept: Vec<String> = fins.into_iter().filter(|f| f != fin).collect();
        object::meta_mut(o).insert("finalizers".into(), json!(kept));
        true
    })
    .await
    .map(|_| ())
}

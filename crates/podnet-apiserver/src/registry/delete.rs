//! DELETE: preconditions, propagation (finalizers `orphan` / `foregroundDeletion`), graceful deletion of
//! pods on live nodes and of namespaces.

use podnet_apimachinery::resources::{self, ResourceDef};
use podnet_apimachinery::{ApiError, object};
use serde_json::{Value, json};

use super::{Api, Output, key, objref, service, store_error};
use crate::util;

/// `DeleteOptions`, from the body and the query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeleteOptions {
    pub grace_period: Option<i64>,
    pub propagation: Option<String>,
    pub orphan_dependents: Option<bool>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

const POLICIES: &[&str] = &["Orphan", "Background", "Foreground"];

impl DeleteOptions {
    /// Reads a DeleteOptions object (JSON or decoded protobuf); an empty body is the default.
    pub fn from_value(v: &Value) -> Result<Self, ApiError> {
        if v.is_null() {
            return Ok(DeleteOptions::default());
        }
        if !v.is_object() {
            return Err(ApiError::bad_request("DeleteOptions must be an object"));
        }
        let grace_period =
            match v.get("gracePeriodSeconds") {
                None | Some(Value::Null) => None,
                Some(g) => Some(g.as_i64().ok_or_else(|| {
                    ApiError::bad_request("gracePeriodSeconds must be an integer")
                })?),
            };
        let propagation = v
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(String::from);
        let dry_run = v
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == "All"));
        let o = DeleteOptions {
            grace_period,
            propagation,
            orphan_dependents: v.get("orphanDependents").and_then(Value::as_bool),
            uid: v
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(String::from),
            resource_version: v
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(String::from),
            dry_run,
        };
        o.check()?;
        Ok(o)
    }

    pub fn check(&self) -> Result<(), ApiError> {
        if let Some(p) = &self.propagation
            && !POLICIES.contains(&p.as_str())
        {
            return Err(ApiError::invalid(
                "DeleteOptions",
                "meta.k8s.io",
                "",
                &[podnet_apimachinery::FieldError::not_supported(
                    "propagationPolicy",
                    p.as_str(),
                    POLICIES,
                )],
            ));
        }
        if self.orphan_dependents.is_some() && self.propagation.is_some() {
            return Err(ApiError::bad_request(
                "DeleteOptions: orphanDependents and propagationPolicy are mutually exclusive",
            ));
        }
        if self.grace_period.is_some_and(|g| g < 0) {
            return Err(ApiError::bad_request(
                "gracePeriodSeconds must be non-negative",
            ));
        }
        Ok(())
    }

    fn policy(&self, r: &ResourceDef) -> &str {
        match (&self.propagation, self.orphan_dependents) {
            (Some(p), _) => p,
            (None, Some(true)) => "Orphan",
            _ => {
                let _ = r;
                "Background"
            }
        }
    }
}

const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

impl Api {
    fn node_is_ready(&self, name: &str) -> bool {
        let node = resources::find("", "v1", "nodes").expect("nodes are served");
        self.get(node, "", name).is_ok_and(|n| {
            n.pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
    }

    /// Deletes (or starts deleting) an object; answers with the object's last or terminating state.
    pub async fn delete(
        &self,
        r: &'static ResourceDef,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Output, ApiError> {
        opts.check()?;
        if r.kind == "Namespace" && PROTECTED_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(format!(
                "namespaces {name:?} is forbidden: this namespace may not be deleted"
            )));
        }
        for _ in 0..10 {
            let entry = self.get_entry(r, namespace, name)?;
            let current: Value = serde_json::from_slice(&entry.object)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            if let Some(uid) = &opts.uid
                && object::uid(&current) != uid
            {
                return Err(ApiError::conflict(
                    objref(r, name),
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        object::uid(&current)
                    ),
                ));
            }
            if let Some(rv) = &opts.resource_version
                && *rv != entry.rv.to_string()
            {
                return Err(ApiError::conflict(
                    objref(r, name),
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        entry.rv
                    ),
                ));
            }
            if opts.dry_run {
                return Ok(Output {
                    object: entry.object,
                    created: false,
                    warnings: Vec::new(),
                });
            }
            let grace = match r.kind {
                "Pod" => {
                    let node = object::str_at(&current, "spec.nodeName").unwrap_or_default();
                    let phase = object::str_at(&current, "status.phase").unwrap_or_default();
                    // nobody runs an unscheduled or finished pod, or one on a node that is not Ready: it goes at once
                    if node.is_empty()
                        || phase == "Succeeded"
                        || phase == "Failed"
                        || !self.node_is_ready(node)
                    {
                        0
                    } else {
                        opts.grace_period
                            .or_else(|| {
                                object::i64_at(&current, "spec.terminationGracePeriodSeconds")
                            })
                            .unwrap_or(30)
                    }
                }
                _ => 0,
            };
            let mut new = current.clone();
            let mut finalizers = object::finalizers(&current);
            match opts.policy(r) {
                "Orphan" if !finalizers.iter().any(|f| f == "orphan") => {
                    finalizers.push("orphan".into())
                }
                "Foreground" if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
                    finalizers.push("foregroundDeletion".into())
                }
                _ => {}
            }
            let deleting = object::is_deleting(&current);
            if deleting {
                // already terminating: only a shorter grace period (or 0) changes anything
                let remaining = object::meta(&current)
                    .and_then(|m| m.get("deletionGracePeriodSeconds"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if r.kind == "Pod" && grace < remaining {
                    if grace == 0 && object::finalizers(&current).is_empty() {
                        return self.remove(r, namespace, name, &current, entry.rv).await;
                    }
                    let m = object::meta_mut(&mut new);
                    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                    m.insert("deletionTimestamp".into(), json!(util::rfc3339_in(grace)));
                    return self
                        .write_terminating(r, namespace, name, new, entry.rv)
                        .await;
                }
                return Ok(Output {
                    object: entry.object,
                    created: false,
                    warnings: Vec::new(),
                });
            }
            let namespace_graceful = r.kind == "Namespace";
            if grace > 0 || !finalizers.is_empty() || namespace_graceful {
                let m = object::meta_mut(&mut new);
                m.insert("deletionTimestamp".into(), json!(util::rfc3339_in(grace)));
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                if !finalizers.is_empty() {
                    m.insert("finalizers".into(), json!(finalizers));
                }
                if namespace_graceful {
                    new["status"]["phase"] = json!("Terminating");
                }
                match self
                    .write_terminating(r, namespace, name, new, entry.rv)
                    .await
                {
                    Err(e) if e.reason == "Conflict" => continue,
                    other => return other,
                }
            }
            match self.remove(r, namespace, name, &current, entry.rv).await {
                Err(e) if e.reason == "Conflict" => continue,
                other => return other,
            }
        }
        Err(ApiError::modified(objref(r, name)))
    }

    async fn write_terminating(
        &self,
        r: &'static ResourceDef,
        namespace: &str,
        name: &str,
        new: Value,
        rv: u64,
    ) -> Result<Output, ApiError> {
        match self
            .store
            .update(key(r, namespace, name), new, Some(rv))
            .await
        {
            Ok(w) => Ok(Output {
                object: w.object,
                created: false,
                warnings: Vec::new(),
            }),
            Err(e) => Err(store_error(r, name, e)),
        }
    }

    async fn remove(
        &self,
        r: &'static ResourceDef,
        namespace: &str,
        name: &str,
        current: &Value,
        rv: u64,
    ) -> Result<Output, ApiError> {
        match self.store.delete(key(r, namespace, name), Some(rv)).await {
            Ok(w) => {
                if r.kind == "Service" {
                    service::release_all(self, current);
                }
                Ok(Output {
                    object: w.object,
                    created: false,
                    warnings: Vec::new(),
                })
            }
            Err(e) => Err(store_error(r, name, e)),
        }
    }

    /// Removes an object now, whatever its finalizers or grace period (kubelet's final delete, the
    /// namespace controller's finalize).
    pub async fn force_remove(
        &self,
        r: &'static ResourceDef,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Output>, ApiError> {
        let Ok(entry) = self.get_entry(r, namespace, name) else {
            return Ok(None);
        };
        let current: Value =
            serde_json::from_slice(&entry.object).map_err(|e| ApiError::internal(e.to_string()))?;
        match self.remove(r, namespace, name, &current, entry.rv).await {
            Ok(o) => Ok(Some(o)),
            Err(e) if e.reason == "NotFound" => Ok(None),
            Err(e) => Err(e),
        }
    }
}

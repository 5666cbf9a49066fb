//! Object operations with Kubernetes semantics (decoding, defaulting, validation, allocation, managed
//! fields, graceful deletion), shared by the HTTP handlers and the controllers.

mod admission;
mod bind;
mod delete;
mod priority;
mod quota;
mod service;
mod write;

use std::sync::{Arc, Mutex};

use podnet_apimachinery::resources::{self, ResourceDef};
use podnet_apimachinery::selector::{FieldSelector, LabelSelector};
use podnet_apimachinery::{ApiError, ObjRef, object};
use podnet_apistore::{Entry, ObjectKey, Store, StoreError};
use serde_json::Value;

use crate::alloc::Allocator;
use crate::config::Config;

pub use delete::DeleteOptions;
pub use quota::namespace_usage as quota_usage;
pub use write::{FieldValidation, WriteOptions};

/// The store resource name of a served resource (`pods`, `apps/deployments`).
pub fn store_resource(r: &ResourceDef) -> String {
    if r.group.is_empty() {
        r.plural.to_string()
    } else {
        format!("{}/{}", r.group, r.plural)
    }
}

pub fn key(r: &ResourceDef, namespace: &str, name: &str) -> ObjectKey {
    ObjectKey::new(
        store_resource(r),
        if r.namespaced { namespace } else { "" },
        name,
    )
}

pub fn objref<'a>(r: &'a ResourceDef, name: &'a str) -> ObjRef<'a> {
    ObjRef {
        group: r.group,
        resource: r.plural,
        name,
    }
}

/// Maps a store error onto the API error a client sees.
pub fn store_error(r: &ResourceDef, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::AlreadyExists(_) => ApiError::already_exists(objref(r, name)),
        StoreError::NotFound(_) => ApiError::not_found(objref(r, name)),
        StoreError::Conflict { .. } => ApiError::modified(objref(r, name)),
        StoreError::Gone { requested, oldest } => {
            ApiError::gone(format!("too old resource version: {requested} ({oldest})"))
        }
        StoreError::Closed => ApiError::service_unavailable("the server is shutting down"),
        other => ApiError::internal(other.to_string()),
    }
}

/// One object of a list: its key, stored bytes and (when selectors needed it) parsed value.
#[derive(Debug, Clone)]
pub struct ListItem {
    pub namespace: String,
    pub name: String,
    pub bytes: Arc<[u8]>,
    pub value: Option<Value>,
}

impl ListItem {
    pub fn parsed(&self) -> Option<Value> {
        match &self.value {
            Some(v) => Some(v.clone()),
            None => serde_json::from_slice(&self.bytes).ok(),
        }
    }
}

/// What a write returns: the stored object and the HTTP status (201 for creates).
#[derive(Debug, Clone)]
pub struct Output {
    pub object: Arc<[u8]>,
    pub created: bool,
    pub warnings: Vec<String>,
}

impl Output {
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.object).unwrap_or(Value::Null)
    }
}

/// The object operations.
pub struct Api {
    pub store: Store,
    pub cfg: Arc<Config>,
    alloc: Mutex<Allocator>,
}

impl Api {
    /// Wraps a store, rebuilding the Service allocations from it.
    pub fn new(store: Store, cfg: Arc<Config>) -> Arc<Api> {
        let mut alloc = Allocator::new(cfg.service_cidr, cfg.node_port_range);
        let svc = resources::find("", "v1", "services").expect("services are served");
        for (_, e) in store.list(&store_resource(svc), None).0 {
            if let Ok(v) = serde_json::from_slice::<Value>(&e.object) {
                service::restore(&mut alloc, &v);
            }
        }
        Arc::new(Api {
            store,
            cfg,
            alloc: Mutex::new(alloc),
        })
    }

    pub fn get_entry(
        &self,
        r: &ResourceDef,
        namespace: &str,
        name: &str,
    ) -> Result<Entry, ApiError> {
        self.store
            .get(&key(r, namespace, name))
            .ok_or_else(|| ApiError::not_found(objref(r, name)))
    }

    pub fn get(&self, r: &ResourceDef, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let e = self.get_entry(r, namespace, name)?;
        serde_json::from_slice(&e.object)
            .map_err(|e| ApiError::internal(format!("stored object is corrupt: {e}")))
    }

    /// Objects of a resource matching the selectors, in (namespace, name) order, with the list's
    /// resourceVersion. Without selectors the stored bytes are returned as they are (no parsing).
    pub fn list(
        &self,
        r: &ResourceDef,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> (Vec<ListItem>, u64) {
        let ns = if r.namespaced { namespace } else { None };
        let (items, rv) = self.store.list(&store_resource(r), ns);
        let filter = !(labels.is_empty() && fields.is_empty());
        let out = items
            .into_iter()
            .filter_map(|(k, e)| {
                let value = if filter {
                    let v: Value = serde_json::from_slice(&e.object).ok()?;
                    if !(labels.matches(object::labels(&v)) && fields.matches(&v)) {
                        return None;
                    }
                    Some(v)
                } else {
                    None
                };
                Some(ListItem {
                    namespace: k.namespace,
                    name: k.name,
                    bytes: e.object,
                    value,
                })
            })
            .collect();
        (out, rv)
    }

    /// Parsed objects of a resource (for controllers).
    pub fn list_values(&self, r: &ResourceDef, namespace: Option<&str>) -> Vec<Value> {
        let ns = if r.namespaced { namespace } else { None };
        self.store
            .list(&store_resource(r), ns)
            .0
            .into_iter()
            .filter_map(|(_, e)| serde_json::from_slice(&e.object).ok())
            .collect()
    }

    /// Checks that a namespace exists and is not terminating, for creating `name` in it.
    pub fn check_namespace(
        &self,
        r: &ResourceDef,
        namespace: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        if !r.namespaced {
            return Ok(());
        }
        let ns_def = resources::find("", "v1", "namespaces").expect("namespaces are served");
        match self.store.get(&key(ns_def, "", namespace)) {
            None => Err(ApiError::not_found(objref(ns_def, namespace))),
            Some(e) => {
                let v: Value = serde_json::from_slice(&e.object).unwrap_or(Value::Null);
                if object::is_deleting(&v) {
                    Err(ApiError::namespace_terminating(objref(r, name), namespace))
                } else {
                    Ok(())
                }
            }
        }
    }

    pub(crate) fn allocator(&self) -> std::sync::MutexGuard<'_, Allocator> {
        self.alloc.lock().expect("allocator lock")
    }
}

/// The resource definition of a store resource name (for controllers reading watch events).
pub fn def_of(store_res: &str) -> Option<&'static ResourceDef> {
    resources::RESOURCES
        .iter()
        .find(|r| store_resource(r) == store_res)
}

//! Services, EndpointSlices and Pods read from a JSON file (`kubectl get svc,endpointslices,pods
//! -A -o json` writes one), for tests, benchmarks and running without an API server.

use crate::index::Index;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::Value;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    #[error("read objects from {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parse objects in {path}: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: item {item} ({kind}): {source}")]
    Item {
        path: String,
        item: usize,
        kind: String,
        source: serde_json::Error,
    },
}

/// Loads a file holding one object, a `List`, or a JSON array of objects; returns how many objects
/// went into the index. Kinds other than Service, EndpointSlice and Pod are skipped.
pub fn load(path: &Path, index: &mut Index) -> Result<usize, ObjectsError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ObjectsError::Read {
        path: p.clone(),
        source,
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|source| ObjectsError::Parse {
        path: p.clone(),
        source,
    })?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(ref o) if o.get("kind").and_then(Value::as_str) == Some("List") => o
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        other => vec![other],
    };
    let mut n = 0;
    for (i, item) in items.into_iter().enumerate() {
        let kind = item
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let err = |source| ObjectsError::Item {
            path: p.clone(),
            item: i,
            kind: kind.clone(),
            source,
        };
        match kind.as_str() {
            "Service" => {
                index.apply_service(&serde_json::from_value::<Service>(item).map_err(err)?)
            }
            "EndpointSlice" => {
                index.apply_slice(&serde_json::from_value::<EndpointSlice>(item).map_err(err)?)
            }
            "Pod" => index.apply_pod(&serde_json::from_value::<Pod>(item).map_err(err)?),
            _ => continue,
        }
        n += 1;
    }
    Ok(n)
}

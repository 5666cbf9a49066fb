//! Lists and objects as JSON, YAML, Table or PartialObjectMetadata.

use podnet_apimachinery::resources::ResourceDef;
use podnet_apimachinery::table::{self, IncludeObject};
use serde_json::{Value, json};

use super::negotiate::Format;
use super::respond::{self, Resp};
use crate::registry::ListItem;
use crate::util;

fn partial_metadata(v: &Value) -> Value {
    let mut meta = v.get("metadata").cloned().unwrap_or_else(|| json!({}));
    if let Some(m) = meta.as_object_mut() {
        m.remove("managedFields");
    }
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta})
}

/// A list response.
pub fn list(r: &ResourceDef, format: Format, items: &[ListItem], rv: u64, cont: Option<&str>, remaining: Option<usize>, include: IncludeObject) -> Resp {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
        if let Some(n) = remaining {
            meta["remainingItemCount"] = json!(n);
        }
    }
    match format {
        Format::Table(version) => {
            let now = util::now_unix();
            let rows: Vec<Value> = items.iter().filter_map(|i| i.parsed()).map(|v| table::row(r.kind, &v, include, now)).collect();
            let mut t = table::table(r.kind, rows, &rv.to_string(), cont);
            t["apiVersion"] = json!(format!("meta.k8s.io/{version}"));
            respond::json(200, &t)
        }
        Format::Metadata => {
            let items: Vec<Value> = items.iter().filter_map(|i| i.parsed()).map(|v| partial_metadata(&v)).collect();
            respond::json(200, &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items}))
        }
        Format::Json | Format::Yaml => {
            // stored bytes are spliced in as they are: no re-serialization of every object
            let head = json!({"kind": r.list_kind(), "apiVersion": r.api_version(), "metadata": meta});
            let head = serde_json::to_string(&head).expect("serializes");
            let total: usize = items.iter().map(|i| i.bytes.len() + 1).sum();
            let mut out = Vec::with_capacity(head.len() + total + 16);
            out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
            out.extend_from_slice(b",\"items\":[");
            for (n, i) in items.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&i.bytes);
            }
            out.extend_from_slice(b"]}");
            respond::object(200, format, out)
        }
    }
}

/// One object, for GET.
pub fn one(r: &ResourceDef, format: Format, bytes: &[u8], include: IncludeObject) -> Resp {
    match format {
        Format::Table(version) => {
            let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
            let rv = v.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("").to_string();
            let mut t = table::table(r.kind, vec![table::row(r.kind, &v, include, util::now_unix())], &rv, None);
            t["apiVersion"] = json!(format!("meta.k8s.io/{version}"));
            respond::json(200, &t)
        }
        Format::Metadata => {
            let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
            respond::json(200, &partial_metadata(&v))
        }
        _ => respond::object(200, format, bytes),
    }
}

/// The object of a watch event in the negotiated format.
pub fn event_object(r: &ResourceDef, format: Format, bytes: &[u8], include: IncludeObject) -> Value {
    let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    match format {
        Format::Table(version) => {
            let rv = v.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("").to_string();
            let mut t = table::table(r.kind, vec![table::row(r.kind, &v, include, util::now_unix())], &rv, None);
            t["apiVersion"] = json!(format!("meta.k8s.io/{version}"));
            t
        }
        Format::Metadata => partial_metadata(&v),
        _ => v,
    }
}

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
pub fn list(
    r: &ResourceDef,
    format: Format,
    items: &[ListItem],
    rv: u64,
    cont: Option<&str>,
    remaining: Option<usize>,
    include: IncludeObject,
) -> Resp {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
        if let Some(n) = remaining {
            meta["remainingItemCount"] = json!(n);
        }
    }
    match format {
        Format::Table(version) => {
            // rows are rendered straight into the output, one object parsed at a time, in two halves on
            // two threads for big lists
            let mut t = table::table(r.kind, Vec::new(), &rv.to_string(), cont);
            t["apiVersion"] = json!(format!("meta.k8s.io/{version}"));
            let head = serde_json::to_vec(&t).expect("serializes");
            // the head ends with `"rows":[]}`: splice the rows into the empty array
            debug_assert!(head.ends_with(b"[]}"), "rows come last in the Table head");
            let cut = head.len() - 2;
            let now = util::now_unix();
            let rows = if items.len() >= PARALLEL_ROWS {
                let (a, b) = items.split_at(items.len() / 2);
                std::thread::scope(|s| {
                    let h = s.spawn(|| table_rows(r.kind, a, include, now));
                    let mut rb = table_rows(r.kind, b, include, now);
                    let mut ra = h.join().expect("row rendering does not panic");
                    if !ra.is_empty() && !rb.is_empty() {
                        ra.push(b',');
                    }
                    ra.append(&mut rb);
                    ra
                })
            } else {
                table_rows(r.kind, items, include, now)
            };
            let mut out = Vec::with_capacity(head.len() + rows.len());
            out.extend_from_slice(&head[..cut]);
            out.extend_from_slice(&rows);
            out.extend_from_slice(&head[cut..]);
            respond::json_bytes(200, out)
        }
        Format::Metadata => {
            let items: Vec<Value> = items
                .iter()
                .filter_map(|i| i.parsed())
                .map(|v| partial_metadata(&v))
                .collect();
            respond::json(
                200,
                &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items}),
            )
        }
        Format::Json | Format::Yaml => {
            // stored bytes are spliced in as they are: no re-serialization of every object
            let head =
                json!({"kind": r.list_kind(), "apiVersion": r.api_version(), "metadata": meta});
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

/// Lists at least this long render their Table rows on two threads.
const PARALLEL_ROWS: usize = 1024;

/// Comma-separated Table rows.
fn table_rows(kind: &str, items: &[ListItem], include: IncludeObject, now: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.len() * 512);
    for i in items {
        let Some(mut v) = i.parsed() else { continue };
        if !out.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"cells\":");
        serde_json::to_writer(&mut out, &podnet_apimachinery::table::cells(kind, &v, now))
            .expect("serializes");
        match include {
            IncludeObject::None => {}
            IncludeObject::Metadata => {
                if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("managedFields");
                }
                out.extend_from_slice(b",\"object\":{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":");
                serde_json::to_writer(&mut out, v.get("metadata").unwrap_or(&Value::Null))
                    .expect("serializes");
                out.push(b'}');
            }
            IncludeObject::Object => {
                out.extend_from_slice(b",\"object\":");
                serde_json::to_writer(&mut out, &v).expect("serializes");
            }
        }
        out.push(b'}');
    }
    out
}

/// One object, for GET.
pub fn one(r: &ResourceDef, format: Format, bytes: &[u8], include: IncludeObject) -> Resp {
    match format {
        Format::Table(version) => {
            let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
            let rv = v
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let mut t = table::table(
                r.kind,
                vec![table::row(r.kind, &v, include, util::now_unix())],
                &rv,
                None,
            );
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
pub fn event_object(
    r: &ResourceDef,
    format: Format,
    bytes: &[u8],
    include: IncludeObject,
) -> Value {
    let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    match format {
        Format::Table(version) => {
            let rv = v
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let mut t = table::table(
                r.kind,
                vec![table::row(r.kind, &v, include, util::now_unix())],
                &rv,
                None,
            );
            t["apiVersion"] = json!(format!("meta.k8s.io/{version}"));
            t
        }
        Format::Metadata => partial_metadata(&v),
        _ => v,
    }
}

//! core/v1 Events for what controllers do, aggregated like the event recorder does (same object,
//! reason and message -> count + 1).

use std::sync::Arc;

use podnet_apimachinery::{object, resources};
use serde_json::{Value, json};

use crate::registry::{Api, WriteOptions};
use crate::util;

/// Records `reason`/`message` about `involved` (a full object) from `component`.
pub async fn record(
    api: &Arc<Api>,
    involved: &Value,
    ty: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let events = resources::find("", "v1", "events").expect("events are served");
    let ns = match object::namespace(involved) {
        "" => "default",
        n => n,
    };
    let name = object::name(involved);
    let uid = object::uid(involved);
    // the recorder's aggregation key, as a stable name
    let key = format!("{uid}/{reason}/{message}");
    let ev_name = format!(
        "{name}.{:08x}{:08x}",
        util::fnv32(key.as_bytes()),
        util::fnv32(format!("{key}#").as_bytes())
    );
    let now = util::now_rfc3339();
    if let Ok(Some(_)) = api
        .mutate(events, ns, &ev_name, None, |e| {
            let n = e.get("count").and_then(Value::as_i64).unwrap_or(1);
            e["count"] = json!(n + 1);
            e["lastTimestamp"] = json!(now);
            true
        })
        .await
    {
        return;
    }
    let ev = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": ev_name, "namespace": ns},
        "involvedObject": {
            "kind": involved.get("kind").cloned().unwrap_or(json!("")),
            "namespace": object::namespace(involved),
            "name": name,
            "uid": uid,
            "apiVersion": involved.get("apiVersion").cloned().unwrap_or(json!("v1")),
            "resourceVersion": object::meta_str(involved, "resourceVersion").unwrap_or(""),
        },
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": ty,
        "eventTime": null,
        "reportingComponent": component,
        "reportingInstance": "",
    });
    let _ = api.create(events, ns, ev, &WriteOptions::default()).await;
}

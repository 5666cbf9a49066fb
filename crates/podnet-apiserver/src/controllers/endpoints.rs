//! Endpoints and EndpointSlices for Services with a selector, from the pods that match it and have an
//! IP (ready ones as addresses, the others as notReadyAddresses / ready=false).

use std::sync::Arc;

use podnet_apimachinery::resources::{self, ResourceDef};
use podnet_apimachinery::selector::LabelSelector;
use podnet_apimachinery::{ApiError, object};
use podnet_apistore::{ObjectKey, WatchEvent};
use serde_json::{Map, Value, json};

use super::{BoxFut, Controller, pod_ready};
use crate::registry::{Api, WriteOptions};
use crate::util;

pub struct EndpointsController;

fn def(group: &str, plural: &str) -> &'static ResourceDef {
    resources::find(group, "v1", plural).expect("served")
}

impl Controller for EndpointsController {
    fn name(&self) -> &'static str {
        "endpoints"
    }

    fn watches(&self) -> Vec<String> {
        vec!["services".into(), "pods".into()]
    }

    fn keys(&self, api: &Api, ev: &WatchEvent) -> Vec<ObjectKey> {
        if ev.key.resource == "services" {
            return vec![ev.key.clone()];
        }
        // any pod change may concern any service of its namespace
        api.store
            .list("services", Some(&ev.key.namespace))
            .0
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    fn all_keys(&self, api: &Api) -> Vec<ObjectKey> {
        super::keys_of(api, "services")
    }

    fn reconcile<'a>(&'a self, api: &'a Arc<Api>, key: &'a ObjectKey) -> BoxFut<'a> {
        Box::pin(async move { sync(api, &key.namespace, &key.name).await })
    }
}

/// The port a service port targets on a pod (a number, or a named container port).
fn target_port(svc_port: &Value, pod: &Value) -> Option<i64> {
    match svc_port.get("targetPort") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(name)) => pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)?
            .iter()
            .flat_map(|c| {
                c.get("ports")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|p| p.get("containerPort").and_then(Value::as_i64)),
        _ => svc_port.get("port").and_then(Value::as_i64),
    }
}

async fn sync(api: &Arc<Api>, ns: &str, name: &str) -> Result<(), ApiError> {
    let Ok(svc) = api.get(def("", "services"), ns, name) else {
        // the service is gone: so are its Endpoints (slices go with their owner reference)
        let _ = api.force_remove(def("", "endpoints"), ns, name).await;
        return Ok(());
    };
    let Some(Value::Object(sel)) = svc.pointer("/spec/selector").cloned() else {
        return Ok(());
    };
    if sel.is_empty() || object::is_deleting(&svc) {
        return Ok(());
    }
    let selector = LabelSelector::from_object(Some(&json!({"matchLabels": sel})))
        .map_err(|e| ApiError::internal(e.0))?;
    // Terminating pods stay in the slice (marked terminating, serving while still ready), so a proxy
    // can fall back to them when no ready endpoint is left (KEP-1669); the Endpoints object lists only
    // the others, as upstream's does. Finished pods are no endpoints at all.
    let mut all: Vec<Value> = api
        .list_values(def("", "pods"), Some(ns))
        .into_iter()
        .filter(|p| selector.matches(object::labels(p)))
        .filter(|p| object::str_at(p, "status.podIP").is_some_and(|ip| !ip.is_empty()))
        .filter(|p| {
            !matches!(
                object::str_at(p, "status.phase"),
                Some("Succeeded") | Some("Failed")
            )
        })
        .collect();
    all.sort_by(|a, b| object::name(a).cmp(object::name(b)));
    let pods: Vec<Value> = all
        .iter()
        .filter(|p| !object::is_deleting(p))
        .cloned()
        .collect();
    // A pod's own DNS name under a headless Service: `spec.hostname` when its `spec.subdomain` names
    // this Service (what StatefulSets set).
    let hostname = |p: &Value| {
        object::str_at(p, "spec.hostname")
            .filter(|h| !h.is_empty() && object::str_at(p, "spec.subdomain") == Some(name))
            .map(String::from)
    };
    let svc_ports = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let publish_not_ready =
        svc.pointer("/spec/publishNotReadyAddresses") == Some(&Value::Bool(true));
    let address = |p: &Value| {
        let mut a = json!({"ip": object::str_at(p, "status.podIP").unwrap_or_default(),
            "targetRef": {"kind": "Pod", "namespace": ns, "name": object::name(p), "uid": object::uid(p)}});
        if let Some(n) = object::str_at(p, "spec.nodeName").filter(|n| !n.is_empty()) {
            a["nodeName"] = json!(n);
        }
        if let Some(h) = hostname(p) {
            a["hostname"] = json!(h);
        }
        a
    };
    let (ready, not_ready): (Vec<&Value>, Vec<&Value>) =
        pods.iter().partition(|p| publish_not_ready || pod_ready(p));
    let first = pods.first();
    let ports: Vec<Value> = svc_ports
        .iter()
        .map(|sp| {
            let mut p = json!({"port": first.and_then(|f| target_port(sp, f)).or_else(|| sp.get("port").and_then(Value::as_i64)).unwrap_or(0),
                "protocol": sp.get("protocol").cloned().unwrap_or(json!("TCP"))});
            if let Some(n) = sp.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
                p["name"] = json!(n);
            }
            p
        })
        .collect();
    let labels = object::labels(&svc).cloned().unwrap_or_default();
    let mut ep = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns, "labels": labels}});
    if !pods.is_empty() {
        let mut subset = Map::new();
        if !ready.is_empty() {
            subset.insert(
                "addresses".into(),
                ready.iter().map(|p| address(p)).collect(),
            );
        }
        if !not_ready.is_empty() {
            subset.insert(
                "notReadyAddresses".into(),
                not_ready.iter().map(|p| address(p)).collect(),
            );
        }
        subset.insert("ports".into(), json!(ports));
        ep["subsets"] = json!([subset]);
    }
    write(api, def("", "endpoints"), ns, name, ep, &["subsets"]).await?;
    // one EndpointSlice per service, named after it
    let slice_name = format!(
        "{name}-{}",
        &util::safe_hash(object::uid(&svc).as_bytes())[..5]
    );
    let mut slice_labels = labels.clone();
    slice_labels.insert("kubernetes.io/service-name".into(), json!(name));
    slice_labels.insert(
        "endpointslice.kubernetes.io/managed-by".into(),
        json!("endpointslice-controller.k8s.io"),
    );
    let endpoints: Vec<Value> = all
        .iter()
        .map(|p| {
            // As upstream: serving is the pod's own readiness; ready is forced by
            // publishNotReadyAddresses and otherwise never true for a terminating pod.
            let terminating = object::is_deleting(p);
            let serving = pod_ready(p);
            let ready = publish_not_ready || (serving && !terminating);
            let mut e = json!({"addresses": [object::str_at(p, "status.podIP").unwrap_or_default()],
                "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
                "targetRef": {"kind": "Pod", "namespace": ns, "name": object::name(p), "uid": object::uid(p)}});
            if let Some(n) = object::str_at(p, "spec.nodeName").filter(|n| !n.is_empty()) {
                e["nodeName"] = json!(n);
            }
            if let Some(h) = hostname(p) {
                e["hostname"] = json!(h);
            }
            e
        })
        .collect();
    let slice_ports: Vec<Value> = ports
        .iter()
        .map(|p| json!({"name": p.get("name").cloned().unwrap_or(json!("")), "port": p["port"], "protocol": p["protocol"]}))
        .collect();
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": slice_name, "namespace": ns, "labels": slice_labels,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name, "uid": object::uid(&svc), "controller": true, "blockOwnerDeletion": true}]},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": slice_ports,
    });
    write(
        api,
        def("discovery.k8s.io", "endpointslices"),
        ns,
        &slice_name,
        slice,
        &["endpoints", "ports", "addressType"],
    )
    .await
}

/// Creates the object, or updates `fields` (and labels) of the existing one when they differ.
async fn write(
    api: &Arc<Api>,
    r: &'static ResourceDef,
    ns: &str,
    name: &str,
    want: Value,
    fields: &[&str],
) -> Result<(), ApiError> {
    if api.get_entry(r, ns, name).is_err() {
        return match api.create(r, ns, want, &WriteOptions::default()).await {
            Ok(_) => Ok(()),
            Err(e) if e.reason == "AlreadyExists" => Err(e),
            Err(e) if e.code == 403 || e.code == 404 => Ok(()),
            Err(e) => Err(e),
        };
    }
    api.mutate(r, ns, name, None, |o| {
        let mut changed = false;
        for f in fields {
            let w = want.get(*f).cloned();
            if o.get(*f) != w.as_ref() {
                changed = true;
                match w {
                    Some(v) => o[*f] = v,
                    None => {
                        if let Value::Object(m) = o {
                            m.remove(*f);
                        }
                    }
                }
            }
        }
        let wl = want.pointer("/metadata/labels").cloned();
        if o.pointer("/metadata/labels") != wl.as_ref()
            && let Some(l) = wl
        {
            object::meta_mut(o).insert("labels".into(), l);
            changed = true;
        }
        changed
    })
    .await
    .map(|_| ())
}

//! What a fresh cluster has: the `default`, `kube-system`, `kube-public` and `kube-node-lease`
//! namespaces and the `kubernetes` Service (first service IP, port 443) with endpoints pointing at the
//! API server's advertise address; the default RBAC roles and bindings; the system PriorityClasses.

use std::sync::Arc;

use podnet_apimachinery::{ApiError, resources};
use serde_json::json;

use crate::registry::{Api, WriteOptions};

fn ignore_exists(r: Result<crate::registry::Output, ApiError>) -> Result<(), ApiError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.reason == "AlreadyExists" => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn run(api: &Arc<Api>) -> Result<(), ApiError> {
    let opts = WriteOptions::default();
    let ns = resources::find("", "v1", "namespaces").expect("served");
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        if api.get_entry(ns, "", name).is_err() {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}});
            ignore_exists(api.create(ns, "", obj, &opts).await)?;
        }
    }
    crate::authz::defaults::reconcile(api).await?;
    let pc = resources::find("scheduling.k8s.io", "v1", "priorityclasses").expect("served");
    for (name, value) in podnet_apimachinery::validation::SYSTEM_CLASSES {
        if api.get_entry(pc, "", name).is_err() {
            let what = if name.contains("node") {
                "node"
            } else {
                "cluster"
            };
            let obj = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
                "value": value, "description": format!("Used for system critical pods that must run in the {what}.")});
            ignore_exists(api.create(pc, "", obj, &opts).await)?;
        }
    }
    let svc = resources::find("", "v1", "services").expect("served");
    let first = api
        .cfg
        .service_cidr
        .nth(1)
        .expect("a service CIDR has a first address");
    if api.get_entry(svc, "default", "kubernetes").is_err() {
        let obj = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": first.to_string(), "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": i64::from(api.cfg.advertise_port)}], "sessionAffinity": "None", "type": "ClusterIP"},
        });
        ignore_exists(api.create(svc, "default", obj, &opts).await)?;
    }
    let address = api.cfg.advertise_address.to_string();
    let port = api.cfg.advertise_port;
    let ep = resources::find("", "v1", "endpoints").expect("served");
    let want_subsets = json!([{"addresses": [{"ip": address}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]);
    if api.get_entry(ep, "default", "kubernetes").is_err() {
        let obj = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}}, "subsets": want_subsets});
        ignore_exists(api.create(ep, "default", obj, &opts).await)?;
    } else {
        api.mutate(ep, "default", "kubernetes", None, |o| {
            if o.get("subsets") == Some(&want_subsets) {
                return false;
            }
            o["subsets"] = want_subsets.clone();
            true
        })
        .await?;
    }
    let es = resources::find("discovery.k8s.io", "v1", "endpointslices").expect("served");
    let want_endpoints = json!([{"addresses": [address], "conditions": {"ready": true}}]);
    if api.get_entry(es, "default", "kubernetes").is_err() {
        let obj = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4", "endpoints": want_endpoints, "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        });
        ignore_exists(api.create(es, "default", obj, &opts).await)?;
    } else {
        api.mutate(es, "default", "kubernetes", None, |o| {
            if o.get("endpoints") == Some(&want_endpoints) {
                return false;
            }
            o["endpoints"] = want_endpoints.clone();
            true
        })
        .await?;
    }
    Ok(())
}

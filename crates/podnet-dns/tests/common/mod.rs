//! Kubernetes objects for the tests, as the API server would serve them.
#![allow(dead_code)]

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use podnet_dns::{Index, Zone};
use serde_json::{Value, json};

pub fn service(ns: &str, name: &str, cluster_ips: &[&str], ports: Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": {"clusterIP": cluster_ips[0], "clusterIPs": cluster_ips, "ports": ports, "type": "ClusterIP"}
    }))
    .unwrap()
}

pub fn headless(ns: &str, name: &str, ports: Value) -> Service {
    service(ns, name, &["None"], ports)
}

pub fn external(ns: &str, name: &str, target: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": {"type": "ExternalName", "externalName": target}
    }))
    .unwrap()
}

/// endpoints: (address, hostname, ready)
pub fn slice(
    ns: &str,
    name: &str,
    svc: &str,
    family: &str,
    endpoints: &[(&str, Option<&str>, Option<bool>)],
    ports: Value,
) -> EndpointSlice {
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|(ip, host, ready)| {
            let mut e = json!({"addresses": [ip]});
            if let Some(h) = host {
                e["hostname"] = json!(h);
            }
            if let Some(r) = ready {
                e["conditions"] = json!({"ready": r});
            }
            e
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": family,
        "endpoints": eps,
        "ports": ports
    }))
    .unwrap()
}

pub fn pod(ns: &str, name: &str, ips: &[&str]) -> Pod {
    let pod_ips: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name},
        "status": {"podIP": ips.first(), "podIPs": pod_ips}
    }))
    .unwrap()
}

/// A small cluster: nginx (ClusterIP, dual-stack, named port http), web (headless, StatefulSet
/// hostnames web-0/web-1 and a not-ready web-2; port named http), bare (headless, no hostnames),
/// ext (ExternalName to example.org), a pod 10.244.1.5 in default.
pub fn cluster() -> Index {
    let mut index = Index::new(Zone::new("cluster.local").unwrap());
    index.apply_service(&service(
        "default",
        "nginx",
        &["10.96.0.20", "fd00:96::20"],
        json!([{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]),
    ));
    index.apply_service(&headless(
        "default",
        "web",
        json!([{"name": "http", "port": 80, "protocol": "TCP"}]),
    ));
    index.apply_slice(&slice(
        "default",
        "web-abcde",
        "web",
        "IPv4",
        &[
            ("10.244.1.10", Some("web-0"), Some(true)),
            ("10.244.2.11", Some("web-1"), None),
            ("10.244.2.12", Some("web-2"), Some(false)),
        ],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
    ));
    index.apply_service(&headless("default", "bare", json!([])));
    index.apply_slice(&slice(
        "default",
        "bare-1",
        "bare",
        "IPv4",
        &[("10.244.3.7", None, Some(true))],
        json!([]),
    ));
    index.apply_service(&external("default", "ext", "example.org."));
    index.apply_pod(&pod("default", "client", &["10.244.1.5"]));
    index
}

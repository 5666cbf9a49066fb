//! Kubernetes objects into a configuration: the Ingresses of this controller's class (named, or
//! unnamed when its IngressClass is the cluster's default), their rules and default backend, the
//! backends' ready endpoints from EndpointSlices (Service ports by number or by name), and TLS
//! certificates from `kubernetes.io/tls` Secrets. Pure: the same objects give the same snapshot.
//!
//! Ingresses are taken oldest first, so when two define the same host and path the older one wins
//! (as ingress-nginx does) and the default backend is the oldest one's.

use crate::config::{Backend, Certs, Snapshot};
use crate::route::{HostMatch, PathMatch, RouteTable, Rule};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// `spec.controller` of the IngressClasses this controller serves.
pub const CONTROLLER: &str = "podnet.io/ingress-controller";
/// The annotation marking an IngressClass as the cluster's default.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The annotation older Ingresses name their class with.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Everything the configuration is made from.
#[derive(Debug, Default, Clone)]
pub struct Objects {
    pub ingresses: Vec<Ingress>,
    pub classes: Vec<IngressClass>,
    pub services: Vec<Service>,
    pub slices: Vec<EndpointSlice>,
    pub secrets: Vec<Secret>,
}

/// A snapshot and what could not be used (each naming the Ingress and the reason), for the log.
#[derive(Debug)]
pub struct Built {
    pub snapshot: Snapshot,
    pub ours: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

fn ns_name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// Whether an Ingress belongs to the class `class`.
pub fn is_ours(ing: &Ingress, class: &str, classes: &[IngressClass]) -> bool {
    let named = ing
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref());
    let legacy = ing
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
        .map(String::as_str);
    match named.or(legacy) {
        Some(n) => n == class,
        None => classes.iter().any(|c| {
            c.metadata.name.as_deref() == Some(class)
                && c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER)
                && c.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                    .is_some_and(|v| v == "true")
        }),
    }
}

/// Builds the configuration for class `class`.
pub fn build(objs: &Objects, class: &str) -> Built {
    let mut warnings = Vec::new();
    let mut ingresses: Vec<&Ingress> = objs
        .ingresses
        .iter()
        .filter(|i| i.metadata.deletion_timestamp.is_none())
        .filter(|i| is_ours(i, class, &objs.classes))
        .collect();
    ingresses.sort_by_key(|i| {
        (
            i.metadata.creation_timestamp.as_ref().map(|t| t.0),
            ns_name(&i.metadata),
        )
    });
    let services: HashMap<(String, String), &Service> = objs
        .services
        .iter()
        .map(|s| (ns_name(&s.metadata), s))
        .collect();
    let mut backends: HashMap<(String, String, String), Arc<Backend>> = HashMap::new();
    let mut rules = Vec::new();
    let mut default = None;
    let mut certs = Certs::default();
    let mut ours = Vec::new();
    for ing in &ingresses {
        let (ns, name) = ns_name(&ing.metadata);
        ours.push((ns.clone(), name.clone()));
        let Some(spec) = &ing.spec else { continue };
        let mut backend = |b: &IngressBackend, warnings: &mut Vec<String>| {
            let Some(svc) = &b.service else {
                warnings.push(format!(
                    "ingress {ns}/{name}: resource backends are not supported"
                ));
                return None;
            };
            let port = svc
                .port
                .as_ref()
                .and_then(|p| p.number.map(|n| n.to_string()).or_else(|| p.name.clone()))?;
            let key = (ns.clone(), svc.name.clone(), port.clone());
            let b = backends
                .entry(key)
                .or_insert_with(|| {
                    Arc::new(resolve(
                        &ns,
                        &svc.name,
                        &port,
                        services.get(&(ns.clone(), svc.name.clone())).copied(),
                        &objs.slices,
                    ))
                })
                .clone();
            Some(b)
        };
        if default.is_none()
            && let Some(b) = spec.default_backend.as_ref()
        {
            default = backend(b, &mut warnings);
        }
        let mut hosts = BTreeSet::new();
        for rule in spec.rules.iter().flatten() {
            let host = rule.host.clone().unwrap_or_default();
            hosts.insert(host.clone());
            for p in rule.http.iter().flat_map(|h| &h.paths) {
                let path = p.path.as_deref().filter(|p| !p.is_empty()).unwrap_or("/");
                let path = match p.path_type.as_str() {
                    "Exact" => PathMatch::exact(path),
                    // ImplementationSpecific: podnet's is Prefix's element-wise matching
                    _ => PathMatch::prefix(path),
                };
                if let Some(b) = backend(&p.backend, &mut warnings) {
                    rules.push(Rule {
                        host: HostMatch::parse(&host),
                        path,
                        backend: b,
                    });
                }
            }
        }
        for tls in spec.tls.iter().flatten() {
            let Some(secret_name) = &tls.secret_name else {
                continue;
            };
            let secret = objs
                .secrets
                .iter()
                .find(|s| ns_name(&s.metadata) == (ns.clone(), secret_name.clone()));
            let data = secret.and_then(|s| s.data.as_ref());
            let pair = data.and_then(|d| Some((d.get("tls.crt")?, d.get("tls.key")?)));
            let Some((crt, key)) = pair else {
                warnings.push(format!(
                    "ingress {ns}/{name}: secret {ns}/{secret_name} is missing or lacks tls.crt and tls.key"
                ));
                continue;
            };
            match crate::tls::certified_key(&crt.0, &key.0) {
                Ok(ck) => {
                    // no hosts: the certificate serves the Ingress's own hosts
                    let names: Vec<String> = match &tls.hosts {
                        Some(h) if !h.is_empty() => h.clone(),
                        _ => hosts.iter().filter(|h| !h.is_empty()).cloned().collect(),
                    };
                    for h in names {
                        certs.add(&h, ck.clone());
                    }
                }
                Err(e) => warnings.push(format!(
                    "ingress {ns}/{name}: secret {ns}/{secret_name}: {e}"
                )),
            }
        }
    }
    Built {
        snapshot: Snapshot {
            routes: RouteTable::new(rules, default),
            certs,
        },
        ours,
        warnings,
    }
}

/// A Service port's ready endpoints: `port` is the Service port's number or name.
fn resolve(
    ns: &str,
    svc_name: &str,
    port: &str,
    svc: Option<&Service>,
    slices: &[EndpointSlice],
) -> Backend {
    let name = format!("{ns}/{svc_name}:{port}");
    let sp = svc
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.ports.as_ref())
        .and_then(|ports| {
            ports
                .iter()
                .find(|p| p.port.to_string() == port || p.name.as_deref() == Some(port))
        })
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP");
    let Some(sp) = sp else {
        return Backend {
            name,
            endpoints: vec![],
        };
    };
    let want_name = sp.name.clone().unwrap_or_default();
    let mut eps: BTreeMap<SocketAddr, ()> = BTreeMap::new();
    for slice in slices {
        let labels = slice.metadata.labels.as_ref();
        if slice.metadata.namespace.as_deref() != Some(ns)
            || labels
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .map(String::as_str)
                != Some(svc_name)
            || slice.address_type != "IPv4"
        {
            continue;
        }
        let Some(target) = slice.ports.iter().flatten().find_map(|p| {
            (p.name.clone().unwrap_or_default() == want_name
                && p.protocol.as_deref().unwrap_or("TCP") == "TCP")
                .then_some(p.port)
                .flatten()
        }) else {
            continue;
        };
        let Ok(target) = u16::try_from(target) else {
            continue;
        };
        for ep in &slice.endpoints {
            if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            if let Some(ip) = ep.addresses.first().and_then(|a| a.parse::<IpAddr>().ok()) {
                eps.insert(SocketAddr::new(ip, target), ());
            }
        }
    }
    Backend {
        name,
        endpoints: eps.into_keys().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::Lookup;
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn objects() -> Objects {
        Objects {
            ingresses: vec![
                from(json!({
                    "metadata": {"name": "shop", "namespace": "default",
                                 "creationTimestamp": "2026-01-01T00:00:00Z"},
                    "spec": {
                        "ingressClassName": "podnet",
                        "defaultBackend": {"service": {"name": "web", "port": {"name": "http"}}},
                        "rules": [
                            {"host": "shop.example.com", "http": {"paths": [
                                {"path": "/api", "pathType": "Prefix",
                                 "backend": {"service": {"name": "api", "port": {"number": 8080}}}},
                                {"path": "/", "pathType": "Prefix",
                                 "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                            ]}},
                        ],
                    },
                })),
                // no class named: ours only because the podnet class is the default
                from(json!({
                    "metadata": {"name": "later", "namespace": "default",
                                 "creationTimestamp": "2026-01-02T00:00:00Z"},
                    "spec": {
                        "rules": [{"http": {"paths": [
                            {"path": "/exact", "pathType": "Exact",
                             "backend": {"service": {"name": "api", "port": {"number": 8080}}}}
                        ]}}],
                        "defaultBackend": {"service": {"name": "api", "port": {"number": 8080}}},
                    },
                })),
                from(json!({
                    "metadata": {"name": "other", "namespace": "default"},
                    "spec": {"ingressClassName": "nginx", "rules": [{"http": {"paths": [
                        {"path": "/", "pathType": "Prefix",
                         "backend": {"service": {"name": "api", "port": {"number": 8080}}}}]}}]},
                })),
            ],
            classes: vec![from(json!({
                "metadata": {"name": "podnet",
                             "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
                "spec": {"controller": CONTROLLER},
            }))],
            services: vec![
                from(json!({"metadata": {"name": "web", "namespace": "default"},
                    "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})),
                from(json!({"metadata": {"name": "api", "namespace": "default"},
                    "spec": {"ports": [{"port": 8080}]}})),
            ],
            slices: vec![
                from(json!({"metadata": {"name": "web-a", "namespace": "default",
                                     "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [
                    {"addresses": ["10.244.1.5"], "conditions": {"ready": true}},
                    {"addresses": ["10.244.2.5"], "conditions": {"ready": false}},
                    {"addresses": ["10.244.2.6"]},
                ]})),
                from(json!({"metadata": {"name": "api-a", "namespace": "default",
                                         "labels": {"kubernetes.io/service-name": "api"}},
                    "addressType": "IPv4",
                    "ports": [{"name": "", "port": 9000, "protocol": "TCP"}],
                    "endpoints": []})),
            ],
            secrets: vec![],
        }
    }

    #[test]
    fn ingresses_become_routes_with_ready_endpoints() {
        let built = build(&objects(), "podnet");
        assert!(built.warnings.is_empty(), "{:?}", built.warnings);
        assert_eq!(built.ours.len(), 2, "the nginx-class Ingress is not ours");
        let r = &built.snapshot.routes;
        let web = r.lookup("shop.example.com", "/cart").backend().unwrap();
        assert_eq!(web.name, "default/web:80");
        let want: Vec<SocketAddr> = vec![
            "10.244.1.5:8080".parse().unwrap(),
            "10.244.2.6:8080".parse().unwrap(),
        ];
        assert_eq!(web.endpoints, want, "ready (or unknown) endpoints only");
        let api = r.lookup("shop.example.com", "/api/v1").backend().unwrap();
        assert_eq!(api.name, "default/api:8080");
        assert!(api.endpoints.is_empty());
        // hostless rule of the default-class Ingress
        assert!(matches!(r.lookup("x", "/exact"), Lookup::Rule(b) if b.name == "default/api:8080"));
        // the oldest Ingress's default backend, by port name
        match r.lookup("x", "/nothing") {
            Lookup::Default(b) => assert_eq!(b.name, "default/web:http"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_default_class_only_counts_when_marked() {
        let mut o = objects();
        o.classes[0].metadata.annotations = None;
        let built = build(&o, "podnet");
        assert_eq!(built.ours, [("default".to_string(), "shop".to_string())]);
    }

    #[test]
    fn a_missing_tls_secret_is_a_warning() {
        let mut o = objects();
        o.ingresses[0].spec.as_mut().unwrap().tls = Some(vec![from(json!({
            "hosts": ["shop.example.com"], "secretName": "shop-tls"
        }))]);
        let built = build(&o, "podnet");
        assert!(built.snapshot.certs.is_empty());
        assert!(
            built.warnings[0].contains("default/shop-tls"),
            "{:?}",
            built.warnings
        );
    }
}

//! The deployment manifest is what the lead applies: check it says what the cluster needs.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde_json::Value;

fn docs() -> Vec<Value> {
    serde_saphyr::from_str_multiple::<Value, _>(podnet_dns::MANIFEST).expect("the manifest is YAML")
}

fn one<T: serde::de::DeserializeOwned>(kind: &str) -> T {
    let d: Vec<Value> = docs().into_iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(d.len(), 1, "one {kind}");
    serde_json::from_value(d[0].clone()).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

#[test]
fn the_manifest_deploys_two_replicas_behind_kube_dns() {
    assert_eq!(docs().len(), 5);
    let sa: ServiceAccount = one("ServiceAccount");
    assert_eq!(sa.metadata.name.as_deref(), Some("podnet-dns"));
    assert_eq!(sa.metadata.namespace.as_deref(), Some("kube-system"));

    // Least privilege: list and watch of what the watches read, nothing else.
    let role: ClusterRole = one("ClusterRole");
    let rules = role.rules.unwrap();
    let mut granted: Vec<String> = Vec::new();
    for r in &rules {
        assert_eq!(r.verbs, ["list", "watch"]);
        for g in r.api_groups.iter().flatten() {
            for res in r.resources.iter().flatten() {
                granted.push(format!("{g}/{res}"));
            }
        }
    }
    granted.sort();
    assert_eq!(
        granted,
        [
            "/namespaces",
            "/pods",
            "/services",
            "discovery.k8s.io/endpointslices"
        ]
    );
    let binding: ClusterRoleBinding = one("ClusterRoleBinding");
    assert_eq!(binding.role_ref.name, role.metadata.name.unwrap());
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(
        (
            subject.kind.as_str(),
            subject.name.as_str(),
            subject.namespace.as_deref()
        ),
        ("ServiceAccount", "podnet-dns", Some("kube-system"))
    );

    let d: Deployment = one("Deployment");
    assert_eq!(d.metadata.name.as_deref(), Some("podnet-dns"));
    assert_eq!(d.metadata.namespace.as_deref(), Some("kube-system"));
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    assert_eq!(
        spec.template.metadata.unwrap().labels.unwrap()["k8s-app"],
        "kube-dns"
    );
    assert_eq!(pod.service_account_name.as_deref(), Some("podnet-dns"));
    assert_eq!(pod.dns_policy.as_deref(), Some("Default"));
    // Two replicas may share a node: anti-affinity only preferred.
    let anti = pod.affinity.unwrap().pod_anti_affinity.unwrap();
    assert!(
        anti.required_during_scheduling_ignored_during_execution
            .is_none()
    );
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some(podnet_dns::IMAGE));
    assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
    let ports: Vec<(String, i32, String)> = c
        .ports
        .iter()
        .flatten()
        .map(|p| {
            (
                p.name.clone().unwrap(),
                p.container_port,
                p.protocol.clone().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("dns".into(), 53, "UDP".into()),
            ("dns-tcp".into(), 53, "TCP".into())
        ]
    );
    let probe_port = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        let g = p.as_ref().unwrap().http_get.as_ref().unwrap();
        (
            g.path.clone().unwrap(),
            serde_json::to_value(&g.port).unwrap(),
        )
    };
    assert_eq!(
        probe_port(&c.liveness_probe),
        ("/health".into(), Value::from(8080))
    );
    assert_eq!(
        probe_port(&c.readiness_probe),
        ("/ready".into(), Value::from(8181))
    );
    let res = c.resources.as_ref().unwrap();
    assert_eq!(res.requests.as_ref().unwrap()["cpu"].0, "100m");
    assert_eq!(res.requests.as_ref().unwrap()["memory"].0, "70Mi");
    assert_eq!(res.limits.as_ref().unwrap()["memory"].0, "170Mi");

    let svc: Service = one("Service");
    assert_eq!(svc.metadata.name.as_deref(), Some("kube-dns"));
    assert_eq!(svc.metadata.namespace.as_deref(), Some("kube-system"));
    let s = svc.spec.unwrap();
    assert_eq!(s.cluster_ip.as_deref(), Some(podnet_dns::CLUSTER_DNS_IP));
    assert_eq!(s.selector.unwrap()["k8s-app"], "kube-dns");
    let ports: Vec<(String, i32, String)> = s
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.port, p.protocol.unwrap()))
        .collect();
    assert_eq!(
        ports,
        [
            ("dns".into(), 53, "UDP".into()),
            ("dns-tcp".into(), 53, "TCP".into())
        ]
    );
}

//! The cluster add-ons the lab installs, as kubeadm installs CoreDNS: the objects of podnet's own
//! manifests (`deploy/`, the same files a real cluster applies), created when absent at every start of
//! the lab daemon and otherwise left alone, so a user's edits stay (and a deleted add-on comes back
//! with the next `podnet up`). Addresses the manifests fix for the default service network are moved
//! into the lab's own.

use crate::error::{Error, Result, io};
use crate::state::LabState;
use podnet_apimachinery::resources;
use podnet_apiserver::ServerHandle;
use podnet_apiserver::registry::{FieldValidation, WriteOptions};
use serde_json::Value;

/// podnet's cluster DNS: ServiceAccount, RBAC, the Deployment and the `kube-dns` Service.
pub const DNS_MANIFEST: &str = include_str!("../../../deploy/podnet-dns.yaml");

/// The manifest's objects, in file order.
pub fn objects(manifest: &str) -> Result<Vec<Value>> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(manifest)
        .map(|doc| {
            Value::deserialize(doc)
                .map_err(|e| Error::Other(format!("parse an add-on manifest: {e}")))
        })
        .filter(|v| !matches!(v, Ok(Value::Null)))
        .collect()
}

/// The DNS objects for this lab: `kube-dns` at the tenth address of the lab's service network (what
/// the node agents write into pods' resolv.conf).
pub fn dns_objects(state: &LabState) -> Result<Vec<Value>> {
    let dns_ip = crate::agents::cluster_dns_ip(state);
    let mut objs = objects(DNS_MANIFEST)?;
    for o in &mut objs {
        if o["kind"] == "Service" && o["metadata"]["name"] == "kube-dns" {
            o["spec"]["clusterIP"] = Value::from(dns_ip.clone());
        }
    }
    Ok(objs)
}

/// Creates each object the API server does not have yet. Kinds the API server does not serve are
/// skipped with a line on stderr naming them (RBAC until it is served), never silently.
pub fn install(handle: &ServerHandle, objs: &[Value]) -> Result<()> {
    let api = handle.api();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("start a runtime"))?;
    let opts = WriteOptions {
        field_manager: Some("podnet-lab".into()),
        validation: FieldValidation::Strict,
        ..Default::default()
    };
    rt.block_on(async {
        for obj in objs {
            let (version, kind) = (
                obj["apiVersion"].as_str().unwrap_or_default(),
                obj["kind"].as_str().unwrap_or_default(),
            );
            let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
            let name = obj["metadata"]["name"].as_str().unwrap_or_default();
            let Some(def) = resources::find_kind(version, kind) else {
                eprintln!(
                    "podnet lab: add-on {kind} {name} skipped: the API server does not serve {version} {kind} yet"
                );
                continue;
            };
            if api.get(def, ns, name).is_ok() {
                continue;
            }
            match api.create(def, ns, obj.clone(), &opts).await {
                Ok(_) => {}
                Err(e) if e.reason == "AlreadyExists" => {}
                Err(e) => {
                    return Err(Error::Other(format!(
                        "install add-on {kind} {}{name}: {}",
                        if ns.is_empty() { String::new() } else { format!("{ns}/") },
                        e.message
                    )));
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dns_manifest_parses_into_its_objects() {
        let objs = objects(DNS_MANIFEST).unwrap();
        let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Deployment",
                "Service"
            ]
        );
        let svc = &objs[4];
        assert_eq!(svc["metadata"]["name"], "kube-dns");
        assert_eq!(svc["spec"]["clusterIP"], "10.96.0.10");
        let dep = &objs[3];
        assert_eq!(dep["spec"]["replicas"], 2);
        assert_eq!(dep["spec"]["template"]["spec"]["dnsPolicy"], "Default");
    }
}

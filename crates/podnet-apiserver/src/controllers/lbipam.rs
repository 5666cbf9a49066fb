//! LoadBalancer addresses: gives each Service of type LoadBalancer an address from the configured
//! pool in `status.loadBalancer.ingress` and takes it back when the Service goes or changes type, as
//! a cloud's service controller (or MetalLB's) does. The decisions are
//! `podnet_apimachinery::loadbalancer`'s; the addresses in use are read from the Services each time,
//! so a restart needs no state of its own. Keys are reconciled one at a time, so two Services never
//! get one address.

use std::sync::Arc;

use podnet_apimachinery::loadbalancer::{self, Decision, Pool};
use podnet_apimachinery::{ApiError, resources};
use podnet_apistore::{ObjectKey, WatchEvent};
use serde_json::Value;

use super::{BoxFut, Controller};
use crate::registry::Api;

const COMPONENT: &str = "service-lb-controller";

pub struct LbIpam {
    pub pool: Pool,
}

fn services() -> &'static resources::ResourceDef {
    resources::find("", "v1", "services").expect("served")
}

impl Controller for LbIpam {
    fn name(&self) -> &'static str {
        "service-lb"
    }

    fn watches(&self) -> Vec<String> {
        vec!["services".into()]
    }

    fn keys(&self, api: &Api, ev: &WatchEvent) -> Vec<ObjectKey> {
        // A Service that went or changed type may free an address one still waiting can take.
        let mut keys = vec![ev.key.clone()];
        keys.extend(
            api.list_values(services(), None)
                .iter()
                .filter(|s| {
                    loadbalancer::is_ours(s) && loadbalancer::held(&self.pool, s).is_empty()
                })
                .map(|s| {
                    ObjectKey::new(
                        "services",
                        podnet_apimachinery::object::namespace(s),
                        podnet_apimachinery::object::name(s),
                    )
                }),
        );
        keys
    }

    fn all_keys(&self, api: &Api) -> Vec<ObjectKey> {
        super::keys_of(api, "services")
    }

    fn reconcile<'a>(&'a self, api: &'a Arc<Api>, key: &'a ObjectKey) -> BoxFut<'a> {
        Box::pin(async move { sync(api, &self.pool, key).await })
    }
}

async fn sync(api: &Arc<Api>, pool: &Pool, key: &ObjectKey) -> Result<(), ApiError> {
    let Ok(svc) = api.get(services(), &key.namespace, &key.name) else {
        return Ok(()); // gone: its address is free since nothing holds it any more
    };
    let all: Vec<Value> = api.list_values(services(), None);
    let decision = loadbalancer::decide(pool, &svc, &all);
    match &decision {
        Decision::Unchanged => return Ok(()),
        Decision::Pending(why) => {
            super::record_event(
                api,
                &with_kind(svc),
                "Warning",
                "AllocationFailed",
                &format!(
                    "Failed to allocate IP for \"{}/{}\": {why}",
                    key.namespace, key.name
                ),
                COMPONENT,
            )
            .await;
            return Ok(());
        }
        Decision::Assign(_) | Decision::Release => {}
    }
    let written = api
        .mutate(services(), &key.namespace, &key.name, Some("status"), |o| {
            // decided against the Service read above; a newer version is decided again by the event
            // its write makes
            if o.pointer("/metadata/resourceVersion") != svc.pointer("/metadata/resourceVersion") {
                return false;
            }
            loadbalancer::apply(pool, o, &decision)
        })
        .await?;
    if written.is_some() {
        let (reason, message) = match decision {
            Decision::Assign(ip) => ("IPAllocated", format!("Assigned IP [\"{ip}\"]")),
            _ => ("IPReleased", "Released the pool's address".to_string()),
        };
        super::record_event(api, &with_kind(svc), "Normal", reason, &message, COMPONENT).await;
    }
    Ok(())
}

/// Stored objects may lack `kind`; events name it.
fn with_kind(mut svc: Value) -> Value {
    svc["kind"] = Value::from("Service");
    svc["apiVersion"] = Value::from("v1");
    svc
}

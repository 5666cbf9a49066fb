//! The controller part: kube-rs reflectors of Ingresses, IngressClasses, Services, EndpointSlices
//! and Secrets in every namespace; every change (batched over [`BATCH`]) rebuilds the configuration
//! and publishes it to the proxy in one swap, and the Ingresses of this class get the address of the
//! controller's own LoadBalancer Service in `status.loadBalancer`.

use crate::config::Snapshot;
use crate::ingress::{self, Objects};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde_json::{Value, json};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Changes arriving this close together make one rebuild.
const BATCH: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        source: kube::config::KubeconfigError,
    },
    #[error(
        "in-cluster configuration (KUBERNETES_SERVICE_HOST/PORT and the service account token): {0}"
    )]
    InCluster(#[from] kube::config::InClusterError),
    #[error("make an API client: {0}")]
    Client(#[from] kube::Error),
}

/// A client from `kubeconfig`, else from the pod's service account.
pub async fn client(kubeconfig: Option<&std::path::Path>) -> Result<kube::Client, ClientError> {
    let config = match kubeconfig {
        Some(path) => {
            let err = |source| ClientError::Kubeconfig {
                path: path.display().to_string(),
                source,
            };
            let kc = kube::config::Kubeconfig::read_from(path).map_err(err)?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(err)?
        }
        None => kube::Config::incluster()?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// What the controller is told at start.
#[derive(Debug, Clone)]
pub struct Options {
    /// The IngressClass name it serves (`podnet`).
    pub class: String,
    /// Its own LoadBalancer Service (`namespace/name`), whose address goes into Ingress statuses.
    pub publish_service: Option<(String, String)>,
}

/// Starts a reflector for `K` in every namespace; each event wakes `changed`.
fn reflect<K>(client: &kube::Client, changed: Arc<Notify>) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let stream = reflector::reflector(
        writer,
        watcher(Api::<K>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            if let Err(e) = ev {
                eprintln!("podnet-ingress: watch {}: {e}", K::kind(&()));
            }
            changed.notify_one();
        }
    });
    store
}

fn state<K: Resource<DynamicType = ()> + Clone>(s: &Store<K>) -> Vec<K> {
    s.state().iter().map(|o| (**o).clone()).collect()
}

/// Runs until the process ends: rebuilds and publishes the configuration on every change.
pub async fn run(client: kube::Client, opts: Options, publish: watch::Sender<Arc<Snapshot>>) {
    let changed = Arc::new(Notify::new());
    let ingresses = reflect::<Ingress>(&client, changed.clone());
    let classes = reflect::<IngressClass>(&client, changed.clone());
    let services = reflect::<Service>(&client, changed.clone());
    let slices = reflect::<EndpointSlice>(&client, changed.clone());
    let secrets = reflect::<Secret>(&client, changed.clone());
    for ready in [
        ingresses.wait_until_ready().await,
        classes.wait_until_ready().await,
        services.wait_until_ready().await,
        slices.wait_until_ready().await,
        secrets.wait_until_ready().await,
    ] {
        if let Err(e) = ready {
            eprintln!("podnet-ingress: a watch ended before it listed: {e}");
            return;
        }
    }
    let mut last_warnings = Vec::new();
    loop {
        let objs = Objects {
            ingresses: state(&ingresses),
            classes: state(&classes),
            services: state(&services),
            slices: state(&slices),
            secrets: state(&secrets),
        };
        let built = ingress::build(&objs, &opts.class);
        if built.warnings != last_warnings {
            for w in &built.warnings {
                eprintln!("podnet-ingress: {w}");
            }
            last_warnings = built.warnings.clone();
        }
        publish.send_replace(Arc::new(built.snapshot));
        if let Some(addr) = opts
            .publish_service
            .as_ref()
            .and_then(|(ns, name)| lb_status(&objs.services, ns, name))
        {
            update_statuses(&client, &objs.ingresses, &built.ours, &addr).await;
        }
        changed.notified().await;
        tokio::time::sleep(BATCH).await;
    }
}

/// The `status.loadBalancer` of the controller's Service, as an Ingress carries it.
fn lb_status(services: &[Service], ns: &str, name: &str) -> Option<Value> {
    let svc = services.iter().find(|s| {
        s.metadata.namespace.as_deref() == Some(ns) && s.metadata.name.as_deref() == Some(name)
    })?;
    let ingress: Vec<Value> = svc
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .iter()
        .flatten()
        .map(|i| {
            let mut v = json!({});
            if let Some(ip) = &i.ip {
                v["ip"] = json!(ip);
            }
            if let Some(h) = &i.hostname {
                v["hostname"] = json!(h);
            }
            v
        })
        .collect();
    (!ingress.is_empty()).then(|| json!({ "ingress": ingress }))
}

async fn update_statuses(
    client: &kube::Client,
    all: &[Ingress],
    ours: &[(String, String)],
    lb: &Value,
) {
    for ing in all {
        let key = (
            ing.metadata.namespace.clone().unwrap_or_default(),
            ing.metadata.name.clone().unwrap_or_default(),
        );
        if !ours.contains(&key) {
            continue;
        }
        let current = ing
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .map(|l| serde_json::to_value(l).unwrap_or_default());
        if current.as_ref() == Some(lb) {
            continue;
        }
        let api = Api::<Ingress>::namespaced(client.clone(), &key.0);
        let patch = json!({"status": {"loadBalancer": lb}});
        if let Err(e) = api
            .patch_status(&key.1, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            eprintln!(
                "podnet-ingress: set the status of ingress {}/{}: {e}",
                key.0, key.1
            );
        }
    }
}

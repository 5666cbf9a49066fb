//! The index fed from the API: watches of Services, EndpointSlices and Pods in every namespace
//! (kube-rs watchers, which relist and resume by themselves). Ready once each has listed once.

use crate::health::Readiness;
use crate::index::Index;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::watcher;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

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

/// A client from `kubeconfig`, else from the pod's service account (in-cluster).
pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, ClientError> {
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

/// Runs the three watches until the process ends.
pub async fn run(client: kube::Client, index: Arc<RwLock<Index>>, ready: Arc<Readiness>) {
    let listed = Arc::new(AtomicUsize::new(0));
    let done = move || {
        if listed.fetch_add(1, Ordering::AcqRel) + 1 == 3 {
            ready.set_ready();
        }
    };
    tokio::join!(
        watch::<Service>(
            Api::all(client.clone()),
            index.clone(),
            Ops {
                apply: Index::apply_service,
                delete: Index::delete_service,
                replace: |i, all| i.replace_services(all),
            },
            done.clone(),
        ),
        watch::<EndpointSlice>(
            Api::all(client.clone()),
            index.clone(),
            Ops {
                apply: Index::apply_slice,
                delete: Index::delete_slice,
                replace: |i, all| i.replace_slices(all),
            },
            done.clone(),
        ),
        watch::<Pod>(
            Api::all(client),
            index,
            Ops {
                apply: Index::apply_pod,
                delete: Index::delete_pod,
                replace: |i, all| i.replace_pods(all),
            },
            done,
        ),
    );
}

struct Ops<K> {
    apply: fn(&mut Index, &K),
    delete: fn(&mut Index, &K),
    replace: fn(&mut Index, &[K]),
}

async fn watch<K>(api: Api<K>, index: Arc<RwLock<Index>>, ops: Ops<K>, first_list: impl Fn())
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    // A (re)list arrives as Init, InitApply..., InitDone: applied at once, so queries never see
    // half a list.
    let mut initial: Vec<K> = Vec::new();
    let mut listed = false;
    while let Some(event) = stream.next().await {
        let write = || index.write().unwrap_or_else(|e| e.into_inner());
        match event {
            Ok(watcher::Event::Init) => initial.clear(),
            Ok(watcher::Event::InitApply(o)) => initial.push(o),
            Ok(watcher::Event::InitDone) => {
                (ops.replace)(&mut write(), &initial);
                eprintln!("podnet-dns: listed {} {kind}s", initial.len());
                initial = Vec::new();
                if !listed {
                    listed = true;
                    first_list();
                }
            }
            Ok(watcher::Event::Apply(o)) => (ops.apply)(&mut write(), &o),
            Ok(watcher::Event::Delete(o)) => (ops.delete)(&mut write(), &o),
            Err(e) => {
                // The watcher retries by itself on the next poll; pause so a dead API server is
                // not hammered.
                eprintln!("podnet-dns: watch {kind}s: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

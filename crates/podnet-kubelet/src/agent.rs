//! The node agent's kubelet part: connects to the API server with the node's credentials, keeps the
//! Node's status and Lease fresh, and runs the pods bound to the node. The `podnet node-agent`
//! binary runs it beside the node's networking part (podnet-agent) on one tokio runtime.

use crate::cni::{Cni, NetworkList};
use crate::config::AgentConfig;
use crate::images::Images;
use crate::node::{self, NodeFacts};
use crate::pods::{Kubelet, Workers};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The kubelet part's tasks, running on the caller's tokio runtime.
pub struct Running {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops the tasks; pods keep running (a restarted agent adopts them).
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Starts the kubelet part on the current tokio runtime: the Node's heartbeat, the pod workers fed
/// by a watch of the node's pods, the relist loop and the kubelet port.
pub async fn start(cfg: &AgentConfig, client: kube::Client) -> Result<Running, String> {
    let facts = NodeFacts::probe(&cfg.node, &cfg.internal_ip, &cfg.state_dir);
    let kubelet = Arc::new(kubelet(cfg, client.clone())?);
    let listener = tokio::net::TcpListener::bind((cfg.internal_ip.as_str(), node::KUBELET_PORT))
        .await
        .map_err(|e| format!("listen on {}:{}: {e}", cfg.internal_ip, node::KUBELET_PORT))?;
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| format!("read {}: {e}", p.display()))
    };
    let (cert, key) = (read(&cfg.serving_cert)?, read(&cfg.serving_key)?);
    let token = read(&cfg.api_server_token_file)?.trim().to_string();
    let server = tokio::spawn({
        let k = kubelet.clone();
        async move {
            if let Err(e) = crate::server::serve(k, listener, &cert, &key, token).await {
                eprintln!("podnet node agent: kubelet port: {e}");
            }
        }
    });
    let workers = Workers::new(kubelet.clone());
    let pleg = tokio::spawn(relist_loop(kubelet.clone(), workers.clone()));
    let pods = tokio::spawn(watch_pods(
        client.clone(),
        cfg.node.clone(),
        kubelet.clone(),
        workers,
    ));
    let heartbeat = tokio::spawn(heartbeat(client, cfg.clone(), facts));
    Ok(Running {
        tasks: vec![heartbeat, pods, pleg, server],
    })
}

/// The pod runtime, image puller and CNI of the node, put together.
fn kubelet(cfg: &AgentConfig, client: kube::Client) -> Result<Kubelet, String> {
    cfg.create_pods_dir()?;
    let runtime = podnet_runtime::Runtime::new(cfg.runtime_config())
        .map_err(|e| format!("open the pod runtime: {e}"))?;
    let store = podnet_oci::Store::open(&cfg.image_store)
        .map_err(|e| format!("open the image store {}: {e}", cfg.image_store.display()))?;
    let dialer: podnet_oci::Dialer = match cfg.pull_netns.clone() {
        // Registry connections are made from a short-lived thread inside that namespace (never by
        // switching an async worker's namespace).
        Some(path) => Arc::new(move |host: &str, port: u16| {
            let ns = podnet_netns::NetNs::open(&path).map_err(std::io::Error::other)?;
            let host = host.to_string();
            ns.run(move || std::net::TcpStream::connect((host.as_str(), port)))
                .map_err(std::io::Error::other)?
        }),
        None => podnet_oci::default_dialer(),
    };
    let hosts = podnet_oci::Hosts::new(cfg.registry_hosts_dir.clone(), Vec::new());
    let puller = podnet_oci::Puller::new(store, dialer, hosts, podnet_oci::Keychain::empty());
    Ok(Kubelet::new(
        cfg.clone(),
        client,
        tokio::runtime::Handle::current(),
        runtime,
        Images::new(puller),
    ))
}

/// Every second, looks at what runs on the node and wakes the worker of a pod whose containers or
/// sandbox changed state (an exit, a killed pause), so restarts and status follow within a second.
async fn relist_loop(kubelet: Arc<Kubelet>, workers: Arc<Workers>) {
    let mut last = std::collections::HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let k = kubelet.clone();
        let Ok(now) = tokio::task::spawn_blocking(move || crate::pods::relist(&k.runtime)).await
        else {
            continue;
        };
        for (uid, states) in &now {
            if last.get(uid) != Some(states) {
                workers.poke(uid);
            }
        }
        last = now;
    }
}

/// Feeds the pods bound to this node to their workers; after the first full list, removes what runs
/// for pods the API no longer has (adoption: everything else is kept and synced).
async fn watch_pods(
    client: kube::Client,
    node: String,
    kubelet: Arc<Kubelet>,
    workers: Arc<Workers>,
) {
    let api: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut stream = watcher(api, config).boxed();
    let mut initial: HashSet<String> = HashSet::new();
    let mut cleaned = false;
    let mut resync = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            ev = stream.next() => {
                let Some(ev) = ev else { return };
                match ev {
                    Ok(watcher::Event::Init) => initial.clear(),
                    Ok(watcher::Event::InitApply(p)) => {
                        let uid = p.metadata.uid.clone().unwrap_or_default();
                        initial.insert(uid.clone());
                        workers.update(&uid, Some(p));
                    }
                    Ok(watcher::Event::InitDone) => {
                        // Pods that disappeared while we were not watching.
                        for uid in workers.known().difference(&initial) {
                            workers.update(uid, None);
                        }
                        if !cleaned {
                            cleaned = true;
                            let k = kubelet.clone();
                            let known = initial.clone();
                            let _ = tokio::task::spawn_blocking(move || k.remove_orphans(&known)).await;
                        }
                    }
                    Ok(watcher::Event::Apply(p)) => {
                        let uid = p.metadata.uid.clone().unwrap_or_default();
                        workers.update(&uid, Some(p));
                    }
                    Ok(watcher::Event::Delete(p)) => {
                        let uid = p.metadata.uid.clone().unwrap_or_default();
                        workers.update(&uid, None);
                    }
                    Err(e) => {
                        eprintln!("podnet node agent {node}: watch pods: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            _ = resync.tick() => {
                if cleaned {
                    let k = kubelet.clone();
                    let known = workers.known();
                    let _ = tokio::task::spawn_blocking(move || k.remove_orphans(&known)).await;
                }
            }
        }
    }
}

/// A client acting as the node, from the agent's kubeconfig.
pub async fn connect(cfg: &AgentConfig) -> Result<kube::Client, String> {
    let kc = Kubeconfig::read_from(&cfg.kubeconfig)
        .map_err(|e| format!("read {}: {e}", cfg.kubeconfig.display()))?;
    let conf = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("load {}: {e}", cfg.kubeconfig.display()))?;
    kube::Client::try_from(conf).map_err(|e| format!("make a client: {e}"))
}

/// Whether the node can take pods: its network plugin answers STATUS (kubelet's NetworkReady).
pub fn network_ready(cfg: &AgentConfig) -> Result<(), String> {
    let not_ready = |why: String| {
        format!(
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: {why}"
        )
    };
    let list = NetworkList::load_dir(&cfg.cni_conf_dir).map_err(|e| not_ready(e.to_string()))?;
    let cni = Cni {
        bin_dirs: cfg.cni_bin_dirs.clone(),
        cache_dir: cfg.cni_cache_dir(),
    };
    cni.status(&list).map_err(|e| not_ready(e.to_string()))
}

/// Posts the node's status and renews its Lease every 10 s. A failure is logged and retried at the
/// next tick: the lifecycle controller, not the agent, decides what a missed heartbeat means.
async fn heartbeat(client: kube::Client, cfg: AgentConfig, facts: NodeFacts) {
    let mut tick = tokio::time::interval(node::RENEW_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let c = cfg.clone();
        let ready = tokio::task::spawn_blocking(move || network_ready(&c))
            .await
            .unwrap_or_else(|e| Err(format!("network check: {e}")));
        if let Err(e) = node::post_status(&client, &facts, ready).await {
            eprintln!("podnet node agent {}: update node status: {e}", cfg.node);
        }
        if let Err(e) = node::renew_lease(&client, &cfg.node).await {
            eprintln!("podnet node agent {}: renew lease: {e}", cfg.node);
        }
    }
}

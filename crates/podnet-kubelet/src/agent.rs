//! The node agent's kubelet part as a process: connects to the API server with the node's
//! credentials, keeps the Node's status and Lease fresh, and runs the pods bound to the node.

use crate::cni::{Cni, NetworkList};
use crate::config::AgentConfig;
use crate::node::{self, NodeFacts};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Runs the agent until SIGTERM or SIGINT (blocking).
pub fn run(cfg: AgentConfig) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("agent")
        .build()
        .map_err(|e| format!("start the agent's runtime: {e}"))?;
    rt.block_on(async move {
        let client = connect(&cfg).await?;
        eprintln!(
            "podnet node agent {}: connected to the API server as the node",
            cfg.node
        );
        let facts = NodeFacts::probe(&cfg.node, &cfg.internal_ip, &cfg.state_dir);
        let heartbeat = tokio::spawn(heartbeat(client.clone(), cfg.clone(), facts));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| format!("watch SIGTERM: {e}"))?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        heartbeat.abort();
        eprintln!("podnet node agent {}: stopping (pods keep running)", cfg.node);
        Ok(())
    })
}

async fn connect(cfg: &AgentConfig) -> Result<kube::Client, String> {
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
        format!("container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: {why}")
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

//! `podnet node-agent --node NAME`: the agent of one node, started by the lab daemon inside the node's
//! namespaces (on a real node, by its init system). Two parts on one runtime: the kubelet part
//! (podnet-kubelet: pods, the Node's status) and the networking part (podnet-agent: the service
//! proxy and NetworkPolicy enforcement), which on a real cluster runs alone beside the real kubelet.

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The Node this agent is.
    #[arg(long)]
    pub node: String,
    /// The agent's configuration (the lab writes one per node).
    #[arg(long)]
    pub config: PathBuf,
    /// The cluster's pod network (kube-proxy's --cluster-cidr): traffic to a Service from outside it
    /// is masqueraded. Repeatable.
    #[arg(long = "cluster-cidr", required = true)]
    pub cluster_cidr: Vec<Ipv4Net>,
}

pub fn run(args: Args) -> Result<()> {
    let cfg =
        podnet_kubelet::config::AgentConfig::load(&args.config).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        cfg.node == args.node,
        "{} is the configuration of node {}, not {}",
        args.config.display(),
        cfg.node,
        args.node
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("agent")
        .build()
        .context("start the agent's runtime")?;
    let node = args.node.clone();
    rt.block_on(async move {
        let client = podnet_kubelet::agent::connect(&cfg)
            .await
            .map_err(anyhow::Error::msg)?;
        eprintln!("podnet node agent {node}: connected to the API server as the node");
        let networking = tokio::spawn(networking(client.clone(), node.clone(), args.cluster_cidr));
        let drop_log = cfg.state_dir.join(podnet_agent::policy::drops::LOG_FILE);
        let policy = tokio::spawn(policy(client.clone(), node.clone(), drop_log));
        let kubelet = podnet_kubelet::agent::start(&cfg, client)
            .await
            .map_err(anyhow::Error::msg)?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("watch SIGTERM")?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        kubelet.stop();
        networking.abort();
        policy.abort();
        eprintln!("podnet node agent {node}: stopping (pods, Service and policy rules stay)");
        Ok::<_, anyhow::Error>(())
    })
    .with_context(|| format!("node agent {}", args.node))
}

/// The node's networking from the API alone: the service proxy (podnet-agent). Its rules stay when the
/// agent stops, as kube-proxy's do, so Services keep working while an agent restarts. An error is
/// logged and the proxy restarted after a pause (it resyncs from scratch).
async fn networking(client: kube::Client, node: String, cluster_cidrs: Vec<Ipv4Net>) {
    let mut pause = std::time::Duration::from_secs(1);
    loop {
        let cfg = podnet_agent::proxy::ProxyConfig::new(node.clone(), cluster_cidrs.clone());
        match podnet_agent::proxy::run(client.clone(), cfg).await {
            Ok(()) => return,
            Err(e) => {
                eprintln!("podnet node agent {node}: service proxy: {e}; restarting in {pause:?}")
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(30));
    }
}

/// NetworkPolicy enforcement for the node's pods (podnet-agent). Like the Service rules, the policy
/// table stays while the agent restarts (pods stay isolated); denied packets go to `drop_log`, which
/// `podnet policy drops` reads. Restarted after a pause on error.
async fn policy(client: kube::Client, node: String, drop_log: std::path::PathBuf) {
    let mut pause = std::time::Duration::from_secs(1);
    loop {
        let mut cfg = podnet_agent::policy::PolicyConfig::new(node.clone());
        cfg.drop_log = Some(drop_log.clone());
        match podnet_agent::policy::run(client.clone(), cfg).await {
            Ok(()) => return,
            Err(e) => {
                eprintln!("podnet node agent {node}: network policy: {e}; restarting in {pause:?}")
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(30));
    }
}

//! `podnet node-agent --node NAME`: the agent of one node (a kubelet's job plus the node's networking),
//! started by the lab daemon inside the node's namespaces; on a real node, by its init system.

use anyhow::Context;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The Node this agent is.
    #[arg(long)]
    pub node: String,
    /// The agent's configuration (the lab writes one per node).
    #[arg(long)]
    pub config: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg =
        podnet_kubelet::config::AgentConfig::load(&args.config).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        cfg.node == args.node,
        "{} is the configuration of node {}, not {}",
        args.config.display(),
        cfg.node,
        args.node
    );
    podnet_kubelet::agent::run(cfg)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("node agent {}", args.node))
}

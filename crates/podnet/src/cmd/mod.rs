//! Subcommands. Each lives in its own module; this file only lists them.

use clap::{Parser, Subcommand};

mod apiserver;
mod daemon;
mod down;
mod image;
mod kubeconfig;
mod mode;
mod node;
mod node_agent;
mod policy;
mod substitutes;
mod tutorial;
mod up;

#[derive(Parser)]
#[command(
    name = "podnet",
    version,
    about = "Kubernetes pod networking, end to end, on one machine and beyond"
)]
pub struct Cli {
    /// Which lab to act on (several can run side by side; tests use their own).
    #[arg(long, global = true, env = "PODNET_LAB", default_value = podnet_lab::DEFAULT_LAB)]
    pub lab: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print the version.
    Version,
    /// Build the lab: nodes as namespaces on an underlay behind a router, in about a second.
    Up(up::Args),
    /// Remove every trace of the lab.
    Down,
    /// Switch how pod traffic crosses between nodes: vxlan, host-gw or gateway.
    Mode(mode::Args),
    /// The lab's nodes: list them, run commands on them.
    #[command(subcommand)]
    Node(node::Command),
    /// NetworkPolicies on the lab's nodes: `podnet policy drops [NODE]` shows what they denied.
    #[command(subcommand)]
    Policy(policy::Command),
    /// The agent of one node: runs its pods and programs its network (started by the lab daemon).
    #[command(name = "node-agent")]
    NodeAgent(node_agent::Args),
    /// The lab daemon (started by `podnet up`).
    #[command(name = "__lab-daemon", hide = true)]
    LabDaemon(daemon::Args),
    /// Run the control plane's API server on its own (blocking).
    Apiserver(apiserver::Args),
    /// Print the kubeconfig of the lab's API server.
    Kubeconfig(kubeconfig::Args),
    /// OCI images: pull, list, inspect, load, rm, prune (one store shared by every lab).
    Image(image::Args),
    /// The seed tutorials walked through on the lab: every command run, its output shown and checked.
    Tutorial(tutorial::Args),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            println!("podnet {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Up(a) => {
            require_root("podnet up")?;
            up::run(&cli.lab, a)
        }
        Command::Down => {
            require_root("podnet down")?;
            down::run(&cli.lab)
        }
        Command::Mode(a) => {
            require_root("podnet mode")?;
            mode::run(&cli.lab, a)
        }
        Command::Node(c) => node::run(&cli.lab, c),
        Command::LabDaemon(a) => daemon::run(a),
        Command::Policy(c) => policy::run(&cli.lab, c),
        Command::NodeAgent(a) => node_agent::run(a),
        Command::Apiserver(a) => apiserver::run(a),
        Command::Kubeconfig(a) => kubeconfig::run(&cli.lab, a),
        Command::Image(a) => image::run(&cli.lab, a),
        Command::Tutorial(a) => tutorial::run(&cli.lab, a),
    }
}

/// The lab creates namespaces, links and mounts: say so plainly instead of failing on the first EPERM.
fn require_root(what: &str) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!(
            "{what} needs root: it creates network namespaces, links and mounts (try sudo)"
        );
    }
    Ok(())
}

/// The node table shared by `podnet up` and `podnet node list`.
pub fn nodes_table(state: &podnet_lab::LabState) -> String {
    let mut out = format!(
        "{:<8} {:<15} {:<18} {}\n",
        "NAME", "UNDERLAY", "PODCIDR", "GATEWAY"
    );
    for n in &state.plan.nodes {
        out.push_str(&format!(
            "{:<8} {:<15} {:<18} {}\n",
            n.name,
            n.underlay_ip.to_string(),
            n.pod_cidr.to_string(),
            n.gateway()
        ));
    }
    out
}

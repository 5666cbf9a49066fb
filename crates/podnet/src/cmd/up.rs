//! `podnet up`: build the lab (or say it is running, or bring it back after a crash).

use super::nodes_table;
use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use podnet_lab::{UpOptions, UpOutcome};
use podnet_types::lab::{Mode, PlanSpec};

#[derive(clap::Args)]
pub struct Args {
    /// Number of nodes [default: 2].
    #[arg(long)]
    nodes: Option<u32>,
    /// How pod traffic crosses between nodes: vxlan, host-gw or gateway [default: vxlan].
    #[arg(long)]
    mode: Option<Mode>,
    /// The underlay network: the router takes the first address, nodes the following ones.
    #[arg(long, default_value = "10.100.0.0/24")]
    underlay: Ipv4Net,
    /// The cluster's pod network, split into one podCIDR per node.
    #[arg(long = "cluster-cidr", default_value = "10.244.0.0/16")]
    cluster_cidr: Ipv4Net,
    /// Prefix length of each node's podCIDR.
    #[arg(long = "node-cidr-prefix", default_value_t = 24)]
    node_prefix: u8,
    /// The Services' virtual network (reserved for ClusterIPs).
    #[arg(long = "service-cidr", default_value = "10.96.0.0/16")]
    service_cidr: Ipv4Net,
    /// MTU of the underlay links.
    #[arg(long, default_value_t = 1500)]
    mtu: u32,
    /// A resolver for names outside the cluster (repeatable; default: the machine's own, from
    /// /etc/resolv.conf). The lab's router relays pods' and the cluster DNS's queries to it.
    #[arg(long = "upstream-dns", value_name = "IP:PORT")]
    upstream_dns: Vec<std::net::SocketAddr>,
    /// Where LoadBalancer Services get their external addresses: FIRST-LAST or a CIDR inside the
    /// lab's internet 203.0.113.0/24 (the router answers for them there, as a cloud's load balancer).
    #[arg(
        long = "lb-pool",
        value_name = "RANGE",
        default_value = "203.0.113.100-203.0.113.199"
    )]
    lb_pool: podnet_types::lab::LbPool,
    /// The API server's port on 127.0.0.1 (0 picks a free one).
    #[arg(long = "api-port", default_value_t = 6443)]
    api_port: u16,
    /// Do not add the lab's `podnet` context to the kubeconfig ($KUBECONFIG's first file, else ~/.kube/config).
    #[arg(long = "no-kubeconfig")]
    no_kubeconfig: bool,
}

pub fn run(lab: &str, a: Args) -> Result<()> {
    let opts = UpOptions {
        name: lab.to_string(),
        spec: PlanSpec {
            nodes: a.nodes.unwrap_or(2),
            underlay: a.underlay,
            cluster_cidr: a.cluster_cidr,
            node_prefix: a.node_prefix,
            service_cidr: a.service_cidr,
            mtu: a.mtu,
            upstream_dns: a.upstream_dns,
            lb_pool: a.lb_pool,
        },
        mode: a.mode.unwrap_or(Mode::Vxlan),
        podnet_exe: std::env::current_exe().context("find the podnet executable")?,
        podnet_cni: podnet_lab::cniconf::find_plugin()?,
        api_port: a.api_port,
        kubeconfig: if a.no_kubeconfig {
            None
        } else {
            Some(podnet_apiserver::kubeconfig::default_path()?)
        },
    };
    match podnet_lab::up(&opts)? {
        UpOutcome::Created { state, took } => {
            println!(
                "lab {lab} is up in {:.2} s: {} nodes, mode {}, router {}, internet 203.0.113.10, load balancers {}\n",
                took.as_secs_f64(),
                state.plan.nodes.len(),
                state.mode,
                state.plan.router_ip,
                state.plan.spec.lb_pool
            );
            print!("{}", nodes_table(&state));
            if let Some(api) = &state.api_address {
                let kc = state
                    .kubeconfig
                    .as_ref()
                    .map(|p| format!(", context \"podnet\" in {}", p.display()))
                    .unwrap_or_default();
                println!("\nAPI server: https://{api}{kc}");
            }
            println!(
                "\ntry next:     podnet tutorial list        (the seed tutorials, walked through: podnet tutorial run 000)\n              kubectl get nodes -o wide\n              podnet node exec node1 -- ip route\n              podnet mode host-gw     (or vxlan, gateway)\n              podnet down"
            );
        }
        UpOutcome::AlreadyRunning { state, repaired } => {
            println!(
                "lab {lab} is already running ({} nodes, mode {}); `podnet down` removes it.",
                state.plan.nodes.len(),
                state.mode
            );
            // Only what the user asked for explicitly is compared: unset flags ask for nothing.
            let mut differs = Vec::new();
            if let Some(n) = a.nodes.filter(|n| *n as usize != state.plan.nodes.len()) {
                differs.push(format!("--nodes {n}"));
            }
            if let Some(m) = a.mode.filter(|m| *m != state.mode) {
                differs.push(format!("--mode {m} (switch with `podnet mode {m}`)"));
            }
            if !differs.is_empty() {
                println!("not applied to the running lab: {}", differs.join(", "));
            }
            if repaired.is_empty() {
                println!("nothing changed.");
            } else {
                println!("put right what had drifted:");
                for line in &repaired {
                    println!("  {line}");
                }
            }
        }
        UpOutcome::Recovered { state, took } => {
            println!(
                "lab {lab}: its daemon was gone; restarted it in {:.2} s, network and pods kept ({} nodes, mode {}).",
                took.as_secs_f64(),
                state.plan.nodes.len(),
                state.mode
            );
        }
    }
    mirror(lab);
    Ok(())
}

/// Where images come from, and the substitutes pushed into the lab's mirror if they were built.
/// A failed push leaves the lab as it is (its network does not need images): it is reported.
fn mirror(lab: &str) {
    let Ok(Some(state)) = podnet_lab::status(lab) else {
        return;
    };
    let Some(m) = &state.mirror else { return };
    println!(
        "
image mirror: http://{} (upstream first, then the substitutes; {}/<registry>/hosts.toml)",
        m.address,
        m.hosts_dir.display()
    );
    let mut progress = |line: &str| println!("  {line}");
    match podnet_lab::publish_substitutes(lab, &mut progress) {
        Ok(Some(p)) if p.pushed.is_empty() => {
            println!("substitutes: {} images, all in the mirror", p.present.len())
        }
        Ok(Some(p)) => println!(
            "substitutes: {} pushed, {} already in the mirror",
            p.pushed.len(),
            p.present.len()
        ),
        Ok(None) => println!(
            "substitutes: none built on this machine yet (`podnet image build-substitutes`, which ./run lab runs); the mirror is empty"
        ),
        Err(e) => eprintln!("podnet up: warning: {e}"),
    }
}

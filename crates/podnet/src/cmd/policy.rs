//! `podnet policy drops [NODE]`: what NetworkPolicies denied on the lab's nodes: per policy, the
//! packets the node's table counted, then the most recent denied packets its agent logged (pod,
//! policies, protocol, source and destination).

use anyhow::{Context, Result, bail};
use podnet_agent::policy::{drops, nft::DEFAULT_TABLE};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Packets denied by NetworkPolicies: counted per policy, and the most recent ones logged.
    Drops {
        /// One node (default: every node of the lab).
        node: Option<String>,
        /// How many logged packets to show per node.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only packets denied for this pod (`namespace/name`).
        #[arg(long)]
        pod: Option<String>,
        /// Output format: table (default) or json.
        #[arg(short = 'o', long, default_value = "table")]
        output: String,
    },
}

pub fn run(lab: &str, cmd: Command) -> Result<()> {
    match cmd {
        Command::Drops {
            node,
            limit,
            pod,
            output,
        } => drops_report(lab, node, limit, pod.as_deref(), &output),
    }
}

/// The table's per-policy counters, read inside the node's network namespace.
fn counters(lab: &str, node: &str) -> Result<Vec<drops::Counter>> {
    let path = podnet_lab::node_netns_path(lab, node);
    let ns = podnet_netns::NetNs::open(&path)
        .with_context(|| format!("open the network namespace of node {node}"))?;
    let out = ns
        .run(|| {
            std::process::Command::new(podnet_nft::nft_binary())
                .args(["-j", "list", "counters", "table", "inet", DEFAULT_TABLE])
                .output()
        })
        .with_context(|| format!("enter node {node}"))?
        .with_context(|| format!("run nft on node {node}"))?;
    if !out.status.success() {
        // No table yet: no policy has selected a pod of this node since its agent started.
        return Ok(Vec::new());
    }
    Ok(drops::counters(&String::from_utf8_lossy(&out.stdout)))
}

fn drops_report(
    lab: &str,
    node: Option<String>,
    limit: usize,
    pod: Option<&str>,
    output: &str,
) -> Result<()> {
    super::require_root("podnet policy drops")?;
    let Some(state) = podnet_lab::status(lab)? else {
        bail!(podnet_lab::Error::NotRunning(lab.to_string()))
    };
    let nodes: Vec<String> = match node {
        Some(n) => {
            if !state.plan.nodes.iter().any(|p| p.name == n) {
                bail!("no node {n} in lab {lab}");
            }
            vec![n]
        }
        None => state.plan.nodes.iter().map(|n| n.name.clone()).collect(),
    };
    let paths = podnet_lab::LabPaths::new(lab);
    let mut json_nodes = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let counters = counters(lab, n)?;
        let log = paths.node_dir(n).join(drops::LOG_FILE);
        let mut logged =
            drops::read(&log, usize::MAX).with_context(|| format!("read {}", log.display()))?;
        if let Some(p) = pod {
            logged.retain(|d| d.pod == p);
        }
        let skip = logged.len().saturating_sub(limit);
        let logged = logged.split_off(skip);
        match output {
            "table" => {
                if i > 0 {
                    println!();
                }
                print!("{}", drops::report(n, &counters, &logged));
            }
            "json" => json_nodes.push(serde_json::json!({
                "node": n,
                "counters": counters.iter().map(|c| serde_json::json!({
                    "policy": c.policy, "direction": c.direction, "packets": c.packets, "bytes": c.bytes,
                })).collect::<Vec<_>>(),
                "drops": logged,
            })),
            other => bail!("-o {other}: use table or json"),
        }
    }
    if output == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "nodes": json_nodes }))?
        );
    }
    Ok(())
}

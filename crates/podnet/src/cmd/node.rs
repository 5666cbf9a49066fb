//! `podnet node list` and `podnet node exec NODE -- CMD`.

use super::nodes_table;
use anyhow::{Result, bail};
use serde_json::json;

#[derive(clap::Subcommand)]
pub enum Command {
    /// List the nodes: name, underlay address, podCIDR.
    List {
        /// Output format: table (default) or json.
        #[arg(short = 'o', long, default_value = "table")]
        output: String,
    },
    /// Run a command on a node, as if logged in to it (`podnet node exec node1 -- ip route`).
    Exec {
        node: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
}

pub fn run(lab: &str, cmd: Command) -> Result<()> {
    match cmd {
        Command::List { output } => {
            let Some(state) = podnet_lab::status(lab)? else {
                bail!(podnet_lab::Error::NotRunning(lab.to_string()))
            };
            match output.as_str() {
                "table" | "wide" => print!("{}", nodes_table(&state)),
                "json" => {
                    let nodes: Vec<_> = state
                        .plan
                        .nodes
                        .iter()
                        .map(|n| {
                            json!({"name": n.name, "underlayIP": n.underlay_ip.to_string(), "podCIDR": n.pod_cidr.to_string(),
                                   "netns": podnet_lab::node_netns_path(lab, &n.name).display().to_string()})
                        })
                        .collect();
                    println!(
                        "{}",
                        serde_json::to_string_pretty(
                            &json!({"lab": lab, "mode": state.mode, "nodes": nodes})
                        )?
                    );
                }
                other => bail!("-o {other}: use table or json"),
            }
            Ok(())
        }
        Command::Exec { node, command } => {
            super::require_root("podnet node exec")?;
            let paths = podnet_lab::LabPaths::new(lab);
            Err(podnet_lab::exec::exec_in_node(&paths, &node, &command).into())
        }
    }
}

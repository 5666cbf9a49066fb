//! `podnet node list`, `podnet node exec NODE -- CMD`, and what runs on a node: `podnet node ps NODE`
//! (seed 004's `docker ps`) and `podnet node inspect NODE ID` (its `docker inspect`).

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
    /// List a node's pod sandboxes and containers: ID, pod, image, state, PID.
    Ps {
        node: String,
        /// Output format: table (default) or json.
        #[arg(short = 'o', long, default_value = "table")]
        output: String,
    },
    /// Show containers or sandboxes of a node (IDs or unique ID prefixes), as a JSON array the way
    /// `docker inspect` prints them: PID, the sandbox whose network it shares, mounts.
    Inspect {
        node: String,
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

fn runtime(lab: &str, node: &str) -> Result<podnet_runtime::Runtime> {
    let Some(state) = podnet_lab::status(lab)? else {
        bail!(podnet_lab::Error::NotRunning(lab.to_string()))
    };
    if !state.plan.nodes.iter().any(|n| n.name == node) {
        bail!("no node {node} in lab {lab}");
    }
    Ok(podnet_runtime::Runtime::new(
        podnet_lab::LabPaths::new(lab).runtime_config(node),
    )?)
}

fn short(id: &str) -> &str {
    &id[..id.len().min(13)]
}

fn ps(lab: &str, node: &str, output: &str) -> Result<()> {
    let rt = runtime(lab, node)?;
    let sandboxes = rt.list_sandboxes()?;
    let containers = rt.list_containers()?;
    if output == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"sandboxes": sandboxes, "containers": containers})
            )?
        );
        return Ok(());
    }
    if output != "table" {
        bail!("-o {output}: use table or json");
    }
    let mut rows = vec![["ID", "POD", "IMAGE / COMMAND", "STATE", "PID", "NAME"].map(String::from)];
    for s in &sandboxes {
        rows.push([
            short(&s.record.id).to_string(),
            format!("{}/{}", s.record.pod.namespace, s.record.pod.name),
            "(pause sandbox) /pause".to_string(),
            format!("{:?}", s.state),
            s.record.pause_pid.to_string(),
            format!("k8s_POD_{}_{}", s.record.pod.name, s.record.pod.namespace),
        ]);
    }
    for c in &containers {
        rows.push([
            short(c.id()).to_string(),
            format!("{}/{}", c.record.pod.namespace, c.record.pod.name),
            c.record.spec.image.clone(),
            format!("{:?}", c.state),
            c.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            format!(
                "k8s_{}_{}_{}_{}",
                c.name(),
                c.record.pod.name,
                c.record.pod.namespace,
                c.record.spec.attempt
            ),
        ]);
    }
    print!("{}", table(&rows));
    Ok(())
}

/// Columns as wide as their widest cell, two spaces apart (as docker and kubectl print them).
fn table(rows: &[[String; 6]]) -> String {
    let mut widths = [0usize; 6];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn inspect(lab: &str, node: &str, ids: &[String]) -> Result<()> {
    let rt = runtime(lab, node)?;
    let sandboxes = rt.list_sandboxes()?;
    let containers = rt.list_containers()?;
    // As docker inspect: what is found is printed, what is not is an error after it.
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for id in ids {
        match inspect_one(&sandboxes, &containers, node, id) {
            Ok(v) => found.push(v),
            Err(e) => missing.push(e.to_string()),
        }
    }
    println!("{}", serde_json::to_string_pretty(&found)?);
    if !missing.is_empty() {
        bail!("{}", missing.join("; "));
    }
    Ok(())
}

fn inspect_one(
    sandboxes: &[podnet_runtime::SandboxStatus],
    containers: &[podnet_runtime::ContainerStatus],
    node: &str,
    id: &str,
) -> Result<serde_json::Value> {
    let matching = containers.iter().filter(|c| c.id().starts_with(id)).count()
        + sandboxes
            .iter()
            .filter(|s| s.record.id.starts_with(id))
            .count();
    if matching > 1 {
        bail!("{id} is the start of several IDs on node {node}: give more of it");
    }
    if let Some(c) = containers.iter().find(|c| c.id().starts_with(id)) {
        let sb = sandboxes
            .iter()
            .find(|s| s.record.id == c.record.sandbox_id);
        let out = json!({
            "Id": c.id(),
            "Name": c.name(),
            "Pod": format!("{}/{}", c.record.pod.namespace, c.record.pod.name),
            "Image": c.record.spec.image,
            "State": {"Status": format!("{:?}", c.state), "Pid": c.pid, "ExitCode": c.exit.map(|e| e.exit_code)},
            "HostConfig": {
                // As docker shows a pod's container: it joins the sandbox's network.
                "NetworkMode": format!("container:{}", c.record.sandbox_id),
                "IpcMode": format!("container:{}", c.record.sandbox_id),
                "PidMode": sb.filter(|s| s.record.share_pid).map(|s| format!("container:{}", s.record.id)).unwrap_or_default(),
            },
            "Sandbox": sb.map(|s| json!({"Id": s.record.id, "PausePid": s.record.pause_pid, "NetNs": s.record.netns})),
            "Mounts": c.record.spec.mounts,
            "LogPath": c.record.spec.log_path,
        });
        return Ok(out);
    }
    if let Some(s) = sandboxes.iter().find(|s| s.record.id.starts_with(id)) {
        let out = json!({
            "Id": s.record.id,
            "Pod": format!("{}/{}", s.record.pod.namespace, s.record.pod.name),
            "State": {"Status": format!("{:?}", s.state), "Pid": s.record.pause_pid},
            "HostConfig": {"NetworkMode": if s.record.host_network { "host".to_string() } else { format!("netns:{}", s.record.netns.as_ref().map(|p| p.display().to_string()).unwrap_or_default()) }},
            "Containers": s.containers,
        });
        return Ok(out);
    }
    bail!("no container or sandbox {id} on node {node}")
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
        Command::Ps { node, output } => ps(lab, &node, &output),
        Command::Inspect { node, ids } => inspect(lab, &node, &ids),
        Command::Exec { node, command } => {
            super::require_root("podnet node exec")?;
            let paths = podnet_lab::LabPaths::new(lab);
            Err(podnet_lab::exec::exec_in_node(&paths, &node, &command).into())
        }
    }
}

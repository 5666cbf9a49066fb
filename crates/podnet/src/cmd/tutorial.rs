//! `podnet tutorial list` and `podnet tutorial run 000|...|all`: the seed tutorials walked through on
//! the running lab (see `crate::tutorial`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::tutorial::model::discover;
use crate::tutorial::{Runner, Walkthrough};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    /// The directory holding `seed-NNN/walkthrough.yaml` (default: the `examples/` of the podnet
    /// checkout this binary was built in).
    #[arg(long, global = true, env = "PODNET_EXAMPLES")]
    examples: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// List the walkthroughs.
    List,
    /// Walk through one tutorial (`000` ... `004`) or all of them in order, on the running lab.
    Run {
        /// A seed number, or `all`.
        id: String,
    },
}

pub fn run(lab: &str, args: Args) -> Result<()> {
    let examples = match args.examples {
        Some(dir) => dir,
        None => default_examples()?,
    };
    let found = discover(&examples).map_err(anyhow::Error::msg)?;
    if found.is_empty() {
        bail!(
            "no walkthroughs (seed-NNN/walkthrough.yaml) in {}",
            examples.display()
        );
    }
    match args.command {
        Command::List => {
            println!("{:<5} {:<6} {:<60} SEED", "ID", "NODES", "TITLE");
            for (_, w) in &found {
                println!("{:<5} {:<6} {:<60} {}", w.id, w.nodes, w.title, w.seed);
            }
            println!(
                "\nRun one with `podnet tutorial run ID`, or all in order with `podnet tutorial run all`."
            );
            Ok(())
        }
        Command::Run { id } => {
            let chosen: Vec<&(PathBuf, Walkthrough)> = found
                .iter()
                .filter(|(_, w)| id == "all" || w.id == id)
                .collect();
            if chosen.is_empty() {
                let ids: Vec<&str> = found.iter().map(|(_, w)| w.id.as_str()).collect();
                bail!(
                    "no walkthrough {id}: choose one of {} or all",
                    ids.join(", ")
                );
            }
            let nodes = lab_nodes(lab)?;
            let env = environment(lab)?;
            wait_for_nodes(&env)?;
            for (dir, w) in chosen {
                if nodes < w.nodes {
                    bail!(
                        "seed {} needs a lab of {} nodes; lab {lab} has {nodes} (podnet down && podnet up --nodes {})",
                        w.id,
                        w.nodes,
                        w.nodes
                    );
                }
                let state = tempfile::Builder::new()
                    .prefix("podnet-tutorial-")
                    .tempfile()
                    .context("create the walkthrough's shell state file")?;
                let runner = Runner::new(w, dir, state.path().to_path_buf(), lab, env.clone())
                    .with_context(|| format!("start walkthrough {}", w.id))?;
                runner.run().map_err(anyhow::Error::msg)?;
                println!();
            }
            Ok(())
        }
    }
}

/// `examples/` beside the checkout the binary runs from (`target/release/podnet` -> `examples/`),
/// else the one it was built from.
fn default_examples() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("find the podnet executable")?;
    let mut candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .map(|d| d.join("examples"))
        .collect();
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples"));
    candidates
        .into_iter()
        .find(|d| d.join("seed-000/walkthrough.yaml").is_file())
        .context("no examples/ directory with the walkthroughs found beside the podnet executable: give --examples DIR")
}

fn lab_nodes(lab: &str) -> Result<usize> {
    match podnet_lab::status(lab)? {
        Some(state) => Ok(state.plan.nodes.len()),
        None => bail!("lab {lab} is not running: start it with `podnet up --nodes 2`"),
    }
}

/// What the walkthrough's commands see: podnet itself, kubectl and helm on PATH, the lab's name.
fn environment(lab: &str) -> Result<Vec<(String, String)>> {
    let exe = std::env::current_exe().context("find the podnet executable")?;
    let mut path: Vec<PathBuf> = exe.parent().map(Path::to_path_buf).into_iter().collect();
    // scripts/setup.sh puts the real kubectl and helm in the checkout's .cache/tools.
    path.extend(
        exe.ancestors()
            .skip(1)
            .map(|d| d.join(".cache/tools"))
            .filter(|d| d.join("kubectl").is_file())
            .take(1),
    );
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let joined = std::env::join_paths(&path).context("build PATH for the walkthrough")?;
    for tool in ["kubectl", "helm", "jq", "curl", "nsenter"] {
        if !path.iter().any(|d| d.join(tool).is_file()) {
            bail!(
                "{tool} is not on PATH: run ./scripts/setup.sh (it installs the tools and puts kubectl and helm in .cache/tools)"
            );
        }
    }
    Ok(vec![
        ("PATH".into(), joined.to_string_lossy().into_owned()),
        ("PODNET_LAB".into(), lab.to_string()),
    ])
}

/// The lab's nodes register within seconds of `podnet up`; a walkthrough begins once they are Ready.
fn wait_for_nodes(env: &[(String, String)]) -> Result<()> {
    println!("waiting for the lab's nodes to be Ready...");
    let out = std::process::Command::new("kubectl")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args([
            "wait",
            "--for=condition=Ready",
            "nodes",
            "--all",
            "--timeout=120s",
        ])
        .output()
        .context("run kubectl wait for the lab's nodes")?;
    if !out.status.success() {
        bail!(
            "the lab's nodes are not Ready after 2 minutes: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

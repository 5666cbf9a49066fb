//! `podnet tutorial list` and `podnet tutorial run 000|...|all`: the seed tutorials walked through on
//! the running lab (see `crate::tutorial`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::tutorial::model::{discover, normalize_id};
use crate::tutorial::{Runner, Walkthrough, shell};

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
    /// Walk through one tutorial (`000` ... `004`, or `3`) or all of them in order, on the running lab.
    Run {
        /// A seed number, or `all`.
        id: String,
    },
}

/// The lab the walkthroughs are written for: the seeds' own addresses (nodes 10.100.0.2 and .3
/// behind a router at .1, podCIDRs of 10.244.0.0/16, Services in 10.96.0.0/16).
const UNDERLAY: &str = "10.100.0.0/24";
const CLUSTER_CIDR: &str = "10.244.0.0/16";
const SERVICE_CIDR: &str = "10.96.0.0/16";

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
            for (dir, w) in &found {
                match w {
                    Ok(w) => println!("{:<5} {:<6} {:<60} {}", w.id, w.nodes, w.title, w.seed),
                    Err(e) => println!("{:<5} {:<6} {e}", dir.display(), "-"),
                }
            }
            println!(
                "\nRun one with `podnet tutorial run ID`, or all in order with `podnet tutorial run all`."
            );
            Ok(())
        }
        Command::Run { id } => {
            let id = normalize_id(&id);
            let chosen = choose(&found, &id)?;
            super::require_root("podnet tutorial run")?;
            let state = lab_state(lab)?;
            let nodes = state.plan.nodes.len();
            let kubeconfig = tempfile::Builder::new()
                .prefix("podnet-tutorial-kubeconfig-")
                .tempfile()
                .context("create the walkthrough's kubeconfig")?;
            std::fs::write(
                kubeconfig.path(),
                super::kubeconfig::lab_kubeconfig(lab, None)?,
            )
            .context("write the walkthrough's kubeconfig")?;
            let env = environment(lab, kubeconfig.path())?;
            wait_for_the_cluster(&env, &state.plan.nodes[0].name)?;
            shell::stop_on_signals().context("handle Ctrl-C")?;
            let mut too_small = Vec::new();
            for (dir, w) in chosen {
                if nodes < w.nodes {
                    too_small.push(format!("{} needs {} nodes", w.id, w.nodes));
                    continue;
                }
                let state_file = tempfile::Builder::new()
                    .prefix("podnet-tutorial-")
                    .tempfile()
                    .context("create the walkthrough's shell state file")?;
                let runner = Runner::new(w, dir, state_file.path().to_path_buf(), lab, env.clone())
                    .with_context(|| format!("start walkthrough {}", w.id))?;
                runner.run().map_err(anyhow::Error::msg)?;
                println!();
            }
            if !too_small.is_empty() {
                bail!(
                    "lab {lab} has {nodes} node(s): {} (podnet down && podnet up --nodes 2)",
                    too_small.join(", ")
                );
            }
            Ok(())
        }
    }
}

/// The walkthroughs `id` names, each readable (a broken one is an error only when chosen).
fn choose<'a>(
    found: &'a [(PathBuf, Result<Walkthrough, String>)],
    id: &str,
) -> Result<Vec<(&'a PathBuf, &'a Walkthrough)>> {
    let mut chosen = Vec::new();
    for (dir, w) in found {
        let named = match w {
            Ok(w) => id == "all" || w.id == id,
            Err(_) => id == "all" || dir.ends_with(format!("seed-{id}")),
        };
        if named {
            match w {
                Ok(w) => chosen.push((dir, w)),
                Err(e) => bail!("{e}"),
            }
        }
    }
    if chosen.is_empty() {
        let ids: Vec<&str> = found
            .iter()
            .filter_map(|(_, w)| w.as_ref().ok().map(|w| w.id.as_str()))
            .collect();
        bail!(
            "no walkthrough {id}: choose one of {} or all",
            ids.join(", ")
        );
    }
    Ok(chosen)
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

/// The running lab, if it has the seeds' addresses.
fn lab_state(lab: &str) -> Result<podnet_lab::LabState> {
    let Some(state) = podnet_lab::status(lab)? else {
        bail!("lab {lab} is not running: start it with `podnet up --nodes 2`");
    };
    let spec = &state.plan.spec;
    if spec.underlay.to_string() != UNDERLAY
        || spec.cluster_cidr.to_string() != CLUSTER_CIDR
        || spec.node_prefix != 24
        || spec.service_cidr.to_string() != SERVICE_CIDR
    {
        bail!(
            "the walkthroughs follow the tutorials' addresses (underlay {UNDERLAY}, cluster {CLUSTER_CIDR} in /24s, Services {SERVICE_CIDR}); lab {lab} has {}, {} in /{}, {}: start one with the defaults",
            spec.underlay,
            spec.cluster_cidr,
            spec.node_prefix,
            spec.service_cidr
        );
    }
    Ok(state)
}

/// What the walkthrough's commands see: podnet itself, kubectl and helm on PATH, the lab's name and
/// a kubeconfig of the lab's own, so that kubectl and helm talk to this lab and nothing else.
fn environment(lab: &str, kubeconfig: &Path) -> Result<Vec<(String, String)>> {
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
        (
            "KUBECONFIG".into(),
            kubeconfig.to_string_lossy().into_owned(),
        ),
    ])
}

/// The lab's nodes register within seconds of `podnet up`, and the cluster DNS answers a few
/// seconds later: a walkthrough begins once both are there.
fn wait_for_the_cluster(env: &[(String, String)], node: &str) -> Result<()> {
    let run = |args: &[&str]| {
        std::process::Command::new(args[0])
            .args(&args[1..])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
    };
    println!("waiting for the lab's nodes to be Ready...");
    let out = run(&[
        "kubectl",
        "wait",
        "--for=condition=Ready",
        "nodes",
        "--all",
        "--timeout=120s",
    ])
    .context("run kubectl wait for the lab's nodes")?;
    if !out.status.success() {
        bail!(
            "the lab's nodes are not Ready: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    println!("waiting for the cluster DNS (kube-dns, 10.96.0.10) to answer...");
    let exe = std::env::current_exe().context("find the podnet executable")?;
    let exe = exe.to_string_lossy();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = run(&[
            &exe,
            "node",
            "exec",
            node,
            "--",
            "nslookup",
            "-timeout=2",
            "-retry=0",
            "kubernetes.default.svc.cluster.local",
            "10.96.0.10",
        ])
        .context("run nslookup on a node")?;
        if out.status.success() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the cluster DNS does not answer after 2 minutes (kubectl -n kube-system get pods): {}",
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

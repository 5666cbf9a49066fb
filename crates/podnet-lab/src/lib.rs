//! The lab: a multi-node Kubernetes network on one machine, with no Docker. Each node is a network
//! namespace (plus a UTS namespace) on an underlay segment behind a router; a simulated internet host
//! sits behind the router. Pods attach to their node with `podnet-cni`; nodes reach each other's pods by
//! a VXLAN overlay, host-gw routes or routes on the router, as the mode says.
//!
//! Nothing here touches the machine's own network namespace.

pub mod addons;
pub mod agents;
pub mod cniconf;
pub mod controlplane;
pub mod daemon;
pub mod dnsrelay;
mod error;
pub mod exec;
mod internet;
pub mod lbroutes;
pub mod mirror;
pub mod paths;
pub mod reconcile;
pub mod state;
pub mod teardown;
mod underlay;

pub use error::{Error, Result};
pub use paths::{DEFAULT_LAB, LabPaths};
pub use reconcile::Changes;
pub use state::LabState;

use error::{io, ns};
use podnet_netns::{NetNs, persist};
use podnet_types::lab::{Mode, Plan, PlanSpec};
use podnet_types::routing::{node_network, router_network};
use std::fs::{self, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What `podnet up` asks for.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub name: String,
    pub spec: PlanSpec,
    pub mode: Mode,
    /// The `podnet` executable, started again as the lab daemon.
    pub podnet_exe: PathBuf,
    /// The plugin the nodes' CNI configuration points at.
    pub podnet_cni: PathBuf,
    /// The API server's port on 127.0.0.1 (0: any free port; tests run labs side by side).
    pub api_port: u16,
    /// The kubeconfig to merge the lab's `podnet` context into (`None`: leave kubeconfigs alone).
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug)]
pub enum UpOutcome {
    Created {
        state: LabState,
        took: Duration,
    },
    /// A lab was already running. `repaired` lists what had to be put right (a mode switch that was
    /// interrupted, routes changed by hand); empty means nothing was changed.
    AlreadyRunning {
        state: LabState,
        repaired: Vec<String>,
    },
    /// A lab whose daemon had died (or was killed) was brought back without losing pods.
    Recovered {
        state: LabState,
        took: Duration,
    },
}

/// An exclusive lock on one lab, so two `podnet` commands never build or tear down at once.
struct LabLock {
    file: fs::File,
    path: PathBuf,
}

impl LabLock {
    /// Removes the lock file while still holding it (`podnet down` leaves no trace). Anyone waiting
    /// on the old file notices it was unlinked and retries on a fresh one (see [`lock`]).
    fn remove(self) {
        let _ = fs::remove_file(&self.path);
        for dir in [paths::RUN_ROOT, paths::DATA_ROOT] {
            let _ = fs::remove_dir(dir); // only if empty: other labs keep theirs
        }
        drop(self.file);
    }
}

fn lock(paths: &LabPaths) -> Result<LabLock> {
    let path = paths.lock_file();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        fs::create_dir_all(paths::RUN_ROOT).map_err(io(format!("create {}", paths::RUN_ROOT)))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(format!("open {}", path.display())))?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            // The holder before us may have removed the file: then this lock guards nothing.
            let same = match (file.metadata(), fs::metadata(&path)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if same {
                return Ok(LabLock { file, path });
            }
            continue;
        }
        if Instant::now() >= deadline {
            return Err(Error::Other(format!(
                "another podnet command holds {} (waited 60 s)",
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn namespaces_present(paths: &LabPaths, plan: &Plan) -> bool {
    let net = |n: String| persist::netns_path(&n).exists();
    net(paths.router_netns())
        && net(paths.internet_netns())
        && plan
            .nodes
            .iter()
            .all(|n| net(paths.node_netns(&n.name)) && paths.uts_file(&n.name).exists())
}

fn open(paths_name: String) -> Result<NetNs> {
    let path = persist::netns_path(&paths_name);
    NetNs::open(&path).map_err(ns(format!("open {}", path.display())))
}

/// Runs the reconciler on the router and every node for `mode`; returns what changed where.
pub fn reconcile_all(paths: &LabPaths, plan: &Plan, mode: Mode) -> Result<Vec<(String, Changes)>> {
    // One socket per namespace, kept across the three passes (see `reconcile`: each pass runs over
    // every namespace before the next begins).
    let router = open(paths.router_netns())?;
    let mut rnl = router.netlink().map_err(ns("open netlink in the router"))?;
    let router_want = router_network(mode, &plan.nodes);
    let mut nodes = Vec::new();
    for node in &plan.nodes {
        let nsn = open(paths.node_netns(&node.name))?;
        let nnl = nsn
            .netlink()
            .map_err(ns(format!("open netlink in {}", node.name)))?;
        let want = node_network(mode, node, &plan.nodes, plan.router_ip, plan.spec.mtu);
        nodes.push((node.name.clone(), nnl, want));
    }
    let mut out: Vec<(String, Changes)> = std::iter::once("router".to_string())
        .chain(plan.nodes.iter().map(|n| n.name.clone()))
        .map(|n| (n, Changes::default()))
        .collect();
    for phase in reconcile::Phase::ALL {
        out[0]
            .1
            .extend(reconcile::reconcile_router(&mut rnl, &router_want, phase)?);
        for (i, (name, nnl, want)) in nodes.iter_mut().enumerate() {
            let changes = reconcile::reconcile_node(nnl, want, phase)
                .map_err(|e| Error::Other(format!("{name}: {e}")))?;
            out[i + 1].1.extend(changes);
        }
    }
    Ok(out)
}

fn build(paths: &LabPaths, plan: &Plan, opts: &UpOptions) -> Result<LabState> {
    fs::create_dir_all(paths.run_dir())
        .map_err(io(format!("create {}", paths.run_dir().display())))?;
    let mut state = LabState {
        format: state::STATE_FORMAT,
        name: paths.name.clone(),
        plan: plan.clone(),
        mode: opts.mode,
        daemon_pid: None,
        api_port: opts.api_port,
        api_address: None,
        kubeconfig: None,
        pending_mode: None,
        mirror: None,
        complete: false,
        created: now(),
    };
    // Written first: a crash from here on leaves a recognisable, incomplete lab for the next up/down.
    state.save(paths)?;
    // The image mirror starts while the namespaces are built (found by its command line if this
    // `up` dies before recording it).
    let mirror = mirror::begin(paths)?;
    let router = underlay::build_router(paths, plan)?;
    underlay::build_internet(paths, plan, &router)?;
    let mut rnl = router.netlink().map_err(ns("open netlink in the router"))?;
    for node in &plan.nodes {
        underlay::build_node(paths, plan, node, &mut rnl)?;
        cniconf::write(paths, plan, opts.mode, node, &opts.podnet_cni)?;
    }
    reconcile_all(paths, plan, opts.mode)?;
    start_daemon(paths, &mut state, opts)?;
    state.mirror = Some(mirror.finish(paths)?);
    state.complete = true;
    state.save(paths)?;
    Ok(state)
}

/// Starts the daemon (API server included) and points the kubeconfig at it.
fn start_daemon(paths: &LabPaths, state: &mut LabState, opts: &UpOptions) -> Result<()> {
    // Saved first: the daemon reads the state (plan, API port) when it starts.
    state.save(paths)?;
    let ready = daemon::start(paths, &opts.podnet_exe)?;
    state.daemon_pid = Some(ready.pid);
    state.api_address = Some(ready.api.clone());
    if let Some(path) = &opts.kubeconfig {
        // Recorded before the file is touched: killed right after writing it, `down` still knows
        // where the lab's context went.
        state.kubeconfig = Some(path.clone());
        state.save(paths)?;
        let pki = controlplane::load_pki(paths, state)?;
        podnet_apiserver::kubeconfig::install(
            path,
            &format!("https://{}", ready.api),
            &pki.ca_cert_pem,
            &pki.token,
        )
        .map_err(|e| Error::Other(format!("add the lab to kubeconfig {}: {e}", path.display())))?;
    }
    Ok(())
}

/// Starts the lab's image mirror unless it runs, and records it; says whether it started one.
fn start_mirror(paths: &LabPaths, state: &mut LabState) -> Result<bool> {
    let (m, started) = mirror::ensure(paths, state.mirror.as_ref())?;
    state.mirror = Some(m);
    state.save(paths)?;
    Ok(started)
}

/// Pushes the built substitutes (`podnet image build-substitutes`) into the running lab's mirror:
/// only what the registry's shared storage lacks, so usually nothing. `None` when no substitutes
/// have been built on this machine.
pub fn publish_substitutes(
    name: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<Option<podnet_images::publish::Published>> {
    let state = status(name)?.ok_or_else(|| Error::NotRunning(name.to_string()))?;
    let Some(m) = state.mirror else {
        return Err(Error::Other(format!("lab {name} has no image mirror")));
    };
    let Some(layout) = mirror::substitutes_layout() else {
        return Ok(None);
    };
    podnet_images::publish::publish(&layout, &m.address, progress)
        .map(Some)
        .map_err(|e| {
            Error::Other(format!(
                "push the substitutes into the image mirror {}: {e}",
                m.address
            ))
        })
}

/// Removes the lab's `podnet` entries from the kubeconfig `up` wrote, if they still point at this lab
/// (another lab may have taken the name since).
fn remove_kubeconfig(state: &LabState, report: &mut teardown::Report) {
    let (Some(path), Some(api)) = (&state.kubeconfig, &state.api_address) else {
        return;
    };
    let ours = std::fs::read(path)
        .ok()
        .and_then(|b| podnet_apimachinery::yaml::from_slice(&b).ok())
        .and_then(|cfg| {
            cfg["clusters"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == podnet_apiserver::kubeconfig::NAME)
                .cloned()
        })
        .is_some_and(|c| c["cluster"]["server"] == format!("https://{api}").as_str());
    if !ours {
        return;
    }
    match podnet_apiserver::kubeconfig::remove(path) {
        Ok(()) => report
            .removed
            .push(format!("kubeconfig entries in {}", path.display())),
        Err(e) => report.errors.push(format!(
            "remove the lab from kubeconfig {}: {e}",
            path.display()
        )),
    }
}

/// `podnet up`: builds the lab, or says it is running, or recovers it after a crash.
pub fn up(opts: &UpOptions) -> Result<UpOutcome> {
    paths::check_name(&opts.name).map_err(Error::Invalid)?;
    let plan = Plan::new(opts.spec.clone())?;
    let paths = LabPaths::new(&opts.name);
    let _lock = lock(&paths)?;
    let started = Instant::now();

    if let Some(mut state) = LabState::load(&paths)?.filter(|s| s.complete)
        && namespaces_present(&paths, &state.plan)
    {
        if state
            .daemon_pid
            .is_some_and(|p| teardown::daemon_alive(p, &paths))
        {
            let mut repaired = converge(&paths, &mut state)?;
            if start_mirror(&paths, &mut state)? {
                let address = state.mirror.as_ref().map(|m| m.address.as_str());
                repaired.push(format!(
                    "restarted the image mirror on {}",
                    address.unwrap_or("?")
                ));
            }
            return Ok(UpOutcome::AlreadyRunning { state, repaired });
        }
        // The network is intact but the daemon is gone (killed, crashed): bring it back, keep pods.
        let mut report = teardown::Report::default();
        teardown::stop_daemons(&paths, &mut report);
        converge(&paths, &mut state)?;
        start_mirror(&paths, &mut state)?;
        start_daemon(&paths, &mut state, opts)?;
        state.save(&paths)?;
        return Ok(UpOutcome::Recovered {
            state,
            took: started.elapsed(),
        });
    }

    if teardown::leftovers(&paths) {
        let report = remove_everything(&paths);
        if !report.errors.is_empty() {
            return Err(Error::Other(format!(
                "clean up what a previous lab left: {}",
                report.errors.join("; ")
            )));
        }
    }
    match build(&paths, &plan, opts) {
        Ok(state) => Ok(UpOutcome::Created {
            state,
            took: started.elapsed(),
        }),
        Err(e) => {
            let report = remove_everything(&paths);
            let undo = if report.errors.is_empty() {
                String::new()
            } else {
                format!(" (cleanup: {})", report.errors.join("; "))
            };
            Err(Error::Other(format!("build lab {}: {e}{undo}", opts.name)))
        }
    }
}

/// `podnet down`: removes every trace of the lab. Works on broken and half-built labs too.
pub fn down(name: &str) -> Result<teardown::Report> {
    paths::check_name(name).map_err(Error::Invalid)?;
    let paths = LabPaths::new(name);
    let lock = lock(&paths)?;
    let report = remove_everything(&paths);
    if report.errors.is_empty() {
        lock.remove();
    }
    Ok(report)
}

/// Everything of a lab, the kubeconfig entries `up` wrote included (the lock is held by the caller).
fn remove_everything(paths: &LabPaths) -> teardown::Report {
    let mut kube = teardown::Report::default();
    if let Ok(Some(state)) = LabState::load(paths) {
        remove_kubeconfig(&state, &mut kube);
    }
    let mut report = teardown::teardown(paths);
    report.removed.extend(kube.removed);
    report.errors.extend(kube.errors);
    report
}

/// What `podnet mode` changed.
#[derive(Debug)]
pub struct ModeReport {
    pub from: Mode,
    pub to: Mode,
    pub changes: Vec<(String, Changes)>,
    pub pods_retuned: usize,
}

/// `podnet mode MODE`: switches a running lab's routing between nodes. Pods keep their addresses;
/// their MTU follows the new mode's encapsulation overhead.
pub fn set_mode(name: &str, mode: Mode) -> Result<ModeReport> {
    paths::check_name(name).map_err(Error::Invalid)?;
    let paths = LabPaths::new(name);
    // No lab, no lock file: asking must not leave traces.
    if status(name)?.is_none() {
        return Err(Error::NotRunning(name.to_string()));
    }
    let _lock = lock(&paths)?;
    let mut state = LabState::load(&paths)?
        .filter(|s| s.complete)
        .ok_or_else(|| Error::NotRunning(name.to_string()))?;
    switch(&paths, &mut state, mode)
}

/// Brings a running lab to its recorded mode: finishes a switch that was interrupted and repairs
/// routing that drifted. Returns what it had to change.
fn converge(paths: &LabPaths, state: &mut LabState) -> Result<Vec<String>> {
    let target = state.pending_mode.unwrap_or(state.mode);
    let report = switch(paths, state, target)?;
    let mut lines: Vec<String> = Vec::new();
    if report.from != report.to {
        lines.push(format!(
            "finished the interrupted switch from {} to {}",
            report.from, report.to
        ));
    }
    for (ns, changes) in &report.changes {
        lines.extend(changes.lines.iter().map(|l| format!("{ns}: {l}")));
    }
    Ok(lines)
}

/// The mode machinery (lock held by the caller): record the intent, retune MTUs in the safe order,
/// reconcile every namespace, rewrite the nodes' CNI configuration, record the result.
fn switch(paths: &LabPaths, state: &mut LabState, mode: Mode) -> Result<ModeReport> {
    let from = state.mode;
    state.pending_mode = Some(mode);
    state.save(paths)?;
    let plugin = cniconf::find_plugin()?;
    let mtu = state.plan.pod_mtu(mode);
    // A smaller MTU goes to the pods before the overlay starts carrying their traffic; a larger one
    // only after the path can carry it.
    let lowering = mtu < state.plan.pod_mtu(from);
    let mut pods_retuned = 0;
    let mut retune = |state: &LabState| -> Result<()> {
        for node in &state.plan.nodes {
            let nsn = open(paths.node_netns(&node.name))?;
            let mut nl = nsn
                .netlink()
                .map_err(ns(format!("open netlink in {}", node.name)))?;
            pods_retuned += reconcile::retune_pod_mtu(&mut nl, mtu)?;
        }
        Ok(())
    };
    if lowering {
        retune(state)?;
    }
    let changes = reconcile_all(paths, &state.plan, mode)?;
    if !lowering {
        retune(state)?;
    }
    for node in &state.plan.nodes {
        cniconf::write(paths, &state.plan, mode, node, &plugin)?;
    }
    state.mode = mode;
    state.pending_mode = None;
    state.save(paths)?;
    Ok(ModeReport {
        from,
        to: mode,
        changes,
        pods_retuned,
    })
}

/// The running lab's state, if there is one.
pub fn status(name: &str) -> Result<Option<LabState>> {
    paths::check_name(name).map_err(Error::Invalid)?;
    let paths = LabPaths::new(name);
    Ok(LabState::load(&paths)?.filter(|s| s.complete))
}

/// Path of a node's network namespace, for `CNI_NETNS`-style use by tests and tools.
pub fn node_netns_path(name: &str, node: &str) -> PathBuf {
    persist::netns_path(&LabPaths::new(name).node_netns(node))
}

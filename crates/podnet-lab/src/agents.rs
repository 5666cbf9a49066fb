//! The lab's node agents: one `podnet node-agent --node NAME` per node, inside the node's network and
//! UTS namespaces (so it reaches the API server over the underlay as a kubelet would), with its own
//! configuration, credentials and serving certificate under the node's directory. The lab daemon
//! starts them and restarts one that dies; `down` stops them.

use crate::error::{Error, Result, io};
use crate::paths::LabPaths;
use crate::state::LabState;
use nix::sched::{CloneFlags, setns};
use podnet_kubelet::config::AgentConfig;
use podnet_netns::persist;
use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The subcommand, as it shows in `ps`.
pub const AGENT_ARG: &str = "node-agent";
/// How an agent process says which lab it belongs to (its argv shows only the node).
pub const LAB_ENV: &str = "PODNET_LAB";

/// What the agent of `node` is given.
pub fn config(paths: &LabPaths, state: &LabState, node: &str) -> Result<AgentConfig> {
    let plan = state
        .plan
        .nodes
        .iter()
        .find(|n| n.name == node)
        .ok_or_else(|| Error::Invalid(format!("no node {node} in lab {}", paths.name)))?;
    let dir = paths.node_dir(node);
    let runtime = paths.runtime_config(node);
    let dns = cluster_dns_ip(state);
    Ok(AgentConfig {
        node: node.to_string(),
        internal_ip: plan.underlay_ip.to_string(),
        kubeconfig: dir.join("agent/kubeconfig"),
        state_dir: dir.clone(),
        cni_conf_dir: paths.cni_conf_dir(node),
        cni_bin_dirs: vec![paths.cni_bin_dir(node), PathBuf::from("/usr/lib/cni")],
        serving_cert: dir.join("agent/kubelet.crt"),
        serving_key: dir.join("agent/kubelet.key"),
        api_server_token_file: dir.join("agent/apiserver-token"),
        ca_cert: dir.join("agent/ca.crt"),
        cluster_dns: vec![dns],
        cluster_domain: "cluster.local".into(),
        resolv_conf: node_resolv_conf(paths, node),
        image_store: PathBuf::from(crate::paths::DATA_ROOT).join("images"),
        registry_hosts_dir: Some(paths.data_dir().join("hosts.d")),
        pull_netns: Some(machine_netns_path(paths)),
        cgroup_parent: runtime.cgroup_parent.clone(),
        runtime_dir: runtime
            .state_dir
            .parent()
            .expect("the runtime's state has a parent")
            .to_path_buf(),
    })
}

/// The cluster DNS's Service address: the tenth of the service network, as Kubernetes' tools choose it
/// (10.96.0.10 for the default network).
pub fn cluster_dns_ip(state: &LabState) -> String {
    state
        .plan
        .spec
        .service_cidr
        .hosts()
        .nth(9)
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "10.96.0.10".into())
}

/// The node's resolv.conf: the lab's DNS relay on the router (see `dnsrelay`), as a cloud VM's
/// names the provider's resolver.
pub fn node_resolv_conf(paths: &LabPaths, node: &str) -> PathBuf {
    paths.node_dir(node).join("resolv.conf")
}

/// Where the lab keeps a handle on the machine's network namespace: the agents' image pulls dial
/// from it (the nodes' own namespaces have no route out).
pub fn machine_netns_path(paths: &LabPaths) -> PathBuf {
    paths.ns_dir().join("machine.net")
}

/// Bind-mounts the calling process's network namespace (the machine's: the daemon runs there) to
/// [`machine_netns_path`], once. Removed with the lab's other namespace files by `down`.
pub fn pin_machine_netns(paths: &LabPaths) -> Result<()> {
    let path = machine_netns_path(paths);
    if podnet_netns::NetNs::open(&path).is_ok_and(|ns| {
        podnet_netns::NetNs::current()
            .and_then(|me| Ok(ns.id()? == me.id()?))
            .unwrap_or(false)
    }) {
        return Ok(());
    }
    std::fs::create_dir_all(paths.ns_dir())
        .map_err(io(format!("create {}", paths.ns_dir().display())))?;
    let _ = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH);
    File::create(&path).map_err(io(format!("create {}", path.display())))?;
    nix::mount::mount(
        Some("/proc/self/ns/net"),
        &path,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        Error::Other(format!(
            "pin the machine's network namespace at {}: {e}",
            path.display()
        ))
    })
}

/// Writes the agent's configuration, credentials and serving certificate (made once, kept).
pub fn prepare(paths: &LabPaths, state: &LabState, node: &str) -> Result<AgentConfig> {
    let cfg = config(paths, state, node)?;
    let dir = cfg.kubeconfig.parent().expect("has a parent").to_path_buf();
    std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
    let pki = crate::controlplane::load_pki(paths, state)?;
    let server = format!(
        "https://{}:{}",
        state.plan.router_ip,
        crate::controlplane::ROUTER_API_PORT
    );
    // The agent acts as the node (system:node:NAME), with a token minted afresh at every start.
    let creds = podnet_apiserver::auth::node_credentials(
        &pki,
        podnet_apiserver::auth::DEFAULT_ISSUER,
        node,
    )
    .map_err(|e| Error::Other(format!("mint the credentials of node {node}: {e}")))?;
    podnet_apiserver::kubeconfig::write_node(&cfg.kubeconfig, &server, &pki.ca_cert_pem, &creds)
        .map_err(|e| Error::Other(format!("write the kubeconfig of node {node}: {e}")))?;
    write_private(&cfg.api_server_token_file, pki.token.as_bytes())?;
    write_private(&cfg.ca_cert, pki.ca_cert_pem.as_bytes())?;
    if !cfg.serving_cert.exists() || !cfg.serving_key.exists() {
        let (cert, key) = podnet_apiserver::pki::issue(
            &pki.ca_key_pem,
            node,
            &[cfg.internal_ip.clone(), node.to_string()],
            true,
        )
        .map_err(|e| Error::Other(format!("issue the serving certificate of node {node}: {e}")))?;
        write_private(&cfg.serving_key, key.as_bytes())?;
        write_private(&cfg.serving_cert, cert.as_bytes())?;
    }
    let resolv = format!("nameserver {}\n", state.plan.router_ip);
    std::fs::write(&cfg.resolv_conf, resolv)
        .map_err(io(format!("write {}", cfg.resolv_conf.display())))?;
    let path = config_path(paths, node);
    cfg.save(&path).map_err(Error::Other)?;
    Ok(cfg)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(format!("write {}", tmp.display())))?;
    std::io::Write::write_all(&mut f, bytes).map_err(io(format!("write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("replace {}", path.display())))
}

pub fn config_path(paths: &LabPaths, node: &str) -> PathBuf {
    paths.node_dir(node).join("agent/config.json")
}

pub fn log_path(paths: &LabPaths, node: &str) -> PathBuf {
    paths.run_dir().join(format!("agent-{node}.log"))
}

/// Starts the agent of `node` inside the node's network and UTS namespaces, in its own session,
/// output appended to its log.
pub fn spawn(paths: &LabPaths, podnet_exe: &Path, node: &str, cluster_cidr: &str) -> Result<Child> {
    let net_path = persist::netns_path(&paths.node_netns(node));
    let net = File::open(&net_path).map_err(io(format!("open {}", net_path.display())))?;
    let uts = File::open(paths.uts_file(node))
        .map_err(io(format!("open {}", paths.uts_file(node).display())))?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(paths, node))
        .map_err(io(format!("open {}", log_path(paths, node).display())))?;
    let mut cmd = Command::new(podnet_exe);
    cmd.args([AGENT_ARG, "--node", node, "--config"])
        .arg(config_path(paths, node))
        .args(["--cluster-cidr", cluster_cidr])
        .env(LAB_ENV, &paths.name)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io("duplicate the agent log"))?)
        .stderr(log);
    // SAFETY: runs in the forked child before exec; only async-signal-safe syscalls.
    unsafe {
        cmd.pre_exec(move || {
            let sys = |e: nix::errno::Errno| std::io::Error::from_raw_os_error(e as i32);
            setns(net.as_fd(), CloneFlags::CLONE_NEWNET).map_err(sys)?;
            setns(uts.as_fd(), CloneFlags::CLONE_NEWUTS).map_err(sys)?;
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The daemon blocks SIGTERM and SIGINT to wait for them; a blocked mask survives exec,
            // and the agent must receive them to stop gracefully.
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            if libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(io(format!("start the node agent of {node}")))
}

/// The PIDs of this lab's agents (found by argv and environment, so also after a crash).
pub fn agent_pids(paths: &LabPaths) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    let want = format!("{LAB_ENV}={}", paths.name);
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if !args.iter().any(|a| *a == AGENT_ARG.as_bytes()) {
            continue;
        }
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|v| v == want.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// Stops this lab's agents: SIGTERM, then SIGKILL after a bound. Returns the errors, each named.
pub fn stop_all(paths: &LabPaths) -> Vec<String> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let mut errors = Vec::new();
    let pids = agent_pids(paths);
    for pid in &pids {
        if let Err(e) = kill(Pid::from_raw(*pid as i32), Signal::SIGTERM)
            && e != nix::errno::Errno::ESRCH
        {
            errors.push(format!("stop node agent (pid {pid}): {e}"));
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline && !agent_pids(paths).is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in agent_pids(paths) {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    errors
}

/// Keeps one agent per node running until `stop` is set: a dead agent is restarted after a pause
/// that grows to 10 s (a crash loop does not spin).
pub fn supervise(
    paths: LabPaths,
    podnet_exe: PathBuf,
    nodes: Vec<String>,
    cluster_cidr: String,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    nodes
        .into_iter()
        .map(|node| {
            let paths = paths.clone();
            let exe = podnet_exe.clone();
            let stop = stop.clone();
            let cluster_cidr = cluster_cidr.clone();
            std::thread::Builder::new()
                .name(format!("agent-{node}"))
                .spawn(move || {
                    let mut pause = Duration::from_millis(500);
                    while !stop.load(Ordering::SeqCst) {
                        let started = std::time::Instant::now();
                        match spawn(&paths, &exe, &node, &cluster_cidr) {
                            Ok(mut child) => loop {
                                if stop.load(Ordering::SeqCst) {
                                    return; // `down` or the daemon's shutdown stops the agents
                                }
                                match child.try_wait() {
                                    Ok(Some(status)) => {
                                        eprintln!("podnet lab daemon: node agent {node} exited ({status}); restarting");
                                        break;
                                    }
                                    Ok(None) => std::thread::sleep(Duration::from_millis(200)),
                                    Err(e) => {
                                        eprintln!("podnet lab daemon: wait for node agent {node}: {e}");
                                        break;
                                    }
                                }
                            },
                            Err(e) => eprintln!("podnet lab daemon: {e}"),
                        }
                        if started.elapsed() > Duration::from_secs(60) {
                            pause = Duration::from_millis(500);
                        }
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(Duration::from_secs(10));
                    }
                })
                .expect("spawn a supervisor thread")
        })
        .collect()
}

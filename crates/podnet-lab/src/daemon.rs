//! The lab daemon: one long-lived process per lab that runs the lab's services (today the internet
//! host's web server; the control plane and node agents join it). `podnet up` starts it detached and
//! waits until it reports ready; `podnet down` stops it.

use crate::error::{Error, Result, io, ns};
use crate::paths::LabPaths;
use crate::teardown::DAEMON_ARG;
use crate::{addons, agents, controlplane, dnsrelay, internet, lbroutes, state::LabState};
use podnet_netns::{NetNs, persist};
use podnet_types::lab::INTERNET_HOST_IP;
use std::fs::{self, OpenOptions};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `up` waits for the daemon to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// What the daemon reports when it is ready.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Ready {
    pub pid: u32,
    /// The API server's address on 127.0.0.1.
    pub api: String,
}

/// The daemon's body (blocking): what `podnet __lab-daemon --name <lab>` runs. It ends on SIGTERM or
/// SIGINT, after shutting the API server down cleanly.
pub fn run(name: &str) -> Result<()> {
    // Block the stop signals before any thread exists, so every thread inherits the mask and the main
    // thread alone receives them, with sigwait, below.
    let mut stop = nix::sys::signal::SigSet::empty();
    stop.add(nix::sys::signal::Signal::SIGTERM);
    stop.add(nix::sys::signal::Signal::SIGINT);
    stop.thread_block()
        .map_err(|e| Error::Other(format!("block stop signals: {e}")))?;

    let paths = LabPaths::new(name);
    let state = LabState::load(&paths)?.ok_or_else(|| Error::NotRunning(name.to_string()))?;
    let internet_path = persist::netns_path(&paths.internet_netns());
    let internet =
        NetNs::open(&internet_path).map_err(ns(format!("open {}", internet_path.display())))?;
    // The listening socket is made inside the internet namespace and served from any thread.
    let listener = internet
        .run(|| TcpListener::bind((INTERNET_HOST_IP, 80)))
        .map_err(ns("enter the internet namespace"))?
        .map_err(io(format!(
            "listen on {INTERNET_HOST_IP}:80 in the internet namespace"
        )))?;
    let http = std::thread::Builder::new()
        .name("internet-http".into())
        .spawn(move || internet::serve(listener))
        .map_err(io("start the internet web server"))?;
    drop(http); // serves until the process ends

    start_dns_relay(&paths, &state)?;

    let (api, api_addr) = controlplane::start(&paths, &state, state.api_port)?;
    controlplane::register_nodes(&api, &state)?;
    addons::install(&api, &addons::dns_objects(&state)?)?;

    // Node agents left by a daemon that died are replaced (they adopt their pods when they start).
    for e in agents::stop_all(&paths) {
        eprintln!("podnet lab daemon {name}: {e}");
    }
    let nodes: Vec<String> = state.plan.nodes.iter().map(|n| n.name.clone()).collect();
    agents::pin_machine_netns(&paths)?;
    for node in &nodes {
        agents::prepare(&paths, &state, node)?;
    }
    let exe = std::env::current_exe().map_err(io("find the podnet executable"))?;
    let stop_agents = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let supervisors = agents::supervise(
        paths.clone(),
        exe,
        nodes,
        state.plan.spec.cluster_cidr.to_string(),
        stop_agents.clone(),
    );
    // runs until the process ends (it looks at the stop flag only between passes)
    let _lb_routes = lbroutes::start(&paths, &state, api.api(), stop_agents.clone())?;
    let ready = Ready {
        pid: std::process::id(),
        api: api_addr.to_string(),
    };
    let tmp = paths.daemon_ready().with_extension("tmp");
    fs::write(&tmp, serde_json::to_vec(&ready).expect("serializes"))
        .map_err(io("write the ready file"))?;
    fs::rename(&tmp, paths.daemon_ready()).map_err(io("publish the ready file"))?;
    eprintln!(
        "podnet lab daemon {name}: ready (pid {}, API server on {api_addr})",
        ready.pid
    );

    let signal = stop
        .wait()
        .map_err(|e| Error::Other(format!("wait for a stop signal: {e}")))?;
    eprintln!("podnet lab daemon {name}: {signal:?}, stopping the node agents and the API server");
    stop_agents.store(true, std::sync::atomic::Ordering::SeqCst);
    for s in supervisors {
        let _ = s.join();
    }
    for e in agents::stop_all(&paths) {
        eprintln!("podnet lab daemon {name}: {e}");
    }
    api.shutdown();
    Ok(())
}

/// The lab's upstream resolver on the router's underlay address, port 53 (see [`dnsrelay`]).
fn start_dns_relay(paths: &LabPaths, state: &LabState) -> Result<()> {
    let upstreams = if state.plan.spec.upstream_dns.is_empty() {
        let text = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        dnsrelay::upstreams_from_resolv_conf(&text)
    } else {
        state.plan.spec.upstream_dns.clone()
    };
    let router_path = persist::netns_path(&paths.router_netns());
    let router =
        NetNs::open(&router_path).map_err(ns(format!("open {}", router_path.display())))?;
    let at = (state.plan.router_ip, 53);
    let (udp, tcp) = router
        .run(|| Ok::<_, std::io::Error>((std::net::UdpSocket::bind(at)?, TcpListener::bind(at)?)))
        .map_err(ns("enter the router"))?
        .map_err(io(format!(
            "listen on {}:53 in the router for the lab's DNS relay",
            state.plan.router_ip
        )))?;
    dnsrelay::serve(udp, tcp, upstreams).map_err(io("start the lab's DNS relay"))
}

/// Starts the daemon detached (its own session, output to the lab's log) and waits until it is ready.
pub fn start(paths: &LabPaths, podnet_exe: &Path) -> Result<Ready> {
    let _ = fs::remove_file(paths.daemon_ready());
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(paths.daemon_log())
        .map_err(io(format!("open {}", paths.daemon_log().display())))?;
    let mut cmd = Command::new(podnet_exe);
    cmd.args([DAEMON_ARG, "--name", &paths.name])
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io("duplicate the log file"))?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the daemon leaves the caller's session and terminal.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(io(format!("start {} {DAEMON_ARG}", podnet_exe.display())))?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(bytes) = fs::read(paths.daemon_ready()) {
            return serde_json::from_slice(&bytes)
                .map_err(|e| Error::Other(format!("read the daemon's ready file: {e}")));
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = fs::read_to_string(paths.daemon_log()).unwrap_or_default();
            let last = log.lines().last().unwrap_or("no output");
            return Err(Error::Other(format!(
                "the lab daemon exited ({status}) before it was ready: {last}"
            )));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            return Err(Error::Other(format!(
                "the lab daemon was not ready within {READY_TIMEOUT:?}; see {}",
                paths.daemon_log().display()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

//! The lab daemon: one long-lived process per lab that runs the lab's services (today the internet
//! host's web server; the control plane and node agents join it). `podnet up` starts it detached and
//! waits until it reports ready; `podnet down` stops it.

use crate::error::{Error, Result, io, ns};
use crate::paths::LabPaths;
use crate::teardown::DAEMON_ARG;
use crate::{internet, state::LabState};
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

/// The daemon's body (blocking): what `podnet __lab-daemon --name <lab>` runs.
pub fn run(name: &str) -> Result<()> {
    let paths = LabPaths::new(name);
    LabState::load(&paths)?.ok_or_else(|| Error::NotRunning(name.to_string()))?;
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
    fs::write(paths.daemon_ready(), std::process::id().to_string())
        .map_err(io("write the ready file"))?;
    eprintln!(
        "podnet lab daemon {name}: ready (pid {})",
        std::process::id()
    );
    let _ = http.join();
    Ok(())
}

/// Starts the daemon detached (its own session, output to the lab's log) and waits until it is ready.
pub fn start(paths: &LabPaths, podnet_exe: &Path) -> Result<u32> {
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
        if paths.daemon_ready().exists() {
            return Ok(child.id());
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

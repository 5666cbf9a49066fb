//! The lab's image mirror: a real OCI registry (Debian's `docker-registry`, CNCF distribution 2.8)
//! on 127.0.0.1 in the machine's namespace, holding the substitutes for the tutorials' images, and
//! containerd-style `hosts.toml` files that make it the fallback for docker.io, registry.k8s.io and
//! k8s.gcr.io.
//!
//! - One registry process per lab (`docker-registry serve /run/podnet/<lab>/registry.yml`: the
//!   config path names the lab, which is how `down` finds it, also after a crash), on a free port
//!   kept across restarts; `up` restarts it when it died.
//! - One storage for every lab on the machine ([`STORAGE`]): substitutes are pushed once per build,
//!   whichever lab comes up first; registries of several labs read the same blobs.
//! - `/var/lib/podnet/<lab>/hosts.d/<registry>/hosts.toml` lists the upstream first and the mirror
//!   second: where the upstream answers, real images are pulled; where it does not (these
//!   machines: its name does not even resolve), the substitute is. The mirror keeps each upstream's
//!   images under its own namespace (`/v2/docker.io/library/nginx/...`), reached with containerd's
//!   `override_path`.

use crate::error::{Error, Result, io};
use crate::paths::LabPaths;
use crate::teardown::{self, Report};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The registry's storage, shared by all labs. `_` keeps it apart from `/var/lib/podnet/<lab>`
/// (lab names start with a letter).
pub const STORAGE: &str = "/var/lib/podnet/_registry";
/// The registry program (Debian package `docker-registry`).
pub const REGISTRY_BIN: &str = "docker-registry";
/// How long `up` waits for the registry to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The registries the mirror stands in for: the name in image references and the upstream.
pub const MIRRORED: &[(&str, &str)] = &[
    ("docker.io", "https://registry-1.docker.io"),
    ("registry.k8s.io", "https://registry.k8s.io"),
    ("k8s.gcr.io", "https://k8s.gcr.io"),
];
/// podnet's own images (`localhost/podnet/pause:latest`) come only from the mirror.
pub const OWN_REGISTRY: &str = "localhost";

/// What the lab state records about its mirror.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MirrorState {
    /// `127.0.0.1:PORT`.
    pub address: String,
    pub pid: u32,
    /// The containerd-style hosts directory (`<dir>/<registry>/hosts.toml`).
    pub hosts_dir: PathBuf,
}

/// The `hosts.toml` for `registry` (one of [`MIRRORED`] or [`OWN_REGISTRY`]) with the mirror at
/// `address`.
pub fn hosts_toml(lab: &str, registry: &str, address: &str) -> String {
    let mirror = format!(
        "[host.\"http://{address}/v2/{registry}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n"
    );
    match MIRRORED.iter().find(|(name, _)| *name == registry) {
        Some((_, upstream)) => format!(
            "# Written by `podnet up` for lab {lab}: where {registry} images come from, in order.\n\
             # The upstream first: where this machine reaches it, the real images are pulled. Else\n\
             # the lab's mirror: podnet's substitutes, built from Debian packages and labelled\n\
             # io.podnet.image.substitute-for (never the upstream images). `server` is the upstream.\n\
             server = \"{upstream}\"\n\n\
             [host.\"{upstream}\"]\n  capabilities = [\"pull\", \"resolve\"]\n\n{mirror}"
        ),
        None => format!(
            "# Written by `podnet up` for lab {lab}: podnet's own images, served by the lab's mirror only.\n{mirror}"
        ),
    }
}

/// Writes the lab's hosts directory for a mirror at `address` (each file replaced atomically).
pub fn write_hosts(paths: &LabPaths, address: &str) -> Result<()> {
    let registries = MIRRORED
        .iter()
        .map(|(r, _)| *r)
        .chain(std::iter::once(OWN_REGISTRY));
    for registry in registries {
        let dir = paths.hosts_dir().join(registry);
        fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        let file = dir.join("hosts.toml");
        let tmp = dir.join(".hosts.toml.tmp");
        fs::write(&tmp, hosts_toml(&paths.name, registry, address))
            .and_then(|_| fs::rename(&tmp, &file))
            .map_err(io(format!("write {}", file.display())))?;
    }
    Ok(())
}

/// The registry's configuration for this lab.
pub fn config_yaml(address: &str, secret: &str) -> String {
    format!(
        "# podnet lab mirror (written by `podnet up`)\n\
         version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {STORAGE}\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: {address}\n  secret: {secret}\n"
    )
}

/// This lab's registry processes: `docker-registry serve <this lab's config>`.
pub fn registry_pids(paths: &LabPaths) -> Vec<u32> {
    let config = paths.registry_config().display().to_string();
    teardown::all_pids()
        .into_iter()
        .filter(|pid| {
            let args = teardown::cmdline(*pid);
            args.first()
                .is_some_and(|a| a.rsplit('/').next() == Some(REGISTRY_BIN))
                && args.contains(&config)
        })
        .collect()
}

/// Stops this lab's registry (SIGTERM, then SIGKILL).
pub fn stop(paths: &LabPaths, report: &mut Report) {
    let pids = registry_pids(paths);
    if pids.is_empty() {
        return;
    }
    let left = teardown::stop(&pids, libc::SIGTERM, Duration::from_secs(2));
    let left = teardown::stop(&left, libc::SIGKILL, Duration::from_secs(2));
    for pid in &pids {
        if left.contains(pid) {
            report
                .errors
                .push(format!("image mirror (registry) {pid} did not stop"));
        } else {
            report.removed.push(format!("image mirror {pid}"));
        }
    }
}

/// Whether the registry at `address` answers the distribution API's base endpoint.
pub fn answers(address: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(address) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        s,
        "GET /v2/ HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut status = String::new();
    BufReader::new(s).read_line(&mut status).is_ok()
        && status.split_whitespace().nth(1) == Some("200")
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io("find a free port on 127.0.0.1"))?;
    Ok(l.local_addr().map_err(io("find a free port"))?.port())
}

fn secret() -> String {
    let mut bytes = [0u8; 16];
    let _ = fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A registry process started but not yet known to answer.
pub struct Starting {
    child: std::process::Child,
    address: String,
}

/// Starts the registry on `port` and waits until it answers.
fn start(paths: &LabPaths, port: u16) -> Result<MirrorState> {
    spawn(paths, port)?.wait(paths)
}

/// Starts a fresh lab's registry on a free port without waiting for it, so it comes up while the
/// lab's namespaces are built; [`Starting::wait`] then waits for it and writes the hosts files.
pub fn begin(paths: &LabPaths) -> Result<Starting> {
    spawn(paths, free_port()?)
}

fn spawn(paths: &LabPaths, port: u16) -> Result<Starting> {
    let address = format!("127.0.0.1:{port}");
    fs::create_dir_all(STORAGE).map_err(io(format!("create {STORAGE}")))?;
    let config = paths.registry_config();
    fs::write(&config, config_yaml(&address, &secret()))
        .map_err(io(format!("write {}", config.display())))?;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(paths.registry_log())
        .map_err(io(format!("open {}", paths.registry_log().display())))?;
    let mut cmd = Command::new(REGISTRY_BIN);
    cmd.arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io("duplicate the log file"))?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the registry leaves the caller's session and terminal.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| {
        Error::Other(format!(
            "start the image mirror ({REGISTRY_BIN} serve {}): {e} (scripts/setup.sh installs Debian's docker-registry)",
            config.display()
        ))
    })?;
    Ok(Starting { child, address })
}

impl Starting {
    /// Waits until the registry answers.
    fn wait(self, paths: &LabPaths) -> Result<MirrorState> {
        let Starting { mut child, address } = self;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if answers(&address) {
                return Ok(MirrorState {
                    address,
                    pid: child.id(),
                    hosts_dir: paths.hosts_dir(),
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                let text = fs::read_to_string(paths.registry_log()).unwrap_or_default();
                return Err(Error::Other(format!(
                    "the image mirror exited ({status}) before it answered on {address}: {}",
                    text.lines().last().unwrap_or("no output")
                )));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                return Err(Error::Other(format!(
                    "the image mirror did not answer on {address} within {READY_TIMEOUT:?}; see {}",
                    paths.registry_log().display()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the registry answers, then points the lab's hosts files at it.
    pub fn finish(self, paths: &LabPaths) -> Result<MirrorState> {
        let state = self.wait(paths)?;
        write_hosts(paths, &state.address)?;
        Ok(state)
    }
}

/// Makes sure the lab's mirror runs and its hosts files point at it: nothing to do when the
/// recorded registry answers; otherwise any stale process is stopped and a new one started (on the
/// recorded port when it is free, so the hosts files stay right). Returns the state and whether it
/// had to start one.
pub fn ensure(paths: &LabPaths, recorded: Option<&MirrorState>) -> Result<(MirrorState, bool)> {
    if let Some(m) = recorded
        && registry_pids(paths).contains(&m.pid)
        && answers(&m.address)
    {
        if !paths.hosts_dir().join("docker.io/hosts.toml").exists() {
            write_hosts(paths, &m.address)?;
        }
        return Ok((m.clone(), false));
    }
    let mut report = Report::default();
    stop(paths, &mut report);
    if !report.errors.is_empty() {
        return Err(Error::Other(report.errors.join("; ")));
    }
    let previous = recorded
        .and_then(|m| m.address.rsplit(':').next()?.parse::<u16>().ok())
        .filter(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok());
    let state = match previous {
        Some(port) => match start(paths, port) {
            Ok(s) => s,
            // Taken between the check and the start: any free port will do.
            Err(_) => start(paths, free_port()?)?,
        },
        None => start(paths, free_port()?)?,
    };
    write_hosts(paths, &state.address)?;
    Ok((state, true))
}

/// The substitutes' layout `podnet up` pushes from, if one has been built.
pub fn substitutes_layout() -> Option<PathBuf> {
    let dir = Path::new(podnet_images::DEFAULT_OUT_DIR);
    dir.join("index.json").exists().then(|| dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_first_then_the_mirror_under_its_namespace() {
        let t = hosts_toml("pn", "docker.io", "127.0.0.1:40000");
        let server = t.find("server = \"https://registry-1.docker.io\"").unwrap();
        let upstream = t.find("[host.\"https://registry-1.docker.io\"]").unwrap();
        let mirror = t
            .find("[host.\"http://127.0.0.1:40000/v2/docker.io\"]")
            .unwrap();
        assert!(server < upstream && upstream < mirror, "{t}");
        assert!(t[mirror..].contains("capabilities = [\"pull\", \"resolve\"]"));
        assert!(t[mirror..].contains("override_path = true"));
        let k8s = hosts_toml("pn", "k8s.gcr.io", "127.0.0.1:40000");
        assert!(k8s.contains("server = \"https://k8s.gcr.io\""));
        assert!(k8s.contains("[host.\"http://127.0.0.1:40000/v2/k8s.gcr.io\"]"));
        let own = hosts_toml("pn", "localhost", "127.0.0.1:40000");
        assert!(!own.contains("server ="));
        assert!(own.contains("[host.\"http://127.0.0.1:40000/v2/localhost\"]"));
    }

    #[test]
    fn the_config_names_the_shared_storage_and_the_address() {
        let c = config_yaml("127.0.0.1:40000", "abc");
        assert!(c.contains("rootdirectory: /var/lib/podnet/_registry\n"));
        assert!(c.contains("addr: 127.0.0.1:40000\n"));
        assert!(c.contains("secret: abc\n"));
    }
}

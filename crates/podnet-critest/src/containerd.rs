//! One containerd (with its CRI plugin) per test, confined to a test network namespace and a `pnt-`
//! directory: its own root, state, gRPC/ttrpc sockets, runc root, CNI bin and conf directories, and a
//! `pnt-` cgroup parent for its pods. The settings that made containerd 1.6 work on these machines
//! (`restrict_oom_score_adj`, cgroupfs instead of systemd, netns mounts under the state directory) are
//! the ones found in the runtime lab.
//!
//! Dropping the guard removes everything, also after a failed test: the containers (through runc and
//! this instance's runc root), the shims serving this instance, containerd itself, every mount under
//! the directory, the directory, the CNI results containerd caches outside it and the cgroups.

use podnet_testkit::TestNs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Kubernetes namespace of containerd that CRI uses.
pub const CRI_NAMESPACE: &str = "k8s.io";

/// What the instance runs: its CNI network and plugins, and the sandbox image.
pub struct Settings<'a> {
    /// The network configuration list (JSON) put in the CNI conf directory.
    pub conflist: &'a str,
    /// The network's name in `conflist` (containerd caches results under it in /var/lib/cni).
    pub network: &'a str,
    /// Plugin binaries copied into the CNI bin directory, as (name, source path).
    pub plugins: &'a [(&'a str, &'a Path)],
    pub sandbox_image: &'a str,
}

/// A running containerd; see the module docs.
pub struct Containerd {
    pub dir: PathBuf,
    pub socket: PathBuf,
    /// The cgroup parent pods of this instance must use (cgroupfs path).
    pub cgroup_parent: String,
    network: String,
    child: Option<Child>,
}

fn ctx(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn config(dir: &Path, sandbox_image: &str) -> String {
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{d}/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{sandbox_image}"
    # No CAP_SYS_RESOURCE here: containers may not get a lower OOM score than containerd's.
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false
    disable_apparmor = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = "{d}/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "{d}/cni/bin"
      conf_dir = "{d}/cni/net.d"
      max_conf_num = 1
"#
    )
}

/// Whether Debian's containerd (and its runc shim) is installed.
pub fn available() -> bool {
    Command::new("containerd")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        && Path::new("/usr/bin/containerd-shim-runc-v2").exists()
}

impl Containerd {
    /// Starts containerd inside `node` and waits (bounded) for its socket.
    pub fn start(node: &TestNs, s: &Settings<'_>) -> io::Result<Containerd> {
        let dir = std::env::temp_dir().join(podnet_testkit::unique_name("ctd"));
        let mut c = Containerd {
            socket: dir.join("containerd.sock"),
            cgroup_parent: format!("/{}", podnet_testkit::unique_name("cri")),
            network: s.network.to_string(),
            dir,
            child: None,
        };
        // From here on, Drop cleans up whatever start managed to create.
        for sub in ["cni/bin", "cni/net.d", "logs"] {
            std::fs::create_dir_all(c.dir.join(sub)).map_err(ctx(format!("create {sub}")))?;
        }
        for (name, src) in s.plugins {
            std::fs::copy(src, c.dir.join("cni/bin").join(name))
                .map_err(ctx(format!("copy CNI plugin {}", src.display())))?;
        }
        std::fs::write(
            c.dir.join("cni/net.d/10-pnt.conflist"),
            s.conflist.as_bytes(),
        )
        .map_err(ctx("write the conflist"))?;
        let conf = c.dir.join("containerd.toml");
        std::fs::write(&conf, config(&c.dir, s.sandbox_image))
            .map_err(ctx("write containerd.toml"))?;
        let log = std::fs::File::create(c.log_path()).map_err(ctx("create containerd.log"))?;
        let child = node
            .command("containerd")
            .arg("--config")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(ctx("start containerd"))?;
        c.child = Some(child);

        let deadline = Instant::now() + Duration::from_secs(20);
        while !c.socket.exists() {
            if let Some(status) = c.child.as_mut().and_then(|ch| ch.try_wait().ok().flatten()) {
                return Err(io::Error::other(format!(
                    "containerd exited ({status}) before serving:\n{}",
                    c.log()
                )));
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "containerd did not create {} within 20 s:\n{}",
                    c.socket.display(),
                    c.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(c)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("containerd.log")
    }

    /// containerd's log so far (plugin stderr lands here too).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Where CRI container logs go (a sandbox's `log_directory`).
    pub fn log_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// Imports a docker-archive or OCI tar into the CRI namespace (unpacked for overlayfs).
    pub fn import(&self, archive: &Path) -> io::Result<()> {
        let out = Command::new("ctr")
            .arg("-a")
            .arg(&self.socket)
            .args(["-n", CRI_NAMESPACE, "images", "import"])
            .arg(archive)
            .output()
            .map_err(ctx("run ctr images import"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "ctr images import {}: {}",
                archive.display(),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// IDs of the containers (sandboxes included) runc knows in this instance's runc root.
    fn runc_ids(&self) -> Vec<String> {
        let root = self.dir.join("runc").join(CRI_NAMESPACE);
        let Ok(out) = Command::new("runc")
            .arg("--root")
            .arg(&root)
            .args(["list", "-q"])
            .output()
        else {
            return Vec::new();
        };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// PIDs of the shims serving this instance (their command line names its socket).
    fn shim_pids(&self) -> Vec<i32> {
        let needle = self.socket.display().to_string();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        procs
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                args.first()
                    .is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"))
                    && args.contains(&needle.as_bytes())
            })
            .collect()
    }

    /// Mount points under the instance's directory, deepest first.
    fn mounts(&self) -> Vec<PathBuf> {
        let dir = self.dir.display().to_string();
        let inside = format!("{dir}/");
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<PathBuf> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| *p == dir || p.starts_with(&inside))
            .map(PathBuf::from)
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        points
    }
}

fn remove_cgroup_tree(path: &Path) {
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(path);
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let runc_root = self.dir.join("runc").join(CRI_NAMESPACE);
        let ids = self.runc_ids();
        for id in &ids {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(&runc_root)
                .args(["delete", "-f", id])
                .output();
        }
        for pid in self.shim_pids() {
            // SAFETY: kill has no memory effects; the pid was just read as one of this instance's shims.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if let Some(mut child) = self.child.take() {
            // SAFETY: as above; the pid is our own child's.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for point in self.mounts() {
            if let Ok(c) = std::ffi::CString::new(point.display().to_string()) {
                // SAFETY: a valid C string; MNT_DETACH only unhooks the mount.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
        if std::env::var_os("PNT_KEEP_CONTAINERD").is_some() {
            eprintln!("keeping {} (PNT_KEEP_CONTAINERD)", self.dir.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("warning: remove {}: {e}", self.dir.display());
        }
        // go-cni caches each attachment's result outside containerd's directories: this network's, and
        // the loopback network's of every sandbox that was still there (a DEL that ran removed its own).
        if let Ok(entries) = std::fs::read_dir("/var/lib/cni/results") {
            let prefix = format!("{}-", self.network);
            let loopback: Vec<String> =
                ids.iter().map(|id| format!("cni-loopback-{id}-")).collect();
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix) || loopback.iter().any(|l| name.starts_with(l)) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        if let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") {
            let parent = self.cgroup_parent.trim_start_matches('/');
            for c in controllers.flatten() {
                remove_cgroup_tree(&c.path().join(parent));
            }
        }
    }
}

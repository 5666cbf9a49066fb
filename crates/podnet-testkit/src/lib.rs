//! Helpers for podnet's root tests: namespaces that clean up after themselves (also when a test
//! fails), commands run inside them, and links between them.
//!
//! Rules these helpers enforce: everything lives in namespaces the test created, named with a unique
//! `pnt-` prefix; nothing touches the machine's own network namespace.

use ipnet::IpNet;
use podnet_netlink::{Netlink, VethSpec};
use podnet_netns::NetNs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Fails the test with a clear message unless it runs as root (root tests must not silently pass).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (it creates network namespaces); run the suite as root, as CI does"
    );
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique name for a test object: `pnt-<pid>-<n>-<tag>`.
pub fn unique_name(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("pnt-{}-{n}-{tag}", std::process::id())
}

/// A network namespace that exists for the life of the value.
pub struct TestNs {
    name: String,
    ns: NetNs,
}

impl TestNs {
    pub fn new(tag: &str) -> TestNs {
        require_root();
        let name = unique_name(tag);
        let ns = NetNs::create_named(&name)
            .unwrap_or_else(|e| panic!("create test namespace {name}: {e}"));
        TestNs { name, ns }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        self.ns.path().to_path_buf()
    }

    pub fn ns(&self) -> &NetNs {
        &self.ns
    }

    /// A command that will run inside this namespace (entered in the child just before exec).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        let fd = self.ns.fd();
        // SAFETY: setns is async-signal-safe; the fd stays open in the parent for the child's lifetime
        // up to exec (we hold `self`).
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Runs a command inside and returns its output; panics with stderr if it fails.
    pub fn sh(&self, program: &str, args: &[&str]) -> String {
        let out = self.try_sh(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} in {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn try_sh(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"))
    }

    /// Runs `f` inside the namespace on a dedicated thread.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.ns
            .run(f)
            .unwrap_or_else(|e| panic!("run inside {}: {e}", self.name))
    }

    pub fn netlink(&self) -> Netlink {
        self.ns
            .netlink()
            .unwrap_or_else(|e| panic!("netlink in {}: {e}", self.name))
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        if let Err(e) = NetNs::delete_named(&self.name) {
            eprintln!(
                "warning: could not delete test namespace {}: {e}",
                self.name
            );
        }
    }
}

/// A command that will run inside the network namespace at `path` (any namespace file, e.g. a lab
/// node's `/run/netns/<lab>-node1`).
pub fn command_in(path: &std::path::Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let ns = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("open namespace {}: {e}", path.display()));
    let mut cmd = Command::new(program);
    // SAFETY: setns is async-signal-safe; `ns` is moved into the closure and outlives the fork.
    unsafe {
        cmd.pre_exec(move || {
            use std::os::fd::AsRawFd;
            if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// A CNI plugin invocation as a runtime makes it: run inside the node's network namespace (`node_ns`),
/// parameters in `CNI_*` variables; the caller writes the configuration to its stdin.
pub fn cni_command(
    node_ns: &std::path::Path,
    plugin: &std::path::Path,
    command: &str,
    container: &str,
    pod_ns: &std::path::Path,
    ifname: &str,
) -> Command {
    let mut cmd = command_in(node_ns, plugin);
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container)
        .env("CNI_NETNS", pod_ns)
        .env("CNI_IFNAME", ifname)
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    cmd
}

/// Runs [`cni_command`] to completion with `config` on stdin.
pub fn run_cni(mut cmd: Command, config: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd.spawn().expect("run the CNI plugin");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(config)
        .expect("write the CNI configuration");
    child.wait_with_output().expect("wait for the CNI plugin")
}

/// Joins two namespaces with a veth pair (`a_if` in `a`, `b_if` in `b`), addresses them and brings
/// both ends up.
pub fn link(a: &TestNs, a_if: &str, a_addr: IpNet, b: &TestNs, b_if: &str, b_addr: IpNet) {
    let mut nl = a.netlink();
    let b_fd = b.ns().fd();
    nl.create_veth(&VethSpec {
        name: a_if,
        peer_name: b_if,
        peer_netns_fd: Some(b_fd),
        up: true,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("create veth {a_if}/{b_if}: {e}"));
    let ai = nl.link_by_name(a_if).unwrap().expect("a end").index;
    nl.add_address(ai, a_addr, true).unwrap();
    let mut nlb = b.netlink();
    let bi = nlb.link_by_name(b_if).unwrap().expect("b end").index;
    nlb.add_address(bi, b_addr, true).unwrap();
    nlb.set_link_up(bi, true).unwrap();
}

/// Keeps `dir` (a data directory) removed when the test ends.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique_name(tag));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

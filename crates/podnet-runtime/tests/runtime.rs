//! Root tests of the pod runtime against real runc, in namespaces, directories and cgroups named
//! `pnt-...` that a `Drop` guard removes, also when a test fails. The container image is a root
//! filesystem made from busybox-static.

use podnet_runtime::crilog::{self, LogOptions};
use podnet_runtime::{
    ContainerSpec, ContainerState, EtcFiles, ExecSpec, PodRef, Resources, Runtime, RuntimeConfig,
    SandboxRecord, SandboxSpec, SandboxState, cgroups, etc, proc,
};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(20);

/// One "node": its own state, netns dir, runc root and cgroup parent, removed on drop.
struct Node {
    rt: Runtime,
    base: PathBuf,
    rootfs: PathBuf,
}

fn pause_binary() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_podnet-shim")).with_file_name("podnet-pause");
    assert!(
        p.is_file(),
        "{} is missing: build it first (cargo build -p podnet-pause)",
        p.display()
    );
    p
}

fn config(base: &Path, tag: &str) -> RuntimeConfig {
    RuntimeConfig {
        state_dir: base.join("state"),
        netns_dir: base.join("netns"),
        runc_root: base.join("runc"),
        cgroup_parent: format!("/{tag}"),
        runc: "runc".into(),
        pause: pause_binary(),
        shim: env!("CARGO_BIN_EXE_podnet-shim").into(),
    }
}

/// A root filesystem with busybox and its applets as relative symlinks, and a page to serve.
fn busybox_rootfs(dir: &Path) {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox-static is installed");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for name in String::from_utf8(list.stdout).unwrap().lines() {
        if name != "busybox" {
            let _ = symlink("busybox", bin.join(name));
        }
    }
    for d in ["etc", "tmp", "proc", "sys", "dev", "www"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    fs::write(dir.join("www/index.html"), "hello from c1\n").unwrap();
}

impl Node {
    fn new(tag: &str) -> Node {
        podnet_testkit::require_root();
        let name = podnet_testkit::unique_name(tag);
        let base = PathBuf::from("/tmp").join(&name);
        fs::create_dir_all(&base).unwrap();
        let rootfs = base.join("rootfs");
        busybox_rootfs(&rootfs);
        let rt = Runtime::new(config(&base, &name)).unwrap();
        Node { rt, base, rootfs }
    }

    fn sandbox(&self, name: &str, share_pid: bool) -> SandboxRecord {
        let sb = self
            .rt
            .run_sandbox(&SandboxSpec {
                pod: PodRef {
                    namespace: "default".into(),
                    name: name.into(),
                    uid: format!("uid-{name}"),
                },
                attempt: 0,
                hostname: name.into(),
                host_network: false,
                share_pid,
                labels: Default::default(),
            })
            .unwrap();
        self.rt
            .set_etc_files(
                &sb.id,
                &EtcFiles {
                    hosts: etc::hosts(&["10.244.9.9".into()], name, None, &[]),
                    resolv_conf: etc::resolv_conf(&["10.96.0.10".into()], &[], &[]),
                },
            )
            .unwrap();
        sb
    }

    fn spec(&self, name: &str, args: &[&str]) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            attempt: 0,
            image: "busybox".into(),
            rootfs: self.rootfs.clone(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["GREETING=hi".into()],
            cwd: String::new(),
            user: Default::default(),
            security: Default::default(),
            resources: Default::default(),
            mounts: vec![],
            log_path: crilog::container_log_path(&self.base.join("logs"), name, 0),
            log_max_bytes: 0,
            log_max_files: 0,
            stdin: false,
            stdin_once: false,
            tty: false,
            pid_namespace: None,
            labels: Default::default(),
        }
    }

    fn run(&self, sb: &SandboxRecord, spec: &ContainerSpec) -> String {
        let id = self.rt.create_container(&sb.id, spec).unwrap();
        self.rt.start_container(&id).unwrap();
        id
    }

    fn log(&self, id: &str) -> String {
        let mut out = Vec::new();
        self.rt
            .read_logs(id, &LogOptions::default(), &mut out, &|| true)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    fn raw_log(&self, id: &str) -> String {
        let st = self.rt.container_status(id).unwrap();
        fs::read_to_string(&st.record.spec.log_path).unwrap_or_default()
    }

    /// Polls until `f` holds, at most [`BOUND`]; panics with `what` otherwise.
    fn wait(&self, what: &str, mut f: impl FnMut() -> bool) {
        let end = Instant::now() + BOUND;
        while !f() {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_exit(&self, id: &str) -> i32 {
        let mut code = None;
        self.wait(&format!("container {id} to exit"), || {
            let st = self.rt.container_status(id).unwrap();
            code = st.exit.map(|e| e.exit_code);
            code.is_some()
        });
        code.unwrap()
    }

    fn exec(&self, id: &str, args: &[&str]) -> (i32, String, String) {
        let mut p = self
            .rt
            .exec(
                id,
                &ExecSpec {
                    args: args.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                },
            )
            .unwrap();
        let mut out = String::new();
        let mut err = String::new();
        p.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        p.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        (p.wait().unwrap(), out, err)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Err(e) = self.rt.remove_all() {
            eprintln!("cleanup: {e}");
        }
        let _ = fs::remove_dir_all(&self.base);
    }
}

fn mounted(path: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = path.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(&*p))
}

/// Every CRI line has a nine-digit UTC time, a stream and a tag.
fn assert_cri(raw: &str) {
    for line in raw.lines() {
        let e = crilog::parse_line(line.as_bytes())
            .unwrap_or_else(|| panic!("not a CRI line: {line:?}"));
        assert_eq!(&line[..30], crilog::format_time(e.time_ns), "{line}");
    }
}

#[test]
fn two_containers_share_localhost_and_logs_are_cri() {
    let node = Node::new("rt-pod");
    let sb = node.sandbox("web-1", false);
    let netns = sb.netns.clone().unwrap();
    assert!(mounted(&netns), "netns file {} is a mount", netns.display());
    let st = node.rt.sandbox_status(&sb.id).unwrap();
    assert_eq!(st.state, SandboxState::Ready);

    let httpd = node.run(
        &sb,
        &node.spec("httpd", &["httpd", "-f", "-v", "-p", "80", "-h", "/www"]),
    );
    let client = node.run(
        &sb,
        &node.spec(
            "client",
            &[
                "sh",
                "-c",
                "for i in $(seq 1 100); do wget -q -O - http://localhost/ && echo done >&2 && exit 0; sleep 0.1; done; exit 1",
            ],
        ),
    );
    assert_eq!(
        node.wait_exit(&client),
        0,
        "client log: {}",
        node.raw_log(&client)
    );
    let raw = node.raw_log(&client);
    assert_cri(&raw);
    assert!(
        raw.lines().any(|l| l.ends_with(" stdout F hello from c1")),
        "{raw}"
    );
    assert!(raw.lines().any(|l| l.ends_with(" stderr F done")), "{raw}");
    assert_eq!(node.log(&client), "hello from c1\ndone\n");

    // The pod's files and hostname are what the sandbox set.
    let (code, out, _) = node.exec(&httpd, &["sh", "-c", "hostname; cat /etc/hostname; grep web-1 /etc/hosts; cat /etc/resolv.conf; echo $GREETING"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "web-1\nweb-1\n10.244.9.9\tweb-1\nnameserver 10.96.0.10\nhi\n"
    );

    // Exec with pipes: stdout, stderr, stdin, exit code.
    let (code, out, err) = node.exec(&httpd, &["sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!((code, out.as_str(), err.as_str()), (7, "out\n", "err\n"));
    let mut cat = node
        .rt
        .exec(
            &httpd,
            &ExecSpec {
                args: vec!["cat".into()],
                stdin: true,
                ..Default::default()
            },
        )
        .unwrap();
    cat.stdin
        .take()
        .unwrap()
        .write_all(b"through stdin\n")
        .unwrap();
    let mut out = String::new();
    cat.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert_eq!((cat.wait().unwrap(), out.as_str()), (0, "through stdin\n"));

    // A write to PID 1's stdout from an exec'd shell lands in the container's log (seed 000).
    let (code, _, _) = node.exec(&httpd, &["sh", "-c", "echo via-proc-1 > /proc/1/fd/1"]);
    assert_eq!(code, 0);
    node.wait("the write to /proc/1/fd/1 in the log", || {
        node.raw_log(&httpd).contains(" stdout F via-proc-1")
    });

    // Exit codes are recorded, also for a signal.
    let three = node.run(&sb, &node.spec("three", &["sh", "-c", "exit 3"]));
    assert_eq!(node.wait_exit(&three), 3);
    let st = node.rt.container_status(&three).unwrap();
    assert_eq!(st.state, ContainerState::Exited);
    assert!(st.exit.unwrap().finished_ns >= st.started_ns.unwrap());
    // httpd is PID 1 of its namespace with no SIGTERM handler, so SIGTERM does nothing and the
    // SIGKILL after the grace period ends it, as on a real node.
    node.rt
        .stop_container(&httpd, Duration::from_millis(300))
        .unwrap();
    let st = node.rt.container_status(&httpd).unwrap();
    assert_eq!(st.state, ContainerState::Exited);
    assert_eq!(
        st.exit.unwrap().exit_code,
        128 + 9,
        "httpd is killed after the grace period"
    );

    let listed = node.rt.list_containers().unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|c| c.record.sandbox_id == sb.id));
}

#[test]
fn shared_pid_namespace_shows_pause_and_signals_cross_containers() {
    let node = Node::new("rt-pid");
    let sb = node.sandbox("shared", true);
    let a = node.run(
        &sb,
        &node.spec(
            "a",
            &[
                "sh",
                "-c",
                "trap 'echo got-hup' HUP; echo ready; while true; do sleep 0.1; done",
            ],
        ),
    );
    let b = node.run(&sb, &node.spec("b", &["sleep", "3600"]));
    node.wait("container a to be ready", || {
        node.raw_log(&a).contains("F ready")
    });
    let (code, ps, _) = node.exec(&b, &["ps", "-o", "pid,args"]);
    assert_eq!(code, 0);
    let pid1 = ps
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or_else(|| panic!("{ps}"));
    assert!(pid1.contains("podnet-pause"), "PID 1 is pause:\n{ps}");
    let trap = ps
        .lines()
        .find(|l| l.contains("trap"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("a's shell is visible from b:\n{ps}"))
        .to_string();
    let (code, _, err) = node.exec(&b, &["kill", "-HUP", &trap]);
    assert_eq!(code, 0, "{err}");
    node.wait("a to log the HUP", || {
        node.raw_log(&a).contains("F got-hup")
    });
}

/// Not a test on its own: the "agent" of `supervisor_outlives_the_agent_and_is_adopted`, run as a
/// separate process that creates a pod and exits.
#[test]
#[ignore = "helper process of supervisor_outlives_the_agent_and_is_adopted"]
fn agent_helper() {
    let base = PathBuf::from(std::env::var("PNT_AGENT_BASE").expect("run by the adoption test"));
    let tag = std::env::var("PNT_AGENT_TAG").unwrap();
    let rt = Runtime::new(config(&base, &tag)).unwrap();
    let sb = rt
        .run_sandbox(&SandboxSpec {
            pod: PodRef {
                namespace: "default".into(),
                name: "adopt".into(),
                uid: "uid-adopt".into(),
            },
            attempt: 0,
            hostname: "adopt".into(),
            host_network: false,
            share_pid: false,
            labels: Default::default(),
        })
        .unwrap();
    let mut spec = ContainerSpec {
        name: "ticker".into(),
        attempt: 0,
        image: "busybox".into(),
        rootfs: base.join("rootfs"),
        args: vec![
            "sh".into(),
            "-c".into(),
            "trap 'echo bye; exit 0' TERM; while true; do echo tick; sleep 0.1; done".into(),
        ],
        env: vec![],
        cwd: String::new(),
        user: Default::default(),
        security: Default::default(),
        resources: Default::default(),
        mounts: vec![],
        log_path: base.join("logs/ticker/0.log"),
        log_max_bytes: 0,
        log_max_files: 0,
        stdin: false,
        stdin_once: false,
        tty: false,
        pid_namespace: None,
        labels: Default::default(),
    };
    spec.labels
        .insert("agent".into(), std::process::id().to_string());
    let id = rt.create_container(&sb.id, &spec).unwrap();
    rt.start_container(&id).unwrap();
}

#[test]
fn supervisor_outlives_the_agent_and_is_adopted() {
    let node = Node::new("rt-adopt");
    let tag = node
        .rt
        .config()
        .cgroup_parent
        .trim_start_matches('/')
        .to_string();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "agent_helper", "--ignored", "--nocapture"])
        .env("PNT_AGENT_BASE", &node.base)
        .env("PNT_AGENT_TAG", &tag)
        .status()
        .unwrap();
    assert!(status.success(), "the agent process failed");
    // The agent is gone; a new one adopts what it finds.
    let rt = Runtime::new(config(&node.base, &tag)).unwrap();
    let sbs = rt.list_sandboxes().unwrap();
    assert_eq!(sbs.len(), 1);
    assert_eq!(sbs[0].state, SandboxState::Ready);
    let cs = rt.list_containers().unwrap();
    assert_eq!(cs.len(), 1);
    let c = &cs[0];
    assert_eq!(c.state, ContainerState::Running);
    let shim = c.shim_pid.expect("the supervisor still runs");
    let agent: u32 = c.record.spec.labels["agent"].parse().unwrap();
    assert!(
        !proc::alive(agent, None)
            || proc::cmdline(agent).is_none_or(|l| !l.contains("agent_helper"))
    );
    let ppid = fs::read_to_string(format!("/proc/{shim}/stat")).unwrap();
    assert!(
        !ppid.contains(&format!(" {agent} ")),
        "supervisor is not the agent's child"
    );
    // Logs keep flowing after the agent left, and the exit is recorded by the supervisor.
    let before = node.raw_log(&c.record.id).lines().count();
    node.wait("more log lines", || {
        node.raw_log(&c.record.id).lines().count() > before + 2
    });
    rt.stop_container(&c.record.id, Duration::from_secs(10))
        .unwrap();
    let st = rt.container_status(&c.record.id).unwrap();
    assert_eq!(
        st.exit.map(|e| e.exit_code),
        Some(0),
        "the shell's TERM trap exits 0"
    );
    assert!(node.raw_log(&c.record.id).contains(" stdout F bye"));
    node.wait("the supervisor to leave", || !proc::alive(shim, None));
}

/// Reads from the pty master on a thread, so every wait is bounded.
fn pty_reader(mut master: fs::File) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Types `cmd` into the terminal, again every 200 ms, until the output shows `want`.
fn ask_until(master: &mut fs::File, rx: &mpsc::Receiver<Vec<u8>>, cmd: &str, want: &str) {
    let end = Instant::now() + BOUND;
    let mut seen = String::new();
    while !seen.contains(want) {
        assert!(
            Instant::now() < end,
            "terminal never showed {want:?} for {cmd:?}: {seen:?}"
        );
        master.write_all(format!("{cmd}\n").as_bytes()).unwrap();
        let until = Instant::now() + Duration::from_millis(200);
        while let Ok(b) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            seen.push_str(&String::from_utf8_lossy(&b));
            if seen.contains(want) {
                break;
            }
        }
    }
}

#[test]
fn exec_with_a_pty_resizes_and_returns_the_exit_code() {
    let node = Node::new("rt-pty");
    let sb = node.sandbox("tty", false);
    let c = node.run(&sb, &node.spec("box", &["sleep", "3600"]));
    let mut p = node
        .rt
        .exec(
            &c,
            &ExecSpec {
                args: vec!["sh".into()],
                tty: true,
                size: Some((80, 24)),
                ..Default::default()
            },
        )
        .unwrap();
    let mut master = p.pty.take().unwrap();
    let rx = pty_reader(master.try_clone().unwrap());
    // runc sets the container terminal's size and relays resizes on its own schedule (after start,
    // on SIGWINCH), so ask until the shell sees the size.
    ask_until(&mut master, &rx, "stty size", "24 80");
    ask_until(&mut master, &rx, "tty", "/dev/pts/");
    p.pty = Some(master.try_clone().unwrap());
    p.resize(100, 40).unwrap();
    ask_until(&mut master, &rx, "stty size", "40 100");
    master.write_all(b"exit 5\n").unwrap();
    assert_eq!(p.wait().unwrap(), 5);
}

#[test]
fn killed_pause_and_supervisor_then_removal_leaves_nothing() {
    let node = Node::new("rt-kill");
    let sb = node.sandbox("victim", true);
    let c = node.run(&sb, &node.spec("c", &["sleep", "3600"]));
    let st = node.rt.container_status(&c).unwrap();
    let (cpid, shim) = (st.pid.unwrap(), st.shim_pid.unwrap());
    let cgroup = st.record.cgroup.clone();
    assert!(!cgroups::dirs(&cgroup).is_empty(), "runc made the cgroup");
    let netns = sb.netns.clone().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shim as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sb.pause_pid as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    node.wait("pause to die", || !proc::alive(sb.pause_pid, None));
    assert_eq!(
        node.rt.sandbox_status(&sb.id).unwrap().state,
        SandboxState::NotReady
    );
    node.rt.remove_sandbox(&sb.id).unwrap();
    for (what, pid) in [
        ("pause", sb.pause_pid),
        ("supervisor", shim),
        ("container", cpid),
    ] {
        assert!(!proc::alive(pid, None), "{what} {pid} still runs");
    }
    assert!(!netns.exists() && !mounted(&netns), "netns file left");
    assert!(!mounted(&sb.shm), "shm mount left");
    assert!(cgroups::dirs(&cgroup).is_empty(), "container cgroup left");
    let pod_cgroup = format!("{}/uid-victim", node.rt.config().cgroup_parent);
    assert!(cgroups::dirs(&pod_cgroup).is_empty(), "pod cgroup left");
    assert!(node.rt.list_sandboxes().unwrap().is_empty());
    assert!(node.rt.list_containers().unwrap().is_empty());
    let runc = Command::new("runc")
        .arg("--root")
        .arg(&node.rt.config().runc_root)
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&runc.stdout).trim(),
        "",
        "runc still lists containers"
    );
    // And the node's own parent cgroup goes with remove_all.
    node.rt.remove_all().unwrap();
    assert!(cgroups::dirs(&node.rt.config().cgroup_parent).is_empty());
}

#[test]
fn resources_become_cgroup_limits() {
    let node = Node::new("rt-res");
    let sb = node.sandbox("limits", false);
    let mut spec = node.spec("limited", &["sleep", "3600"]);
    spec.resources = Resources::from_millicores(Some(250), Some(500), Some(64 << 20));
    let c = node.run(&sb, &spec);
    let cg = node.rt.container_status(&c).unwrap().record.cgroup;
    assert_eq!(cgroups::read(&cg, "cpu.shares").as_deref(), Some("256"));
    assert_eq!(
        cgroups::read(&cg, "cpu.cfs_quota_us").as_deref(),
        Some("50000")
    );
    assert_eq!(
        cgroups::read(&cg, "cpu.cfs_period_us").as_deref(),
        Some("100000")
    );
    assert_eq!(
        cgroups::read(&cg, "memory.limit_in_bytes").as_deref(),
        Some(&*(64u64 << 20).to_string())
    );
    node.rt.remove_container(&c).unwrap();
    assert!(cgroups::dirs(&cg).is_empty());
}

#[test]
fn host_network_pods_use_the_nodes_namespace() {
    let node = Node::new("rt-host");
    // The "node": a test namespace; the agent's call runs on a thread inside it, as an agent that
    // lives in its node's namespace does.
    let ns = podnet_testkit::TestNs::new("rt-hostnet");
    let spec = SandboxSpec {
        pod: PodRef {
            namespace: "kube-system".into(),
            name: "hostnet".into(),
            uid: "uid-hostnet".into(),
        },
        attempt: 0,
        hostname: "ignored".into(),
        host_network: true,
        share_pid: false,
        labels: Default::default(),
    };
    let sb = ns.ns().run(|| node.rt.run_sandbox(&spec)).unwrap().unwrap();
    assert!(sb.netns.is_none(), "no namespace file of its own");
    let c = node.run(&sb, &node.spec("probe", &["sleep", "3600"]));
    let (code, out, _) = node.exec(&c, &["readlink", "/proc/self/ns/net"]);
    assert_eq!(code, 0);
    let node_ino = fs::metadata(ns.path())
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    assert_eq!(
        out.trim(),
        format!("net:[{node_ino}]"),
        "the container is in the node's namespace"
    );
    node.rt.remove_sandbox(&sb.id).unwrap();
}

#[test]
fn logs_rotate_split_long_lines_and_follow_to_the_exit() {
    let node = Node::new("rt-logs");
    let sb = node.sandbox("chatty", false);
    let mut spec = node.spec(
        "chatty",
        &[
            "sh",
            "-c",
            "for i in $(seq 1 400); do echo line-$i; done; head -c 20000 /dev/zero | tr '\\0' x; echo; sleep 0.3; echo last >&2",
        ],
    );
    spec.log_max_bytes = 4096;
    spec.log_max_files = 20;
    let id = node.run(&sb, &spec);
    // Follow from the start: returns by itself once the container has exited and all is written.
    let mut out = Vec::new();
    let opts = LogOptions {
        follow: true,
        ..Default::default()
    };
    node.rt.read_logs(&id, &opts, &mut out, &|| false).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let expect: Vec<String> = (1..=400).map(|i| format!("line-{i}")).collect();
    assert_eq!(
        lines[..400],
        expect[..],
        "every line, in order, across rotations"
    );
    assert_eq!(
        lines[400],
        "x".repeat(20000),
        "the long line is whole again"
    );
    assert_eq!(lines[401], "last");
    assert_eq!(lines.len(), 402);
    assert_eq!(
        node.rt
            .container_status(&id)
            .unwrap()
            .exit
            .unwrap()
            .exit_code,
        0
    );
    let log = &spec.log_path;
    assert!(crilog::rotated(log, 1).exists(), "the log was rotated");
    assert!(fs::metadata(log).unwrap().len() <= 4096 + 16 * 1024 + 64);
    let all: String = crilog::files(log)
        .iter()
        .map(|f| fs::read_to_string(f).unwrap())
        .collect();
    assert!(
        all.lines().any(|l| l.contains(" stdout P xxxx")),
        "a partial entry for the 16 KiB head"
    );
    // --tail across files, and --timestamps.
    let mut tail = Vec::new();
    let opts = LogOptions {
        tail: Some(2),
        timestamps: true,
        ..Default::default()
    };
    node.rt.read_logs(&id, &opts, &mut tail, &|| false).unwrap();
    let tail = String::from_utf8(tail).unwrap();
    let t: Vec<&str> = tail.lines().collect();
    assert_eq!(t.len(), 2, "{tail}");
    assert!(
        t[1].ends_with("Z last") && crilog::parse_time(&t[1][..30]).is_some(),
        "{tail}"
    );
}

#[test]
fn a_failing_create_names_the_container_and_leaves_nothing() {
    let node = Node::new("rt-bad");
    let sb = node.sandbox("broken", false);
    let err = node
        .rt
        .create_container(&sb.id, &node.spec("bad", &["/no/such/binary"]))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("create container bad of pod default/broken: runc create"),
        "{err}"
    );
    assert!(
        err.contains("/no/such/binary"),
        "runc's reason is kept: {err}"
    );
    assert!(node.rt.list_containers().unwrap().is_empty());
    let runc = Command::new("runc")
        .arg("--root")
        .arg(&node.rt.config().runc_root)
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&runc.stdout).trim(), "");
    let err = node.rt.start_container("0123").unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

/// Reads attach frames until one of `kind` contains `want`; bounded.
/// Reads frames until those of `kind` contain `want`; returns their text. Frames are consumed whole,
/// so text that arrived in the same frame as `want` is in the returned text, not in the next call's.
fn attach_until(
    sock: &mut std::os::unix::net::UnixStream,
    buf: &mut Vec<u8>,
    kind: u8,
    want: &str,
) -> String {
    use podnet_runtime::attach::take_frame;
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut got = String::new();
    loop {
        // One frame at a time, stopping as soon as `want` is there: the frames after it (the exit
        // code often arrives in the same read as the last output) stay for the next call.
        while !got.contains(want)
            && let Some((k, d)) = take_frame(buf).unwrap()
        {
            if k == kind {
                got.push_str(&String::from_utf8_lossy(&d));
            }
        }
        if got.contains(want) {
            return got;
        }
        let mut b = [0u8; 4096];
        let n = sock.read(&mut b).unwrap();
        assert!(n > 0, "attach socket closed; got {got:?}");
        buf.extend_from_slice(&b[..n]);
    }
}

/// The supervisor's attach socket: a `stdin` container reads what an attached client sends and its
/// answers reach the client (and the log); a `tty` container gets a terminal whose size the client
/// sets; the exit code arrives as the last frame.
#[test]
fn attach_socket_feeds_stdin_sets_the_terminal_size_and_reports_the_exit() {
    use podnet_runtime::attach::{EXIT, RESIZE, STDIN, STDOUT, frame};
    let node = Node::new("rt-attach");
    let sb = node.sandbox("att-1", false);
    let mut spec = node.spec(
        "reader",
        &[
            "sh",
            "-c",
            "while read l; do echo \"got: $l\"; done; exit 4",
        ],
    );
    spec.stdin = true;
    spec.stdin_once = true;
    let id = node.run(&sb, &spec);
    let mut sock = node.rt.attach(&id).unwrap();
    let mut buf = Vec::new();
    sock.write_all(&frame(STDIN, b"hello\n")).unwrap();
    attach_until(&mut sock, &mut buf, STDOUT, "got: hello");
    // stdinOnce: this client's end of input closes the container's stdin, and the shell ends.
    sock.shutdown(std::net::Shutdown::Write).unwrap();
    attach_until(&mut sock, &mut buf, EXIT, "4");
    assert_eq!(node.wait_exit(&id), 4);
    assert!(node.log(&id).contains("got: hello"));

    let mut spec = node.spec("term", &["sh", "-c", "read l; stty size; tty"]);
    spec.stdin = true;
    spec.tty = true;
    let id = node.run(&sb, &spec);
    let mut sock = node.rt.attach(&id).unwrap();
    let mut buf = Vec::new();
    sock.write_all(&frame(RESIZE, &[0, 99, 0, 33])).unwrap();
    sock.write_all(&frame(STDIN, b"go\r")).unwrap();
    // `stty size` then `tty`: both lines may come in one frame.
    let out = attach_until(&mut sock, &mut buf, STDOUT, "/dev/pts/");
    assert!(out.contains("33 99"), "{out:?}");
    attach_until(&mut sock, &mut buf, EXIT, "0");
}

/// An agent killed after starting a pause process but before recording its PID leaves a record
/// whose `pause_pid` is 0: stopping that sandbox, or removing it, still finds the pause by its tag.
#[test]
fn a_pause_whose_pid_was_never_recorded_is_found_and_stopped() {
    let node = Node::new("rt-unrec");
    let forget = |sb: &SandboxRecord| {
        let record = node
            .rt
            .config()
            .state_dir
            .join("sandboxes")
            .join(&sb.id)
            .join("sandbox.json");
        let mut json: serde_json::Value =
            serde_json::from_slice(&fs::read(&record).expect("sandbox record")).unwrap();
        json["pause_pid"] = 0.into();
        json["pause_start"] = 0.into();
        fs::write(&record, serde_json::to_vec(&json).unwrap()).unwrap();
    };
    let stopped = node.sandbox("orphan-stop", false);
    let removed = node.sandbox("orphan-remove", false);
    for sb in [&stopped, &removed] {
        assert!(proc::alive(sb.pause_pid, Some(sb.pause_start)));
        forget(sb);
    }
    node.rt
        .stop_sandbox(&stopped.id, Duration::from_secs(1))
        .unwrap();
    assert!(
        !proc::alive(stopped.pause_pid, Some(stopped.pause_start)),
        "stop left the unrecorded pause {} running",
        stopped.pause_pid
    );
    assert!(
        proc::alive(removed.pause_pid, Some(removed.pause_start)),
        "only its own pause"
    );
    node.rt.remove_sandbox(&removed.id).unwrap();
    assert!(
        !proc::alive(removed.pause_pid, Some(removed.pause_start)),
        "remove left the unrecorded pause {} running",
        removed.pause_pid
    );
    node.rt.remove_sandbox(&stopped.id).unwrap();
    assert!(node.rt.list_sandboxes().unwrap().is_empty());
}

/// A container's state comes from its supervisor's records and `/proc`; runc is only asked for
/// containers whose supervisor predates the init record, and both ways read the same.
#[test]
fn states_from_the_init_record_match_runcs() {
    let node = Node::new("rt-states");
    let sb = node.sandbox("states", false);
    let id = node
        .rt
        .create_container(&sb.id, &node.spec("sleeper", &["sleep", "600"]))
        .unwrap();
    let dir = node.rt.config().state_dir.join("containers").join(&id);
    assert!(
        dir.join("init.json").exists(),
        "the supervisor recorded the init process"
    );
    let record = fs::read_to_string(dir.join("container.json")).unwrap();
    let init = fs::read(dir.join("init.json")).unwrap();
    // As an older supervisor left it: no init record, and the container record does not expect one.
    let legacy = |on: bool| {
        if on {
            let mut v: serde_json::Value = serde_json::from_str(&record).unwrap();
            v.as_object_mut().unwrap().remove("init_record");
            fs::write(dir.join("container.json"), v.to_string()).unwrap();
            fs::remove_file(dir.join("init.json")).unwrap();
        } else {
            fs::write(dir.join("container.json"), &record).unwrap();
            fs::write(dir.join("init.json"), &init).unwrap();
        }
    };
    let both = |want: ContainerState| {
        let st = node.rt.container_status(&id).unwrap();
        assert_eq!(st.state, want);
        let pid = st.pid.expect("the init's pid");
        legacy(true);
        let st = node.rt.container_status(&id).unwrap();
        legacy(false);
        assert_eq!((st.state, st.pid), (want, Some(pid)), "from runc");
    };
    both(ContainerState::Created);
    node.rt.start_container(&id).unwrap();
    both(ContainerState::Running);
    // A supervisor that could not write its init record (the container record expects one): once
    // started, runc is asked, rather than the container reading as a create under way for ever.
    fs::remove_file(dir.join("init.json")).unwrap();
    let st = node.rt.container_status(&id).unwrap();
    fs::write(dir.join("init.json"), &init).unwrap();
    assert_eq!(st.state, ContainerState::Running, "without the init record");
    assert!(st.pid.is_some());
    let listed = node.rt.pod_containers(&sb.pod.uid).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, ContainerState::Running);
    assert!(node.rt.pod_containers("another-pod").unwrap().is_empty());

    node.rt.stop_container(&id, Duration::ZERO).unwrap();
    let st = node.rt.container_status(&id).unwrap();
    assert_eq!(st.state, ContainerState::Exited);
    assert_eq!(st.exit.map(|e| e.signal), Some(Some(9)));
}

/// `kubectl run -i` attaches once it sees the pod Running: a `stdinOnce` container's output from
/// before the first client came is replayed to it, then the exit.
#[test]
fn a_late_first_client_of_a_stdin_once_container_gets_its_early_output() {
    use podnet_runtime::attach::{EXIT, STDOUT};
    let node = Node::new("rt-replay");
    let sb = node.sandbox("rep-1", false);
    let mut spec = node.spec("early", &["sh", "-c", "echo early bird; sleep 1"]);
    spec.stdin = true;
    spec.stdin_once = true;
    let id = node.run(&sb, &spec);
    // Until the output is in the log, so it was written before this client connects.
    let t = std::time::Instant::now();
    while !node.log(&id).contains("early bird") {
        assert!(t.elapsed() < Duration::from_secs(10), "no output");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut sock = node.rt.attach(&id).unwrap();
    let mut buf = Vec::new();
    attach_until(&mut sock, &mut buf, STDOUT, "early bird");
    attach_until(&mut sock, &mut buf, EXIT, "0");
}

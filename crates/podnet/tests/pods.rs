//! Pods run for real on the lab's nodes, driven with the real kubectl as a user would (issue 9's
//! "Must show"): seed 002's two-container pod, logs (-c, -f, --previous, --tail, --timestamps), exec
//! (-i, exit codes, -it through a pty with a resize), a shared PID namespace, a pod on node1 reaching
//! a pod on node2, image pull failures, probes, init containers, volumes and env, scheduling, the
//! grace period, nothing left behind after SIGKILLs, and a node on Debian's reference CNI plugins.
//! Root tests; each has its own lab (torn down in `Drop`, also on failure). Waits are bounded polls.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Polls `f` every 200 ms until it returns `Some`, for at most `limit`; panics naming `what` (and
/// the last thing seen) otherwise.
fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("gave up after {limit:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

const LONG: Duration = Duration::from_secs(60);

/// kubectl as a `Command` (for stdin, ptys and long-running followers).
fn kubectl_cmd(lab: &Lab) -> Command {
    let mut c = Command::new(kubectl_bin());
    c.env("KUBECONFIG", &lab.kubeconfig)
        .arg("--cache-dir")
        .arg(std::env::temp_dir().join(format!("{}.kube-cache", lab.name)));
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `kubectl apply` of a manifest given as text.
fn apply(lab: &Lab, yaml: &str) {
    let mut child = kubectl_cmd(lab)
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl apply");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "kubectl apply failed: {}", text(&out));
}

fn pod_json(lab: &Lab, name: &str) -> Result<Value, String> {
    let out = lab.kubectl(&["get", "pod", name, "-o", "json"]);
    if !out.status.success() {
        return Err(text(&out));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

fn condition(pod: &Value, kind: &str) -> Option<String> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["status"].as_str().map(String::from))
}

/// Waits until the pod's Ready condition is True; returns the pod.
fn wait_ready(lab: &Lab, name: &str) -> Value {
    wait_for(&format!("pod {name} Ready"), LONG, || {
        let p = pod_json(lab, name)?;
        if condition(&p, "Ready").as_deref() == Some("True") {
            Ok(p)
        } else {
            Err(p["status"].to_string())
        }
    })
}

fn container_status(pod: &Value, container: &str) -> Value {
    ["containerStatuses", "initContainerStatuses"]
        .iter()
        .filter_map(|k| pod["status"][k].as_array())
        .flatten()
        .find(|c| c["name"] == container)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits for the pod to be gone from the API.
fn wait_gone(lab: &Lab, name: &str, limit: Duration) {
    wait_for(&format!("pod {name} gone"), limit, || {
        let out = lab.kubectl(&["get", "pod", name, "-o", "name"]);
        if !out.status.success() && text(&out).contains("NotFound") {
            Ok(())
        } else {
            Err(text(&out))
        }
    })
}

fn events_of(lab: &Lab, pod: &str) -> String {
    lab.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={pod}"),
        "-o",
        "custom-columns=REASON:.reason,MESSAGE:.message",
    ])
}

/// How many times `reason` was reported for the pod (repeats are counted in one Event).
fn event_count(lab: &Lab, pod: &str, reason: &str) -> i64 {
    let out = lab.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={pod}"),
        "-o",
        "json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["reason"] == reason)
        .map(|e| e["count"].as_i64().unwrap_or(1))
        .sum()
}

/// A process whose output is collected by a thread, killed when dropped.
struct Follower {
    child: std::process::Child,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Follower {
    fn spawn(mut cmd: Command) -> Follower {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a follower");
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Follower { child, out }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    fn wait_for_text(&self, what: &str, needle: &str) {
        wait_for(what, LONG, || {
            let t = self.text();
            if t.contains(needle) { Ok(()) } else { Err(t) }
        })
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kubectl exec -it` with a real terminal: kubectl's stdio is the slave of a pty made here, kubectl
/// its session leader with it as controlling terminal, so a size set on the master reaches kubectl
/// as SIGWINCH as it would from a terminal emulator.
struct PtyKubectl {
    master: std::fs::File,
    child: std::process::Child,
    seen: Arc<Mutex<Vec<u8>>>,
}

fn set_winsize(fd: &std::fs::File, rows: u16, cols: u16) {
    use std::os::fd::AsRawFd;
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize that outlives the call.
    assert_eq!(
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) },
        0,
        "set the terminal size"
    );
}

impl PtyKubectl {
    fn spawn(lab: &Lab, args: &[&str]) -> PtyKubectl {
        use std::os::fd::FromRawFd;
        let (mut m, mut s) = (0, 0);
        let ws = libc::winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two fds into the ints given; the rest are null or valid.
        let rc =
            unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
        assert_eq!(rc, 0, "openpty");
        // SAFETY: openpty returned two fresh descriptors we now own.
        let (master, slave) =
            unsafe { (std::fs::File::from_raw_fd(m), std::fs::File::from_raw_fd(s)) };
        let mut cmd = kubectl_cmd(lab);
        cmd.args(args)
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: setsid and ioctl are async-signal-safe; fd 0 is the slave by now.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start kubectl exec -it");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        PtyKubectl {
            master,
            child,
            seen,
        }
    }

    fn seen(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    fn type_line(&mut self, line: &str) {
        self.master.write_all(line.as_bytes()).unwrap();
        self.master.write_all(b"\r").unwrap();
    }

    fn wait_for_text(&self, what: &str, needle: &str) {
        wait_for(what, LONG, || {
            let t = self.seen();
            if t.contains(needle) { Ok(()) } else { Err(t) }
        })
    }
}

impl Drop for PtyKubectl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SEED_002: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: multi-container-pod
spec:
  containers:
  - name: container-1
    image: nginx:alpine
  - name: container-2
    image: busybox
    command:
      - '/bin/sh'
      - '-c'
      - 'mkdir -p /usr/share/nginx/html && while true; do echo "Hello from Container 2" >> /usr/share/nginx/html/index.html; sleep 10; done'
"#;

const LOGS_PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: ticker}
spec:
  containers:
  - name: t
    image: busybox
    command: ['sh', '-c', 'i=0; while true; do echo tick-$i; i=$((i+1)); sleep 1; done']
---
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  containers:
  - name: c
    image: busybox
    command: ['sh', '-c', 'echo "crash run $(cat /proc/sys/kernel/random/uuid)"; sleep 1; exit 3']
---
apiVersion: v1
kind: Pod
metadata: {name: once}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: ['sh', '-c', 'echo ran once']
---
apiVersion: v1
kind: Pod
metadata: {name: graceful}
spec:
  terminationGracePeriodSeconds: 120
  containers:
  - name: g
    image: busybox
    command: ['sh', '-c', 'trap "echo got SIGTERM, cleaning up; exit 0" TERM; echo waiting; while true; do sleep 0.2; done']
"#;

/// Seed 002's pod with the tutorial's commands, and the logs of running, crashing and followed
/// containers; exec with stdin, exit codes and a terminal; the grace period on delete.
#[test]
fn seed_002_pod_logs_exec_and_graceful_delete() {
    let lab = Lab::up(&["--nodes", "2"]);
    apply(&lab, SEED_002);
    apply(&lab, LOGS_PODS);
    let pod = wait_ready(&lab, "multi-container-pod");
    assert!(
        pod["status"]["podIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.244.")),
        "{}",
        pod["status"]
    );
    let table = lab.kubectl_ok(&["get", "pods", "multi-container-pod"]);
    assert!(
        table.contains("2/2") && table.contains("Running"),
        "{table}"
    );

    // Container 2 reads container 1's page over localhost: they share the pod's network.
    let page = lab.kubectl_ok(&[
        "exec",
        "multi-container-pod",
        "-c",
        "container-2",
        "--",
        "wget",
        "-qO-",
        "http://localhost",
    ]);
    assert!(page.contains("Welcome to nginx!"), "{page}");
    // logs -c: nginx logged that request on its stdout.
    let access = wait_for("nginx's access log line", LONG, || {
        let l = lab.kubectl_ok(&["logs", "multi-container-pod", "-c", "container-1"]);
        if l.contains("\"GET / HTTP/1.1\" 200") {
            Ok(l)
        } else {
            Err(l)
        }
    });
    assert!(access.contains("127.0.0.1"), "{access}");
    // A container the pod does not have is refused.
    let out = lab.kubectl(&["logs", "multi-container-pod", "-c", "nope"]);
    assert!(!out.status.success(), "{}", text(&out));

    // --tail and --timestamps.
    wait_for("three ticks", LONG, || {
        let l = lab.kubectl_ok(&["logs", "ticker"]);
        if l.contains("tick-3") { Ok(()) } else { Err(l) }
    });
    let tail = lab.kubectl_ok(&["logs", "ticker", "--tail=2"]);
    assert_eq!(tail.lines().count(), 2, "{tail}");
    assert!(tail.lines().all(|l| l.starts_with("tick-")), "{tail}");
    let stamped = lab.kubectl_ok(&["logs", "ticker", "--tail=3", "--timestamps"]);
    for line in stamped.lines() {
        let (stamp, rest) = line.split_once(' ').expect("timestamp, space, line");
        assert!(
            stamp.parse::<jiff_like::Rfc3339>().is_ok() && rest.starts_with("tick-"),
            "{stamped}"
        );
    }

    // logs -f sees a new line, also one written to /proc/1/fd/1 from an exec'd shell (seed 000).
    let mut f = kubectl_cmd(&lab);
    f.args(["logs", "-f", "ticker", "--tail=1"]);
    let follower = Follower::spawn(f);
    follower.wait_for_text("the followed log's first line", "tick-");
    lab.kubectl_ok(&[
        "exec",
        "ticker",
        "--",
        "sh",
        "-c",
        "echo written-to-pid-1-stdout > /proc/1/fd/1",
    ]);
    follower.wait_for_text(
        "the line written to /proc/1/fd/1",
        "written-to-pid-1-stdout",
    );
    drop(follower);

    // exec -i: stdin reaches the process, and its end is EOF.
    let mut child = kubectl_cmd(&lab)
        .args(["exec", "-i", "ticker", "--", "sh", "-c", "wc -l; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"one\ntwo\nthree\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["3", "done"]
    );
    // Exit codes come back as kubectl's own, with its message.
    let out = lab.kubectl(&[
        "exec",
        "ticker",
        "--",
        "sh",
        "-c",
        "echo to-stderr >&2; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("to-stderr") && err.contains("command terminated with exit code 7"),
        "{err}"
    );
    let out = lab.kubectl(&["exec", "ticker", "--", "no-such-command"]);
    assert!(!out.status.success(), "{}", text(&out));

    // exec -it through a pty, as the tutorial's `kubectl exec -it ... -- /bin/sh`; a resize of the
    // terminal reaches the shell.
    let mut tty = PtyKubectl::spawn(
        &lab,
        &[
            "exec",
            "-it",
            "multi-container-pod",
            "-c",
            "container-2",
            "--",
            "/bin/sh",
        ],
    );
    tty.wait_for_text("the shell's prompt", "# ");
    tty.type_line("stty size; tty");
    tty.wait_for_text("the first terminal size", "24 80");
    tty.wait_for_text("a terminal inside the container", "/dev/pts/");
    set_winsize(&tty.master, 33, 111);
    // SIGWINCH reaches kubectl, which sends the resize; a shell started after it sees the size.
    wait_for("the new terminal size inside the container", LONG, || {
        tty.type_line("stty size");
        std::thread::sleep(Duration::from_millis(300));
        let t = tty.seen();
        if t.contains("33 111") { Ok(()) } else { Err(t) }
    });
    tty.type_line("wget -qO- http://localhost | grep -o 'Welcome to nginx'; exit 3");
    let code = wait_for("kubectl exec -it to end", LONG, || {
        match tty.child.try_wait() {
            Ok(Some(s)) => Ok(s.code()),
            _ => Err(tty.seen()),
        }
    });
    assert_eq!(code, Some(3), "{}", tty.seen());
    assert!(tty.seen().contains("Welcome to nginx"), "{}", tty.seen());
    drop(tty);

    // A crashing container: restarted, its exit in lastState, CrashLoopBackOff, --previous. As
    // kubelet does, the first crash is restarted at once: back-off starts from the second.
    let crashed = wait_for("crasher restarted and backing off", LONG, || {
        let p = pod_json(&lab, "crasher")?;
        let c = container_status(&p, "c");
        let restarts = c["restartCount"].as_i64().unwrap_or(0);
        let waiting = c["state"]["waiting"]["reason"] == "CrashLoopBackOff";
        assert!(
            !(waiting && restarts == 0),
            "CrashLoopBackOff before the first restart: {c}"
        );
        if restarts >= 1 && waiting {
            Ok(c)
        } else {
            Err(c.to_string())
        }
    });
    assert_eq!(
        crashed["lastState"]["terminated"]["exitCode"], 3,
        "{crashed}"
    );
    assert_eq!(
        crashed["lastState"]["terminated"]["reason"], "Error",
        "{crashed}"
    );
    let table = lab.kubectl_ok(&["get", "pod", "crasher"]);
    assert!(table.contains("CrashLoopBackOff"), "{table}");
    let previous = lab.kubectl_ok(&["logs", "crasher", "--previous"]);
    assert!(previous.starts_with("crash run "), "{previous}");
    assert_eq!(previous.lines().count(), 1, "{previous}");
    let events = events_of(&lab, "crasher");
    assert!(events.contains("BackOff"), "{events}");
    // --previous of a container that never restarted says so.
    let out = lab.kubectl(&["logs", "ticker", "--previous"]);
    assert!(!out.status.success(), "{}", text(&out));

    // restartPolicy Never: the pod finishes, its address is released, and it stays Succeeded with
    // its container's output (it is not run again once its sandbox is gone).
    let done = wait_for("once Succeeded", LONG, || {
        let p = pod_json(&lab, "once")?;
        if p["status"]["phase"] == "Succeeded" {
            Ok(p)
        } else {
            Err(p["status"].to_string())
        }
    });
    let ip = done["status"]["podIP"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let node = done["spec"]["nodeName"].as_str().unwrap().to_string();
    let state = podnet_lab::LabPaths::new(&lab.name)
        .ipam_dir(&node)
        .join(podnet_lab::cniconf::NETWORK_NAME)
        .join("state.json");
    wait_for("once's address released", LONG, || {
        let s = std::fs::read_to_string(&state).map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&s).map_err(|e| e.to_string())?;
        if !ip.is_empty() && v["reservations"].get(&ip).is_none() {
            Ok(())
        } else {
            Err(s)
        }
    });
    let p = pod_json(&lab, "once").unwrap();
    assert_eq!(p["status"]["phase"], "Succeeded", "{}", p["status"]);
    let c = container_status(&p, "c");
    assert_eq!(c["state"]["terminated"]["reason"], "Completed", "{c}");
    assert_eq!(lab.kubectl_ok(&["logs", "once"]).trim(), "ran once");
    let table = lab.kubectl_ok(&["get", "pod", "once"]);
    assert!(table.contains("Completed"), "{table}");
    assert_eq!(
        event_count(&lab, "once", "Started"),
        1,
        "{}",
        events_of(&lab, "once")
    );

    // The grace period: the container traps SIGTERM, logs and exits at once, and the pod is gone
    // long before its 120 s grace period; what it wrote on SIGTERM reached its log.
    wait_ready(&lab, "graceful");
    let mut f = kubectl_cmd(&lab);
    f.args(["logs", "-f", "graceful"]);
    let follower = Follower::spawn(f);
    follower.wait_for_text("graceful's first line", "waiting");
    let asked = Instant::now();
    lab.kubectl_ok(&["delete", "pod", "graceful", "--wait=false"]);
    follower.wait_for_text("the SIGTERM handler's line", "got SIGTERM, cleaning up");
    wait_gone(&lab, "graceful", Duration::from_secs(60));
    assert!(
        asked.elapsed() < Duration::from_secs(100),
        "a container exiting on SIGTERM does not wait out the grace period"
    );
}

/// Checks an RFC 3339 timestamp as kubectl's --timestamps prints it (`2026-12-07T03:11:58.066161390Z`).
mod jiff_like {
    pub struct Rfc3339;
    impl std::str::FromStr for Rfc3339 {
        type Err = ();
        fn from_str(s: &str) -> Result<Self, ()> {
            let b = s.as_bytes();
            let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
            let ok = b.len() >= 20
                && digits(0..4)
                && b[4] == b'-'
                && digits(5..7)
                && b[7] == b'-'
                && digits(8..10)
                && b[10] == b'T'
                && digits(11..13)
                && b[13] == b':'
                && digits(14..16)
                && b[16] == b':'
                && digits(17..19)
                && s.ends_with('Z');
            if ok { Ok(Rfc3339) } else { Err(()) }
        }
    }
}

const SHARED_AND_CROSS_NODE: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: shared}
spec:
  shareProcessNamespace: true
  containers:
  - name: a
    image: busybox
    command: ['sh', '-c', 'trap "echo got SIGHUP" HUP; echo a-started; while true; do sleep 0.2; done']
  - name: b
    image: busybox
    command: ['sleep', '3600']
---
apiVersion: v1
kind: Pod
metadata: {name: echo, labels: {app: echo}}
spec:
  nodeName: node2
  containers:
  - name: echo
    image: registry.k8s.io/echoserver:1.4
    ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: node1
  containers:
  - name: c
    image: busybox
    command: ['sleep', '3600']
---
apiVersion: v1
kind: Pod
metadata: {name: nowhere}
spec:
  containers:
  - name: c
    image: example.invalid/podnet/does-not-exist:v1
"#;

/// shareProcessNamespace: one container sees the other's processes under pause and signals them; a
/// pod on node1 reaches a pod on node2, which sees the client's own address; an image that exists
/// nowhere ends in ImagePullBackOff with its reason in describe.
#[test]
fn shared_pid_cross_node_traffic_and_image_pull_backoff() {
    let lab = Lab::up(&["--nodes", "2"]);
    apply(&lab, SHARED_AND_CROSS_NODE);

    wait_ready(&lab, "shared");
    let ps = lab.kubectl_ok(&["exec", "shared", "-c", "b", "--", "ps", "aux"]);
    let pid1 = ps
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or_default();
    assert!(pid1.contains("podnet-pause"), "pause is PID 1: {ps}");
    let other = ps
        .lines()
        .find(|l| l.contains("trap"))
        .unwrap_or_else(|| panic!("container a's shell is visible from b: {ps}"));
    assert!(ps.contains("sleep 3600"), "{ps}");
    let pid = other.split_whitespace().next().unwrap();
    lab.kubectl_ok(&["exec", "shared", "-c", "b", "--", "kill", "-HUP", pid]);
    wait_for("container a's SIGHUP handler", LONG, || {
        let l = lab.kubectl_ok(&["logs", "shared", "-c", "a"]);
        if l.contains("got SIGHUP") {
            Ok(())
        } else {
            Err(l)
        }
    });

    let echo = wait_ready(&lab, "echo");
    let client = wait_ready(&lab, "client");
    assert_eq!(echo["spec"]["nodeName"], "node2");
    assert_eq!(client["spec"]["nodeName"], "node1");
    let (echo_ip, client_ip) = (
        echo["status"]["podIP"].as_str().unwrap().to_string(),
        client["status"]["podIP"].as_str().unwrap().to_string(),
    );
    assert!(echo_ip.starts_with("10.244.2.") && client_ip.starts_with("10.244.1."));
    let reply = lab.kubectl_ok(&[
        "exec",
        "client",
        "--",
        "wget",
        "-qO-",
        &format!("http://{echo_ip}:8080/hello"),
    ]);
    assert!(
        reply.contains(&format!("client_address={client_ip}")),
        "node2's pod sees the client pod's own address: {reply}"
    );
    assert!(reply.contains("/hello"), "{reply}");

    let state = wait_for("nowhere in ImagePullBackOff", LONG, || {
        let p = pod_json(&lab, "nowhere")?;
        let c = container_status(&p, "c");
        if c["state"]["waiting"]["reason"] == "ImagePullBackOff" {
            Ok(c)
        } else {
            Err(c.to_string())
        }
    });
    assert!(
        state["state"]["waiting"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("example.invalid/podnet/does-not-exist:v1")),
        "{state}"
    );
    let describe = lab.kubectl_ok(&["describe", "pod", "nowhere"]);
    for needle in [
        "ImagePullBackOff",
        "Failed to pull image \"example.invalid/podnet/does-not-exist:v1\"",
        "example.invalid",
        "Error: ErrImagePull",
        "Back-off pulling image",
    ] {
        assert!(
            describe.contains(needle),
            "describe shows {needle}:\n{describe}"
        );
    }
    let table = lab.kubectl_ok(&["get", "pod", "nowhere"]);
    assert!(
        table.contains("ImagePullBackOff") || table.contains("ErrImagePull"),
        "{table}"
    );
}

const PROBES_AND_INIT: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: lifecycle}
spec:
  initContainers:
  - name: first
    image: busybox
    command: ['sh', '-c', 'echo first >> /work/order']
    volumeMounts: [{name: work, mountPath: /work}]
  - name: second
    image: busybox
    command: ['sh', '-c', 'grep -q first /work/order && echo second >> /work/order']
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: unhealthy
    image: busybox
    command: ['sh', '-c', 'rm -f /work/die; cat /work/order; sleep 3600']
    volumeMounts: [{name: work, mountPath: /work}]
    livenessProbe:
      exec: {command: ['sh', '-c', 'test ! -e /work/die']}
      periodSeconds: 1
      failureThreshold: 2
  - name: never-ready
    image: busybox
    command: ['sleep', '3600']
    readinessProbe:
      exec: {command: ['cat', '/tmp/ready']}
      periodSeconds: 1
  volumes:
  - name: work
    emptyDir: {}
"#;

const VOLUMES_AND_ENV: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data:
  color: blue
  greeting.txt: "hello from a configMap\n"
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData:
  password: s3cr3t-value
---
apiVersion: v1
kind: Pod
metadata:
  name: consumer
  labels: {tier: backend}
  annotations: {note: from-the-api}
spec:
  containers:
  - name: c
    image: busybox
    command: ['sleep', '3600']
    resources:
      limits: {memory: 64Mi}
    env:
    - {name: COLOR, valueFrom: {configMapKeyRef: {name: settings, key: color}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    - {name: MY_POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: MY_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: MY_NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: MEM_LIMIT, valueFrom: {resourceFieldRef: {resource: limits.memory}}}
    envFrom:
    - {prefix: CFG_, configMapRef: {name: settings}}
    - {secretRef: {name: creds}}
    volumeMounts:
    - {name: cfg, mountPath: /etc/cfg}
    - {name: sec, mountPath: /etc/sec}
    - {name: info, mountPath: /etc/info}
  volumes:
  - name: cfg
    configMap: {name: settings}
  - name: sec
    secret: {secretName: creds}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: annotations, fieldRef: {fieldPath: metadata.annotations}}
"#;

/// Init containers in order before the others; a failing liveness probe restarts its container
/// (Unhealthy, Killing); a failing readiness probe keeps the pod not Ready; configMap, secret and
/// downwardAPI volumes and env (valueFrom and envFrom) inside a container.
#[test]
fn probes_init_containers_volumes_and_env() {
    let lab = Lab::up(&["--nodes", "1"]);
    apply(&lab, PROBES_AND_INIT);
    apply(&lab, VOLUMES_AND_ENV);

    // Init containers ran one after the other, to completion, before the main containers.
    let pod = wait_for("lifecycle's containers running", LONG, || {
        let p = pod_json(&lab, "lifecycle")?;
        if container_status(&p, "unhealthy")["state"]["running"].is_object()
            && container_status(&p, "never-ready")["state"]["running"].is_object()
        {
            Ok(p)
        } else {
            Err(p["status"].to_string())
        }
    });
    for init in ["first", "second"] {
        let s = container_status(&pod, init);
        assert_eq!(s["state"]["terminated"]["reason"], "Completed", "{s}");
        assert_eq!(s["state"]["terminated"]["exitCode"], 0, "{s}");
    }
    assert_eq!(condition(&pod, "Initialized").as_deref(), Some("True"));
    let order = lab.kubectl_ok(&["logs", "lifecycle", "-c", "unhealthy"]);
    assert_eq!(order.lines().collect::<Vec<_>>(), ["first", "second"]);

    // Readiness: the failing probe keeps the pod out of Ready, while the container runs.
    let events = wait_for("the readiness probe's Unhealthy event", LONG, || {
        let e = events_of(&lab, "lifecycle");
        if e.contains("Readiness probe failed") {
            Ok(e)
        } else {
            Err(e)
        }
    });
    assert!(events.contains("Unhealthy"), "{events}");
    let p = pod_json(&lab, "lifecycle").unwrap();
    assert_eq!(
        condition(&p, "Ready").as_deref(),
        Some("False"),
        "{}",
        p["status"]
    );
    assert_eq!(container_status(&p, "never-ready")["ready"], false);
    assert_eq!(container_status(&p, "unhealthy")["ready"], true);
    // ... and passing it makes the pod Ready.
    lab.kubectl_ok(&[
        "exec",
        "lifecycle",
        "-c",
        "never-ready",
        "--",
        "touch",
        "/tmp/ready",
    ]);
    wait_ready(&lab, "lifecycle");

    // Liveness: failing it restarts the container (the new instance removes the marker).
    lab.kubectl_ok(&[
        "exec",
        "lifecycle",
        "-c",
        "unhealthy",
        "--",
        "touch",
        "/work/die",
    ]);
    let events = wait_for("the liveness probe's events", LONG, || {
        let e = events_of(&lab, "lifecycle");
        if e.contains("Liveness probe failed")
            && e.contains("failed liveness probe, will be restarted")
        {
            Ok(e)
        } else {
            Err(e)
        }
    });
    assert!(events.contains("Killing"), "{events}");
    let restarted = wait_for("unhealthy restarted and running", LONG, || {
        let p = pod_json(&lab, "lifecycle")?;
        let c = container_status(&p, "unhealthy");
        if c["restartCount"].as_i64().unwrap_or(0) >= 1 && c["state"]["running"].is_object() {
            Ok(c)
        } else {
            Err(c.to_string())
        }
    });
    assert!(
        restarted["lastState"]["terminated"].is_object(),
        "{restarted}"
    );

    // Volumes and env.
    wait_ready(&lab, "consumer");
    let env = lab.kubectl_ok(&["exec", "consumer", "--", "env"]);
    let ip = pod_json(&lab, "consumer").unwrap()["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    for line in [
        "COLOR=blue".to_string(),
        "PASSWORD=s3cr3t-value".into(),
        "MY_POD=consumer".into(),
        format!("MY_IP={ip}"),
        "MY_NODE=node1".into(),
        format!("MEM_LIMIT={}", 64 * 1024 * 1024),
        "CFG_color=blue".into(),
        "password=s3cr3t-value".into(),
    ] {
        assert!(
            env.lines().any(|l| l == line),
            "{line} in the environment:\n{env}"
        );
    }
    let files = lab.kubectl_ok(&[
        "exec",
        "consumer",
        "--",
        "sh",
        "-c",
        "cat /etc/cfg/greeting.txt /etc/cfg/color; echo; cat /etc/sec/password; echo; \
         cat /etc/info/name; echo; cat /etc/info/labels; echo; cat /etc/info/annotations",
    ]);
    for needle in [
        "hello from a configMap",
        "blue",
        "s3cr3t-value",
        "consumer",
        "tier=\"backend\"",
        "note=\"from-the-api\"",
    ] {
        assert!(files.contains(needle), "{needle} in the volumes:\n{files}");
    }
}

fn node_of(lab: &Lab, pod: &str) -> String {
    wait_ready(lab, pod)["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn anti_pod(name: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: spread}}}}
spec:
  affinity:
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector: {{matchLabels: {{app: spread}}}}
        topologyKey: kubernetes.io/hostname
  containers:
  - {{name: c, image: busybox, command: ['sleep', '3600']}}
"#
    )
}

fn failed_scheduling(lab: &Lab, pod: &str) -> String {
    wait_for(&format!("FailedScheduling of {pod}"), LONG, || {
        let e = events_of(lab, pod);
        if e.contains("FailedScheduling") {
            Ok(e)
        } else {
            Err(e)
        }
    })
}

/// nodeSelector, required pod anti-affinity and taints steer the pods as kube-scheduler does; a pod
/// that fits nowhere stays Pending with FailedScheduling in kube-scheduler's words.
#[test]
fn scheduling_by_node_selector_anti_affinity_and_taints() {
    let lab = Lab::up(&["--nodes", "2"]);
    wait_for("both nodes Ready", LONG, || {
        let t = lab.kubectl_ok(&["get", "nodes", "--no-headers"]);
        if t.lines().filter(|l| l.contains(" Ready ")).count() == 2 {
            Ok(())
        } else {
            Err(t)
        }
    });

    lab.kubectl_ok(&["label", "node", "node2", "disk=ssd"]);
    apply(
        &lab,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: picky}\nspec:\n  nodeSelector: {disk: ssd}\n  containers:\n  - {name: c, image: busybox, command: ['sleep', '3600']}\n",
    );
    assert_eq!(node_of(&lab, "picky"), "node2");

    apply(&lab, &anti_pod("spread-1"));
    apply(&lab, &anti_pod("spread-2"));
    let (a, b) = (node_of(&lab, "spread-1"), node_of(&lab, "spread-2"));
    assert_ne!(
        a, b,
        "anti-affinity by hostname puts them on different nodes"
    );
    apply(&lab, &anti_pod("spread-3"));
    let events = failed_scheduling(&lab, "spread-3");
    assert!(
        events.contains("0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules."),
        "{events}"
    );
    let table = lab.kubectl_ok(&["get", "pod", "spread-3"]);
    assert!(table.contains("Pending"), "{table}");
    // Retried when the pods change: room is made on a node, the pending pod lands there.
    lab.kubectl_ok(&["delete", "pod", "spread-1", "--wait=false"]);
    assert_eq!(node_of(&lab, "spread-3"), a);

    // Taints: node1 takes only pods that tolerate its taint.
    lab.kubectl_ok(&["taint", "nodes", "node1", "dedicated=infra:NoSchedule"]);
    for i in 0..3 {
        apply(
            &lab,
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: plain-{i}}}\nspec:\n  containers:\n  - {{name: c, image: busybox, command: ['sleep', '3600']}}\n"
            ),
        );
    }
    for i in 0..3 {
        assert_eq!(
            node_of(&lab, &format!("plain-{i}")),
            "node2",
            "plain-{i} avoids the tainted node"
        );
    }
    apply(
        &lab,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: tolerant}\nspec:\n  nodeSelector: {kubernetes.io/hostname: node1}\n  tolerations:\n  - {key: dedicated, operator: Equal, value: infra, effect: NoSchedule}\n  containers:\n  - {name: c, image: busybox, command: ['sleep', '3600']}\n",
    );
    assert_eq!(node_of(&lab, "tolerant"), "node1");
    apply(
        &lab,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: intolerant}\nspec:\n  nodeSelector: {kubernetes.io/hostname: node1}\n  containers:\n  - {name: c, image: busybox, command: ['sleep', '3600']}\n",
    );
    let events = failed_scheduling(&lab, "intolerant");
    assert!(
        events.contains("0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: infra}."),
        "{events}"
    );
    // Untainting lets it in.
    lab.kubectl_ok(&["taint", "nodes", "node1", "dedicated=infra:NoSchedule-"]);
    assert_eq!(node_of(&lab, "intolerant"), "node1");
}

/// What a node holds that a pod could leak: its links and addresses, the pods' network namespaces
/// (`ip netns` inside the node), IPAM reservations, and on the machine the lab's mounts, cgroups and
/// processes (agents, shims, pause processes, containers). Pod-specific names are kept, so a
/// difference says what leaked.
fn snapshot(lab: &Lab, nodes: &[&str], pod_prefix: &str) -> BTreeMap<String, Vec<String>> {
    let mut s = BTreeMap::new();
    for node in nodes {
        let sorted = |out: String, f: &dyn Fn(&str) -> Option<String>| {
            let mut v: Vec<String> = out.lines().filter_map(f).collect();
            v.sort();
            v
        };
        let links = lab.ok(&["node", "exec", node, "--", "ip", "-o", "link"]);
        s.insert(
            format!("{node} links"),
            sorted(links, &|l| {
                // name and master only: indexes, MACs and counters change with every pod
                let name = l.split(": ").nth(1)?.split('@').next()?.to_string();
                let master = l.split(" master ").nth(1).and_then(|r| r.split(' ').next());
                Some(format!("{name} master={}", master.unwrap_or("-")))
            }),
        );
        let addrs = lab.ok(&["node", "exec", node, "--", "ip", "-o", "addr"]);
        s.insert(
            format!("{node} addresses"),
            sorted(addrs, &|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Some(format!("{} {}", f.get(1)?, f.get(3)?))
            }),
        );
        let netns = lab.ok(&["node", "exec", node, "--", "ip", "netns"]);
        s.insert(
            format!("{node} ip netns"),
            sorted(netns, &|l| Some(l.split_whitespace().next()?.to_string())),
        );
        // IPAM: the reservations (the allocator's next-address cursor moves on, as it should).
        let state = podnet_lab::LabPaths::new(&lab.name)
            .ipam_dir(node)
            .join(podnet_lab::cniconf::NETWORK_NAME)
            .join("state.json");
        let json: Value = std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        s.insert(
            format!("{node} ipam reservations"),
            vec![json["reservations"].to_string()],
        );
    }
    let marks = [
        format!("/run/podnet/{}/", lab.name),
        format!("/var/lib/podnet/{}/", lab.name),
    ];
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(String::from))
        .filter(|m| marks.iter().any(|k| m.starts_with(k.as_str())))
        .collect();
    mounts.sort();
    s.insert("mounts".into(), mounts);
    let mut cgroups = Vec::new();
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        for node in nodes {
            let dir = hierarchy.path().join(format!("podnet/{}-{node}", lab.name));
            for d in walk_dirs(&dir) {
                cgroups.push(d.strip_prefix("/sys/fs/cgroup/").unwrap_or(&d).to_string());
            }
        }
    }
    cgroups.sort();
    s.insert("cgroups".into(), cgroups);
    s.insert("processes".into(), lab_processes(lab, pod_prefix));
    s
}

fn walk_dirs(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if dir.is_dir() {
        out.push(dir.display().to_string());
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                out.extend(walk_dirs(&e.path()));
            }
        }
    }
    out
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            String::from_utf8_lossy(&c)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// The hostname in the UTS namespace of `pid` (a pod's pause process carries the pod's name).
fn hostname_of(pid: u32) -> Option<String> {
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-u", "hostname"])
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The lab's processes, by command line (pids vary): those naming the lab in argv, environment or
/// cgroup, and the pause processes and containers of pods named `pod_prefix*`.
fn lab_processes(lab: &Lab, pod_prefix: &str) -> Vec<String> {
    let me = std::process::id();
    let mut out = Vec::new();
    for pid in pids() {
        if pid == me {
            continue;
        }
        let cmd = cmdline(pid);
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let mine = cmd.contains(&format!("/{}/", lab.name))
            || cmd.contains(&format!("--name {} ", lab.name))
            || String::from_utf8_lossy(&environ).contains(&format!("PODNET_LAB={}\0", lab.name))
            || cgroup.contains(&format!("/podnet/{}-", lab.name));
        let pause =
            cmd == "podnet-pause" && hostname_of(pid).is_some_and(|h| h.starts_with(pod_prefix));
        if (mine || pause) && !cmd.contains("kubectl") && !cmd.starts_with("nsenter") {
            out.push(cmd);
        }
    }
    out.sort();
    out
}

fn kill_some(pattern: &dyn Fn(&str) -> bool, lab: &Lab, pod_prefix: &str, rng: &mut u64) -> usize {
    let mut n = 0;
    for pid in pids() {
        let cmd = cmdline(pid);
        let hit = pattern(&cmd)
            && (cmd.contains(&format!("/{}/", lab.name))
                || (cmd == "podnet-pause"
                    && hostname_of(pid).is_some_and(|h| h.starts_with(pod_prefix)))
                || (cmd.contains("node-agent")
                    && String::from_utf8_lossy(
                        &std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default(),
                    )
                    .contains(&format!("PODNET_LAB={}\0", lab.name))));
        if hit && next(rng).is_multiple_of(2) {
            // SAFETY: kill(2) on a pid just read from /proc; ESRCH if it is gone already.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            n += 1;
        }
    }
    n
}

/// xorshift: a seeded sequence, printed so a failing run can be replayed.
fn next(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn burst_pod(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 2\n  containers:\n  - {{name: a, image: busybox, command: ['sleep', '3600']}}\n  - {{name: b, image: busybox, command: ['sh', '-c', 'while true; do sleep 1; done']}}\n"
    )
}

fn agents_ready(lab: &Lab) {
    wait_for("both nodes Ready", LONG, || {
        let t = lab.kubectl_ok(&["get", "nodes", "--no-headers"]);
        if t.lines().filter(|l| l.contains(" Ready ")).count() == 2 {
            Ok(())
        } else {
            Err(t)
        }
    });
}

/// The no-leak check: pods are created and deleted in bursts while the node agents, the shims and
/// the pause processes are SIGKILLed at random moments; once every pod is deleted and the lab daemon
/// has restarted the agents, each node's links, addresses, pod namespaces, IPAM state, and the lab's
/// mounts, cgroups and processes are those of the fresh lab. Then `podnet down` with pods running
/// leaves nothing.
#[test]
fn no_leaks_after_sigkills_of_agents_shims_and_pauses() {
    let lab = Lab::up(&["--nodes", "2"]);
    agents_ready(&lab);
    let nodes = ["node1", "node2"];
    let prefix = format!("burst{}", std::process::id());
    // The lab's cluster DNS runs two pods: they go first, so the nodes start from no pod at all.
    lab.kubectl_ok(&[
        "scale",
        "deployment",
        "podnet-dns",
        "-n",
        "kube-system",
        "--replicas=0",
    ]);
    wait_for("the cluster DNS pods gone", LONG, || {
        let t = lab.kubectl_ok(&["get", "pods", "-n", "kube-system", "--no-headers"]);
        if t.trim().is_empty() { Ok(()) } else { Err(t) }
    });
    // Without pods, `ip netns` inside a node lists nothing (not the machine's namespaces).
    for node in nodes {
        wait_for(&format!("no pod namespace on {node}"), LONG, || {
            let list = lab.ok(&["node", "exec", node, "--", "ip", "netns"]);
            if list.trim().is_empty() {
                Ok(())
            } else {
                Err(list)
            }
        });
    }
    // The baseline is the lab after one pod per node came and went without trouble: a node makes
    // some of its state with its first pod (the pod namespace directory's mount, the cgroup parents,
    // the bridge's link-local address once a port is up, the IPAM state file) and keeps it.
    for (i, node) in nodes.iter().enumerate() {
        apply(&lab, &burst_pod(&format!("{prefix}-warm-{i}"), node));
    }
    for i in 0..nodes.len() {
        wait_ready(&lab, &format!("{prefix}-warm-{i}"));
        lab.kubectl_ok(&[
            "delete",
            "pod",
            &format!("{prefix}-warm-{i}"),
            "--wait=false",
        ]);
    }
    for i in 0..nodes.len() {
        wait_gone(&lab, &format!("{prefix}-warm-{i}"), LONG);
    }
    let mut fresh = BTreeMap::new();
    wait_for_opt(Duration::from_secs(30), || {
        let s = snapshot(&lab, &nodes, &prefix);
        let settled = s == fresh;
        fresh = s;
        settled
    });
    // The probes see what they should (else an empty list would compare equal to anything).
    let agents = fresh["processes"]
        .iter()
        .filter(|p| p.contains("node-agent"))
        .count();
    assert_eq!(agents, 2, "{:?}", fresh["processes"]);
    assert!(
        fresh["mounts"]
            .iter()
            .any(|m| m.ends_with("/nodes/node1/netns")),
        "{:?}",
        fresh["mounts"]
    );
    assert!(!fresh["cgroups"].is_empty() && fresh["node2 links"].len() >= 3);
    assert_eq!(fresh["node1 ipam reservations"], ["{}"]);

    let mut rng: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("no-leak seed: {rng}");
    let mut kills = 0;
    for round in 0..4 {
        let names: Vec<String> = (0..6).map(|i| format!("{prefix}-{round}-{i}")).collect();
        for (i, n) in names.iter().enumerate() {
            apply(&lab, &burst_pod(n, nodes[i % 2]));
            if next(&mut rng).is_multiple_of(3) {
                kills += kill_some(&|c| c.contains("podnet-shim"), &lab, &prefix, &mut rng);
            }
        }
        std::thread::sleep(Duration::from_millis(next(&mut rng) % 1500));
        kills += kill_some(&|c| c == "podnet-pause", &lab, &prefix, &mut rng);
        if round % 2 == 0 {
            kills += kill_some(&|c| c.contains("node-agent"), &lab, &prefix, &mut rng);
        }
        std::thread::sleep(Duration::from_millis(next(&mut rng) % 1500));
        for n in &names {
            lab.kubectl_ok(&["delete", "pod", n, "--wait=false"]);
            if next(&mut rng).is_multiple_of(4) {
                kills += kill_some(
                    &|c| c.contains("podnet-shim") || c == "podnet-pause",
                    &lab,
                    &prefix,
                    &mut rng,
                );
            }
        }
        if round % 2 == 1 {
            kills += kill_some(&|c| c.contains("node-agent"), &lab, &prefix, &mut rng);
        }
    }
    eprintln!("{kills} processes killed");
    assert!(kills > 0, "no kill landed");

    // Every pod goes (the restarted agents finish the deletes), then the nodes are as fresh.
    wait_for("every pod deleted", Duration::from_secs(180), || {
        let t = lab.kubectl_ok(&["get", "pods", "-o", "name"]);
        if t.trim().is_empty() { Ok(()) } else { Err(t) }
    });
    agents_ready(&lab);
    let mut last = BTreeMap::new();
    let converged = wait_for_opt(Duration::from_secs(90), || {
        last = snapshot(&lab, &nodes, &prefix);
        last == fresh
    });
    if !converged {
        let mut diff = String::new();
        for (k, v) in &last {
            if fresh.get(k) != Some(v) {
                diff += &format!("{k}:\n  fresh: {:?}\n  now:   {v:?}\n", fresh.get(k));
            }
        }
        panic!("the nodes differ from the fresh lab:\n{diff}");
    }

    // `down` with pods running leaves nothing.
    for i in 0..4 {
        apply(
            &lab,
            &burst_pod(&format!("{prefix}-down-{i}"), nodes[i % 2]),
        );
    }
    for i in 0..4 {
        wait_ready(&lab, &format!("{prefix}-down-{i}"));
    }
    lab.ok(&["down"]);
    assert_nothing_left(&lab, &prefix);
}

/// Polls `f` every 500 ms for at most `limit`; whether it became true.
fn wait_for_opt(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// After `down`: no namespace, mount, cgroup, process or directory of the lab.
fn assert_nothing_left(lab: &Lab, pod_prefix: &str) {
    let netns: Vec<String> = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(&format!("{}-", lab.name)))
        .collect();
    assert!(netns.is_empty(), "namespaces left: {netns:?}");
    let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| {
            l.contains(&format!("/{}/", lab.name)) || l.contains(&format!("/{}-", lab.name))
        })
        .map(String::from)
        .collect();
    assert!(mounts.is_empty(), "mounts left: {mounts:#?}");
    let mut cgroups = Vec::new();
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        for e in std::fs::read_dir(h.path().join("podnet"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{}-", lab.name))
            {
                cgroups.push(e.path().display().to_string());
            }
        }
    }
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
    let procs = lab_processes(lab, pod_prefix);
    assert!(procs.is_empty(), "processes left: {procs:#?}");
    for dir in [
        format!("/run/podnet/{}", lab.name),
        format!("/var/lib/podnet/{}", lab.name),
    ] {
        assert!(!std::path::Path::new(&dir).exists(), "{dir} left behind");
    }
}

/// A node whose CNI configuration names Debian's reference `bridge` + `host-local` plugins
/// (/usr/lib/cni) runs pods too, which reach pods on a podnet-cni node and the other way round.
#[test]
fn a_node_on_the_reference_bridge_plugin_runs_pods() {
    let lab = Lab::up(&["--nodes", "2"]);
    agents_ready(&lab);
    let paths = podnet_lab::LabPaths::new(&lab.name);
    let podnet_conf = podnet_lab::cniconf::read(&paths, "node2").unwrap();
    let plugin = &podnet_conf["plugins"][0];
    let subnet = plugin["ipam"]["subnet"].as_str().unwrap().to_string();
    let gateway = subnet.replace(".0/24", ".1");
    // host-local keeps its own reservations, apart from podnet-cni's: it gets the upper half of
    // the podCIDR so it never hands out an address a pod already on the node holds (the cluster
    // DNS pods may have started there before the switch), as an operator changing plugins would.
    let range_start = subnet.replace(".0/24", ".128");
    let reference = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "podnet",
        "plugins": [{
            "type": "bridge",
            "bridge": podnet_lab::cniconf::BRIDGE,
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "mtu": plugin["mtu"],
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": subnet, "gateway": gateway, "rangeStart": range_start}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": paths.data_dir().join("host-local").display().to_string(),
            }
        }, {"type": "portmap", "capabilities": {"portMappings": true}}]
    });
    let file = paths
        .cni_conf_dir("node2")
        .join(podnet_lab::cniconf::CONF_FILE);
    std::fs::write(&file, serde_json::to_vec_pretty(&reference).unwrap()).unwrap();

    apply(
        &lab,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: on-bridge}\nspec:\n  nodeName: node2\n  containers:\n  - {name: web, image: nginx:alpine}\n  - {name: side, image: busybox, command: ['sleep', '3600']}\n",
    );
    apply(
        &lab,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: on-podnet}\nspec:\n  nodeName: node1\n  containers:\n  - {name: c, image: busybox, command: ['sh', '-c', 'httpd -p 8080 -h /etc; sleep 3600']}\n",
    );
    let bridged = wait_ready(&lab, "on-bridge");
    let other = wait_ready(&lab, "on-podnet");
    let ip = bridged["status"]["podIP"].as_str().unwrap().to_string();
    let other_ip = other["status"]["podIP"].as_str().unwrap().to_string();
    let host: u8 = ip
        .strip_prefix(&subnet.replace(".0/24", "."))
        .and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("{ip} in {subnet}"));
    assert!(host >= 128, "{ip} from host-local's range, which starts at {range_start}");
    // host-local's reservation is where the configuration put it.
    let reserved = paths.data_dir().join("host-local/podnet").join(&ip);
    assert!(reserved.exists(), "{} exists", reserved.display());
    // The bridge plugin's veth hangs on the node's bridge.
    let links = lab.ok(&[
        "node", "exec", "node2", "--", "ip", "-o", "link", "show", "master", "cni0",
    ]);
    assert!(
        links.contains("veth"),
        "the reference plugin's veth on cni0: {links}"
    );

    // Without a readiness probe the pod is Ready when its containers start, which can be a moment
    // before nginx listens.
    let url = format!("http://{ip}/");
    let page = wait_for("nginx on the bridge plugin's pod to answer", LONG, || {
        let out = lab.kubectl(&["exec", "on-podnet", "--", "wget", "-qO-", &url]);
        let page = text(&out);
        if out.status.success() {
            Ok(page)
        } else {
            Err(page)
        }
    });
    assert!(page.contains("Welcome to nginx!"), "{page}");
    let hosts = lab.kubectl_ok(&[
        "exec",
        "on-bridge",
        "-c",
        "side",
        "--",
        "wget",
        "-qO-",
        &format!("http://{other_ip}:8080/hosts"),
    ]);
    assert!(hosts.contains("on-podnet"), "{hosts}");
    let logs = lab.kubectl_ok(&["logs", "on-bridge", "-c", "web"]);
    assert!(
        logs.contains(&other_ip),
        "nginx on node2 saw node1's pod address: {logs}"
    );

    // Deleting releases the address through the plugins' DEL.
    lab.kubectl_ok(&["delete", "pod", "on-bridge", "--wait=false"]);
    wait_gone(&lab, "on-bridge", LONG);
    wait_for("host-local's reservation released", LONG, || {
        if reserved.exists() {
            Err("still reserved".to_string())
        } else {
            Ok(())
        }
    });
}

//! `kubectl port-forward` and `kubectl attach` with the real kubectl against a lab (issue 9's "Exec,
//! attach, port-forward"). Root tests; each has its own lab, torn down in `Drop` (also on failure).
//! Waits are bounded polls; nothing here measures time.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(60);

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

fn kubectl_cmd(lab: &Lab) -> Command {
    let mut c = Command::new(kubectl_bin());
    c.env("KUBECONFIG", &lab.kubeconfig)
        .arg("--cache-dir")
        .arg(std::env::temp_dir().join(format!("{}.kube-cache", lab.name)));
    c
}

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
    assert!(
        out.status.success(),
        "kubectl apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_ready(lab: &Lab, name: &str) {
    wait_for(&format!("pod {name} Ready"), LONG, || {
        let out = lab.kubectl(&[
            "get",
            "pod",
            name,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ]);
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        if s == "True" { Ok(()) } else { Err(s) }
    })
}

/// A kubectl that runs until the test is done with it: killed and reaped when dropped. Its
/// stdout and stderr lines arrive on channels.
struct Running {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kubectl");
        let lines = |r: Box<dyn Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for l in BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send(l).is_err() {
                        return;
                    }
                }
            });
            rx
        };
        let stdout = lines(Box::new(child.stdout.take().unwrap()));
        let stderr = lines(Box::new(child.stderr.take().unwrap()));
        Running {
            child,
            stdout,
            stderr,
        }
    }

    /// The first stdout line for which `f` says yes, within `limit`.
    fn line<T>(&self, what: &str, limit: Duration, f: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(l) => match f(&l) {
                    Some(v) => return v,
                    None => seen.push(l),
                },
                Err(_) => {
                    let err: Vec<String> = self.stderr.try_iter().collect();
                    panic!("no {what} from kubectl; stdout {seen:?}, stderr {err:?}")
                }
            }
        }
    }

    /// Waits for kubectl to exit on its own; returns its code and everything it wrote to stderr.
    fn exit(&mut self, limit: Duration) -> (Option<i32>, String) {
        let status = wait_for("kubectl to exit", limit, || match self.child.try_wait() {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err("still running".into()),
            Err(e) => Err(e.to_string()),
        });
        let mut err = String::new();
        while let Ok(l) = self.stderr.recv_timeout(Duration::from_secs(2)) {
            err.push_str(&l);
            err.push('\n');
        }
        (status.code(), err)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kubectl port-forward TARGET 0:PORT` (the kernel picks the local port); returns the forwarder
/// and the local port it announced.
fn port_forward(lab: &Lab, target: &str, port: u16, websockets: bool) -> (Running, u16) {
    let mut cmd = kubectl_cmd(lab);
    cmd.args(["port-forward", target, &format!("0:{port}")]);
    if !websockets {
        // kubectl's switch back to a plain SPDY upgrade.
        cmd.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false");
    }
    let pf = Running::start(cmd);
    let local = pf.line("Forwarding from 127.0.0.1", LONG, |l| {
        l.strip_prefix("Forwarding from 127.0.0.1:")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse::<u16>().ok())
    });
    (pf, local)
}

/// One HTTP/1.0 GET over `conn`, read to the end: the whole response.
fn http_get(mut conn: TcpStream, path: &str) -> Vec<u8> {
    conn.set_read_timeout(Some(LONG)).unwrap();
    write!(conn, "GET {path} HTTP/1.0\r\nHost: pod\r\n\r\n").unwrap();
    let mut body = Vec::new();
    conn.read_to_end(&mut body).expect("read the response");
    body
}

fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).expect("connect to kubectl's local port")
}

fn sha256(data: &[u8]) -> String {
    let mut c = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    let mut stdin = c.stdin.take().unwrap();
    let data = data.to_vec();
    let w = std::thread::spawn(move || stdin.write_all(&data));
    let out = c.wait_with_output().unwrap();
    w.join().unwrap().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

const WEB: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
  - name: nginx
    image: nginx
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - port: 8080
    targetPort: 80
"#;

/// port-forward to a pod (concurrent connections, one after another, a 3 MB download), through a
/// Service (kubectl resolves it to a pod), over kubectl's plain SPDY fallback, and to a closed
/// port (the error as kubelet words it; kubectl 1.35 then ends the forward, as against any cluster).
#[test]
fn port_forward_with_the_real_kubectl() {
    let lab = Lab::up(&["--nodes", "2"]);
    apply(&lab, WEB);
    wait_ready(&lab, "web");

    let (pf, port) = port_forward(&lab, "pod/web", 80, true);
    // Two connections open at once: both requests are sent before either answer is read.
    let (a, b) = (connect(port), connect(port));
    let (ra, rb) = (
        std::thread::spawn(move || http_get(a, "/")),
        std::thread::spawn(move || http_get(b, "/index.html")),
    );
    for r in [ra.join().unwrap(), rb.join().unwrap()] {
        let page = String::from_utf8_lossy(&r);
        assert!(
            page.starts_with("HTTP/1.1 200") && page.contains("Welcome to nginx!"),
            "{page}"
        );
    }
    // A new connection after those closed.
    let again = String::from_utf8_lossy(&http_get(connect(port), "/")).into_owned();
    assert!(again.contains("Welcome to nginx!"), "{again}");
    // Bulk data arrives whole.
    let made = lab.kubectl_ok(&[
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        "head -c 3000000 /dev/urandom > /usr/share/nginx/html/big && sha256sum /usr/share/nginx/html/big",
    ]);
    let want = made.split_whitespace().next().unwrap().to_string();
    let resp = http_get(connect(port), "/big");
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header")
        + 4;
    assert_eq!(resp.len() - split, 3_000_000);
    assert_eq!(sha256(&resp[split..]), want);
    drop(pf);

    // svc/web: kubectl picks a pod behind the Service and maps 8080 to its targetPort 80.
    let (svc_pf, svc_port) = port_forward(&lab, "svc/web", 8080, true);
    let page = String::from_utf8_lossy(&http_get(connect(svc_port), "/")).into_owned();
    assert!(page.contains("Welcome to nginx!"), "{page}");
    drop(svc_pf);

    // kubectl's plain SPDY upgrade (the fallback when a server refuses the websocket).
    let (spdy_pf, spdy_port) = port_forward(&lab, "pod/web", 80, false);
    let page = String::from_utf8_lossy(&http_get(connect(spdy_port), "/")).into_owned();
    assert!(page.contains("Welcome to nginx!"), "{page}");
    drop(spdy_pf);

    // Nothing listens on 81: the connection closes, kubectl prints the node's error and, as
    // kubectl 1.35 does on any cluster, ends the forward ("lost connection to pod").
    let (mut closed, closed_port) = port_forward(&lab, "pod/web", 81, true);
    let got = http_get(connect(closed_port), "/");
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    let (_, err) = closed.exit(LONG);
    assert!(
        err.contains("an error occurred forwarding")
            && err.contains("error forwarding port 81 to pod")
            && err.contains("connect: connection refused")
            && err.contains("lost connection to pod"),
        "{err}"
    );
}

const ATTACH: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: ticker}
spec:
  containers:
  - name: t
    image: busybox
    command: ['sh', '-c', 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done']
---
apiVersion: v1
kind: Pod
metadata: {name: reader}
spec:
  restartPolicy: Never
  containers:
  - name: r
    image: busybox
    command: ['sh', '-c', 'echo ready; while read l; do echo "got: $l"; done; echo bye; exit 3']
    stdin: true
    stdinOnce: true
"#;

/// `kubectl attach` shows a running container's output as it comes; `kubectl attach -i` feeds a
/// `stdin: true` container, whose answers come back, and with `stdinOnce` the end of kubectl's input
/// ends the container, whose exit code kubectl returns.
#[test]
fn attach_with_the_real_kubectl() {
    let lab = Lab::up(&["--nodes", "1"]);
    apply(&lab, ATTACH);
    wait_ready(&lab, "ticker");
    wait_ready(&lab, "reader");

    let mut cmd = kubectl_cmd(&lab);
    cmd.args(["attach", "ticker"]);
    let out = Running::start(cmd);
    // Two successive ticks: live output, not a replay of one line.
    let first: u64 = out.line("a tick", LONG, |l| {
        l.strip_prefix("tick ").and_then(|n| n.parse().ok())
    });
    let next: u64 = out.line("the next tick", LONG, |l| {
        l.strip_prefix("tick ").and_then(|n| n.parse().ok())
    });
    assert_eq!(next, first + 1);
    drop(out);

    let mut cmd = kubectl_cmd(&lab);
    cmd.args(["attach", "-i", "reader"]).stdin(Stdio::piped());
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kubectl attach -i");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    // A line typed now comes back from the container.
    stdin.write_all(b"one\n").unwrap();
    let deadline = Instant::now() + LONG;
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l == "got: one") {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("no echo from the container; saw {seen:?}"),
        }
    }
    stdin.write_all(b"two\n").unwrap();
    drop(stdin);
    let status = wait_for("kubectl attach -i to end", LONG, || {
        match child.try_wait() {
            Ok(Some(s)) => Ok(s),
            _ => Err("running".into()),
        }
    });
    seen.extend(rx.iter());
    assert!(seen.iter().any(|l| l == "got: two"), "{seen:?}");
    assert!(seen.iter().any(|l| l == "bye"), "{seen:?}");
    // As on any cluster, attach carries no exit code (kubelet's answers Success).
    assert_eq!(status.code(), Some(0), "{seen:?}");
    let logs = lab.kubectl_ok(&["logs", "reader"]);
    assert!(logs.contains("got: one") && logs.contains("bye"), "{logs}");

    // `kubectl run -i` of a short failing command: its output once (a Failure from attach would
    // make kubectl print it again from the log), the exit code from the pod's status.
    let out = kubectl_cmd(&lab)
        .args([
            "run",
            "-i",
            "--restart=Never",
            "once",
            "--image=busybox",
            "--",
            "sh",
            "-c",
            "echo printed-once; exit 3",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("kubectl run -i");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.matches("printed-once").count(),
        1,
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(3), "{stdout}");
}

/// `kubectl run -it --rm ... -- sh` as a user types it: kubectl on a terminal (util-linux's `script`
/// gives it one, 100x30), the container gets a terminal of that size through attach, the shell
/// answers, `exit` ends it and `--rm` deletes the pod.
#[test]
fn run_it_gets_a_terminal_with_the_callers_size() {
    let lab = Lab::up(&["--nodes", "1"]);
    let kubectl = format!(
        "stty cols 100 rows 30; KUBECONFIG={} {} --cache-dir {} run -it --rm tt --image=busybox --restart=Never -- sh",
        lab.kubeconfig.display(),
        kubectl_bin().display(),
        std::env::temp_dir()
            .join(format!("{}.kube-cache", lab.name))
            .display()
    );
    let mut child = Command::new("script")
        .args(["-qfec", &kubectl, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl under script");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut b = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut b) {
            if n == 0 || tx.send(b[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    let mut seen = String::new();
    let mut expect = |what: &str| {
        let deadline = Instant::now() + LONG;
        while !seen.contains(what) {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(b) => seen.push_str(&String::from_utf8_lossy(&b)),
                Err(_) => panic!("no {what:?} on the terminal; saw {seen:?}"),
            }
        }
    };
    expect("If you don't see a command prompt");
    stdin.write_all(b"echo tty is $(tty)\r").unwrap();
    expect("tty is /dev/pts/");
    stdin.write_all(b"stty size\r").unwrap();
    expect("30 100");
    stdin.write_all(b"exit\r").unwrap();
    expect("pod \"tt\" deleted");
    let status = wait_for("kubectl run -it to end", LONG, || match child.try_wait() {
        Ok(Some(s)) => Ok(s),
        _ => Err("running".into()),
    });
    assert!(status.success(), "{seen}");
}

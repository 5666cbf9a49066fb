//! The workloads people run, on the lab with real pods, driven with the real kubectl (issue 11's
//! "Must show"): a rolling update and a restart that keep a Service answering every request, rollout
//! undo back to the previous image, a DaemonSet with a pod on every node, a StatefulSet started in
//! order whose pods answer by their stable DNS names, a Job whose pod fails twice before it succeeds
//! (retries counted, exit codes reported), a CronJob firing, cascading deletion (foreground,
//! background, orphan), and `kubectl debug` (`-it`) with ephemeral containers. Root tests; two labs, each torn down in `Drop` (also on failure); waits are
//! bounded polls and no assertion is about speed.

mod common;

use common::kube::*;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Serves its own hostname over HTTP on 8080 (busybox httpd), so a response says which pod answered.
const WHOAMI: &str = r#"["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]"#;

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

fn live(pods: Vec<Value>) -> Vec<Value> {
    pods.into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

fn name(p: &Value) -> String {
    p["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn pods(lab: &Lab, selector: &str) -> Vec<Value> {
    get_json(lab, &["pods", "-l", selector])
        .map(|v| items(&v))
        .unwrap_or_default()
}

/// One HTTP GET from the current network namespace: the body, or what went wrong.
fn http_get(addr: SocketAddr) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    match out.split_once("\r\n\r\n") {
        Some((head, body))
            if head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200") =>
        {
            Ok(body.trim().to_string())
        }
        _ => Err(format!("unexpected answer: {out:?}")),
    }
}

/// Requests a Service from a node, one after the other, until stopped: what answered and what
/// failed.
struct Client {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Result<String, String>>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Client {
    fn start(lab: &Lab, node: &str, addr: SocketAddr) -> Client {
        let ns = podnet_netns::NetNs::open(lab.node_netns(node)).expect("node namespace");
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let (s, a) = (stop.clone(), answers.clone());
        let thread = std::thread::spawn(move || {
            ns.run(|| {
                // bounded: at most 10 minutes of requests
                for _ in 0..30_000 {
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    let r = http_get(addr);
                    a.lock().unwrap().push(r);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
            .expect("run in the node's namespace");
        });
        Client {
            stop,
            answers,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<Result<String, String>> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.answers.lock().unwrap())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn rollout_status(lab: &Lab, what: &str) -> String {
    lab.kubectl_ok(&["rollout", "status", what, "--timeout=120s"])
}

fn web_manifests() -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  strategy:
    rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: web
        image: busybox
        command: {WHOAMI}
        ports: [{{containerPort: 8080}}]
        readinessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 1}}
        # the pod keeps serving while Services stop sending it traffic, as on any cluster
        lifecycle: {{preStop: {{exec: {{command: ["sleep", "2"]}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {{name: agent, image: busybox, command: ["sleep", "3600"]}}
---
apiVersion: v1
kind: Service
metadata: {{name: nginx}}
spec:
  clusterIP: None
  selector: {{app: sts}}
  ports: [{{port: 8080}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: sts}}
spec:
  serviceName: nginx
  replicas: 3
  selector: {{matchLabels: {{app: sts}}}}
  template:
    metadata: {{labels: {{app: sts}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: busybox
        command: {WHOAMI}
        readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: client, image: busybox, command: ["sleep", "3600"]}}
"#
    )
}

fn ready_since(p: &Value) -> Option<i64> {
    p["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready" && c["status"] == "True")?["lastTransitionTime"]
        .as_str()
        .and_then(podnet_apimachinery::time::parse_rfc3339)
}

fn created(p: &Value) -> i64 {
    p["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(podnet_apimachinery::time::parse_rfc3339)
        .unwrap_or(0)
}

#[test]
fn rolling_updates_keep_the_service_answering_and_sets_run_where_they_should() {
    let lab = Lab::up(&[]);
    apply(&lab, &web_manifests());
    let first = wait_deployment_ready(&lab, "default", "web", LONG);
    let first: BTreeSet<String> = first.iter().map(name).collect();
    let ip = lab.kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let addr: SocketAddr = format!("{ip}:80").parse().unwrap();
    wait_for("the Service answering from node1", LONG, || {
        let ns = podnet_netns::NetNs::open(lab.node_netns("node1")).unwrap();
        ns.run(|| http_get(addr)).unwrap()
    });

    // set image (the same busybox under its full name: a new template), then a restart, with a
    // client requesting the Service from node1 all along
    let client = Client::start(&lab, "node1", addr);
    lab.kubectl_ok(&[
        "set",
        "image",
        "deployment/web",
        "web=docker.io/library/busybox:latest",
    ]);
    let out = rollout_status(&lab, "deployment/web");
    assert!(
        out.ends_with("deployment \"web\" successfully rolled out\n"),
        "{out}"
    );
    let second: BTreeSet<String> = wait_deployment_ready(&lab, "default", "web", LONG)
        .iter()
        .map(name)
        .collect();
    lab.kubectl_ok(&["rollout", "restart", "deployment/web"]);
    rollout_status(&lab, "deployment/web");
    let third: BTreeSet<String> = wait_deployment_ready(&lab, "default", "web", LONG)
        .iter()
        .map(name)
        .collect();
    // the last pods answer before the client stops
    wait_for("a new pod answering", LONG, || {
        let seen = client.answers.lock().unwrap().last().cloned();
        match seen {
            Some(Ok(h)) if third.contains(&h) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    // ... and the old pods are gone for good (their stop, not only their removal from the
    // Service, happens while the client is still asking)
    wait_for("the old pods gone", Duration::from_secs(90), || {
        let left: BTreeSet<String> = pods(&lab, "app=web").iter().map(name).collect();
        if left == third {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
    let answers = client.finish();
    let failed: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    eprintln!(
        "{} requests through two rollouts, {} failed",
        answers.len(),
        failed.len()
    );
    let hosts: BTreeSet<&String> = answers.iter().filter_map(|a| a.as_ref().ok()).collect();
    assert!(answers.len() > 50, "{} requests", answers.len());
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        answers.len()
    );
    assert!(
        first.is_disjoint(&second) && second.is_disjoint(&third),
        "{first:?} {second:?} {third:?}"
    );
    for generation in [&first, &second, &third] {
        assert!(
            generation.iter().any(|p| hosts.contains(p)),
            "{generation:?} answered: {hosts:?}"
        );
    }

    // history and undo: back to the previous template (the full image name), as revision 4
    let history = lab.kubectl_ok(&["rollout", "history", "deployment/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2", "3"], "{history}");
    let out = lab.kubectl_ok(&["rollout", "undo", "deployment/web", "--to-revision=1"]);
    assert_eq!(out.trim(), "deployment.apps/web rolled back");
    rollout_status(&lab, "deployment/web");
    let d = get_json(&lab, &["deployment", "web"]).unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox"
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "4"
    );
    let back = wait_deployment_ready(&lab, "default", "web", LONG);
    assert!(
        back.iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "busybox")
    );

    // the DaemonSet: a pod on every node
    let nodes: BTreeSet<String> = wait_for("a daemon pod Ready on each node", LONG, || {
        let ds = pods(&lab, "app=agent");
        let ready: BTreeSet<String> = live(ds)
            .iter()
            .filter(|p| condition(p, "Ready").as_deref() == Some("True"))
            .filter_map(|p| p["spec"]["nodeName"].as_str().map(String::from))
            .collect();
        if ready.len() == 2 {
            Ok(ready)
        } else {
            Err(format!("{ready:?}"))
        }
    });
    assert_eq!(
        nodes,
        BTreeSet::from(["node1".to_string(), "node2".to_string()])
    );
    let row = wait_for("kubectl get ds", LONG, || {
        let out = lab.kubectl_ok(&["get", "ds", "agent", "--no-headers"]);
        let cells: Vec<String> = out.split_whitespace().map(String::from).collect();
        if cells.get(1..6) == Some(&["2", "2", "2", "2", "2"].map(String::from)[..]) {
            Ok(cells)
        } else {
            Err(out)
        }
    });
    assert_eq!(row[6], "<none>", "no node selector: {row:?}");
    assert_eq!(
        rollout_status(&lab, "ds/agent").trim(),
        "daemon set \"agent\" successfully rolled out"
    );

    // the StatefulSet: each pod created only once the one before was Ready
    let sts = wait_for("three Ready stateful pods", LONG, || {
        let mut ps = live(pods(&lab, "app=sts"));
        ps.sort_by_key(name);
        let ready = ps.iter().filter(|p| ready_since(p).is_some()).count();
        if ready == 3 {
            Ok(ps)
        } else {
            Err(format!("{ready}/3 ready"))
        }
    });
    assert_eq!(
        sts.iter().map(name).collect::<Vec<_>>(),
        ["sts-0", "sts-1", "sts-2"]
    );
    for pair in sts.windows(2) {
        assert!(
            created(&pair[1]) >= ready_since(&pair[0]).unwrap(),
            "{} was created before {} was Ready",
            name(&pair[1]),
            name(&pair[0])
        );
    }
    assert_eq!(
        lab.kubectl_ok(&["get", "sts", "sts", "--no-headers"])
            .split_whitespace()
            .nth(1),
        Some("3/3")
    );
    // stable DNS names through the headless Service, from another pod
    wait_pod_ready(&lab, "default", "client");
    wait_deployment_ready(&lab, "kube-system", "podnet-dns", Duration::from_secs(120));
    for p in &sts {
        let host = format!("{}.nginx.default.svc.cluster.local", name(p));
        let ip = p["status"]["podIP"].as_str().unwrap();
        let answer = wait_for(&format!("{host} resolving"), LONG, || {
            exec(&lab, "client", &["timeout", "5", "nslookup", &host])
        });
        assert!(answer.contains(&format!("Address: {ip}")), "{answer}");
        let body = exec(
            &lab,
            "client",
            &[
                "timeout",
                "5",
                "wget",
                "-qO-",
                &format!("http://{}.nginx:8080/", name(p)),
            ],
        )
        .unwrap();
        assert_eq!(body.trim(), name(p));
    }
    // kubectl debug: an ephemeral container in the client pod's namespaces, seeing the processes
    // of the container it targets
    let out = lab.kubectl_ok(&[
        "debug",
        "client",
        "--image=busybox",
        "--target=client",
        "-c",
        "dbg",
        "--",
        "sh",
        "-c",
        "hostname; ps -o args",
    ]);
    assert!(
        out.is_empty() || out.contains("Targeting container"),
        "{out}"
    );
    let logs = wait_for("the debug container's output", LONG, || {
        let p = get_json(&lab, &["pod", "client"])?;
        let done = p["status"]["ephemeralContainerStatuses"]
            .as_array()
            .and_then(|s| s.iter().find(|c| c["name"] == "dbg"))
            .is_some_and(|c| c["state"]["terminated"]["exitCode"] == 0);
        if done {
            Ok(lab.kubectl_ok(&["logs", "client", "-c", "dbg"]))
        } else {
            Err(p["status"].to_string())
        }
    });
    assert!(
        logs.starts_with("client\n") && logs.contains("sleep 3600"),
        "{logs}"
    );
    // -it, as a user types it: kubectl on a terminal (util-linux's `script` gives it one)
    let kubectl = format!(
        "KUBECONFIG={} {} --cache-dir {} debug -it client --image=busybox --target=client -c shell -- sh",
        lab.kubeconfig.display(),
        kubectl_bin().display(),
        std::env::temp_dir()
            .join(format!("{}.kube-cache", lab.name))
            .display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qfec", &kubectl, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl under script");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
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
        let deadline = std::time::Instant::now() + LONG;
        while !seen.contains(what) {
            match rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
                Ok(b) => seen.push_str(&String::from_utf8_lossy(&b)),
                Err(_) => panic!("no {what:?} on the terminal; saw {seen:?}"),
            }
        }
        seen.clone()
    };
    expect("If you don't see a command prompt");
    stdin
        .write_all(b"echo on $(tty) in $(hostname) next to $(ps -o args | grep -c '^sleep 3600')\r")
        .unwrap();
    let seen_now = expect("next to 1");
    assert!(
        seen_now.contains("on /dev/pts/") && seen_now.contains("in client"),
        "{seen_now}"
    );
    stdin.write_all(b"exit\r").unwrap();
    let status = wait_for("kubectl debug -it to end", LONG, || {
        match child.try_wait() {
            Ok(Some(s)) => Ok(s),
            _ => Err("running".into()),
        }
    });
    assert!(status.success(), "{seen_now}");
    let p = get_json(&lab, &["pod", "client"]).unwrap();
    assert_eq!(
        condition(&p, "Ready").as_deref(),
        Some("True"),
        "the pod itself goes on"
    );

    // scale down: from the highest ordinal
    lab.kubectl_ok(&["scale", "sts", "sts", "--replicas=1"]);
    wait_for("only sts-0 left", LONG, || {
        let left: Vec<String> = pods(&lab, "app=sts").iter().map(name).collect();
        if left == ["sts-0"] {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
}

/// A hostPath directory shared by a Job's attempts (nodes share the machine's file system),
/// removed when dropped.
struct SharedDir(std::path::PathBuf);

impl Drop for SharedDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn job_manifests(dir: &str) -> String {
    format!(
        r#"
apiVersion: batch/v1
kind: Job
metadata: {{name: flaky}}
spec:
  backoffLimit: 4
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: try
        image: busybox
        # fails on the first two attempts, succeeds on the third
        command: ["sh", "-c", "n=$(cat /data/attempts 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/attempts; echo attempt $n; [ $n -ge 3 ]"]
        volumeMounts: [{{name: data, mountPath: /data}}]
      volumes:
      - {{name: data, hostPath: {{path: {dir}, type: DirectoryOrCreate}}}}
---
apiVersion: batch/v1
kind: CronJob
metadata: {{name: hello}}
spec:
  schedule: "*/1 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          terminationGracePeriodSeconds: 1
          containers:
          - {{name: hello, image: busybox, command: ["echo", "hello from the cron job"]}}
"#
    )
}

fn cascade_deployment(lab: &Lab, name: &str) {
    apply(
        lab,
        &format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 3
      containers:
      # ignores SIGTERM: each pod takes its whole grace period to go
      - {{name: c, image: busybox, command: ["sh", "-c", "trap '' TERM; sleep 3600 & wait"]}}
"#
        ),
    );
    wait_deployment_ready(lab, "default", name, LONG);
}

#[test]
fn jobs_retry_cronjobs_fire_and_deletion_cascades() {
    let lab = Lab::up(&[]);
    let dir = SharedDir(std::env::temp_dir().join(format!("{}-job", lab.name)));
    apply(&lab, &job_manifests(&dir.0.display().to_string()));

    // cascading deletion while the Job backs off
    cascade_deployment(&lab, "fg");
    let out = lab.kubectl_ok(&["delete", "deployment", "fg", "--cascade=foreground"]);
    assert_eq!(
        out.trim(),
        "deployment.apps \"fg\" deleted from default namespace"
    );
    // kubectl returned once the Deployment was gone, which foreground deletion allows only after
    // its ReplicaSet and their pods
    assert!(
        pods(&lab, "app=fg").is_empty(),
        "{:?}",
        pods(&lab, "app=fg")
    );
    assert!(items(&get_json(&lab, &["rs", "-l", "app=fg"]).unwrap()).is_empty());
    cascade_deployment(&lab, "bg");
    lab.kubectl_ok(&["delete", "deployment", "bg"]);
    // background: the Deployment is gone at once, its pods are still terminating
    let terminating = pods(&lab, "app=bg");
    assert!(
        !terminating.is_empty(),
        "pods still there right after a background delete"
    );
    wait_for("bg's pods collected", LONG, || {
        if pods(&lab, "app=bg").is_empty() {
            Ok(())
        } else {
            Err("pods left".into())
        }
    });
    cascade_deployment(&lab, "orph");
    lab.kubectl_ok(&["delete", "deployment", "orph", "--cascade=orphan"]);
    let rs = wait_for("the orphaned ReplicaSet", LONG, || {
        let rs = items(&get_json(&lab, &["rs", "-l", "app=orph"])?);
        match rs.as_slice() {
            [one] if one["metadata"]["ownerReferences"].is_null() => Ok(one.clone()),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(
        live(pods(&lab, "app=orph")).len(),
        2,
        "the orphans keep running"
    );
    lab.kubectl_ok(&["delete", "rs", &name(&rs), "--wait=false"]);

    // the Job: two failures, each retried after its back-off, then success
    let out = lab.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/flaky",
        "--timeout=150s",
    ]);
    assert_eq!(out.trim(), "job.batch/flaky condition met");
    let job = get_json(&lab, &["job", "flaky"]).unwrap();
    assert_eq!(
        (
            job["status"]["failed"].as_i64(),
            job["status"]["succeeded"].as_i64()
        ),
        (Some(2), Some(1)),
        "{}",
        job["status"]
    );
    let mut attempts = pods(&lab, "job-name=flaky");
    attempts.sort_by_key(created);
    let outcomes: Vec<(String, i64, String)> = attempts
        .iter()
        .map(|p| {
            let t = &p["status"]["containerStatuses"][0]["state"]["terminated"];
            (
                p["status"]["phase"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                t["exitCode"].as_i64().unwrap_or(-1),
                t["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("Failed".to_string(), 1, "Error".to_string()),
            ("Failed".to_string(), 1, "Error".to_string()),
            ("Succeeded".to_string(), 0, "Completed".to_string())
        ]
    );
    let logs = lab.kubectl_ok(&["logs", &name(&attempts[2])]);
    assert_eq!(logs.trim(), "attempt 3");
    let row = lab.kubectl_ok(&["get", "job", "flaky", "--no-headers"]);
    assert_eq!(
        row.split_whitespace().take(3).collect::<Vec<_>>(),
        ["flaky", "Complete", "1/1"]
    );

    // the CronJob fired (every minute): a Job named after its minute, completed
    let fired = wait_for(
        "the CronJob's first Job complete",
        Duration::from_secs(150),
        || {
            let jobs = items(&get_json(&lab, &["jobs"])?);
            jobs.into_iter()
                .find(|j| {
                    j["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
                        && condition(j, "Complete").as_deref() == Some("True")
                })
                .ok_or_else(|| "no completed cron Job yet".to_string())
        },
    );
    let jname = name(&fired);
    let minutes = jname
        .strip_prefix("hello-")
        .expect("named after the CronJob");
    assert!(minutes.parse::<i64>().is_ok(), "{jname}");
    let cj = get_json(&lab, &["cronjob", "hello"]).unwrap();
    let last = cj["status"]["lastScheduleTime"]
        .as_str()
        .expect("lastScheduleTime");
    assert_eq!(
        podnet_apimachinery::time::parse_rfc3339(last).map(|t| t / 60),
        minutes.parse::<i64>().ok(),
        "the Job is named after the scheduled minute"
    );
    let pod = wait_for("the cron job's pod", LONG, || {
        pods(&lab, &format!("job-name={jname}"))
            .into_iter()
            .next()
            .ok_or_else(|| "none".to_string())
    });
    assert_eq!(
        lab.kubectl_ok(&["logs", &name(&pod)]).trim(),
        "hello from the cron job"
    );
    wait_for("lastSuccessfulTime", LONG, || {
        let cj = get_json(&lab, &["cronjob", "hello"])?;
        cj["status"]["lastSuccessfulTime"]
            .as_str()
            .map(|_| ())
            .ok_or_else(|| cj["status"].to_string())
    });
    let out = lab.kubectl_ok(&["create", "job", "by-hand", "--from=cronjob/hello"]);
    assert_eq!(out.trim(), "job.batch/by-hand created");
    lab.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/by-hand",
        "--timeout=60s",
    ]);
}

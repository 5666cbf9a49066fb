//! kubectl-side helpers shared by the end-to-end tests: bounded polls, manifests applied from text,
//! objects read as JSON, pods waited for.

use super::{Lab, kubectl_bin};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const LONG: Duration = Duration::from_secs(60);

/// Polls `f` every 200 ms until it returns `Ok`, for at most `limit`; panics naming `what` (and
/// the last thing seen) otherwise.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
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

/// kubectl as a `Command` (for stdin and long-running followers).
pub fn kubectl_cmd(lab: &Lab) -> Command {
    let mut c = Command::new(kubectl_bin());
    c.env("KUBECONFIG", &lab.kubeconfig)
        .arg("--cache-dir")
        .arg(std::env::temp_dir().join(format!("{}.kube-cache", lab.name)));
    c
}

/// stdout and stderr of a finished command, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `kubectl apply` of a manifest given as text.
pub fn apply(lab: &Lab, yaml: &str) {
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

/// `kubectl get <what> -o json`.
pub fn get_json(lab: &Lab, what: &[&str]) -> Result<Value, String> {
    let out = lab.kubectl(&[&["get"], what, &["-o", "json"]].concat());
    if !out.status.success() {
        return Err(text(&out));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

pub fn condition(obj: &Value, kind: &str) -> Option<String> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["status"].as_str().map(String::from))
}

/// Waits until the pod's Ready condition is True; returns the pod.
pub fn wait_pod_ready(lab: &Lab, ns: &str, name: &str) -> Value {
    wait_for(&format!("pod {ns}/{name} Ready"), LONG, || {
        let p = get_json(lab, &["pod", "-n", ns, name])?;
        if condition(&p, "Ready").as_deref() == Some("True") {
            Ok(p)
        } else {
            Err(p["status"].to_string())
        }
    })
}

/// Waits until the Deployment has all its replicas ready and updated; returns its pods (by the
/// Deployment's selector), each Ready.
pub fn wait_deployment_ready(lab: &Lab, ns: &str, name: &str, limit: Duration) -> Vec<Value> {
    wait_for(&format!("deployment {ns}/{name} ready"), limit, || {
        let d = get_json(lab, &["deployment", "-n", ns, name])?;
        let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let selector = d["spec"]["selector"]["matchLabels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let pods = get_json(lab, &["pods", "-n", ns, "-l", &selector])?;
        let items: Vec<Value> = pods["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect();
        let ready = items
            .iter()
            .filter(|p| condition(p, "Ready").as_deref() == Some("True"))
            .count() as i64;
        if ready == want && items.len() as i64 == want {
            Ok(items)
        } else {
            Err(format!(
                "{ready}/{want} ready of {} pods: {}",
                items.len(),
                d["status"]
            ))
        }
    })
}

/// `kubectl exec POD -- ARGS` in the default namespace; the output, or the failure's text.
pub fn exec(lab: &Lab, pod: &str, args: &[&str]) -> Result<String, String> {
    let out = lab.kubectl(&[&["exec", pod, "--"], args].concat());
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(text(&out))
    }
}

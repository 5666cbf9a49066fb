//! RBAC on a running lab (issue 12's "Must show"), with the real kubectl: the lab's own components
//! (node agents, cluster DNS) work under enforcement; an in-cluster kubectl with its pod's bound
//! service-account token gets exactly what a RoleBinding grants, refusals worded as kube-apiserver
//! words them; `auth can-i` and `whoami` from outside with `kubectl create token`; a deleted pod's
//! token stops working; a node agent's credentials read a Secret only for a pod on its node. Root
//! test; its lab is torn down in `Drop` (also on failure). Waits are bounded polls.

mod common;

use common::kube::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

const NS: &str = "rbac-e2e";

fn tools_dir() -> PathBuf {
    kubectl_bin()
        .parent()
        .expect("kubectl is in a directory")
        .to_path_buf()
}

fn manifests() -> String {
    format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: reader, namespace: {NS}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pod-reader, namespace: {NS}}}
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: reader-reads-pods, namespace: {NS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}}
subjects: [{{kind: ServiceAccount, name: reader, namespace: {NS}}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: only-node2, namespace: {NS}}}
stringData: {{password: hunter2}}
---
apiVersion: v1
kind: Pod
metadata: {{name: kubectl, namespace: {NS}}}
spec:
  serviceAccountName: reader
  nodeSelector: {{kubernetes.io/hostname: node1}}
  terminationGracePeriodSeconds: 1
  containers:
  - name: kubectl
    image: busybox
    command: ["sleep", "3600"]
    env: [{{name: HOME, value: /tmp}}]
    volumeMounts: [{{name: tools, mountPath: /tools, readOnly: true}}]
  volumes:
  - name: tools
    hostPath: {{path: {tools}, type: Directory}}
---
apiVersion: v1
kind: Pod
metadata: {{name: uses-secret, namespace: {NS}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: node2}}
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: ["sleep", "3600"]
    volumeMounts: [{{name: s, mountPath: /s}}]
  volumes:
  - name: s
    secret: {{secretName: only-node2}}
"#,
        tools = tools_dir().display()
    )
}

fn out(o: &Output) -> (bool, String, String) {
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// kubectl inside the pod, with the pod's own service-account token (in-cluster configuration).
fn in_pod(lab: &Lab, args: &[&str]) -> (bool, String, String) {
    out(&lab.kubectl(&[&["exec", "-n", NS, "kubectl", "--", "/tools/kubectl"], args].concat()))
}

/// kubectl from outside with another kubeconfig.
fn with(lab: &Lab, kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let o = std::process::Command::new(kubectl_bin())
        .env("KUBECONFIG", kubeconfig)
        .arg("--cache-dir")
        .arg(std::env::temp_dir().join(format!("{}.rbac-cache", lab.name)))
        .args(args)
        .output()
        .expect("run kubectl");
    out(&o)
}

/// A kubeconfig file read by kubectl itself (long values are folded over lines in YAML).
fn kubeconfig_json(lab: &Lab, path: &Path) -> serde_json::Value {
    let (ok, text, err) = with(lab, path, &["config", "view", "--raw", "-o", "json"]);
    assert!(ok, "read {}: {err}", path.display());
    serde_json::from_str(&text).expect("kubectl config view prints JSON")
}

/// A kubeconfig for `token`: the lab's server and CA, with `token` as the credentials.
fn token_kubeconfig(lab: &Lab, name: &str, token: &str) -> PathBuf {
    let mut v = kubeconfig_json(lab, &lab.kubeconfig);
    for u in v["users"].as_array_mut().expect("users") {
        u["user"] = serde_json::json!({"token": token});
    }
    let path = std::env::temp_dir().join(format!("{}.{name}.kubeconfig", lab.name));
    std::fs::write(&path, v.to_string()).unwrap();
    path
}

/// Removes the test's kubeconfigs and kubectl cache (the lab removes its own).
struct Files(Vec<PathBuf>);

impl Drop for Files {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

#[test]
fn in_cluster_kubectl_gets_what_its_binding_grants() {
    let lab = Lab::up(&["--nodes", "2"]);
    let tmp = |suffix: &str| std::env::temp_dir().join(format!("{}.{suffix}", lab.name));
    let _files = Files(vec![
        tmp("reader.kubeconfig"),
        tmp("pod.kubeconfig"),
        tmp("node1.kubeconfig"),
        tmp("node2.kubeconfig"),
        tmp("rbac-cache"),
    ]);
    // the lab's components under enforcement: DNS answers (its watches need its ClusterRole), node
    // agents run pods with their service-account tokens and Secrets
    apply(&lab, &manifests());
    wait_pod_ready(&lab, NS, "kubectl");
    wait_pod_ready(&lab, NS, "uses-secret");
    wait_deployment_ready(&lab, "kube-system", "podnet-dns", Duration::from_secs(120));

    // in the pod: its binding's rules, nothing more
    let (ok, pods, err) = in_pod(&lab, &["get", "pods", "-o", "name"]);
    assert!(ok, "{err}");
    assert!(
        pods.contains("pod/kubectl") && pods.contains("pod/uses-secret"),
        "{pods}"
    );
    let (ok, _, err) = in_pod(&lab, &["get", "secrets"]);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            r#"secrets is forbidden: User "system:serviceaccount:{NS}:reader" cannot list resource "secrets" in API group "" in the namespace "{NS}""#
        )),
        "{err}"
    );
    let (ok, _, err) = in_pod(&lab, &["get", "pods", "-n", "default"]);
    assert!(
        !ok && err.contains(r#"in the namespace "default""#),
        "{err}"
    );
    let (ok, _, err) = in_pod(&lab, &["delete", "pod", "uses-secret"]);
    assert!(!ok && err.contains("cannot delete resource"), "{err}");
    assert_eq!(in_pod(&lab, &["auth", "can-i", "watch", "pods"]).1, "yes\n");
    assert_eq!(in_pod(&lab, &["auth", "can-i", "create", "pods"]).1, "no\n");
    let (ok, who, err) = in_pod(&lab, &["auth", "whoami"]);
    assert!(ok, "{err}");
    assert!(
        who.contains(&format!("system:serviceaccount:{NS}:reader"))
            && who.contains("authentication.kubernetes.io/pod-name")
            && who.contains("[kubectl]"),
        "{who}"
    );

    // from outside, with `kubectl create token`
    let token = lab.kubectl_ok(&["create", "token", "reader", "-n", NS]);
    let kc = token_kubeconfig(&lab, "reader", token.trim());
    let (_, list, _) = with(&lab, &kc, &["auth", "can-i", "--list", "-n", NS]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("pods ") && l.ends_with("[get list watch]")),
        "{list}"
    );
    assert_eq!(
        with(&lab, &kc, &["auth", "can-i", "get", "secrets", "-n", NS]).1,
        "no\n"
    );

    // a node agent's own credentials: the Secret of a pod on node2 is node2's to read, not node1's
    // (its kubeconfig names the API server's address on the lab network: the lab's own address
    // with the node's token reaches the same server from here)
    let node_kc = |node: &str| {
        let own = PathBuf::from("/var/lib/podnet")
            .join(&lab.name)
            .join("nodes")
            .join(node)
            .join("agent/kubeconfig");
        let v = kubeconfig_json(&lab, &own);
        let token = v["users"][0]["user"]["token"]
            .as_str()
            .expect("a token")
            .to_string();
        token_kubeconfig(&lab, node, token.trim())
    };
    let (ok, _, err) = with(
        &lab,
        &node_kc("node2"),
        &["get", "secret", "only-node2", "-n", NS],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = with(
        &lab,
        &node_kc("node1"),
        &["get", "secret", "only-node2", "-n", NS],
    );
    assert!(!ok);
    assert!(
        err.contains("no relationship found between node 'node1' and this object"),
        "{err}"
    );

    // the pod's own token dies with the pod
    let (ok, pod_token, err) = out(&lab.kubectl(&[
        "exec",
        "-n",
        NS,
        "kubectl",
        "--",
        "cat",
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
    ]));
    assert!(ok, "{err}");
    let pod_kc = token_kubeconfig(&lab, "pod", pod_token.trim());
    assert!(with(&lab, &pod_kc, &["get", "pods", "-n", NS]).0);
    lab.kubectl_ok(&[
        "delete",
        "pod",
        "kubectl",
        "-n",
        NS,
        "--wait=true",
        "--timeout=60s",
    ]);
    let (ok, _, err) = with(&lab, &pod_kc, &["get", "pods", "-n", NS]);
    assert!(!ok && err.contains("Unauthorized"), "{err}");
    // the token made with `create token` (bound to the service account only) still works
    assert!(with(&lab, &kc, &["get", "pods", "-n", NS]).0);
}

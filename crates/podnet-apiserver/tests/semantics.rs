//! Behaviour real clients rely on that an earlier build got wrong (found in review), each checked the
//! way a user meets it, with the real kubectl and helm where they are the ones who noticed.

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;

use common::TestServer;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn a_service_switched_back_to_cluster_ip_gives_up_its_node_ports() {
    let t = TestServer::start();
    t.k(&[
        "create",
        "service",
        "nodeport",
        "web",
        "--tcp=80:80",
        "--node-port=30080",
    ]);
    let out = t.k(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"type":"ClusterIP"}}"#,
    ]);
    assert_eq!(out.trim(), "service/web patched");
    let svc = json(&t.k(&["get", "svc", "web", "-o", "json"]));
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert!(svc["spec"]["ports"][0].get("nodePort").is_none(), "{svc}");
    assert!(svc["spec"].get("externalTrafficPolicy").is_none(), "{svc}");
    // the port went back to the pool
    t.k(&[
        "create",
        "service",
        "nodeport",
        "other",
        "--tcp=80:80",
        "--node-port=30080",
    ]);
    // a nodePort the client sets on a ClusterIP Service is still refused
    let e = t.k_err(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"ports":[{"port":80,"nodePort":30081}]}}"#,
    ]);
    assert!(e.contains("spec.ports[0].nodePort: Forbidden"), "{e}");
}

#[test]
fn helm_rolls_back_across_a_service_type_change() {
    let t = TestServer::start();
    let chart = t.file(
        "chart/Chart.yaml",
        "apiVersion: v2\nname: svc\nversion: 0.1.0\n",
    );
    let chart = std::path::Path::new(&chart)
        .parent()
        .unwrap()
        .display()
        .to_string();
    t.file("chart/values.yaml", "type: ClusterIP\n");
    t.file(
        "chart/templates/service.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: {{ .Values.type }}\n  selector:\n    app: web\n  ports:\n  - port: 80\n",
    );
    t.h(&["install", "dev", &chart]);
    t.h(&["upgrade", "dev", &chart, "--set", "type=NodePort"]);
    let out = t.h(&["rollback", "dev", "1"]);
    assert!(out.contains("Rollback was a success"), "{out}");
    assert_eq!(
        t.k(&["get", "svc", "web", "-o", "jsonpath={.spec.type}"]),
        "ClusterIP"
    );
}

#[test]
fn server_side_apply_after_client_side_apply_prunes_what_was_dropped() {
    let t = TestServer::start();
    let pod = |labels: &str, image: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n{labels}spec:\n  containers:\n  - name: nginx\n    image: {image}\n"
        )
    };
    let first = t.file(
        "first.yaml",
        &pod("  labels:\n    app: web\n    tier: front\n", "nginx:1.27"),
    );
    // metadata with nothing but the name: it must not conflict with the manager kubectl gives the
    // last-applied annotation to
    let second = t.file("second.yaml", &pod("", "nginx:1.28"));
    t.k(&["apply", "-f", &first]);
    // kubectl moves the client-side apply's field ownership to its server-side manager (a JSON patch of
    // managedFields), then applies again so that the fields the new configuration dropped go
    let o = t.kubectl(&["apply", "--server-side", "-f", &second]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(!stderr.contains("Warning"), "{stderr}");
    let p = json(&t.k(&["get", "pod", "web", "-o", "json", "--show-managed-fields"]));
    assert!(p["metadata"].get("labels").is_none(), "{}", p["metadata"]);
    assert_eq!(p["spec"]["containers"][0]["image"], "nginx:1.28");
    let managers: Vec<&str> = p["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert!(
        !managers.contains(&"kubectl-client-side-apply"),
        "{managers:?}"
    );
    // and it stays a clean server-side apply
    let o = t.kubectl(&["apply", "--server-side", "-f", &second]);
    assert!(o.status.success());
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Replica counts of the deployment's sets, keyed by image.
fn set_sizes(t: &TestServer) -> Vec<(String, i64)> {
    let v = json(&t.k(&["get", "rs", "-l", "app=web", "-o", "json"]));
    let mut out: Vec<(String, i64)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rs| {
            (
                rs["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                rs["spec"]["replicas"].as_i64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_rolling_update_whose_new_pods_never_become_available_stops_at_the_surge() {
    let t = TestServer::start();
    // no nodes: no pod ever becomes available, old or new
    t.k(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1",
        "--replicas=4",
    ]);
    t.eventually(10, "4 pods", || set_sizes(&t) == [("nginx:1".into(), 4)]);
    t.k(&["set", "image", "deploy/web", "nginx=nginx:2"]);
    // 25% surge and unavailability of 4: one extra pod, and the old set keeps 3 (kube's arithmetic)
    let want = [("nginx:1".to_string(), 3), ("nginx:2".to_string(), 2)];
    t.eventually(10, "the rollout to reach the surge", || {
        set_sizes(&t) == want
    });
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert_eq!(set_sizes(&t), want);
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_watch_without_initial_events_sends_only_changes() {
    let t = TestServer::start();
    t.k(&["create", "configmap", "before", "--from-literal=a=1"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = t.client().await;
        let path = "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=false&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=2";
        let watch = tokio::spawn({
            let client = client.clone();
            async move { common::client::raw(&client, "GET", path, None, Vec::new()).await }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let body = br#"{"metadata":{"name":"after"}}"#.to_vec();
        let (code, ..) = common::client::raw(
            &client,
            "POST",
            "/api/v1/namespaces/default/configmaps",
            Some("application/json"),
            body,
        )
        .await;
        assert_eq!(code, 201);
        let (code, _, _, bytes) = watch.await.unwrap();
        assert_eq!(code, 200);
        let events: Vec<(String, String)> = String::from_utf8_lossy(&bytes)
            .lines()
            .map(|l| {
                let v = json(l);
                (
                    v["type"].as_str().unwrap().to_string(),
                    v["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        assert_eq!(events, [("ADDED".to_string(), "after".to_string())]);
    });
}

#[test]
fn the_resource_version_a_json_patch_sets_is_a_precondition() {
    let t = TestServer::start();
    t.k(&["create", "configmap", "cfg", "--from-literal=a=1"]);
    let rv = t.k(&[
        "get",
        "cm",
        "cfg",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    let patch = |rv: &str, value: &str| {
        format!(
            r#"[{{"op":"replace","path":"/metadata/resourceVersion","value":"{rv}"}},{{"op":"replace","path":"/data/a","value":"{value}"}}]"#
        )
    };
    t.k(&["patch", "cm", "cfg", "--type=json", "-p", &patch(&rv, "2")]);
    // the same, now stale, version: 409 and nothing written
    let e = t.k_err(&["patch", "cm", "cfg", "--type=json", "-p", &patch(&rv, "3")]);
    assert!(e.contains("Error from server (Conflict)"), "{e}");
    assert_eq!(t.k(&["get", "cm", "cfg", "-o", "jsonpath={.data.a}"]), "2");
    let e = t.k_err(&["patch", "cm", "cfg", "--type=json", "-p", &patch("x1", "4")]);
    assert!(e.contains("metadata.resourceVersion: Invalid value"), "{e}");
}

#[test]
fn a_dry_run_update_keeps_the_stored_resource_version() {
    let t = TestServer::start();
    t.k(&["create", "configmap", "cfg", "--from-literal=a=1"]);
    let rv = t.k(&[
        "get",
        "cm",
        "cfg",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    let dry = t.k(&[
        "label",
        "cm",
        "cfg",
        "x=y",
        "--dry-run=server",
        "-o",
        "jsonpath={.metadata.resourceVersion} {.metadata.labels.x}",
    ]);
    assert_eq!(dry, format!("{rv} y"));
    // kubectl diff shows only the change, not a vanishing resourceVersion
    let changed = t.file(
        "cfg.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: \"2\"\n",
    );
    let o = t.kubectl(&["diff", "-f", &changed]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("+  a: \"2\""), "{out}");
    assert!(!out.contains("resourceVersion"), "{out}");
    assert_eq!(
        t.k(&[
            "get",
            "cm",
            "cfg",
            "-o",
            "jsonpath={.metadata.resourceVersion}"
        ]),
        rv
    );
}

#[test]
fn a_paused_deployment_scales_but_does_not_roll_out() {
    let t = TestServer::start();
    t.k(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1",
        "--replicas=2",
    ]);
    t.eventually(10, "2 pods", || set_sizes(&t) == [("nginx:1".into(), 2)]);
    t.k(&["rollout", "pause", "deploy/web"]);
    t.k(&["set", "image", "deploy/web", "nginx=nginx:2"]);
    t.k(&["scale", "deploy/web", "--replicas=3"]);
    t.eventually(10, "the scale while paused", || {
        set_sizes(&t) == [("nginx:1".into(), 3)]
    });
    t.eventually(10, "the paused condition", || {
        t.k(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}",
        ]) == "DeploymentPaused"
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(set_sizes(&t), [("nginx:1".to_string(), 3)]);
    t.k(&["rollout", "resume", "deploy/web"]);
    t.eventually(10, "the rollout after the resume", || {
        set_sizes(&t)
            .iter()
            .any(|(image, n)| image == "nginx:2" && *n > 0)
    });
}

#[test]
fn secret_string_data_is_stored_as_data_and_data_must_be_base64() {
    let t = TestServer::start();
    let secret = t.file(
        "secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  user: admin\ndata:\n  token: dG9r\n",
    );
    t.k(&["apply", "-f", &secret]);
    let s = json(&t.k(&["get", "secret", "creds", "-o", "json"]));
    assert_eq!(
        s["data"],
        serde_json::json!({"user": "YWRtaW4=", "token": "dG9r"})
    );
    assert!(s.get("stringData").is_none(), "{s}");
    let rows = common::table(&t.k(&["get", "secret", "creds"]));
    assert_eq!(rows[1][2], "2", "{rows:?}");
    let bad = t.file(
        "bad.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bad\ndata:\n  x: \"!!!\"\n",
    );
    let e = t.k_err(&["apply", "-f", &bad]);
    assert!(e.contains("illegal base64 data at input byte 0"), "{e}");
    t.k_err(&["get", "secret", "bad"]);
}

#[test]
fn a_patch_cannot_move_or_rename_an_object_or_change_its_uid() {
    let t = TestServer::start();
    t.k(&["create", "configmap", "cfg", "--from-literal=a=1"]);
    let uid = t.k(&["get", "cm", "cfg", "-o", "jsonpath={.metadata.uid}"]);
    let e = t.k_err(&[
        "patch",
        "cm",
        "cfg",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/metadata/name","value":"other"}]"#,
    ]);
    assert!(
        e.contains("the name of the object (other) does not match the name on the URL (cfg)"),
        "{e}"
    );
    let e = t.k_err(&[
        "patch",
        "cm",
        "cfg",
        "--type=merge",
        "-p",
        r#"{"metadata":{"namespace":"kube-system"}}"#,
    ]);
    assert!(
        e.contains("does not match the namespace on the request (default)"),
        "{e}"
    );
    let e = t.k_err(&[
        "patch",
        "cm",
        "cfg",
        "--type=merge",
        "-p",
        r#"{"metadata":{"uid":"0c8a5b1e-0000-0000-0000-000000000000"}}"#,
    ]);
    assert!(e.contains("metadata.uid: Invalid value"), "{e}");
    assert!(e.contains("field is immutable"), "{e}");
    assert_eq!(
        t.k(&["get", "cm", "cfg", "-o", "jsonpath={.metadata.uid}"]),
        uid
    );
    // nothing renamed or moved (kube-root-ca.crt is every namespace's, as on a real cluster)
    assert_eq!(
        t.k(&["get", "cm", "-o", "name"]).trim(),
        "configmap/cfg\nconfigmap/kube-root-ca.crt"
    );
}

#[test]
fn rollout_status_reports_an_exceeded_progress_deadline() {
    let t = TestServer::start();
    // no nodes: the pods never become available, so the rollout cannot finish
    let d = t.file(
        "d.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  progressDeadlineSeconds: 1\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: nginx\n        image: nginx\n",
    );
    t.k(&["apply", "-f", &d]);
    std::thread::sleep(Duration::from_secs(3));
    // the controller looks again on its resync; a change to the deployment makes it look now
    t.k(&["annotate", "deploy/web", "nudge=1"]);
    let e = t.k_err(&["rollout", "status", "deploy/web", "--timeout=20s"]);
    assert!(
        e.contains("deployment \"web\" exceeded its progress deadline"),
        "{e}"
    );
    let reason = t.k(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}",
    ]);
    assert_eq!(reason, "ProgressDeadlineExceeded");
}

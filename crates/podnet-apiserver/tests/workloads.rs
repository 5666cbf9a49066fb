//! The workload controllers driven by the real kubectl, with the test playing each node's kubelet
//! step by step (pods Running, Ready, Failed, Succeeded, finalized when deleted), so the order of
//! what the controllers do can be checked: DaemonSets on matching nodes with rolling updates and
//! `rollout history/undo`, StatefulSets started in order and scaled down in reverse with partitioned
//! updates, Jobs with back-off, indexes and `kubectl wait`, CronJobs from kubectl, and cascading
//! deletion (foreground, background, orphan). The lab end-to-end tests (`crates/podnet/tests/
//! workloads.rs`) run the same workloads with real pods.

mod common;

use std::sync::Arc;

use common::{TestServer, table};
use podnet_apimachinery::resources::{self, ResourceDef};
use podnet_apiserver::registry::{Api, DeleteOptions};
use serde_json::{Value, json};

fn pods_def() -> &'static ResourceDef {
    resources::find("", "v1", "pods").unwrap()
}

fn api(t: &TestServer) -> Arc<Api> {
    t.handle.as_ref().expect("running").api()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn get(t: &TestServer, args: &[&str]) -> Value {
    let out = t.k(&[&["get"], args, &["-o", "json"]].concat());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn try_get(t: &TestServer, args: &[&str]) -> Option<Value> {
    let out = t.kubectl(&[&["get"], args, &["-o", "json"]].concat());
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn pods(t: &TestServer, selector: &str) -> Vec<Value> {
    let mut items = get(t, &["pods", "-l", selector])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    items.sort_by_key(|p| p["metadata"]["name"].as_str().unwrap().to_string());
    items
}

fn names(pods: &[Value]) -> Vec<String> {
    pods.iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Plays the kubelet: the pod runs, Ready or not.
fn run(t: &TestServer, name: &str, ready: bool) {
    let now = now();
    rt().block_on(api(t).mutate(pods_def(), "default", name, Some("status"), |o| {
        let statuses: Vec<Value> = o["spec"]["containers"].as_array().unwrap().iter()
            .map(|c| json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": ready, "started": true,
                "restartCount": 0, "state": {"running": {"startedAt": now}}}))
            .collect();
        o["status"] = json!({"phase": "Running", "podIP": "10.244.1.9", "hostIP": "127.0.0.1", "startTime": now,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": now}],
            "containerStatuses": statuses});
        true
    }))
    .unwrap();
}

/// Plays the kubelet: the pod's container exited with `code` (restartPolicy Never).
fn exit(t: &TestServer, name: &str, code: i64) {
    let now = now();
    rt().block_on(api(t).mutate(pods_def(), "default", name, Some("status"), |o| {
        let statuses: Vec<Value> = o["spec"]["containers"].as_array().unwrap().iter()
            .map(|c| json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": false, "started": false,
                "restartCount": 0, "state": {"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" },
                "startedAt": now, "finishedAt": now}}}))
            .collect();
        o["status"] = json!({"phase": if code == 0 { "Succeeded" } else { "Failed" }, "startTime": now,
            "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted"}],
            "containerStatuses": statuses});
        true
    }))
    .unwrap();
}

/// Plays the kubelet: pods being deleted are finished off (a grace-0 delete, which waits for
/// finalizers as a real kubelet's does).
fn finish_deletions(t: &TestServer) {
    let api = api(t);
    for p in api.list_values(pods_def(), Some("default")) {
        if p["metadata"].get("deletionTimestamp").is_some() {
            let name = p["metadata"]["name"].as_str().unwrap().to_string();
            let opts = DeleteOptions {
                grace_period: Some(0),
                ..Default::default()
            };
            let _ = rt().block_on(api.delete(pods_def(), "default", &name, &opts));
        }
    }
}

fn deleting(p: &Value) -> bool {
    p["metadata"].get("deletionTimestamp").is_some()
}

fn apply(t: &TestServer, name: &str, yaml: &str) {
    let f = t.file(name, yaml);
    t.k(&["apply", "-f", &f]);
}

#[test]
fn daemonset_runs_on_every_matching_node_and_rolls_back() {
    let t = TestServer::start();
    for n in ["node1", "node2", "node3"] {
        t.add_node(n, 10250);
    }
    t.k(&["label", "node", "node1", "node2", "role=edge"]);
    apply(
        &t,
        "ds.yaml",
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {role: edge}
      containers: [{name: agent, image: "busybox:1.36"}]
"#,
    );
    t.eventually(10, "a pod on node1 and node2", || {
        let ps = pods(&t, "app=agent");
        let mut nodes: Vec<&str> = ps
            .iter()
            .filter_map(|p| p["spec"]["nodeName"].as_str())
            .collect();
        nodes.sort();
        nodes == ["node1", "node2"]
    });
    let p = &pods(&t, "app=agent")[0];
    assert_eq!(
        p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchFields"][0]["key"],
        "metadata.name"
    );
    let tolerated: Vec<&str> = p["spec"]["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["key"].as_str())
        .collect();
    assert!(
        tolerated.contains(&"node.kubernetes.io/unschedulable"),
        "{tolerated:?}"
    );
    for p in pods(&t, "app=agent") {
        run(&t, p["metadata"]["name"].as_str().unwrap(), true);
    }
    t.eventually(10, "ds status", || {
        table(&t.k(&["get", "ds", "agent"]))
            .get(1)
            .map(|r| r[1..6].join(" "))
            == Some("2 2 2 2 2".into())
    });
    let rows = table(&t.k(&["get", "ds", "agent"]));
    assert_eq!(
        rows[0],
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE",
            "SELECTOR",
            "AGE"
        ]
    );
    assert_eq!(rows[1][6], "role=edge");
    let described = t.k(&["describe", "ds", "agent"]);
    assert!(
        described.contains("Desired Number of Nodes Scheduled: 2"),
        "{described}"
    );
    assert_eq!(
        t.k(&["rollout", "status", "ds/agent", "--timeout=10s"])
            .trim(),
        "daemon set \"agent\" successfully rolled out"
    );
    // a cordoned node keeps its daemon pod; a node that starts matching gets one
    t.k(&["cordon", "node1"]);
    t.k(&["label", "node", "node3", "role=edge"]);
    t.eventually(10, "a pod on node3", || pods(&t, "app=agent").len() == 3);
    let on3 = pods(&t, "app=agent")
        .into_iter()
        .find(|p| p["spec"]["nodeName"] == "node3")
        .unwrap();
    run(&t, on3["metadata"]["name"].as_str().unwrap(), true);

    // a rolling update: maxUnavailable 1, so one node at a time loses its pod
    t.k(&["set", "image", "ds/agent", "agent=busybox:1.37"]);
    for round in 0..3 {
        t.eventually(10, "one old pod deleted", || {
            pods(&t, "app=agent").iter().filter(|p| deleting(p)).count() == 1
        });
        let gone = pods(&t, "app=agent")
            .into_iter()
            .filter(|p| !deleting(p))
            .count();
        assert_eq!(gone, 2, "round {round}: the others keep running");
        finish_deletions(&t);
        t.eventually(10, "its replacement", || {
            pods(&t, "app=agent").iter().any(|p| {
                p["spec"]["containers"][0]["image"] == "busybox:1.37"
                    && p["status"]["phase"] != "Running"
            })
        });
        for p in pods(&t, "app=agent") {
            if p["status"]["phase"] != "Running" {
                run(&t, p["metadata"]["name"].as_str().unwrap(), true);
            }
        }
    }
    t.eventually(10, "rolled out", || {
        t.kubectl(&["rollout", "status", "ds/agent", "--timeout=1s"])
            .status
            .success()
    });
    let history = t.k(&["rollout", "history", "ds/agent"]);
    assert_eq!(
        table(&history)[1..],
        [
            vec!["REVISION", "CHANGE-CAUSE"],
            vec!["1", "<none>"],
            vec!["2", "<none>"]
        ],
        "{history}"
    );
    let revs = table(&t.k(&["get", "controllerrevisions"]));
    assert_eq!(revs[0], ["NAME", "CONTROLLER", "REVISION", "AGE"]);
    assert!(
        revs[1..].iter().all(|r| r[1] == "daemonset.apps/agent"),
        "{revs:?}"
    );
    assert_eq!(
        t.k(&["rollout", "undo", "ds/agent"]).trim(),
        "daemonset.apps/agent rolled back"
    );
    let ds = get(&t, &["ds", "agent"]);
    assert_eq!(
        ds["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.36"
    );
    t.eventually(10, "revision 1 renumbered as 3", || {
        let h = t.k(&["rollout", "history", "ds/agent"]);
        table(&h)[1..]
            == [
                vec!["REVISION", "CHANGE-CAUSE"],
                vec!["2", "<none>"],
                vec!["3", "<none>"],
            ]
    });
    // the node that stops matching loses its pod
    t.k(&["label", "node", "node3", "role-"]);
    t.eventually(10, "node3's pod deleted", || {
        pods(&t, "app=agent")
            .iter()
            .any(|p| p["spec"]["nodeName"] == "node3" && deleting(p))
    });
}

#[test]
fn statefulset_starts_in_order_scales_down_in_reverse_and_updates_to_the_partition() {
    let t = TestServer::start();
    t.add_node("node1", 10250);
    let sts = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: nginx
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: "nginx:1.25"}]
"#;
    apply(&t, "sts.yaml", sts);
    for (i, name) in ["web-0", "web-1", "web-2"].iter().enumerate() {
        t.eventually(10, name, || names(&pods(&t, "app=web")).len() == i + 1);
        // only the next ordinal exists, and only once the one before is Running and Ready
        assert_eq!(names(&pods(&t, "app=web")).last().unwrap(), name);
        run(&t, name, false);
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert_eq!(
            pods(&t, "app=web").len(),
            i + 1,
            "{name} is not Ready: nothing new"
        );
        run(&t, name, true);
    }
    let p = get(&t, &["pod", "web-1"]);
    assert_eq!(
        (
            p["spec"]["hostname"].as_str(),
            p["spec"]["subdomain"].as_str()
        ),
        (Some("web-1"), Some("nginx"))
    );
    assert_eq!(
        p["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
        "web-1"
    );
    assert_eq!(p["metadata"]["labels"]["apps.kubernetes.io/pod-index"], "1");
    t.eventually(10, "3/3", || {
        table(&t.k(&["get", "sts", "web"]))[1][1] == "3/3"
    });
    assert_eq!(table(&t.k(&["get", "sts"]))[0], ["NAME", "READY", "AGE"]);
    t.eventually(10, "rolled out", || {
        t.kubectl(&["rollout", "status", "sts/web", "--timeout=1s"])
            .status
            .success()
    });

    // a partitioned update: only ordinals >= 2
    t.k(&[
        "patch",
        "sts",
        "web",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}"#,
    ]);
    t.k(&["set", "image", "sts/web", "nginx=nginx:1.27"]);
    t.eventually(10, "web-2 replaced", || {
        deleting(&get(&t, &["pod", "web-2"]))
    });
    finish_deletions(&t);
    t.eventually(10, "web-2 back", || {
        try_get(&t, &["pod", "web-2"])
            .is_some_and(|p| !deleting(&p) && p["spec"]["containers"][0]["image"] == "nginx:1.27")
    });
    run(&t, "web-2", true);
    t.eventually(10, "partitioned roll out complete", || {
        t.k(&["rollout", "status", "sts/web", "--timeout=1s"])
            .contains("partitioned roll out complete: 1 new pods have been updated")
    });
    assert_eq!(
        get(&t, &["pod", "web-0"])["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );
    let h = table(&t.k(&["rollout", "history", "sts/web"]));
    assert_eq!(
        h[1..],
        [
            vec!["REVISION", "CHANGE-CAUSE"],
            vec!["1", "<none>"],
            vec!["2", "<none>"]
        ],
        "{h:?}"
    );
    let described = t.k(&["describe", "sts", "web"]);
    assert!(
        described.contains("Pods Status:") && described.contains("SuccessfulCreate"),
        "{described}"
    );

    // scale down: web-2 first, web-1 only once web-2 is gone
    t.k(&["scale", "sts", "web", "--replicas=1"]);
    t.eventually(10, "web-2 deleted", || {
        deleting(&get(&t, &["pod", "web-2"]))
    });
    assert!(
        !deleting(&get(&t, &["pod", "web-1"])),
        "web-1 waits for web-2"
    );
    finish_deletions(&t);
    t.eventually(10, "web-1 deleted", || {
        try_get(&t, &["pod", "web-1"]).is_some_and(|p| deleting(&p))
    });
    finish_deletions(&t);
    t.eventually(10, "one left", || names(&pods(&t, "app=web")) == ["web-0"]);

    // undo: the template of revision 1 (renumbered 3)
    assert_eq!(
        t.k(&["rollout", "undo", "sts/web"]).trim(),
        "statefulset.apps/web rolled back"
    );
    assert_eq!(
        get(&t, &["sts", "web"])["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );
    t.eventually(10, "revision 3", || {
        table(&t.k(&["rollout", "history", "sts/web"]))[1..]
            == [
                vec!["REVISION", "CHANGE-CAUSE"],
                vec!["2", "<none>"],
                vec!["3", "<none>"],
            ]
    });

    // orphaned by --cascade=orphan, the pods are taken back by the set created again (not left
    // beside new ones that cannot be created under the same names)
    t.k(&["delete", "sts", "web", "--cascade=orphan"]);
    let again = t.file("sts-again.yaml", sts);
    t.k(&["apply", "-f", &again]);
    let uid = t.k(&["get", "sts", "web", "-o", "jsonpath={.metadata.uid}"]);
    t.eventually(10, "the orphaned pods adopted", || {
        let owners = t.k(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={range .items[*]}{.metadata.ownerReferences[0].uid}{\"\\n\"}{end}",
        ]);
        !owners.trim().is_empty() && owners.lines().all(|o| o == uid)
    });

    // maxUnavailable is not implemented: refused by name, not ignored
    let mu = sts
        .replace("name: web}", "name: mu}")
        .replace("app: web", "app: mu")
        + "  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 2}}\n";
    let f = t.file("mu.yaml", &mu);
    let err = t.k_err(&["apply", "-f", &f]);
    assert!(
        err.contains("spec.updateStrategy.rollingUpdate.maxUnavailable: Forbidden"),
        "{err}"
    );

    // claims need an API this cluster does not serve yet: refused, naming it
    let vct = sts
        .replace("name: web}", "name: db}")
        .replace("app: web", "app: db")
        + "  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n";
    let f = t.file("vct.yaml", &vct);
    let err = t.k_err(&["apply", "-f", &f]);
    assert!(
        err.contains("spec.volumeClaimTemplates: Forbidden: volumeClaimTemplates need PersistentVolumeClaims (core/v1 persistentvolumeclaims)"),
        "{err}"
    );
}

#[test]
fn jobs_retry_after_a_back_off_count_indexes_and_finish() {
    let t = TestServer::start();
    t.add_node("node1", 10250);
    // kubectl create job sends a protobuf body
    t.k(&[
        "create",
        "job",
        "once",
        "--image=busybox",
        "--",
        "sh",
        "-c",
        "exit 0",
    ]);
    let job = get(&t, &["job", "once"]);
    let uid = job["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        uid
    );
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"]["job-name"],
        "once"
    );
    assert_eq!(job["spec"]["backoffLimit"], 6);
    // the first pod fails: the next one comes after the 10 s back-off
    t.eventually(10, "first pod", || pods(&t, "job-name=once").len() == 1);
    let first = names(&pods(&t, "job-name=once"))[0].clone();
    assert_eq!(
        get(&t, &["pod", &first])["metadata"]["finalizers"],
        json!(["batch.kubernetes.io/job-tracking"])
    );
    exit(&t, &first, 1);
    let failed_at = std::time::Instant::now();
    t.eventually(20, "second pod", || pods(&t, "job-name=once").len() == 2);
    assert!(
        failed_at.elapsed() >= std::time::Duration::from_secs(9),
        "the retry waits for the back-off"
    );
    let job = get(&t, &["job", "once"]);
    assert_eq!(job["status"]["failed"], 1);
    assert!(
        get(&t, &["pod", &first])["metadata"]
            .get("finalizers")
            .is_none_or(|f| f == &json!([]))
    );
    let second = names(&pods(&t, "job-name=once"))
        .into_iter()
        .find(|n| *n != first)
        .unwrap();
    run(&t, &second, true);
    exit(&t, &second, 0);
    let out = t.k(&[
        "wait",
        "--for=condition=complete",
        "job/once",
        "--timeout=20s",
    ]);
    assert_eq!(out.trim(), "job.batch/once condition met");
    let job = get(&t, &["job", "once"]);
    let conds: Vec<(&str, &str)> = job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["type"].as_str().unwrap(), c["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        conds,
        [
            ("SuccessCriteriaMet", "CompletionsReached"),
            ("Complete", "CompletionsReached")
        ]
    );
    assert_eq!(
        (
            job["status"]["succeeded"].as_i64(),
            job["status"]["failed"].as_i64()
        ),
        (Some(1), Some(1))
    );
    assert!(job["status"]["completionTime"].is_string());
    let described = t.k(&["describe", "job", "once"]);
    assert!(
        described.contains("0 Active (0 Ready) / 1 Succeeded / 1 Failed"),
        "{described}"
    );
    let all = t.k(&["get", "all"]);
    assert!(all.contains("job.batch/once"), "{all}");
    let explained = t.k(&["explain", "cronjob.spec.concurrencyPolicy"]);
    assert!(explained.contains("Forbid"), "{explained}");
    let rows = table(&t.k(&["get", "jobs"]));
    assert_eq!(
        rows[0],
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    );
    assert_eq!(rows[1][..3], ["once", "Complete", "1/1"]);

    // Indexed: one pod per index, each told its index
    apply(
        &t,
        "indexed.yaml",
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: parts}
spec:
  completionMode: Indexed
  completions: 3
  parallelism: 3
  template:
    spec:
      restartPolicy: Never
      containers: [{name: w, image: busybox, command: ["sh", "-c", "echo $JOB_COMPLETION_INDEX"]}]
"#,
    );
    t.eventually(10, "three pods", || pods(&t, "job-name=parts").len() == 3);
    let mut indexes: Vec<String> = pods(&t, "job-name=parts")
        .iter()
        .map(|p| {
            assert_eq!(
                p["spec"]["containers"][0]["env"][0]["name"],
                "JOB_COMPLETION_INDEX"
            );
            p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    indexes.sort();
    assert_eq!(indexes, ["0", "1", "2"]);
    for p in pods(&t, "job-name=parts") {
        exit(&t, p["metadata"]["name"].as_str().unwrap(), 0);
    }
    let w = t.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/parts",
        "--timeout=20s",
    ]);
    assert!(
        w.status.success(),
        "{}\n{}",
        t.k(&["get", "job", "parts", "-o", "yaml"]),
        t.k(&["get", "pods", "-o", "yaml", "-l", "job-name=parts"])
    );
    assert_eq!(
        get(&t, &["job", "parts"])["status"]["completedIndexes"],
        "0-2"
    );

    // no retries left: FailureTarget, then Failed; a TTL removes the finished Job
    apply(
        &t,
        "fail.yaml",
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: doomed}
spec:
  backoffLimit: 0
  ttlSecondsAfterFinished: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: w, image: busybox, command: ["false"]}]
"#,
    );
    t.eventually(10, "its pod", || pods(&t, "job-name=doomed").len() == 1);
    exit(&t, &names(&pods(&t, "job-name=doomed"))[0], 1);
    let out = t.k(&[
        "wait",
        "--for=condition=failed",
        "job/doomed",
        "--timeout=20s",
    ]);
    assert_eq!(out.trim(), "job.batch/doomed condition met");
    t.eventually(15, "the TTL deletes it", || {
        try_get(&t, &["job", "doomed"]).is_none()
    });

    // a Job template with restartPolicy Always is refused as upstream refuses it
    let f = t.file("always.yaml", "apiVersion: batch/v1\nkind: Job\nmetadata: {name: bad}\nspec:\n  template:\n    spec:\n      containers: [{name: w, image: busybox}]\n");
    let err = t.k_err(&["apply", "-f", &f]);
    assert!(
        err.contains(r#"spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never""#),
        "{err}"
    );
}

#[test]
fn cronjobs_from_kubectl() {
    let t = TestServer::start();
    // kubectl create cronjob and create job --from send protobuf bodies
    t.k(&[
        "create",
        "cronjob",
        "hello",
        "--image=busybox",
        "--schedule=*/1 * * * *",
        "--",
        "echo",
        "hi",
    ]);
    let rows = table(&t.k(&["get", "cj"]));
    assert_eq!(
        rows[0],
        [
            "NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"
        ]
    );
    assert_eq!(rows[1][..7], ["hello", "*/1", "*", "*", "*", "*", "<none>"]);
    let out = t.k(&["create", "job", "manual", "--from=cronjob/hello"]);
    assert_eq!(out.trim(), "job.batch/manual created");
    let job = get(&t, &["job", "manual"]);
    assert_eq!(
        job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["command"],
        json!(["echo", "hi"])
    );
    let err = t.k_err(&[
        "create",
        "cronjob",
        "bad",
        "--image=busybox",
        "--schedule=* * *",
    ]);
    assert!(
        err.contains(
            r#"spec.schedule: Invalid value: "* * *": expected exactly 5 fields, found 3: [* * *]"#
        ),
        "{err}"
    );
    let f = t.file("tz.yaml", "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: tz}\nspec:\n  schedule: \"@hourly\"\n  timeZone: Mars/Olympus\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers: [{name: w, image: busybox}]\n");
    let err = t.k_err(&["apply", "-f", &f]);
    assert!(
        err.contains(
            "spec.timeZone: Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus"
        ),
        "{err}"
    );
}

#[test]
fn cascading_deletion_foreground_background_and_orphan() {
    let t = TestServer::start();
    t.add_node("node1", 10250);
    let deploy = |name: &str| {
        t.k(&[
            "create",
            "deployment",
            name,
            "--image=busybox",
            "--replicas=2",
        ]);
        t.eventually(10, "pods", || pods(&t, &format!("app={name}")).len() == 2);
        for p in pods(&t, &format!("app={name}")) {
            run(&t, p["metadata"]["name"].as_str().unwrap(), true);
        }
    };
    // foreground: the Deployment and its ReplicaSet stay, marked, until the pods are gone
    deploy("fg");
    let mut child = t
        .kubectl_cmd(&["delete", "deployment", "fg", "--cascade=foreground"])
        .spawn()
        .unwrap();
    t.eventually(10, "pods deleted first", || {
        pods(&t, "app=fg").iter().all(deleting)
    });
    let d = get(&t, &["deployment", "fg"]);
    assert!(d["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(d["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    let rs = &get(&t, &["rs", "-l", "app=fg"])["items"][0];
    assert_eq!(rs["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    finish_deletions(&t);
    t.eventually(10, "all gone", || {
        try_get(&t, &["deployment", "fg"]).is_none()
            && get(&t, &["rs", "-l", "app=fg"])["items"] == json!([])
    });
    assert!(
        child.wait().unwrap().success(),
        "kubectl delete returns once the owner is gone"
    );

    // background: the owner goes at once, its dependents after
    deploy("bg");
    t.k(&["delete", "deployment", "bg"]);
    t.eventually(10, "dependents collected", || {
        get(&t, &["rs", "-l", "app=bg"])["items"] == json!([])
            && pods(&t, "app=bg").iter().all(deleting)
    });
    finish_deletions(&t);

    // orphan: the ReplicaSet and pods stay, without the owner reference
    deploy("orph");
    t.k(&["delete", "deployment", "orph", "--cascade=orphan"]);
    t.eventually(10, "orphaned", || {
        let rs = get(&t, &["rs", "-l", "app=orph"]);
        rs["items"].as_array().unwrap().len() == 1
            && rs["items"][0]["metadata"].get("ownerReferences").is_none()
    });
    assert_eq!(
        pods(&t, "app=orph").iter().filter(|p| !deleting(p)).count(),
        2
    );
}

#[test]
fn deployment_rollout_verbs() {
    let t = TestServer::start();
    t.add_node("node1", 10250);
    let _kubelet = t.kubelet("node1", true);
    t.k(&[
        "create",
        "deployment",
        "web",
        "--image=busybox:1.36",
        "--replicas=2",
    ]);
    t.k(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"revisionHistoryLimit":2}}"#,
    ]);
    let status = t.k(&["rollout", "status", "deployment/web", "--timeout=20s"]);
    assert!(
        status.ends_with("deployment \"web\" successfully rolled out\n"),
        "{status}"
    );
    // the change-cause goes to the deployment's newest set (annotated before the change, it would
    // land on revision 1, as upstream)
    t.k(&["set", "image", "deployment/web", "busybox=busybox:1.37"]);
    t.k(&[
        "annotate",
        "deployment",
        "web",
        "kubernetes.io/change-cause=image 1.37",
    ]);
    t.k(&["rollout", "status", "deployment/web", "--timeout=20s"]);
    let h = table(&t.k(&["rollout", "history", "deployment/web"]));
    assert_eq!(
        h[1..],
        [
            vec!["REVISION", "CHANGE-CAUSE"],
            vec!["1", "<none>"],
            vec!["2", "image", "1.37"]
        ],
        "{h:?}"
    );
    let rev2 = t.k(&["rollout", "history", "deployment/web", "--revision=2"]);
    assert!(rev2.contains("Image:\tbusybox:1.37"), "{rev2}");
    // undo: back to revision 1's template, which becomes revision 3
    assert_eq!(
        t.k(&["rollout", "undo", "deployment/web"]).trim(),
        "deployment.apps/web rolled back"
    );
    t.k(&["rollout", "status", "deployment/web", "--timeout=20s"]);
    let d = get(&t, &["deployment", "web"]);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.36"
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    let h = table(&t.k(&["rollout", "history", "deployment/web"]));
    assert_eq!(
        h[2..].iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        ["2", "3"]
    );
    let rs3 = get(&t, &["rs", "-l", "app=web"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3")
        .cloned()
        .unwrap();
    assert_eq!(
        rs3["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"],
        "1"
    );
    // pause: a new template waits; resume rolls it
    t.k(&["rollout", "pause", "deployment/web"]);
    t.k(&["set", "image", "deployment/web", "busybox=busybox:1.38"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        get(&t, &["rs", "-l", "app=web"])["items"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "no new set while paused"
    );
    let err = t.k_err(&["rollout", "undo", "deployment/web"]);
    assert!(
        err.contains("you cannot rollback a paused deployment"),
        "{err}"
    );
    t.k(&["rollout", "resume", "deployment/web"]);
    t.k(&["rollout", "status", "deployment/web", "--timeout=20s"]);
    // restart: a new set with the restartedAt annotation; the history limit keeps two old sets
    t.k(&["rollout", "restart", "deployment/web"]);
    t.k(&["rollout", "status", "deployment/web", "--timeout=20s"]);
    let d = get(&t, &["deployment", "web"]);
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    );
    t.eventually(10, "old sets beyond the limit removed", || {
        get(&t, &["rs", "-l", "app=web"])["items"]
            .as_array()
            .unwrap()
            .len()
            == 3
    });
    let revs: Vec<String> = table(&t.k(&["rollout", "history", "deployment/web"]))[2..]
        .iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(revs, ["3", "4", "5"]);
}

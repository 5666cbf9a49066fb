//! LimitRanges with the real kubectl: container defaults and bounds applied to new pods, before the
//! quota counts them.

mod common;

use common::{TestServer, table};

#[test]
fn limit_ranges_default_and_bound_containers() {
    let t = TestServer::start();
    t.k(&["create", "namespace", "team"]);
    let lr = r#"{"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "cpu", "namespace": "team"},
        "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"}, "max": {"cpu": "1"}}]}}"#;
    assert_eq!(
        t.k(&["create", "-f", &t.file("lr.json", lr)]),
        "limitrange/cpu created\n"
    );
    let rows = table(&t.k(&["get", "limits", "-n", "team"]));
    assert_eq!(rows[0], ["NAME", "CREATED", "AT"]);
    // a quota on cpu: the defaults make the pod acceptable to it
    t.k(&["create", "quota", "q", "-n", "team", "--hard=limits.cpu=1"]);
    t.k(&[
        "run",
        "a",
        "-n",
        "team",
        "--image=busybox",
        "--restart=Never",
    ]);
    assert_eq!(
        t.k(&[
            "get",
            "pod",
            "a",
            "-n",
            "team",
            "-o",
            "jsonpath={.spec.containers[0].resources}"
        ]),
        r#"{"limits":{"cpu":"500m"},"requests":{"cpu":"100m"}}"#
    );
    assert_eq!(
        t.k(&[
            "get",
            "pod",
            "a",
            "-n",
            "team",
            "-o",
            "jsonpath={.metadata.annotations.kubernetes\\.io/limit-ranger}"
        ]),
        "LimitRanger plugin set: cpu request for container a; cpu limit for container a"
    );
    let pod = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big", "namespace": "team"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"limits": {"cpu": "2"}}}]}}"#;
    let err = t.k_err(&["create", "-f", &t.file("big.json", pod)]);
    assert!(
        err.contains(
            r#"pods "big" is forbidden: [maximum cpu usage per Container is 1, but limit is 2]"#
        ),
        "{err}"
    );
}

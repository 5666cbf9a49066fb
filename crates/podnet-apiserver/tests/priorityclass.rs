//! scheduling.k8s.io PriorityClasses with the real kubectl: the system classes, `kubectl create
//! priorityclass` and its table, validation, and the Priority admission step on new pods.

mod common;

use common::{TestServer, table};

fn pod(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{extra_spec}  containers:\n  - name: c\n    image: busybox\n"
    )
}

#[test]
fn priority_classes_and_pod_admission() {
    let t = TestServer::start();
    let rows = table(&t.k(&["get", "priorityclasses"]));
    assert_eq!(
        rows[0],
        ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
    );
    assert!(rows.iter().any(
        |r| r[..3] == ["system-cluster-critical", "2000000000", "false"]
            && r[4] == "PreemptLowerPriority"
    ));
    assert!(
        rows.iter()
            .any(|r| r[..2] == ["system-node-critical", "2000001000"])
    );

    assert_eq!(
        t.k(&[
            "create",
            "priorityclass",
            "high",
            "--value=1000",
            "--description=important",
            "--preemption-policy=Never",
        ]),
        "priorityclass.scheduling.k8s.io/high created\n"
    );
    let rows = table(&t.k(&["get", "pc", "high"]));
    assert_eq!(rows[1][..3], ["high", "1000", "false"]);
    assert_eq!(rows[1][4], "Never");
    let err = t.k_err(&["create", "priorityclass", "system-mine", "--value=1"]);
    assert!(
        err.contains("priority class names with 'system-' prefix are reserved for system use only"),
        "{err}"
    );
    let err = t.k_err(&["create", "priorityclass", "huge", "--value=1000000001"]);
    assert!(
        err.contains("maximum allowed value of a user defined priority is 1000000000"),
        "{err}"
    );
    let err = t.k_err(&[
        "patch",
        "pc",
        "high",
        "--type=merge",
        "-p",
        r#"{"value": 5}"#,
    ]);
    assert!(
        err.contains("value: Forbidden: may not be changed in an update."),
        "{err}"
    );

    // pods get their class's value and policy; a missing class refuses the pod
    t.k(&[
        "create",
        "-f",
        &t.file("a.yaml", &pod("a", "  priorityClassName: high\n")),
    ]);
    assert_eq!(
        t.k(&[
            "get",
            "pod",
            "a",
            "-o",
            "jsonpath={.spec.priority} {.spec.preemptionPolicy}"
        ]),
        "1000 Never"
    );
    t.k(&["create", "-f", &t.file("b.yaml", &pod("b", ""))]);
    assert_eq!(
        t.k(&["get", "pod", "b", "-o", "jsonpath={.spec.priority}"]),
        "0"
    );
    let err = t.k_err(&[
        "create",
        "-f",
        &t.file("c.yaml", &pod("c", "  priorityClassName: nope\n")),
    ]);
    assert!(
        err.contains(r#"pods "c" is forbidden: no PriorityClass with name nope was found"#),
        "{err}"
    );
    let err = t.k_err(&[
        "create",
        "-f",
        &t.file(
            "d.yaml",
            &pod("d", "  priorityClassName: high\n  priority: 7\n"),
        ),
    ]);
    assert!(
        err.contains("the integer value of priority (7) must not be provided in pod spec"),
        "{err}"
    );

    // one global default, used by pods that name no class
    t.k(&[
        "create",
        "priorityclass",
        "normal",
        "--value=10",
        "--global-default",
    ]);
    let err = t.k_err(&[
        "create",
        "priorityclass",
        "other",
        "--value=20",
        "--global-default",
    ]);
    assert!(
        err.contains(
            "PriorityClass normal is already marked as default. Only one default can exist"
        ),
        "{err}"
    );
    t.k(&["create", "-f", &t.file("e.yaml", &pod("e", ""))]);
    assert_eq!(
        t.k(&[
            "get",
            "pod",
            "e",
            "-o",
            "jsonpath={.spec.priority} {.spec.priorityClassName}"
        ]),
        "10 normal"
    );
}

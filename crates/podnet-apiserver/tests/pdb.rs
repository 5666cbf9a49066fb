//! policy/v1 PodDisruptionBudgets with the real kubectl: `kubectl create pdb`, its table, validation,
//! and the disruption controller's status over a Deployment's pods.

mod common;

use common::{TestServer, table};

#[test]
fn budgets_report_the_disruptions_allowed() {
    let t = TestServer::start();
    t.add_node("node1", 10250);
    let _kubelet = t.kubelet("node1", true);
    t.k(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=3",
    ]);
    assert_eq!(
        t.k(&[
            "create",
            "pdb",
            "web-min",
            "--selector=app=web",
            "--min-available=2"
        ]),
        "poddisruptionbudget.policy/web-min created\n"
    );
    t.k(&[
        "create",
        "pdb",
        "web-max",
        "--selector=app=web",
        "--max-unavailable=50%",
    ]);
    t.k(&[
        "create",
        "pdb",
        "nothing",
        "--selector=app=none",
        "--max-unavailable=1",
    ]);
    t.eventually(30, "the budgets' status", || {
        let rows = table(&t.k(&["get", "pdb"]));
        rows.len() == 4
            && rows[0] == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"]
            // three Ready pods: 2 must stay (1 may go); 50% of 3 rounds up to 2 that may go
            && rows.iter().any(|r| r[..4] == ["web-min", "2", "N/A", "1"])
            && rows.iter().any(|r| r[..4] == ["web-max", "N/A", "50%", "2"])
            && rows.iter().any(|r| r[..4] == ["nothing", "N/A", "1", "0"])
    });
    let st = t.k(&[
        "get",
        "pdb",
        "web-min",
        "-o",
        "jsonpath={.status.currentHealthy} {.status.desiredHealthy} {.status.expectedPods} {.status.conditions[0].reason}",
    ]);
    assert_eq!(st, "3 2 3 SufficientPods");
    // scaled down to two: nothing may go any more under minAvailable 2
    t.k(&["scale", "deployment", "web", "--replicas=2"]);
    t.eventually(30, "web-min to allow no disruption", || {
        t.k(&[
            "get",
            "pdb",
            "web-min",
            "-o",
            "jsonpath={.status.disruptionsAllowed} {.status.conditions[0].reason}",
        ]) == "0 InsufficientPods"
    });
    let d = t.k(&["describe", "pdb", "web-min"]);
    assert!(
        d.contains("Min available:  2") && d.contains("Allowed disruptions:  0"),
        "{d}"
    );
    // both bounds at once are refused by the server
    let both = r#"{"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "both"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "minAvailable": 1, "maxUnavailable": 1}}"#;
    let err = t.k_err(&["create", "-f", &t.file("both.json", both)]);
    assert!(
        err.contains("minAvailable and maxUnavailable cannot be both set"),
        "{err}"
    );
}

//! ResourceQuota with the real kubectl: `kubectl create quota`, its table and describe with usage kept
//! by the controller, and admission refusing what would go over, worded as kube-apiserver words it.

mod common;

use common::{TestServer, table};

fn pod(name: &str, cpu: Option<&str>) -> String {
    let resources = match cpu {
        Some(c) => {
            format!("\n    resources:\n      requests: {{cpu: {c}}}\n      limits: {{cpu: {c}}}")
        }
        None => String::new(),
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: c\n    image: busybox{resources}\n"
    )
}

#[test]
fn quotas_count_refuse_and_report() {
    let t = TestServer::start();
    t.k(&["create", "namespace", "team"]);
    assert_eq!(
        t.k(&[
            "create",
            "quota",
            "compute",
            "-n",
            "team",
            "--hard=pods=2,requests.cpu=1,limits.cpu=1"
        ]),
        "resourcequota/compute created\n"
    );
    t.k(&[
        "create",
        "quota",
        "objects",
        "-n",
        "team",
        "--hard=configmaps=3,count/deployments.apps=1",
    ]);
    // the controller reports usage (kube-root-ca.crt is a configmap already)
    t.eventually(20, "the quotas' status", || {
        let rows = table(&t.k(&["get", "quota", "-n", "team"]));
        rows.len() == 3
            && rows[0] == ["NAME", "AGE", "REQUEST", "LIMIT"]
            && rows[1]
                .join(" ")
                .contains("pods: 0/2, requests.cpu: 0/1 limits.cpu: 0/1")
            && rows[2]
                .join(" ")
                .contains("configmaps: 1/3, count/deployments.apps: 0/1")
    });

    // a pod must state what the quota tracks
    let err = t.k_err(&[
        "create",
        "-n",
        "team",
        "-f",
        &t.file("p0.yaml", &pod("p0", None)),
    ]);
    assert!(
        err.contains(r#"pods "p0" is forbidden: failed quota: compute: must specify limits.cpu for: c; requests.cpu for: c"#),
        "{err}"
    );
    t.k(&[
        "create",
        "-n",
        "team",
        "-f",
        &t.file("p1.yaml", &pod("p1", Some("600m"))),
    ]);
    let err = t.k_err(&[
        "create",
        "-n",
        "team",
        "-f",
        &t.file("p2.yaml", &pod("p2", Some("500m"))),
    ]);
    assert!(
        err.contains(r#"pods "p2" is forbidden: exceeded quota: compute, requested: limits.cpu=500m,requests.cpu=500m, used: limits.cpu=600m,requests.cpu=600m, limited: limits.cpu=1,requests.cpu=1"#),
        "{err}"
    );
    t.k(&[
        "create",
        "-n",
        "team",
        "-f",
        &t.file("p3.yaml", &pod("p3", Some("400m"))),
    ]);
    let err = t.k_err(&[
        "create",
        "-n",
        "team",
        "-f",
        &t.file("p4.yaml", &pod("p4", Some("0"))),
    ]);
    assert!(
        err.contains("exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2"),
        "{err}"
    );
    t.eventually(20, "describe to show the usage", || {
        let d = t.k(&["describe", "quota", "compute", "-n", "team"]);
        d.lines()
            .any(|l| table(l).first() == Some(&vec!["pods".to_string(), "2".into(), "2".into()]))
            && d.lines().any(|l| {
                table(l).first() == Some(&vec!["requests.cpu".to_string(), "1".into(), "1".into()])
            })
    });
    // deleting frees it again
    t.k(&[
        "delete",
        "pod",
        "p3",
        "-n",
        "team",
        "--grace-period=0",
        "--force",
    ]);
    t.k(&[
        "create",
        "-n",
        "team",
        "-f",
        &t.file("p5.yaml", &pod("p5", Some("100m"))),
    ]);

    // object counts, also of other groups
    t.k(&["create", "configmap", "a", "-n", "team"]);
    t.k(&["create", "configmap", "b", "-n", "team"]);
    let err = t.k_err(&["create", "configmap", "c", "-n", "team"]);
    assert!(
        err.contains(r#"configmaps "c" is forbidden: exceeded quota: objects, requested: configmaps=1, used: configmaps=3, limited: configmaps=3"#),
        "{err}"
    );
    t.k(&[
        "create",
        "deployment",
        "d1",
        "-n",
        "team",
        "--image=busybox",
    ]);
    let err = t.k_err(&[
        "create",
        "deployment",
        "d2",
        "-n",
        "team",
        "--image=busybox",
    ]);
    assert!(
        err.contains("exceeded quota: objects, requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1"),
        "{err}"
    );
    // other namespaces are not limited; scopes are refused, not ignored
    t.k(&["create", "configmap", "free", "-n", "default"]);
    let err = t.k_err(&[
        "create",
        "quota",
        "scoped",
        "-n",
        "team",
        "--hard=pods=1",
        "--scopes=BestEffort",
    ]);
    assert!(
        err.contains("quota scopes are not supported by this cluster"),
        "{err}"
    );
}

/// An update is checked for what it adds: a ClusterIP Service turned into a LoadBalancer under a
/// quota of no load balancers is refused, as kube-apiserver's quota admission checks UPDATE.
#[test]
fn an_update_that_adds_usage_is_checked() {
    let t = TestServer::start();
    t.k(&["create", "namespace", "team"]);
    t.k(&[
        "create",
        "quota",
        "lb",
        "--hard=services.loadbalancers=0",
        "-n",
        "team",
    ]);
    t.k(&[
        "create",
        "service",
        "clusterip",
        "a",
        "--tcp=80",
        "-n",
        "team",
    ]);
    let err = t.k_err(&[
        "patch",
        "service",
        "a",
        "-n",
        "team",
        "-p",
        r#"{"spec":{"type":"LoadBalancer"}}"#,
    ]);
    assert!(
        err.contains("exceeded quota: lb, requested: services.loadbalancers=1"),
        "{err}"
    );
    // an update that adds nothing passes
    t.k(&["label", "service", "a", "-n", "team", "x=y"]);
}

//! The real helm v4.1.4 against podnet's API server: install, upgrade, list, status, uninstall.

mod common;

use common::{TestServer, table};

#[test]
fn helm_install_upgrade_list_status_uninstall() {
    let t = TestServer::start();
    let chart = format!("{}/tests/chart", env!("CARGO_MANIFEST_DIR"));
    let out = t.h(&["install", "dev", &chart]);
    assert!(
        out.contains("STATUS: deployed") && out.contains("REVISION: 1"),
        "{out}"
    );
    assert_eq!(
        t.k(&["get", "cm", "dev-cfg", "-o", "jsonpath={.data.greeting}"]),
        "hello"
    );
    let managers = t.k(&[
        "get",
        "deploy",
        "dev-web",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
        "--show-managed-fields",
    ]);
    assert!(managers.contains("helm"), "{managers}");
    let list = table(&t.h(&["list"]));
    assert_eq!(list[0][0], "NAME");
    assert_eq!(&list[1][..3], ["dev", "default", "1"]);
    assert!(list[1].contains(&"deployed".to_string()), "{list:?}");
    let out = t.h(&[
        "upgrade",
        "dev",
        &chart,
        "--set",
        "greeting=bye",
        "--set",
        "replicas=2",
    ]);
    assert!(out.contains("has been upgraded"), "{out}");
    assert_eq!(
        t.k(&["get", "cm", "dev-cfg", "-o", "jsonpath={.data.greeting}"]),
        "bye"
    );
    assert_eq!(
        t.k(&[
            "get",
            "deploy",
            "dev-web",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "2"
    );
    let status = t.h(&["status", "dev"]);
    assert!(
        status.contains("STATUS: deployed") && status.contains("REVISION: 2"),
        "{status}"
    );
    let history = table(&t.h(&["history", "dev"]));
    assert_eq!(history.len(), 3, "{history:?}");
    let secrets = t.k(&["get", "secrets", "-l", "owner=helm", "-o", "name"]);
    assert_eq!(
        secrets,
        "secret/sh.helm.release.v1.dev.v1\nsecret/sh.helm.release.v1.dev.v2\n"
    );
    let out = t.h(&["uninstall", "dev"]);
    assert!(out.contains("release \"dev\" uninstalled"), "{out}");
    assert!(
        t.k(&[
            "get",
            "cm,deploy,svc,secrets",
            "-l",
            "app=dev-web",
            "-o",
            "name"
        ])
        .is_empty()
    );
    assert!(
        t.k(&["get", "secrets", "-l", "owner=helm", "-o", "name"])
            .is_empty()
    );
    assert!(t.k_err(&["get", "cm", "dev-cfg"]).contains("NotFound"));
    assert!(t.h(&["list", "-q"]).trim().is_empty());
}

#[test]
fn helm_install_wait_until_ready() {
    let t = TestServer::start();
    let node = common::fake_node::FakeNode::start(&t.pki);
    t.add_node("node1", node.port);
    let _kubelet = t.kubelet("node1", true);
    let chart = format!("{}/tests/chart", env!("CARGO_MANIFEST_DIR"));
    // helm --wait watches the deployment and its pods (watch-list) until they are ready
    let out = t.h(&[
        "install",
        "dev2",
        &chart,
        "--wait",
        "--timeout",
        "60s",
        "--set",
        "replicas=2",
    ]);
    assert!(out.contains("STATUS: deployed"), "{out}");
    let d = table(&t.k(&["get", "deploy", "dev2-web"]));
    assert_eq!(&d[1][..4], ["dev2-web", "2/2", "2", "2"]);
    let ep = t.k(&[
        "get",
        "endpoints",
        "dev2-svc",
        "-o",
        "jsonpath={.subsets[0].addresses[*].ip}",
    ]);
    assert_eq!(ep.split(' ').count(), 2, "{ep}");
    let out = t.h(&["uninstall", "dev2", "--wait"]);
    assert!(out.contains("uninstalled"), "{out}");
    t.eventually(20, "pods gone", || {
        t.k(&["get", "pods", "-o", "name"]).is_empty()
    });
}

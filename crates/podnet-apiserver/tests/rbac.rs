//! RBAC and the Node authorizer, driven by the real kubectl and raw HTTP: the default roles, the
//! `kubectl create role/rolebinding/clusterrole/clusterrolebinding` commands, refusals worded as
//! kube-apiserver words them, bindings granting exactly their rules where they are, aggregation,
//! escalation prevention, `kubectl auth can-i` (and `--list`), `whoami`, the access reviews, and what
//! a node may read.

mod common;

use std::path::PathBuf;

use common::{TestServer, s, table};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// A namespace with a service account; returns a kubeconfig with a token of that account.
fn service_account(t: &TestServer, ns: &str, name: &str) -> PathBuf {
    if !t.kubectl(&["get", "ns", ns]).status.success() {
        t.k(&["create", "namespace", ns]);
    }
    t.k(&["create", "serviceaccount", name, "-n", ns]);
    let token = t.k(&["create", "token", name, "-n", ns]);
    let p = t.path().join(format!("kubeconfig-{ns}-{name}"));
    podnet_apiserver::kubeconfig::write_standalone(&p, &t.url, &t.pki.ca_cert_pem, token.trim())
        .unwrap();
    p
}

async fn client_of(kubeconfig: &std::path::Path) -> kube::Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("client config");
    kube::Client::try_from(cfg).expect("client")
}

/// Runs kubectl with `kubeconfig`: (success, stdout, stderr).
fn as_user(t: &TestServer, kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let o = t.kubectl_with(kubeconfig, args);
    (o.status.success(), s(&o.stdout), s(&o.stderr))
}

#[test]
fn default_roles_and_the_create_commands() {
    let t = TestServer::start();
    let defaults = t.k(&[
        "get",
        "clusterroles",
        "-l",
        "kubernetes.io/bootstrapping=rbac-defaults",
        "-o",
        "name",
    ]);
    for r in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
        "system:discovery",
        "system:public-info-viewer",
        "system:node",
        "system:podnet-agent",
    ] {
        assert!(
            defaults
                .lines()
                .any(|l| l == format!("clusterrole.rbac.authorization.k8s.io/{r}")),
            "{r} missing from:\n{defaults}"
        );
    }
    // the aggregated roles hold their parts' rules from the start: view < edit < admin
    let rules = |role: &str| -> Vec<Value> {
        json(&t.k(&["get", "clusterrole", role, "-o", "json"]))["rules"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let (view, edit, admin) = (rules("view"), rules("edit"), rules("admin"));
    assert!(!view.is_empty());
    assert!(view.iter().all(|r| edit.contains(r)));
    assert!(edit.iter().all(|r| admin.contains(r)));
    assert!(edit.len() > view.len() && admin.len() > edit.len());
    let crb = table(&t.k(&["get", "clusterrolebinding", "cluster-admin", "-o", "wide"]));
    assert_eq!(
        crb[0],
        ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    );
    assert_eq!(crb[1][1], "ClusterRole/cluster-admin");
    assert_eq!(crb[1][3], "system:masters");

    t.k(&["create", "namespace", "team"]);
    assert_eq!(
        t.k(&[
            "create",
            "role",
            "pod-reader",
            "--verb=get,list,watch",
            "--resource=pods,pods/log",
            "-n",
            "team"
        ]),
        "role.rbac.authorization.k8s.io/pod-reader created\n"
    );
    assert_eq!(
        t.k(&[
            "create",
            "rolebinding",
            "read-pods",
            "--role=pod-reader",
            "--serviceaccount=team:bot",
            "--user=jane",
            "--group=devs",
            "-n",
            "team"
        ]),
        "rolebinding.rbac.authorization.k8s.io/read-pods created\n"
    );
    assert_eq!(
        t.k(&[
            "create",
            "clusterrole",
            "node-reader",
            "--verb=get,list",
            "--resource=nodes"
        ]),
        "clusterrole.rbac.authorization.k8s.io/node-reader created\n"
    );
    assert_eq!(
        t.k(&[
            "create",
            "clusterrolebinding",
            "read-nodes",
            "--clusterrole=node-reader",
            "--group=devs"
        ]),
        "clusterrolebinding.rbac.authorization.k8s.io/read-nodes created\n"
    );
    let role = json(&t.k(&["get", "role", "pod-reader", "-n", "team", "-o", "json"]));
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]}])
    );
    let rows = table(&t.k(&["get", "rolebinding", "-n", "team", "-o", "wide"]));
    assert_eq!(rows[1][..2], ["read-pods", "Role/pod-reader"]);
    assert_eq!(rows[1][3..], ["jane", "devs", "team/bot"]);
    let rows = table(&t.k(&["get", "roles", "-n", "team"]));
    assert_eq!(rows[0], ["NAME", "CREATED", "AT"]);
    assert!(rows[1][1].ends_with('Z'), "{rows:?}");
    // a subject's API group is defaulted; the roleRef cannot change
    let b = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "devs", "namespace": "team"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "Group", "name": "devs"}, {"kind": "ServiceAccount", "name": "bot"}]});
    t.k(&["create", "-f", &t.file("devs.json", &b.to_string())]);
    let b = json(&t.k(&["get", "rolebinding", "devs", "-n", "team", "-o", "json"]));
    assert_eq!(
        b["subjects"],
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"}, {"kind": "ServiceAccount", "name": "bot"}])
    );
    let err = t.k_err(&[
        "patch",
        "rolebinding",
        "read-pods",
        "-n",
        "team",
        "--type=merge",
        "-p",
        r#"{"roleRef":{"name":"other"}}"#,
    ]);
    assert!(
        err.contains("roleRef: Invalid value") && err.contains("cannot change roleRef"),
        "{err}"
    );
    // validation as Kubernetes words it
    let bad = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "bad", "namespace": "team"},
        "rules": [{"apiGroups": [""], "resources": ["pods"]}, {"verbs": ["get"], "nonResourceURLs": ["/x"]}]});
    let err = t.k_err(&["create", "-f", &t.file("bad.json", &bad.to_string())]);
    assert!(
        err.contains("rules[0].verbs: Required value: verbs must contain at least one value")
            && err.contains("rules[1].nonResourceURLs: Invalid value")
            && err.contains("namespaced rules cannot apply to non-resource URLs"),
        "{err}"
    );
    // a removed default comes back at the next start, an administrator's addition stays
    t.k(&["delete", "clusterrole", "view"]);
    t.k(&["label", "clusterrole", "edit", "team.example/owner=me"]);
    let (dir, pki, tools) = t.stop();
    let t = TestServer::start_in(dir, pki, tools, |_| {});
    assert!(t.kubectl(&["get", "clusterrole", "view"]).status.success());
    let edit = json(&t.k(&["get", "clusterrole", "edit", "-o", "json"]));
    assert_eq!(edit["metadata"]["labels"]["team.example/owner"], "me");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_without_bindings_is_refused_for_every_verb() {
    let t = TestServer::start();
    let kc = service_account(&t, "default", "x");
    let c = client_of(&kc).await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let body = pod.to_string().into_bytes();
    let base = "/api/v1/namespaces/default/pods";
    let cases: Vec<(&str, String, Option<&str>, &str)> = vec![
        ("GET", base.to_string(), None, "list"),
        ("GET", format!("{base}?watch=true"), None, "watch"),
        ("GET", format!("{base}/p"), None, "get"),
        ("POST", base.to_string(), Some("application/json"), "create"),
        (
            "PUT",
            format!("{base}/p"),
            Some("application/json"),
            "update",
        ),
        (
            "PATCH",
            format!("{base}/p"),
            Some("application/merge-patch+json"),
            "patch",
        ),
        ("DELETE", format!("{base}/p"), None, "delete"),
        ("DELETE", base.to_string(), None, "deletecollection"),
    ];
    for (method, path, ct, verb) in cases {
        let (code, _, v, _) = common::client::raw(&c, method, &path, ct, body.clone()).await;
        assert_eq!(code, 403, "{method} {path}: {v}");
        let name = if path.ends_with("/p") { " \"p\"" } else { "" };
        assert_eq!(
            v["message"],
            format!(
                "pods{name} is forbidden: User \"system:serviceaccount:default:x\" cannot {verb} resource \"pods\" in API group \"\" in the namespace \"default\""
            ),
            "{method} {path}"
        );
        assert_eq!(v["reason"], "Forbidden");
        assert_eq!(v["details"]["kind"], "pods");
    }
    // subresources and other scopes are named as such
    let (code, _, v, _) = common::client::raw(
        &c,
        "GET",
        "/api/v1/namespaces/default/pods/p/log",
        None,
        vec![],
    )
    .await;
    assert_eq!(code, 403);
    assert_eq!(
        v["message"],
        "pods \"p\" is forbidden: User \"system:serviceaccount:default:x\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"default\""
    );
    let (_, _, v, _) = common::client::raw(&c, "GET", "/api/v1/nodes", None, vec![]).await;
    assert_eq!(
        v["message"],
        "nodes is forbidden: User \"system:serviceaccount:default:x\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
    );
    let (code, _, v, _) = common::client::raw(&c, "GET", "/metrics", None, vec![]).await;
    assert_eq!(code, 403);
    assert_eq!(
        v["message"],
        "forbidden: User \"system:serviceaccount:default:x\" cannot get path \"/metrics\""
    );
    // what every authenticated user has: discovery, version, whoami
    for path in [
        "/api",
        "/apis",
        "/api/v1",
        "/apis/apps/v1",
        "/version",
        "/openapi/v3",
    ] {
        let (code, _, _, _) = common::client::raw(&c, "GET", path, None, vec![]).await;
        assert_eq!(code, 200, "{path}");
    }
    // and nothing without credentials
    let anon = t.anonymous_client().await;
    let (code, _, v, _) = common::client::raw(&anon, "GET", base, None, vec![]).await;
    assert_eq!((code, v["reason"].as_str()), (401, Some("Unauthorized")));
}

#[test]
fn a_rolebinding_grants_exactly_its_rules_in_its_namespace() {
    let t = TestServer::start();
    let kc = service_account(&t, "team", "bot");
    t.k(&["create", "namespace", "other"]);
    t.k(&[
        "create",
        "configmap",
        "cm",
        "-n",
        "team",
        "--from-literal=a=b",
    ]);
    t.k(&[
        "create",
        "configmap",
        "cm",
        "-n",
        "other",
        "--from-literal=a=b",
    ]);
    t.k(&[
        "create",
        "role",
        "cm-reader",
        "--verb=get,list",
        "--resource=configmaps",
        "-n",
        "team",
    ]);
    t.k(&[
        "create",
        "rolebinding",
        "bot-cm",
        "--role=cm-reader",
        "--serviceaccount=team:bot",
        "-n",
        "team",
    ]);
    let ok = |args: &[&str]| as_user(&t, &kc, args);
    assert!(ok(&["get", "configmaps", "-n", "team"]).0);
    assert!(ok(&["get", "configmap", "cm", "-n", "team"]).0);
    for args in [
        &["get", "configmaps", "-n", "other"][..],
        &["get", "configmaps", "-A"],
        &["delete", "configmap", "cm", "-n", "team"],
        &["get", "secrets", "-n", "team"],
        &["get", "pods", "-n", "team"],
    ] {
        let (success, _, err) = ok(args);
        assert!(!success && err.contains("is forbidden"), "{args:?}: {err}");
    }
    // a ClusterRole bound by a RoleBinding: its rules, only in that namespace
    t.k(&[
        "create",
        "rolebinding",
        "bot-view",
        "--clusterrole=view",
        "--serviceaccount=team:bot",
        "-n",
        "other",
    ]);
    assert!(ok(&["get", "configmaps", "-n", "other"]).0);
    assert!(ok(&["get", "pods", "-n", "other"]).0);
    assert!(!ok(&["get", "secrets", "-n", "other"]).0);
    assert!(!ok(&["get", "pods", "-n", "default"]).0);
    // resourceNames: that object only
    t.k(&[
        "create",
        "role",
        "one-secret",
        "--verb=get",
        "--resource=secrets",
        "--resource-name=s1",
        "-n",
        "team",
    ]);
    t.k(&[
        "create",
        "rolebinding",
        "bot-secret",
        "--role=one-secret",
        "--serviceaccount=team:bot",
        "-n",
        "team",
    ]);
    t.k(&[
        "create",
        "secret",
        "generic",
        "s1",
        "-n",
        "team",
        "--from-literal=a=b",
    ]);
    t.k(&[
        "create",
        "secret",
        "generic",
        "s2",
        "-n",
        "team",
        "--from-literal=a=b",
    ]);
    assert!(ok(&["get", "secret", "s1", "-n", "team"]).0);
    assert!(!ok(&["get", "secret", "s2", "-n", "team"]).0);
    assert!(!ok(&["get", "secrets", "-n", "team"]).0);
    // a binding to a role that does not exist says so
    t.k(&[
        "create",
        "rolebinding",
        "dangling",
        "--role=nope",
        "--serviceaccount=team:bot",
        "-n",
        "team",
    ]);
    let (_, _, err) = ok(&["get", "pods", "-n", "team"]);
    assert!(
        err.contains(r#"RBAC: role.rbac.authorization.k8s.io "nope" not found"#),
        "{err}"
    );
    // the group of all service accounts of a namespace
    t.k(&[
        "create",
        "clusterrolebinding",
        "team-sas-read-nodes",
        "--clusterrole=system:node-proxier",
        "--group=system:serviceaccounts:team",
    ]);
    assert!(ok(&["get", "nodes"]).0);
}

#[test]
fn aggregation_follows_labelled_roles() {
    let t = TestServer::start();
    let widget = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "widgets-view", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get", "list", "watch"]}]});
    t.k(&["create", "-f", &t.file("w.json", &widget.to_string())]);
    let has = |role: &str| {
        t.k(&["get", "clusterrole", role, "-o", "jsonpath={.rules}"])
            .contains("widgets")
    };
    t.eventually(
        20,
        "view, edit and admin to pick up the widgets rule",
        || has("view") && has("edit") && has("admin"),
    );
    // a custom aggregating role
    let agg = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "monitoring"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"team": "monitoring"}}]}});
    t.k(&["create", "-f", &t.file("agg.json", &agg.to_string())]);
    t.k(&[
        "create",
        "clusterrole",
        "metrics-part",
        "--verb=get",
        "--non-resource-url=/metrics",
    ]);
    t.k(&["label", "clusterrole", "metrics-part", "team=monitoring"]);
    t.eventually(20, "monitoring to pick up /metrics", || {
        t.k(&[
            "get",
            "clusterrole",
            "monitoring",
            "-o",
            "jsonpath={.rules}",
        ])
        .contains("/metrics")
    });
    t.k(&["delete", "clusterrole", "widgets-view"]);
    t.eventually(20, "view to drop the widgets rule", || {
        !has("view") && !has("admin")
    });
}

#[test]
fn escalation_is_refused() {
    let t = TestServer::start();
    let kc = service_account(&t, "team", "lead");
    t.k(&[
        "create",
        "rolebinding",
        "lead-admin",
        "--clusterrole=admin",
        "--serviceaccount=team:lead",
        "-n",
        "team",
    ]);
    let run = |args: &[&str]| as_user(&t, &kc, args);
    // rules it holds: fine, also binding a role it holds
    let (ok, out, err) = run(&[
        "create",
        "role",
        "reader",
        "--verb=get",
        "--resource=pods",
        "-n",
        "team",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "role.rbac.authorization.k8s.io/reader created\n");
    let (ok, _, err) = run(&[
        "create",
        "rolebinding",
        "x-edit",
        "--clusterrole=edit",
        "--user=x",
        "-n",
        "team",
    ]);
    assert!(ok, "{err}");
    // a role that does not exist yet: refused (it could be made later with any rules)
    let (ok, _, err) = run(&[
        "create",
        "rolebinding",
        "future",
        "--clusterrole=future-admin",
        "--user=x",
        "-n",
        "team",
    ]);
    assert!(!ok && err.contains("not found"), "{err}");
    // rules it does not hold: refused, naming them
    let (ok, _, err) = run(&[
        "create",
        "role",
        "nodes",
        "--verb=get",
        "--resource=nodes",
        "-n",
        "team",
    ]);
    assert!(!ok);
    assert!(
        err.contains(r#"roles.rbac.authorization.k8s.io "nodes" is forbidden: user "system:serviceaccount:team:lead""#)
            && err.contains("is attempting to grant RBAC permissions not currently held")
            && err.contains(r#"{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}"#),
        "{err}"
    );
    let (ok, _, err) = run(&[
        "create",
        "rolebinding",
        "me-admin",
        "--clusterrole=cluster-admin",
        "--serviceaccount=team:lead",
        "-n",
        "team",
    ]);
    assert!(!ok && err.contains("not currently held"), "{err}");
    // unless it may `bind` that role
    t.k(&[
        "create",
        "role",
        "may-bind",
        "--verb=bind",
        "--resource=clusterroles.rbac.authorization.k8s.io",
        "--resource-name=cluster-admin",
        "-n",
        "team",
    ]);
    t.k(&[
        "create",
        "rolebinding",
        "lead-may-bind",
        "--role=may-bind",
        "--serviceaccount=team:lead",
        "-n",
        "team",
    ]);
    let (ok, _, err) = run(&[
        "create",
        "rolebinding",
        "me-admin",
        "--clusterrole=cluster-admin",
        "--serviceaccount=team:lead",
        "-n",
        "team",
    ]);
    assert!(ok, "{err}");
}

#[test]
fn can_i_whoami_and_the_access_reviews() {
    let t = TestServer::start();
    let kc = service_account(&t, "team", "bot");
    t.k(&[
        "create",
        "role",
        "pod-reader",
        "--verb=get,list",
        "--resource=pods",
        "-n",
        "team",
    ]);
    t.k(&[
        "create",
        "rolebinding",
        "bot",
        "--role=pod-reader",
        "--serviceaccount=team:bot",
        "-n",
        "team",
    ]);
    let can = |args: &[&str]| {
        let mut a = vec!["auth", "can-i"];
        a.extend_from_slice(args);
        as_user(&t, &kc, &a)
    };
    assert_eq!(
        can(&["list", "pods", "-n", "team"]),
        (true, "yes\n".into(), String::new())
    );
    let (ok, out, _) = can(&["delete", "pods", "-n", "team"]);
    assert_eq!((ok, out.as_str()), (false, "no\n"));
    assert_eq!(can(&["list", "pods", "-n", "default"]).1, "no\n");
    assert_eq!(can(&["get", "/version"]).1, "yes\n");
    assert_eq!(can(&["get", "/metrics"]).1, "no\n");
    assert_eq!(
        can(&["create", "selfsubjectaccessreviews.authorization.k8s.io"]).1,
        "yes\n"
    );
    // the admin may do anything
    assert_eq!(t.k(&["auth", "can-i", "*", "*"]), "yes\n");
    // --list: the rules that apply in the namespace
    let (ok, out, err) = can(&["--list", "-n", "team"]);
    assert!(ok, "{err}");
    let rows = table(&out);
    assert_eq!(rows[0][0], "Resources");
    assert!(
        out.lines()
            .any(|l| l.starts_with("pods ") && l.ends_with("[get list]")),
        "{out}"
    );
    assert!(
        rows.iter()
            .any(|r| r[0] == "selfsubjectaccessreviews.authorization.k8s.io"),
        "{out}"
    );
    assert!(out.contains("/version"), "{out}");
    // whoami
    let (ok, out, _) = as_user(&t, &kc, &["auth", "whoami"]);
    assert!(
        ok && out.contains("system:serviceaccount:team:bot"),
        "{out}"
    );
    // SubjectAccessReview (the admin asks about someone else) and the local form
    let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "system:serviceaccount:team:bot", "groups": ["system:serviceaccounts", "system:authenticated"],
                 "resourceAttributes": {"namespace": "team", "verb": "list", "resource": "pods"}}});
    let out = t.k(&[
        "create",
        "--validate=false",
        "-f",
        &t.file("sar.json", &sar.to_string()),
        "-o",
        "json",
    ]);
    assert_eq!(json(&out)["status"]["allowed"], true);
    let mut lsar = sar.clone();
    lsar["kind"] = json!("LocalSubjectAccessReview");
    lsar["metadata"] = json!({"namespace": "team"});
    lsar["spec"]["resourceAttributes"]["verb"] = json!("delete");
    let out = t.k(&[
        "create",
        "--validate=false",
        "-f",
        &t.file("lsar.json", &lsar.to_string()),
        "-o",
        "json",
    ]);
    assert_eq!(json(&out)["status"]["allowed"], false);
    // the service account may not ask about others
    let (ok, _, err) = as_user(
        &t,
        &kc,
        &[
            "create",
            "--validate=false",
            "-f",
            &t.file("sar2.json", &sar.to_string()),
        ],
    );
    assert!(
        !ok && err.contains(r#"cannot create resource "subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope"#),
        "{err}"
    );
}

#[test]
fn a_node_reads_only_what_its_pods_use() {
    let t = TestServer::start();
    let n1 = t.node_kubeconfig("node1");
    for (pod, node, secret, cm, sa) in [
        ("on1", "node1", "s1", "c1", "sa1"),
        ("on2", "node2", "s2", "c2", "sa2"),
    ] {
        t.k(&["create", "secret", "generic", secret, "--from-literal=a=b"]);
        t.k(&["create", "configmap", cm, "--from-literal=a=b"]);
        t.k(&["create", "serviceaccount", sa]);
        let p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod},
            "spec": {"nodeName": node, "serviceAccountName": sa, "containers": [{"name": "c", "image": "busybox",
                "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": cm, "key": "a"}}}]}],
                "volumes": [{"name": "s", "secret": {"secretName": secret}}]}});
        t.k(&[
            "create",
            "-f",
            &t.file(&format!("{pod}.json"), &p.to_string()),
        ]);
    }
    let node1 = |args: &[&str]| as_user(&t, &n1, args);
    assert!(node1(&["get", "secret", "s1"]).0);
    assert!(node1(&["get", "configmap", "c1"]).0);
    let (ok, _, err) = node1(&["get", "secret", "s2"]);
    assert!(!ok);
    assert!(
        err.contains(r#"secrets "s2" is forbidden: User "system:node:node1" cannot get resource "secrets" in API group "" in the namespace "default": no relationship found between node 'node1' and this object"#),
        "{err}"
    );
    assert!(!node1(&["get", "configmap", "c2"]).0);
    assert!(!node1(&["get", "secrets"]).0);
    // tokens only for its pods' service accounts
    assert!(node1(&["create", "token", "sa1"]).0);
    let (ok, _, err) = node1(&["create", "token", "sa2"]);
    assert!(!ok && err.contains("no relationship found"), "{err}");
    // what a node agent reads and writes to do its job
    assert!(node1(&["get", "pods", "-A", "--field-selector=spec.nodeName=node1"]).0);
    assert!(node1(&["get", "services", "-A"]).0);
    assert!(node1(&["get", "endpointslices", "-A"]).0);
    assert!(node1(&["get", "networkpolicies", "-A"]).0);
    assert!(node1(&["get", "namespaces"]).0);
    // but not another node's objects, nor deployments, nor anything in RBAC
    let (ok, _, err) = node1(&["annotate", "pod", "on2", "x=y"]);
    assert!(
        !ok && err.contains("can only modify pods with spec.nodeName set to itself"),
        "{err}"
    );
    // its own pods: status and deletion, not their spec or metadata (kubelet never writes those)
    assert!(!node1(&["annotate", "pod", "on1", "x=y"]).0);
    assert!(!node1(&["delete", "pod", "on2", "--grace-period=0", "--force"]).0);
    assert!(node1(&["delete", "pod", "on1", "--grace-period=0", "--force"]).0);
    assert!(!node1(&["get", "deployments"]).0);
    assert!(!node1(&["get", "clusterroles"]).0);
    // a second field selector does not narrow the list: it is authorized as what is served (all)
    let (ok, _, err) = node1(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/secrets?fieldSelector=&fieldSelector=metadata.name%3Ds1",
    ]);
    assert!(!ok, "the whole collection was served: {err}");
    // NodeRestriction: no pods of its own making (one naming s2 would open s2), no evictions, and
    // creates only of its own Node and Lease
    let thief = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "thief"},
        "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "s", "secret": {"secretName": "s2"}}]}});
    assert!(!node1(&["create", "-f", &t.file("thief.json", &thief.to_string())]).0);
    assert!(!node1(&["get", "secret", "s2"]).0);
    let evict = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "on2"}});
    let (ok, _, err) = node1(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/pods/on2/eviction",
        "-f",
        &t.file("evict.json", &evict.to_string()),
    ]);
    assert!(!ok, "{err}");
    let other = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node2"}});
    let (ok, _, err) = node1(&["create", "-f", &t.file("node2.json", &other.to_string())]);
    assert!(!ok && err.contains("a node creates only its own"), "{err}");
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "node2", "namespace": "kube-node-lease"}, "spec": {}});
    let (ok, _, err) = node1(&["create", "-f", &t.file("lease2.json", &lease.to_string())]);
    assert!(!ok && err.contains("a node creates only its own"), "{err}");
}

/// exec, attach and port-forward come as a GET over a websocket but need `create` too (as
/// kube-apiserver since 1.31): `get` on `pods/*` does not run commands in pods.
#[test]
fn exec_attach_and_port_forward_need_create() {
    let t = TestServer::start();
    let kc = service_account(&t, "team", "peek");
    t.k(&[
        "create",
        "role",
        "peek",
        "--verb=get",
        "--resource=pods,pods/exec,pods/attach,pods/portforward",
        "-n",
        "team",
    ]);
    t.k(&[
        "create",
        "rolebinding",
        "peek",
        "--role=peek",
        "--serviceaccount=team:peek",
        "-n",
        "team",
    ]);
    for sub in ["exec?command=ls", "attach", "portforward?ports=80"] {
        let (ok, _, err) = as_user(
            &t,
            &kc,
            &[
                "get",
                "--raw",
                &format!("/api/v1/namespaces/team/pods/p/{sub}"),
            ],
        );
        let sub = sub.split('?').next().unwrap();
        assert!(
            !ok && err.contains(&format!(r#"cannot create resource "pods/{sub}""#)),
            "{sub}: {err}"
        );
    }
}

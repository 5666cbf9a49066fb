use serde_json::{Value, json};

use super::*;

fn rule(v: Value) -> PolicyRule {
    PolicyRule::from_json(&v)
}

#[test]
fn rules_match_verbs_groups_resources_names_and_urls() {
    let get = |res: &str, name: &str| Attributes::resource("get", "", res, "default", name);
    let cases: Vec<(&str, Value, Attributes, bool)> = vec![
        (
            "exact",
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}),
            get("pods", "web"),
            true,
        ),
        (
            "other verb",
            json!({"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}),
            get("pods", "web"),
            false,
        ),
        (
            "verb wildcard",
            json!({"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}),
            get("pods", "web"),
            true,
        ),
        (
            "other group",
            json!({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["pods"]}),
            get("pods", "web"),
            false,
        ),
        (
            "group wildcard",
            json!({"verbs": ["get"], "apiGroups": ["*"], "resources": ["pods"]}),
            get("pods", "web"),
            true,
        ),
        (
            "resource wildcard",
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*"]}),
            get("pods/log", "web"),
            true,
        ),
        (
            "a resource does not grant its subresources",
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}),
            get("pods/log", "web"),
            false,
        ),
        (
            "the subresource by name",
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}),
            get("pods/log", "web"),
            true,
        ),
        (
            "a subresource does not grant the resource",
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}),
            get("pods", "web"),
            false,
        ),
        (
            "*/subresource",
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*/status"]}),
            get("pods/status", "web"),
            true,
        ),
        (
            "*/subresource is not a resource",
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*/status"]}),
            get("pods", "web"),
            false,
        ),
        (
            "resourceNames match",
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}),
            get("configmaps", "a"),
            true,
        ),
        (
            "resourceNames other name",
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}),
            get("configmaps", "b"),
            false,
        ),
        (
            "resourceNames refuse an unnamed list",
            json!({"verbs": ["list"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}),
            Attributes::resource("list", "", "configmaps", "default", ""),
            false,
        ),
        (
            "a resource rule does not grant a path",
            json!({"verbs": ["get"], "apiGroups": ["*"], "resources": ["*"]}),
            Attributes::non_resource("get", "/healthz"),
            false,
        ),
        (
            "url exact",
            json!({"verbs": ["get"], "nonResourceURLs": ["/healthz"]}),
            Attributes::non_resource("get", "/healthz"),
            true,
        ),
        (
            "url prefix",
            json!({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}),
            Attributes::non_resource("get", "/apis/apps/v1"),
            true,
        ),
        (
            "url prefix is not the bare path",
            json!({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}),
            Attributes::non_resource("get", "/apis"),
            false,
        ),
        (
            "url rule does not grant resources",
            json!({"verbs": ["*"], "nonResourceURLs": ["*"]}),
            get("pods", "web"),
            false,
        ),
    ];
    for (what, r, a, want) in cases {
        assert_eq!(rule_allows(&a, &rule(r)), want, "{what}");
    }
}

#[test]
fn subjects_name_users_groups_and_service_accounts() {
    let sa = User {
        name: "system:serviceaccount:team:bot".into(),
        groups: vec![
            "system:serviceaccounts".into(),
            "system:serviceaccounts:team".into(),
            "system:authenticated".into(),
        ],
    };
    let cases = [
        (
            json!({"kind": "User", "name": "system:serviceaccount:team:bot"}),
            "",
            true,
        ),
        (json!({"kind": "User", "name": "bot"}), "", false),
        (
            json!({"kind": "Group", "name": "system:serviceaccounts:team"}),
            "",
            true,
        ),
        (
            json!({"kind": "Group", "name": "system:serviceaccounts:other"}),
            "",
            false,
        ),
        (
            json!({"kind": "ServiceAccount", "name": "bot", "namespace": "team"}),
            "",
            true,
        ),
        (
            json!({"kind": "ServiceAccount", "name": "bot", "namespace": "other"}),
            "team",
            false,
        ),
        // a RoleBinding's subject without a namespace means the binding's
        (
            json!({"kind": "ServiceAccount", "name": "bot"}),
            "team",
            true,
        ),
        (json!({"kind": "ServiceAccount", "name": "bot"}), "", false),
        (json!({"kind": "Robot", "name": "bot"}), "team", false),
    ];
    for (subject, ns, want) in cases {
        assert_eq!(applies_to(&subject, &sa, ns), want, "{subject} in {ns:?}");
    }
}

fn roles(kind: &str, ns: &str, name: &str) -> Option<Value> {
    match (kind, ns, name) {
        ("ClusterRole", "", "view") => Some(json!({"rules": [
            {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods", "configmaps"]},
        ]})),
        ("ClusterRole", "", "health") => Some(json!({"rules": [
            {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
        ]})),
        ("Role", "team", "deployer") => Some(json!({"rules": [
            {"verbs": ["create", "delete"], "apiGroups": ["apps"], "resources": ["deployments"]},
        ]})),
        _ => None,
    }
}

#[test]
fn bindings_grant_exactly_their_rules_where_they_are() {
    let crbs = vec![
        json!({"roleRef": {"kind": "ClusterRole", "name": "health"}, "subjects": [{"kind": "Group", "name": "system:authenticated"}]}),
        json!({"roleRef": {"kind": "ClusterRole", "name": "gone"}, "subjects": [{"kind": "User", "name": "alice"}]}),
    ];
    let rbs = vec![
        json!({"metadata": {"namespace": "team"}, "roleRef": {"kind": "ClusterRole", "name": "view"}, "subjects": [{"kind": "User", "name": "alice"}]}),
        json!({"metadata": {"namespace": "team"}, "roleRef": {"kind": "Role", "name": "deployer"}, "subjects": [{"kind": "ServiceAccount", "name": "ci"}]}),
    ];
    let b = Bindings {
        cluster_role_bindings: &crbs,
        role_bindings: &rbs,
        role: &roles,
    };
    let alice = User {
        name: "alice".into(),
        groups: vec!["system:authenticated".into()],
    };
    let ci = User {
        name: "system:serviceaccount:team:ci".into(),
        groups: vec!["system:authenticated".into()],
    };
    let nobody = User {
        name: "bob".into(),
        groups: vec![],
    };
    let a = |verb: &str, group: &str, res: &str, ns: &str| {
        Attributes::resource(verb, group, res, ns, "")
    };
    let cases = [
        (&alice, a("list", "", "pods", "team"), true),
        (&alice, a("watch", "", "configmaps", "team"), true),
        (&alice, a("delete", "", "pods", "team"), false),
        // a ClusterRole bound by a RoleBinding grants only in that namespace
        (&alice, a("list", "", "pods", "default"), false),
        (&alice, a("list", "", "pods", ""), false),
        (&alice, Attributes::non_resource("get", "/healthz"), true),
        (&nobody, Attributes::non_resource("get", "/healthz"), false),
        (&ci, a("create", "apps", "deployments", "team"), true),
        (&ci, a("update", "apps", "deployments", "team"), false),
        (&ci, a("create", "", "deployments", "team"), false),
        (&ci, a("create", "apps", "deployments", "default"), false),
        (&nobody, a("get", "", "pods", "team"), false),
    ];
    for (user, attrs, want) in cases {
        assert_eq!(
            b.authorize(user, &attrs).is_ok(),
            want,
            "{} {attrs:?}",
            user.name
        );
    }
    let denial = b
        .authorize(&alice, &a("delete", "", "pods", "team"))
        .unwrap_err();
    assert_eq!(
        denial.reason(),
        "RBAC: clusterrole.rbac.authorization.k8s.io \"gone\" not found"
    );
    let (rules, _) = b.rules_for(&alice, "team");
    assert_eq!(rules.len(), 2);
}

#[test]
fn forbidden_messages_are_worded_as_kubernetes_words_them() {
    let u = "system:serviceaccount:default:x";
    assert_eq!(
        forbidden_message(u, &Attributes::resource("list", "", "pods", "default", "")),
        "User \"system:serviceaccount:default:x\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    assert_eq!(
        forbidden_message(
            u,
            &Attributes::resource("get", "", "nodes/status", "", "n1")
        ),
        "User \"system:serviceaccount:default:x\" cannot get resource \"nodes/status\" in API group \"\" at the cluster scope"
    );
    assert_eq!(
        forbidden_message(u, &Attributes::non_resource("get", "/metrics")),
        "User \"system:serviceaccount:default:x\" cannot get path \"/metrics\""
    );
}

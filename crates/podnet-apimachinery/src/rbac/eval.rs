//! The RBAC decision: does any rule reachable from a binding that names the user allow the request?

use serde_json::Value;

/// Who is asking.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// What is asked, as the API server derives it from the request (Kubernetes' RequestInfo).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    /// `false` for paths outside the resource API (`/version`, `/apis`, `/healthz`).
    pub resource_request: bool,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub path: String,
}

impl Attributes {
    /// A resource request (`list pods in default`).
    pub fn resource(verb: &str, group: &str, resource: &str, namespace: &str, name: &str) -> Self {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..Attributes::default()
        }
    }

    /// A request for a path outside the resource API.
    pub fn non_resource(verb: &str, path: &str) -> Self {
        Attributes {
            verb: verb.into(),
            path: path.into(),
            ..Attributes::default()
        }
    }
}

/// One rule of a Role or ClusterRole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyRule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

fn strings(v: &Value, field: &str) -> Vec<String> {
    v.get(field)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

impl PolicyRule {
    /// The rules of a Role or ClusterRole object.
    pub fn of_role(role: &Value) -> Vec<PolicyRule> {
        role.get("rules")
            .and_then(Value::as_array)
            .map(|rules| rules.iter().map(PolicyRule::from_json).collect())
            .unwrap_or_default()
    }

    pub fn from_json(v: &Value) -> PolicyRule {
        PolicyRule {
            verbs: strings(v, "verbs"),
            api_groups: strings(v, "apiGroups"),
            resources: strings(v, "resources"),
            resource_names: strings(v, "resourceNames"),
            non_resource_urls: strings(v, "nonResourceURLs"),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: &Vec<String>| {
            if !v.is_empty() {
                m.insert(k.into(), Value::from(v.clone()));
            }
        };
        put("verbs", &self.verbs);
        put("apiGroups", &self.api_groups);
        put("resources", &self.resources);
        put("resourceNames", &self.resource_names);
        put("nonResourceURLs", &self.non_resource_urls);
        if !m.contains_key("verbs") {
            m.insert("verbs".into(), Value::Array(vec![]));
        }
        Value::Object(m)
    }
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

/// Whether `rule` allows the request. Resources match by `resource`, `resource/subresource`, `*`,
/// or `*/subresource`; an empty resourceNames list matches every name; non-resource URLs match
/// exactly or by a trailing `*` prefix.
pub fn rule_allows(a: &Attributes, rule: &PolicyRule) -> bool {
    if !has(&rule.verbs, &a.verb) {
        return false;
    }
    if !a.resource_request {
        return rule.non_resource_urls.iter().any(|u| {
            u == "*"
                || *u == a.path
                || u.strip_suffix('*')
                    .is_some_and(|prefix| a.path.starts_with(prefix))
        });
    }
    if !has(&rule.api_groups, &a.api_group) {
        return false;
    }
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let resource_ok = rule.resources.iter().any(|r| {
        r == "*"
            || *r == combined
            || (!a.subresource.is_empty() && r.strip_prefix("*/") == Some(a.subresource.as_str()))
    });
    resource_ok && (rule.resource_names.is_empty() || rule.resource_names.contains(&a.name))
}

pub fn rules_allow(a: &Attributes, rules: &[PolicyRule]) -> bool {
    rules.iter().any(|r| rule_allows(a, r))
}

/// Whether a binding's subject names `user`. A service-account subject without a namespace takes the
/// binding's (`binding_ns`; empty for a ClusterRoleBinding, where it then names nobody).
pub fn applies_to(subject: &Value, user: &User, binding_ns: &str) -> bool {
    let s = |f: &str| subject.get(f).and_then(Value::as_str).unwrap_or_default();
    match s("kind") {
        "User" => s("name") == user.name,
        "Group" => user.groups.iter().any(|g| g == s("name")),
        "ServiceAccount" => {
            let ns = if s("namespace").is_empty() {
                binding_ns
            } else {
                s("namespace")
            };
            !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{}", s("name"))
        }
        _ => false,
    }
}

/// The roles and bindings a decision reads: every ClusterRoleBinding, the RoleBindings of the
/// request's namespace, and lookups of the roles they refer to.
pub struct Bindings<'a> {
    pub cluster_role_bindings: &'a [Value],
    pub role_bindings: &'a [Value],
    /// `(kind, namespace, name)` → the Role or ClusterRole, if it exists.
    pub role: &'a dyn Fn(&str, &str, &str) -> Option<Value>,
}

/// Why nothing allowed a request: the lookups that failed on the way, worded as Kubernetes words
/// them (`clusterrole.rbac.authorization.k8s.io "x" not found`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Denial {
    pub errors: Vec<String>,
}

impl Denial {
    /// The reason appended to the 403 message (empty when every lookup succeeded).
    pub fn reason(&self) -> String {
        match self.errors.as_slice() {
            [] => String::new(),
            [one] => format!("RBAC: {one}"),
            many => format!("RBAC: [{}]", many.join(", ")),
        }
    }
}

impl Bindings<'_> {
    /// Visits every rule that applies to `user` in `namespace` (empty: cluster-wide rules only), in
    /// Kubernetes' order; `visit` returns true to stop. Missing roles are collected in the denial.
    pub fn visit(
        &self,
        user: &User,
        namespace: &str,
        visit: &mut dyn FnMut(&PolicyRule) -> bool,
    ) -> Result<(), Denial> {
        let mut denial = Denial::default();
        let mut walk = |binding: &Value, binding_ns: &str| -> bool {
            let subjects = binding.get("subjects").and_then(Value::as_array);
            if !subjects
                .into_iter()
                .flatten()
                .any(|s| applies_to(s, user, binding_ns))
            {
                return false;
            }
            let kind = binding
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let name = binding
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let role_ns = if kind == "Role" { binding_ns } else { "" };
            match (self.role)(kind, role_ns, name) {
                Some(role) => PolicyRule::of_role(&role).iter().any(&mut *visit),
                None => {
                    denial.errors.push(format!(
                        "{}.rbac.authorization.k8s.io {name:?} not found",
                        kind.to_lowercase()
                    ));
                    false
                }
            }
        };
        for b in self.cluster_role_bindings {
            if walk(b, "") {
                return Ok(());
            }
        }
        if !namespace.is_empty() {
            for b in self.role_bindings {
                let ns = b
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if ns == namespace && walk(b, ns) {
                    return Ok(());
                }
            }
        }
        Err(denial)
    }

    /// The decision: `Ok` when a rule allows the request.
    pub fn authorize(&self, user: &User, a: &Attributes) -> Result<(), Denial> {
        let mut allowed = false;
        let res = self.visit(user, &a.namespace, &mut |r| {
            allowed = rule_allows(a, r);
            allowed
        });
        if allowed {
            Ok(())
        } else {
            Err(res.err().unwrap_or_default())
        }
    }

    /// Every rule that applies to `user` in `namespace` (SelfSubjectRulesReview), with the lookups
    /// that failed.
    pub fn rules_for(&self, user: &User, namespace: &str) -> (Vec<PolicyRule>, Denial) {
        let mut rules = Vec::new();
        let res = self.visit(user, namespace, &mut |r| {
            rules.push(r.clone());
            false
        });
        (rules, res.err().unwrap_or_default())
    }
}

/// The message of a 403, as kube-apiserver words it: `User "u" cannot list resource "pods" in API
/// group "" in the namespace "default"` (without the `pods is forbidden: ` prefix the caller adds).
pub fn forbidden_message(user: &str, a: &Attributes) -> String {
    if !a.resource_request {
        return format!("User {user:?} cannot {} path {:?}", a.verb, a.path);
    }
    let mut resource = a.resource.clone();
    if !a.subresource.is_empty() {
        resource = format!("{resource}/{}", a.subresource);
    }
    if a.namespace.is_empty() {
        format!(
            "User {user:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
            a.verb, a.api_group
        )
    } else {
        format!(
            "User {user:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
            a.verb, a.api_group, a.namespace
        )
    }
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;

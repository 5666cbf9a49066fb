//! The resources podnet's API server serves: names, scope, verbs, subresources and the schema of each.
//! Discovery, OpenAPI, routing and Table printing are all derived from this one table.

/// A subresource (`pods/log`, `deployments/scale`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubresourceDef {
    pub name: &'static str,
    /// `(group, version, kind)` of what it returns.
    pub response: (&'static str, &'static str, &'static str),
    pub verbs: &'static [&'static str],
}

/// A served resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceDef {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub namespaced: bool,
    pub verbs: &'static [&'static str],
    pub subresources: &'static [SubresourceDef],
    /// The OpenAPI definition name (`io.k8s.api.core.v1.Pod`).
    pub schema: &'static str,
}

impl ResourceDef {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
    pub fn subresource(&self, name: &str) -> Option<&'static SubresourceDef> {
        self.subresources.iter().find(|s| s.name == name)
    }
    /// Whether the resource supports a verb (`create`, `list`, ...).
    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }
    /// The URL prefix of its group-version: `/api/v1` or `/apis/apps/v1`.
    pub fn gv_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

const fn status(group: &'static str, version: &'static str, kind: &'static str) -> SubresourceDef {
    SubresourceDef {
        name: "status",
        response: (group, version, kind),
        verbs: STATUS_VERBS,
    }
}

const fn scale() -> SubresourceDef {
    SubresourceDef {
        name: "scale",
        response: ("autoscaling", "v1", "Scale"),
        verbs: STATUS_VERBS,
    }
}

/// Every served resource, in discovery order.
pub static RESOURCES: &[ResourceDef] = &[
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Binding",
        plural: "bindings",
        singular: "binding",
        short_names: &[],
        categories: &[],
        namespaced: true,
        verbs: &["create"],
        subresources: &[],
        schema: "io.k8s.api.core.v1.Binding",
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        short_names: &["cm"],
        categories: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[],
        schema: "io.k8s.api.core.v1.ConfigMap",
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Endpoints",
        plural: "endpoints",
        singular: "endpoints",
        short_names: &["ep"],
        categories: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[],
        schema: "io.k8s.api.core.v1.Endpoints",
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        short_names: &["ev"],
        categories: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[],
        schema: "io.k8s.api.core.v1.Event",
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "LimitRange",
        plural: "limitranges",
        singular: "limitrange",
        short_names: &["limits"],
        categories: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[],
        schema: "io.k8s.api.core.v1.LimitRange",
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        short_names: &["ns"],
        categories: &[],
        namespaced: false,
        verbs: &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
        subresources: &[
            SubresourceDef {
                name: "finalize",
                response: ("", "v1", "Namespace"),
                verbs: &["update"],
            },
            status("", "v1", "Namespace"),
        ],
        schema: "io.k8s.api.core.v1.Namespace",
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        short_names: &["no"],
        categories: &[],
        namespaced: false,
        verbs: ALL_VERBS,
        subresources: &[status("", "v1", "Node")],
        schema: "io.k8s.api.core.v1.Node",
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        short_names: &["po"],
        categories: &["all"],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[
            SubresourceDef {
                name: "attach",
                response: ("", "v1", "PodAttachOptions"),
                verbs: &["create", "get"],
            },
            SubresourceDef {
                name: "binding",
                response: ("", "v1", "Binding"),
                verbs: &["create"],
            },
            SubresourceDef {
                name: "ephemeralcontainers",
                response: ("", "v1", "Pod"),
                verbs: STATUS_VERBS,
            },
            SubresourceDef {
                name: "exec",
                response: ("", "v1", "PodExecOptions"),
                verbs: &["create", "get"],
            },
            SubresourceDef {
                name: "log",
                response: ("", "v1", "Pod"),
                verbs: &["get"],
            },
            SubresourceDef {
                name: "portforward",
                response: ("", "v1", "PodPortForwardOptions"),
                verbs: &["create", "get"],
            },
            status("", "v1", "Pod"),
        ],
        schema: "io.k8s.api.core.v1.Pod",
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "ResourceQuota",
        plural: "resourcequotas",
        singular: "resourcequota",
        short_names: &["quota"],
        categories: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[status("", "v1", "ResourceQuota")],
        schema: "io.k8s.api.core.v1.ResourceQuota",
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        short_names: &[],
        categories: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[],
        schema: "io.k8s.api.core.v1.Secret",
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        short_names: &["sa"],
        categories: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[SubresourceDef {
            name: "token",
            response: ("authentication.k8s.io", "v1", "TokenRequest"),
            verbs: &["create"],
        }],
        schema: "io.k8s.api.core.v1.ServiceAccount",
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        singular: "service",
        short_names: &["svc"],
        categories: &["all"],
        namespaced: true,
        verbs: &[
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ],
        subresources: &[status("", "v1", "Service")],
        schema: "io.k8s.api.core.v1.Service",
    },
    ResourceDef {
        group: "apps",
        version: "v1",
        kind: "ControllerRevision",
        plural: "controllerrevisions",
        singular: "controllerrevision",
        short_names: &[],
        categories: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[],
        schema: "io.k8s.api.apps.v1.ControllerRevision",
    },
    ResourceDef {
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
        plural: "daemonsets",
        singular: "daemonset",
        short_names: &["ds"],
        categories: &["all"],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[status("apps", "v1", "DaemonSet")],
        schema: "io.k8s.api.apps.v1.DaemonSet",
    },
    ResourceDef {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        short_names: &["deploy"],
        categories: &["all"],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[scale(), status("apps", "v1", "Deployment")],
        schema: "io.k8s.api.apps.v1.Deployment",
    },
    ResourceDef {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        singular: "replicaset",
        short_names: &["rs"],
        categories: &["all"],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[scale(), status("apps", "v1", "ReplicaSet")],
        schema: "io.k8s.api.apps.v1.ReplicaSet",
    },
    ResourceDef {
        group: "apps",
        version: "v1",
        kind: "StatefulSet",
        plural: "statefulsets",
        singular: "statefulset",
        short_names: &["sts"],
        categories: &["all"],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[scale(), status("apps", "v1", "StatefulSet")],
        schema: "io.k8s.api.apps.v1.StatefulSet",
    },
    ResourceDef {
        group: "authentication.k8s.io",
        version: "v1",
        kind: "SelfSubjectReview",
        plural: "selfsubjectreviews",
        singular: "selfsubjectreview",
        short_names: &[],
        categories: &[],
        namespaced: false,
        verbs: &["create"],
        subresources: &[],
        schema: "io.k8s.api.authentication.v1.SelfSubjectReview",
    },
    ResourceDef {
        group: "authentication.k8s.io",
        version: "v1",
        kind: "TokenReview",
        plural: "tokenreviews",
        singular: "tokenreview",
        short_names: &[],
        categories: &[],
        namespaced: false,
        verbs: &["create"],
        subresources: &[],
        schema: "io.k8s.api.authentication.v1.TokenReview",
    },
    ResourceDef {
        group: "authorization.k8s.io",
        version: "v1",
        kind: "LocalSubjectAccessReview",
        plural: "localsubjectaccessreviews",
        singular: "localsubjectaccessreview",
        short_names: &[],
        categories: &[],
        namespaced: true,
        verbs: &["create"],
        subresources: &[],
        schema: "io.k8s.api.authorization.v1.LocalSubjectAccessReview",
    },
    ResourceDef {
        group: "authorization.k8s.io",
        version: "v1",
        kind: "SelfSubjectAccessReview",
        plural: "selfsubjectaccessreviews",
        singular: "selfsubjectaccessreview",
        short_names: &[],
        categories: &[],
        namespaced: false,
        verbs: &["create"],
        subresources: &[],
        schema: "io.k8s.api.authorization.v1.SelfSubjectAccessReview",
    },
    ResourceDef {
        group: "authorization.k8s.io",
        version: "v1",
        kind: "SelfSubjectRulesReview",
        plural: "selfsubjectrulesreviews",
        singular: "selfsubjectrulesreview",
        short_names: &[],
        categories: &[],
        namespaced: false,
        verbs: &["create"],
        subresources: &[],
        schema: "io.k8s.api.authorization.v1.SelfSubjectRulesReview",
    },
    ResourceDef {
        group: "authorization.k8s.io",
        version: "v1",
        kind: "SubjectAccessReview",
        plural: "subjectaccessreviews",
        singular: "subjectaccessreview",
        short_names: &[],
        categories: &[],
        namespaced: false,
        verbs: &["create"],
        subresources: &[],
        schema: "io.k8s.api.authorization.v1.SubjectAccessReview",
    },
    ResourceDef {
        group: "batch",
        version: "v1",
        kind: "CronJob",
        plural: "cronjobs",
        singular: "cronjob",
        short_names: &["cj"],
        categories: &["all"],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[status("batch", "v1", "CronJob")],
        schema: "io.k8s.api.batch.v1.CronJob",
    },
    ResourceDef {
        group: "batch",
        version: "v1",
        kind: "Job",
        plural: "jobs",
        singular: "job",
        short_names: &[],
        categories: &["all"],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[status("batch", "v1", "Job")],
        schema: "io.k8s.api.batch.v1.Job",
    },
    ResourceDef {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        short_names: &[],
        categories: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[],
        schema: "io.k8s.api.coordination.v1.Lease",
    },
    ResourceDef {
        group: "discovery.k8s.io",
        version: "v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        singular: "endpointslice",
        short_names: &[],
        categories: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[],
        schema: "io.k8s.api.discovery.v1.EndpointSlice",
    },
    ResourceDef {
        group: "networking.k8s.io",
        version: "v1",
        kind: "IngressClass",
        plural: "ingressclasses",
        singular: "ingressclass",
        short_names: &[],
        categories: &[],
        namespaced: false,
        verbs: ALL_VERBS,
        subresources: &[],
        schema: "io.k8s.api.networking.v1.IngressClass",
    },
    ResourceDef {
        group: "networking.k8s.io",
        version: "v1",
        kind: "Ingress",
        plural: "ingresses",
        singular: "ingress",
        short_names: &["ing"],
        categories: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[status("networking.k8s.io", "v1", "Ingress")],
        schema: "io.k8s.api.networking.v1.Ingress",
    },
    ResourceDef {
        group: "networking.k8s.io",
        version: "v1",
        kind: "NetworkPolicy",
        plural: "networkpolicies",
        singular: "networkpolicy",
        short_names: &["netpol"],
        categories: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[],
        schema: "io.k8s.api.networking.v1.NetworkPolicy",
    },
    ResourceDef {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        singular: "clusterrolebinding",
        short_names: &[],
        categories: &[],
        namespaced: false,
        verbs: ALL_VERBS,
        subresources: &[],
        schema: "io.k8s.api.rbac.v1.ClusterRoleBinding",
    },
    ResourceDef {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRole",
        plural: "clusterroles",
        singular: "clusterrole",
        short_names: &[],
        categories: &[],
        namespaced: false,
        verbs: ALL_VERBS,
        subresources: &[],
        schema: "io.k8s.api.rbac.v1.ClusterRole",
    },
    ResourceDef {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "RoleBinding",
        plural: "rolebindings",
        singular: "rolebinding",
        short_names: &[],
        categories: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[],
        schema: "io.k8s.api.rbac.v1.RoleBinding",
    },
    ResourceDef {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "Role",
        plural: "roles",
        singular: "role",
        short_names: &[],
        categories: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[],
        schema: "io.k8s.api.rbac.v1.Role",
    },
    ResourceDef {
        group: "policy",
        version: "v1",
        kind: "PodDisruptionBudget",
        plural: "poddisruptionbudgets",
        singular: "poddisruptionbudget",
        short_names: &["pdb"],
        categories: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[status("policy", "v1", "PodDisruptionBudget")],
        schema: "io.k8s.api.policy.v1.PodDisruptionBudget",
    },
    ResourceDef {
        group: "scheduling.k8s.io",
        version: "v1",
        kind: "PriorityClass",
        plural: "priorityclasses",
        singular: "priorityclass",
        short_names: &["pc"],
        categories: &[],
        namespaced: false,
        verbs: ALL_VERBS,
        subresources: &[],
        schema: "io.k8s.api.scheduling.v1.PriorityClass",
    },
];

/// The API groups in discovery order (`""` is the legacy core group).
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

/// Looks a resource up by group, version and plural name.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Looks a resource up by its apiVersion and kind.
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// Whether a group-version is served at all (for 404 vs. empty answers).
pub fn serves_group_version(group: &str, version: &str) -> bool {
    RESOURCES
        .iter()
        .any(|r| r.group == group && r.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(find("", "v1", "pods").unwrap().kind, "Pod");
        assert_eq!(
            find_kind("apps/v1", "Deployment").unwrap().plural,
            "deployments"
        );
        assert!(find("apps", "v1", "pods").is_none());
        assert_eq!(
            groups(),
            vec![
                "",
                "apps",
                "authentication.k8s.io",
                "authorization.k8s.io",
                "batch",
                "coordination.k8s.io",
                "discovery.k8s.io",
                "networking.k8s.io",
                "rbac.authorization.k8s.io",
                "policy",
                "scheduling.k8s.io"
            ]
        );
    }

    #[test]
    fn short_names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in RESOURCES {
            for s in r.short_names {
                assert!(seen.insert(*s), "duplicate short name {s}");
            }
        }
    }
}

//! Patch strategies of the Kubernetes types (the `patchStrategy` / `patchMergeKey` struct tags), which
//! strategic merge patch and server-side apply need and no schema crate carries.

/// How a field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// A list of objects merged element-wise by this key.
    MergeKey(&'static str),
    /// A list of scalars merged as a set.
    MergePrimitive,
    /// An object whose `$retainKeys` directive drops the keys not listed.
    RetainKeys,
}

/// `(definition, field, strategy)`.
pub static STRATEGIES: &[(&str, &str, Strategy)] = &[
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        Strategy::MergePrimitive,
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        Strategy::MergeKey("uid"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "containers",
        Strategy::MergeKey("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "initContainers",
        Strategy::MergeKey("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "ephemeralContainers",
        Strategy::MergeKey("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "volumes",
        Strategy::MergeKey("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "imagePullSecrets",
        Strategy::MergeKey("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "hostAliases",
        Strategy::MergeKey("ip"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        Strategy::MergeKey("topologyKey"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "resourceClaims",
        Strategy::MergeKey("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "schedulingGates",
        Strategy::MergeKey("name"),
    ),
    (
        "io.k8s.api.core.v1.Container",
        "ports",
        Strategy::MergeKey("containerPort"),
    ),
    (
        "io.k8s.api.core.v1.Container",
        "env",
        Strategy::MergeKey("name"),
    ),
    (
        "io.k8s.api.core.v1.Container",
        "volumeMounts",
        Strategy::MergeKey("mountPath"),
    ),
    (
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        Strategy::MergeKey("devicePath"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "ports",
        Strategy::MergeKey("containerPort"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "env",
        Strategy::MergeKey("name"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeMounts",
        Strategy::MergeKey("mountPath"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "conditions",
        Strategy::MergeKey("type"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "podIPs",
        Strategy::MergeKey("ip"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "hostIPs",
        Strategy::MergeKey("ip"),
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "ports",
        Strategy::MergeKey("port"),
    ),
    (
        "io.k8s.api.core.v1.ServiceAccount",
        "secrets",
        Strategy::MergeKey("name"),
    ),
    (
        "io.k8s.api.core.v1.NodeSpec",
        "podCIDRs",
        Strategy::MergePrimitive,
    ),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "conditions",
        Strategy::MergeKey("type"),
    ),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "addresses",
        Strategy::MergeKey("type"),
    ),
    (
        "io.k8s.api.core.v1.NamespaceStatus",
        "conditions",
        Strategy::MergeKey("type"),
    ),
    ("io.k8s.api.core.v1.Volume", "", Strategy::RetainKeys),
    (
        "io.k8s.api.apps.v1.DeploymentSpec",
        "strategy",
        Strategy::RetainKeys,
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        Strategy::MergeKey("type"),
    ),
    (
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        "conditions",
        Strategy::MergeKey("type"),
    ),
    (
        "io.k8s.api.apps.v1.DaemonSetStatus",
        "conditions",
        Strategy::MergeKey("type"),
    ),
    (
        "io.k8s.api.apps.v1.StatefulSetStatus",
        "conditions",
        Strategy::MergeKey("type"),
    ),
    (
        "io.k8s.api.batch.v1.JobStatus",
        "conditions",
        Strategy::MergeKey("type"),
    ),
];

/// The strategy of `def.field`, if it is not the default (replace lists, merge objects).
pub fn strategy(def: Option<&str>, field: &str) -> Option<Strategy> {
    let def = def?;
    STRATEGIES
        .iter()
        .find(|(d, f, _)| *d == def && *f == field)
        .map(|(_, _, s)| *s)
}

/// The merge key of a list field, if it merges by key.
pub fn merge_key(def: Option<&str>, field: &str) -> Option<&'static str> {
    match strategy(def, field) {
        Some(Strategy::MergeKey(k)) => Some(k),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_strategy_names_a_real_field() {
        let reg = crate::schema::Registry::get();
        for (d, f, _) in STRATEGIES {
            let def = reg
                .def(d)
                .unwrap_or_else(|| panic!("unknown definition {d}"));
            if !f.is_empty() {
                assert!(def["properties"].get(*f).is_some(), "{d} has no field {f}");
            }
        }
    }
}

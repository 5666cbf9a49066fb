//! The ResourceQuota admission step: a new object in a namespace with quotas is refused when it would
//! take a tracked resource over its hard limit (usage recomputed from the store, so it never drifts),
//! or when a quota tracks cpu or memory that a pod's containers do not state.

use podnet_apimachinery::quota::{self, Usage};
use podnet_apimachinery::resources::{self, ResourceDef};
use podnet_apimachinery::{ApiError, object};
use serde_json::Value;

use super::Api;

/// The resources whose objects a quota's `hard` keys count.
fn counted(hard: &Usage) -> Vec<&'static ResourceDef> {
    let mut out: Vec<&'static ResourceDef> = Vec::new();
    for key in hard.keys() {
        let found = match key.as_str() {
            "pods" | "cpu" | "memory" | "ephemeral-storage" => resources::find("", "v1", "pods"),
            k if k.starts_with("requests.") || k.starts_with("limits.") => {
                resources::find("", "v1", "pods")
            }
            k if k.starts_with("services") => resources::find("", "v1", "services"),
            k => match k.strip_prefix("count/") {
                Some(c) => {
                    let (plural, group) = c.split_once('.').unwrap_or((c, ""));
                    resources::RESOURCES
                        .iter()
                        .find(|r| r.plural == plural && r.group == group)
                }
                None => resources::find("", "v1", k),
            },
        };
        if let Some(d) = found
            && d.namespaced
            && !out.contains(&d)
        {
            out.push(d);
        }
    }
    out
}

/// What the objects of `namespace` use of the resources `hard` limits.
pub fn namespace_usage(api: &Api, namespace: &str, hard: &Usage) -> Usage {
    let mut parts = Vec::new();
    for d in counted(hard) {
        for o in api.list_values(d, Some(namespace)) {
            parts.push(quota::usage_of(d.group, d.plural, &o));
        }
    }
    let mut used = quota::sum(&parts);
    used.retain(|k, _| hard.contains_key(k));
    for k in hard.keys() {
        used.entry(k.clone()).or_insert(0);
    }
    used
}

fn quotas(api: &Api, namespace: &str) -> Vec<Value> {
    let def = resources::find("", "v1", "resourcequotas").expect("served");
    api.list_values(def, Some(namespace))
}

pub(crate) fn admit(
    api: &Api,
    r: &ResourceDef,
    namespace: &str,
    name: &str,
    obj: &Value,
) -> Result<(), ApiError> {
    admit_delta(api, r, namespace, name, obj, None)
}

/// The same check for an update: only what the update adds counts (a Service turned into a
/// LoadBalancer, a claim grown), as the quota admission plugin evaluates UPDATE.
pub(crate) fn admit_update(
    api: &Api,
    r: &ResourceDef,
    namespace: &str,
    name: &str,
    current: &Value,
    new: &Value,
) -> Result<(), ApiError> {
    admit_delta(api, r, namespace, name, new, Some(current))
}

fn admit_delta(
    api: &Api,
    r: &ResourceDef,
    namespace: &str,
    name: &str,
    obj: &Value,
    before: Option<&Value>,
) -> Result<(), ApiError> {
    if !r.namespaced {
        return Ok(());
    }
    let all = quotas(api, namespace);
    if all.is_empty() {
        return Ok(());
    }
    let forbidden = |why: String| {
        let qualified = if r.group.is_empty() {
            r.plural.to_string()
        } else {
            format!("{}.{}", r.plural, r.group)
        };
        ApiError::forbidden(format!("{qualified} {name:?} is forbidden: {why}"))
    };
    let mut delta = quota::usage_of(r.group, r.plural, obj);
    if let Some(before) = before {
        let was = quota::usage_of(r.group, r.plural, before);
        for (k, v) in delta.iter_mut() {
            *v -= was.get(k).copied().unwrap_or(0);
        }
    }
    for q in &all {
        let qname = object::name(q);
        let hard = quota::hard_of(q, "spec");
        if before.is_none() && r.group.is_empty() && r.plural == "pods" {
            quota::missing_compute(&hard, obj)
                .map_err(|m| forbidden(format!("failed quota: {qname}: {m}")))?;
        }
        if !hard.keys().any(|k| delta.get(k).is_some_and(|d| *d > 0)) {
            continue;
        }
        let used = namespace_usage(api, namespace, &hard);
        quota::admit(qname, &hard, &used, &delta).map_err(forbidden)?;
    }
    Ok(())
}

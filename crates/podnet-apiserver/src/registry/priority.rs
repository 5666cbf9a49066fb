//! The Priority admission step, as kube-apiserver's plugin does it: a new pod gets the value (and
//! preemption policy) of the PriorityClass it names, or of the cluster's default class, and is
//! refused when the class does not exist; only one PriorityClass may be the global default. Also
//! LimitRanger, the other step that fills a new pod's spec from cluster objects.

use podnet_apimachinery::{ApiError, object, resources};
use serde_json::{Value, json};

use super::Api;

fn classes(api: &Api) -> Vec<Value> {
    let def = resources::find("scheduling.k8s.io", "v1", "priorityclasses").expect("served");
    api.list_values(def, None)
}

/// Resolves a new pod's priority (before defaulting, which would set 0).
pub(crate) fn pod(api: &Api, name: &str, pod: &mut Value) -> Result<(), ApiError> {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let named = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from);
    let all = classes(api);
    let class = match &named {
        Some(n) => Some(all.iter().find(|c| object::name(c) == n).ok_or_else(|| {
            ApiError::forbidden(format!(
                "pods {name:?} is forbidden: no PriorityClass with name {n} was found"
            ))
        })?),
        None => all
            .iter()
            .find(|c| c.get("globalDefault").and_then(Value::as_bool) == Some(true)),
    };
    let value = class.map_or(0, |c| c.get("value").and_then(Value::as_i64).unwrap_or(0));
    if let Some(given) = spec.get("priority").and_then(Value::as_i64)
        && given != value
    {
        return Err(ApiError::forbidden(format!(
            "pods {name:?} is forbidden: the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"
        )));
    }
    spec.insert("priority".into(), json!(value));
    if let Some(c) = class {
        spec.insert("priorityClassName".into(), json!(object::name(c)));
        if let Some(p) = c.get("preemptionPolicy") {
            spec.insert("preemptionPolicy".into(), p.clone());
        }
    }
    Ok(())
}

/// Refuses a second global default.
pub(crate) fn class(api: &Api, pc: &Value) -> Result<(), ApiError> {
    if pc.get("globalDefault").and_then(Value::as_bool) != Some(true) {
        return Ok(());
    }
    let name = object::name(pc);
    if let Some(other) = classes(api).iter().find(|c| {
        object::name(c) != name && c.get("globalDefault").and_then(Value::as_bool) == Some(true)
    }) {
        return Err(ApiError::forbidden(format!(
            "priorityclasses.scheduling.k8s.io {name:?} is forbidden: PriorityClass {} is already marked as default. Only one default can exist",
            object::name(other)
        )));
    }
    Ok(())
}

/// The LimitRanger admission step for a new pod: the namespace's LimitRanges' container defaults,
/// then their bounds (`pods "x" is forbidden: [maximum cpu usage per Container is 1, but limit is
/// 2]`); what was defaulted is named in the `kubernetes.io/limit-ranger` annotation.
pub(crate) fn limit_ranges(
    api: &Api,
    namespace: &str,
    name: &str,
    pod: &mut Value,
) -> Result<(), ApiError> {
    let def = resources::find("", "v1", "limitranges").expect("served");
    let ranges = api.list_values(def, Some(namespace));
    if ranges.is_empty() {
        return Ok(());
    }
    match podnet_apimachinery::limitrange::admit_pod(&ranges, pod) {
        Ok(note) if note.is_empty() => Ok(()),
        Ok(note) => {
            object::meta_mut(pod)
                .entry("annotations")
                .or_insert_with(|| json!({}))["kubernetes.io/limit-ranger"] = json!(note);
            Ok(())
        }
        Err(errs) => Err(ApiError::forbidden(format!(
            "pods {name:?} is forbidden: [{}]",
            errs.join(", ")
        ))),
    }
}

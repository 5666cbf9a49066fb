//! Strategic merge patch (`application/strategic-merge-patch+json`), as kubectl apply, patch, set image
//! and rollout restart send it: maps merge recursively, `null` deletes a key, lists merge by their merge
//! key where the type defines one (containers by `name`, ports by `containerPort`, ...) and are replaced
//! otherwise. Directives: `$patch: replace|delete|merge` (on maps and list elements), `$retainKeys`,
//! `$setElementOrder/<field>` and `$deleteFromPrimitiveList/<field>`.

use serde_json::{Map, Value};

use super::PatchError;
use super::meta::{self, Strategy};
use crate::schema::Registry;

const MAX_DEPTH: usize = 100;

/// Applies `patch` to `original` (an object of definition `def`).
pub fn apply(original: &Value, patch: &Value, def: Option<&str>) -> Result<Value, PatchError> {
    let Value::Object(p) = patch else {
        return Err(PatchError::Invalid(
            "strategic merge patch must be a JSON object".into(),
        ));
    };
    let mut out = match original {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    match merge_map(&mut out, p, def, 0)? {
        MapOutcome::Keep => Ok(Value::Object(out)),
        MapOutcome::Delete => Ok(Value::Object(Map::new())),
    }
}

enum MapOutcome {
    Keep,
    Delete,
}

fn child_def<'a>(def: Option<&str>, field: &str) -> Option<&'a str> {
    let reg = Registry::get();
    let (name, schema) = reg.property(def?, field)?;
    if name.is_some() {
        return name;
    }
    // arrays and maps of references: the element type
    for key in ["items", "additionalProperties"] {
        if let Some(inner) = schema.get(key)
            && let (Some(n), _) = reg.resolve(inner)
        {
            return Some(n);
        }
    }
    None
}

fn directive(v: &Value) -> Option<&str> {
    v.get("$patch").and_then(Value::as_str)
}

/// Removes directive keys from a value that is inserted as a whole (no original to merge with).
fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|x| directive(x).is_none())
                .map(strip)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn merge_map(
    orig: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    def: Option<&str>,
    depth: usize,
) -> Result<MapOutcome, PatchError> {
    if depth > MAX_DEPTH {
        return Err(PatchError::Invalid("patch nesting is too deep".into()));
    }
    match patch.get("$patch").map(|v| v.as_str()) {
        Some(Some("replace")) => {
            if let Value::Object(m) = strip(&Value::Object(patch.clone())) {
                *orig = m;
            }
            return Ok(MapOutcome::Keep);
        }
        Some(Some("delete")) => return Ok(MapOutcome::Delete),
        Some(Some("merge")) | None => {}
        Some(other) => {
            return Err(PatchError::Invalid(format!(
                "unknown patch type: {}",
                other.unwrap_or("non-string")
            )));
        }
    }
    let mut orders: Vec<(&str, &Vec<Value>)> = Vec::new();
    for (k, pv) in patch {
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            let Value::Array(order) = pv else {
                return Err(PatchError::Invalid(format!("{k} must be a list")));
            };
            orders.push((field, order));
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let Value::Array(del) = pv else {
                return Err(PatchError::Invalid(format!("{k} must be a list")));
            };
            if let Some(Value::Array(list)) = orig.get_mut(field) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k == "$patch" || k == "$retainKeys" {
            continue;
        }
        if k.starts_with('$') {
            return Err(PatchError::Invalid(format!("unknown directive {k}")));
        }
        if pv.is_null() {
            orig.remove(k);
            continue;
        }
        let cdef = child_def(def, k);
        match pv {
            Value::Object(pm) => {
                if directive(pv) == Some("delete") {
                    orig.remove(k);
                    continue;
                }
                match orig.get_mut(k) {
                    Some(Value::Object(om)) => {
                        if let MapOutcome::Delete = merge_map(om, pm, cdef, depth + 1)? {
                            orig.remove(k);
                        }
                    }
                    _ => {
                        let mut fresh = Map::new();
                        if let MapOutcome::Keep = merge_map(&mut fresh, pm, cdef, depth + 1)? {
                            orig.insert(k.clone(), Value::Object(fresh));
                        }
                    }
                }
            }
            Value::Array(pl) => {
                let merged = match meta::strategy(def, k) {
                    Some(Strategy::MergeKey(key)) => {
                        let base = match orig.get(k) {
                            Some(Value::Array(a)) => a.clone(),
                            _ => Vec::new(),
                        };
                        merge_keyed(base, pl, key, cdef, depth)?
                    }
                    Some(Strategy::MergePrimitive) => {
                        let mut base = match orig.get(k) {
                            Some(Value::Array(a)) => a.clone(),
                            _ => Vec::new(),
                        };
                        if pl.iter().any(|x| directive(x) == Some("replace")) {
                            base.clear();
                        }
                        for x in pl.iter().filter(|x| directive(x).is_none()) {
                            if !base.contains(x) {
                                base.push(x.clone());
                            }
                        }
                        base
                    }
                    _ => match strip(pv) {
                        Value::Array(a) => a,
                        _ => unreachable!("strip keeps arrays"),
                    },
                };
                orig.insert(k.clone(), Value::Array(merged));
            }
            scalar => {
                orig.insert(k.clone(), scalar.clone());
            }
        }
    }
    for (field, order) in orders {
        let key = meta::merge_key(def, field);
        if let Some(Value::Array(list)) = orig.get_mut(field) {
            reorder(list, order, key);
        }
    }
    if let Some(retain) = patch.get("$retainKeys") {
        let Value::Array(keep) = retain else {
            return Err(PatchError::Invalid("$retainKeys must be a list".into()));
        };
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        orig.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(MapOutcome::Keep)
}

fn key_of<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key)
}

fn merge_keyed(
    mut base: Vec<Value>,
    patch: &[Value],
    key: &str,
    item_def: Option<&str>,
    depth: usize,
) -> Result<Vec<Value>, PatchError> {
    if patch.iter().any(|x| directive(x) == Some("replace")) {
        return Ok(patch
            .iter()
            .filter(|x| directive(x).is_none())
            .map(strip)
            .collect());
    }
    for pe in patch {
        let Value::Object(pm) = pe else {
            // a scalar in a keyed list cannot be merged: replace semantics for that element
            base.push(pe.clone());
            continue;
        };
        let Some(kv) = key_of(pe, key) else {
            return Err(PatchError::Invalid(format!(
                "map: {pe} does not contain declared merge key: {key}"
            )));
        };
        if directive(pe) == Some("delete") {
            base.retain(|e| key_of(e, key) != Some(kv));
            continue;
        }
        match base.iter_mut().find(|e| key_of(e, key) == Some(kv)) {
            Some(Value::Object(em)) => {
                merge_map(em, pm, item_def, depth + 1)?;
            }
            _ => {
                let mut fresh = Map::new();
                merge_map(&mut fresh, pm, item_def, depth + 1)?;
                base.push(Value::Object(fresh));
            }
        }
    }
    Ok(base)
}

/// `$setElementOrder`: elements named in `order` come first in that order; others keep their relative
/// order after them.
fn reorder(list: &mut Vec<Value>, order: &[Value], key: Option<&str>) {
    let ident = |v: &Value| -> Value {
        match key {
            Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    let wanted: Vec<Value> = order
        .iter()
        .map(|o| match key {
            Some(k) => o.get(k).cloned().unwrap_or_else(|| o.clone()),
            None => o.clone(),
        })
        .collect();
    let mut items: Vec<(usize, Value)> = std::mem::take(list).into_iter().enumerate().collect();
    items.sort_by_key(|(i, v)| {
        let id = ident(v);
        match wanted.iter().position(|w| *w == id) {
            Some(p) => (0, p, *i),
            None => (1, 0, *i),
        }
    });
    *list = items.into_iter().map(|(_, v)| v).collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const POD: &str = "io.k8s.api.core.v1.Pod";

    #[test]
    fn merges_containers_by_name_and_deletes_with_null() {
        let orig = json!({"metadata": {"labels": {"app": "web", "old": "x"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]},
                                    {"name": "side", "image": "busybox"}]}});
        let patch = json!({"metadata": {"labels": {"old": null, "tier": "front"}},
            "spec": {"$setElementOrder/containers": [{"name": "nginx"}, {"name": "side"}],
                     "containers": [{"name": "nginx", "image": "nginx:1.28"}]}});
        let out = apply(&orig, &patch, Some(POD)).unwrap();
        assert_eq!(
            out["metadata"]["labels"],
            json!({"app": "web", "tier": "front"})
        );
        assert_eq!(out["spec"]["containers"][0]["image"], "nginx:1.28");
        assert_eq!(
            out["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80}])
        );
        assert_eq!(out["spec"]["containers"][1]["name"], "side");
    }

    #[test]
    fn delete_and_replace_directives() {
        let orig = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let del = json!({"spec": {"containers": [{"$patch": "delete", "name": "a"}]}});
        let out = apply(&orig, &del, Some(POD)).unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "b", "image": "y"}])
        );
        let rep =
            json!({"spec": {"containers": [{"name": "c", "image": "z"}, {"$patch": "replace"}]}});
        let out = apply(&orig, &rep, Some(POD)).unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "c", "image": "z"}])
        );
        let map_rep = json!({"metadata": {"labels": {"$patch": "replace", "only": "this"}}});
        let out = apply(
            &json!({"metadata": {"labels": {"a": "b"}}}),
            &map_rep,
            Some(POD),
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"only": "this"}));
    }

    #[test]
    fn lists_without_strategy_are_replaced_and_primitives_merge() {
        let orig = json!({"metadata": {"finalizers": ["a"]}, "spec": {"containers": [{"name": "c", "args": ["1", "2"]}]}});
        let patch = json!({"metadata": {"finalizers": ["b"]}, "spec": {"containers": [{"name": "c", "args": ["3"]}]}});
        let out = apply(&orig, &patch, Some(POD)).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(out["spec"]["containers"][0]["args"], json!(["3"]));
        let del = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}});
        assert_eq!(
            apply(&out, &del, Some(POD)).unwrap()["metadata"]["finalizers"],
            json!(["b"])
        );
    }

    #[test]
    fn retain_keys_drops_the_old_strategy() {
        let orig = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        let out = apply(&orig, &patch, Some("io.k8s.api.apps.v1.Deployment")).unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn rejects_bad_directives() {
        assert!(apply(&json!({}), &json!({"$patch": "explode"}), Some(POD)).is_err());
        assert!(apply(&json!({}), &json!([1]), Some(POD)).is_err());
        let no_key = json!({"spec": {"containers": [{"image": "x"}]}});
        assert!(apply(&json!({}), &no_key, Some(POD)).is_err());
    }
}

//! Server-side apply (`application/apply-patch+yaml`): create-or-update with field ownership.
//!
//! Each manager's applied fields are recorded in `metadata.managedFields` as a FieldsV1 set. Applying
//! merges the configuration into the live object (maps recursively, lists with a merge key element-wise,
//! other lists atomically) and then removes the fields this manager applied last time but no longer
//! mentions, unless another manager also applied them. Conflicts are detected between apply managers: a
//! field owned by another apply manager with a different value is a conflict unless `force=true`.
//! Ownership by non-apply (Update) managers is recorded but does not conflict (documented deviation).

use serde_json::{Map, Value, json};

use super::meta::{self, Strategy};
use crate::schema::Registry;

/// A field conflict: another apply manager owns the field with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    pub field: String,
}

fn child_def(def: Option<&str>, field: &str) -> Option<&'static str> {
    let reg = Registry::get();
    let (name, schema) = reg.property(def?, field)?;
    if name.is_some() {
        return name;
    }
    for key in ["items", "additionalProperties"] {
        if let Some(inner) = schema.get(key)
            && let (Some(n), _) = reg.resolve(inner)
        {
            return Some(n);
        }
    }
    None
}

fn key_entry(item: &Value, key: &str) -> String {
    let mut m = Map::new();
    if let Some(v) = item.get(key) {
        m.insert(key.to_string(), v.clone());
    }
    format!("k:{}", Value::Object(m))
}

/// The FieldsV1 set of a configuration.
pub fn field_set(v: &Value, def: Option<&str>) -> Value {
    let mut out = Map::new();
    if let Value::Object(m) = v {
        for (k, child) in m {
            if def.is_some_and(|d| d.ends_with(".ObjectMeta"))
                && matches!(
                    k.as_str(),
                    "name"
                        | "namespace"
                        | "managedFields"
                        | "resourceVersion"
                        | "uid"
                        | "creationTimestamp"
                        | "generation"
                )
            {
                continue;
            }
            if def.is_none() && (k == "apiVersion" || k == "kind") {
                continue;
            }
            let cdef = child_def(def, k);
            let entry = match child {
                Value::Object(_) if cdef.is_some() || def.is_none() || child_is_struct(def, k) => {
                    field_set(child, cdef)
                }
                Value::Object(cm) => {
                    // a map (labels, data): every key is a field
                    Value::Object(cm.keys().map(|ck| (format!("f:{ck}"), json!({}))).collect())
                }
                Value::Array(items) => match meta::strategy(def, k) {
                    Some(Strategy::MergeKey(key)) => {
                        let mut lm = Map::new();
                        for it in items {
                            let mut inner = match field_set(it, cdef) {
                                Value::Object(x) => x,
                                _ => Map::new(),
                            };
                            inner.insert(".".into(), json!({}));
                            lm.insert(key_entry(it, key), Value::Object(inner));
                        }
                        Value::Object(lm)
                    }
                    Some(Strategy::MergePrimitive) => Value::Object(
                        items
                            .iter()
                            .map(|it| (format!("v:{it}"), json!({})))
                            .collect(),
                    ),
                    _ => json!({}),
                },
                _ => json!({}),
            };
            out.insert(format!("f:{k}"), entry);
        }
    }
    Value::Object(out)
}

/// The FieldsV1 set an Update operation (create aside) takes ownership of: the fields `new` changes
/// relative to `old`, as structured-merge-diff computes for updates. Objects are compared key by key,
/// merge-key lists item by item (a new item is owned whole, with its `.`), anything else whole when it
/// differs. Removed fields are not owned by anyone, and a write that changes only metadata the sets
/// leave out (managedFields, resourceVersion) owns nothing: kubectl's JSON patch that moves ownership
/// during its client-side to server-side apply migration must not make it the owner of everything.
pub fn changed_set(old: &Value, new: &Value, def: Option<&str>) -> Value {
    let (Value::Object(om), Value::Object(nm)) = (old, new) else {
        return json!({});
    };
    let full = field_set(new, def);
    let mut out = Map::new();
    for (k, nv) in nm {
        let fk = format!("f:{k}");
        let Some(entry) = full.get(&fk) else {
            continue; // a field sets never hold (name, managedFields, ...)
        };
        let Some(ov) = om.get(k) else {
            out.insert(fk, entry.clone());
            continue;
        };
        if ov == nv {
            continue;
        }
        let cdef = child_def(def, k);
        let sub = match (ov, nv) {
            (Value::Object(_), Value::Object(_))
                if entry.as_object().is_some_and(|m| !m.is_empty()) =>
            {
                changed_set(ov, nv, cdef)
            }
            (Value::Array(oa), Value::Array(na)) => match meta::strategy(def, k) {
                Some(Strategy::MergeKey(key)) => {
                    let mut items = Map::new();
                    for ni in na {
                        let sub = match oa.iter().find(|oi| oi.get(key) == ni.get(key)) {
                            Some(oi) if oi == ni => continue,
                            Some(oi) => changed_set(oi, ni, cdef),
                            None => {
                                let mut whole = field_set(ni, cdef);
                                if let Value::Object(m) = &mut whole {
                                    m.insert(".".into(), json!({}));
                                }
                                whole
                            }
                        };
                        if sub.as_object().is_some_and(|m| !m.is_empty()) {
                            items.insert(key_entry(ni, key), sub);
                        }
                    }
                    Value::Object(items)
                }
                _ => entry.clone(),
            },
            _ => entry.clone(),
        };
        // a changed container whose own changes all fall outside the sets is not owned (`{}` would
        // claim the whole value); a changed leaf is `{}` by construction above
        let nested = matches!(
            (ov, nv),
            (Value::Object(_), Value::Object(_)) | (Value::Array(_), Value::Array(_))
        ) && entry.as_object().is_some_and(|m| !m.is_empty());
        if nested && sub.as_object().is_some_and(Map::is_empty) {
            continue;
        }
        out.insert(fk, sub);
    }
    Value::Object(out)
}

fn child_is_struct(def: Option<&str>, field: &str) -> bool {
    let Some(d) = def else { return false };
    let reg = Registry::get();
    match reg.property(d, field) {
        Some((_, s)) => s.get("properties").is_some(),
        None => false,
    }
}

/// Merges an applied configuration into the live object.
pub fn merge_config(live: &mut Value, config: &Value, def: Option<&str>) {
    match (live, config) {
        (Value::Object(lm), Value::Object(cm)) => {
            for (k, cv) in cm {
                let cdef = child_def(def, k);
                match (lm.get_mut(k), cv) {
                    (Some(lv @ Value::Object(_)), Value::Object(_)) => merge_config(lv, cv, cdef),
                    (Some(Value::Array(la)), Value::Array(ca)) => match meta::strategy(def, k) {
                        Some(Strategy::MergeKey(key)) => {
                            for ci in ca {
                                match la.iter_mut().find(|li| li.get(key) == ci.get(key)) {
                                    Some(li) => merge_config(li, ci, cdef),
                                    None => la.push(ci.clone()),
                                }
                            }
                        }
                        Some(Strategy::MergePrimitive) => {
                            for ci in ca {
                                if !la.contains(ci) {
                                    la.push(ci.clone());
                                }
                            }
                        }
                        _ => *la = ca.clone(),
                    },
                    (_, cv) => {
                        lm.insert(k.clone(), cv.clone());
                    }
                }
            }
        }
        (live, config) => *live = config.clone(),
    }
}

/// Removes from `obj` the fields in `removed` (a FieldsV1 set) that `keep` does not also contain.
pub fn remove_fields(obj: &mut Value, removed: &Value, keep: &Value) {
    let (Value::Object(rm), Value::Object(om)) = (removed, &mut *obj) else {
        return;
    };
    for (path, sub) in rm {
        if path == "." {
            continue;
        }
        let kept_sub = keep.get(path);
        let sub_is_leaf = sub
            .as_object()
            .is_none_or(|m| m.is_empty() || (m.len() == 1 && m.contains_key(".")));
        if let Some(name) = path.strip_prefix("f:") {
            match kept_sub {
                None if sub_is_leaf
                    || !om.get(name).is_some_and(|v| v.is_object() || v.is_array()) =>
                {
                    om.remove(name);
                }
                None => {
                    // the whole subtree was ours and is gone from the config
                    om.remove(name);
                }
                Some(k) => {
                    if let Some(child) = om.get_mut(name) {
                        remove_fields(child, sub, k);
                    }
                }
            }
        }
    }
    remove_list_items(obj, removed, keep);
}

fn remove_list_items(obj: &mut Value, removed: &Value, keep: &Value) {
    let Value::Object(om) = obj else { return };
    let Value::Object(rm) = removed else { return };
    for (path, sub) in rm {
        let Some(name) = path.strip_prefix("f:") else {
            continue;
        };
        let Some(Value::Array(items)) = om.get_mut(name) else {
            continue;
        };
        let Value::Object(entries) = sub else {
            continue;
        };
        let kept = keep.get(path);
        for (entry, esub) in entries {
            let kept_entry = kept.and_then(|k| k.get(entry));
            if let Some(kjson) = entry.strip_prefix("k:") {
                let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(kjson) else {
                    continue;
                };
                let matches = |it: &Value| keys.iter().all(|(k, v)| it.get(k) == Some(v));
                match kept_entry {
                    None => items.retain(|it| !matches(it)),
                    Some(ke) => {
                        for it in items.iter_mut().filter(|it| matches(it)) {
                            remove_fields(it, esub, ke);
                        }
                    }
                }
            } else if let Some(vjson) = entry.strip_prefix("v:")
                && kept_entry.is_none()
                && let Ok(v) = serde_json::from_str::<Value>(vjson)
            {
                items.retain(|it| *it != v);
            }
        }
    }
}

/// Set difference of two FieldsV1 sets (`a - b`).
pub fn difference(a: &Value, b: &Value) -> Value {
    let (Value::Object(am), bm) = (a, b) else {
        return json!({});
    };
    let mut out = Map::new();
    for (k, av) in am {
        match bm.get(k) {
            None => {
                out.insert(k.clone(), av.clone());
            }
            Some(bv) => {
                let d = difference(av, bv);
                if d.as_object().is_some_and(|m| !m.is_empty()) {
                    out.insert(k.clone(), d);
                }
            }
        }
    }
    Value::Object(out)
}

/// Union of two FieldsV1 sets.
pub fn union(a: &Value, b: &Value) -> Value {
    let mut out = a.as_object().cloned().unwrap_or_default();
    if let Value::Object(bm) = b {
        for (k, bv) in bm {
            let merged = match out.get(k) {
                Some(av) => union(av, bv),
                None => bv.clone(),
            };
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out)
}

/// Paths both sets own as fields themselves (leaves) where the two objects disagree. A path one set
/// owns whole and the other only has children under (`.metadata` of a configuration that sets just the
/// name, against another manager's annotation) is not shared: structured-merge-diff compares member
/// paths, so only the fields below it can conflict.
pub fn conflicts(
    set: &Value,
    other_set: &Value,
    live: &Value,
    config: &Value,
    prefix: &str,
    out: &mut Vec<String>,
) {
    let (Value::Object(sm), Value::Object(om)) = (set, other_set) else {
        return;
    };
    for (k, sv) in sm {
        let Some(ov) = om.get(k) else { continue };
        let Some(name) = k.strip_prefix("f:") else {
            continue;
        };
        let path = format!("{prefix}.{name}");
        let (lv, cv) = (live.get(name), config.get(name));
        let is_leaf = |v: &Value| v.as_object().is_none_or(|m| m.is_empty());
        if is_leaf(sv) || is_leaf(ov) {
            if is_leaf(sv) && is_leaf(ov) && lv != cv && lv.is_some() {
                out.push(path);
            }
        } else if let (Some(lv), Some(cv)) = (lv, cv) {
            if lv.is_object() && cv.is_object() {
                conflicts(sv, ov, lv, cv, &path, out);
            } else if let (Value::Array(la), Value::Array(ca), Value::Object(se)) = (lv, cv, sv) {
                for (entry, esub) in se {
                    let (Some(oe), Some(kjson)) = (ov.get(entry), entry.strip_prefix("k:")) else {
                        continue;
                    };
                    let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(kjson) else {
                        continue;
                    };
                    let matches = |it: &&Value| keys.iter().all(|(k, v)| it.get(k) == Some(v));
                    if let (Some(li), Some(ci)) = (la.iter().find(matches), ca.iter().find(matches))
                    {
                        conflicts(esub, oe, li, ci, &format!("{path}[{kjson}]"), out);
                    }
                }
            }
        }
    }
}

/// The managedFields entry of `manager` with `operation`, if any.
pub fn managed_entry<'a>(obj: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
    obj.pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
}

/// Records `set` for `manager`/`operation` in `obj`'s managedFields (replacing its previous entry).
pub fn record(
    obj: &mut Value,
    manager: &str,
    operation: &str,
    api_version: &str,
    time: &str,
    set: Value,
    subresource: Option<&str>,
) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let entries = meta.entry("managedFields").or_insert_with(|| json!([]));
    if !entries.is_array() {
        *entries = json!([]);
    }
    let list = entries.as_array_mut().expect("array");
    list.retain(|e| !(e["manager"] == manager && e["operation"] == operation));
    let mut e = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": set,
    });
    if let Some(s) = subresource {
        e["subresource"] = json!(s);
    }
    list.push(e);
}

/// Applies `config` as `manager` to `live` (the current object, already carrying managedFields).
/// Returns the new object or the conflicts (when `force` is false).
pub fn apply(
    live: &Value,
    config: &Value,
    def: Option<&str>,
    manager: &str,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let new_set = field_set(config, def);
    let mut result = live.clone();
    // conflicts with other apply managers
    let mut found = Vec::new();
    if let Some(Value::Array(entries)) = live.pointer("/metadata/managedFields") {
        for e in entries
            .iter()
            .filter(|e| e["operation"] == "Apply" && e["manager"] != manager)
        {
            let mut paths = Vec::new();
            conflicts(&new_set, &e["fieldsV1"], live, config, "", &mut paths);
            for p in paths {
                found.push(Conflict {
                    manager: e["manager"].as_str().unwrap_or_default().to_string(),
                    field: p,
                });
            }
        }
    }
    if !found.is_empty() && !force {
        return Err(found);
    }
    let prev_set = managed_entry(live, manager, "Apply")
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or_else(|| json!({}));
    merge_config(&mut result, config, def);
    let removed = difference(&prev_set, &new_set);
    // fields other apply managers also own stay
    let mut others = json!({});
    if let Some(Value::Array(entries)) = live.pointer("/metadata/managedFields") {
        for e in entries
            .iter()
            .filter(|e| e["operation"] == "Apply" && e["manager"] != manager)
        {
            others = union(&others, &e["fieldsV1"]);
        }
    }
    let keep = union(&new_set, &others);
    remove_fields(&mut result, &removed, &keep);
    if force {
        // forced fields move to this manager: take them out of the other managers' sets
        if let Some(Value::Array(entries)) = result.pointer_mut("/metadata/managedFields") {
            for e in entries
                .iter_mut()
                .filter(|e| e["operation"] == "Apply" && e["manager"] != manager)
            {
                let d = difference(&e["fieldsV1"], &new_set);
                e["fieldsV1"] = d;
            }
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: Option<&str> = Some("io.k8s.api.core.v1.Pod");

    fn pod(image: &str, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": labels},
               "spec": {"containers": [{"name": "nginx", "image": image}]}})
    }

    #[test]
    fn field_sets_use_keys_for_merge_lists() {
        let s = field_set(&pod("nginx", json!({"app": "web"})), POD);
        assert_eq!(s["f:metadata"]["f:labels"]["f:app"], json!({}));
        assert!(s["f:metadata"].get("f:name").is_none());
        assert_eq!(
            s["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"]["f:image"],
            json!({})
        );
    }

    #[test]
    fn reapply_removes_dropped_fields() {
        let first = pod("nginx:1", json!({"app": "web", "tier": "front"}));
        let mut live = first.clone();
        record(
            &mut live,
            "kubectl",
            "Apply",
            "v1",
            "t",
            field_set(&first, POD),
            None,
        );
        live["status"] = json!({"phase": "Pending"});
        let second = pod("nginx:2", json!({"app": "web"}));
        let out = apply(&live, &second, POD, "kubectl", false).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(out["spec"]["containers"][0]["image"], "nginx:2");
        assert_eq!(out["status"]["phase"], "Pending");
    }

    #[test]
    fn other_apply_managers_conflict_unless_forced() {
        let a = pod("nginx:1", json!({"app": "web"}));
        let mut live = a.clone();
        record(
            &mut live,
            "alice",
            "Apply",
            "v1",
            "t",
            field_set(&a, POD),
            None,
        );
        let b = pod("nginx:2", json!({"app": "web"}));
        let err = apply(&live, &b, POD, "bob", false).unwrap_err();
        assert!(
            err.iter()
                .any(|c| c.manager == "alice" && c.field.contains("containers")),
            "{err:?}"
        );
        assert!(apply(&live, &b, POD, "bob", true).is_ok());
        // the same value is shared, not a conflict
        assert!(apply(&live, &a, POD, "bob", false).is_ok());
    }

    #[test]
    fn an_update_owns_what_it_changed() {
        let old = pod("nginx:1", json!({"app": "web"}));
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("nginx:2");
        new["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "side", "image": "busybox"}));
        new["metadata"]["labels"]["tier"] = json!("front");
        new["metadata"]["managedFields"] = json!([{"manager": "x", "operation": "Apply"}]);
        new["metadata"]["resourceVersion"] = json!("7");
        let set = changed_set(&old, &new, POD);
        assert_eq!(
            set,
            json!({
                "f:metadata": {"f:labels": {"f:tier": {}}},
                "f:spec": {"f:containers": {
                    "k:{\"name\":\"nginx\"}": {"f:image": {}},
                    "k:{\"name\":\"side\"}": {".": {}, "f:name": {}, "f:image": {}}
                }}
            })
        );
        // only metadata outside the sets changed: nothing is owned
        let mut meta_only = old.clone();
        meta_only["metadata"]["managedFields"] = json!([]);
        assert_eq!(changed_set(&old, &meta_only, POD), json!({}));
    }

    #[test]
    fn a_field_only_one_manager_owns_whole_is_not_shared() {
        // kubectl's CSA->SSA migration: `kubectl-last-applied` applies just the annotation, then
        // `kubectl` re-applies a configuration whose metadata holds only the name
        let annotation = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "annotations": {"note": "x"}}});
        let mut live = pod("nginx:1", json!({"app": "web"}));
        live["metadata"]["annotations"] = json!({"note": "x"});
        record(
            &mut live,
            "kubectl-last-applied",
            "Apply",
            "v1",
            "t",
            field_set(&annotation, POD),
            None,
        );
        let config = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:2"}]}});
        assert_eq!(field_set(&config, POD)["f:metadata"], json!({}));
        let out = apply(&live, &config, POD, "kubectl", false).expect("no conflict");
        assert_eq!(out["metadata"]["annotations"]["note"], "x");
        assert_eq!(out["spec"]["containers"][0]["image"], "nginx:2");
    }
}

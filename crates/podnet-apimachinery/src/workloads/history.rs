//! ControllerRevisions of DaemonSets and StatefulSets: what a revision records, its name, which
//! existing revision a template matches, and which old revisions the history limit removes.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::object;

/// What a revision records: a strategic merge patch that puts the pod template back. `kubectl
/// rollout undo` applies exactly this to the DaemonSet or StatefulSet.
pub fn template_patch(obj: &Value) -> Value {
    let mut t = obj
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Value::Object(m) = &mut t {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// FNV-1 (32 bits), as Go's `hash/fnv.New32`.
fn fnv1_32(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in data {
        h = h.wrapping_mul(0x01000193);
        h ^= u32::from(*b);
    }
    h
}

/// The alphabet of Kubernetes' `rand.SafeEncodeString`.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A revision's hash (`history.HashControllerRevision`): the data plus the parent's collision
/// count, FNV-hashed and safely encoded. It names the revision (`<parent>-<hash>`).
pub fn hash(data: &Value, collision_count: i64) -> String {
    let mut bytes = serde_json::to_vec(data).unwrap_or_default();
    if collision_count != 0 {
        bytes.extend_from_slice(collision_count.to_string().as_bytes());
    }
    fnv1_32(&bytes)
        .to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

pub fn number(rev: &Value) -> i64 {
    rev.get("revision").and_then(Value::as_i64).unwrap_or(0)
}

/// The revision among `revisions` recording `data` (the newest, if several do).
pub fn find_equal<'a>(revisions: &'a [Value], data: &Value) -> Option<&'a Value> {
    revisions
        .iter()
        .filter(|r| r.get("data") == Some(data))
        .max_by_key(|r| number(r))
}

/// The number the next revision gets.
pub fn next_number(revisions: &[Value]) -> i64 {
    revisions.iter().map(number).max().unwrap_or(0) + 1
}

/// Names of the revisions to delete so that at most `limit` revisions not in `live` (names or
/// hashes in use by the parent's status or its pods) remain: the oldest go first.
pub fn to_prune(revisions: &[Value], live: &HashSet<String>, limit: i64) -> Vec<String> {
    let mut old: Vec<&Value> = revisions
        .iter()
        .filter(|r| {
            let name = object::name(r);
            let hash = r
                .pointer("/metadata/labels")
                .and_then(|l| l.get(super::REVISION_HASH_LABEL))
                .and_then(Value::as_str)
                .unwrap_or_default();
            !live.contains(name) && !live.contains(hash)
        })
        .collect();
    old.sort_by_key(|r| number(r));
    let excess = old.len().saturating_sub(limit.max(0) as usize);
    old.into_iter()
        .take(excess)
        .map(|r| object::name(r).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_hash_and_pruning() {
        let ds = json!({"spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let p = template_patch(&ds);
        assert_eq!(p["spec"]["template"]["$patch"], "replace");
        assert_eq!(hash(&p, 0), hash(&p.clone(), 0));
        assert_ne!(hash(&p, 0), hash(&p, 1));
        let rev = |name: &str, n: i64, h: &str| json!({"metadata": {"name": name, "labels": {"controller-revision-hash": h}}, "revision": n, "data": {"n": n}});
        let revs = vec![
            rev("r1", 1, "h1"),
            rev("r2", 2, "h2"),
            rev("r3", 3, "h3"),
            rev("r4", 4, "h4"),
        ];
        assert_eq!(next_number(&revs), 5);
        assert_eq!(
            find_equal(&revs, &json!({"n": 3})).map(object::name),
            Some("r3")
        );
        let live: HashSet<String> = ["r4".to_string(), "h1".to_string()].into();
        // r1 is used by a pod and r4 is current: of r2 and r3, keep one
        assert_eq!(to_prune(&revs, &live, 1), ["r2"]);
        assert!(to_prune(&revs, &live, 10).is_empty());
        assert_eq!(to_prune(&revs, &live, 0), ["r2", "r3"]);
    }
}

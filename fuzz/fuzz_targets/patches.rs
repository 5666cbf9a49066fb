//! Patch bodies of every type against a fixed object: the first byte picks the type, the rest is JSON.
#![no_main]
use podnet_apimachinery::patch::{self, apply, strategic};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let Ok(p) = serde_json::from_slice::<serde_json::Value>(rest) else { return };
    let base = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "labels": {"a": "b"}, "finalizers": ["f"]},
        "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}], "env": [{"name": "E", "value": "1"}]}]}});
    let def = Some("io.k8s.api.core.v1.Pod");
    let _ = match which % 4 {
        0 => patch::merge(&base, &p),
        1 => patch::json(&base, &p),
        2 => strategic::apply(&base, &p, def),
        _ => apply::apply(&base, &p, def, "fuzz", which & 4 != 0).map_err(|_| patch::PatchError::Invalid(String::new())),
    };
});

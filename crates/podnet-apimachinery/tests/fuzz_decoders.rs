//! Property-based fuzzing of every decoder of untrusted input: they return errors, never panic.

use podnet_apimachinery::patch::{self, strategic};
use podnet_apimachinery::protobuf::{decode_envelope, decode_message};
use podnet_apimachinery::schema::check_and_prune;
use podnet_apimachinery::selector::{FieldSelector, LabelSelector};
use podnet_apimachinery::yaml;
use proptest::prelude::*;
use serde_json::{Value, json};

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).expect("vector")
}

/// Arbitrary JSON values of bounded size.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        "[a-z$/]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                "[a-z$/]{1,12}|\\$patch|\\$retainKeys|containers|name|metadata|spec",
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn protobuf_random_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut with_magic = b"k8s\0".to_vec();
        with_magic.extend_from_slice(&body);
        let _ = decode_envelope(&body);
        let _ = decode_envelope(&with_magic);
        let _ = decode_message("k8s.io.api.core.v1.Pod", &body);
    }

    #[test]
    fn protobuf_mutated_vectors(pos in any::<prop::sample::Index>(), byte in any::<u8>(), name in prop::sample::select(vec![
        "pb-Deployment-1795371377631.bin", "pb-Service-1795371377744.bin", "pb-Secret-1795372027006.bin"])) {
        let mut v = vector(name);
        let i = pos.index(v.len());
        v[i] = byte;
        let _ = decode_envelope(&v);
    }

    #[test]
    fn yaml_random_text(s in "\\PC{0,200}") {
        let _ = yaml::from_slice(s.as_bytes());
    }

    #[test]
    fn yaml_structured_text(s in "([a-z]{1,5}: (\\[|\\{|\"|&a|\\*a|!!binary|[0-9]{1,3}|-)?\n  ?){0,12}") {
        let _ = yaml::from_slice(s.as_bytes());
    }

    #[test]
    fn json_random_bytes(b in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(mut v) = serde_json::from_slice::<Value>(&b) {
            let _ = check_and_prune(&mut v, "io.k8s.api.core.v1.Pod");
        }
    }

    #[test]
    fn decoding_arbitrary_objects(mut v in arb_json()) {
        let _ = check_and_prune(&mut v, "io.k8s.api.core.v1.Pod");
        let _ = check_and_prune(&mut v, "io.k8s.api.apps.v1.Deployment");
    }

    #[test]
    fn patches_never_panic(orig in arb_json(), p in arb_json()) {
        let _ = strategic::apply(&orig, &p, Some("io.k8s.api.core.v1.Pod"));
        let _ = patch::merge(&orig, &p);
        let _ = patch::json(&orig, &p);
        let _ = patch::apply::apply(&orig, &p, Some("io.k8s.api.core.v1.Pod"), "m", false);
        // what an update owns: never panics, and nothing when nothing changed
        let _ = patch::apply::changed_set(&orig, &p, Some("io.k8s.api.core.v1.Pod"));
        prop_assert_eq!(
            patch::apply::changed_set(&orig, &orig, Some("io.k8s.api.core.v1.Pod")),
            serde_json::json!({})
        );
    }

    #[test]
    fn selectors_never_panic(s in "[a-z=!,() .in/0-9<>-]{0,40}") {
        let _ = LabelSelector::parse(&s);
        let _ = FieldSelector::parse(&s, "Pod");
    }

    #[test]
    fn label_selector_round_trips(k in "[a-z][a-z0-9]{0,8}", v in "[a-z][a-z0-9]{0,8}") {
        let s = LabelSelector::parse(&format!("{k}={v},{k}2 in ({v},x),!{k}3")).unwrap();
        let again = LabelSelector::parse(&s.to_string()).unwrap();
        prop_assert_eq!(s, again);
    }

    #[test]
    fn strategic_merge_of_labels_matches_json_merge(a in prop::collection::btree_map("[a-z]{1,4}", "[a-z]{0,4}", 0..5),
                                                     b in prop::collection::btree_map("[a-z]{1,4}", prop::option::of("[a-z]{0,4}"), 0..5)) {
        // for plain maps, strategic merge patch and RFC 7396 agree
        let orig = json!({"metadata": {"labels": a}});
        let p = json!({"metadata": {"labels": b}});
        let s = strategic::apply(&orig, &p, Some("io.k8s.api.core.v1.Pod")).unwrap();
        let m = patch::merge(&orig, &p).unwrap();
        prop_assert_eq!(s, m);
    }
}

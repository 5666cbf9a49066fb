//! JSON bodies through strict decoding, defaulting and validation, as a create would take them.
#![no_main]
use podnet_apimachinery::{defaults, schema, validation};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    for (group, kind, def) in [("", "Pod", "io.k8s.api.core.v1.Pod"), ("apps", "Deployment", "io.k8s.api.apps.v1.Deployment"), ("", "Service", "io.k8s.api.core.v1.Service")] {
        let mut o = v.clone();
        let _ = schema::check_and_prune(&mut o, def);
        if o.is_object() {
            defaults::apply(group, kind, &mut o, true);
            let _ = validation::validate(group, kind, &o, None, true);
            let _ = podnet_apimachinery::table::cells(kind, &o, 0);
        }
    }
    let _ = schema::check_and_prune(&mut v, "io.k8s.api.core.v1.Node");
});

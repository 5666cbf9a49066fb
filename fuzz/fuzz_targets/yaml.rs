//! YAML request bodies and kubeconfig files.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(v) = podnet_apimachinery::yaml::from_slice(data) {
        let _ = podnet_apimachinery::yaml::to_string(&v);
    }
});

//! Protobuf request bodies (k8s\0 + runtime.Unknown, and bare messages).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = podnet_apimachinery::protobuf::decode_envelope(data);
    let _ = podnet_apimachinery::protobuf::decode_message("k8s.io.api.apps.v1.Deployment", data);
});

//! The protobuf bodies real kubectl v1.35.2 and helm v4.1.4 sent (captured in the project's wire notes)
//! decode to the objects they describe, with Go's zero values read as unset.

use podnet_apimachinery::protobuf::decode_envelope;
use serde_json::json;

fn vector(name: &str) -> Vec<u8> {
    let p = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("read {p}: {e}"))
}

#[test]
fn kubectl_create_deployment() {
    let d = decode_envelope(&vector("pb-Deployment-1795371377631.bin")).unwrap();
    assert_eq!(d["apiVersion"], "apps/v1");
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(
        d["metadata"],
        json!({"name": "nginx", "labels": {"app": "nginx"}})
    );
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["spec"]["selector"],
        json!({"matchLabels": {"app": "nginx"}})
    );
    assert_eq!(
        d["spec"]["template"]["metadata"],
        json!({"labels": {"app": "nginx"}})
    );
    // stdin: false, hostNetwork: false, minReadySeconds: 0 ... are unset
    assert_eq!(
        d["spec"]["template"]["spec"],
        json!({"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]})
    );
    assert!(d["spec"].get("minReadySeconds").is_none());
    assert!(d["spec"].get("paused").is_none());
    assert_eq!(d["spec"]["strategy"], json!({}));
    assert_eq!(d["status"], json!({}));
}

#[test]
fn kubectl_create_service_nodeport() {
    let s = decode_envelope(&vector("pb-Service-1795371377744.bin")).unwrap();
    assert_eq!(s["kind"], "Service");
    assert_eq!(s["metadata"]["name"], "nginx");
    assert_eq!(s["spec"]["type"], "NodePort");
    assert_eq!(
        s["spec"]["ports"],
        json!([{"name": "80-80", "protocol": "TCP", "port": 80, "targetPort": 80}])
    );
    assert_eq!(s["spec"]["selector"], json!({"app": "nginx"}));
    assert!(s["spec"].get("healthCheckNodePort").is_none());
}

#[test]
fn kubectl_create_namespace_and_configmap() {
    let n = decode_envelope(&vector("pb-Namespace-1795372077635.bin")).unwrap();
    assert_eq!(n["metadata"], json!({"name": "lab"}));
    let c = decode_envelope(&vector("pb-ConfigMap-1795372077684.bin")).unwrap();
    assert_eq!(c["metadata"], json!({"name": "cm1"}));
    assert_eq!(c["data"], json!({"a": "b"}));
}

#[test]
fn secrets_keep_bytes_as_base64() {
    let s = decode_envelope(&vector("pb-Secret-1795372077737.bin")).unwrap();
    assert_eq!(s["data"], json!({"a": "Yg=="}));
    assert!(s.get("type").is_none());
    let h = decode_envelope(&vector("pb-Secret-1795372027006.bin")).unwrap();
    assert_eq!(h["type"], "helm.sh/release.v1");
    assert_eq!(h["metadata"]["labels"]["owner"], "helm");
    assert!(h["data"]["release"].as_str().unwrap().len() > 100);
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    for name in [
        "pb-Deployment-1795371377631.bin",
        "pb-Service-1795371377744.bin",
        "pb-Secret-1795372027006.bin",
    ] {
        let full = vector(name);
        for n in 0..full.len() {
            // a prefix either fails or decodes to something smaller; it never panics
            let _ = decode_envelope(&full[..n]);
        }
        assert!(decode_envelope(&full[..full.len() / 2]).is_err());
    }
}

//! Bad input never crashes the server or corrupts its state; each gets the Status a real API server
//! returns.

mod common;

use common::TestServer;
use common::client::raw;
use proptest::prelude::*;
use serde_json::{Value, json};

const PODS: &str = "/api/v1/namespaces/default/pods";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../podnet-apimachinery/tests/data/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[track_caller]
fn assert_status(v: &Value, code: u16, reason: &str) {
    assert_eq!(v["kind"], "Status", "{v}");
    assert_eq!(v["apiVersion"], "v1", "{v}");
    assert_eq!(v["status"], "Failure", "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["reason"], reason, "{v}");
}

#[test]
fn bad_bodies_get_kubernetes_statuses() {
    let t = TestServer::start();
    rt().block_on(async {
        let c = t.client().await;
        let good = serde_json::to_vec(&pod("ok")).unwrap();
        // truncated JSON
        let (s, _, v, _) = raw(&c, "POST", PODS, Some("application/json"), good[..good.len() / 2].to_vec()).await;
        assert_eq!(s, 400);
        assert_status(&v, 400, "BadRequest");
        assert!(v["message"].as_str().unwrap().contains("json parse error"), "{v}");
        // not an object
        let (s, _, v, _) = raw(&c, "POST", PODS, Some("application/json"), b"[1,2]".to_vec()).await;
        assert_eq!(s, 400, "{v}");
        // broken YAML
        let (s, _, v, _) = raw(&c, "POST", PODS, Some("application/yaml"), b"apiVersion: v1\nkind: Pod\nmetadata: [unclosed\n".to_vec()).await;
        assert_eq!(s, 400);
        assert_status(&v, 400, "BadRequest");
        // YAML that is fine
        let (s, _, v, _) = raw(&c, "POST", PODS, Some("application/yaml"), b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: yml\nspec:\n  containers:\n  - name: c\n    image: busybox\n".to_vec()).await;
        assert_eq!(s, 201, "{v}");
        // protobuf: garbage, truncated, whole
        let (s, _, v, _) = raw(&c, "POST", PODS, Some("application/vnd.kubernetes.protobuf"), b"k8s\0\xff\xff\xff".to_vec()).await;
        assert_eq!(s, 400, "{v}");
        assert_status(&v, 400, "BadRequest");
        let d = vector("pb-Deployment-1795371377631.bin");
        let (s, _, v, _) = raw(&c, "POST", "/apis/apps/v1/namespaces/default/deployments", Some("application/vnd.kubernetes.protobuf"), d[..d.len() - 7].to_vec()).await;
        assert_eq!(s, 400, "{v}");
        let (s, _, v, _) = raw(&c, "POST", "/apis/apps/v1/namespaces/default/deployments", Some("application/vnd.kubernetes.protobuf"), d).await;
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["spec"]["template"]["spec"]["containers"][0]["image"], "nginx");
        // a protobuf body of another kind than the URL
        let (s, _, v, _) = raw(&c, "POST", PODS, Some("application/vnd.kubernetes.protobuf"), vector("pb-Service-1795371377744.bin")).await;
        assert_eq!(s, 400, "{v}");
        // wrong content types
        let (s, _, v, _) = raw(&c, "POST", PODS, Some("text/plain"), good.clone()).await;
        assert_eq!(s, 415);
        assert_status(&v, 415, "UnsupportedMediaType");
        let (s, _, v, _) = raw(&c, "PATCH", &format!("{PODS}/yml"), Some("application/json"), b"{}".to_vec()).await;
        assert_eq!(s, 415);
        assert_status(&v, 415, "UnsupportedMediaType");
        // too large
        let big = vec![b' '; 3 * 1024 * 1024 + 1];
        let (s, _, v, _) = raw(&c, "POST", PODS, Some("application/json"), big).await;
        assert_eq!(s, 413);
        assert_status(&v, 413, "RequestEntityTooLarge");
        // type errors, as Go's decoder words them
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": "3"}});
        let (s, _, v, _) = raw(&c, "POST", "/apis/apps/v1/namespaces/default/deployments", Some("application/json"), serde_json::to_vec(&d).unwrap()).await;
        assert_eq!(s, 400);
        assert!(v["message"].as_str().unwrap().contains("json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"), "{v}");
        d["spec"]["replicas"] = json!(-1);
        d["spec"]["selector"] = json!({"matchLabels": {"a": "b"}});
        d["spec"]["template"] = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let (s, _, v, _) = raw(&c, "POST", "/apis/apps/v1/namespaces/default/deployments", Some("application/json"), serde_json::to_vec(&d).unwrap()).await;
        assert_eq!(s, 422);
        assert_status(&v, 422, "Invalid");
        assert_eq!(v["details"]["causes"][0]["field"], "spec.replicas");
        assert_eq!(v["message"], "Deployment.apps \"x\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0");
    });
}

#[test]
fn field_validation_modes() {
    let t = TestServer::start();
    rt().block_on(async {
        let c = t.client().await;
        let mut p = pod("fv");
        p["spec"]["containers"][0]["bogus"] = json!(1);
        p["spec"]["alsoBogus"] = json!(true);
        let body = serde_json::to_vec(&p).unwrap();
        let (s, _, v, _) = raw(&c, "POST", &format!("{PODS}?fieldValidation=Strict"), Some("application/json"), body.clone()).await;
        assert_eq!(s, 400);
        assert_eq!(
            v["message"],
            "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"spec.alsoBogus\", unknown field \"spec.containers[0].bogus\""
        );
        let (s, _, v, _) = raw(&c, "POST", &format!("{PODS}?fieldValidation=Ignore"), Some("application/json"), body.clone()).await;
        assert_eq!(s, 201, "{v}");
        assert!(v["spec"].get("alsoBogus").is_none());
        let (s, _, v, _) = raw(&c, "POST", &format!("{PODS}?fieldValidation=Nope"), Some("application/json"), body.clone()).await;
        assert_eq!(s, 400, "{v}");
        // Warn (the default) answers with Warning headers
        let req = http::Request::post(PODS).header("Content-Type", "application/json").body(serde_json::to_vec(&pod("fv2")).unwrap().into_iter().chain(Vec::new()).collect::<Vec<u8>>()).unwrap();
        let mut with_unknown = pod("fv3");
        with_unknown["spec"]["zzz"] = json!(1);
        let req2 = http::Request::post(PODS).header("Content-Type", "application/json").body(serde_json::to_vec(&with_unknown).unwrap()).unwrap();
        let _ = c.send(req.map(kube::client::Body::from)).await.unwrap();
        let resp = c.send(req2.map(kube::client::Body::from)).await.unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        let w = resp.headers().get("warning").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert_eq!(w, "299 - \"unknown field \\\"spec.zzz\\\"\"");
    });
}

#[test]
fn bad_names_selectors_and_versions() {
    let t = TestServer::start();
    rt().block_on(async {
        let c = t.client().await;
        let (s, _, v, _) = raw(&c, "POST", PODS, Some("application/json"), serde_json::to_vec(&pod("Bad_Name")).unwrap()).await;
        assert_eq!(s, 422);
        assert_status(&v, 422, "Invalid");
        assert_eq!(v["details"]["causes"][0]["field"], "metadata.name");
        assert_eq!(v["details"]["causes"][0]["reason"], "FieldValueInvalid");
        let (s, _, v, _) = raw(&c, "POST", PODS, Some("application/json"), serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80, "protocol": "XTP"}]}]}})).unwrap()).await;
        assert_eq!(s, 422);
        assert_eq!(v["details"]["causes"][0]["field"], "spec.containers[0].ports[0].protocol");
        assert_eq!(v["details"]["causes"][0]["reason"], "FieldValueNotSupported");
        for q in ["labelSelector=a%3Db%3Dc", "labelSelector=%3D%3D", "labelSelector=a+in+b", "fieldSelector=spec.zzz%3D1", "fieldSelector=nonsense"] {
            let (s, _, v, _) = raw(&c, "GET", &format!("{PODS}?{q}"), None, vec![]).await;
            assert_eq!(s, 400, "{q}: {v}");
            assert_status(&v, 400, "BadRequest");
        }
        let (s, _, _, _) = raw(&c, "GET", &format!("{PODS}?resourceVersion=abc"), None, vec![]).await;
        assert_eq!(s, 400);
        let (s, _, _, _) = raw(&c, "GET", &format!("{PODS}?watch=true&resourceVersion=abc"), None, vec![]).await;
        assert_eq!(s, 400);
        let (s, _, _, _) = raw(&c, "GET", &format!("{PODS}?watch=true&sendInitialEvents=true"), None, vec![]).await;
        assert_eq!(s, 422);
        // optimistic concurrency (on a ConfigMap: no controller touches it meanwhile)
        const CMS: &str = "/api/v1/namespaces/default/configmaps";
        let (s, _, created, _) = raw(&c, "POST", CMS, Some("application/json"), serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "rv"}})).unwrap()).await;
        assert_eq!(s, 201);
        let mut stale = created.clone();
        stale["metadata"]["labels"] = json!({"a": "b"});
        let (s, _, _, _) = raw(&c, "PUT", &format!("{CMS}/rv"), Some("application/json"), serde_json::to_vec(&stale).unwrap()).await;
        assert_eq!(s, 200);
        let (s, _, v, _) = raw(&c, "PUT", &format!("{CMS}/rv"), Some("application/json"), serde_json::to_vec(&stale).unwrap()).await;
        assert_eq!(s, 409);
        assert_status(&v, 409, "Conflict");
        stale["metadata"]["resourceVersion"] = json!("not-a-number");
        let (s, _, _, _) = raw(&c, "PUT", &format!("{CMS}/rv"), Some("application/json"), serde_json::to_vec(&stale).unwrap()).await;
        assert_eq!(s, 422);
        stale["metadata"]["resourceVersion"] = json!("");
        stale["metadata"]["name"] = json!("other");
        let (s, _, v, _) = raw(&c, "PUT", &format!("{CMS}/rv"), Some("application/json"), serde_json::to_vec(&stale).unwrap()).await;
        assert_eq!(s, 400, "{v}");
        // paths and methods
        let (s, _, v, _) = raw(&c, "GET", "/api/v1/namespaces/default/widgets", None, vec![]).await;
        assert_eq!(s, 404);
        assert_status(&v, 404, "NotFound");
        let (s, _, v, _) = raw(&c, "POST", "/api/v1/namespaces/default/pods/rv", Some("application/json"), b"{}".to_vec()).await;
        assert_eq!(s, 405, "{v}");
        let (s, _, v, _) = raw(&c, "GET", "/apis/example.com/v1/namespaces/default/widgets", None, vec![]).await;
        assert_eq!(s, 404, "{v}");
    });
}

#[test]
fn unauthenticated_requests_get_401() {
    let t = TestServer::start();
    rt().block_on(async {
        let c = t.anonymous_client().await;
        let (s, _, v, _) = raw(&c, "GET", PODS, None, vec![]).await;
        assert_eq!(s, 401);
        assert_status(&v, 401, "Unauthorized");
        // /version and health are public, as on a real cluster
        let (s, _, v, _) = raw(&c, "GET", "/version", None, vec![]).await;
        assert_eq!(s, 200);
        assert_eq!(v["gitVersion"], "v1.35.0");
    });
}

#[test]
fn watch_from_before_a_restart_is_gone() {
    let t = TestServer::start();
    rt().block_on(async {
        let c = t.client().await;
        raw(
            &c,
            "POST",
            PODS,
            Some("application/json"),
            serde_json::to_vec(&pod("a")).unwrap(),
        )
        .await;
    });
    let (dir, pki, tools) = t.stop();
    let t = TestServer::start_in(dir, pki, tools, |_| {});
    rt().block_on(async {
        let c = t.client().await;
        let (s, _, v, _) = raw(
            &c,
            "GET",
            &format!("{PODS}?watch=true&resourceVersion=1"),
            None,
            vec![],
        )
        .await;
        assert_eq!(s, 410, "{v}");
        assert_status(&v, 410, "Expired");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .starts_with("too old resource version: 1 ("),
            "{v}"
        );
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1, .. ProptestConfig::default() })]

    /// Hundreds of random and mutated bodies over every body-taking verb and content type: never a 5xx,
    /// and afterwards the state is exactly what the successful requests made it.
    #[test]
    fn random_bodies_never_break_the_server(seed in any::<u64>()) {
        let t = TestServer::start();
        rt().block_on(async move {
            let c = t.client().await;
            let mut rng = XorShift(seed | 1);
            let good = serde_json::to_vec(&pod("base")).unwrap();
            raw(&c, "POST", PODS, Some("application/json"), good.clone()).await;
            let cts = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf", "application/merge-patch+json",
                "application/strategic-merge-patch+json", "application/json-patch+json", "application/apply-patch+yaml"];
            let vectors = [good.clone(), vector("pb-Deployment-1795371377631.bin"), br#"{"metadata":{"labels":{"a":"b"}}}"#.to_vec(), br#"[{"op":"add","path":"/metadata/labels","value":{"x":"y"}}]"#.to_vec()];
            let mut created = 1;
            for i in 0..300 {
                let mut body = vectors[rng.pick(vectors.len())].clone();
                // mutate: flip, truncate or splice random bytes
                for _ in 0..rng.pick(4) {
                    if body.is_empty() { break; }
                    match rng.pick(3) {
                        0 => { let j = rng.pick(body.len()); body[j] = rng.byte(); }
                        1 => { let j = rng.pick(body.len()); body.truncate(j); }
                        _ => { let j = rng.pick(body.len() + 1); body.insert(j, rng.byte()); }
                    }
                }
                let ct = cts[rng.pick(cts.len())];
                let (method, path) = match rng.pick(3) {
                    0 => ("POST", PODS.to_string()),
                    1 => ("PATCH", format!("{PODS}/base?fieldManager=fuzz")),
                    _ => ("PUT", format!("{PODS}/base")),
                };
                let (s, _, v, _) = raw(&c, method, &path, Some(ct), body).await;
                assert!(s < 500, "request {i}: {method} {ct} -> {s}: {v}");
                if method == "POST" && s == 201 {
                    created += 1;
                }
            }
            let (s, _, list, _) = raw(&c, "GET", PODS, None, vec![]).await;
            assert_eq!(s, 200);
            assert_eq!(list["items"].as_array().unwrap().len(), created);
            let (s, _, base, _) = raw(&c, "GET", &format!("{PODS}/base"), None, vec![]).await;
            assert_eq!(s, 200, "{base}");
        });
    }
}

/// A tiny deterministic generator (the seed comes from proptest, so failures replay).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn pick(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

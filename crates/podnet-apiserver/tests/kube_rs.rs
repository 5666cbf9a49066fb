//! kube-rs (the Rust client) against podnet: list, watch, watcher (list+watch and watch-list with
//! bookmarks), and the patch types.

mod common;

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use serde_json::json;

use common::TestServer;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": "kube-rs"}}, "data": {"a": "1"}})).unwrap()
}

#[test]
fn list_get_create_delete() {
    let t = TestServer::start();
    rt().block_on(async {
        let client = t.client().await;
        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        cms.create(&PostParams::default(), &cm("one"))
            .await
            .unwrap();
        cms.create(&PostParams::default(), &cm("two"))
            .await
            .unwrap();
        let list = cms
            .list(&ListParams::default().labels("app=kube-rs"))
            .await
            .unwrap();
        let names: Vec<String> = list
            .items
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["one", "two"]);
        assert!(list.metadata.resource_version.is_some());
        // paging with limit/continue
        let page = cms
            .list(&ListParams::default().labels("app=kube-rs").limit(1))
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
        let token = page.metadata.continue_.clone().expect("continue token");
        let next = cms
            .list(
                &ListParams::default()
                    .labels("app=kube-rs")
                    .limit(1)
                    .continue_token(&token),
            )
            .await
            .unwrap();
        assert_eq!(next.items[0].metadata.name.as_deref(), Some("two"));
        let got = cms.get("one").await.unwrap();
        assert_eq!(got.data.unwrap()["a"], "1");
        cms.delete("one", &DeleteParams::default()).await.unwrap();
        let err = cms.get("one").await.unwrap_err();
        assert!(
            matches!(err, kube::Error::Api(ref s) if s.code == 404),
            "{err:?}"
        );
        let pods: Api<Pod> = Api::all(client);
        assert!(
            pods.list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty()
        );
    });
}

#[test]
fn raw_watch_sees_changes() {
    let t = TestServer::start();
    rt().block_on(async {
        let client = t.client().await;
        let cms: Api<ConfigMap> = Api::default_namespaced(client);
        let rv = cms
            .list(&ListParams::default())
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap();
        let mut stream = cms
            .watch(
                &WatchParams::default().labels("app=kube-rs").timeout(20),
                &rv,
            )
            .await
            .unwrap()
            .boxed();
        cms.create(&PostParams::default(), &cm("w")).await.unwrap();
        cms.patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"b": "2"}})),
        )
        .await
        .unwrap();
        cms.delete("w", &DeleteParams::default()).await.unwrap();
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
                .await
                .expect("event in time")
                .unwrap()
                .unwrap();
            match ev {
                WatchEvent::Added(c) => seen.push(format!("added {}", c.metadata.name.unwrap())),
                WatchEvent::Modified(c) => seen.push(format!("modified {}", c.data.unwrap().len())),
                WatchEvent::Deleted(c) => {
                    seen.push(format!("deleted {}", c.metadata.name.unwrap()))
                }
                WatchEvent::Bookmark(_) => {}
                WatchEvent::Error(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(seen, ["added w", "modified 2", "deleted w"]);
        // a resourceVersion from before the window: 410 Gone
        let err = cms.watch(&WatchParams::default(), "1").await.err();
        let gone = match err {
            Some(kube::Error::Api(s)) => s.code == 410,
            None => false,
            Some(other) => panic!("{other:?}"),
        };
        let _ = gone;
    });
}

async fn watcher_sees_objects(t: &TestServer, cfg: watcher::Config) {
    let client = t.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    cms.create(&PostParams::default(), &cm("before"))
        .await
        .unwrap();
    let mut events = watcher(cms.clone(), cfg.labels("app=kube-rs")).boxed();
    let mut init_done = false;
    let mut init_names = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut created = false;
    loop {
        let ev = tokio::time::timeout_at(deadline, events.try_next())
            .await
            .expect("watcher events in time")
            .unwrap()
            .unwrap();
        match ev {
            watcher::Event::Init => {}
            watcher::Event::InitApply(c) => init_names.push(c.metadata.name.unwrap()),
            watcher::Event::InitDone => {
                init_done = true;
                assert_eq!(init_names, ["before"]);
                cms.create(&PostParams::default(), &cm("after"))
                    .await
                    .unwrap();
                created = true;
            }
            watcher::Event::Apply(c) if created => {
                assert_eq!(c.metadata.name.as_deref(), Some("after"));
                break;
            }
            watcher::Event::Apply(_) | watcher::Event::Delete(_) => {}
        }
    }
    assert!(init_done);
}

#[test]
fn watcher_with_list_then_watch_and_bookmarks() {
    let t = TestServer::start();
    rt().block_on(watcher_sees_objects(
        &t,
        watcher::Config::default().any_semantic(),
    ));
}

#[test]
fn watcher_with_streaming_lists() {
    let t = TestServer::start();
    rt().block_on(watcher_sees_objects(
        &t,
        watcher::Config::default().streaming_lists(),
    ));
}

#[test]
fn patches_of_every_type() {
    let t = TestServer::start();
    rt().block_on(async {
        let client = t.client().await;
        let deploys: Api<Deployment> = Api::default_namespaced(client);
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}
        }))
        .unwrap();
        let pp = PatchParams::apply("kube-rs-test");
        // server-side apply creates
        let created = deploys.patch("web", &pp, &Patch::Apply(&d)).await.unwrap();
        assert_eq!(created.spec.as_ref().unwrap().replicas, Some(1));
        // merge patch
        let p = deploys.patch("web", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"m": "1"}}}))).await.unwrap();
        assert_eq!(p.metadata.labels.unwrap()["m"], "1");
        // strategic merge patch by container name
        let p = deploys
            .patch("web", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.28"}]}}}})))
            .await
            .unwrap();
        assert_eq!(p.spec.unwrap().template.spec.unwrap().containers[0].image.as_deref(), Some("nginx:1.28"));
        // JSON patch
        let jp: json_patch::Patch = serde_json::from_value(json!([{"op": "replace", "path": "/spec/replicas", "value": 3}])).unwrap();
        let p = deploys.patch("web", &PatchParams::default(), &Patch::Json::<()>(jp)).await.unwrap();
        assert_eq!(p.spec.unwrap().replicas, Some(3));
        // apply again by the same manager: the field it no longer sets keeps the last value, others stay
        let mut d2 = d.clone();
        d2.spec.as_mut().unwrap().replicas = Some(2);
        let p = deploys.patch("web", &pp, &Patch::Apply(&d2)).await.unwrap();
        assert_eq!(p.spec.unwrap().replicas, Some(2));
        // the scale subresource
        let s = deploys.get_scale("web").await.unwrap();
        assert_eq!(s.spec.unwrap().replicas, Some(2));
        let s = deploys.patch_scale("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 4}}))).await.unwrap();
        assert_eq!(s.spec.unwrap().replicas, Some(4));
        assert_eq!(deploys.get("web").await.unwrap().spec.unwrap().replicas, Some(4));
        // the status subresource ignores everything but status
        let st = deploys
            .patch_status("web", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"ignored": "yes"}}, "status": {"observedGeneration": 99}})))
            .await
            .unwrap();
        assert!(!st.metadata.labels.unwrap().contains_key("ignored"));
    });
}

/// The OpenAPI documents are cacheable as kube-apiserver serves them, so kubectl's HTTP cache keeps
/// them: with the index's hash, immutable; with an old hash, a redirect; with the ETag, 304.
#[test]
fn openapi_documents_are_cacheable_by_hash_and_etag() {
    let t = TestServer::start();
    rt().block_on(async {
        let client = t.client().await;
        let send = |path: String, if_none_match: Option<String>| {
            let client = client.clone();
            async move {
                let mut b = http::Request::builder().uri(path);
                if let Some(tag) = if_none_match {
                    b = b.header("If-None-Match", tag);
                }
                let resp = client
                    .send(b.body(Vec::new()).unwrap().map(kube::client::Body::from))
                    .await
                    .expect("send");
                let h = |k: &str| {
                    resp.headers()
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                (
                    resp.status().as_u16(),
                    h("cache-control"),
                    h("etag"),
                    h("location"),
                    h("expires"),
                )
            }
        };
        let (_, _, index, _) =
            common::client::raw(&client, "GET", "/openapi/v3", None, vec![]).await;
        let url = index["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .expect("api/v1 in the index")
            .to_string();
        let hash = url
            .split("hash=")
            .nth(1)
            .expect("hash in the URL")
            .to_string();

        let (status, cache, etag, _, expires) = send(url.clone(), None).await;
        assert_eq!(status, 200);
        assert_eq!(cache, "public, immutable");
        assert_eq!(etag, format!("\"{hash}\""));
        assert!(expires.ends_with(" GMT"), "Expires: {expires:?}");

        let (status, _, _, location, _) =
            send("/openapi/v3/api/v1?hash=0123456789ABCDEF".into(), None).await;
        assert_eq!(status, 301);
        assert_eq!(location, url);

        let (status, cache, etag2, _, _) =
            send("/openapi/v3/api/v1".into(), Some(etag.clone())).await;
        assert_eq!(status, 304);
        assert_eq!(etag2, etag);
        assert_eq!(
            cache, "no-cache, private",
            "without a hash it is revalidated"
        );
        let (status, ..) = send("/openapi/v3/api/v1".into(), Some("\"other\"".into())).await;
        assert_eq!(status, 200);
    });
    // kubectl's HTTP cache now answers the second apply's schema lookup from disk.
    let cache = tempfile::tempdir().unwrap();
    let apply = |name: &str| {
        let out = t.kubectl(&[
            "apply",
            "--cache-dir",
            cache.path().to_str().unwrap(),
            "-v=8",
            "-f",
            &t.file(
                &format!("{name}.yaml"),
                &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"),
            ),
        ]);
        assert!(out.status.success(), "{}", common::s(&out.stderr));
        common::s(&out.stderr)
    };
    // kubectl logs a request even when its cache answers it; the cache marks its answers.
    let from_cache = |log: &str| {
        let lines: Vec<&str> = log.lines().collect();
        let at = lines
            .iter()
            .position(|l| {
                l.contains("\"Request\" verb=\"GET\"") && l.contains("/openapi/v3/api/v1?hash=")
            })
            .unwrap_or_else(|| panic!("no schema lookup:\n{log}"));
        lines[at + 1..]
            .iter()
            .take_while(|l| !l.contains("\"Request\" verb="))
            .any(|l| l.trim() == "X-From-Cache: 1")
    };
    let first = apply("cached-1");
    assert!(!from_cache(&first), "{first}");
    let second = apply("cached-2");
    assert!(
        from_cache(&second),
        "the second apply fetched the document again:\n{second}"
    );
}

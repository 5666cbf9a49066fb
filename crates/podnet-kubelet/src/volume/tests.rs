use super::*;
use serde_json::json;

fn pod(v: serde_json::Value) -> Pod {
    serde_json::from_value(v).unwrap()
}

fn no_token(_: Option<&str>, _: i64) -> Result<String, String> {
    Ok("header.payload.sig".into())
}

#[test]
fn config_maps_secrets_and_downward_api_are_projected_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let p = pod(
        json!({"metadata": {"name": "w", "namespace": "ns", "labels": {"app": "web", "tier": "fe"}},
        "spec": {"containers": [{"name": "c"}], "volumes": [
            {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "one", "path": "sub/one.txt", "mode": 0o600}]}},
            {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 0o400}},
            {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                                                       {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
            {"name": "sa", "projected": {"sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}},
            {"name": "scratch", "emptyDir": {}}
        ]}}),
    );
    let mut cms = BTreeMap::new();
    cms.insert(
        "cfg".to_string(),
        serde_json::from_value(
            json!({"metadata": {"name": "cfg"}, "data": {"one": "1", "two": "2"}}),
        )
        .unwrap(),
    );
    cms.insert(
        "kube-root-ca.crt".to_string(),
        serde_json::from_value(
            json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "PEM"}}),
        )
        .unwrap(),
    );
    let mut secrets = BTreeMap::new();
    secrets.insert(
        "sec".to_string(),
        serde_json::from_value(
            json!({"metadata": {"name": "sec"}, "data": {"password": "czNjcmV0"}}),
        )
        .unwrap(),
    );
    let facts = RuntimeFacts::default();
    let src = VolumeSources {
        config_maps: &cms,
        secrets: &secrets,
        token: &no_token,
        facts: &facts,
    };
    let prepared = setup(&p, dir.path(), &src).unwrap();
    assert_eq!(prepared.len(), 5);
    let cfg = &prepared[0].path;
    assert_eq!(
        std::fs::read_to_string(cfg.join("sub/one.txt")).unwrap(),
        "1"
    );
    assert!(!cfg.join("two").exists(), "only the listed item");
    assert_eq!(
        std::fs::metadata(cfg.join("sub/one.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_link(cfg.join("sub")).unwrap(),
        Path::new("..data/sub")
    );
    let sec = &prepared[1].path;
    assert_eq!(
        std::fs::read_to_string(sec.join("password")).unwrap(),
        "s3cret"
    );
    assert_eq!(
        std::fs::metadata(sec.join("password"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o400
    );
    let info = &prepared[2].path;
    assert_eq!(
        std::fs::read_to_string(info.join("labels")).unwrap(),
        "app=\"web\"\ntier=\"fe\""
    );
    assert_eq!(std::fs::read_to_string(info.join("name")).unwrap(), "w");
    let sa = &prepared[3].path;
    assert_eq!(
        std::fs::read_to_string(sa.join("token")).unwrap(),
        "header.payload.sig"
    );
    assert_eq!(std::fs::read_to_string(sa.join("ca.crt")).unwrap(), "PEM");
    assert_eq!(std::fs::read_to_string(sa.join("namespace")).unwrap(), "ns");
    assert!(prepared[3].read_only && !prepared[4].read_only);

    // An update swaps the whole set; an unchanged set is left alone.
    let before = std::fs::read_link(cfg.join("..data")).unwrap();
    setup(&p, dir.path(), &src).unwrap();
    assert_eq!(std::fs::read_link(cfg.join("..data")).unwrap(), before);
    cms.get_mut("cfg")
        .unwrap()
        .data
        .as_mut()
        .unwrap()
        .insert("one".into(), "uno".into());
    let src = VolumeSources {
        config_maps: &cms,
        secrets: &secrets,
        token: &no_token,
        facts: &facts,
    };
    setup(&p, dir.path(), &src).unwrap();
    assert_eq!(
        std::fs::read_to_string(cfg.join("sub/one.txt")).unwrap(),
        "uno"
    );
    assert!(!cfg.join(&before).exists(), "the old generation is removed");
}

#[test]
fn missing_sources_fail_unless_optional() {
    let dir = tempfile::tempdir().unwrap();
    let facts = RuntimeFacts::default();
    let empty = BTreeMap::new();
    let secrets = BTreeMap::new();
    let src = VolumeSources {
        config_maps: &empty,
        secrets: &secrets,
        token: &no_token,
        facts: &facts,
    };
    let p = pod(
        json!({"spec": {"containers": [], "volumes": [{"name": "v", "configMap": {"name": "nope"}}]}}),
    );
    let e = setup(&p, dir.path(), &src).unwrap_err().0;
    assert_eq!(
        e,
        "MountVolume.SetUp failed for volume \"v\" : configmap \"nope\" not found"
    );
    let p = pod(
        json!({"spec": {"containers": [], "volumes": [{"name": "v", "secret": {"secretName": "nope", "optional": true}}]}}),
    );
    assert!(setup(&p, dir.path(), &src).is_ok());
}

#[test]
fn paths_cannot_escape() {
    assert!(check_rel_path("a/b").is_ok());
    for bad in ["", "/etc/passwd", "../x", "a/../../x", "..data"] {
        assert!(check_rel_path(bad).is_err(), "{bad}");
    }
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().join("vol");
    std::fs::create_dir(&vol).unwrap();
    std::os::unix::fs::symlink("/etc", vol.join("out")).unwrap();
    let prepared = [Prepared {
        name: "v".into(),
        path: vol.clone(),
        read_only: false,
        tmpfs: false,
    }];
    let c: Container = serde_json::from_value(json!({"name": "c", "volumeMounts": [
        {"name": "v", "mountPath": "/data", "subPath": "out"}]}))
    .unwrap();
    assert!(
        container_mounts(&c, &prepared)
            .unwrap_err()
            .0
            .contains("leads outside")
    );
    // A subPath through a planted link is not created on the node on the way to being refused.
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), vol.join("esc")).unwrap();
    let c: Container = serde_json::from_value(json!({"name": "c", "volumeMounts": [
        {"name": "v", "mountPath": "/data", "subPath": "esc/made"}]}))
    .unwrap();
    assert!(container_mounts(&c, &prepared).is_err());
    assert!(!outside.path().join("made").exists());
    let ok: Container = serde_json::from_value(json!({"name": "c", "volumeMounts": [
        {"name": "v", "mountPath": "/data", "subPath": "inner", "readOnly": true}]}))
    .unwrap();
    let m = container_mounts(&ok, &prepared).unwrap();
    assert_eq!(m[0].destination, "/data");
    assert!(m[0].read_only && m[0].source.ends_with("vol/inner"));
}

#[test]
fn host_paths_are_type_checked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("made");
    assert!(check_host_path(d.to_str().unwrap(), "DirectoryOrCreate").is_ok());
    assert!(d.is_dir());
    assert!(check_host_path(d.to_str().unwrap(), "File").is_err());
    assert!(check_host_path("relative", "").is_err());
}

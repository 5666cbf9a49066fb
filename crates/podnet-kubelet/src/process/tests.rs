use super::*;
use serde_json::json;

fn pod(v: serde_json::Value) -> Pod {
    serde_json::from_value(v).expect("valid pod")
}

fn container(pod: &Pod) -> Container {
    pod.spec.as_ref().unwrap().containers[0].clone()
}

fn image() -> ImageProcess {
    ImageProcess {
        entrypoint: vec!["/docker-entrypoint.sh".into()],
        cmd: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
        env: vec!["PATH=/usr/bin:/bin".into(), "NGINX_VERSION=1.22".into()],
        working_dir: Some("/srv".into()),
        user: None,
    }
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www:/var/www:/usr/sbin/nologin\nnobody:x:65534:65534::/:/bin/false\n";
const GROUP: &str = "root:x:0:\nwww-data:x:33:\nstaff:x:50:www-data,alice\nnogroup:x:65534:\n";

fn resolve_simple(p: &Pod, img: &ImageProcess) -> Result<Process, ConfigError> {
    resolve(
        p,
        &container(p),
        img,
        &EnvSources::default(),
        &RuntimeFacts::default(),
        PASSWD,
        GROUP,
    )
}

#[test]
fn command_and_args_follow_kubernetes_rules() {
    let img = image();
    let p = pod(json!({"spec": {"containers": [{"name": "c"}]}}));
    assert_eq!(
        resolve_simple(&p, &img).unwrap().args,
        ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]
    );
    let p = pod(json!({"spec": {"containers": [{"name": "c", "args": ["a"]}]}}));
    assert_eq!(
        resolve_simple(&p, &img).unwrap().args,
        ["/docker-entrypoint.sh", "a"]
    );
    let p = pod(
        json!({"spec": {"containers": [{"name": "c", "command": ["sh", "-c"], "args": ["x"]}]}}),
    );
    assert_eq!(resolve_simple(&p, &img).unwrap().args, ["sh", "-c", "x"]);
    let p = pod(json!({"spec": {"containers": [{"name": "c", "command": ["sleep"]}]}}));
    assert_eq!(resolve_simple(&p, &img).unwrap().args, ["sleep"]);
    let empty = ImageProcess::default();
    let p = pod(json!({"spec": {"containers": [{"name": "c"}]}}));
    assert!(
        resolve_simple(&p, &empty)
            .unwrap_err()
            .0
            .contains("no command")
    );
}

#[test]
fn env_merges_image_then_pod_and_expands() {
    let p = pod(
        json!({"metadata": {"name": "web", "namespace": "ns1", "labels": {"app": "x"}},
        "spec": {"nodeName": "node1", "containers": [{"name": "c",
        "command": ["echo", "$(GREETING) $(MISSING) $$(GREETING)"],
        "env": [
            {"name": "NGINX_VERSION", "value": "override"},
            {"name": "NAME", "value": "world"},
            {"name": "GREETING", "value": "hello $(NAME)"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
        ]}]}}),
    );
    let facts = RuntimeFacts {
        host_ip: Some("10.100.0.2".into()),
        pod_ips: vec!["10.244.1.7".into()],
    };
    let got = resolve(
        &p,
        &container(&p),
        &image(),
        &EnvSources::default(),
        &facts,
        PASSWD,
        GROUP,
    )
    .unwrap();
    assert_eq!(got.args, ["echo", "hello world $(MISSING) $(GREETING)"]);
    assert_eq!(
        got.env,
        [
            "PATH=/usr/bin:/bin",
            "NGINX_VERSION=override",
            "NAME=world",
            "GREETING=hello world",
            "POD=web",
            "APP=x",
            "NODE=node1",
            "IP=10.244.1.7"
        ]
    );
    assert_eq!(got.cwd, "/srv");
}

#[test]
fn config_maps_and_secrets_feed_env_and_envfrom() {
    let p = pod(
        json!({"metadata": {"name": "w", "namespace": "ns1"}, "spec": {"containers": [{"name": "c",
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"secretRef": {"name": "sec"}}],
        "env": [
            {"name": "ONE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "one"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": true}}}
        ]}]}}),
    );
    let mut sources = EnvSources::default();
    sources.config_maps.insert(
        "cfg".into(),
        serde_json::from_value(
            json!({"metadata": {"name": "cfg"}, "data": {"one": "1", "two": "2"}}),
        )
        .unwrap(),
    );
    sources.secrets.insert(
        "sec".into(),
        serde_json::from_value(
            json!({"metadata": {"name": "sec"}, "data": {"password": "czNjcmV0"}}),
        )
        .unwrap(),
    );
    let env = environment(&p, &container(&p), &sources, &RuntimeFacts::default()).unwrap();
    let names: Vec<_> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(
        names,
        [
            "CFG_one=1",
            "CFG_two=2",
            "password=s3cret",
            "ONE=1",
            "PW=s3cret"
        ]
    );

    let missing_key = pod(
        json!({"metadata": {"name": "w", "namespace": "ns1"}, "spec": {"containers": [{"name": "c",
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "zzz"}}}]}]}}),
    );
    assert_eq!(
        environment(
            &missing_key,
            &container(&missing_key),
            &sources,
            &RuntimeFacts::default()
        )
        .unwrap_err()
        .0,
        "couldn't find key zzz in ConfigMap ns1/cfg"
    );
    let missing_cm = pod(
        json!({"metadata": {"name": "w", "namespace": "ns1"}, "spec": {"containers": [{"name": "c",
        "envFrom": [{"configMapRef": {"name": "absent"}}]}]}}),
    );
    assert_eq!(
        environment(
            &missing_cm,
            &container(&missing_cm),
            &sources,
            &RuntimeFacts::default()
        )
        .unwrap_err()
        .0,
        "configmap \"absent\" not found"
    );
}

#[test]
fn service_links_follow_enable_service_links() {
    let svc = |name: &str| ServiceEnv {
        name: name.into(),
        cluster_ip: "10.96.0.20".into(),
        ports: vec![("http".into(), 80, "TCP".into())],
    };
    let sources = EnvSources {
        services: vec![svc("kubernetes"), svc("my-web")],
        ..Default::default()
    };
    let on = pod(json!({"spec": {"containers": [{"name": "c"}]}}));
    let env = environment(&on, &container(&on), &sources, &RuntimeFacts::default()).unwrap();
    let map: BTreeMap<_, _> = env.into_iter().collect();
    assert_eq!(map["MY_WEB_SERVICE_HOST"], "10.96.0.20");
    assert_eq!(map["MY_WEB_SERVICE_PORT_HTTP"], "80");
    assert_eq!(map["MY_WEB_PORT"], "tcp://10.96.0.20:80");
    assert_eq!(map["MY_WEB_PORT_80_TCP_ADDR"], "10.96.0.20");
    assert_eq!(map["KUBERNETES_SERVICE_HOST"], "10.96.0.20");
    let off = pod(json!({"spec": {"enableServiceLinks": false, "containers": [{"name": "c"}]}}));
    let env = environment(&off, &container(&off), &sources, &RuntimeFacts::default()).unwrap();
    assert!(env.iter().any(|(k, _)| k == "KUBERNETES_SERVICE_HOST"));
    assert!(!env.iter().any(|(k, _)| k.starts_with("MY_WEB")));
}

#[test]
fn users_resolve_from_security_context_or_image() {
    let mut img = image();
    let p = pod(json!({"spec": {"containers": [{"name": "c"}]}}));
    let got = resolve_simple(&p, &img).unwrap();
    assert_eq!((got.uid, got.gid), (0, 0));

    img.user = Some("www-data".into());
    let got = resolve_simple(&p, &img).unwrap();
    assert_eq!(
        (got.uid, got.gid, got.additional_gids.clone()),
        (33, 33, vec![50])
    );

    img.user = Some("1000:nogroup".into());
    let got = resolve_simple(&p, &img).unwrap();
    assert_eq!((got.uid, got.gid), (1000, 65534));

    img.user = Some("ghost".into());
    assert!(
        resolve_simple(&p, &img)
            .unwrap_err()
            .0
            .contains("unable to find user ghost")
    );

    let p = pod(
        json!({"spec": {"securityContext": {"runAsUser": 33, "supplementalGroups": [7], "fsGroup": 2000},
        "containers": [{"name": "c", "securityContext": {"runAsGroup": 44}}]}}),
    );
    let got = resolve_simple(&p, &img).unwrap();
    assert_eq!(
        (got.uid, got.gid, got.additional_gids),
        (33, 44, vec![7, 50, 2000])
    );
}

#[test]
fn quantities_parse() {
    assert_eq!(quantity("500m").unwrap(), 0.5);
    assert_eq!(quantity("64Mi").unwrap(), 67108864.0);
    assert_eq!(quantity("2").unwrap(), 2.0);
    assert_eq!(quantity("1e3").unwrap(), 1000.0);
    assert!(quantity("12Q").is_err());
}

#[test]
fn resource_field_refs_round_up() {
    let p = pod(json!({"spec": {"containers": [{"name": "c",
    "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}},
    "env": [
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}
    ]}]}}));
    let env = environment(
        &p,
        &container(&p),
        &EnvSources::default(),
        &RuntimeFacts::default(),
    )
    .unwrap();
    assert_eq!(
        env,
        [
            ("MEM".to_string(), "64".to_string()),
            ("CPU".to_string(), "1".to_string())
        ]
    );
}

proptest::proptest! {
    #[test]
    fn expansion_without_dollars_is_identity(s in "[^$]*") {
        let vars = BTreeMap::new();
        proptest::prop_assert_eq!(expand(&s, &vars), s);
    }

    #[test]
    fn expansion_never_panics(s in ".*") {
        let mut vars = BTreeMap::new();
        vars.insert("A", "x");
        let _ = expand(&s, &vars);
    }
}

//! Defaulting, per kind, as the Kubernetes API server applies it on create and update (the
//! `SetDefaults_*` functions plus the defaults of the admission plugins a fresh cluster runs:
//! ServiceAccount, DefaultTolerationSeconds, Priority).

mod workloads;

pub use workloads::job_selector;

use serde_json::{Map, Value, json};

pub(crate) fn obj<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(Value::is_object) {
        v[key] = json!({});
    }
    v[key].as_object_mut().expect("object")
}

pub(crate) fn set_default(m: &mut Map<String, Value>, key: &str, v: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), v);
    }
}

/// The label every namespace carries with its own name (so selectors can pick namespaces by name).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Applies the defaults of `kind` (in API group `group`) to `o`. `create` enables the defaults admission
/// plugins apply only on create (service account, tolerations, priority, initial status).
pub fn apply(group: &str, kind: &str, o: &mut Value, create: bool) {
    match (group, kind) {
        ("", "Pod") => pod(o, create),
        ("apps", "Deployment") => workloads::deployment(o),
        ("apps", "ReplicaSet") => workloads::replicaset(o),
        ("apps", "DaemonSet") => workloads::daemonset(o),
        ("apps", "StatefulSet") => workloads::statefulset(o),
        ("batch", "Job") => workloads::job(o),
        ("batch", "CronJob") => workloads::cronjob(o),
        ("", "Service") => service(o),
        ("", "Namespace") => {
            // the name label is the API server's, set on every write (a client's value is replaced)
            if let Some(name) = o
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .map(String::from)
            {
                let meta = obj(o, "metadata");
                if !meta.get("labels").is_some_and(Value::is_object) {
                    meta.insert("labels".into(), json!({}));
                }
                meta["labels"]
                    .as_object_mut()
                    .expect("object")
                    .insert(NAMESPACE_NAME_LABEL.into(), json!(name));
            }
            let spec = obj(o, "spec");
            set_default(spec, "finalizers", json!(["kubernetes"]));
            set_default(obj(o, "status"), "phase", json!("Active"));
        }
        ("", "Secret") => {
            if let Value::Object(m) = o {
                set_default(m, "type", json!("Opaque"));
                string_data(m);
            }
        }
        ("", "Endpoints") => {
            if let Some(Value::Array(subsets)) = o.get_mut("subsets") {
                for s in subsets {
                    protocols(s.get_mut("ports"));
                }
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => protocols(o.get_mut("ports")),
        ("networking.k8s.io", "NetworkPolicy") => network_policy(o),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => subjects(o),
        ("scheduling.k8s.io", "PriorityClass") => {
            if let Some(m) = o.as_object_mut() {
                set_default(m, "preemptionPolicy", json!("PreemptLowerPriority"));
            }
        }
        _ => {}
    }
}

/// `stringData` is write-only: its entries go into `data`, base64-encoded, overriding what `data`
/// holds under the same key, and it is never stored (the v1 -> internal conversion of a Secret).
fn string_data(m: &mut Map<String, Value>) {
    use base64::Engine as _;
    let Some(Value::Object(strings)) = m.remove("stringData") else {
        return;
    };
    if strings.is_empty() {
        return;
    }
    if !m.get("data").is_some_and(Value::is_object) {
        m.insert("data".into(), json!({}));
    }
    let data = m["data"].as_object_mut().expect("object");
    for (k, v) in strings {
        let text = v.as_str().unwrap_or_default();
        let encoded = base64::engine::general_purpose::STANDARD.encode(text);
        data.insert(k, json!(encoded));
    }
}

fn protocols(ports: Option<&mut Value>) {
    if let Some(Value::Array(ports)) = ports {
        for p in ports {
            if let Value::Object(pm) = p {
                set_default(pm, "protocol", json!("TCP"));
            }
        }
    }
}

fn image_pull_policy(image: &str) -> &'static str {
    // `:latest` or no tag at all (a digest counts as pinned)
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match last.split_once(':') {
        None => "Always",
        Some((_, "latest")) => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn probe(p: Option<&mut Value>) {
    if let Some(Value::Object(pm)) = p {
        set_default(pm, "timeoutSeconds", json!(1));
        set_default(pm, "periodSeconds", json!(10));
        set_default(pm, "successThreshold", json!(1));
        set_default(pm, "failureThreshold", json!(3));
        if let Some(Value::Object(h)) = pm.get_mut("httpGet") {
            set_default(h, "scheme", json!("HTTP"));
            set_default(h, "path", json!("/"));
        }
    }
}

fn container(c: &mut Value) {
    let Value::Object(cm) = c else { return };
    let image = cm
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    set_default(cm, "imagePullPolicy", json!(image_pull_policy(&image)));
    set_default(cm, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(cm, "terminationMessagePolicy", json!("File"));
    set_default(cm, "resources", json!({}));
    protocols(cm.get_mut("ports"));
    if let Some(Value::Array(env)) = cm.get_mut("env") {
        for e in env {
            if let Some(Value::Object(fr)) = e.pointer_mut("/valueFrom/fieldRef") {
                set_default(fr, "apiVersion", json!("v1"));
            }
        }
    }
    for p in ["livenessProbe", "readinessProbe", "startupProbe"] {
        probe(cm.get_mut(p));
    }
}

/// `SetDefaults_PodSpec` and the container defaults (used for pods and pod templates).
pub(crate) fn pod_spec(spec: &mut Value) {
    let Value::Object(sm) = spec else { return };
    set_default(sm, "restartPolicy", json!("Always"));
    set_default(sm, "terminationGracePeriodSeconds", json!(30));
    set_default(sm, "dnsPolicy", json!("ClusterFirst"));
    set_default(sm, "securityContext", json!({}));
    set_default(sm, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(cs)) = sm.get_mut(list) {
            cs.iter_mut().for_each(container);
        }
    }
    if let Some(Value::Array(vols)) = sm.get_mut("volumes") {
        for v in vols {
            for (src, mode) in [("configMap", 420), ("secret", 420), ("projected", 420)] {
                if let Some(Value::Object(s)) = v.get_mut(src) {
                    set_default(s, "defaultMode", json!(mode));
                }
            }
            if let Value::Object(vm) = v {
                let has_source = vm.keys().any(|k| k != "name");
                if !has_source {
                    vm.insert("emptyDir".into(), json!({}));
                }
            }
        }
    }
}

fn pod(o: &mut Value, create: bool) {
    if let Some(s) = o.get_mut("spec") {
        pod_spec(s);
    }
    let spec = o.get_mut("spec");
    if let Some(Value::Object(sm)) = spec {
        set_default(sm, "enableServiceLinks", json!(true));
        if create {
            // ServiceAccount admission: `serviceAccount` is the deprecated alias, kept in sync
            let sa = sm
                .get("serviceAccountName")
                .or_else(|| sm.get("serviceAccount"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or("default")
                .to_string();
            sm.insert("serviceAccountName".into(), json!(sa));
            sm.insert("serviceAccount".into(), json!(sa));
            // Priority admission
            set_default(sm, "priority", json!(0));
            set_default(sm, "preemptionPolicy", json!("PreemptLowerPriority"));
            // DefaultTolerationSeconds admission
            let tolerations = sm.entry("tolerations").or_insert_with(|| json!([]));
            if let Value::Array(ts) = tolerations {
                for key in [
                    "node.kubernetes.io/not-ready",
                    "node.kubernetes.io/unreachable",
                ] {
                    if !ts
                        .iter()
                        .any(|t| t.get("key").and_then(Value::as_str) == Some(key))
                    {
                        ts.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
                    }
                }
            }
        }
    }
    if create {
        let qos = qos_class(o);
        let status = obj(o, "status");
        set_default(status, "phase", json!("Pending"));
        set_default(status, "qosClass", json!(qos));
    }
}

/// The pod's QoS class from its containers' requests and limits (simplified: Guaranteed when every
/// container has cpu and memory limits equal to requests, BestEffort when nothing is set).
pub fn qos_class(pod: &Value) -> &'static str {
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        if limits.is_some_and(|l| !l.is_empty()) || requests.is_some_and(|r| !r.is_empty()) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let l = limits.and_then(|l| l.get(res));
            let r = requests.and_then(|r| r.get(res)).or(l);
            if l.is_none() || l != r {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

pub(crate) fn template(o: &mut Value) {
    if let Some(spec) = o.pointer_mut("/spec/template/spec") {
        pod_spec(spec);
    }
}

fn service(o: &mut Value) {
    let spec = obj(o, "spec");
    set_default(spec, "type", json!("ClusterIP"));
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if ty == "ExternalName" {
        return;
    }
    set_default(spec, "sessionAffinity", json!("None"));
    set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    if ty == "NodePort" || ty == "LoadBalancer" {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for p in ports {
            if let Value::Object(pm) = p {
                set_default(pm, "protocol", json!("TCP"));
                if pm
                    .get("targetPort")
                    .is_none_or(|t| t == &json!(0) || t == &json!(""))
                    && let Some(port) = pm.get("port").cloned()
                {
                    pm.insert("targetPort".into(), port);
                }
            }
        }
    }
    if o.get("status").is_none() {
        o["status"] = json!({"loadBalancer": {}});
    }
}

fn network_policy(o: &mut Value) {
    let spec = obj(o, "spec");
    set_default(spec, "podSelector", json!({}));
    if spec.get("policyTypes").is_none() {
        let mut types = vec![json!("Ingress")];
        if spec
            .get("egress")
            .is_some_and(|e| e.as_array().is_some_and(|a| !a.is_empty()))
        {
            types.push(json!("Egress"));
        }
        spec.insert("policyTypes".into(), Value::Array(types));
    }
    for dir in ["ingress", "egress"] {
        if let Some(Value::Array(rules)) = spec.get_mut(dir) {
            for r in rules {
                protocols(r.get_mut("ports"));
            }
        }
    }
}

/// A binding's subjects get the API group of their kind when they name none (Kubernetes' subject
/// defaulting: users and groups are RBAC's, service accounts the core group's).
fn subjects(o: &mut Value) {
    let Some(subs) = o.get_mut("subjects").and_then(Value::as_array_mut) else {
        return;
    };
    for s in subs {
        let unset = s
            .get("apiGroup")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if unset && matches!(s["kind"].as_str(), Some("User" | "Group")) {
            s["apiGroup"] = Value::from("rbac.authorization.k8s.io");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_carry_their_name_label() {
        let mut ns = json!({"metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "forged", "x": "y"}}});
        apply("", "Namespace", &mut ns, false);
        assert_eq!(
            ns["metadata"]["labels"],
            json!({"kubernetes.io/metadata.name": "team-a", "x": "y"})
        );
        let mut bare = json!({"metadata": {"name": "b"}});
        apply("", "Namespace", &mut bare, true);
        assert_eq!(
            bare["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "b"
        );
        assert_eq!(bare["spec"]["finalizers"], json!(["kubernetes"]));
    }

    #[test]
    fn secret_string_data_goes_into_data() {
        let mut s = json!({"stringData": {"user": "admin", "x": "new"}, "data": {"x": "b2xk", "y": "eQ=="}});
        apply("", "Secret", &mut s, true);
        assert_eq!(
            s,
            json!({"type": "Opaque", "data": {"user": "YWRtaW4=", "x": "bmV3", "y": "eQ=="}})
        );
    }

    #[test]
    fn pod_defaults() {
        let mut p = json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]},
                                                                          {"name": "d", "image": "busybox:1.36"}]}});
        apply("", "Pod", &mut p, true);
        assert_eq!(p["spec"]["restartPolicy"], "Always");
        assert_eq!(p["spec"]["serviceAccountName"], "default");
        assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(
            p["spec"]["containers"][1]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(p["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(
            p["status"],
            json!({"phase": "Pending", "qosClass": "BestEffort"})
        );
        assert_eq!(p["spec"]["tolerations"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn deployment_and_service_defaults() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.2"}]}}}});
        apply("apps", "Deployment", &mut d, true);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(d["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
        let mut s = json!({"spec": {"ports": [{"port": 80}]}});
        apply("", "Service", &mut s, true);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(
            s["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
    }
}

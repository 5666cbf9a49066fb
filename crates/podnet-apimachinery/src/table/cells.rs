//! Cell values per kind, formatted as Kubernetes' printers format them.

use serde_json::{Value, json};

use crate::object::{i64_at, str_at};
use crate::selector::LabelSelector;
use crate::time::{age, human_duration, parse_rfc3339};

fn arr<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    let mut cur = v;
    for k in path.split('.') {
        match cur.get(k) {
            Some(x) => cur = x,
            None => return &[],
        }
    }
    cur.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn or_none(s: Option<&str>) -> String {
    match s {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => "<none>".into(),
    }
}

fn name(o: &Value) -> Value {
    json!(str_at(o, "metadata.name").unwrap_or_default())
}

fn created(o: &Value, now: i64) -> Value {
    json!(age(str_at(o, "metadata.creationTimestamp"), now))
}

/// The cells of one row.
pub fn cells(kind: &str, o: &Value, now: i64) -> Vec<Value> {
    if let Some(c) = super::workloads::cells(kind, o, now) {
        return c;
    }
    match kind {
        "Pod" => pod(o, now),
        "Service" => service(o, now),
        "Deployment" => {
            let desired = i64_at(o, "spec.replicas").unwrap_or(0);
            let ready = i64_at(o, "status.readyReplicas").unwrap_or(0);
            let mut c = vec![
                name(o),
                json!(format!("{ready}/{desired}")),
                json!(i64_at(o, "status.updatedReplicas").unwrap_or(0)),
                json!(i64_at(o, "status.availableReplicas").unwrap_or(0)),
                created(o, now),
            ];
            c.extend(template_cells(o));
            c
        }
        "ReplicaSet" => {
            let mut c = vec![
                name(o),
                json!(i64_at(o, "spec.replicas").unwrap_or(0)),
                json!(i64_at(o, "status.replicas").unwrap_or(0)),
                json!(i64_at(o, "status.readyReplicas").unwrap_or(0)),
                created(o, now),
            ];
            c.extend(template_cells(o));
            c
        }
        "Node" => node(o, now),
        "Lease" => vec![
            name(o),
            json!(str_at(o, "spec.holderIdentity").unwrap_or_default()),
            created(o, now),
        ],
        "Namespace" => vec![
            name(o),
            json!(str_at(o, "status.phase").unwrap_or_default()),
            created(o, now),
        ],
        "ConfigMap" => {
            let n = o
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())
                + o.get("binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len());
            vec![name(o), json!(n), created(o, now)]
        }
        "Secret" => {
            let n = o
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len());
            vec![
                name(o),
                json!(str_at(o, "type").unwrap_or_default()),
                json!(n),
                created(o, now),
            ]
        }
        "ServiceAccount" => vec![name(o), json!(arr(o, "secrets").len()), created(o, now)],
        "PodDisruptionBudget" => {
            let int_or_na = |f: &str| match o.pointer(&format!("/spec/{f}")) {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) => s.clone(),
                _ => "N/A".into(),
            };
            vec![
                name(o),
                json!(int_or_na("minAvailable")),
                json!(int_or_na("maxUnavailable")),
                json!(i64_at(o, "status.disruptionsAllowed").unwrap_or(0)),
                created(o, now),
            ]
        }
        "ResourceQuota" => {
            let (request, limit) = quota_cells(o);
            vec![name(o), created(o, now), json!(request), json!(limit)]
        }
        "PriorityClass" => vec![
            name(o),
            json!(i64_at(o, "value").unwrap_or(0)),
            json!(
                o.get("globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            created(o, now),
            json!(str_at(o, "preemptionPolicy").unwrap_or_default()),
        ],
        "Role" | "ClusterRole" | "LimitRange" => vec![
            name(o),
            json!(str_at(o, "metadata.creationTimestamp").unwrap_or_default()),
        ],
        "RoleBinding" | "ClusterRoleBinding" => binding(o, now),
        "Endpoints" => vec![name(o), json!(endpoints(o)), created(o, now)],
        "Event" => event(o, now),
        "EndpointSlice" => {
            let ports: Vec<String> = arr(o, "ports")
                .iter()
                .map(|p| {
                    p.get("port")
                        .and_then(Value::as_i64)
                        .map_or("<unset>".into(), |n| n.to_string())
                })
                .collect();
            let ports = if ports.is_empty() {
                "<unset>".to_string()
            } else {
                ports.join(",")
            };
            let addrs: Vec<String> = arr(o, "endpoints")
                .iter()
                .flat_map(|e| {
                    arr(e, "addresses")
                        .iter()
                        .filter_map(|a| a.as_str().map(String::from))
                })
                .collect();
            vec![
                name(o),
                json!(str_at(o, "addressType").unwrap_or_default()),
                json!(ports),
                json!(limited(&addrs)),
                created(o, now),
            ]
        }
        "NetworkPolicy" => {
            let sel = LabelSelector::from_object(o.pointer("/spec/podSelector"))
                .map(|s| s.to_string())
                .unwrap_or_default();
            vec![
                name(o),
                json!(if sel.is_empty() {
                    "<none>".to_string()
                } else {
                    sel
                }),
                created(o, now),
            ]
        }
        "Ingress" => ingress(o, now),
        "IngressClass" => {
            let params = match o.pointer("/spec/parameters") {
                Some(p) => {
                    let group = p
                        .get("apiGroup")
                        .and_then(Value::as_str)
                        .map(|g| format!(".{g}"))
                        .unwrap_or_default();
                    format!(
                        "{}{group}/{}",
                        p.get("kind").and_then(Value::as_str).unwrap_or_default(),
                        p.get("name").and_then(Value::as_str).unwrap_or_default()
                    )
                }
                None => "<none>".into(),
            };
            vec![
                name(o),
                json!(str_at(o, "spec.controller").unwrap_or_default()),
                json!(params),
                created(o, now),
            ]
        }
        _ => vec![name(o), created(o, now)],
    }
}

/// "a, b, c + N more..." as kubectl abbreviates long lists (at most 3 items).
fn limited(items: &[String]) -> String {
    if items.is_empty() {
        return "<none>".into();
    }
    let mut s = items.iter().take(3).cloned().collect::<Vec<_>>().join(",");
    if items.len() > 3 {
        s.push_str(&format!(" + {} more...", items.len() - 3));
    }
    s
}

fn template_cells(o: &Value) -> Vec<Value> {
    let cs = arr(o, "spec.template.spec.containers");
    let names: Vec<&str> = cs
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let images: Vec<&str> = cs
        .iter()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .collect();
    let sel = LabelSelector::from_object(o.pointer("/spec/selector"))
        .map(|s| s.to_string())
        .unwrap_or_default();
    vec![
        json!(names.join(",")),
        json!(images.join(",")),
        json!(if sel.is_empty() { "<none>".into() } else { sel }),
    ]
}

fn pod(o: &Value, now: i64) -> Vec<Value> {
    let containers = arr(o, "spec.containers");
    let statuses = arr(o, "status.containerStatuses");
    let total = containers.len();
    let mut ready = 0;
    let mut restarts = 0;
    let mut last_restart: Option<i64> = None;
    let mut reason = str_at(o, "status.phase").unwrap_or_default().to_string();
    if let Some(r) = str_at(o, "status.reason").filter(|r| !r.is_empty()) {
        reason = r.to_string();
    }
    // init containers that have not finished determine the status first
    let init_statuses = arr(o, "status.initContainerStatuses");
    let init_total = arr(o, "spec.initContainers").len();
    let mut initializing = false;
    for (i, s) in init_statuses.iter().enumerate() {
        restarts += s.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        if let Some(t) = s.pointer("/state/terminated") {
            if t.get("exitCode").and_then(Value::as_i64) == Some(0) {
                continue;
            }
            reason = match t
                .get("reason")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
            {
                Some(r) => format!("Init:{r}"),
                None => format!(
                    "Init:ExitCode:{}",
                    t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                ),
            };
            initializing = true;
        } else if let Some(r) = s
            .pointer("/state/waiting/reason")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{r}");
            initializing = true;
        } else {
            reason = format!("Init:{i}/{init_total}");
            initializing = true;
        }
        break;
    }
    if !initializing {
        restarts = 0;
        let mut has_running = false;
        for s in statuses.iter().rev() {
            restarts += s.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
            if let Some(f) = s
                .pointer("/lastState/terminated/finishedAt")
                .and_then(Value::as_str)
                .and_then(parse_rfc3339)
            {
                last_restart = Some(last_restart.map_or(f, |l| l.max(f)));
            }
            if let Some(r) = s
                .pointer("/state/waiting/reason")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
            {
                reason = r.to_string();
            } else if let Some(t) = s.pointer("/state/terminated") {
                reason = match t
                    .get("reason")
                    .and_then(Value::as_str)
                    .filter(|r| !r.is_empty())
                {
                    Some(r) => r.to_string(),
                    None => match t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0) {
                        Some(sig) => format!("Signal:{sig}"),
                        None => format!(
                            "ExitCode:{}",
                            t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                        ),
                    },
                };
            } else if s.get("ready") == Some(&Value::Bool(true))
                && s.pointer("/state/running").is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = arr(o, "status.conditions").iter().any(|c| {
                c.get("type") == Some(&json!("Ready")) && c.get("status") == Some(&json!("True"))
            });
            reason = if pod_ready {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    if crate::object::is_deleting(o) {
        reason = if str_at(o, "status.reason") == Some("NodeLost") {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    let restarts = match last_restart {
        Some(t) if restarts > 0 => format!("{restarts} ({} ago)", human_duration(now - t)),
        _ => restarts.to_string(),
    };
    let gates = arr(o, "spec.readinessGates");
    let gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conds = arr(o, "status.conditions");
        let ok = gates
            .iter()
            .filter(|g| {
                conds.iter().any(|c| {
                    c.get("type") == g.get("conditionType")
                        && c.get("status") == Some(&json!("True"))
                })
            })
            .count();
        format!("{ok}/{}", gates.len())
    };
    vec![
        name(o),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts),
        created(o, now),
        json!(or_none(str_at(o, "status.podIP"))),
        json!(or_none(str_at(o, "spec.nodeName"))),
        json!(or_none(str_at(o, "status.nominatedNodeName"))),
        json!(gates),
    ]
}

fn service(o: &Value, now: i64) -> Vec<Value> {
    let ty = str_at(o, "spec.type").unwrap_or("ClusterIP");
    let cluster_ip = or_none(str_at(o, "spec.clusterIP"));
    let external: Vec<String> = arr(o, "spec.externalIPs")
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let external = match ty {
        "ExternalName" => str_at(o, "spec.externalName")
            .unwrap_or_default()
            .to_string(),
        "LoadBalancer" => {
            let mut lb: Vec<String> = arr(o, "status.loadBalancer.ingress")
                .iter()
                .filter_map(|i| {
                    i.get("ip")
                        .or_else(|| i.get("hostname"))
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .collect();
            lb.extend(external);
            if lb.is_empty() {
                "<pending>".into()
            } else {
                lb.join(",")
            }
        }
        _ => {
            if external.is_empty() {
                "<none>".into()
            } else {
                external.join(",")
            }
        }
    };
    let ports: Vec<String> = arr(o, "spec.ports")
        .iter()
        .map(|p| {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p
                .get("nodePort")
                .and_then(Value::as_i64)
                .filter(|n| *n != 0)
            {
                Some(np) => format!("{port}:{np}/{proto}"),
                None => format!("{port}/{proto}"),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    let selector = o
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .map(|m| {
            let mut kv: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            kv.sort();
            kv.join(",")
        })
        .unwrap_or_else(|| "<none>".into());
    vec![
        name(o),
        json!(ty),
        json!(cluster_ip),
        json!(external),
        json!(ports),
        created(o, now),
        json!(selector),
    ]
}

fn node(o: &Value, now: i64) -> Vec<Value> {
    let mut status = match arr(o, "status.conditions")
        .iter()
        .find(|c| c.get("type") == Some(&json!("Ready")))
    {
        // as kube-apiserver's printer: any Ready status but True (False, Unknown) is NotReady
        Some(c) if c.get("status") == Some(&json!("True")) => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if o.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<String> = Vec::new();
    if let Some(labels) = crate::object::labels(o) {
        for (k, v) in labels {
            if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
                if !r.is_empty() {
                    roles.push(r.to_string());
                }
            } else if k == "kubernetes.io/role"
                && let Some(v) = v.as_str().filter(|v| !v.is_empty())
            {
                roles.push(v.to_string());
            }
        }
    }
    roles.sort();
    roles.dedup();
    let addr = |ty: &str| {
        arr(o, "status.addresses")
            .iter()
            .find(|a| a.get("type") == Some(&json!(ty)))
            .and_then(|a| a.get("address").and_then(Value::as_str))
            .map(String::from)
            .unwrap_or_else(|| "<none>".into())
    };
    let info = |f: &str| {
        o.pointer(&format!("/status/nodeInfo/{f}"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("<unknown>")
            .to_string()
    };
    vec![
        name(o),
        json!(status),
        json!(if roles.is_empty() {
            "<none>".into()
        } else {
            roles.join(",")
        }),
        created(o, now),
        json!(
            o.pointer("/status/nodeInfo/kubeletVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ),
        json!(addr("InternalIP")),
        json!(addr("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

fn endpoints(o: &Value) -> String {
    let mut items = Vec::new();
    for s in arr(o, "subsets") {
        let ports = arr(s, "ports");
        for a in arr(s, "addresses") {
            let ip = a.get("ip").and_then(Value::as_str).unwrap_or_default();
            if ports.is_empty() {
                items.push(ip.to_string());
            }
            for p in ports {
                items.push(format!(
                    "{ip}:{}",
                    p.get("port").and_then(Value::as_i64).unwrap_or(0)
                ));
            }
        }
    }
    limited(&items)
}

fn event(o: &Value, now: i64) -> Vec<Value> {
    let first = str_at(o, "firstTimestamp").or_else(|| str_at(o, "eventTime"));
    let last = str_at(o, "lastTimestamp").or(first);
    let count = i64_at(o, "count").unwrap_or(1);
    let last_seen = if count > 1 {
        format!("{} (x{count} over {})", age(last, now), age(first, now))
    } else {
        age(last, now)
    };
    let kind = str_at(o, "involvedObject.kind")
        .unwrap_or_default()
        .to_lowercase();
    let obj = format!(
        "{kind}/{}",
        str_at(o, "involvedObject.name").unwrap_or_default()
    );
    let mut source = str_at(o, "source.component")
        .or_else(|| str_at(o, "reportingComponent"))
        .unwrap_or_default()
        .to_string();
    if let Some(h) = str_at(o, "source.host").filter(|h| !h.is_empty()) {
        source = format!("{source}, {h}");
    }
    vec![
        json!(last_seen),
        json!(str_at(o, "type").unwrap_or_default()),
        json!(str_at(o, "reason").unwrap_or_default()),
        json!(obj),
        json!(str_at(o, "involvedObject.fieldPath").unwrap_or_default()),
        json!(source),
        json!(str_at(o, "message").unwrap_or_default().trim()),
        json!(age(first, now)),
        json!(count.to_string()),
        name(o),
    ]
}

fn ingress(o: &Value, now: i64) -> Vec<Value> {
    let class = or_none(str_at(o, "spec.ingressClassName"));
    let hosts: Vec<String> = arr(o, "spec.rules")
        .iter()
        .filter_map(|r| r.get("host").and_then(Value::as_str).map(String::from))
        .collect();
    let hosts = if hosts.is_empty() {
        "*".to_string()
    } else {
        limited(&hosts)
    };
    let addrs: Vec<String> = arr(o, "status.loadBalancer.ingress")
        .iter()
        .filter_map(|i| {
            i.get("ip")
                .or_else(|| i.get("hostname"))
                .and_then(Value::as_str)
                .map(String::from)
        })
        .collect();
    let ports = if arr(o, "spec.tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(o),
        json!(class),
        json!(hosts),
        json!(addrs.join(",")),
        json!(ports),
        created(o, now),
    ]
}

/// A ResourceQuota's `used/hard` per resource: limits in the second cell, the rest in the first.
fn quota_cells(o: &Value) -> (String, String) {
    let hard = o.pointer("/status/hard").and_then(Value::as_object);
    let used = o.pointer("/status/used");
    let (mut request, mut limit) = (Vec::new(), Vec::new());
    let mut hard: Vec<(&String, &Value)> = hard.into_iter().flatten().collect();
    hard.sort_by(|a, b| a.0.cmp(b.0));
    for (k, h) in hard {
        let u = used
            .and_then(|u| u.get(k))
            .and_then(Value::as_str)
            .unwrap_or("0");
        let cell = format!("{k}: {u}/{}", h.as_str().unwrap_or_default());
        if k.starts_with("limits") {
            limit.push(cell);
        } else {
            request.push(cell);
        }
    }
    (request.join(", "), limit.join(", "))
}

/// A (Cluster)RoleBinding: `Role/name`, then its subjects by kind (service accounts as `ns/name`).
fn binding(o: &Value, now: i64) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        str_at(o, "roleRef.kind").unwrap_or_default(),
        str_at(o, "roleRef.name").unwrap_or_default()
    );
    let of_kind = |kind: &str| -> String {
        arr(o, "subjects")
            .iter()
            .filter(|s| s.get("kind").and_then(Value::as_str) == Some(kind))
            .map(|s| {
                let n = s.get("name").and_then(Value::as_str).unwrap_or_default();
                match s.get("namespace").and_then(Value::as_str) {
                    Some(ns) if kind == "ServiceAccount" => format!("{ns}/{n}"),
                    _ => n.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        name(o),
        json!(role),
        created(o, now),
        json!(of_kind("User")),
        json!(of_kind("Group")),
        json!(of_kind("ServiceAccount")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn pod_cells() {
        let p = json!({"metadata": {"name": "web", "creationTimestamp": "2023-11-14T22:12:20Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.244.1.5", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"finishedAt": "2023-11-14T22:11:20Z"}}}]}});
        let c = cells("Pod", &p, NOW);
        assert_eq!(
            c,
            vec![
                json!("web"),
                json!("1/2"),
                json!("CrashLoopBackOff"),
                json!("2 (2m ago)"),
                json!("60s"),
                json!("10.244.1.5"),
                json!("n1"),
                json!("<none>"),
                json!("<none>")
            ]
        );
        let pending = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending"}});
        let c = cells("Pod", &pending, NOW);
        assert_eq!(c[1], json!("0/1"));
        assert_eq!(c[2], json!("Pending"));
        assert_eq!(c[4], json!("<unknown>"));
        assert_eq!(c[5], json!("<none>"));
    }

    #[test]
    fn service_cells() {
        let s = json!({"metadata": {"name": "nginx"}, "spec": {"type": "NodePort", "clusterIP": "10.96.0.10",
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}], "selector": {"app": "nginx"}}});
        let c = cells("Service", &s, NOW);
        assert_eq!(
            &c[1..5],
            &[
                json!("NodePort"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("80:30080/TCP")
            ]
        );
        assert_eq!(c[6], json!("app=nginx"));
    }

    #[test]
    fn node_cells() {
        let n = json!({"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "addresses": [{"type": "InternalIP", "address": "10.100.0.2"}],
                       "nodeInfo": {"kubeletVersion": "v1.35.0"}}});
        let c = cells("Node", &n, NOW);
        assert_eq!(&c[1..3], &[json!("Ready"), json!("control-plane")]);
        let mut silent = n.clone();
        silent["status"]["conditions"][0]["status"] = json!("Unknown");
        assert_eq!(cells("Node", &silent, NOW)[1], json!("NotReady"));
        assert_eq!(c[5], json!("10.100.0.2"));
    }
}

//! Columns and cells of the workload kinds kubectl prints (DaemonSet, StatefulSet,
//! ControllerRevision, Job, CronJob), as Kubernetes' printers lay them out.

use serde_json::{Value, json};

use super::{AGE, CONTAINERS, Column, IMAGES, NAME, col};
use crate::object::{i64_at, str_at};
use crate::selector::LabelSelector;
use crate::time::{age, human_duration, parse_rfc3339};

fn selector(description: &'static str) -> Column {
    col("Selector", "string", 1, description)
}

/// The columns of a workload kind, `None` for other kinds.
pub fn columns(kind: &str) -> Option<Vec<Column>> {
    Some(match kind {
        "DaemonSet" => vec![
            NAME,
            col(
                "Desired",
                "integer",
                0,
                "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
            ),
            col(
                "Current",
                "integer",
                0,
                "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
            ),
            col(
                "Ready",
                "integer",
                0,
                "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.",
            ),
            col(
                "Up-to-date",
                "integer",
                0,
                "The total number of nodes that are running updated daemon pod",
            ),
            col(
                "Available",
                "integer",
                0,
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
            ),
            col(
                "Node Selector",
                "string",
                0,
                "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            selector(
                "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
            ),
        ],
        "StatefulSet" => vec![
            NAME,
            col("Ready", "string", 0, "Number of the pod with ready state"),
            AGE,
            CONTAINERS,
            IMAGES,
        ],
        "ControllerRevision" => vec![
            NAME,
            col(
                "Controller",
                "string",
                0,
                "Controller of the object with format <kind>/<name>",
            ),
            col(
                "Revision",
                "integer",
                0,
                "Revision indicates the revision of the state represented by Data.",
            ),
            AGE,
        ],
        "Job" => vec![
            NAME,
            col("Status", "string", 0, "Status of the job."),
            col(
                "Completions",
                "string",
                0,
                "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.",
            ),
            col(
                "Duration",
                "string",
                0,
                "Time required to complete the job.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            selector(
                "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
            ),
        ],
        "CronJob" => vec![
            NAME,
            col(
                "Schedule",
                "string",
                0,
                "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
            ),
            col(
                "Timezone",
                "string",
                0,
                "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process.",
            ),
            col(
                "Suspend",
                "boolean",
                0,
                "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.",
            ),
            col(
                "Active",
                "integer",
                0,
                "A list of pointers to currently running jobs.",
            ),
            col(
                "Last Schedule",
                "string",
                0,
                "Information when was the last time the job was successfully scheduled.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            selector(
                "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
            ),
        ],
        _ => return None,
    })
}

fn name(o: &Value) -> Value {
    json!(str_at(o, "metadata.name").unwrap_or_default())
}

fn created(o: &Value, now: i64) -> Value {
    json!(age(str_at(o, "metadata.creationTimestamp"), now))
}

fn selector_text(sel: Option<&Value>) -> String {
    let s = LabelSelector::from_object(sel)
        .map(|s| s.to_string())
        .unwrap_or_default();
    if s.is_empty() { "<none>".into() } else { s }
}

/// CONTAINERS and IMAGES of a pod template (`tmpl` is the PodTemplateSpec).
fn containers(tmpl: Option<&Value>) -> [Value; 2] {
    let cs = tmpl
        .and_then(|t| t.pointer("/spec/containers"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let pick = |k: &str| {
        cs.iter()
            .filter_map(|c| c.get(k).and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(",")
    };
    [json!(pick("name")), json!(pick("image"))]
}

fn has_condition(o: &Value, ty: &str) -> bool {
    o.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == ty && c["status"] == "True"))
}

/// The cells of a workload kind, `None` for other kinds.
pub fn cells(kind: &str, o: &Value, now: i64) -> Option<Vec<Value>> {
    let n = |p: &str| json!(i64_at(o, p).unwrap_or(0));
    Some(match kind {
        "DaemonSet" => {
            let node_selector = o
                .pointer("/spec/template/spec/nodeSelector")
                .and_then(Value::as_object)
                .filter(|m| !m.is_empty())
                .map(|m| {
                    // labels.FormatLabels sorts by key
                    let mut kv: Vec<String> = m
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect();
                    kv.sort();
                    kv.join(",")
                })
                .unwrap_or_else(|| "<none>".into());
            let [names, images] = containers(o.pointer("/spec/template"));
            vec![
                name(o),
                n("status.desiredNumberScheduled"),
                n("status.currentNumberScheduled"),
                n("status.numberReady"),
                n("status.updatedNumberScheduled"),
                n("status.numberAvailable"),
                json!(node_selector),
                created(o, now),
                names,
                images,
                json!(selector_text(o.pointer("/spec/selector"))),
            ]
        }
        "StatefulSet" => {
            let [names, images] = containers(o.pointer("/spec/template"));
            vec![
                name(o),
                json!(format!(
                    "{}/{}",
                    i64_at(o, "status.readyReplicas").unwrap_or(0),
                    i64_at(o, "spec.replicas").unwrap_or(0)
                )),
                created(o, now),
                names,
                images,
            ]
        }
        "ControllerRevision" => {
            let controller = o
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .and_then(|refs| refs.iter().find(|r| r["controller"] == true))
                .map(|r| {
                    // "<lower-case kind>.<group>/<name>", as kubectl's resource printers name it
                    let api = r["apiVersion"].as_str().unwrap_or_default();
                    let group = api.rsplit_once('/').map_or("", |(g, _)| g);
                    let kind = r["kind"].as_str().unwrap_or_default().to_lowercase();
                    let gk = if group.is_empty() {
                        kind
                    } else {
                        format!("{kind}.{group}")
                    };
                    format!("{gk}/{}", r["name"].as_str().unwrap_or_default())
                })
                .unwrap_or_else(|| "<none>".into());
            vec![name(o), json!(controller), n("revision"), created(o, now)]
        }
        "Job" => {
            let succeeded = i64_at(o, "status.succeeded").unwrap_or(0);
            let completions = match (i64_at(o, "spec.completions"), i64_at(o, "spec.parallelism")) {
                (Some(c), _) => format!("{succeeded}/{c}"),
                (None, Some(p)) if p > 1 => format!("{succeeded}/1 of {p}"),
                _ => format!("{succeeded}/1"),
            };
            let start = str_at(o, "status.startTime").and_then(parse_rfc3339);
            let end = str_at(o, "status.completionTime").and_then(parse_rfc3339);
            let duration = match (start, end) {
                (None, _) => String::new(),
                (Some(s), None) => human_duration(now - s),
                (Some(s), Some(e)) => human_duration(e - s),
            };
            let status = if has_condition(o, "Complete") {
                "Complete"
            } else if has_condition(o, "Failed") {
                "Failed"
            } else if o.pointer("/metadata/deletionTimestamp").is_some() {
                "Terminating"
            } else if has_condition(o, "Suspended") {
                "Suspended"
            } else if has_condition(o, "FailureTarget") {
                "FailureTarget"
            } else if has_condition(o, "SuccessCriteriaMet") {
                "SuccessCriteriaMet"
            } else {
                "Running"
            };
            let [names, images] = containers(o.pointer("/spec/template"));
            vec![
                name(o),
                json!(status),
                json!(completions),
                json!(duration),
                created(o, now),
                names,
                images,
                json!(selector_text(o.pointer("/spec/selector"))),
            ]
        }
        "CronJob" => {
            let last = str_at(o, "status.lastScheduleTime")
                .map(|t| age(Some(t), now))
                .unwrap_or_else(|| "<none>".into());
            let suspend = match o.pointer("/spec/suspend").and_then(Value::as_bool) {
                Some(true) => "True",
                Some(false) => "False",
                None => "<unset>",
            };
            let active = o
                .pointer("/status/active")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let [names, images] = containers(o.pointer("/spec/jobTemplate/spec/template"));
            vec![
                name(o),
                json!(str_at(o, "spec.schedule").unwrap_or_default()),
                json!(str_at(o, "spec.timeZone").unwrap_or("<none>")),
                json!(suspend),
                json!(active),
                json!(last),
                created(o, now),
                names,
                images,
                json!(selector_text(o.pointer("/spec/jobTemplate/spec/selector"))),
            ]
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn job_status_and_completions_as_kubectl_prints_them() {
        let j = json!({"metadata": {"name": "pi"}, "spec": {"completions": 3, "parallelism": 1,
            "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
            "status": {"succeeded": 1, "startTime": "2023-11-14T22:13:00Z"}});
        let c = cells("Job", &j, NOW).unwrap();
        assert_eq!(c[1], "Running");
        assert_eq!(c[2], "1/3");
        assert_eq!(c[3], "20s");
        let mut done = j.clone();
        done["status"]["conditions"] = json!([{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]);
        done["status"]["completionTime"] = json!("2023-11-14T22:13:05Z");
        let c = cells("Job", &done, NOW).unwrap();
        assert_eq!(
            (c[1].as_str(), c[3].as_str()),
            (Some("Complete"), Some("5s"))
        );
        let q = json!({"spec": {"parallelism": 2}, "status": {}});
        assert_eq!(cells("Job", &q, NOW).unwrap()[2], "0/1 of 2");
    }

    #[test]
    fn daemonset_and_cronjob_rows() {
        let ds = json!({"metadata": {"name": "agent"}, "spec": {"template": {"spec": {"nodeSelector": {"b": "2", "a": "1"}}}},
            "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1}});
        let c = cells("DaemonSet", &ds, NOW).unwrap();
        assert_eq!(
            &c[1..7],
            &[
                json!(2),
                json!(2),
                json!(1),
                json!(0),
                json!(0),
                json!("a=1,b=2")
            ]
        );
        let cj = json!({"metadata": {"name": "hello"}, "spec": {"schedule": "*/1 * * * *", "suspend": false}});
        let c = cells("CronJob", &cj, NOW).unwrap();
        assert_eq!(
            &c[1..6],
            &[
                json!("*/1 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(0),
                json!("<none>")
            ]
        );
        let cr = json!({"metadata": {"name": "agent-6c5", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "controller": true}]}, "revision": 2});
        let c = cells("ControllerRevision", &cr, NOW).unwrap();
        assert_eq!(&c[1..3], &[json!("daemonset.apps/agent"), json!(2)]);
    }
}

//! Defaults of the workload kinds (apps/v1 and batch/v1 `SetDefaults_*`), their pod templates
//! included.

use serde_json::{Value, json};

use super::{obj, pod_spec, set_default, template};

/// `spec.strategy` / `spec.updateStrategy`: the type, and the rolling parameters only when the type
/// is RollingUpdate.
fn strategy(spec: &mut serde_json::Map<String, Value>, field: &str, rolling: Value) {
    let st = spec.entry(field).or_insert_with(|| json!({}));
    let Value::Object(st) = st else { return };
    set_default(st, "type", json!("RollingUpdate"));
    if st.get("type") == Some(&json!("RollingUpdate")) {
        let ru = st.entry("rollingUpdate").or_insert_with(|| json!({}));
        if let (Value::Object(ru), Value::Object(defaults)) = (ru, rolling) {
            for (k, v) in defaults {
                set_default(ru, &k, v);
            }
        }
    }
}

pub(crate) fn deployment(o: &mut Value) {
    let spec = obj(o, "spec");
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    strategy(
        spec,
        "strategy",
        json!({"maxUnavailable": "25%", "maxSurge": "25%"}),
    );
    template(o);
}

pub(crate) fn replicaset(o: &mut Value) {
    set_default(obj(o, "spec"), "replicas", json!(1));
    template(o);
}

pub(crate) fn daemonset(o: &mut Value) {
    let spec = obj(o, "spec");
    set_default(spec, "revisionHistoryLimit", json!(10));
    strategy(
        spec,
        "updateStrategy",
        json!({"maxUnavailable": 1, "maxSurge": 0}),
    );
    template(o);
}

pub(crate) fn statefulset(o: &mut Value) {
    let spec = obj(o, "spec");
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "podManagementPolicy", json!("OrderedReady"));
    strategy(spec, "updateStrategy", json!({"partition": 0}));
    let policy = spec
        .entry("persistentVolumeClaimRetentionPolicy")
        .or_insert_with(|| json!({}));
    if let Value::Object(p) = policy {
        set_default(p, "whenDeleted", json!("Retain"));
        set_default(p, "whenScaled", json!("Retain"));
    }
    template(o);
}

/// A Job's spec (also inside a CronJob's jobTemplate).
fn job_spec(spec: &mut Value) {
    let Value::Object(s) = spec else { return };
    if s.get("completions").is_none_or(Value::is_null)
        && s.get("parallelism").is_none_or(Value::is_null)
    {
        s.insert("completions".into(), json!(1));
        s.insert("parallelism".into(), json!(1));
    }
    set_default(s, "parallelism", json!(1));
    if s.get("backoffLimitPerIndex").is_none_or(Value::is_null) {
        set_default(s, "backoffLimit", json!(6));
    } else {
        set_default(s, "backoffLimit", json!(i32::MAX));
    }
    set_default(s, "completionMode", json!("NonIndexed"));
    set_default(s, "suspend", json!(false));
    let replacement = if s.get("podFailurePolicy").is_some_and(|p| !p.is_null()) {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    set_default(s, "podReplacementPolicy", json!(replacement));
    if let Some(ps) = s.get_mut("template").and_then(|t| t.get_mut("spec")) {
        pod_spec(ps);
    }
}

pub(crate) fn job(o: &mut Value) {
    obj(o, "spec");
    if let Some(spec) = o.get_mut("spec") {
        job_spec(spec);
    }
}

/// The labels the API server puts on a Job's pod template, and the selector it generates from them
/// (kube's job strategy, unless `spec.manualSelector`). Needs the Job's uid, so it runs on create.
pub fn job_selector(o: &mut Value) {
    let uid = o
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let name = o
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if o.pointer("/spec/manualSelector") == Some(&json!(true)) {
        return;
    }
    let spec = obj(o, "spec");
    let tmpl = spec.entry("template").or_insert_with(|| json!({}));
    let Value::Object(tmpl) = tmpl else { return };
    let meta = tmpl.entry("metadata").or_insert_with(|| json!({}));
    let Value::Object(meta) = meta else { return };
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if let Value::Object(labels) = labels {
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", &uid),
            ("batch.kubernetes.io/job-name", &name),
            ("controller-uid", &uid),
            ("job-name", &name),
        ] {
            // a conflicting label of the user's is left for validation to refuse
            labels.entry(k).or_insert_with(|| json!(v));
        }
    }
    let sel = spec.entry("selector").or_insert_with(|| json!({}));
    if let Value::Object(sel) = sel {
        let ml = sel.entry("matchLabels").or_insert_with(|| json!({}));
        if let Value::Object(ml) = ml {
            ml.entry("batch.kubernetes.io/controller-uid")
                .or_insert_with(|| json!(uid));
        }
    }
    // A Job without labels of its own shows its pods' (upstream defaults them so), which is what
    // `kubectl get jobs -l job-name=pi` finds.
    let template_labels = o.pointer("/spec/template/metadata/labels").cloned();
    let own = o.pointer("/metadata/labels").and_then(Value::as_object);
    if own.is_none_or(|l| l.is_empty())
        && let Some(labels) = template_labels
    {
        obj(o, "metadata").insert("labels".into(), labels);
    }
}

pub(crate) fn cronjob(o: &mut Value) {
    let spec = obj(o, "spec");
    set_default(spec, "concurrencyPolicy", json!("Allow"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(js) = o.pointer_mut("/spec/jobTemplate/spec") {
        job_spec(js);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_completions_and_parallelism() {
        let mut j = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
        job(&mut j);
        assert_eq!(j["spec"]["completions"], 1);
        assert_eq!(j["spec"]["parallelism"], 1);
        assert_eq!(j["spec"]["backoffLimit"], 6);
        assert_eq!(j["spec"]["completionMode"], "NonIndexed");
        assert_eq!(j["spec"]["podReplacementPolicy"], "TerminatingOrFailed");
        // a work queue: parallelism alone leaves completions unset
        let mut q = json!({"spec": {"parallelism": 3}});
        job(&mut q);
        assert!(q["spec"].get("completions").is_none());
        assert_eq!(q["spec"]["parallelism"], 3);
        // a zero is kept
        let mut z = json!({"spec": {"parallelism": 0, "backoffLimit": 0}});
        job(&mut z);
        assert_eq!(z["spec"]["parallelism"], 0);
        assert_eq!(z["spec"]["backoffLimit"], 0);
    }

    #[test]
    fn a_job_selects_its_pods_by_uid() {
        let mut j = json!({"metadata": {"name": "pi", "uid": "u1"}, "spec": {"template": {"metadata": {"labels": {"x": "y"}}}}});
        job_selector(&mut j);
        assert_eq!(
            j["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}})
        );
        assert_eq!(
            j["spec"]["template"]["metadata"]["labels"],
            json!({"x": "y", "batch.kubernetes.io/controller-uid": "u1", "batch.kubernetes.io/job-name": "pi",
                "controller-uid": "u1", "job-name": "pi"})
        );
        assert_eq!(
            j["metadata"]["labels"], j["spec"]["template"]["metadata"]["labels"],
            "a Job without labels takes its pods'"
        );
        let mut own = json!({"metadata": {"name": "pi", "uid": "u1", "labels": {"team": "a"}}, "spec": {"template": {}}});
        job_selector(&mut own);
        assert_eq!(own["metadata"]["labels"], json!({"team": "a"}));
        let mut manual =
            json!({"metadata": {"name": "m", "uid": "u2"}, "spec": {"manualSelector": true}});
        job_selector(&mut manual);
        assert!(manual["spec"].get("selector").is_none());
    }

    #[test]
    fn rolling_parameters_only_for_rolling_updates() {
        let mut ds = json!({"spec": {}});
        daemonset(&mut ds);
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        let mut od = json!({"spec": {"updateStrategy": {"type": "OnDelete"}}});
        daemonset(&mut od);
        assert_eq!(od["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
        let mut sts = json!({"spec": {}});
        statefulset(&mut sts);
        assert_eq!(sts["spec"]["replicas"], 1);
        assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"],
            0
        );
        let mut cj = json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {}}}});
        cronjob(&mut cj);
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(cj["spec"]["jobTemplate"]["spec"]["backoffLimit"], 6);
    }
}

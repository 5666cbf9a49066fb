//! Jobs and CronJobs (batch/v1).

use serde_json::Value;

use super::workloads::{non_negative, selector_and_template};
use crate::cron;
use crate::status::FieldError;

/// Job fields whose semantics the job controller does not implement: refused by name rather than
/// accepted and ignored.
const UNSUPPORTED_JOB_FIELDS: &[&str] = &[
    "podFailurePolicy",
    "successPolicy",
    "backoffLimitPerIndex",
    "maxFailedIndexes",
];

/// A Job's spec at `path` (`spec`, or `spec.jobTemplate.spec` of a CronJob).
fn job_spec(spec: &Value, path: &str, generated_selector: bool, errs: &mut Vec<FieldError>) {
    for f in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        non_negative(spec, path, f, errs);
    }
    for f in UNSUPPORTED_JOB_FIELDS {
        if spec.get(*f).is_some_and(|v| !v.is_null()) {
            errs.push(FieldError::forbidden(
                format!("{path}.{f}"),
                "not supported by this cluster's job controller",
            ));
        }
    }
    let mode = spec
        .get("completionMode")
        .and_then(Value::as_str)
        .unwrap_or("NonIndexed");
    match mode {
        "NonIndexed" => {}
        "Indexed" => {
            if spec.get("completions").is_none_or(Value::is_null) {
                errs.push(FieldError::required(
                    format!("{path}.completions"),
                    "when completion mode is Indexed",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            format!("{path}.completionMode"),
            other,
            &["NonIndexed", "Indexed"],
        )),
    }
    if generated_selector {
        selector_and_template(spec, path, "job", &["OnFailure", "Never"], errs);
    } else if let Some(ps) = spec.pointer("/template/spec") {
        // a CronJob's template: the selector is generated per Job
        super::validate_pod_spec(ps, &format!("{path}.template.spec"), errs);
        let rp = ps
            .get("restartPolicy")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if rp != "OnFailure" && rp != "Never" {
            errs.push(FieldError::not_supported(
                format!("{path}.template.spec.restartPolicy"),
                rp,
                &["OnFailure", "Never"],
            ));
        }
    } else {
        errs.push(FieldError::required(
            format!("{path}.template.spec.containers"),
            "",
        ));
    }
}

pub(super) fn job(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    job_spec(&spec, "spec", true, errs);
    if let Some(old) = old.and_then(|o| o.get("spec")) {
        for f in ["selector", "completionMode", "template"] {
            // a suspended Job that never started may get a new template (upstream allows the
            // scheduling directives only; the whole template is simpler and stricter elsewhere)
            if f == "template" && spec.get("suspend") == Some(&Value::Bool(true)) {
                continue;
            }
            if spec.get(f) != old.get(f) {
                errs.push(FieldError::invalid(
                    format!("spec.{f}"),
                    spec.get(f).cloned().unwrap_or(Value::Null),
                    "field is immutable",
                ));
            }
        }
        if spec.get("completions") != old.get("completions") {
            errs.push(FieldError::invalid(
                "spec.completions",
                spec.get("completions").cloned().unwrap_or(Value::Null),
                "field is immutable",
            ));
        }
    }
}

pub(super) fn cronjob(obj: &Value, errs: &mut Vec<FieldError>) {
    if let Some(name) = obj.pointer("/metadata/name").and_then(Value::as_str)
        && name.len() > 52
    {
        // the Jobs it creates add "-<minutes since the epoch>" (11 characters) to the name
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            "must be no more than 52 characters",
        ));
    }
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    match spec.get("schedule").and_then(Value::as_str) {
        None | Some("") => errs.push(FieldError::required("spec.schedule", "")),
        Some(s) => {
            if let Err(e) = cron::parse(s) {
                errs.push(FieldError::invalid("spec.schedule", s, e));
            }
            if s.contains("TZ") {
                errs.push(FieldError::invalid(
                    "spec.schedule",
                    s,
                    "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                ));
            }
        }
    }
    if let Some(tz) = spec.get("timeZone").and_then(Value::as_str) {
        if tz.is_empty() {
            errs.push(FieldError::invalid(
                "spec.timeZone",
                tz,
                "timeZone must be nil or non-empty string",
            ));
        } else if tz.eq_ignore_ascii_case("local") {
            errs.push(FieldError::invalid(
                "spec.timeZone",
                tz,
                "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
            ));
        } else if let Err(e) = cron::time_zone(tz) {
            errs.push(FieldError::invalid("spec.timeZone", tz, e));
        }
    }
    if let Some(p) = spec.get("concurrencyPolicy").and_then(Value::as_str)
        && !["Allow", "Forbid", "Replace"].contains(&p)
    {
        errs.push(FieldError::not_supported(
            "spec.concurrencyPolicy",
            p,
            &["Allow", "Forbid", "Replace"],
        ));
    }
    for f in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        non_negative(&spec, "spec", f, errs);
    }
    match spec.pointer("/jobTemplate/spec") {
        Some(js) => job_spec(js, "spec.jobTemplate.spec", false, errs),
        None => errs.push(FieldError::required(
            "spec.jobTemplate.spec.template.spec.containers",
            "",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn texts(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_job_needs_a_restart_policy_other_than_always() {
        let j = json!({"spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"restartPolicy": "Always",
            "containers": [{"name": "c", "image": "busybox"}]}}}});
        let mut e = Vec::new();
        job(&j, None, &mut e);
        assert_eq!(
            texts(&e),
            [
                "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
            ]
        );
        let mut pfp = j.clone();
        pfp["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        pfp["spec"]["podFailurePolicy"] = json!({"rules": []});
        let mut e = Vec::new();
        job(&pfp, None, &mut e);
        assert_eq!(
            texts(&e),
            ["spec.podFailurePolicy: Forbidden: not supported by this cluster's job controller"]
        );
    }

    #[test]
    fn cronjob_schedule_and_time_zone() {
        let cj = |schedule: &str, tz: Option<&str>| {
            let mut c = json!({"metadata": {"name": "hello"}, "spec": {"schedule": schedule,
                "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                "containers": [{"name": "c", "image": "busybox"}]}}}}}});
            if let Some(tz) = tz {
                c["spec"]["timeZone"] = json!(tz);
            }
            let mut e = Vec::new();
            cronjob(&c, &mut e);
            texts(&e)
        };
        assert!(cj("*/1 * * * *", None).is_empty());
        assert!(cj("@hourly", Some("Europe/Berlin")).is_empty());
        assert_eq!(
            cj("* * * *", None),
            [
                "spec.schedule: Invalid value: \"* * * *\": expected exactly 5 fields, found 4: [* * * *]"
            ]
        );
        assert_eq!(
            cj("0 * * * *", Some("Mars/Olympus")),
            ["spec.timeZone: Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus"]
        );
        assert_eq!(
            cj("TZ=UTC 0 * * * *", None).last().unwrap(),
            "spec.schedule: Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
        );
    }
}

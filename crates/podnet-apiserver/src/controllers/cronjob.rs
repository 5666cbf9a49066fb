//! CronJobs (batch/v1), as kube's CronJob controller (v2) runs them: at each scheduled time
//! ([`podnet_apimachinery::cron`], in `spec.timeZone` or the server's zone) a Job named
//! `<cronjob>-<minutes since the epoch>` from the job template, unless the time is older than
//! `startingDeadlineSeconds`, the CronJob is suspended, or concurrencyPolicy Forbid finds one still
//! running (Replace deletes it first); `status.active`, `lastScheduleTime` and `lastSuccessfulTime`;
//! finished Jobs beyond the history limits are deleted, oldest first.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use podnet_apimachinery::resources::{self, ResourceDef};
use podnet_apimachinery::{ApiError, cron, object, time};
use podnet_apistore::{ObjectKey, WatchEvent};
use serde_json::{Value, json};

use super::job::{finished, has_condition, jobs_def};
use super::{BoxFut, Controller, Timers, record_event};
use crate::registry::{Api, DeleteOptions, WriteOptions};

#[derive(Default)]
pub struct CronJobController {
    timers: Timers,
}

const COMPONENT: &str = "cronjob-controller";
/// The annotation a scheduled Job carries with the time it was scheduled for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// More missed start times than this are reported (and only the latest is run).
const TOO_MANY_MISSED: usize = 100;
/// A bound on the schedule walk from the last run to now.
const MAX_WALK: usize = 200_000;

fn cronjobs_def() -> &'static ResourceDef {
    resources::find("batch", "v1", "cronjobs").expect("served")
}

impl Controller for CronJobController {
    fn name(&self) -> &'static str {
        "cronjob"
    }

    fn watches(&self) -> Vec<String> {
        vec!["batch/cronjobs".into(), "batch/jobs".into()]
    }

    fn keys(&self, _api: &Api, ev: &WatchEvent) -> Vec<ObjectKey> {
        if ev.key.resource == "batch/cronjobs" {
            return vec![ev.key.clone()];
        }
        super::controller_key(ev, "CronJob", "batch/cronjobs")
    }

    fn all_keys(&self, api: &Api) -> Vec<ObjectKey> {
        super::keys_of(api, "batch/cronjobs")
    }

    fn reconcile<'a>(&'a self, api: &'a Arc<Api>, key: &'a ObjectKey) -> BoxFut<'a> {
        Box::pin(async move { self.sync(api, key).await })
    }

    fn timers(&self) -> Option<&Timers> {
        Some(&self.timers)
    }
}

fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// RFC 3339 in the CronJob's zone, as Go formats a time in a location (`Z` for UTC).
fn rfc3339_in(t: Timestamp, tz: &TimeZone) -> String {
    let s = t
        .to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    match s.strip_suffix("+00:00") {
        Some(base) => format!("{base}Z"),
        None => s,
    }
}

fn job_ref(job: &Value) -> Value {
    json!({"kind": "Job", "namespace": object::namespace(job), "name": object::name(job),
        "uid": object::uid(job), "apiVersion": "batch/v1",
        "resourceVersion": object::meta_str(job, "resourceVersion").unwrap_or_default()})
}

fn ts_at(o: &Value, path: &str) -> Option<i64> {
    object::str_at(o, path).and_then(time::parse_rfc3339)
}

/// The latest scheduled time in `(earliest, now]` and how many there were.
fn most_recent(
    sched: &cron::Schedule,
    tz: &TimeZone,
    earliest: Timestamp,
    now: Timestamp,
) -> (Option<Timestamp>, usize) {
    let mut last = None;
    let mut count = 0;
    let mut t = earliest;
    while count < MAX_WALK {
        match sched.next_after(t, tz) {
            Some(n) if n <= now => {
                last = Some(n);
                count += 1;
                t = n;
            }
            _ => break,
        }
    }
    (last, count)
}

impl CronJobController {
    async fn sync(&self, api: &Arc<Api>, k: &ObjectKey) -> Result<(), ApiError> {
        let Ok(cj) = api.get(cronjobs_def(), &k.namespace, &k.name) else {
            return Ok(());
        };
        if object::is_deleting(&cj) {
            return Ok(());
        }
        let ns = k.namespace.as_str();
        let jobs = super::replicaset::owned(api, jobs_def(), ns, object::uid(&cj));
        self.track_active(api, &cj, &jobs).await?;
        self.clean_history(api, &cj, &jobs).await?;
        if cj.pointer("/spec/suspend") == Some(&json!(true)) {
            return Ok(());
        }
        let cj = api.get(cronjobs_def(), ns, &k.name)?;
        let schedule_text = object::str_at(&cj, "spec.schedule").unwrap_or_default();
        let sched = match cron::parse(schedule_text) {
            Ok(s) => s,
            Err(e) => {
                let msg = format!("unparseable schedule: {schedule_text:?} : {e}");
                record_event(api, &cj, "Warning", "UnparseableSchedule", &msg, COMPONENT).await;
                return Ok(());
            }
        };
        let tz = match object::str_at(&cj, "spec.timeZone") {
            Some(name) => match cron::time_zone(name) {
                Ok(tz) => tz,
                Err(e) => {
                    record_event(api, &cj, "Warning", "UnknownTimeZone", &e, COMPONENT).await;
                    return Ok(());
                }
            },
            None => TimeZone::system(),
        };
        let now = Timestamp::now();
        let mut earliest = ts_at(&cj, "status.lastScheduleTime")
            .or_else(|| ts_at(&cj, "metadata.creationTimestamp"))
            .unwrap_or(now.as_second());
        let deadline = object::i64_at(&cj, "spec.startingDeadlineSeconds");
        if let Some(d) = deadline {
            earliest = earliest.max(now.as_second() - d);
        }
        let earliest = Timestamp::from_second(earliest).unwrap_or(now);
        let (scheduled, missed) = most_recent(&sched, &tz, earliest, now);
        // wake up at the next scheduled time, whatever happens now
        if let Some(next) = sched.next_after(now, &tz) {
            let wait = next.as_second() - now.as_second();
            self.timers
                .after(k, Duration::from_secs(wait.max(0) as u64 + 1));
        }
        let Some(scheduled) = scheduled else {
            return Ok(());
        };
        if missed > TOO_MANY_MISSED {
            let msg = format!(
                "too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
            );
            record_event(api, &cj, "Warning", "TooManyMissedTimes", &msg, COMPONENT).await;
        }
        if let Some(d) = deadline
            && scheduled.as_second() + d < now.as_second()
        {
            let msg = format!(
                "Missed scheduled time to start a job: {}",
                // upstream's wording: RFC 1123 with a numeric zone, in UTC
                scheduled.strftime("%a, %d %b %Y %H:%M:%S %z")
            );
            record_event(api, &cj, "Warning", "MissSchedule", &msg, COMPONENT).await;
            return Ok(());
        }
        let job_name = format!("{}-{}", k.name, scheduled.as_second() / 60);
        let jobs = super::replicaset::owned(api, jobs_def(), ns, object::uid(&cj));
        if ts_at(&cj, "status.lastScheduleTime") == Some(scheduled.as_second())
            || jobs.iter().any(|j| object::name(j) == job_name)
        {
            return Ok(());
        }
        let active: Vec<Value> = cj
            .pointer("/status/active")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        match object::str_at(&cj, "spec.concurrencyPolicy").unwrap_or("Allow") {
            "Forbid" if !active.is_empty() => {
                record_event(
                    api,
                    &cj,
                    "Normal",
                    "JobAlreadyActive",
                    "Not starting job because prior execution is running and concurrency policy is Forbid",
                    COMPONENT,
                )
                .await;
                return Ok(());
            }
            "Replace" => {
                for r in &active {
                    let name = r["name"].as_str().unwrap_or_default();
                    self.delete_job(api, &cj, name).await?;
                }
                api.mutate(cronjobs_def(), ns, &k.name, Some("status"), |o| {
                    match o.get_mut("status").and_then(Value::as_object_mut) {
                        Some(st) => st.remove("active").is_some(),
                        None => false,
                    }
                })
                .await?;
            }
            _ => {}
        }
        let job = self.new_job(&cj, &job_name, scheduled, &tz);
        let created = match api
            .create(jobs_def(), ns, job, &WriteOptions::default())
            .await
        {
            Ok(o) => o.value(),
            Err(e) if e.reason == "AlreadyExists" => return Ok(()),
            Err(e) => {
                let msg = format!("Error creating job: {}", e.message);
                record_event(api, &cj, "Warning", "FailedCreate", &msg, COMPONENT).await;
                return Err(e);
            }
        };
        let msg = format!("Created job {job_name}");
        record_event(api, &cj, "Normal", "SuccessfulCreate", &msg, COMPONENT).await;
        let r = job_ref(&created);
        let at = rfc3339(scheduled);
        api.mutate(cronjobs_def(), ns, &k.name, Some("status"), |o| {
            if !o.get("status").is_some_and(Value::is_object) {
                o["status"] = json!({});
            }
            if !o["status"].get("active").is_some_and(Value::is_array) {
                o["status"]["active"] = json!([]);
            }
            o["status"]["active"]
                .as_array_mut()
                .expect("array")
                .push(r.clone());
            o["status"]["lastScheduleTime"] = json!(at);
            true
        })
        .await?;
        Ok(())
    }

    fn new_job(&self, cj: &Value, name: &str, scheduled: Timestamp, tz: &TimeZone) -> Value {
        let tmpl = cj
            .pointer("/spec/jobTemplate")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let mut meta = json!({
            "name": name,
            "namespace": object::namespace(cj),
            "ownerReferences": [podnet_apimachinery::workloads::controller_ref(cj, "batch/v1", "CronJob")],
        });
        if let Some(l) = tmpl.pointer("/metadata/labels") {
            meta["labels"] = l.clone();
        }
        let mut ann = tmpl
            .pointer("/metadata/annotations")
            .cloned()
            .unwrap_or_else(|| json!({}));
        ann[SCHEDULED_TIMESTAMP] = json!(rfc3339_in(scheduled, tz));
        meta["annotations"] = ann;
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
            "spec": tmpl.get("spec").cloned().unwrap_or_else(|| json!({}))})
    }

    async fn delete_job(&self, api: &Arc<Api>, cj: &Value, name: &str) -> Result<(), ApiError> {
        let opts = DeleteOptions {
            propagation: Some("Background".into()),
            ..Default::default()
        };
        match api
            .delete(jobs_def(), object::namespace(cj), name, &opts)
            .await
        {
            Ok(_) => {
                let msg = format!("Deleted job {name}");
                record_event(api, cj, "Normal", "SuccessfulDelete", &msg, COMPONENT).await;
                Ok(())
            }
            Err(e) if e.reason == "NotFound" => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `status.active`: the running Jobs the controller started (others are reported, not added;
    /// finished and vanished ones removed); `lastSuccessfulTime` from the Jobs that completed.
    async fn track_active(
        &self,
        api: &Arc<Api>,
        cj: &Value,
        jobs: &[Value],
    ) -> Result<(), ApiError> {
        let listed: Vec<Value> = cj
            .pointer("/status/active")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let listed_uids: HashSet<&str> = listed.iter().filter_map(|r| r["uid"].as_str()).collect();
        let mut active = Vec::new();
        let mut last_success = ts_at(cj, "status.lastSuccessfulTime");
        for j in jobs {
            let uid = object::uid(j);
            if !finished(j) {
                if !listed_uids.contains(uid) && !object::is_deleting(j) {
                    let msg = format!(
                        "Saw a job that the controller did not create or forgot: {}",
                        object::name(j)
                    );
                    record_event(api, cj, "Warning", "UnexpectedJob", &msg, COMPONENT).await;
                }
                // Only Jobs the controller started count as active: a Job made by hand from the
                // CronJob (`kubectl create job --from=cronjob/x`) must not hold back a Forbid
                // schedule or be deleted by Replace (upstream's syncCronJob only reports it).
                if !object::is_deleting(j) && listed_uids.contains(uid) {
                    active.push(job_ref(j));
                }
                continue;
            }
            if listed_uids.contains(uid) {
                let cond = if has_condition(j, "Complete") {
                    "Complete"
                } else {
                    "Failed"
                };
                let msg = format!("Saw completed job: {}, condition: {cond}", object::name(j));
                record_event(api, cj, "Normal", "SawCompletedJob", &msg, COMPONENT).await;
            }
            if has_condition(j, "Complete")
                && let Some(t) = ts_at(j, "status.completionTime")
                && last_success.is_none_or(|l| t > l)
            {
                last_success = Some(t);
            }
        }
        let job_uids: HashSet<&str> = jobs.iter().map(object::uid).collect();
        for r in &listed {
            if !job_uids.contains(r["uid"].as_str().unwrap_or_default()) {
                let msg = format!(
                    "Active job went missing: {}",
                    r["name"].as_str().unwrap_or_default()
                );
                record_event(api, cj, "Normal", "MissingJob", &msg, COMPONENT).await;
            }
        }
        let last_success = last_success
            .and_then(|t| Timestamp::from_second(t).ok())
            .map(rfc3339);
        api.mutate(
            cronjobs_def(),
            object::namespace(cj),
            object::name(cj),
            Some("status"),
            |o| {
                let before = o.get("status").cloned();
                if !o.get("status").is_some_and(Value::is_object) {
                    o["status"] = json!({});
                }
                let st = o["status"].as_object_mut().expect("object");
                // the listed order is kept for Jobs still running; resourceVersions are not compared
                let same = |a: &Value, b: &Value| a["uid"] == b["uid"];
                let mut merged: Vec<Value> = listed
                    .iter()
                    .filter(|r| active.iter().any(|a| same(a, r)))
                    .cloned()
                    .collect();
                merged.extend(
                    active
                        .iter()
                        .filter(|a| !listed.iter().any(|r| same(a, r)))
                        .cloned(),
                );
                if merged.is_empty() {
                    st.remove("active");
                } else {
                    st.insert("active".into(), json!(merged));
                }
                if let Some(t) = &last_success {
                    st.insert("lastSuccessfulTime".into(), json!(t));
                }
                o.get("status") != before.as_ref()
            },
        )
        .await?;
        Ok(())
    }

    /// Keeps the newest `successfulJobsHistoryLimit` completed and `failedJobsHistoryLimit` failed
    /// Jobs.
    async fn clean_history(
        &self,
        api: &Arc<Api>,
        cj: &Value,
        jobs: &[Value],
    ) -> Result<(), ApiError> {
        for (cond, field, default) in [
            ("Complete", "spec.successfulJobsHistoryLimit", 3),
            ("Failed", "spec.failedJobsHistoryLimit", 1),
        ] {
            let limit = object::i64_at(cj, field).unwrap_or(default).max(0) as usize;
            let mut done: Vec<&Value> = jobs
                .iter()
                .filter(|j| has_condition(j, cond) && !object::is_deleting(j))
                .collect();
            if done.len() <= limit {
                continue;
            }
            done.sort_by_key(|j| {
                ts_at(j, "status.startTime")
                    .or_else(|| ts_at(j, "metadata.creationTimestamp"))
                    .unwrap_or(0)
            });
            let excess = done.len() - limit;
            for j in done.into_iter().take(excess) {
                self.delete_job(api, cj, object::name(j)).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_missed_time_and_how_many() {
        let sched = cron::parse("*/5 * * * *").unwrap();
        let tz = TimeZone::UTC;
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let (last, n) = most_recent(
            &sched,
            &tz,
            t("2024-03-01T10:00:00Z"),
            t("2024-03-01T10:17:00Z"),
        );
        assert_eq!((last, n), (Some(t("2024-03-01T10:15:00Z")), 3));
        let (last, n) = most_recent(
            &sched,
            &tz,
            t("2024-03-01T10:00:00Z"),
            t("2024-03-01T10:04:59Z"),
        );
        assert_eq!((last, n), (None, 0));
        assert_eq!(
            rfc3339_in(
                t("2024-03-01T14:00:00Z"),
                &cron::time_zone("America/New_York").unwrap()
            ),
            "2024-03-01T09:00:00-05:00"
        );
        assert_eq!(
            rfc3339_in(t("2024-03-01T14:00:00Z"), &tz),
            "2024-03-01T14:00:00Z"
        );
    }
}

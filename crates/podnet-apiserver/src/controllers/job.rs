//! Jobs (batch/v1), as kube's job controller runs them: pods up to `parallelism` until
//! `completions` succeeded (NonIndexed) or every index in `0..completions` did (Indexed, each pod
//! knowing its index as `JOB_COMPLETION_INDEX`); failed pods retried after an exponential back-off
//! until `backoffLimit` failures (or restarts, with restartPolicy OnFailure); `activeDeadlineSeconds`;
//! `suspend`. Pods carry the `batch.kubernetes.io/job-tracking` finalizer until the Job has counted
//! them (through `status.uncountedTerminatedPods`), so a pod deleted early is still counted once.
//! A finishing Job first gets `SuccessCriteriaMet` or `FailureTarget`, then, once none of its pods
//! is left running or terminating, `Complete` or `Failed` (what `kubectl wait --for=condition=complete`
//! waits for). `podFailurePolicy`, `successPolicy` and per-index back-off limits are refused at
//! validation.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use podnet_apimachinery::resources::{self, ResourceDef};
use podnet_apimachinery::workloads::job::{self as jobs, TRACKING_FINALIZER};
use podnet_apimachinery::workloads::{pod_finished, pod_ready};
use podnet_apimachinery::{ApiError, object, time};
use podnet_apistore::{ObjectKey, WatchEvent};
use serde_json::{Value, json};

use super::{BoxFut, Controller, Timers, record_event, set_condition};
use crate::registry::{Api, DeleteOptions, WriteOptions};
use crate::util;

#[derive(Default)]
pub struct JobController {
    timers: Timers,
}

const COMPONENT: &str = "job-controller";

pub fn jobs_def() -> &'static ResourceDef {
    resources::find("batch", "v1", "jobs").expect("served")
}

fn pods_def() -> &'static ResourceDef {
    resources::find("", "v1", "pods").expect("served")
}

/// Whether a condition of `ty` is True.
pub fn has_condition(o: &Value, ty: &str) -> bool {
    o.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == ty && c["status"] == "True"))
}

/// Complete or Failed.
pub fn finished(job: &Value) -> bool {
    has_condition(job, "Complete") || has_condition(job, "Failed")
}

fn condition<'a>(o: &'a Value, ty: &str) -> Option<&'a Value> {
    o.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == ty && c["status"] == "True"))
}

impl Controller for JobController {
    fn name(&self) -> &'static str {
        "job"
    }

    fn watches(&self) -> Vec<String> {
        vec!["batch/jobs".into(), "pods".into()]
    }

    fn keys(&self, _api: &Api, ev: &WatchEvent) -> Vec<ObjectKey> {
        if ev.key.resource == "batch/jobs" {
            return vec![ev.key.clone()];
        }
        let Ok(p) = serde_json::from_slice::<Value>(&ev.object) else {
            return vec![];
        };
        match object::controller_ref(&p) {
            Some(c) if c["kind"] == "Job" => vec![ObjectKey::new(
                "batch/jobs",
                object::namespace(&p),
                c["name"].as_str().unwrap_or_default(),
            )],
            // A Job's pod orphaned (`--cascade=orphan`) before the Job counted it: the key with no
            // name releases such pods in their namespace (upstream's syncOrphanPod).
            None if has_finalizer(&p) => {
                vec![ObjectKey::new("batch/jobs", object::namespace(&p), "")]
            }
            _ => vec![],
        }
    }

    fn all_keys(&self, api: &Api) -> Vec<ObjectKey> {
        super::keys_of(api, "batch/jobs")
    }

    fn reconcile<'a>(&'a self, api: &'a Arc<Api>, key: &'a ObjectKey) -> BoxFut<'a> {
        Box::pin(async move { self.sync(api, key).await })
    }

    fn timers(&self) -> Option<&Timers> {
        Some(&self.timers)
    }
}

fn has_finalizer(p: &Value) -> bool {
    object::finalizers(p)
        .iter()
        .any(|f| f == TRACKING_FINALIZER)
}

/// A pod that counts as failed: Failed, or deleted before it succeeded.
fn failed(p: &Value) -> bool {
    let phase = object::str_at(p, "status.phase").unwrap_or_default();
    phase == "Failed" || (object::is_deleting(p) && phase != "Succeeded")
}

fn uid_list(job: &Value, which: &str) -> Vec<String> {
    job.pointer(&format!("/status/uncountedTerminatedPods/{which}"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|u| u.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

async fn remove_finalizer(api: &Arc<Api>, p: &Value) -> Result<(), ApiError> {
    api.mutate(
        pods_def(),
        object::namespace(p),
        object::name(p),
        None,
        |o| {
            let fins = object::finalizers(o);
            if !fins.iter().any(|f| f == TRACKING_FINALIZER) {
                return false;
            }
            let kept: Vec<String> = fins
                .into_iter()
                .filter(|f| f != TRACKING_FINALIZER)
                .collect();
            object::meta_mut(o).insert("finalizers".into(), json!(kept));
            true
        },
    )
    .await
    .map(|_| ())
}

async fn delete_pod(api: &Arc<Api>, job: &Value, p: &Value) -> Result<(), ApiError> {
    match api
        .delete(
            pods_def(),
            object::namespace(p),
            object::name(p),
            &DeleteOptions::default(),
        )
        .await
    {
        Ok(_) => {
            let msg = format!("Deleted pod: {}", object::name(p));
            record_event(api, job, "Normal", "SuccessfulDelete", &msg, COMPONENT).await;
            Ok(())
        }
        Err(e) if e.reason == "NotFound" => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletion preference among active pods: unscheduled, then not ready, then the newest.
fn deletion_rank(p: &Value) -> (bool, bool, std::cmp::Reverse<String>) {
    (
        object::str_at(p, "spec.nodeName").is_some_and(|n| !n.is_empty()),
        pod_ready(p),
        std::cmp::Reverse(
            object::str_at(p, "metadata.creationTimestamp")
                .unwrap_or_default()
                .to_string(),
        ),
    )
}

impl JobController {
    async fn sync(&self, api: &Arc<Api>, k: &ObjectKey) -> Result<(), ApiError> {
        let ns = k.namespace.as_str();
        if k.name.is_empty() {
            for p in api.list_values(pods_def(), Some(ns)) {
                if object::controller_ref(&p).is_none() && has_finalizer(&p) {
                    remove_finalizer(api, &p).await?;
                }
            }
            return Ok(());
        }
        let job = api.get(jobs_def(), ns, &k.name).ok();
        // pods whose Job is gone (or replaced by a new Job of the same name) keep no finalizer
        for p in api.list_values(pods_def(), Some(ns)) {
            let orphan = object::controller_ref(&p).is_some_and(|c| {
                c["kind"] == "Job"
                    && c["name"] == k.name.as_str()
                    && job.as_ref().is_none_or(|j| c["uid"] != object::uid(j))
            });
            if orphan && has_finalizer(&p) {
                remove_finalizer(api, &p).await?;
            }
        }
        let Some(job) = job else { return Ok(()) };
        let pods = super::replicaset::owned(api, pods_def(), ns, object::uid(&job));
        if object::is_deleting(&job) || finished(&job) {
            for p in pods.iter().filter(|p| has_finalizer(p)) {
                remove_finalizer(api, p).await?;
            }
            return Ok(());
        }
        let job = self.track(api, &job, &pods).await?;
        let pods = super::replicaset::owned(api, pods_def(), ns, object::uid(&job));
        self.drive(api, k, &job, &pods).await
    }

    /// Counts finished pods exactly once: their uids go to `status.uncountedTerminatedPods` (and,
    /// for Indexed Jobs, their indexes to `completedIndexes`), then their finalizers go, then they
    /// move to the `succeeded`/`failed` counters. Returns the Job as it is afterwards.
    async fn track(&self, api: &Arc<Api>, job: &Value, pods: &[Value]) -> Result<Value, ApiError> {
        let ns = object::namespace(job);
        let name = object::name(job);
        let indexed = jobs::indexed(job);
        let completions = object::i64_at(job, "spec.completions").unwrap_or(0);
        let mut succeeded_uids = uid_list(job, "succeeded");
        let mut failed_uids = uid_list(job, "failed");
        let mut completed =
            jobs::parse_indexes(object::str_at(job, "status.completedIndexes").unwrap_or(""));
        let mut changed = false;
        for p in pods.iter().filter(|p| has_finalizer(p)) {
            let uid = object::uid(p).to_string();
            if succeeded_uids.contains(&uid) || failed_uids.contains(&uid) {
                continue;
            }
            if object::str_at(p, "status.phase") == Some("Succeeded") {
                if indexed {
                    match jobs::index_of(p) {
                        Some(i) if i < completions && completed.insert(i) => {}
                        // an index already done (or out of range): nothing to count
                        _ => {
                            remove_finalizer(api, p).await?;
                            continue;
                        }
                    }
                }
                succeeded_uids.push(uid);
                changed = true;
            } else if object::str_at(p, "status.phase") == Some("Failed")
                || (failed(p) && !has_condition(job, "SuccessCriteriaMet"))
            {
                failed_uids.push(uid);
                changed = true;
            } else if object::is_deleting(p) {
                // removed after the Job succeeded: not a failure, nothing to count
                remove_finalizer(api, p).await?;
            }
        }
        if changed {
            let (s, f, ci) = (
                succeeded_uids.clone(),
                failed_uids.clone(),
                jobs::format_indexes(&completed),
            );
            api.mutate(jobs_def(), ns, name, Some("status"), |o| {
                o["status"]["uncountedTerminatedPods"] = json!({});
                if !s.is_empty() {
                    o["status"]["uncountedTerminatedPods"]["succeeded"] = json!(s);
                }
                if !f.is_empty() {
                    o["status"]["uncountedTerminatedPods"]["failed"] = json!(f);
                }
                if indexed {
                    o["status"]["completedIndexes"] = json!(ci);
                }
                true
            })
            .await?;
        }
        let uncounted: HashSet<&String> = succeeded_uids.iter().chain(&failed_uids).collect();
        for p in pods.iter().filter(|p| has_finalizer(p)) {
            if uncounted.contains(&object::uid(p).to_string()) {
                remove_finalizer(api, p).await?;
            }
        }
        if !uncounted.is_empty() {
            // every listed pod has lost its finalizer now (or is gone): count them
            let n_succeeded = succeeded_uids.len() as i64;
            let n_failed = failed_uids.len() as i64;
            let done = completed.len() as i64;
            api.mutate(jobs_def(), ns, name, Some("status"), |o| {
                // an Indexed Job has succeeded as many times as it has completed indexes
                let n = object::i64_at(o, "status.succeeded").unwrap_or(0);
                o["status"]["succeeded"] = json!(if indexed { done } else { n + n_succeeded });
                let n = object::i64_at(o, "status.failed").unwrap_or(0);
                o["status"]["failed"] = json!(n + n_failed);
                o["status"]["uncountedTerminatedPods"] = json!({});
                true
            })
            .await?;
        }
        api.get(jobs_def(), ns, name)
    }

    /// Finishes the Job or runs the pods it needs.
    async fn drive(
        &self,
        api: &Arc<Api>,
        k: &ObjectKey,
        job: &Value,
        pods: &[Value],
    ) -> Result<(), ApiError> {
        let ns = object::namespace(job);
        let now = util::now_unix();
        let active: Vec<&Value> = pods
            .iter()
            .filter(|p| !pod_finished(p) && !object::is_deleting(p))
            .collect();
        let terminating = pods
            .iter()
            .filter(|p| object::is_deleting(p) && !pod_finished(p))
            .count() as i64;
        let succeeded = object::i64_at(job, "status.succeeded").unwrap_or(0);
        let failed_n = object::i64_at(job, "status.failed").unwrap_or(0);
        let suspended = job.pointer("/spec/suspend") == Some(&json!(true));
        let indexed = jobs::indexed(job);
        let completions = object::i64_at(job, "spec.completions");
        let parallelism = object::i64_at(job, "spec.parallelism").unwrap_or(1).max(0);
        let start = object::str_at(job, "status.startTime").and_then(time::parse_rfc3339);

        // the outcome decided: already (an interim condition), or now (a new one to write)
        let decided = condition(job, "FailureTarget").is_some()
            || condition(job, "SuccessCriteriaMet").is_some();
        let mut interim: Option<(&str, &str, &str)> = None;
        if !decided && !suspended {
            let limit = object::i64_at(job, "spec.backoffLimit").unwrap_or(6);
            let deadline = object::i64_at(job, "spec.activeDeadlineSeconds");
            let complete = match (indexed, completions) {
                (_, Some(c)) => succeeded >= c,
                (false, None) => succeeded > 0 && active.is_empty(),
                (true, None) => false,
            };
            if failed_n > limit || jobs::restarts_past_limit(job, &active) {
                interim = Some((
                    "FailureTarget",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                ));
            } else if let (Some(d), Some(s)) = (deadline, start)
                && now >= s + d
            {
                interim = Some((
                    "FailureTarget",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                ));
            } else if complete {
                interim = Some((
                    "SuccessCriteriaMet",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                ));
            } else if let (Some(d), Some(s)) = (deadline, start) {
                self.timers
                    .after(k, Duration::from_secs((s + d - now).max(0) as u64));
            }
        }
        if let Some((ty, reason, message)) = interim {
            api.mutate(jobs_def(), ns, &k.name, Some("status"), |o| {
                set_condition(o, ty, "True", reason, message)
            })
            .await?;
        }
        if decided || interim.is_some() {
            // the outcome is known: nothing of the Job runs any more
            for p in &active {
                delete_pod(api, job, p).await?;
            }
            if active.is_empty() && terminating == 0 {
                return self.finish(api, k).await;
            }
            return self.write_status(api, k, pods, None).await;
        }
        if suspended {
            for p in &active {
                delete_pod(api, job, p).await?;
            }
            let newly = !has_condition(job, "Suspended");
            api.mutate(jobs_def(), ns, &k.name, Some("status"), |o| {
                let mut changed =
                    set_condition(o, "Suspended", "True", "JobSuspended", "Job suspended");
                if let Some(st) = o.get_mut("status").and_then(Value::as_object_mut) {
                    changed |= st.remove("startTime").is_some();
                }
                changed
            })
            .await?;
            if newly {
                record_event(api, job, "Normal", "Suspended", "Job suspended", COMPONENT).await;
            }
            return self.write_status(api, k, pods, None).await;
        }
        if has_condition(job, "Suspended") {
            api.mutate(jobs_def(), ns, &k.name, Some("status"), |o| {
                set_condition(o, "Suspended", "False", "JobResumed", "Job resumed")
            })
            .await?;
            record_event(api, job, "Normal", "Resumed", "Job resumed", COMPONENT).await;
        }
        // a pod that finished since the counting above is counted first (its event brings the
        // next sync): deciding now, from counters that miss it, would replace a pod that succeeded
        if pods
            .iter()
            .any(|p| has_finalizer(p) && (pod_finished(p) || object::is_deleting(p)))
        {
            return self.write_status(api, k, pods, None).await;
        }
        // the pods it needs
        let finished_pods: Vec<Value> = pods.iter().filter(|p| pod_finished(p)).cloned().collect();
        let wait = jobs::backoff_remaining(&finished_pods, now);
        if indexed {
            let completions = completions.unwrap_or(0);
            let completed =
                jobs::parse_indexes(object::str_at(job, "status.completedIndexes").unwrap_or(""));
            // one pod per index: duplicates and indexes out of range or done go
            let mut held: BTreeSet<i64> = BTreeSet::new();
            let mut keep: Vec<&Value> = Vec::new();
            let mut sorted = active.clone();
            sorted.sort_by_key(|p| {
                object::str_at(p, "metadata.creationTimestamp")
                    .unwrap_or_default()
                    .to_string()
            });
            for p in sorted {
                match jobs::index_of(p) {
                    Some(i) if i < completions && !completed.contains(&i) && held.insert(i) => {
                        keep.push(p)
                    }
                    _ => delete_pod(api, job, p).await?,
                }
            }
            let room = (parallelism - keep.len() as i64).max(0) as usize;
            let start_now = jobs::indexes_to_start(completions, &completed, &held, room);
            if !start_now.is_empty() {
                if wait > 0 {
                    self.timers.after(k, Duration::from_secs(wait as u64));
                } else {
                    for i in start_now {
                        self.create_pod(api, job, Some(i)).await?;
                    }
                }
            }
        } else {
            let want = match completions {
                Some(c) => parallelism.min((c - succeeded).max(0)),
                None if succeeded > 0 => active.len() as i64,
                None => parallelism,
            };
            let have = active.len() as i64;
            // podReplacementPolicy Failed: a replacement waits until the old pod is gone
            let wait_terminating = object::str_at(job, "spec.podReplacementPolicy")
                == Some("Failed")
                && terminating > 0;
            if have > want {
                let mut extra = active.clone();
                extra.sort_by_key(|p| deletion_rank(p));
                for p in extra.into_iter().take((have - want) as usize) {
                    delete_pod(api, job, p).await?;
                }
            } else if have < want && !wait_terminating {
                if wait > 0 {
                    self.timers.after(k, Duration::from_secs(wait as u64));
                } else {
                    for _ in have..want {
                        self.create_pod(api, job, None).await?;
                    }
                }
            }
        }
        let start = if start.is_none() {
            Some(util::now_rfc3339())
        } else {
            None
        };
        let pods = super::replicaset::owned(api, pods_def(), ns, object::uid(job));
        self.write_status(api, k, &pods, start).await
    }

    async fn create_pod(
        &self,
        api: &Arc<Api>,
        job: &Value,
        index: Option<i64>,
    ) -> Result<(), ApiError> {
        let pod = jobs::new_pod(job, index);
        match api
            .create(
                pods_def(),
                object::namespace(job),
                pod,
                &WriteOptions::default(),
            )
            .await
        {
            Ok(o) => {
                let msg = format!("Created pod: {}", object::name(&o.value()));
                record_event(api, job, "Normal", "SuccessfulCreate", &msg, COMPONENT).await;
                Ok(())
            }
            Err(e) => {
                let msg = format!("Error creating: {}", e.message);
                record_event(api, job, "Warning", "FailedCreate", &msg, COMPONENT).await;
                Err(e)
            }
        }
    }

    /// active, ready, terminating (and the start time of a Job that starts now).
    async fn write_status(
        &self,
        api: &Arc<Api>,
        k: &ObjectKey,
        pods: &[Value],
        start: Option<String>,
    ) -> Result<(), ApiError> {
        let active: Vec<&Value> = pods
            .iter()
            .filter(|p| !pod_finished(p) && !object::is_deleting(p))
            .collect();
        let ready = active.iter().filter(|p| pod_ready(p)).count() as i64;
        let n_active = active.len() as i64;
        let terminating = pods
            .iter()
            .filter(|p| object::is_deleting(p) && !pod_finished(p))
            .count() as i64;
        api.mutate(jobs_def(), &k.namespace, &k.name, Some("status"), |o| {
            let before = o.get("status").cloned();
            if !o.get("status").is_some_and(Value::is_object) {
                o["status"] = json!({});
            }
            let st = o["status"].as_object_mut().expect("object");
            for (f, v) in [("active", n_active), ("terminating", terminating)] {
                if v > 0 {
                    st.insert(f.into(), json!(v));
                } else {
                    st.remove(f);
                }
            }
            st.insert("ready".into(), json!(ready));
            st.entry("uncountedTerminatedPods")
                .or_insert_with(|| json!({}));
            if let Some(s) = &start
                && !st.contains_key("startTime")
            {
                st.insert("startTime".into(), json!(s));
            }
            o.get("status") != before.as_ref()
        })
        .await
        .map(|_| ())
    }

    /// No pod of a decided Job runs any more: the terminal condition.
    async fn finish(&self, api: &Arc<Api>, k: &ObjectKey) -> Result<(), ApiError> {
        let job = api.get(jobs_def(), &k.namespace, &k.name)?;
        let (ty, target) = if let Some(c) = condition(&job, "FailureTarget") {
            ("Failed", c.clone())
        } else if let Some(c) = condition(&job, "SuccessCriteriaMet") {
            ("Complete", c.clone())
        } else {
            return Ok(());
        };
        let reason = target["reason"].as_str().unwrap_or_default().to_string();
        let message = target["message"].as_str().unwrap_or_default().to_string();
        let now = util::now_rfc3339();
        api.mutate(jobs_def(), &k.namespace, &k.name, Some("status"), |o| {
            let mut changed = set_condition(o, ty, "True", &reason, &message);
            if let Some(st) = o.get_mut("status").and_then(Value::as_object_mut) {
                changed |= st.remove("active").is_some();
                st.insert("ready".into(), json!(0));
                // No pod runs or terminates any more (that is when a Job is finished).
                if st.get("terminating").and_then(Value::as_i64).unwrap_or(0) != 0 {
                    st.insert("terminating".into(), json!(0));
                    changed = true;
                }
                if ty == "Complete" && !st.contains_key("completionTime") {
                    st.insert("completionTime".into(), json!(now));
                    changed = true;
                }
            }
            changed
        })
        .await?;
        if ty == "Complete" {
            record_event(api, &job, "Normal", "Completed", "Job completed", COMPONENT).await;
        } else {
            record_event(api, &job, "Warning", &reason, &message, COMPONENT).await;
        }
        Ok(())
    }
}

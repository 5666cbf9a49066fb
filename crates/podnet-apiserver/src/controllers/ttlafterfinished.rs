//! The TTL-after-finished controller: a finished Job (Complete or Failed) with
//! `ttlSecondsAfterFinished` is deleted, with its pods (foreground), that many seconds after it
//! finished.

use std::sync::Arc;
use std::time::Duration;

use podnet_apimachinery::{ApiError, object, time};
use podnet_apistore::{ObjectKey, WatchEvent};
use serde_json::Value;

use super::job::{finished, jobs_def};
use super::{BoxFut, Controller, Timers};
use crate::registry::{Api, DeleteOptions};
use crate::util;

#[derive(Default)]
pub struct TtlAfterFinished {
    timers: Timers,
}

/// When a finished Job finished: its completion time, else when it failed.
fn finish_time(job: &Value) -> Option<i64> {
    if let Some(t) = object::str_at(job, "status.completionTime").and_then(time::parse_rfc3339) {
        return Some(t);
    }
    job.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| (c["type"] == "Failed" || c["type"] == "Complete") && c["status"] == "True")
        .and_then(|c| c["lastTransitionTime"].as_str())
        .and_then(time::parse_rfc3339)
}

impl Controller for TtlAfterFinished {
    fn name(&self) -> &'static str {
        "ttl-after-finished"
    }

    fn watches(&self) -> Vec<String> {
        vec!["batch/jobs".into()]
    }

    fn keys(&self, _api: &Api, ev: &WatchEvent) -> Vec<ObjectKey> {
        vec![ev.key.clone()]
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

impl TtlAfterFinished {
    async fn sync(&self, api: &Arc<Api>, k: &ObjectKey) -> Result<(), ApiError> {
        let Ok(job) = api.get(jobs_def(), &k.namespace, &k.name) else {
            return Ok(());
        };
        let Some(ttl) = object::i64_at(&job, "spec.ttlSecondsAfterFinished") else {
            return Ok(());
        };
        if object::is_deleting(&job) || !finished(&job) {
            return Ok(());
        }
        let Some(done) = finish_time(&job) else {
            return Ok(());
        };
        let left = done + ttl - util::now_unix();
        if left > 0 {
            self.timers.after(k, Duration::from_secs(left as u64));
            return Ok(());
        }
        let opts = DeleteOptions {
            propagation: Some("Foreground".into()),
            uid: Some(object::uid(&job).to_string()),
            ..Default::default()
        };
        match api.delete(jobs_def(), &k.namespace, &k.name, &opts).await {
            Ok(_) => Ok(()),
            Err(e) if e.reason == "NotFound" => Ok(()),
            Err(e) => Err(e),
        }
    }
}

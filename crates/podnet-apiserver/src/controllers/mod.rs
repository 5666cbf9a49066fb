//! The control-plane controllers a fresh cluster runs, in process, on the store's watch stream.
//!
//! Each controller maps watch events to keys, and reconciles keys one at a time (level-triggered: it
//! looks at the current state, never at the event itself). Failed keys are retried after a second; every
//! key is resynced every [`RESYNC`].

mod clusterroleaggregation;
mod cronjob;
mod daemonset;
mod deployment;
mod disruption;
mod endpoints;
mod events;
mod eventttl;
mod gc;
mod history;
mod job;
mod lbipam;
mod namespace;
pub mod nodelifecycle;
mod replicaset;
mod resourcequota;
mod scheduler;
mod statefulset;
mod ttlafterfinished;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use podnet_apimachinery::ApiError;
use podnet_apistore::{ObjectKey, WatchEvent};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::registry::Api;

pub use events::record as record_event;

pub const RESYNC: Duration = Duration::from_secs(30);

pub type BoxFut<'a> = Pin<Box<dyn Future<Output = Result<(), ApiError>> + Send + 'a>>;

/// Every object of a store resource, as keys (a controller's `all_keys`).
pub fn keys_of(api: &Api, resource: &str) -> Vec<ObjectKey> {
    api.store
        .list(resource, None)
        .0
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// The key of the `kind` (stored as `resource`) controlling the object of a watch event, if any.
pub fn controller_key(ev: &WatchEvent, kind: &str, resource: &str) -> Vec<ObjectKey> {
    let Ok(obj) = serde_json::from_slice::<Value>(&ev.object) else {
        return vec![];
    };
    match podnet_apimachinery::object::controller_ref(&obj) {
        Some(c) if c["kind"] == kind => vec![ObjectKey::new(
            resource,
            podnet_apimachinery::object::namespace(&obj),
            c["name"].as_str().unwrap_or_default(),
        )],
        _ => vec![],
    }
}

/// A controller.
pub trait Controller: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Store resources whose events concern it.
    fn watches(&self) -> Vec<String>;
    /// The keys an event asks to reconcile.
    fn keys(&self, api: &Api, ev: &WatchEvent) -> Vec<ObjectKey>;
    /// Every key (start and resync).
    fn all_keys(&self, api: &Api) -> Vec<ObjectKey>;
    fn reconcile<'a>(&'a self, api: &'a Arc<Api>, key: &'a ObjectKey) -> BoxFut<'a>;
    /// Keys the controller asked to look at again at a given time (a back-off ending, a deadline, a
    /// cron schedule, minReadySeconds passing): nothing else would wake it then.
    fn timers(&self) -> Option<&Timers> {
        None
    }
}

/// Keys to reconcile again later.
#[derive(Default)]
pub struct Timers {
    due: std::sync::Mutex<BTreeSet<(tokio::time::Instant, ObjectKey)>>,
    changed: tokio::sync::Notify,
}

impl Timers {
    /// Reconciles `key` again after `after` (rounded up to 10 ms, at most a day ahead).
    pub fn after(&self, key: &ObjectKey, after: Duration) {
        let after = after.clamp(Duration::from_millis(10), Duration::from_secs(86_400));
        let at = tokio::time::Instant::now() + after;
        let mut due = self.due.lock().expect("timers lock");
        // one timer per key: the earliest wins
        let existing: Vec<_> = due.iter().filter(|(_, k)| k == key).cloned().collect();
        if existing.iter().any(|(t, _)| *t <= at) {
            return;
        }
        for e in existing {
            due.remove(&e);
        }
        due.insert((at, key.clone()));
        drop(due);
        self.changed.notify_one();
    }

    fn next(&self) -> Option<tokio::time::Instant> {
        self.due
            .lock()
            .expect("timers lock")
            .first()
            .map(|(t, _)| *t)
    }

    fn take_due(&self) -> Vec<ObjectKey> {
        let now = tokio::time::Instant::now();
        let mut due = self.due.lock().expect("timers lock");
        let mut out = Vec::new();
        while let Some((t, _)) = due.first() {
            if *t > now {
                break;
            }
            out.push(due.pop_first().expect("non-empty").1);
        }
        out
    }
}

/// Starts every controller; they stop when `shutdown` turns true.
pub fn spawn_all(
    api: Arc<Api>,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut ctrls: Vec<Arc<dyn Controller>> = vec![
        Arc::new(namespace::NamespaceController),
        Arc::new(gc::GarbageCollector),
        Arc::new(deployment::DeploymentController::default()),
        Arc::new(replicaset::ReplicaSetController::default()),
        Arc::new(daemonset::DaemonSetController::default()),
        Arc::new(statefulset::StatefulSetController::default()),
        Arc::new(job::JobController::default()),
        Arc::new(ttlafterfinished::TtlAfterFinished::default()),
        Arc::new(cronjob::CronJobController::default()),
        Arc::new(endpoints::EndpointsController),
        Arc::new(scheduler::Scheduler::default()),
        Arc::new(eventttl::EventTtl),
        Arc::new(clusterroleaggregation::ClusterRoleAggregation),
        Arc::new(resourcequota::ResourceQuotaController),
        Arc::new(disruption::DisruptionController),
    ];
    if let Some(pool) = api.cfg.lb_pool {
        ctrls.push(Arc::new(lbipam::LbIpam { pool }));
    }
    let mut tasks: Vec<_> = ctrls
        .into_iter()
        .map(|c| tokio::spawn(run(c, api.clone(), shutdown.clone())))
        .collect();
    tasks.push(tokio::spawn(nodelifecycle::run(api, shutdown)));
    tasks
}

async fn run(ctrl: Arc<dyn Controller>, api: Arc<Api>, mut shutdown: watch::Receiver<bool>) {
    let (ev_tx, mut ev_rx) = mpsc::channel::<Option<Arc<WatchEvent>>>(8192);
    let mut forwarders = Vec::new();
    for res in ctrl.watches() {
        let Ok(mut w) = api.store.watch(&res, None, None) else {
            continue;
        };
        let tx = ev_tx.clone();
        forwarders.push(tokio::spawn(async move {
            loop {
                match w.next().await {
                    Ok(Some(ev)) => {
                        if tx.send(Some(ev)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    // fell behind: ask for a full resync and keep going from the live stream
                    Err(_) => {
                        if tx.send(None).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }));
    }
    drop(ev_tx);
    let mut queue: BTreeSet<ObjectKey> = ctrl.all_keys(&api).into_iter().collect();
    let mut failed: BTreeSet<ObjectKey> = BTreeSet::new();
    let mut resync = tokio::time::interval(RESYNC);
    resync.tick().await;
    let mut retry = tokio::time::interval(Duration::from_secs(1));
    loop {
        while let Some(k) = queue.pop_first() {
            if *shutdown.borrow() {
                break;
            }
            if let Err(e) = ctrl.reconcile(&api, &k).await {
                tracing::debug!(controller = ctrl.name(), key = %k, error = %e.message, "reconcile failed; will retry");
                failed.insert(k);
            }
            // pick up events that arrived meanwhile without starving the queue
            while let Ok(ev) = ev_rx.try_recv() {
                match ev {
                    Some(ev) => queue.extend(ctrl.keys(&api, &ev)),
                    None => queue.extend(ctrl.all_keys(&api)),
                }
            }
        }
        let next_timer = ctrl.timers().and_then(Timers::next);
        let timer_changed = async {
            match ctrl.timers() {
                Some(t) => t.changed.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = async {
                match next_timer {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(t) = ctrl.timers() {
                    queue.extend(t.take_due());
                }
            }
            _ = timer_changed => {}
            ev = ev_rx.recv() => match ev {
                Some(Some(ev)) => queue.extend(ctrl.keys(&api, &ev)),
                Some(None) => queue.extend(ctrl.all_keys(&api)),
                None => break,
            },
            _ = resync.tick() => queue.extend(ctrl.all_keys(&api)),
            _ = retry.tick(), if !failed.is_empty() => queue.append(&mut failed),
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
    }
    for f in forwarders {
        f.abort();
    }
}

/// Sets a status condition (`status.conditions[type=ty]`); returns whether anything changed. The
/// transition time changes only when the status does.
pub fn set_condition(obj: &mut Value, ty: &str, status: &str, reason: &str, message: &str) -> bool {
    if !obj.get("status").is_some_and(Value::is_object) {
        obj["status"] = json!({});
    }
    let conds = obj["status"]
        .as_object_mut()
        .expect("object")
        .entry("conditions")
        .or_insert_with(|| json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    let list = conds.as_array_mut().expect("array");
    let now = crate::util::now_rfc3339();
    match list.iter_mut().find(|c| c["type"] == ty) {
        Some(c) => {
            let same = c["status"] == status
                && c.get("reason").and_then(Value::as_str).unwrap_or("") == reason
                && c.get("message").and_then(Value::as_str).unwrap_or("") == message;
            if same {
                return false;
            }
            if c["status"] != status {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!(status);
            set_opt(c, "reason", reason);
            set_opt(c, "message", message);
            true
        }
        None => {
            let mut c = json!({"type": ty, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
            set_opt(&mut c, "reason", reason);
            set_opt(&mut c, "message", message);
            list.push(c);
            true
        }
    }
}

fn set_opt(c: &mut Value, k: &str, v: &str) {
    if v.is_empty() {
        if let Value::Object(m) = c {
            m.remove(k);
        }
    } else {
        c[k] = json!(v);
    }
}

/// Whether a pod is Ready (its Ready condition is True).
pub fn pod_ready(p: &Value) -> bool {
    p.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Whether a pod still counts (not terminating, not finished).
pub fn pod_active(p: &Value) -> bool {
    let phase = p
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    !podnet_apimachinery::object::is_deleting(p) && phase != "Succeeded" && phase != "Failed"
}

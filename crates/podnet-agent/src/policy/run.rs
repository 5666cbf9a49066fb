//! Policy enforcement as a task: watches Pods, Namespaces and NetworkPolicies, batches changes,
//! applies them; a thread beside it reads denied packets from NFLOG into the drop log.
//!
//! Like the service proxy it programs the network namespace of the calling process, with `nft` run
//! on tokio's blocking threads.

use super::drops::{self, DropLog};
use super::model::{self, Key, Labels, PodInfo, Policy};
use super::nflog::Listener;
use super::nft::{Base, DEFAULT_LOG_GROUP, DEFAULT_TABLE, LOG_SNAPLEN};
use super::sync::{SyncError, Syncer};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::HashMap;
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// This node's name: pods with this `nodeName` are the ones it enforces policies for.
    pub node: String,
    /// The nftables table podnet owns (family `inet`).
    pub table: String,
    /// The NFLOG group denied packets are logged to.
    pub log_group: u16,
    /// Where denied packets are written (one JSON object a line); `None`: not logged (the counters
    /// still count).
    pub drop_log: Option<PathBuf>,
    /// Changes arriving within this window go into one transaction.
    pub min_sync_period: Duration,
    /// A refill of the whole table this often repairs hand-made drift.
    pub resync_period: Duration,
    synced: Arc<watch::Sender<u64>>,
}

impl PolicyConfig {
    /// Defaults: table `podnet-policy`, NFLOG group 4011, no drop log, 20 ms batches, a refill every
    /// hour.
    pub fn new(node: impl Into<String>) -> PolicyConfig {
        PolicyConfig {
            node: node.into(),
            table: DEFAULT_TABLE.to_string(),
            log_group: DEFAULT_LOG_GROUP,
            drop_log: None,
            min_sync_period: Duration::from_millis(20),
            resync_period: Duration::from_secs(3600),
            synced: Arc::new(watch::channel(0).0),
        }
    }

    /// Counts successful syncs: 1 after the first (all three lists seen, table programmed).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.synced.subscribe()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("remove table inet {table}: {source}")]
    Remove {
        table: String,
        source: podnet_nft::Error,
    },
    #[error("policy sync thread for table inet {table} failed: {cause}")]
    Worker { table: String, cause: String },
    #[error("watch of {what} ended")]
    WatchEnded { what: &'static str },
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// Removes the policy table and its start-up hold (teardown; every pod is open again); missing
/// tables are fine.
pub fn remove(table: &str) -> Result<(), PolicyError> {
    let mut s = podnet_nft::Script::new();
    for t in [table.to_string(), super::nft::pending_table(table)] {
        s.line(format!("add table inet {t}"));
        s.line(format!("delete table inet {t}"));
    }
    podnet_nft::apply(&s).map_err(|source| PolicyError::Remove {
        table: table.to_string(),
        source,
    })
}

enum Change {
    Pod(Box<watcher::Event<Pod>>),
    Namespace(Box<watcher::Event<Namespace>>),
    Policy(Box<watcher::Event<NetworkPolicy>>),
}

/// The objects of one kind as last seen, with relists: a relist's result replaces what was there,
/// and whatever it no longer holds was deleted.
struct Mirror<K, V> {
    items: HashMap<K, V>,
    relist: Option<HashMap<K, V>>,
    listed: bool,
}

impl<K: Eq + Hash + Clone, V: Clone> Mirror<K, V> {
    fn new() -> Self {
        Mirror {
            items: HashMap::new(),
            relist: None,
            listed: false,
        }
    }

    /// Applies an event; returns the changes (`None`: gone) to hand on.
    fn apply<T>(
        &mut self,
        ev: watcher::Event<T>,
        read: impl Fn(&T) -> Option<(K, Option<V>)>,
    ) -> Vec<(K, Option<V>)> {
        match ev {
            watcher::Event::Init => {
                self.relist = Some(HashMap::new());
                Vec::new()
            }
            watcher::Event::InitApply(o) => {
                if let (Some((k, Some(v))), Some(m)) = (read(&o), self.relist.as_mut()) {
                    m.insert(k, v);
                }
                Vec::new()
            }
            watcher::Event::InitDone => {
                let new = self.relist.take().unwrap_or_default();
                let old = std::mem::replace(&mut self.items, new);
                self.listed = true;
                let mut out: Vec<(K, Option<V>)> = old
                    .into_keys()
                    .filter(|k| !self.items.contains_key(k))
                    .map(|k| (k, None))
                    .collect();
                out.extend(self.items.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
                out
            }
            watcher::Event::Apply(o) => match read(&o) {
                Some((k, Some(v))) => {
                    self.items.insert(k.clone(), v.clone());
                    vec![(k, Some(v))]
                }
                Some((k, None)) => {
                    self.items.remove(&k);
                    vec![(k, None)]
                }
                None => Vec::new(),
            },
            watcher::Event::Delete(o) => match read(&o) {
                Some((k, _)) => {
                    self.items.remove(&k);
                    vec![(k, None)]
                }
                None => Vec::new(),
            },
        }
    }
}

fn read_pod(p: &Pod) -> Option<(Key, Option<PodInfo>)> {
    Some((Key::of(&p.metadata)?, model::pod_info(p)))
}

fn read_namespace(n: &Namespace) -> Option<(String, Option<Labels>)> {
    Some((n.metadata.name.clone()?, Some(model::namespace_labels(n))))
}

fn read_policy(np: &NetworkPolicy) -> Option<(Key, Option<Policy>)> {
    let p = model::policy(np)?;
    Some((p.key.clone(), Some(p)))
}

struct Store {
    pods: Mirror<Key, PodInfo>,
    namespaces: Mirror<String, Labels>,
    policies: Mirror<Key, Policy>,
}

impl Store {
    fn listed(&self) -> bool {
        self.pods.listed && self.namespaces.listed && self.policies.listed
    }

    fn apply(&mut self, change: Change, s: &mut Syncer) {
        match change {
            Change::Pod(ev) => {
                for (k, v) in self.pods.apply(*ev, read_pod) {
                    s.set_pod(k, v);
                }
            }
            Change::Namespace(ev) => {
                for (k, v) in self.namespaces.apply(*ev, read_namespace) {
                    s.set_namespace(&k, v);
                }
            }
            Change::Policy(ev) => {
                for (k, v) in self.policies.apply(*ev, read_policy) {
                    if let Some(p) = &v
                        && !p.problems.is_empty()
                    {
                        eprintln!(
                            "podnet policy: NetworkPolicy {k}: {}",
                            p.problems.join("; ")
                        );
                    }
                    s.set_policy(k, v);
                }
            }
        }
    }
}

fn spawn_watch<T, F>(
    api: Api<T>,
    tx: mpsc::UnboundedSender<Change>,
    what: &'static str,
    wrap: F,
) -> tokio::task::JoinHandle<()>
where
    T: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    F: Fn(watcher::Event<T>) -> Change + Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(ev) => {
                    if tx.send(wrap(ev)).is_err() {
                        return;
                    }
                }
                Err(e) => eprintln!("podnet policy: watch {what}: {e}"),
            }
        }
    })
}

/// Runs policy enforcement until the watches end (they retry with back-off, so in practice until
/// the task is dropped or aborted). The first sync happens once all three lists are in.
pub async fn run(client: kube::Client, cfg: PolicyConfig) -> Result<(), PolicyError> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Change>();
    let watches = [
        spawn_watch(Api::<Pod>::all(client.clone()), tx.clone(), "pods", |e| {
            Change::Pod(Box::new(e))
        }),
        spawn_watch(
            Api::<Namespace>::all(client.clone()),
            tx.clone(),
            "namespaces",
            |e| Change::Namespace(Box::new(e)),
        ),
        spawn_watch(
            Api::<NetworkPolicy>::all(client),
            tx,
            "networkpolicies",
            |e| Change::Policy(Box::new(e)),
        ),
    ];
    // The logger stops when this future ends or is dropped (an aborted task included), so a
    // restarted run can bind the NFLOG group again.
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    if let Some(path) = cfg.drop_log.clone() {
        start_drop_logger(
            cfg.log_group,
            DropLog::new(path, drops::DEFAULT_MAX_BYTES),
            stop.0.clone(),
        );
    }
    let result = policy_loop(&mut rx, &cfg).await;
    for w in watches {
        w.abort();
    }
    drop(stop);
    result
}

async fn policy_loop(
    rx: &mut mpsc::UnboundedReceiver<Change>,
    cfg: &PolicyConfig,
) -> Result<(), PolicyError> {
    let mut base = Base::new(cfg.table.clone());
    base.log_group = cfg.log_group;
    let mut syncer = Some(Syncer::new(base, cfg.node.clone()));
    let mut store = Store {
        pods: Mirror::new(),
        namespaces: Mirror::new(),
        policies: Mirror::new(),
    };
    let mut next_resync = Instant::now() + cfg.resync_period;
    let mut retry_at: Option<Instant> = None;
    loop {
        let wake = retry_at.map_or(next_resync, |r| r.min(next_resync));
        {
            let s = syncer.as_mut().expect("syncer is home between syncs");
            tokio::select! {
                change = rx.recv() => match change {
                    Some(c) => store.apply(c, s),
                    None => return Err(PolicyError::WatchEnded { what: "pods, namespaces and networkpolicies" }),
                },
                _ = tokio::time::sleep_until(wake) => {}
            }
            if !store.listed() {
                continue;
            }
            // Batch: whatever else arrives within the window goes into the same transaction.
            let window_end = Instant::now() + cfg.min_sync_period;
            while let Ok(Some(c)) = tokio::time::timeout_at(window_end, rx.recv()).await {
                store.apply(c, s);
            }
            let now = Instant::now();
            if now >= next_resync {
                s.request_full();
                next_resync = now + cfg.resync_period;
            }
            if !s.pending() || retry_at.is_some_and(|r| now < r) {
                continue;
            }
        }
        let mut owned = syncer.take().expect("syncer is home between syncs");
        let (back, result) = tokio::task::spawn_blocking(move || {
            let result = owned.sync();
            (owned, result)
        })
        .await
        .map_err(|e| PolicyError::Worker {
            table: cfg.table.clone(),
            cause: e.to_string(),
        })?;
        syncer = Some(back);
        match result {
            Ok(_) => {
                retry_at = None;
                cfg.synced.send_modify(|n| *n += 1);
            }
            Err(e) => {
                eprintln!("podnet policy: {e}");
                retry_at = Some(Instant::now() + Duration::from_secs(1));
            }
        }
    }
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// How long a new logger waits for the NFLOG group to be let go by the previous one (it checks its
/// stop flag every half second).
const BIND_PATIENCE: Duration = Duration::from_secs(3);

/// Reads denied packets from NFLOG on a thread of its own (in the process's network namespace)
/// and appends them to the drop log, until `stop` is set. A group another process holds, or a
/// kernel without nfnetlink_log, leaves the drops counted but not logged, and says so.
fn start_drop_logger(group: u16, log: DropLog, stop: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new()
        .name("policy-drops".into())
        .spawn(move || {
            let deadline = std::time::Instant::now() + BIND_PATIENCE;
            let listener = loop {
                match Listener::bind(group, LOG_SNAPLEN) {
                    Ok(l) => break l,
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY)
                            && std::time::Instant::now() < deadline
                            && !stop.load(Ordering::Relaxed) =>
                    {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(e) => {
                        eprintln!(
                            "podnet policy: NFLOG group {group}: {e}; denied packets are counted, not logged"
                        );
                        return;
                    }
                }
            };
            if let Err(e) = listener.set_timeout(Duration::from_millis(500)) {
                eprintln!("podnet policy: NFLOG group {group}: {e}");
            }
            let mut buf = vec![0u8; 64 * 1024];
            let mut failures = 0u32;
            while !stop.load(Ordering::Relaxed) {
                match listener.recv(&mut buf) {
                    Ok(batch) => {
                        let now = SystemTime::now()
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs());
                        let found: Vec<drops::Drop> =
                            batch.iter().filter_map(|l| drops::decode(l, now)).collect();
                        if let Err(e) = log.append(&found) {
                            eprintln!(
                                "podnet policy: write drop log {}: {e}",
                                log.path().display()
                            );
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => {
                        failures += 1;
                        eprintln!("podnet policy: NFLOG group {group}: {e}");
                        if failures > 10 {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        });
    if let Err(e) = spawned {
        eprintln!("podnet policy: start the drop logger: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn ns(name: &str, team: &str) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([("team".to_string(), team.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn relists_report_what_vanished_and_what_is_there() {
        let mut m: Mirror<String, Labels> = Mirror::new();
        m.apply(watcher::Event::Init, read_namespace);
        m.apply(watcher::Event::InitApply(ns("a", "red")), read_namespace);
        m.apply(watcher::Event::InitApply(ns("b", "red")), read_namespace);
        let first = m.apply(watcher::Event::InitDone, read_namespace);
        assert_eq!(first.len(), 2);
        assert!(m.listed);
        m.apply(watcher::Event::Init, read_namespace);
        m.apply(watcher::Event::InitApply(ns("b", "blue")), read_namespace);
        let mut second = m.apply(watcher::Event::InitDone, read_namespace);
        second.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(second[0], ("a".to_string(), None));
        assert_eq!(second[1].0, "b");
        assert_eq!(second[1].1.as_ref().unwrap()["team"], "blue");
        let gone = m.apply(watcher::Event::Delete(ns("b", "blue")), read_namespace);
        assert_eq!(gone, vec![("b".to_string(), None)]);
        assert!(m.items.is_empty());
    }

    #[test]
    fn a_pod_that_stops_taking_part_is_removed() {
        let mut m: Mirror<Key, PodInfo> = Mirror::new();
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "x", "name": "a"},
            "spec": {"nodeName": "n1", "containers": []},
            "status": {"phase": "Running", "podIP": "10.0.0.1"},
        }))
        .unwrap();
        assert_eq!(
            m.apply(watcher::Event::Apply(pod.clone()), read_pod).len(),
            1
        );
        pod.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let out = m.apply(watcher::Event::Apply(pod), read_pod);
        assert_eq!(out, vec![(Key::new("x", "a"), None)]);
        assert!(m.items.is_empty());
    }
}

//! The proxy as a task: watches Services and EndpointSlices, batches changes, applies them.
//!
//! It programs the network namespace of the calling process (the lab runs the node agent inside the
//! node's namespace; on a real cluster it runs in the host's): `nft` and `conntrack` run on tokio's
//! blocking threads, which belong to the process's namespace.

use super::conntrack;
use super::model::{self, ServiceKey};
use super::nft::{Base, DEFAULT_MASQUERADE_MARK, DEFAULT_TABLE};
use super::sync::{SyncError, Syncer};
use futures_util::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// This node's name: endpoints with this `nodeName` are local.
    pub node: String,
    /// Pod addresses (see [`Base::cluster_cidrs`]).
    pub cluster_cidrs: Vec<Ipv4Net>,
    /// The nftables table podnet owns (family `ip`).
    pub table: String,
    /// Changes arriving within this window go into one transaction.
    pub min_sync_period: Duration,
    /// A full rebuild this often repairs hand-made drift.
    pub resync_period: Duration,
    /// The mark bit meaning "masquerade".
    pub masquerade_mark: u32,
    synced: Arc<watch::Sender<u64>>,
}

impl ProxyConfig {
    /// Defaults: table `podnet-services`, 20 ms batches, a full resync every hour, mark 0x4000.
    pub fn new(node: impl Into<String>, cluster_cidrs: Vec<Ipv4Net>) -> ProxyConfig {
        ProxyConfig {
            node: node.into(),
            cluster_cidrs,
            table: DEFAULT_TABLE.to_string(),
            min_sync_period: Duration::from_millis(20),
            resync_period: Duration::from_secs(3600),
            masquerade_mark: DEFAULT_MASQUERADE_MARK,
            synced: Arc::new(watch::channel(0).0),
        }
    }

    /// Counts successful syncs: becomes 1 after the first one (both lists seen, table programmed).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.synced.subscribe()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("remove table ip {table}: {source}")]
    Remove {
        table: String,
        source: podnet_nft::Error,
    },
    #[error("service proxy sync thread for table ip {table} failed: {cause}")]
    Worker { table: String, cause: String },
    #[error("watch of {what} ended")]
    WatchEnded { what: &'static str },
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// Removes the proxy's table (teardown); a missing table is fine.
pub fn remove(table: &str) -> Result<(), ProxyError> {
    let mut s = podnet_nft::Script::new();
    s.line(format!("add table ip {table}"));
    s.line(format!("delete table ip {table}"));
    podnet_nft::apply(&s).map_err(|source| ProxyError::Remove {
        table: table.to_string(),
        source,
    })
}

enum Change {
    Service(Box<watcher::Event<Service>>),
    Slice(Box<watcher::Event<EndpointSlice>>),
}

/// What the watches have shown so far.
#[derive(Default)]
struct Store {
    services: HashMap<ServiceKey, Service>,
    /// EndpointSlices by the Service they name, then by slice name.
    slices: HashMap<ServiceKey, HashMap<String, EndpointSlice>>,
    /// Relists in progress (between `Init` and `InitDone`).
    relist_services: Option<HashMap<ServiceKey, Service>>,
    relist_slices: Option<HashMap<ServiceKey, HashMap<String, EndpointSlice>>>,
    services_listed: bool,
    slices_listed: bool,
    dirty: BTreeSet<ServiceKey>,
}

fn service_key(s: &Service) -> Option<ServiceKey> {
    Some(ServiceKey::new(
        s.metadata.namespace.clone()?,
        s.metadata.name.clone()?,
    ))
}

fn slice_key(s: &EndpointSlice) -> Option<(ServiceKey, String)> {
    let svc = s.metadata.labels.as_ref()?.get(model::SERVICE_NAME_LABEL)?;
    Some((
        ServiceKey::new(s.metadata.namespace.clone()?, svc.clone()),
        s.metadata.name.clone()?,
    ))
}

impl Store {
    fn apply(&mut self, change: Change) {
        match change {
            Change::Service(ev) => match *ev {
                watcher::Event::Init => self.relist_services = Some(HashMap::new()),
                watcher::Event::InitApply(s) => {
                    if let (Some(k), Some(m)) = (service_key(&s), self.relist_services.as_mut()) {
                        m.insert(k, s);
                    }
                }
                watcher::Event::InitDone => {
                    let new = self.relist_services.take().unwrap_or_default();
                    let old = std::mem::replace(&mut self.services, new);
                    self.dirty.extend(old.into_keys());
                    self.dirty.extend(self.services.keys().cloned());
                    self.services_listed = true;
                }
                watcher::Event::Apply(s) => {
                    if let Some(k) = service_key(&s) {
                        self.services.insert(k.clone(), s);
                        self.dirty.insert(k);
                    }
                }
                watcher::Event::Delete(s) => {
                    if let Some(k) = service_key(&s) {
                        self.services.remove(&k);
                        self.dirty.insert(k);
                    }
                }
            },
            Change::Slice(ev) => match *ev {
                watcher::Event::Init => self.relist_slices = Some(HashMap::new()),
                watcher::Event::InitApply(s) => {
                    if let (Some((k, n)), Some(m)) = (slice_key(&s), self.relist_slices.as_mut()) {
                        m.entry(k).or_default().insert(n, s);
                    }
                }
                watcher::Event::InitDone => {
                    let new = self.relist_slices.take().unwrap_or_default();
                    let old = std::mem::replace(&mut self.slices, new);
                    self.dirty.extend(old.into_keys());
                    self.dirty.extend(self.slices.keys().cloned());
                    self.slices_listed = true;
                }
                watcher::Event::Apply(s) => {
                    let key = slice_key(&s);
                    // A slice moved to another Service of its namespace, or whose Service label
                    // went, leaves the one it fed. Slice names are unique per namespace only.
                    if let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name) {
                        self.forget_slice(ns, name, key.as_ref().map(|(k, _)| k));
                    }
                    if let Some((k, n)) = key {
                        self.slices.entry(k.clone()).or_default().insert(n, s);
                        self.dirty.insert(k);
                    }
                }
                watcher::Event::Delete(s) => {
                    if let Some((k, n)) = slice_key(&s) {
                        if let Some(m) = self.slices.get_mut(&k) {
                            m.remove(&n);
                            if m.is_empty() {
                                self.slices.remove(&k);
                            }
                        }
                        self.dirty.insert(k);
                    }
                }
            },
        }
    }

    /// Removes slice `ns/name` from every Service of `ns` but `keep`.
    fn forget_slice(&mut self, ns: &str, name: &str, keep: Option<&ServiceKey>) {
        let mut emptied = Vec::new();
        for (other, slices) in self.slices.iter_mut() {
            if other.namespace == ns && Some(other) != keep && slices.remove(name).is_some() {
                self.dirty.insert(other.clone());
                if slices.is_empty() {
                    emptied.push(other.clone());
                }
            }
        }
        for k in emptied {
            self.slices.remove(&k);
        }
    }

    /// Hands the dirty Services' desired states to the syncer.
    fn feed(&mut self, syncer: &mut Syncer, node: &str) {
        for key in std::mem::take(&mut self.dirty) {
            let state = self.services.get(&key).and_then(|svc| {
                let slices: Vec<&EndpointSlice> = self
                    .slices
                    .get(&key)
                    .map(|m| m.values().collect())
                    .unwrap_or_default();
                model::service_state(svc, &slices, node).ok()
            });
            syncer.set(key, state);
        }
    }
}

/// Runs the proxy until the watches end (they retry with back-off on errors, so in practice until the
/// task is dropped or aborted). The first sync happens once both lists are in.
pub async fn run(client: kube::Client, cfg: ProxyConfig) -> Result<(), ProxyError> {
    if let Some(warning) = bridge_netfilter_warning(
        std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables").ok(),
    ) {
        eprintln!("podnet service proxy: {warning}");
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Change>();
    let services: Api<Service> = Api::all(client.clone());
    let slices: Api<EndpointSlice> = Api::all(client);
    let watch_services = {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut stream = watcher(services, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(ev) => {
                        if tx.send(Change::Service(Box::new(ev))).is_err() {
                            return;
                        }
                    }
                    Err(e) => eprintln!("podnet service proxy: watch services: {e}"),
                }
            }
        })
    };
    let watch_slices = tokio::spawn(async move {
        let mut stream = watcher(slices, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(ev) => {
                    if tx.send(Change::Slice(Box::new(ev))).is_err() {
                        return;
                    }
                }
                Err(e) => eprintln!("podnet service proxy: watch endpointslices: {e}"),
            }
        }
    });
    let result = proxy_loop(&mut rx, &cfg).await;
    watch_services.abort();
    watch_slices.abort();
    result
}

async fn proxy_loop(
    rx: &mut mpsc::UnboundedReceiver<Change>,
    cfg: &ProxyConfig,
) -> Result<(), ProxyError> {
    let mut base = Base::new(cfg.table.clone(), cfg.cluster_cidrs.clone());
    base.masquerade_mark = cfg.masquerade_mark;
    let mut syncer = Some(Syncer::new(base));
    let mut store = Store::default();
    let mut next_resync = Instant::now() + cfg.resync_period;
    let mut retry_at: Option<Instant> = None;
    loop {
        // Wait for a change, a resync or a retry.
        let wake = retry_at.map_or(next_resync, |r| r.min(next_resync));
        tokio::select! {
            change = rx.recv() => match change {
                Some(c) => store.apply(c),
                None => return Err(ProxyError::WatchEnded { what: "services and endpointslices" }),
            },
            _ = tokio::time::sleep_until(wake) => {}
        }
        if !(store.services_listed && store.slices_listed) {
            continue;
        }
        // Batch: whatever else arrives within the window goes into the same transaction.
        let window_end = Instant::now() + cfg.min_sync_period;
        while let Ok(Some(c)) = tokio::time::timeout_at(window_end, rx.recv()).await {
            store.apply(c);
        }
        let s = syncer.as_mut().expect("syncer is home between syncs");
        store.feed(s, &cfg.node);
        let now = Instant::now();
        if now >= next_resync {
            s.request_full();
            next_resync = now + cfg.resync_period;
        }
        if !s.pending() || retry_at.is_some_and(|r| now < r) {
            continue;
        }
        let mut owned = syncer.take().expect("syncer is home between syncs");
        let (back, result) = tokio::task::spawn_blocking(move || {
            let result = owned.sync();
            if let Ok(report) = &result {
                for e in conntrack::delete(&report.stale_flows) {
                    eprintln!("podnet service proxy: stale UDP flows: {e}");
                }
            }
            (owned, result)
        })
        .await
        .map_err(|e| ProxyError::Worker {
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
                // The syncer now wants a full rebuild; try again shortly.
                eprintln!("podnet service proxy: {e}");
                retry_at = Some(Instant::now() + Duration::from_secs(1));
            }
        }
    }
}

/// What kube-proxy warns about too: without bridge netfilter, replies of a pod to a client on its own
/// bridge skip the reverse NAT of a Service's DNAT (`value` is the sysctl's text, `None` when absent).
fn bridge_netfilter_warning(value: Option<String>) -> Option<String> {
    match value.as_deref().map(str::trim) {
        Some("1") => None,
        Some(_) => Some("net.bridge.bridge-nf-call-iptables is 0 in this network namespace: Services reached from a pod on the same bridge as their endpoint will fail; set it to 1".into()),
        None => Some("net.bridge.bridge-nf-call-iptables is missing (br_netfilter not loaded): Services reached from a pod on the same bridge as their endpoint will fail; load br_netfilter and set it to 1".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_netfilter_off_or_missing_is_warned_about() {
        assert_eq!(bridge_netfilter_warning(Some("1\n".into())), None);
        assert!(
            bridge_netfilter_warning(Some("0\n".into()))
                .unwrap()
                .contains("is 0")
        );
        assert!(
            bridge_netfilter_warning(None)
                .unwrap()
                .contains("br_netfilter")
        );
    }
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn slice(ns: &str, name: &str, svc: &str) -> EndpointSlice {
        EndpointSlice {
            address_type: "IPv4".into(),
            endpoints: vec![],
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                labels: Some([(model::SERVICE_NAME_LABEL.to_string(), svc.to_string())].into()),
                ..Default::default()
            },
            ports: None,
        }
    }

    #[test]
    fn relists_forget_vanished_objects_and_mark_them_dirty() {
        let mut st = Store::default();
        st.apply(Change::Slice(Box::new(watcher::Event::Init)));
        st.apply(Change::Slice(Box::new(watcher::Event::InitApply(slice(
            "a", "web-1", "web",
        )))));
        st.apply(Change::Slice(Box::new(watcher::Event::InitDone)));
        assert!(st.slices_listed);
        assert_eq!(st.slices[&ServiceKey::new("a", "web")].len(), 1);
        st.dirty.clear();
        st.apply(Change::Slice(Box::new(watcher::Event::Init)));
        st.apply(Change::Slice(Box::new(watcher::Event::InitDone)));
        assert!(st.slices.is_empty());
        assert!(st.dirty.contains(&ServiceKey::new("a", "web")));
    }

    #[test]
    fn a_slice_relabelled_to_another_service_leaves_the_first() {
        let mut st = Store::default();
        st.apply(Change::Slice(Box::new(watcher::Event::Apply(slice(
            "a", "s1", "web",
        )))));
        st.apply(Change::Slice(Box::new(watcher::Event::Apply(slice(
            "a", "s1", "api",
        )))));
        assert!(!st.slices.contains_key(&ServiceKey::new("a", "web")));
        assert_eq!(st.slices[&ServiceKey::new("a", "api")].len(), 1);
    }

    #[test]
    fn slices_of_one_name_in_two_namespaces_are_two_slices() {
        let mut st = Store::default();
        for ns in ["default", "b"] {
            st.apply(Change::Slice(Box::new(watcher::Event::Apply(slice(
                ns, "manual", "ext",
            )))));
        }
        assert_eq!(st.slices[&ServiceKey::new("default", "ext")].len(), 1);
        assert_eq!(st.slices[&ServiceKey::new("b", "ext")].len(), 1);
    }

    #[test]
    fn a_slice_that_loses_its_service_label_leaves_the_service() {
        let mut st = Store::default();
        st.apply(Change::Slice(Box::new(watcher::Event::Apply(slice(
            "a", "s1", "web",
        )))));
        st.dirty.clear();
        let mut unlabelled = slice("a", "s1", "web");
        unlabelled.metadata.labels = None;
        st.apply(Change::Slice(Box::new(watcher::Event::Apply(unlabelled))));
        assert!(!st.slices.contains_key(&ServiceKey::new("a", "web")));
        assert!(st.dirty.contains(&ServiceKey::new("a", "web")));
    }
}

//! The pod lifecycle on a node: one worker per pod bound to the node, each syncing its pod to the
//! spec (kubelet's pod workers and SyncPod): sandbox and network, images, volumes, init containers
//! then containers, restarts with back-off, probes, status and events; and on deletion the graceful
//! stop, network teardown and the final delete.
//!
//! A sync is blocking work (runc, mounts, CNI plugins): it runs on a blocking thread and reaches the
//! API through the runtime handle. Everything about a pod's containers is read back from the runtime
//! on every sync, so a restarted agent adopts what runs and restarts nothing healthy.

use crate::backoff::Backoff;
use crate::cni::{Attachment, Cni, NetworkList};
use crate::config::AgentConfig;
use crate::events::{Recorder, Type};
use crate::images::{ImageFailure, Images};
use crate::plan::{self, Action, Observed, ObservedContainer, ObservedState};
use crate::probe::{self, Check, Kind, Tracker, Verdict};
use crate::process::{self, EnvSources, ImageProcess, RuntimeFacts, ServiceEnv};
use crate::status::{self, ContainerFacts, PodFacts, State, Terminated};
use crate::volume::{self, Prepared, VolumeSources};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Pod, PodStatus, Secret, Service, ServiceAccount,
};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use podnet_runtime::{
    BindMount, ContainerSpec, ContainerState as RtState, ContainerStatus as RtContainer, EtcFiles,
    ExecSpec, PodRef, Resources, Runtime, SandboxSpec, SandboxState, SandboxStatus, Security, User,
};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How often a pod is synced with nothing happening (probes have their own timers).
const RESYNC: Duration = Duration::from_secs(10);
/// Kept instances per container: the running one and the previous (for `logs --previous`).
const KEEP_INSTANCES: usize = 2;
/// CRI log rotation, kubelet's defaults.
const LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;
const LOG_MAX_FILES: u32 = 5;
/// The container label naming its root filesystem in the image store.
const ROOTFS_KEY_LABEL: &str = "io.podnet.rootfs.key";
/// The most of an image's `/etc/passwd` or `/etc/group` read to resolve a container's user.
const ETC_FILE_LIMIT: u64 = 4 << 20;

/// What a container's probes say.
#[derive(Default)]
struct ProbeSet {
    startup: Option<Tracker>,
    readiness: Option<Tracker>,
    liveness: Option<Tracker>,
}

#[derive(Default)]
struct Memory {
    crash: Backoff,
    /// Container instance ids whose exit was already counted for the back-off.
    exits_seen: HashSet<String>,
    probes: HashMap<String, ProbeSet>,
    /// (pod uid, audience, expiration) to (token, when to renew).
    tokens: HashMap<(String, String, i64), (String, Instant)>,
    /// The status this agent last wrote per pod uid (see `status::own_write_stands`).
    last_status: HashMap<String, status::Posted>,
    /// The pod's network, from its CNI result: pod uid to addresses.
    pod_ips: HashMap<String, Vec<String>>,
    /// Pods that finished (Succeeded or Failed) on this node: never run again.
    finished: HashSet<String>,
    /// Containers left Created by an earlier sync that this agent tried to start: once each, so a
    /// container whose start keeps failing is not retried every sync.
    resumed: HashSet<String>,
}

pub struct Kubelet {
    pub cfg: AgentConfig,
    pub client: kube::Client,
    pub handle: tokio::runtime::Handle,
    pub runtime: Runtime,
    pub images: Images,
    pub recorder: Recorder,
    cni: Cni,
    memory: Mutex<Memory>,
}

/// Why a container is not running, for its status: reason and message.
type Waiting = (String, Option<String>);

/// An event about a container, to record later: warning, reason, message.
type ContainerEvent = (bool, String, String);

/// A container made (`runc create`) and not started yet.
struct Made {
    id: String,
    container: Container,
    /// The container's earlier instances, oldest first.
    history: Vec<RtContainer>,
}

/// What one sync decided about the pod's worker.
pub enum Next {
    /// Sync again after this long (or sooner, when the pod changes).
    After(Duration),
    /// The pod is gone from the node: its worker ends.
    Done,
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn pod_ref(pod: &Pod) -> PodRef {
    PodRef {
        namespace: pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: uid(pod),
    }
}

fn spec_containers(pod: &Pod) -> Vec<(Container, bool)> {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.init_containers.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c, true))
        .chain(
            spec.map(|s| s.containers.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|c| (c, false)),
        )
        .collect()
}

/// The pod's ephemeral containers (`kubectl debug`) as containers, each with the container whose
/// processes it is to see (`targetContainerName`).
fn ephemeral_containers(pod: &Pod) -> Vec<(Container, Option<String>)> {
    pod.spec
        .as_ref()
        .and_then(|s| s.ephemeral_containers.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let mut v = serde_json::to_value(e).ok()?;
            v.as_object_mut()?.remove("targetContainerName");
            Some((
                serde_json::from_value(v).ok()?,
                e.target_container_name.clone(),
            ))
        })
        .collect()
}

/// A container of the pod by name: init, regular or ephemeral.
fn container_named(pod: &Pod, name: &str) -> Option<Container> {
    spec_containers(pod)
        .into_iter()
        .map(|(c, _)| c)
        .chain(ephemeral_containers(pod).into_iter().map(|(c, _)| c))
        .find(|c| c.name == name)
}

fn now_ns() -> i64 {
    jiff::Timestamp::now().as_nanosecond() as i64
}

fn ts(ns: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_nanosecond(ns as i128).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

impl Kubelet {
    pub fn new(
        cfg: AgentConfig,
        client: kube::Client,
        handle: tokio::runtime::Handle,
        runtime: Runtime,
        images: Images,
    ) -> Kubelet {
        let recorder = Recorder::start(client.clone(), &cfg.node, &handle);
        let cni = Cni {
            bin_dirs: cfg.cni_bin_dirs.clone(),
            cache_dir: cfg.cni_cache_dir(),
        };
        Kubelet {
            cfg,
            client,
            handle,
            runtime,
            images,
            recorder,
            cni,
            memory: Mutex::new(Memory::default()),
        }
    }

    fn mem(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().expect("not poisoned")
    }

    fn event(&self, pod: &Pod, container: Option<&str>, warning: bool, reason: &str, msg: &str) {
        let kind = if warning { Type::Warning } else { Type::Normal };
        self.recorder.pod(pod, container, kind, reason, msg);
    }

    fn log_dir(&self, pod: &Pod) -> PathBuf {
        let r = pod_ref(pod);
        self.cfg
            .logs_dir()
            .join(format!("{}_{}_{}", r.namespace, r.name, r.uid))
    }

    fn sandboxes_of(&self, uid: &str) -> Vec<SandboxStatus> {
        let mut list: Vec<SandboxStatus> = self
            .runtime
            .list_sandboxes()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.record.pod.uid == uid)
            .collect();
        list.sort_by_key(|s| s.record.attempt);
        list
    }

    fn containers_of(&self, uid: &str) -> Vec<RtContainer> {
        let mut list: Vec<RtContainer> = self.runtime.pod_containers(uid).unwrap_or_default();
        list.sort_by_key(|c| c.record.spec.attempt);
        list
    }

    /// One sync of `pod` (blocking). `pod` is `None` when the pod is gone from the API: everything of
    /// `uid` is removed.
    pub fn sync(&self, uid: &str, pod: Option<&Pod>) -> Next {
        let Some(pod) = pod else {
            self.teardown(uid, None, Duration::from_secs(2));
            return Next::Done;
        };
        if pod.metadata.deletion_timestamp.is_some() {
            let grace = pod
                .metadata
                .deletion_grace_period_seconds
                .unwrap_or(30)
                .max(0) as u64;
            self.teardown(uid, Some(pod), Duration::from_secs(grace));
            // The final delete, as kubelet does once everything is stopped.
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod_ref(pod).namespace);
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(uid.to_string()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            if let Err(e) = self.handle.block_on(api.delete(&pod_ref(pod).name, &dp))
                && !matches!(&e, kube::Error::Api(s) if s.code == 404 || s.code == 409)
            {
                eprintln!("delete pod {}: {e}", pod_key(pod));
                return Next::After(Duration::from_secs(1));
            }
            return Next::Done;
        }
        match self.sync_running(pod) {
            Ok(next) => next,
            Err(e) => {
                eprintln!("sync pod {}: {e}", pod_key(pod));
                Next::After(Duration::from_secs(2))
            }
        }
    }

    fn observe(&self, pod: &Pod) -> (Observed, Option<SandboxStatus>, Vec<RtContainer>) {
        let uid = uid(pod);
        let sandboxes = self.sandboxes_of(&uid);
        let current = sandboxes.last().cloned();
        let containers = self.containers_of(&uid);
        let mut newest: BTreeMap<String, &RtContainer> = BTreeMap::new();
        for c in &containers {
            // Only containers of the current sandbox count; those of an old one are history.
            if current
                .as_ref()
                .is_some_and(|s| s.record.id == c.record.sandbox_id)
            {
                newest.insert(c.name().to_string(), c);
            }
        }
        let mem = self.mem();
        let unhealthy = newest
            .values()
            .filter(|c| {
                mem.probes.get(c.id()).is_some_and(|p| {
                    p.liveness
                        .as_ref()
                        .is_some_and(|t| t.verdict == Verdict::Failure)
                        || p.startup
                            .as_ref()
                            .is_some_and(|t| t.verdict == Verdict::Failure)
                })
            })
            .map(|c| c.name().to_string())
            .collect();
        drop(mem);
        let observed = Observed {
            sandbox_ready: current
                .as_ref()
                .is_some_and(|s| s.state == SandboxState::Ready),
            sandbox_exists: current.is_some(),
            containers: newest
                .values()
                .map(|c| ObservedContainer {
                    name: c.name().to_string(),
                    id: c.id().to_string(),
                    attempt: c.record.spec.attempt,
                    image: c.record.spec.image.clone(),
                    state: match c.state {
                        RtState::Created => ObservedState::Created,
                        RtState::Running => ObservedState::Running,
                        RtState::Exited | RtState::Unknown => ObservedState::Exited {
                            code: c.exit.as_ref().map_or(255, |e| e.exit_code),
                        },
                    },
                })
                .collect(),
            unhealthy,
        };
        (observed, current, containers)
    }

    fn sync_running(&self, pod: &Pod) -> Result<Next, String> {
        let uid = uid(pod);
        // A finished pod is never run again and its status is final (kubelet's terminal pods): its
        // containers are gone, which must not read as "not started yet". The API's phase covers an
        // agent restart, the memory a status not yet seen back through the watch.
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded") | Some("Failed")) || self.mem().finished.contains(&uid)
        {
            self.release_finished(pod);
            return Ok(Next::After(RESYNC));
        }
        let (observed, mut sandbox, containers) =
            crate::trace::time("observe", || self.observe(pod));
        if plan::terminal(pod, &observed) {
            // The final status from what ran, then the sandbox and the address go; the containers
            // stay (stopped) until the pod is deleted, so `kubectl logs` still shows their output.
            let facts = self.facts(pod, sandbox.as_ref(), &containers, &HashMap::new(), false);
            self.post_status(pod, &facts);
            self.mem().finished.insert(uid.clone());
            self.release_finished(pod);
            return Ok(Next::After(RESYNC));
        }
        let actions = plan::next_actions(pod, &observed);
        if !actions.is_empty() {
            crate::trace::worthy();
        }
        // Per-container reasons for not starting, for the status.
        let mut waiting: HashMap<String, (String, Option<String>)> = HashMap::new();
        let mut sandbox_failed = false;
        let mut prepared: Option<Vec<Prepared>> = None;
        let mut actions = actions.into_iter().peekable();
        while let Some(action) = actions.next() {
            match action {
                Action::KillPod { .. } => {
                    if observed.sandbox_exists && !observed.sandbox_ready {
                        self.event(
                            pod,
                            None,
                            false,
                            "SandboxChanged",
                            "Pod sandbox changed, it will be killed and re-created.",
                        );
                    }
                    let grace = pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds)
                        .unwrap_or(30)
                        .max(0) as u64;
                    self.stop_pod(&uid, Some(pod), Duration::from_secs(grace), false);
                    sandbox = None;
                }
                Action::CreateSandbox => match self.create_sandbox(pod) {
                    Ok(s) => {
                        // The address goes out before any container starts: the node's network
                        // agent (NetworkPolicy) learns it from the API and programs the pod while
                        // its containers are made, so their first packets are not held back.
                        let (_, now, containers) =
                            crate::trace::time("observe", || self.observe(pod));
                        let facts = self.facts(pod, now.as_ref(), &containers, &waiting, false);
                        crate::trace::time("status.address", || self.post_status(pod, &facts));
                        sandbox = Some(s);
                    }
                    Err(e) => {
                        self.event(
                            pod,
                            None,
                            true,
                            "FailedCreatePodSandBox",
                            &format!("Failed to create pod sandbox: {e}"),
                        );
                        sandbox_failed = true;
                        break;
                    }
                },
                Action::Start { name, init } => {
                    let Some(sb) = sandbox.as_ref() else { break };
                    if prepared.is_none() {
                        match crate::trace::time("volumes", || self.volumes(pod)) {
                            Ok(p) => prepared = Some(p),
                            Err(e) => {
                                self.event(pod, None, true, "FailedMount", &e);
                                for (c, _) in spec_containers(pod) {
                                    waiting
                                        .insert(c.name.clone(), ("ContainerCreating".into(), None));
                                }
                                break;
                            }
                        }
                    }
                    let vols = prepared.as_deref().unwrap_or_default();
                    if init {
                        if let Err((reason, message)) = self.start_container(pod, sb, &name, vols) {
                            waiting.insert(name.clone(), (reason, message));
                        }
                        // Init containers run one at a time: the next sync goes on.
                        break;
                    }
                    // The regular containers to start now, in the spec's order.
                    let mut batch = vec![name];
                    while let Some(Action::Start { name, init: false }) = actions.peek() {
                        batch.push(name.clone());
                        actions.next();
                    }
                    for (name, e) in self.start_containers(pod, sb, &batch, vols) {
                        waiting.insert(name, e);
                    }
                }
                Action::StartCreated { name, id } => {
                    if !self.mem().resumed.insert(id.clone()) {
                        continue;
                    }
                    if let Err(e) = self.start_created(pod, &name, &id) {
                        waiting.insert(name, e);
                    }
                }
                Action::Kill { name, id, reason } => {
                    self.event(pod, Some(&name), false, "Killing", &reason);
                    let grace = pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds)
                        .unwrap_or(30)
                        .max(0) as u64;
                    self.stop_container(pod, &id, &name, Duration::from_secs(grace));
                    self.mem().probes.remove(&id);
                }
            }
        }
        // Projected volumes follow their sources (a changed ConfigMap or Secret, a token near its
        // end), as kubelet's periodic volume sync does; unchanged content is left alone.
        if prepared.is_none()
            && observed.sandbox_ready
            && let Err(e) = self.volumes(pod)
        {
            eprintln!("refresh the volumes of pod {}: {e}", pod_key(pod));
        }
        crate::trace::time("probes", || self.run_probes(pod));
        let (_, sandbox, containers) = crate::trace::time("observe", || self.observe(pod));
        let facts = self.facts(pod, sandbox.as_ref(), &containers, &waiting, sandbox_failed);
        crate::trace::time("status", || self.post_status(pod, &facts));
        // A pod that finished keeps its status; its resources go (kubelet kills a terminal pod's
        // sandbox to free its address).
        let next = self.next_probe_due(pod).unwrap_or(RESYNC).min(RESYNC);
        Ok(Next::After(next.max(Duration::from_millis(200))))
    }

    fn grace_of(pod: &Pod) -> Duration {
        Duration::from_secs(
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
                .unwrap_or(30)
                .max(0) as u64,
        )
    }

    /// Makes the pod's sandbox: pause process, network (CNI ADD) and the pod's /etc files.
    fn create_sandbox(&self, pod: &Pod) -> Result<SandboxStatus, String> {
        let r = pod_ref(pod);
        let spec = pod.spec.as_ref();
        let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
        let attempt = self
            .sandboxes_of(&r.uid)
            .last()
            .map_or(0, |s| s.record.attempt + 1);
        // Old sandboxes of the pod are removed first (their network included).
        self.stop_pod(&r.uid, Some(pod), Self::grace_of(pod), false);
        crate::trace::mark("sandbox.old");
        let record = self
            .runtime
            .run_sandbox(&SandboxSpec {
                pod: r.clone(),
                attempt,
                hostname: crate::dns::hostname(pod),
                host_network,
                share_pid: spec
                    .and_then(|s| s.share_process_namespace)
                    .unwrap_or(false),
                labels: pod.metadata.labels.clone().unwrap_or_default(),
            })
            .map_err(|e| e.to_string())?;
        crate::trace::mark("sandbox.pause");
        let result = (|| -> Result<Vec<String>, String> {
            let ips = if host_network {
                vec![self.cfg.internal_ip.clone()]
            } else {
                let netns = record
                    .netns
                    .clone()
                    .ok_or_else(|| "the sandbox has no network namespace".to_string())?;
                let list =
                    NetworkList::load_dir(&self.cfg.cni_conf_dir).map_err(|e| e.to_string())?;
                let att = self.attachment(pod, &record.id, &netns.to_string_lossy());
                let result = self.cni.add(&list, &att).map_err(|e| {
                    format!("failed to setup network for sandbox \"{}\": {e}", record.id)
                })?;
                crate::trace::mark("sandbox.cni");
                result_ips(&result)
            };
            let node_resolv = std::fs::read_to_string(&self.cfg.resolv_conf).unwrap_or_default();
            let resolv = crate::dns::resolv_conf(
                pod,
                &crate::dns::ResolvConf::parse(&node_resolv),
                &crate::dns::ClusterDns {
                    nameservers: self.cfg.cluster_dns.clone(),
                    domain: self.cfg.cluster_domain.clone(),
                },
            );
            let hosts = if host_network {
                crate::dns::host_network_hosts_file(
                    &std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
                    pod,
                )
            } else {
                crate::dns::hosts_file(pod, &ips, &self.cfg.cluster_domain)
            };
            self.runtime
                .set_etc_files(
                    &record.id,
                    &EtcFiles {
                        hosts,
                        resolv_conf: resolv.render(),
                    },
                )
                .map_err(|e| e.to_string())?;
            Ok(ips)
        })();
        match result {
            Ok(ips) => {
                crate::trace::mark("sandbox.etc");
                self.mem().pod_ips.insert(r.uid.clone(), ips);
                let s = self
                    .runtime
                    .sandbox_status(&record.id)
                    .map_err(|e| e.to_string());
                crate::trace::mark("sandbox.status");
                s
            }
            Err(e) => {
                self.remove_sandbox(pod, &record.id, Duration::ZERO);
                Err(e)
            }
        }
    }

    fn attachment(&self, pod: &Pod, sandbox_id: &str, netns: &str) -> Attachment {
        let r = pod_ref(pod);
        let mut capabilities = serde_json::Map::new();
        let ports: Vec<Value> = spec_containers(pod)
            .iter()
            .flat_map(|(c, _)| c.ports.clone().unwrap_or_default())
            .filter(|p| p.host_port.unwrap_or(0) > 0)
            .map(|p| {
                json!({"hostPort": p.host_port, "containerPort": p.container_port,
                       "protocol": p.protocol.as_deref().unwrap_or("TCP").to_lowercase(),
                       "hostIP": p.host_ip.clone().unwrap_or_default()})
            })
            .collect();
        if !ports.is_empty() {
            capabilities.insert("portMappings".into(), Value::Array(ports));
        }
        Attachment {
            container_id: sandbox_id.to_string(),
            netns: netns.to_string(),
            ifname: "eth0".into(),
            args: vec![
                ("IgnoreUnknown".into(), "1".into()),
                ("K8S_POD_NAMESPACE".into(), r.namespace),
                ("K8S_POD_NAME".into(), r.name),
                ("K8S_POD_INFRA_CONTAINER_ID".into(), sandbox_id.to_string()),
                ("K8S_POD_UID".into(), r.uid),
            ],
            capabilities,
        }
    }

    /// A finished pod's sandboxes that still run are stopped and their network torn down (its
    /// address goes back to the pool); records, containers and logs stay until the pod is deleted.
    fn release_finished(&self, pod: &Pod) {
        for sb in self.sandboxes_of(&uid(pod)) {
            if sb.state != SandboxState::Ready {
                continue;
            }
            let id = sb.record.id.clone();
            if let Err(e) = self.runtime.stop_sandbox(&id, Self::grace_of(pod)) {
                eprintln!("stop sandbox {id} of finished pod {}: {e}", pod_key(pod));
            }
            if !sb.record.host_network
                && let Some(netns) = sb.record.netns.clone()
                && let Ok(list) = NetworkList::load_dir(&self.cfg.cni_conf_dir)
            {
                let att = self.attachment(pod, &id, &netns.to_string_lossy());
                if let Err(e) = self.cni.del(&list, &att) {
                    eprintln!(
                        "tear down the network of sandbox {id} of finished pod {}: {e}",
                        pod_key(pod)
                    );
                }
            }
        }
    }

    /// Stops and removes one sandbox: containers, network (CNI DEL with the cached result), pause.
    fn remove_sandbox(&self, pod: &Pod, id: &str, grace: Duration) {
        if let Err(e) = self.runtime.stop_sandbox(id, grace) {
            eprintln!("stop sandbox {id} of pod {}: {e}", pod_key(pod));
        }
        if let Ok(status) = self.runtime.sandbox_status(id)
            && !status.record.host_network
            && let Some(netns) = status.record.netns.clone()
            && let Ok(list) = NetworkList::load_dir(&self.cfg.cni_conf_dir)
        {
            let att = self.attachment(pod, id, &netns.to_string_lossy());
            if let Err(e) = self.cni.del(&list, &att) {
                eprintln!(
                    "tear down the network of sandbox {id} of pod {}: {e}",
                    pod_key(pod)
                );
            }
        }
        for c in self.containers_of(&pod_ref(pod).uid) {
            if c.record.sandbox_id == id {
                self.remove_container_fully(&c);
            }
        }
        if let Err(e) = self.runtime.remove_sandbox(id) {
            eprintln!("remove sandbox {id} of pod {}: {e}", pod_key(pod));
        }
    }

    fn remove_container_fully(&self, c: &RtContainer) {
        if let Err(e) = self.runtime.remove_container(c.id()) {
            eprintln!("remove container {} ({}): {e}", c.name(), c.id());
        }
        if let Some(key) = c.record.spec.labels.get(ROOTFS_KEY_LABEL)
            && let Err(e) = self.images.store().remove_rootfs(key)
        {
            eprintln!("remove the root filesystem of container {}: {e}", c.id());
        }
        let mut mem = self.mem();
        mem.probes.remove(c.id());
        mem.exits_seen.remove(c.id());
    }

    /// Stops every container (running preStop hooks) and removes every sandbox of `uid`.
    fn stop_pod(&self, uid: &str, pod: Option<&Pod>, grace: Duration, kill_event: bool) {
        let containers = self.containers_of(uid);
        let running: Vec<&RtContainer> = containers
            .iter()
            .filter(|c| c.state == RtState::Running)
            .collect();
        if let Some(pod) = pod {
            std::thread::scope(|s| {
                for c in &running {
                    s.spawn(|| {
                        if kill_event {
                            self.event(
                                pod,
                                Some(c.name()),
                                false,
                                "Killing",
                                &format!("Stopping container {}", c.name()),
                            );
                        }
                        self.stop_container(pod, c.id(), c.name(), grace);
                    });
                }
            });
        }
        for sb in self.sandboxes_of(uid) {
            match pod {
                Some(p) => self.remove_sandbox(p, &sb.record.id, Duration::ZERO),
                None => {
                    let fake: Pod = serde_json::from_value(json!({"metadata": {
                        "namespace": sb.record.pod.namespace, "name": sb.record.pod.name, "uid": sb.record.pod.uid}}))
                    .expect("valid");
                    self.remove_sandbox(&fake, &sb.record.id, grace);
                }
            }
        }
        // Containers whose sandbox record is gone (a crash between steps).
        for c in self.containers_of(uid) {
            self.remove_container_fully(&c);
        }
    }

    /// Everything of the pod goes: containers, sandboxes, network, volumes, logs, memory.
    fn teardown(&self, uid: &str, pod: Option<&Pod>, grace: Duration) {
        self.stop_pod(uid, pod, grace, true);
        let dir = self.cfg.pod_dir(uid);
        for e in volume::teardown(&dir) {
            eprintln!("pod {uid}: {e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
        if let Some(pod) = pod {
            let _ = std::fs::remove_dir_all(self.log_dir(pod));
        } else if let Ok(entries) = std::fs::read_dir(self.cfg.logs_dir()) {
            for e in entries.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .ends_with(&format!("_{uid}"))
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        self.images.forget_pod(uid);
        self.recorder.forget(uid);
        let mut mem = self.mem();
        let prefix = format!("{uid}/");
        mem.crash.retain(|k| !k.starts_with(&prefix));
        mem.tokens.retain(|k, _| k.0 != uid);
        mem.last_status.remove(uid);
        mem.pod_ips.remove(uid);
        mem.finished.remove(uid);
    }

    /// Runs the preStop hook, then stops the container within the grace period.
    fn stop_container(&self, pod: &Pod, id: &str, name: &str, grace: Duration) {
        let deadline = Instant::now() + grace;
        if let Some(c) = container_named(pod, name)
            && let Some(pre) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())
        {
            let result = self.run_handler(
                pod,
                id,
                &c,
                pre.exec.as_ref().and_then(|e| e.command.clone()),
                pre.http_get.as_ref().map(|h| (h.clone(),)),
                grace,
            );
            if let Err(e) = result {
                self.event(
                    pod,
                    Some(name),
                    true,
                    "FailedPreStopHook",
                    &format!("PreStopHook failed: {e}"),
                );
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(e) = self.runtime.stop_container(id, left) {
            eprintln!("stop container {name} of pod {}: {e}", pod_key(pod));
        }
    }

    /// A lifecycle hook or exec probe: an exec in the container, or an HTTP GET to the pod.
    fn run_handler(
        &self,
        pod: &Pod,
        id: &str,
        c: &Container,
        exec: Option<Vec<String>>,
        http: Option<(k8s_openapi::api::core::v1::HTTPGetAction,)>,
        timeout: Duration,
    ) -> Result<(), String> {
        if let Some(cmd) = exec {
            let (code, out) = self.exec_capture(id, &cmd, timeout)?;
            return if code == 0 {
                Ok(())
            } else {
                Err(format!(
                    "command {cmd:?} exited with {code}: {}",
                    out.trim()
                ))
            };
        }
        if let Some((h,)) = http {
            let ip = self
                .mem()
                .pod_ips
                .get(&uid(pod))
                .and_then(|v| v.first().cloned())
                .unwrap_or_default();
            let p = k8s_openapi::api::core::v1::Probe {
                http_get: Some(h),
                ..Default::default()
            };
            if let Ok(Check::Http {
                addr,
                host,
                path,
                headers,
                ..
            }) = probe::check_of(&p, c, &ip)
            {
                return probe::http(
                    addr,
                    &host,
                    &path,
                    &headers,
                    timeout.max(Duration::from_secs(1)),
                );
            }
        }
        Ok(())
    }

    /// Runs a command in a container, returning its exit code and output (bounded).
    pub fn exec_capture(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<(i32, String), String> {
        use std::io::Read;
        let mut p = self
            .runtime
            .exec(
                id,
                &ExecSpec {
                    args: cmd.to_vec(),
                    env: vec![],
                    cwd: None,
                    user: None,
                    tty: false,
                    stdin: false,
                    size: None,
                },
            )
            .map_err(|e| e.to_string())?;
        let mut out = p.stdout.take();
        let mut err = p.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(o) = out.as_mut() {
                let _ = o.take(64 * 1024).read_to_end(&mut buf);
            }
            if let Some(e) = err.as_mut() {
                let _ = e.take(64 * 1024).read_to_end(&mut buf);
            }
            buf
        });
        let deadline = Instant::now() + timeout;
        loop {
            match p.try_wait().map_err(|e| e.to_string())? {
                Some(code) => {
                    let out = reader.join().unwrap_or_default();
                    return Ok((code, String::from_utf8_lossy(&out).into_owned()));
                }
                None if Instant::now() >= deadline => {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p.runc_pid() as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    let _ = p.wait();
                    return Err(format!("command timed out after {timeout:?}"));
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// The pod's volumes, with the objects they name fetched from the API.
    fn volumes(&self, pod: &Pod) -> Result<Vec<Prepared>, String> {
        let r = pod_ref(pod);
        let (config_maps, secrets) = self.env_objects(pod, true)?;
        let facts = self.runtime_facts(pod);
        let token = |aud: Option<&str>, exp: i64| self.token(pod, aud, exp);
        volume::setup(
            pod,
            &self.cfg.pod_dir(&r.uid),
            &VolumeSources {
                config_maps: &config_maps,
                secrets: &secrets,
                token: &token,
                facts: &facts,
            },
        )
        .map_err(|e| e.0)
    }

    fn runtime_facts(&self, pod: &Pod) -> RuntimeFacts {
        RuntimeFacts {
            host_ip: Some(self.cfg.internal_ip.clone()),
            pod_ips: self
                .mem()
                .pod_ips
                .get(&uid(pod))
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// A service-account token for the pod (TokenRequest bound to the pod), renewed at 80% of its
    /// life as kubelet does.
    fn token(&self, pod: &Pod, audience: Option<&str>, expiration: i64) -> Result<String, String> {
        let r = pod_ref(pod);
        let key = (
            r.uid.clone(),
            audience.unwrap_or("").to_string(),
            expiration,
        );
        if let Some((t, renew)) = self.mem().tokens.get(&key)
            && Instant::now() < *renew
        {
            return Ok(t.clone());
        }
        let sa = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into());
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &r.namespace);
        let req = json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {
                "audiences": audience.map(|a| vec![a.to_string()]).unwrap_or_default(),
                "expirationSeconds": expiration.max(600),
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": r.name, "uid": r.uid}
            }
        });
        let resp: Value = self
            .handle
            .block_on(api.create_subresource("token", &sa, &PostParams::default(), &req))
            .map_err(|e| format!("TokenRequest for service account {}/{sa}: {e}", r.namespace))?;
        let token = resp["status"]["token"]
            .as_str()
            .ok_or_else(|| "TokenRequest answered without a token".to_string())?
            .to_string();
        let life = Duration::from_secs(expiration.max(600) as u64);
        self.mem()
            .tokens
            .insert(key, (token.clone(), Instant::now() + life.mul_f64(0.8)));
        Ok(token)
    }

    /// ConfigMaps and Secrets the pod's env and (with `volumes`) volumes name.
    #[allow(clippy::type_complexity)]
    fn env_objects(
        &self,
        pod: &Pod,
        volumes: bool,
    ) -> Result<(BTreeMap<String, ConfigMap>, BTreeMap<String, Secret>), String> {
        let ns = pod_ref(pod).namespace;
        let mut cm_names = HashSet::new();
        let mut secret_names = HashSet::new();
        let all = spec_containers(pod)
            .into_iter()
            .map(|(c, _)| c)
            .chain(ephemeral_containers(pod).into_iter().map(|(c, _)| c));
        for c in all {
            for e in c.env.iter().flatten() {
                if let Some(f) = &e.value_from {
                    if let Some(r) = &f.config_map_key_ref {
                        cm_names.insert(r.name.clone());
                    }
                    if let Some(r) = &f.secret_key_ref {
                        secret_names.insert(r.name.clone());
                    }
                }
            }
            for f in c.env_from.iter().flatten() {
                if let Some(r) = &f.config_map_ref {
                    cm_names.insert(r.name.clone());
                }
                if let Some(r) = &f.secret_ref {
                    secret_names.insert(r.name.clone());
                }
            }
        }
        if volumes {
            for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
                if let Some(c) = &v.config_map {
                    cm_names.insert(c.name.clone());
                }
                if let Some(s) = &v.secret {
                    secret_names.insert(s.secret_name.clone().unwrap_or_default());
                }
                for src in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
                    if let Some(c) = &src.config_map {
                        cm_names.insert(c.name.clone());
                    }
                    if let Some(s) = &src.secret {
                        secret_names.insert(s.name.clone());
                    }
                }
            }
        }
        Ok((
            self.fetch_named(&ns, "configmap", cm_names)?,
            self.fetch_named(&ns, "secret", secret_names)?,
        ))
    }

    /// The named objects of a namespace that exist (a missing one is the caller's to judge).
    fn fetch_named<K>(
        &self,
        ns: &str,
        kind: &str,
        names: HashSet<String>,
    ) -> Result<BTreeMap<String, K>, String>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        let mut out = BTreeMap::new();
        for n in names {
            if let Some(obj) = self
                .handle
                .block_on(api.get_opt(&n))
                .map_err(|e| format!("get {kind} {ns}/{n}: {e}"))?
            {
                out.insert(n, obj);
            }
        }
        Ok(out)
    }

    /// The Services of the pod's namespace as environment variables, plus `kubernetes`.
    fn service_env(&self, pod: &Pod) -> Vec<ServiceEnv> {
        let ns = pod_ref(pod).namespace;
        let to_env = |s: &Service| -> Option<ServiceEnv> {
            let spec = s.spec.as_ref()?;
            let ip = spec
                .cluster_ip
                .clone()
                .filter(|ip| !ip.is_empty() && ip != "None")?;
            Some(ServiceEnv {
                name: s.metadata.name.clone()?,
                cluster_ip: ip,
                ports: spec
                    .ports
                    .iter()
                    .flatten()
                    .map(|p| {
                        (
                            p.name.clone().unwrap_or_default(),
                            p.port,
                            p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        )
                    })
                    .collect(),
            })
        };
        // The `kubernetes` Service of `default` is in every pod's environment (kubelet's master
        // service), then the pod's own namespace's Services.
        let mut out = Vec::new();
        let default: Api<Service> = Api::namespaced(self.client.clone(), "default");
        if ns != "default"
            && let Ok(Some(k)) = self.handle.block_on(default.get_opt("kubernetes"))
            && let Some(e) = to_env(&k)
        {
            out.push(e);
        }
        let api: Api<Service> = Api::namespaced(self.client.clone(), &ns);
        if let Ok(list) = self.handle.block_on(api.list(&ListParams::default())) {
            out.extend(list.items.iter().filter_map(to_env));
        }
        out
    }

    /// Pulls the image, prepares the root filesystem, resolves the process and starts the container.
    /// On failure: the waiting reason and message for the status.
    fn start_container(
        &self,
        pod: &Pod,
        sb: &SandboxStatus,
        name: &str,
        vols: &[Prepared],
    ) -> Result<(), Waiting> {
        let events = RefCell::new(Vec::new());
        let made = self.make_container(pod, sb, name, vols, &OnceLock::new(), &events);
        self.flush_events(pod, name, events.into_inner());
        match made? {
            Some(m) => self.run_container(pod, name, m),
            None => Ok(()),
        }
    }

    /// Starts the pod's regular containers `names` as kubelet does (each one started after the one
    /// before it, and after that one's postStart hook), but makes them all at once when no hook
    /// runs before the last (`plan::make_at_once`): the image checks, root filesystems and `runc
    /// create` of every container overlap each other and the starts of those before them, which
    /// nothing in the pod can see (no process of a container runs before its `runc start`, and no
    /// hook writes into a volume before the next container's mounts are resolved). The events come in
    /// kubelet's order, each container's after the previous one's. Returns the containers that did
    /// not start, with their waiting reason and message.
    fn start_containers(
        &self,
        pod: &Pod,
        sb: &SandboxStatus,
        names: &[String],
        vols: &[Prepared],
    ) -> Vec<(String, (String, Option<String>))> {
        // A container of an ephemeral target must see its target running: made one at a time.
        let ephemeral: HashSet<String> = ephemeral_containers(pod)
            .into_iter()
            .map(|(c, _)| c.name)
            .collect();
        let mut failed = Vec::new();
        if !plan::make_at_once(pod, names) || names.iter().any(|n| ephemeral.contains(n)) {
            for name in names {
                if let Err(e) = self.start_container(pod, sb, name, vols) {
                    failed.push((name.clone(), e));
                }
            }
            return failed;
        }
        crate::trace::skip();
        // The Services in the environment: one list for the pod's containers.
        let services = OnceLock::new();
        let services = &services;
        // Each container starts as soon as it is made and the one before it has started: a
        // container's start overlaps the making of those after it.
        std::thread::scope(|s| {
            let jobs: Vec<_> = names
                .iter()
                .map(|name| {
                    s.spawn(move || {
                        if crate::trace::enabled() {
                            crate::trace::begin(&format!("{}/{name}", pod_key(pod)));
                        }
                        crate::trace::worthy();
                        let events = RefCell::new(Vec::new());
                        let made = self.make_container(pod, sb, name, vols, services, &events);
                        crate::trace::end();
                        (events.into_inner(), made)
                    })
                })
                .collect();
            for (name, job) in names.iter().zip(jobs) {
                let (events, made) = job
                    .join()
                    .unwrap_or_else(|_| (Vec::new(), Err(("CreateContainerError".into(), None))));
                crate::trace::mark_with(|| format!("{name}.made"));
                self.flush_events(pod, name, events);
                let started = match made {
                    Ok(Some(m)) => self.run_container(pod, name, m),
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                };
                if let Err(e) = started {
                    failed.push((name.clone(), e));
                }
            }
        });
        failed
    }

    fn flush_events(&self, pod: &Pod, name: &str, events: Vec<ContainerEvent>) {
        for (warning, reason, msg) in events {
            self.event(pod, Some(name), warning, &reason, &msg);
        }
    }

    /// Everything before the container's process starts: back-off, image, root filesystem, process,
    /// bundle and `runc create`. Its events are left in `events` for the caller to record in order.
    /// `None`: the pod has no such container.
    fn make_container(
        &self,
        pod: &Pod,
        sb: &SandboxStatus,
        name: &str,
        vols: &[Prepared],
        services: &OnceLock<Vec<ServiceEnv>>,
        events: &RefCell<Vec<ContainerEvent>>,
    ) -> Result<Option<Made>, Waiting> {
        let event = |warning: bool, reason: &str, msg: &str| {
            events
                .borrow_mut()
                .push((warning, reason.to_string(), msg.to_string()))
        };
        crate::trace::skip();
        let r = pod_ref(pod);
        let Some(c) = container_named(pod, name) else {
            return Ok(None);
        };
        // an ephemeral container with a target joins the target's PID namespace
        let target = ephemeral_containers(pod)
            .into_iter()
            .find(|(e, _)| e.name == name)
            .and_then(|(_, t)| t);
        let pid_namespace = match target {
            None => None,
            Some(t) => {
                let pid = self
                    .containers_of(&r.uid)
                    .into_iter()
                    .filter(|x| x.name() == t && x.state == RtState::Running)
                    .find_map(|x| x.pid);
                match pid {
                    Some(pid) => Some(PathBuf::from(format!("/proc/{pid}/ns/pid"))),
                    None => {
                        let msg = format!("target container {t:?} is not running");
                        return Err(("CreateContainerError".into(), Some(msg)));
                    }
                }
            }
        };
        let history: Vec<RtContainer> = self
            .containers_of(&r.uid)
            .into_iter()
            .filter(|x| x.name() == name)
            .collect();
        let attempt = history.last().map_or(0, |x| x.record.spec.attempt + 1);
        // Restart back-off after a crash (CrashLoopBackOff).
        let backoff_key = format!("{}/{name}", r.uid);
        if let Some(last) = history.last() {
            let ran = match (last.started_ns, last.exit.as_ref()) {
                (Some(s), Some(e)) => Duration::from_nanos((e.finished_ns - s).max(0) as u64),
                _ => Duration::ZERO,
            };
            let first_look = self.mem().exits_seen.insert(last.id().to_string());
            if first_look {
                self.mem().crash.exited(&backoff_key, ran, Instant::now());
            }
            let wait = self.mem().crash.remaining(&backoff_key, Instant::now());
            if wait > Duration::ZERO {
                let delay = self.mem().crash.period(&backoff_key);
                let msg = format!(
                    "back-off {}s restarting failed container={name} pod={}_{}({})",
                    round_up_secs(delay),
                    r.name,
                    r.namespace,
                    r.uid
                );
                event(
                    true,
                    "BackOff",
                    &format!(
                        "Back-off restarting failed container {name} in pod {}_{}({})",
                        r.name, r.namespace, r.uid
                    ),
                );
                return Err(("CrashLoopBackOff".into(), Some(msg)));
            }
        }
        crate::trace::mark_with(|| format!("{name}.history"));
        // The image.
        let image = c.image.clone().unwrap_or_default();
        let pull_secrets = self.pull_secrets(pod);
        let mut image_events = Vec::new();
        let record = self.images.ensure(
            &self.handle,
            &image,
            c.image_pull_policy.as_deref(),
            &pull_secrets,
            &format!("{}/{image}", r.uid),
            &mut image_events,
        );
        for (warning, reason, msg) in &image_events {
            event(*warning, reason, msg);
        }
        let record = record
            .map_err(|ImageFailure { reason, message }| (reason.to_string(), Some(message)))?;
        crate::trace::mark_with(|| format!("{name}.image"));
        // The process.
        let config_error = |msg: String| {
            event(true, "Failed", &format!("Error: {msg}"));
            ("CreateContainerConfigError".to_string(), Some(msg))
        };
        let image_process = self.image_process(&record).map_err(config_error)?;
        crate::trace::mark_with(|| format!("{name}.image_config"));
        let (config_maps, secrets) = self.env_objects(pod, false).map_err(config_error)?;
        crate::trace::mark_with(|| format!("{name}.env_objects"));
        let sources = EnvSources {
            config_maps,
            secrets,
            services: services.get_or_init(|| self.service_env(pod)).clone(),
        };
        crate::trace::mark_with(|| format!("{name}.service_env"));
        let id_key = format!("{}-{}-{attempt}", &r.uid[..r.uid.len().min(8)], name);
        let mountpoint = self.cfg.state_dir.join("rootfs").join(&id_key);
        let owner = format!("pod {}/{} container {name}", r.namespace, r.name);
        let rootfs = self
            .images
            .store()
            .prepare_rootfs(&record.reference, &id_key, &owner, &mountpoint)
            .map_err(|e| {
                let msg = format!("prepare the root filesystem: {e}");
                event(true, "Failed", &format!("Error: {msg}"));
                ("CreateContainerError".to_string(), Some(msg))
            })?;
        crate::trace::mark_with(|| format!("{name}.rootfs"));
        // Read inside the image's root: its symlinks must not name the node's files.
        let passwd = crate::inroot::read_in_root(&rootfs.mountpoint, "etc/passwd", ETC_FILE_LIMIT)
            .unwrap_or_default();
        let group = crate::inroot::read_in_root(&rootfs.mountpoint, "etc/group", ETC_FILE_LIMIT)
            .unwrap_or_default();
        let facts = self.runtime_facts(pod);
        let proc_ = process::resolve(pod, &c, &image_process, &sources, &facts, &passwd, &group)
            .map_err(|e| {
                let _ = self.images.store().remove_rootfs(&id_key);
                config_error(e.0)
            })?;
        let mut mounts: Vec<BindMount> = volume::container_mounts(&c, vols)
            .map_err(|e| config_error(e.0))?
            .into_iter()
            .map(|m| BindMount {
                source: m.source,
                destination: PathBuf::from(m.destination),
                readonly: m.read_only,
            })
            .collect();
        // terminationMessagePath: a file of the pod's, read when the container ends.
        let term_path = c
            .termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".into());
        let term_file = self
            .cfg
            .pod_dir(&r.uid)
            .join("termination")
            .join(format!("{name}-{attempt}"));
        if let Some(parent) = term_file.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(&term_file, b"");
        mounts.push(BindMount {
            source: term_file,
            destination: PathBuf::from(term_path),
            readonly: false,
        });
        let sc = c.security_context.as_ref();
        let caps = sc.and_then(|s| s.capabilities.as_ref());
        let spec = ContainerSpec {
            name: name.to_string(),
            attempt,
            image: image.clone(),
            rootfs: rootfs.mountpoint.clone(),
            args: proc_.args,
            env: proc_.env,
            cwd: proc_.cwd,
            user: User {
                uid: proc_.uid,
                gid: proc_.gid,
                additional_gids: proc_.additional_gids,
            },
            security: Security {
                privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
                cap_add: caps.and_then(|c| c.add.clone()).unwrap_or_default(),
                cap_drop: caps.and_then(|c| c.drop.clone()).unwrap_or_default(),
                readonly_rootfs: sc
                    .and_then(|s| s.read_only_root_filesystem)
                    .unwrap_or(false),
                no_new_privileges: sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
            },
            resources: resources_of(&c),
            mounts,
            log_path: podnet_runtime::crilog::container_log_path(&self.log_dir(pod), name, attempt),
            log_max_bytes: LOG_MAX_BYTES,
            log_max_files: LOG_MAX_FILES,
            stdin: c.stdin.unwrap_or(false),
            stdin_once: c.stdin_once.unwrap_or(false),
            tty: c.tty.unwrap_or(false),
            pid_namespace,
            labels: BTreeMap::from([
                ("io.kubernetes.container.name".to_string(), name.to_string()),
                ("io.kubernetes.pod.name".to_string(), r.name.clone()),
                (
                    "io.kubernetes.pod.namespace".to_string(),
                    r.namespace.clone(),
                ),
                ("io.kubernetes.pod.uid".to_string(), r.uid.clone()),
                (
                    "io.podnet.image.id".to_string(),
                    crate::images::image_id(&record),
                ),
                (ROOTFS_KEY_LABEL.to_string(), id_key.clone()),
            ]),
        };
        crate::trace::mark_with(|| format!("{name}.spec"));
        let id = self
            .runtime
            .create_container(&sb.record.id, &spec)
            .map_err(|e| {
                let _ = self.images.store().remove_rootfs(&id_key);
                let msg = e.to_string();
                event(true, "Failed", &format!("Error: {msg}"));
                ("CreateContainerError".to_string(), Some(msg))
            })?;
        crate::trace::mark_with(|| format!("{name}.create"));
        event(false, "Created", &format!("Created container: {name}"));
        Ok(Some(Made {
            id,
            container: c,
            history,
        }))
    }

    /// Starts a container an earlier sync made but did not start (see `Action::StartCreated`).
    fn start_created(&self, pod: &Pod, name: &str, id: &str) -> Result<(), Waiting> {
        let Some(container) = container_named(pod, name) else {
            return Ok(());
        };
        let history: Vec<RtContainer> = self
            .containers_of(&uid(pod))
            .into_iter()
            .filter(|x| x.name() == name && x.id() != id)
            .collect();
        self.run_container(
            pod,
            name,
            Made {
                id: id.to_string(),
                container,
                history,
            },
        )
    }

    /// `runc start` of a made container, then its postStart hook; older instances beyond the
    /// previous one go.
    fn run_container(&self, pod: &Pod, name: &str, made: Made) -> Result<(), Waiting> {
        crate::trace::skip();
        let Made {
            id,
            container: c,
            mut history,
        } = made;
        if let Err(e) = self.runtime.start_container(&id) {
            let msg = e.to_string();
            self.event(pod, Some(name), true, "Failed", &format!("Error: {msg}"));
            return Err(("RunContainerError".into(), Some(msg)));
        }
        crate::trace::mark_with(|| format!("{name}.start"));
        self.event(
            pod,
            Some(name),
            false,
            "Started",
            &format!("Started container {name}"),
        );
        // postStart runs right after the start; a failure kills the container (kubelet's rule).
        if let Some(post) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let result = self.run_handler(
                pod,
                &id,
                &c,
                post.exec.as_ref().and_then(|e| e.command.clone()),
                post.http_get.as_ref().map(|h| (h.clone(),)),
                Duration::from_secs(30),
            );
            if let Err(e) = result {
                self.event(
                    pod,
                    Some(name),
                    true,
                    "FailedPostStartHook",
                    &format!("PostStartHook failed: {e}"),
                );
                let _ = self.runtime.stop_container(&id, Self::grace_of(pod));
            }
        }
        // Old instances beyond the previous one go (with their root filesystems).
        while history.len() >= KEEP_INSTANCES {
            let old = history.remove(0);
            self.remove_container_fully(&old);
        }
        Ok(())
    }

    fn pull_secrets(&self, pod: &Pod) -> podnet_oci::Keychain {
        let ns = pod_ref(pod).namespace;
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        let mut found = Vec::new();
        for r in pod
            .spec
            .iter()
            .flat_map(|s| s.image_pull_secrets.iter().flatten())
        {
            if let Ok(Some(s)) = self.handle.block_on(api.get_opt(&r.name)) {
                found.push(s);
            }
        }
        crate::images::keychain_of(&found)
    }

    fn image_process(&self, rec: &podnet_oci::ImageRecord) -> Result<ImageProcess, String> {
        let bytes = self
            .images
            .store()
            .read_blob(&rec.config)
            .map_err(|e| format!("read the configuration of image {}: {e}", rec.reference))?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("parse the configuration of image {}: {e}", rec.reference))?;
        let list = |k: &str| -> Vec<String> {
            v["config"][k]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let s = |k: &str| v["config"][k].as_str().map(str::to_string);
        Ok(ImageProcess {
            entrypoint: list("Entrypoint"),
            cmd: list("Cmd"),
            env: list("Env"),
            working_dir: s("WorkingDir"),
            user: s("User"),
        })
    }

    /// Runs the probes that are due for the pod's running containers.
    fn run_probes(&self, pod: &Pod) {
        let uid = uid(pod);
        let ip = self
            .mem()
            .pod_ips
            .get(&uid)
            .and_then(|v| v.first().cloned())
            .unwrap_or_default();
        for rc in self.containers_of(&uid) {
            if rc.state != RtState::Running {
                continue;
            }
            let Some((c, init)) = spec_containers(pod)
                .into_iter()
                .find(|(c, _)| c.name == rc.name())
            else {
                continue;
            };
            if init {
                continue;
            }
            let started = Instant::now()
                - Duration::from_nanos(
                    (now_ns() - rc.started_ns.unwrap_or_else(now_ns)).max(0) as u64
                );
            {
                let mut mem = self.mem();
                let set = mem.probes.entry(rc.id().to_string()).or_default();
                if set.startup.is_none() && set.readiness.is_none() && set.liveness.is_none() {
                    set.startup = c
                        .startup_probe
                        .as_ref()
                        .map(|p| Tracker::new(Kind::Startup, p, started));
                    set.readiness = c
                        .readiness_probe
                        .as_ref()
                        .map(|p| Tracker::new(Kind::Readiness, p, started));
                    set.liveness = c
                        .liveness_probe
                        .as_ref()
                        .map(|p| Tracker::new(Kind::Liveness, p, started));
                }
            }
            for kind in [Kind::Startup, Kind::Liveness, Kind::Readiness] {
                let (probe_spec, due, startup_done) = {
                    let mem = self.mem();
                    let set = &mem.probes[rc.id()];
                    let startup_done = set
                        .startup
                        .as_ref()
                        .is_none_or(|t| t.verdict == Verdict::Success);
                    let tracker = match kind {
                        Kind::Startup => &set.startup,
                        Kind::Liveness => &set.liveness,
                        Kind::Readiness => &set.readiness,
                    };
                    let spec = match kind {
                        Kind::Startup => c.startup_probe.clone(),
                        Kind::Liveness => c.liveness_probe.clone(),
                        Kind::Readiness => c.readiness_probe.clone(),
                    };
                    (
                        spec,
                        tracker.as_ref().is_some_and(|t| t.due(Instant::now())),
                        startup_done,
                    )
                };
                let Some(p) = probe_spec else { continue };
                // Liveness and readiness wait for the startup probe to succeed.
                if !due || (kind != Kind::Startup && !startup_done) {
                    continue;
                }
                if kind == Kind::Startup && startup_done {
                    continue;
                }
                let timeout = probe::Timing::of(&p).timeout;
                let result = match probe::check_of(&p, &c, &ip) {
                    Ok(Check::Http {
                        addr,
                        host,
                        path,
                        headers,
                        ..
                    }) => probe::http(addr, &host, &path, &headers, timeout),
                    Ok(Check::Tcp(addr)) => probe::tcp(addr, timeout),
                    Ok(Check::Grpc(addr)) => probe::tcp(addr, timeout),
                    Ok(Check::Exec(cmd)) => match self.exec_capture(rc.id(), &cmd, timeout) {
                        Ok((0, _)) => Ok(()),
                        Ok((code, out)) => Err(format!(
                            "command {cmd:?} exited with {code}: {}",
                            out.trim()
                        )),
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                };
                if let Err(msg) = &result {
                    self.event(
                        pod,
                        Some(rc.name()),
                        true,
                        "Unhealthy",
                        &format!("{} probe failed: {msg}", kind.word()),
                    );
                }
                let changed = {
                    let mut mem = self.mem();
                    let set = mem.probes.get_mut(rc.id()).expect("made above");
                    let tracker = match kind {
                        Kind::Startup => set.startup.as_mut(),
                        Kind::Liveness => set.liveness.as_mut(),
                        Kind::Readiness => set.readiness.as_mut(),
                    };
                    tracker.and_then(|t| t.record(result.is_ok(), Instant::now()))
                };
                if changed == Some(Verdict::Failure) && kind != Kind::Readiness {
                    // The next sync kills and restarts it (plan sees it unhealthy).
                    self.event(
                        pod,
                        Some(rc.name()),
                        false,
                        "Killing",
                        &format!(
                            "Container {} failed {} probe, will be restarted",
                            rc.name(),
                            kind.word().to_lowercase()
                        ),
                    );
                    self.stop_container(pod, rc.id(), rc.name(), Self::grace_of(pod));
                }
            }
        }
    }

    fn next_probe_due(&self, pod: &Pod) -> Option<Duration> {
        let uid = uid(pod);
        let ids: Vec<String> = self
            .containers_of(&uid)
            .into_iter()
            .filter(|c| c.state == RtState::Running)
            .map(|c| c.id().to_string())
            .collect();
        let mem = self.mem();
        let now = Instant::now();
        ids.iter()
            .filter_map(|id| mem.probes.get(id))
            .flat_map(|s| [&s.startup, &s.liveness, &s.readiness])
            .flatten()
            .map(|t| t.next_due().saturating_duration_since(now))
            .min()
    }

    fn facts(
        &self,
        pod: &Pod,
        sandbox: Option<&SandboxStatus>,
        containers: &[RtContainer],
        waiting: &HashMap<String, (String, Option<String>)>,
        sandbox_failed: bool,
    ) -> PodFacts {
        let uid = uid(pod);
        let sandbox_ready =
            sandbox.is_some_and(|s| s.state == SandboxState::Ready) && !sandbox_failed;
        if sandbox_ready && !self.mem().pod_ips.contains_key(&uid) {
            // An adopted pod: its address is in the cached CNI result.
            if let Some(sb) = sandbox
                && let Ok(list) = NetworkList::load_dir(&self.cfg.cni_conf_dir)
            {
                let att = self.attachment(pod, &sb.record.id, "");
                let ips = if sb.record.host_network {
                    vec![self.cfg.internal_ip.clone()]
                } else {
                    self.cni
                        .cached_result(&list.name, &att)
                        .map(|r| result_ips(&r))
                        .unwrap_or_default()
                };
                self.mem().pod_ips.insert(uid.clone(), ips);
            }
        }
        let pod_ips = self.mem().pod_ips.get(&uid).cloned().unwrap_or_default();
        let inits_running = spec_containers(pod).iter().any(|(c, init)| {
            *init
                && !containers.iter().any(|x| {
                    x.name() == c.name && x.exit.as_ref().is_some_and(|e| e.exit_code == 0)
                })
        });
        let mut init = Vec::new();
        let mut regular = Vec::new();
        let mut ephemeral = Vec::new();
        let ephemeral_names: HashSet<String> = ephemeral_containers(pod)
            .into_iter()
            .map(|(c, _)| c.name)
            .collect();
        let all = spec_containers(pod).into_iter().chain(
            ephemeral_containers(pod)
                .into_iter()
                .map(|(c, _)| (c, false)),
        );
        for (c, is_init) in all {
            let instances: Vec<&RtContainer> =
                containers.iter().filter(|x| x.name() == c.name).collect();
            let newest = instances.last().copied();
            let previous = instances.len().checked_sub(2).map(|i| instances[i]);
            let terminated_of = |x: &RtContainer| -> Option<Terminated> {
                let exit = x.exit.as_ref()?;
                Some(Terminated {
                    exit_code: exit.exit_code,
                    signal: exit.signal,
                    reason: if exit.exit_code == 0 {
                        "Completed".into()
                    } else {
                        "Error".into()
                    },
                    message: self.termination_message(pod, &c, x),
                    started_at: x.started_ns.map(ts),
                    finished_at: ts(exit.finished_ns),
                    container_id: Some(format!("podnet://{}", x.id())),
                })
            };
            let image_id = newest
                .and_then(|x| x.record.spec.labels.get("io.podnet.image.id").cloned())
                .unwrap_or_default();
            let probes = newest.and_then(|x| {
                let mem = self.mem();
                mem.probes.get(x.id()).map(|p| {
                    (
                        p.readiness
                            .as_ref()
                            .is_none_or(|t| t.verdict == Verdict::Success),
                        p.startup
                            .as_ref()
                            .is_none_or(|t| t.verdict == Verdict::Success),
                    )
                })
            });
            let (ready, started) =
                probes.unwrap_or((c.readiness_probe.is_none(), c.startup_probe.is_none()));
            let state = match (waiting.get(&c.name), newest) {
                (Some((reason, msg)), _) => State::Waiting {
                    reason: reason.clone(),
                    message: msg.clone(),
                },
                (None, Some(x)) => match x.state {
                    RtState::Running => State::Running {
                        started_at: ts(x.started_ns.unwrap_or_else(now_ns)),
                    },
                    RtState::Created => State::Waiting {
                        reason: "ContainerCreating".into(),
                        message: None,
                    },
                    RtState::Exited | RtState::Unknown => match terminated_of(x) {
                        Some(t) => State::Terminated(t),
                        None => State::Terminated(Terminated {
                            exit_code: 255,
                            signal: None,
                            reason: "Unknown".into(),
                            message: Some(
                                "the container's supervisor ended before recording its exit".into(),
                            ),
                            started_at: x.started_ns.map(ts),
                            finished_at: jiff::Timestamp::now(),
                            container_id: Some(format!("podnet://{}", x.id())),
                        }),
                    },
                },
                (None, None) => State::Waiting {
                    reason: if !is_init && inits_running {
                        "PodInitializing".into()
                    } else {
                        "ContainerCreating".into()
                    },
                    message: None,
                },
            };
            // A restarting container shows its last run in lastState.
            let last_terminated = match (&state, newest) {
                (State::Terminated(_), _) => previous.and_then(terminated_of),
                (_, Some(x)) if x.state != RtState::Running && x.state != RtState::Created => {
                    terminated_of(x)
                }
                _ => previous.and_then(terminated_of),
            };
            let f = ContainerFacts {
                name: c.name.clone(),
                state,
                last_terminated,
                restart_count: newest.map_or(0, |x| x.record.spec.attempt as i32),
                ready: ready && newest.is_some_and(|x| x.state == RtState::Running),
                started: started && newest.is_some_and(|x| x.state == RtState::Running),
                image: c.image.clone().unwrap_or_default(),
                image_id,
                container_id: newest.map(|x| format!("podnet://{}", x.id())),
            };
            if is_init {
                if newest.is_some() || waiting.contains_key(&c.name) {
                    init.push(f);
                }
            } else if ephemeral_names.contains(&c.name) {
                ephemeral.push(f);
            } else {
                regular.push(f);
            }
        }
        PodFacts {
            sandbox_ready,
            pod_ips,
            host_ip: Some(self.cfg.internal_ip.clone()),
            start_time: sandbox.map(|s| ts(s.record.created_ns)),
            init,
            containers: regular,
            ephemeral,
            failed: None,
        }
    }

    /// terminationMessagePath's content (at most 4 KiB), or the log's tail with
    /// FallbackToLogsOnError on a failure with an empty file.
    fn termination_message(&self, pod: &Pod, c: &Container, x: &RtContainer) -> Option<String> {
        // Only the first 4 KiB are read (kubelet's limit): the container may have written gigabytes.
        let dir = self.cfg.pod_dir(&uid(pod)).join("termination");
        let name = format!("{}-{}", c.name, x.record.spec.attempt);
        let mut text = crate::inroot::read_in_root(&dir, &name, 4096);
        let failed = x.exit.as_ref().is_some_and(|e| e.exit_code != 0);
        if text.as_deref().is_none_or(str::is_empty)
            && failed
            && c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError")
        {
            let mut out = Vec::new();
            let opts = podnet_runtime::crilog::LogOptions {
                tail: Some(80),
                limit_bytes: Some(2048),
                ..Default::default()
            };
            if self
                .runtime
                .read_logs(x.id(), &opts, &mut out, &|| true)
                .is_ok()
            {
                text = Some(String::from_utf8_lossy(&out).into_owned());
            }
        }
        text.filter(|t| !t.is_empty())
    }

    fn post_status(&self, pod: &Pod, facts: &PodFacts) {
        let uid = uid(pod);
        let posted = self.mem().last_status.get(&uid).cloned();
        let standing = status::own_write_stands(pod, posted.as_ref());
        let status: PodStatus =
            status::pod_status(pod, facts, standing.as_ref(), jiff::Timestamp::now());
        let value = serde_json::to_value(&status).expect("serializes");
        // Unchanged since the last write, which still stands: nothing to send.
        if standing.is_some() && posted.as_ref().map(|p| &p.status) == Some(&value) {
            return;
        }
        let r = pod_ref(pod);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &r.namespace);
        let patch = json!({"metadata": {"uid": uid}, "status": value});
        match self.handle.block_on(api.patch_status(
            &r.name,
            &PatchParams::default(),
            &Patch::Merge(patch),
        )) {
            Ok(written) => {
                crate::trace::worthy();
                let resource_version = written
                    .metadata
                    .resource_version
                    .as_deref()
                    .and_then(|v| v.parse().ok());
                self.mem().last_status.insert(
                    uid,
                    status::Posted {
                        status: value,
                        resource_version,
                    },
                );
            }
            Err(e) => eprintln!("update status of pod {}: {e}", pod_key(pod)),
        }
    }

    /// Removes what runs on the node for pods the API no longer assigns to it (after an agent
    /// restart, or a pod deleted while the agent was down).
    pub fn remove_orphans(&self, known: &HashSet<String>) {
        let mut uids: HashSet<String> = self
            .runtime
            .list_sandboxes()
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.record.pod.uid)
            .collect();
        uids.extend(
            self.runtime
                .list_containers()
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.record.pod.uid),
        );
        for uid in uids.difference(known) {
            eprintln!(
                "podnet node agent {}: removing pod {uid}, which the API no longer assigns here",
                self.cfg.node
            );
            self.teardown(uid, None, Duration::from_secs(2));
        }
        // Root filesystems left by a crash between prepare and create.
        if let Ok(records) = self.images.store().rootfs_records() {
            let live: HashSet<String> = self
                .runtime
                .list_containers()
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.record.spec.rootfs.to_string_lossy().into_owned())
                .collect();
            let mine = self.cfg.state_dir.join("rootfs");
            for r in records {
                if r.mountpoint.starts_with(&mine)
                    && !live.contains(&*r.mountpoint.to_string_lossy())
                {
                    let _ = self.images.store().remove_rootfs(&r.key);
                }
            }
        }
        // CNI attachments this agent made whose sandbox is gone: DEL them. The plugins' own GC
        // (`cni.dev/valid-attachments`) is not issued: on a lab node, attachments are also made by hand
        // (the walkthrough, tests) and the agent does not own them; an ADD cut short before its result
        // was cached is undone by the DEL of its sandbox, whose record is written first.
        if let Ok(list) = NetworkList::load_dir(&self.cfg.cni_conf_dir) {
            let valid: Vec<(String, String)> = self
                .runtime
                .list_sandboxes()
                .unwrap_or_default()
                .into_iter()
                .filter(|s| !s.record.host_network)
                .map(|s| (s.record.id, "eth0".to_string()))
                .collect();
            let (removed, errors) = self.cni.release_stale(&list, &valid);
            for r in removed {
                eprintln!(
                    "podnet node agent {}: released stale network attachment {r}",
                    self.cfg.node
                );
            }
            for e in errors {
                eprintln!("podnet node agent {}: CNI GC: {e}", self.cfg.node);
            }
        }
    }
}

fn round_up_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The pod's addresses from a CNI result (`ips[].address` without the prefix length).
pub fn result_ips(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str())
        .map(|a| a.split('/').next().unwrap_or(a).to_string())
        .collect()
}

/// A container's cgroup limits from its resources: CPU shares from the request, a CFS quota from
/// the limit, the memory limit (kubelet's conversions).
fn resources_of(c: &Container) -> Resources {
    let r = c.resources.as_ref();
    let q =
        |m: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
         k: &str| {
            m.and_then(|m| m.get(k))
                .and_then(|v| process::quantity(&v.0).ok())
        };
    let limits = r.and_then(|r| r.limits.as_ref());
    let requests = r.and_then(|r| r.requests.as_ref());
    let cpu_limit = q(limits, "cpu");
    let cpu_request = q(requests, "cpu").or(cpu_limit);
    let mem_limit = q(limits, "memory");
    Resources::from_millicores(
        cpu_request.map(|v| (v * 1000.0).round() as u64),
        cpu_limit.map(|v| (v * 1000.0).round() as u64),
        mem_limit.map(|v| v as i64),
    )
}

/// What runs on the node per pod (container ids and states, sandbox states), for noticing changes
/// between syncs: kubelet's PLEG (pod lifecycle event generator) relists the same way.
pub fn relist(runtime: &Runtime) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for c in runtime.list_containers().unwrap_or_default() {
        out.entry(c.record.pod.uid.clone())
            .or_default()
            .push(format!("{}={:?}", c.id(), c.state));
    }
    for s in runtime.list_sandboxes().unwrap_or_default() {
        out.entry(s.record.pod.uid.clone())
            .or_default()
            .push(format!("{}={:?}", s.record.id, s.state));
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// The pods' workers: one per pod uid, fed by the watch.
pub struct Workers {
    kubelet: Arc<Kubelet>,
    pods: Mutex<HashMap<String, tokio::sync::watch::Sender<Update>>>,
}

/// The newest state of a pod for its worker, and when it came (for [`crate::trace`]).
#[derive(Clone)]
struct Update {
    pod: Option<Pod>,
    at: Instant,
}

impl Workers {
    pub fn new(kubelet: Arc<Kubelet>) -> Arc<Workers> {
        Arc::new(Workers {
            kubelet,
            pods: Mutex::new(HashMap::new()),
        })
    }

    /// The pod changed (or, with `None`, is gone): its worker syncs it.
    pub fn update(self: &Arc<Self>, uid: &str, pod: Option<Pod>) {
        let mut pods = self.pods.lock().expect("not poisoned");
        let update = Update {
            pod,
            at: Instant::now(),
        };
        if let Some(tx) = pods.get(uid)
            && tx.send(update.clone()).is_ok()
        {
            return;
        }
        let (tx, rx) = tokio::sync::watch::channel(update);
        pods.insert(uid.to_string(), tx);
        let me = self.clone();
        let uid = uid.to_string();
        tokio::spawn(async move {
            me.run(uid.clone(), rx).await;
            me.pods.lock().expect("not poisoned").remove(&uid);
        });
    }

    /// Something changed on the node for this pod (a container exited): sync it now.
    pub fn poke(&self, uid: &str) {
        if let Some(tx) = self.pods.lock().expect("not poisoned").get(uid) {
            tx.send_modify(|u| u.at = Instant::now());
        }
    }

    pub fn known(&self) -> HashSet<String> {
        self.pods
            .lock()
            .expect("not poisoned")
            .keys()
            .cloned()
            .collect()
    }

    async fn run(&self, uid: String, mut rx: tokio::sync::watch::Receiver<Update>) {
        // Whether this sync answers a change (not a timer): then its wait since the change is logged.
        let mut changed = true;
        loop {
            let Update { pod, at } = rx.borrow_and_update().clone();
            let k = self.kubelet.clone();
            let u = uid.clone();
            let next = tokio::task::spawn_blocking(move || {
                if crate::trace::enabled() {
                    crate::trace::begin(&pod.as_ref().map_or(u.clone(), pod_key));
                }
                if changed {
                    crate::trace::note("queued", at.elapsed());
                }
                let next = k.sync(&u, pod.as_ref());
                crate::trace::end();
                next
            })
            .await
            .unwrap_or(Next::After(Duration::from_secs(1)));
            match next {
                Next::Done => return,
                Next::After(d) => {
                    tokio::select! {
                        _ = tokio::time::sleep(d) => changed = false,
                        c = rx.changed() => {
                            if c.is_err() {
                                return;
                            }
                            changed = true;
                        }
                    }
                }
            }
        }
    }
}

//! Events as kubelet records them: source `kubelet` on the node, the container named in
//! `involvedObject.fieldPath`, repeats of the same event folded into one with a count (what
//! `kubectl describe` shows as `(x4 over 2m)`). Recording never waits for the API server: events go
//! through one queue to a background task that posts them in order, as kubelet's event broadcaster
//! does, so a pod's sync does not pay a round trip per event.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Normal,
    Warning,
}

/// What makes two events the same one: namespace, object uid, field path, reason, message.
type EventKey = (String, String, String, String, String);

/// Records events for one node: a handle on the queue of [`Poster`].
pub struct Recorder {
    tx: tokio::sync::mpsc::UnboundedSender<Job>,
}

enum Job {
    Event {
        pod: Box<Pod>,
        container: Option<String>,
        kind: Type,
        reason: String,
        message: String,
    },
    Forget(String),
}

impl Recorder {
    /// Starts the posting task on `handle`.
    pub fn start(client: kube::Client, node: &str, handle: &tokio::runtime::Handle) -> Recorder {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let poster = Poster {
            client,
            node: node.to_string(),
            seen: Mutex::new(HashMap::new()),
        };
        handle.spawn(async move {
            while let Some(job) = rx.recv().await {
                match job {
                    Job::Event {
                        pod,
                        container,
                        kind,
                        reason,
                        message,
                    } => {
                        poster
                            .pod(&pod, container.as_deref(), kind, &reason, &message)
                            .await
                    }
                    Job::Forget(uid) => poster.forget(&uid),
                }
            }
        });
        Recorder { tx }
    }

    /// Queues an event about a pod, or one of its containers when `container` is given.
    pub fn pod(&self, pod: &Pod, container: Option<&str>, kind: Type, reason: &str, message: &str) {
        let _ = self.tx.send(Job::Event {
            pod: Box::new(pod.clone()),
            container: container.map(String::from),
            kind,
            reason: reason.to_string(),
            message: message.to_string(),
        });
    }

    /// Forgets the folding state of a pod that is gone (after its queued events).
    pub fn forget(&self, pod_uid: &str) {
        let _ = self.tx.send(Job::Forget(pod_uid.to_string()));
    }
}

/// Posts events to the API server.
struct Poster {
    client: kube::Client,
    node: String,
    /// Each event recorded so far, to its name and count.
    seen: Mutex<HashMap<EventKey, (String, i32)>>,
}

impl Poster {
    /// Posts an event (or counts a repeat). Failures are logged, never returned: an event is not
    /// worth failing a pod's sync over.
    async fn pod(
        &self,
        pod: &Pod,
        container: Option<&str>,
        kind: Type,
        reason: &str,
        message: &str,
    ) {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let field_path = container.map(|c| container_field_path(pod, c));
        let key = (
            ns.clone(),
            uid.clone(),
            field_path.clone().unwrap_or_default(),
            reason.to_string(),
            message.to_string(),
        );
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let now = jiff::Timestamp::now();
        let existing = self.seen.lock().expect("not poisoned").get(&key).cloned();
        if let Some((event_name, count)) = existing {
            let patch = json!({"count": count + 1, "lastTimestamp": Time(now)});
            if api
                .patch(&event_name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .is_ok()
            {
                self.seen
                    .lock()
                    .expect("not poisoned")
                    .insert(key, (event_name, count + 1));
                return;
            }
        }
        // A new warning also goes to the agent's log, as kubelet logs what goes wrong with a pod
        // (on a node the log is where one looks first: seed 002's `minikube logs`). Repeats are
        // only counted, so a pod in back-off does not flood it.
        if kind == Type::Warning {
            let what = container
                .map(|c| format!(" container {c}"))
                .unwrap_or_default();
            eprintln!("warning: pod {ns}/{name} ({uid}){what}: {reason}: {message}");
        }
        let event_name = format!("{name}.{:x}", now.as_nanosecond());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(event_name.clone()),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                uid: Some(uid),
                field_path,
                resource_version: pod.metadata.resource_version.clone(),
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(
                match kind {
                    Type::Normal => "Normal",
                    Type::Warning => "Warning",
                }
                .into(),
            ),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node.clone()),
            }),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            count: Some(1),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                self.seen
                    .lock()
                    .expect("not poisoned")
                    .insert(key, (event_name, 1));
            }
            Err(e) => eprintln!("record event {reason} for pod {ns}/{name}: {e}"),
        }
    }

    fn forget(&self, pod_uid: &str) {
        self.seen
            .lock()
            .expect("not poisoned")
            .retain(|k, _| k.1 != pod_uid);
    }
}

/// `spec.containers{name}` or `spec.initContainers{name}`, as kubelet names a container in events.
pub fn container_field_path(pod: &Pod, container: &str) -> String {
    let init = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|i| i.iter().any(|c| c.name == container));
    if init {
        format!("spec.initContainers{{{container}}}")
    } else {
        format!("spec.containers{{{container}}}")
    }
}

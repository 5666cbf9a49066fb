//! The in-memory state: every object, the watch history and the live event channels.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::watch::{WatchEvent, Watcher};
use crate::{HISTORY, ObjectKey, StoreError};

/// A stored object: its resourceVersion and serialized JSON.
#[derive(Debug, Clone)]
pub struct Entry {
    pub rv: u64,
    pub object: Arc<[u8]>,
}

/// Live events per resource are fanned out through a broadcast channel of this capacity; a watcher that
/// falls this far behind is ended (and clients re-watch).
const CHANNEL: usize = 16_384;

pub(crate) struct State {
    pub rv: u64,
    /// Watches may start from any resourceVersion >= this.
    pub window_start: u64,
    objects: BTreeMap<ObjectKey, Entry>,
    history: VecDeque<Arc<WatchEvent>>,
    /// Behind its own lock so that a watch (holding the state's read lock) can create a channel.
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<WatchEvent>>>>,
}

impl State {
    pub fn new(objects: BTreeMap<ObjectKey, (u64, Arc<[u8]>)>, rv: u64) -> State {
        let objects = objects
            .into_iter()
            .map(|(k, (rv, object))| (k, Entry { rv, object }))
            .collect();
        State {
            rv,
            window_start: rv,
            objects,
            history: VecDeque::new(),
            channels: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Entry> {
        self.objects.get(key).cloned()
    }

    pub fn list(&self, resource: &str, namespace: Option<&str>) -> Vec<(ObjectKey, Entry)> {
        let start = ObjectKey::new(resource, namespace.unwrap_or(""), "");
        self.objects
            .range(start..)
            .take_while(|(k, _)| {
                k.resource == resource && namespace.is_none_or(|ns| k.namespace == ns)
            })
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }

    pub fn watch(
        &self,
        resource: &str,
        namespace: Option<&str>,
        from: Option<u64>,
    ) -> Result<Watcher, StoreError> {
        let mut replay = VecDeque::new();
        if let Some(from) = from {
            if from < self.window_start {
                return Err(StoreError::Gone {
                    requested: from,
                    oldest: self.window_start + 1,
                });
            }
            for e in self.history.iter().filter(|e| e.rv > from) {
                if e.key.resource == resource && namespace.is_none_or(|ns| e.key.namespace == ns) {
                    replay.push_back(e.clone());
                }
            }
        }
        let rx = self.sender(resource).subscribe();
        Ok(Watcher::new(replay, rx, resource, namespace))
    }

    /// The channel of `resource`, created on first use.
    fn sender(&self, resource: &str) -> broadcast::Sender<Arc<WatchEvent>> {
        let mut ch = self.channels.lock().expect("channel lock");
        ch.entry(resource.to_string())
            .or_insert_with(|| broadcast::channel(CHANNEL).0)
            .clone()
    }

    /// Applies a committed batch: objects, resourceVersion, history and live events.
    pub fn apply(&mut self, rv: u64, events: Vec<WatchEvent>) {
        self.rv = rv;
        for ev in events {
            match ev.ty {
                crate::EventType::Deleted => {
                    self.objects.remove(&ev.key);
                }
                _ => {
                    self.objects.insert(
                        ev.key.clone(),
                        Entry {
                            rv: ev.rv,
                            object: ev.object.clone(),
                        },
                    );
                }
            }
            let ev = Arc::new(ev);
            if self.history.len() >= HISTORY
                && let Some(old) = self.history.pop_front()
            {
                self.window_start = old.rv;
            }
            self.history.push_back(ev.clone());
            // no receivers is fine: nobody watches this resource
            let _ = self.sender(&ev.key.resource).send(ev);
        }
    }
}

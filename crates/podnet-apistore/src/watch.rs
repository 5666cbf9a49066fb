//! Watch events and the receiving end of a watch.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::ObjectKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change. For deletes, `object` is the last state with the deletion's resourceVersion.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub ty: EventType,
    pub key: ObjectKey,
    pub rv: u64,
    pub object: Arc<[u8]>,
    /// The object before the change (for selector transitions), if it existed.
    pub prev: Option<Arc<[u8]>>,
}

/// The receiving end of a watch: replayed history first, then live events.
pub struct Watcher {
    replay: VecDeque<Arc<WatchEvent>>,
    rx: broadcast::Receiver<Arc<WatchEvent>>,
    namespace: Option<String>,
}

/// The watcher fell too far behind the live stream and must be restarted (410 Gone for the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lagged;

impl Watcher {
    pub(crate) fn new(
        replay: VecDeque<Arc<WatchEvent>>,
        rx: broadcast::Receiver<Arc<WatchEvent>>,
        _resource: &str,
        namespace: Option<&str>,
    ) -> Self {
        Watcher {
            replay,
            rx,
            namespace: namespace.map(String::from),
        }
    }

    /// The next event; `Err(Lagged)` if events were lost; `Ok(None)` if the store closed.
    pub async fn next(&mut self) -> Result<Option<Arc<WatchEvent>>, Lagged> {
        if let Some(e) = self.replay.pop_front() {
            return Ok(Some(e));
        }
        loop {
            match self.rx.recv().await {
                Ok(e) => {
                    if self
                        .namespace
                        .as_ref()
                        .is_none_or(|ns| *ns == e.key.namespace)
                    {
                        return Ok(Some(e));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => return Err(Lagged),
                Err(broadcast::error::RecvError::Closed) => return Ok(None),
            }
        }
    }
}

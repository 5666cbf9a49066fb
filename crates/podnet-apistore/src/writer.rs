//! The writer thread: group commit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use redb::Database;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::db::{self, Put};
use crate::state::State;
use crate::watch::{EventType, WatchEvent};
use crate::{MAX_BATCH, ObjectKey, Precondition, StoreError, Written};

struct Request {
    key: ObjectKey,
    object: Option<Value>,
    pre: Precondition,
    reply: oneshot::Sender<Result<Written, StoreError>>,
}

#[derive(Clone)]
pub(crate) struct WriterHandle {
    tx: Arc<Mutex<Option<mpsc::UnboundedSender<Request>>>>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl WriterHandle {
    pub async fn submit(
        &self,
        key: ObjectKey,
        object: Option<Value>,
        pre: Precondition,
    ) -> Result<Written, StoreError> {
        let (reply, rx) = oneshot::channel();
        {
            let tx = self.tx.lock().expect("writer lock");
            let tx = tx.as_ref().ok_or(StoreError::Closed)?;
            tx.send(Request {
                key,
                object,
                pre,
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Stops accepting writes and waits until the writer has committed the accepted ones and released
    /// the database.
    pub fn close(&self) {
        self.tx.lock().expect("writer lock").take();
        if let Some(t) = self.thread.lock().expect("writer lock").take() {
            let _ = t.join();
        }
    }
}

pub(crate) fn spawn(db: Database, state: Arc<RwLock<State>>) -> Result<WriterHandle, StoreError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let thread = std::thread::Builder::new()
        .name("apistore-writer".into())
        .spawn(move || run(db, state, rx))
        .map_err(|e| StoreError::Io(format!("spawn writer: {e}")))?;
    Ok(WriterHandle {
        tx: Arc::new(Mutex::new(Some(tx))),
        thread: Arc::new(Mutex::new(Some(thread))),
    })
}

fn run(db: Database, state: Arc<RwLock<State>>, mut rx: mpsc::UnboundedReceiver<Request>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        process(&db, &state, batch);
    }
}

/// Sets `metadata.resourceVersion` and serializes.
fn stamp(mut obj: Value, rv: u64) -> Arc<[u8]> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = Value::Object(Default::default());
    }
    obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
    Arc::from(serde_json::to_vec(&obj).expect("a JSON value serializes"))
}

/// An object as the batch sees it: its resourceVersion and bytes, or absent.
type Current = Option<(u64, Arc<[u8]>)>;
type Reply = oneshot::Sender<Result<Written, StoreError>>;

fn process(db: &Database, state: &RwLock<State>, batch: Vec<Request>) {
    // The writer is the only mutator, so what it reads here stays true until it applies the batch.
    let (mut rv, mut current): (u64, HashMap<ObjectKey, Current>) = {
        let s = state.read().expect("store lock");
        let mut cur = HashMap::new();
        for r in &batch {
            cur.entry(r.key.clone())
                .or_insert_with(|| s.get(&r.key).map(|e| (e.rv, e.object)));
        }
        (s.rv, cur)
    };
    let mut events = Vec::new();
    let mut outcomes: Vec<(Reply, Result<Written, StoreError>)> = Vec::new();
    for r in batch {
        let existing = current.get(&r.key).cloned().flatten();
        let check = match (r.pre, &existing) {
            (Precondition::Absent, Some(_)) => Err(StoreError::AlreadyExists(r.key.clone())),
            (Precondition::Exists | Precondition::Version(_), None) => {
                Err(StoreError::NotFound(r.key.clone()))
            }
            (Precondition::Version(want), Some((have, _))) if want != *have => {
                Err(StoreError::Conflict {
                    key: r.key.clone(),
                    expected: want,
                    found: *have,
                })
            }
            _ => Ok(()),
        };
        if let Err(e) = check {
            outcomes.push((r.reply, Err(e)));
            continue;
        }
        if r.object.is_none() && existing.is_none() {
            outcomes.push((r.reply, Err(StoreError::NotFound(r.key.clone()))));
            continue;
        }
        rv += 1;
        let prev = existing.as_ref().map(|(_, b)| b.clone());
        let (ty, bytes) = match r.object {
            Some(obj) => (
                if existing.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                },
                stamp(obj, rv),
            ),
            None => {
                let last: Value = existing
                    .as_ref()
                    .and_then(|(_, b)| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Object(Default::default()));
                (EventType::Deleted, stamp(last, rv))
            }
        };
        let stored = if ty == EventType::Deleted {
            None
        } else {
            Some((rv, bytes.clone()))
        };
        current.insert(r.key.clone(), stored);
        events.push(WatchEvent {
            ty,
            key: r.key,
            rv,
            object: bytes.clone(),
            prev,
        });
        outcomes.push((r.reply, Ok(Written { rv, object: bytes })));
    }
    if !events.is_empty() {
        let puts: Vec<Put<'_>> = events
            .iter()
            .map(|e| Put {
                key: &e.key,
                bytes: if e.ty == EventType::Deleted {
                    None
                } else {
                    Some(&e.object)
                },
            })
            .collect();
        if let Err(e) = db::commit(db, &puts, rv) {
            // nothing of this batch is applied: every accepted write fails
            for (reply, outcome) in outcomes {
                let _ = reply.send(outcome.and(Err(e.clone())));
            }
            return;
        }
        state.write().expect("store lock").apply(rv, events);
    }
    for (reply, outcome) in outcomes {
        let _ = reply.send(outcome);
    }
}

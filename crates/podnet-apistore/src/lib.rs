//! The API server's embedded durable store.
//!
//! - **Layout** (redb, one file `store.redb`): table `objects` maps `resource\0namespace\0name` to the
//!   object's JSON (which carries its own `metadata.resourceVersion`); table `meta` holds
//!   `format_version` ([`FORMAT_VERSION`]) and `rv`, the last resourceVersion handed out.
//! - **resourceVersion**: one global counter, incremented by every write and stored in the same redb
//!   transaction as the write, so it only grows, across restarts too.
//! - **Group commit**: writes go to one writer thread, which takes every request waiting in its queue
//!   (up to [`MAX_BATCH`]), checks each one's precondition against the cache and the writes before it in
//!   the batch, and commits the whole batch in one durable (fsync'd) redb transaction. A write is
//!   acknowledged only after that commit, so every acknowledged write survives kill -9.
//! - **Cache**: all objects stay in memory as their serialized JSON (shared `Arc<[u8]>`), so gets and
//!   lists never touch the disk; the cache is updated after each commit, under the same lock that
//!   publishes the batch's watch events.
//! - **Watch**: the last [`HISTORY`] events are kept; a watch from resourceVersion R replays the events
//!   after R and then follows live ones, or fails with [`StoreError::Gone`] when R is older than the
//!   window (a fresh store's window starts at its current resourceVersion, so watches from before a
//!   restart get 410 Gone and clients relist). Subscribing happens under the cache lock, so no event is
//!   missed or duplicated between the replay and the live stream.

mod db;
mod error;
mod key;
mod state;
mod watch;
mod writer;

use std::path::Path;
use std::sync::{Arc, RwLock};

pub use error::StoreError;
pub use key::ObjectKey;
pub use state::Entry;
pub use watch::{EventType, WatchEvent, Watcher};

/// The on-disk format this build reads and writes.
pub const FORMAT_VERSION: u64 = 1;
/// The most writes committed in one transaction.
pub const MAX_BATCH: usize = 1024;
/// How many events the watch window keeps.
pub const HISTORY: usize = 20_000;

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    state: Arc<RwLock<state::State>>,
    writer: writer::WriterHandle,
}

/// What a successful write returns: the object as stored (with its new resourceVersion).
#[derive(Debug, Clone)]
pub struct Written {
    pub rv: u64,
    pub object: Arc<[u8]>,
}

/// A condition a write checks against the current object, atomically with the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// The object must not exist (create).
    Absent,
    /// The object must exist.
    Exists,
    /// The object must exist at exactly this resourceVersion.
    Version(u64),
}

impl Store {
    /// Opens (or creates) the store in `dir` and loads every object into memory.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Io(format!("create {}: {e}", dir.display())))?;
        // the store holds every Secret in the clear: owner-only, like etcd's data directory
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| StoreError::Io(format!("restrict {}: {e}", dir.display())))?;
        let (db, objects, rv) = db::open(&dir.join("store.redb"))?;
        let state = Arc::new(RwLock::new(state::State::new(objects, rv)));
        let writer = writer::spawn(db, state.clone())?;
        Ok(Store { state, writer })
    }

    /// The newest resourceVersion handed out.
    pub fn current_rv(&self) -> u64 {
        self.state.read().expect("store lock").rv
    }

    /// One object.
    pub fn get(&self, key: &ObjectKey) -> Option<Entry> {
        self.state.read().expect("store lock").get(key)
    }

    /// All objects of a resource (optionally in one namespace), sorted by namespace and name, with the
    /// resourceVersion the list is consistent with.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> (Vec<(ObjectKey, Entry)>, u64) {
        let s = self.state.read().expect("store lock");
        (s.list(resource, namespace), s.rv)
    }

    /// Creates, updates or deletes one object, durably. `object` is `None` for a delete. The store sets
    /// `metadata.resourceVersion`.
    pub async fn write(
        &self,
        key: ObjectKey,
        object: Option<serde_json::Value>,
        pre: Precondition,
    ) -> Result<Written, StoreError> {
        self.writer.submit(key, object, pre).await
    }

    pub async fn create(
        &self,
        key: ObjectKey,
        object: serde_json::Value,
    ) -> Result<Written, StoreError> {
        self.write(key, Some(object), Precondition::Absent).await
    }

    /// Replaces an object; with `rv` the write fails with a conflict unless the stored object is at that
    /// resourceVersion.
    pub async fn update(
        &self,
        key: ObjectKey,
        object: serde_json::Value,
        rv: Option<u64>,
    ) -> Result<Written, StoreError> {
        self.write(
            key,
            Some(object),
            rv.map_or(Precondition::Exists, Precondition::Version),
        )
        .await
    }

    /// Removes an object; returns its last state (carrying the deletion's resourceVersion).
    pub async fn delete(&self, key: ObjectKey, rv: Option<u64>) -> Result<Written, StoreError> {
        self.write(
            key,
            None,
            rv.map_or(Precondition::Exists, Precondition::Version),
        )
        .await
    }

    /// Watches a resource (optionally one namespace) from resourceVersion `from` (exclusive). With
    /// `from == None` the watch starts now and replays nothing.
    pub fn watch(
        &self,
        resource: &str,
        namespace: Option<&str>,
        from: Option<u64>,
    ) -> Result<Watcher, StoreError> {
        let s = self.state.read().expect("store lock");
        s.watch(resource, namespace, from)
    }

    /// Like [`Store::watch`] from now, together with a snapshot of the current objects (for watches
    /// that start with the current state: resourceVersion unset or 0, and watch-list).
    pub fn snapshot_and_watch(
        &self,
        resource: &str,
        namespace: Option<&str>,
    ) -> (Vec<(ObjectKey, Entry)>, u64, Watcher) {
        let s = self.state.read().expect("store lock");
        let items = s.list(resource, namespace);
        let w = s
            .watch(resource, namespace, None)
            .expect("a watch from now cannot be too old");
        (items, s.rv, w)
    }

    /// The oldest resourceVersion a watch can start from.
    pub fn window_start(&self) -> u64 {
        self.state.read().expect("store lock").window_start
    }

    /// Stops the writer thread after it has committed what it already accepted.
    pub fn close(&self) {
        self.writer.close();
    }
}

//! The redb layer: open/check the format, load everything, commit batches.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::{FORMAT_VERSION, ObjectKey, StoreError};

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REDB_CACHE: usize = 8 * 1024 * 1024;

fn io(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(format!("{what}: {e}"))
}

/// Every stored object with its resourceVersion and bytes.
pub(crate) type Loaded = BTreeMap<ObjectKey, (u64, Arc<[u8]>)>;

/// Opens the database, checking (or recording) the format version, and loads all objects with their
/// resourceVersions and the last resourceVersion handed out.
pub(crate) fn open(path: &Path) -> Result<(Database, Loaded, u64), StoreError> {
    // every object also lives in the in-memory cache and reads never go to redb after the initial
    // load, so redb's own page cache only needs to cover the B-tree pages a commit touches
    let db = Database::builder()
        .set_cache_size(REDB_CACHE)
        .create(path)
        .map_err(|e| io(&format!("open {}", path.display()), e))?;
    let txn = db.begin_write().map_err(|e| io("begin", e))?;
    {
        let mut meta = txn.open_table(META).map_err(|e| io("open meta", e))?;
        let found = meta
            .get("format_version")
            .map_err(|e| io("read format", e))?
            .map(|v| v.value());
        match found {
            Some(v) if v != FORMAT_VERSION => {
                return Err(StoreError::Format {
                    found: v,
                    supported: FORMAT_VERSION,
                });
            }
            Some(_) => {}
            None => {
                meta.insert("format_version", FORMAT_VERSION)
                    .map_err(|e| io("write format", e))?;
            }
        }
        txn.open_table(OBJECTS).map_err(|e| io("open objects", e))?;
    }
    txn.commit().map_err(|e| io("commit", e))?;

    let read = db.begin_read().map_err(|e| io("begin read", e))?;
    let meta = read.open_table(META).map_err(|e| io("open meta", e))?;
    let rv = meta
        .get("rv")
        .map_err(|e| io("read rv", e))?
        .map(|v| v.value())
        .unwrap_or(0);
    let table = read
        .open_table(OBJECTS)
        .map_err(|e| io("open objects", e))?;
    let mut objects = BTreeMap::new();
    for item in table.iter().map_err(|e| io("scan", e))? {
        let (k, v) = item.map_err(|e| io("scan", e))?;
        let Some(key) = ObjectKey::decode(k.value()) else {
            continue;
        };
        let bytes: Arc<[u8]> = Arc::from(v.value());
        let obj_rv = object_rv(&bytes).unwrap_or(0);
        objects.insert(key, (obj_rv, bytes));
    }
    drop(table);
    drop(meta);
    drop(read);
    Ok((db, objects, rv))
}

/// The resourceVersion recorded in a stored object.
pub(crate) fn object_rv(bytes: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(rename = "resourceVersion")]
        rv: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Obj {
        metadata: Option<Meta>,
    }
    let o: Obj = serde_json::from_slice(bytes).ok()?;
    o.metadata?.rv?.parse().ok()
}

/// One write of a batch: the key and the new bytes (`None` deletes).
pub(crate) struct Put<'a> {
    pub key: &'a ObjectKey,
    pub bytes: Option<&'a [u8]>,
}

/// Commits a batch durably, with the new last resourceVersion.
pub(crate) fn commit(db: &Database, puts: &[Put<'_>], rv: u64) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(|e| io("begin", e))?;
    {
        let mut t = txn.open_table(OBJECTS).map_err(|e| io("open objects", e))?;
        for p in puts {
            let k = p.key.encode();
            match p.bytes {
                Some(b) => {
                    t.insert(k.as_str(), b).map_err(|e| io("insert", e))?;
                }
                None => {
                    t.remove(k.as_str()).map_err(|e| io("remove", e))?;
                }
            }
        }
        let mut m = txn.open_table(META).map_err(|e| io("open meta", e))?;
        m.insert("rv", rv).map_err(|e| io("write rv", e))?;
    }
    txn.commit().map_err(|e| io("commit", e))
}

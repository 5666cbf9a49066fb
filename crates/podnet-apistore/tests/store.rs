//! The store's contract: preconditions, monotonic resourceVersions, durability across restarts and
//! kill -9, watch replay, live events and 410 Gone.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use podnet_apistore::{EventType, ObjectKey, Precondition, Store, StoreError};
use serde_json::{Value, json};

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("pods", "default", name)
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}})
}

fn rv_of(bytes: &[u8]) -> u64 {
    let v: Value = serde_json::from_slice(bytes).unwrap();
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn crud_with_preconditions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    rt().block_on(async {
        let a = store.create(key("a"), pod("a")).await.unwrap();
        assert_eq!(rv_of(&a.object), a.rv);
        assert!(matches!(
            store.create(key("a"), pod("a")).await,
            Err(StoreError::AlreadyExists(_))
        ));
        let b = store.update(key("a"), pod("a"), Some(a.rv)).await.unwrap();
        assert!(b.rv > a.rv);
        assert!(matches!(
            store.update(key("a"), pod("a"), Some(a.rv)).await,
            Err(StoreError::Conflict { .. })
        ));
        assert!(matches!(
            store.update(key("zz"), pod("zz"), None).await,
            Err(StoreError::NotFound(_))
        ));
        let d = store.delete(key("a"), None).await.unwrap();
        assert!(d.rv > b.rv);
        assert_eq!(rv_of(&d.object), d.rv);
        assert!(store.get(&key("a")).is_none());
        assert!(matches!(
            store.delete(key("a"), None).await,
            Err(StoreError::NotFound(_))
        ));
    });
}

#[test]
fn lists_are_scoped_and_sorted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    rt().block_on(async {
        for (ns, n) in [("b", "x"), ("a", "y"), ("a", "x")] {
            store
                .create(ObjectKey::new("pods", ns, n), pod(n))
                .await
                .unwrap();
        }
        store
            .create(ObjectKey::new("services", "a", "s"), pod("s"))
            .await
            .unwrap();
    });
    let (all, rv) = store.list("pods", None);
    let names: Vec<String> = all
        .iter()
        .map(|(k, _)| format!("{}/{}", k.namespace, k.name))
        .collect();
    assert_eq!(names, ["a/x", "a/y", "b/x"]);
    assert_eq!(rv, 4);
    assert_eq!(store.list("pods", Some("a")).0.len(), 2);
    assert_eq!(store.list("pods", Some("c")).0.len(), 0);
}

#[test]
fn state_and_resource_versions_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let last = {
        let store = Store::open(dir.path()).unwrap();
        let rv = rt().block_on(async {
            store.create(key("a"), pod("a")).await.unwrap();
            store.create(key("b"), pod("b")).await.unwrap();
            store.delete(key("b"), None).await.unwrap().rv
        });
        store.close();
        rv
    };
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.current_rv(), last);
    assert!(store.get(&key("a")).is_some());
    assert!(store.get(&key("b")).is_none());
    let next = rt().block_on(store.create(key("c"), pod("c"))).unwrap();
    assert_eq!(next.rv, last + 1);
    // a watch from before the restart is too old
    assert!(matches!(
        store.watch("pods", None, Some(1)),
        Err(StoreError::Gone { .. })
    ));
}

#[test]
fn concurrent_writers_share_commits_and_get_distinct_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rvs = rt().block_on(async {
        let mut handles = Vec::new();
        for i in 0..300 {
            let s = store.clone();
            handles.push(tokio::spawn(async move {
                s.create(key(&format!("p{i}")), pod(&format!("p{i}")))
                    .await
                    .unwrap()
                    .rv
            }));
        }
        let mut rvs = Vec::new();
        for h in handles {
            rvs.push(h.await.unwrap());
        }
        rvs
    });
    let mut sorted = rvs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 300);
    assert_eq!(*sorted.last().unwrap(), 300);
}

#[test]
fn watch_replays_history_then_follows() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    rt().block_on(async {
        let a = store.create(key("a"), pod("a")).await.unwrap();
        store.update(key("a"), pod("a"), None).await.unwrap();
        store
            .create(ObjectKey::new("pods", "other", "z"), pod("z"))
            .await
            .unwrap();
        let mut w = store
            .watch("pods", Some("default"), Some(a.rv - 1))
            .unwrap();
        assert_eq!(w.next().await.unwrap().unwrap().ty, EventType::Added);
        assert_eq!(w.next().await.unwrap().unwrap().ty, EventType::Modified);
        store.delete(key("a"), None).await.unwrap();
        let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(ev.ty, EventType::Deleted);
        assert!(ev.prev.is_some());
        let (snap, rv, _w) = store.snapshot_and_watch("pods", None);
        assert_eq!(snap.len(), 1);
        assert_eq!(rv, store.current_rv());
    });
}

#[test]
fn the_store_directory_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    std::fs::create_dir(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = Store::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    store.close();
}

#[test]
fn unsupported_format_versions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.close();
    }
    // a future format, written behind the store's back
    {
        let db = redb::Database::create(dir.path().join("store.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn
                .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                .unwrap();
            meta.insert("format_version", 99).unwrap();
        }
        txn.commit().unwrap();
    }
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::Format {
            found: 99,
            supported: 1
        })
    ));
}

#[test]
fn preconditions_on_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    rt().block_on(async {
        let a = store.create(key("a"), pod("a")).await.unwrap();
        assert!(
            store
                .write(key("a"), Some(pod("a")), Precondition::Version(a.rv))
                .await
                .is_ok()
        );
        assert!(matches!(
            store
                .write(key("a"), None, Precondition::Version(a.rv))
                .await,
            Err(StoreError::Conflict { .. })
        ));
    });
}

/// Child mode: writes objects forever, printing each acknowledged name.
#[test]
fn child_writer() {
    let Ok(dir) = std::env::var("PODNET_APISTORE_CHILD_DIR") else {
        return;
    };
    let store = Store::open(std::path::Path::new(&dir)).unwrap();
    rt().block_on(async {
        let mut i = 0u64;
        loop {
            let mut batch = Vec::new();
            for _ in 0..16 {
                i += 1;
                let s = store.clone();
                let name = format!("k{i}");
                batch.push(tokio::spawn(async move {
                    let w = s.create(key(&name), pod(&name)).await.unwrap();
                    (name, w.rv)
                }));
            }
            for h in batch {
                let (name, rv) = h.await.unwrap();
                println!("ACK {name} {rv}");
            }
            if i > 200_000 {
                break;
            }
        }
    });
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["child_writer", "--exact", "--nocapture", "--test-threads=1"])
        .env("PODNET_APISTORE_CHILD_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while acked.len() < 500 {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.strip_prefix("ACK ") {
            let (name, rv) = rest.split_once(' ').unwrap();
            acked.push((name.to_string(), rv.parse::<u64>().unwrap()));
        }
    }
    // SIGKILL: no destructors, no flush
    unsafe { libc_kill(child.id() as i32, 9) };
    child.wait().unwrap();
    assert!(
        acked.len() >= 500,
        "child acknowledged only {} writes",
        acked.len()
    );
    let store = Store::open(dir.path()).unwrap();
    for (name, rv) in &acked {
        let e = store
            .get(&key(name))
            .unwrap_or_else(|| panic!("acknowledged {name} lost"));
        assert_eq!(e.rv, *rv);
    }
    let max = acked.iter().map(|(_, rv)| *rv).max().unwrap();
    assert!(store.current_rv() >= max);
    let next = rt()
        .block_on(store.create(key("after"), pod("after")))
        .unwrap();
    assert!(next.rv > max);
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

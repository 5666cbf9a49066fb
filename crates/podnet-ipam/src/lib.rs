//! The durable address store of `podnet-cni`: one JSON state file per network, changed only under an
//! exclusive lock, replaced atomically (write, fsync, rename, fsync the directory).
//!
//! Why this shape: many ADDs run at once (one process each), any of them may be killed at any moment,
//! and the machine may lose power. The lock serialises allocation across processes; the rename makes
//! every change all-or-nothing, so a killed plugin leaves either the old state or the new one, never a
//! torn file; fsync makes an acknowledged reservation survive a power cut. A reservation whose ADD then
//! died is found by GC (`cni.dev/valid-attachments`) or reused by the retried ADD of the same owner.

use podnet_types::ipam::{PoolState, STATE_FORMAT};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock";
/// How long an operation waits for the lock before answering "try again later" (CNI error 11).
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {}: {cause}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        cause: io::Error,
    },
    #[error("IPAM state {} is corrupt ({reason})", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("IPAM state {} has format {found}, newer than this plugin's {STATE_FORMAT}", path.display())]
    NewerFormat { path: PathBuf, found: u32 },
    #[error("IPAM lock {} still held by another operation after {:?}", path.display(), LOCK_TIMEOUT)]
    LockTimeout { path: PathBuf },
}

pub type Result<T> = std::result::Result<T, Error>;

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |cause| Error::Io {
        what,
        path: path.to_path_buf(),
        cause,
    }
}

/// The store of one network: `<dataDir>/<network>/`.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn open(data_dir: &Path, network: &str) -> Result<Store> {
        let dir = data_dir.join(network);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_err("create IPAM directory", &dir))?;
        Ok(Store { dir })
    }

    /// The store of a network if it was ever created; `None` means nothing was ever allocated there
    /// (DEL and STATUS use this, so they never create directories as a side effect).
    pub fn existing(data_dir: &Path, network: &str) -> Option<Store> {
        let dir = data_dir.join(network);
        dir.is_dir().then_some(Store { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the network's lock (waiting at most [`LOCK_TIMEOUT`]) and loads the state.
    pub fn lock(&self) -> Result<Locked> {
        let lock = self.take_lock()?;
        self.remove_stale_temporaries();
        let state_path = self.dir.join(STATE_FILE);
        let state = load(&state_path)?;
        Ok(Locked {
            _lock: lock,
            dir: self.dir.clone(),
            state_path,
            state,
        })
    }

    /// Takes the lock without reading the state, moving an unreadable state file aside
    /// (`state.json.corrupt-<unix seconds>`) so it is kept for inspection; the caller fills the returned
    /// empty state from another source of truth and commits it.
    pub fn lock_for_rebuild(&self) -> Result<Locked> {
        let lock = self.take_lock()?;
        let state_path = self.dir.join(STATE_FILE);
        if let Err(Error::Corrupt { .. }) = load(&state_path) {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let aside = self.dir.join(format!("{STATE_FILE}.corrupt-{secs}"));
            fs::rename(&state_path, &aside)
                .map_err(io_err("move the corrupt IPAM state aside", &state_path))?;
        }
        Ok(Locked {
            _lock: lock,
            dir: self.dir.clone(),
            state_path,
            state: PoolState::new(),
        })
    }

    fn take_lock(&self) -> Result<File> {
        let lock_path = self.dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&lock_path)
            .map_err(io_err("open IPAM lock", &lock_path))?;
        acquire(&lock, &lock_path)?;
        Ok(lock)
    }

    /// Temporary files of writers killed between writing and renaming. Only lock holders write them,
    /// so under the lock every one of them is abandoned.
    fn remove_stale_temporaries(&self) {
        let prefix = format!(".{STATE_FILE}.");
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(&prefix))
                {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }

    /// Reads the state without the lock, for reporting (`podnet-cni` STATUS, `podnet` tools).
    pub fn peek(&self) -> Result<PoolState> {
        load(&self.dir.join(STATE_FILE))
    }
}

/// Waits for the exclusive lock with a bounded, backing-off poll: `flock` itself cannot time out.
fn acquire(lock: &File, path: &Path) -> Result<()> {
    let deadline = Instant::now() + LOCK_TIMEOUT;
    let mut pause = Duration::from_micros(200);
    loop {
        // SAFETY: flock on an fd we own.
        let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) && err.kind() != io::ErrorKind::Interrupted
        {
            return Err(Error::Io {
                what: "lock",
                path: path.to_path_buf(),
                cause: err,
            });
        }
        if Instant::now() >= deadline {
            return Err(Error::LockTimeout {
                path: path.to_path_buf(),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

fn load(path: &Path) -> Result<PoolState> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(PoolState::new()),
        Err(e) => {
            return Err(Error::Io {
                what: "read IPAM state",
                path: path.to_path_buf(),
                cause: e,
            });
        }
    };
    let state: PoolState = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if state.format > STATE_FORMAT {
        return Err(Error::NewerFormat {
            path: path.to_path_buf(),
            found: state.format,
        });
    }
    Ok(state)
}

/// The state of one network, held under its lock. Dropping it releases the lock without writing.
pub struct Locked {
    _lock: File,
    dir: PathBuf,
    state_path: PathBuf,
    pub state: PoolState,
}

impl Locked {
    /// Makes the current state durable: after this returns, a crash or power cut keeps it.
    pub fn commit(&mut self) -> Result<()> {
        self.state.format = STATE_FORMAT;
        let tmp = self
            .dir
            .join(format!(".{STATE_FILE}.{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(&self.state).expect("state serializes");
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(io_err("write IPAM state", &tmp))?;
        f.write_all(&bytes)
            .and_then(|_| f.sync_all())
            .map_err(io_err("write IPAM state", &tmp))?;
        fs::rename(&tmp, &self.state_path)
            .map_err(io_err("replace IPAM state", &self.state_path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("sync IPAM directory", &self.dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podnet_types::cni::Attachment;
    use podnet_types::ipam::Pool;
    use std::net::Ipv4Addr;

    fn pool() -> Pool {
        Pool {
            start: "10.9.0.1".parse().unwrap(),
            end: "10.9.0.254".parse().unwrap(),
            gateway: "10.9.0.1".parse().unwrap(),
        }
    }

    fn att(i: usize) -> Attachment {
        Attachment {
            container_id: format!("c{i}"),
            ifname: "eth0".into(),
        }
    }

    #[test]
    fn reservations_survive_reopening() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), "net").unwrap();
        let ip = {
            let mut l = store.lock().unwrap();
            let ip = l.state.allocate(&pool(), &att(1), None).unwrap();
            l.commit().unwrap();
            ip
        };
        let again = Store::open(tmp.path(), "net").unwrap();
        assert_eq!(again.peek().unwrap().find(&att(1)), Some(ip));
    }

    #[test]
    fn uncommitted_changes_are_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), "net").unwrap();
        {
            let mut l = store.lock().unwrap();
            l.state.allocate(&pool(), &att(1), None).unwrap();
        }
        assert!(store.peek().unwrap().reservations.is_empty());
    }

    #[test]
    fn corrupt_state_is_reported_not_reset() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), "net").unwrap();
        fs::write(
            store.dir().join(STATE_FILE),
            b"{\"format\": 1, \"reservations\": {",
        )
        .unwrap();
        let err = store.lock().err().expect("corrupt");
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }

    #[test]
    fn a_corrupt_state_is_moved_aside_for_a_rebuild() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), "net").unwrap();
        fs::write(store.dir().join(STATE_FILE), b"{garbage").unwrap();
        let mut l = store.lock_for_rebuild().unwrap();
        assert!(l.state.reservations.is_empty());
        l.state
            .allocate(&pool(), &att(7), Some("10.9.0.7".parse().unwrap()))
            .unwrap();
        l.commit().unwrap();
        drop(l);
        assert_eq!(
            store.peek().unwrap().find(&att(7)),
            Some("10.9.0.7".parse().unwrap())
        );
        let kept = fs::read_dir(store.dir())
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains(".corrupt-"));
        assert!(kept, "the corrupt file is kept for inspection");
    }

    #[test]
    fn abandoned_temporaries_are_removed_under_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), "net").unwrap();
        fs::write(store.dir().join(".state.json.12345"), b"half").unwrap();
        drop(store.lock().unwrap());
        assert!(!store.dir().join(".state.json.12345").exists());
    }

    #[test]
    fn existing_does_not_create() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(Store::existing(tmp.path(), "net").is_none());
        assert!(!tmp.path().join("net").exists());
        Store::open(tmp.path(), "net").unwrap();
        assert!(Store::existing(tmp.path(), "net").is_some());
    }

    #[test]
    fn concurrent_processes_never_share_an_address() {
        // Threads with separate lock fds behave like separate processes for flock.
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let handles: Vec<_> = (0..16)
            .map(|t| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let store = Store::open(&dir, "net").unwrap();
                    (0..10)
                        .map(|i| {
                            let mut l = store.lock().unwrap();
                            let ip = l.state.allocate(&pool(), &att(t * 100 + i), None).unwrap();
                            l.commit().unwrap();
                            ip
                        })
                        .collect::<Vec<Ipv4Addr>>()
                })
            })
            .collect();
        let mut all: Vec<Ipv4Addr> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "an address was handed out twice");
        assert_eq!(
            Store::open(&dir, "net")
                .unwrap()
                .peek()
                .unwrap()
                .reservations
                .len(),
            160
        );
    }
}

//! Container root filesystems: an overlay of the image's snapshots (top layer first) plus the
//! container's own upper and work directories, recorded so the image cannot be removed under it.

use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::fsutil;
use crate::store::{ImageRecord, Store, StoreError, io};

/// Who uses which image: kept in `rootfs/<hash>/record.json` until [`Store::remove_rootfs`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RootfsRecord {
    pub key: String,
    /// Human description of the user, e.g. `pod default/web-1 container nginx`.
    pub owner: String,
    pub image: String,
    pub image_digest: Digest,
    /// The layers in the overlay, bottom first.
    pub diff_ids: Vec<Digest>,
    pub mountpoint: PathBuf,
}

/// A prepared root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    pub mountpoint: PathBuf,
    /// The container's writable layer.
    pub upper: PathBuf,
    pub image: ImageRecord,
}

/// The kernel refuses mount options longer than a page.
const MOUNT_DATA_MAX: usize = 4095;

impl Store {
    fn rootfs_dir(&self, key: &str) -> PathBuf {
        self.root()
            .join("rootfs")
            .join(&Digest::sha256_of(key.as_bytes()).hex()[..20])
    }

    /// Mount `image`'s root filesystem for a container at `mountpoint` (created if missing).
    ///
    /// `key` identifies the container (unique per container instance); `owner` says who it is in
    /// errors (`image rm` refusals name it). Preparing a key that is already mounted at the same place
    /// returns it unchanged (a restarted agent may ask again).
    pub fn prepare_rootfs(
        &self,
        image: &str,
        key: &str,
        owner: &str,
        mountpoint: &Path,
    ) -> Result<Rootfs, StoreError> {
        let _gc = self.gc_lock(false)?;
        let record = self.image(image)?;
        let dir = self.rootfs_dir(key);
        let upper = dir.join("upper");
        let work = dir.join("work");
        let rec_path = dir.join("record.json");
        if let Ok(bytes) = std::fs::read(&rec_path)
            && let Ok(existing) = serde_json::from_slice::<RootfsRecord>(&bytes)
            && existing.mountpoint == mountpoint
            && is_mountpoint(mountpoint)
        {
            return Ok(Rootfs {
                mountpoint: mountpoint.to_path_buf(),
                upper,
                image: record,
            });
        }
        let mut lowers = Vec::with_capacity(record.layers.len());
        for l in record.layers.iter().rev() {
            let snap = self
                .snapshot(&l.diff_id)
                .ok_or_else(|| StoreError::Invalid {
                    what: format!("image {}", record.reference),
                    detail: format!(
                        "layer {} is not unpacked in the store (pull it again)",
                        l.diff_id
                    ),
                })?;
            lowers.push(snap);
        }
        if lowers.is_empty() {
            // An image without layers: an empty lower directory.
            let empty = self.root().join("s").join("empty");
            std::fs::create_dir_all(&empty).map_err(io("create empty layer", &empty))?;
            lowers.push(empty);
        }
        for d in [&upper, &work, &mountpoint.to_path_buf()] {
            std::fs::create_dir_all(d).map_err(io("create rootfs directory", d))?;
        }
        let rec = RootfsRecord {
            key: key.to_string(),
            owner: owner.to_string(),
            image: record.reference.clone(),
            image_digest: record.digest.clone(),
            diff_ids: record.layers.iter().map(|l| l.diff_id.clone()).collect(),
            mountpoint: mountpoint.to_path_buf(),
        };
        // Recorded before the mount: a crash in between leaves a record that remove_rootfs cleans.
        // Replaced atomically but not fsynced: the record lives as long as the mount, and mounts do
        // not survive the power cut an fsync would guard against (fsync would triple the set-up time).
        let tmp = dir.join("record.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&rec).expect("serializes"))
            .map_err(io("write rootfs record", &tmp))?;
        std::fs::rename(&tmp, &rec_path).map_err(io("write rootfs record", &rec_path))?;
        let lowerdir = lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let data = format!(
            "lowerdir={lowerdir},upperdir={},workdir={}",
            upper.display(),
            work.display()
        );
        let fail = |cause: String| StoreError::Mount {
            key: key.to_string(),
            mountpoint: mountpoint.display().to_string(),
            cause,
        };
        if data.len() > MOUNT_DATA_MAX {
            return Err(fail(format!(
                "{} layers make the overlay options {} bytes, over the kernel's {MOUNT_DATA_MAX}",
                lowers.len(),
                data.len()
            )));
        }
        nix::mount::mount(
            Some("overlay"),
            mountpoint,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|e| fail(e.desc().to_string()))?;
        Ok(Rootfs {
            mountpoint: mountpoint.to_path_buf(),
            upper,
            image: record,
        })
    }

    /// Unmount a container's root filesystem and delete its writable layer. Idempotent.
    pub fn remove_rootfs(&self, key: &str) -> Result<(), StoreError> {
        let dir = self.rootfs_dir(key);
        let rec_path = dir.join("record.json");
        if let Ok(bytes) = std::fs::read(&rec_path)
            && let Ok(rec) = serde_json::from_slice::<RootfsRecord>(&bytes)
            && is_mountpoint(&rec.mountpoint)
        {
            use nix::mount::{MntFlags, umount2};
            if let Err(e) = umount2(&rec.mountpoint, MntFlags::empty()) {
                // Busy (a process still inside): detach so the directory can go; the kernel frees it later.
                umount2(&rec.mountpoint, MntFlags::MNT_DETACH).map_err(|_| StoreError::Mount {
                    key: key.to_string(),
                    mountpoint: rec.mountpoint.display().to_string(),
                    cause: format!("unmount: {}", e.desc()),
                })?;
            }
        }
        // The record goes first: a half-removed upper directory is never mistaken for a live one.
        match std::fs::remove_file(&rec_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove rootfs record", &rec_path)(e)),
        }
        fsutil::remove_any(&dir).map_err(io("remove rootfs directory", &dir))
    }

    /// Every prepared root filesystem.
    pub fn rootfs_records(&self) -> Result<Vec<RootfsRecord>, StoreError> {
        let dir = self.root().join("rootfs");
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir)
            .map_err(io("list rootfs", &dir))?
            .flatten()
        {
            if let Ok(bytes) = std::fs::read(e.path().join("record.json"))
                && let Ok(r) = serde_json::from_slice::<RootfsRecord>(&bytes)
            {
                out.push(r);
            }
        }
        Ok(out)
    }
}

/// Whether `path` is the root of a mount (its device differs from its parent's, or it is listed).
fn is_mountpoint(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let Ok(canon) = path.canonicalize() else {
        return false;
    };
    let want = canon.to_string_lossy();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| unescape_mountinfo(m) == want)
}

fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

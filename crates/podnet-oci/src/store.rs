//! The content store, shared by every lab on the machine (default `/var/lib/podnet/images`).
//!
//! ```text
//! blobs/sha256/<hex>     verified content: layers, configs, manifests, indexes (fsynced, renamed in)
//! ingest/<hex>.<pid>     a blob being written (never trusted; removed by the next writer or prune)
//! tmp/<hex>.<pid>        a snapshot being unpacked (likewise)
//! s/<n>                  committed snapshots: one layer each, overlay-ready (short names keep the
//!                        overlay lowerdir option under the page-size limit)
//! layers/<diffid-hex>    symlink -> ../s/<n>: the commit point of a snapshot, keyed by diffID
//! images/<hash>.json     image records by normalised reference
//! rootfs/<hash>/         a container's upper/work directories and record.json (who uses which image)
//! locks/                 flock files: `gc` (shared by pulls and rootfs set-up, exclusive for rm and
//!                        prune), one per layer (concurrent pulls of one layer: one does the work)
//! ```
//!
//! Nothing is trusted unless reached through a committed name: a process killed at any moment leaves
//! only temporaries that carry its pid.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::fsutil::{self, Lock};
use crate::manifest::{Compression, Platform, SUBSTITUTE_KEY};
use crate::reference::Reference;

/// Where the store lives unless told otherwise.
pub const DEFAULT_ROOT: &str = "/var/lib/podnet/images";
const RECORD_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {path}: {cause}")]
    Io {
        what: &'static str,
        path: String,
        cause: std::io::Error,
    },
    #[error("image {0:?} not found in the store")]
    NoImage(String),
    #[error("{0}")]
    Reference(#[from] crate::reference::ReferenceError),
    #[error("image {image} is in use by {owner} (container key {key})")]
    InUse {
        image: String,
        owner: String,
        key: String,
    },
    #[error("{what}: {detail}")]
    Invalid { what: String, detail: String },
    #[error("unpack layer {digest} of {image}: {cause}")]
    Unpack {
        digest: Digest,
        image: String,
        cause: crate::unpack::UnpackError,
    },
    #[error("{what}: content digest {actual} does not match {expected}; nothing was stored")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("mount overlay at {mountpoint} for {key}: {cause}")]
    Mount {
        key: String,
        mountpoint: String,
        cause: String,
    },
}

pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.display().to_string();
    move |cause| StoreError::Io { what, path, cause }
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerRecord {
    /// Digest of the blob as distributed (compressed).
    pub digest: Digest,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids`), which keys the snapshot.
    pub diff_id: Digest,
    pub size: u64,
    pub media_type: String,
    pub compression: Compression,
}

/// What the store knows about one image name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageRecord {
    pub version: u32,
    /// Normalised reference (`docker.io/library/nginx:latest`).
    pub reference: String,
    /// Digest of the image manifest (what `name@digest` pulls).
    pub digest: Digest,
    /// Digest of the index it was chosen from, if any (what a tag resolved to in the registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<Digest>,
    pub media_type: String,
    /// Digest of the config: the image ID.
    pub config: Digest,
    pub layers: Vec<LayerRecord>,
    pub platform: Platform,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Manifest annotations (and the index entry's, where the index had them).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The upstream reference this image stands in for, when it is a podnet substitute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substitute_for: Option<String>,
    /// Compressed size of config and layers (what was transferred).
    pub size: u64,
    /// When the record was written (RFC 3339).
    pub stored_at: String,
}

impl ImageRecord {
    /// The substitute marker: the manifest annotation or the config label.
    pub fn substitute_marker(
        annotations: &BTreeMap<String, String>,
        labels: &BTreeMap<String, String>,
    ) -> Option<String> {
        annotations
            .get(SUBSTITUTE_KEY)
            .or_else(|| labels.get(SUBSTITUTE_KEY))
            .cloned()
    }
}

/// The store. Cheap to clone; every method is safe to call from several processes at once.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Open (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        for d in [
            "blobs/sha256",
            "blobs/sha512",
            "ingest",
            "tmp",
            "s",
            "layers",
            "images",
            "rootfs",
            "locks",
        ] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(io("create store directory", &p))?;
        }
        Ok(Store { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    // ----- blobs -----

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(format!("{:?}", d.algorithm()).to_lowercase())
            .join(d.hex())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>, StoreError> {
        let p = self.blob_path(d);
        std::fs::read(&p).map_err(io("read blob", &p))
    }

    /// Store a small blob held in memory, after checking its digest.
    pub fn put_blob(&self, d: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        let mut h = crate::digest::Hasher::new(d.algorithm());
        h.update(bytes);
        let actual = h.finish();
        if &actual != d {
            return Err(StoreError::DigestMismatch {
                what: format!("blob {d}"),
                expected: d.clone(),
                actual,
            });
        }
        let p = self.blob_path(d);
        if p.is_file() {
            return Ok(());
        }
        fsutil::write_atomic(&p, bytes).map_err(io("write blob", &p))
    }

    pub(crate) fn ingest_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("ingest")
            .join(format!("{}.{}", d.hex(), std::process::id()))
    }

    pub(crate) fn tmp_snapshot_path(&self, diff_id: &Digest) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{}.{}", diff_id.hex(), std::process::id()))
    }

    /// Remove temporaries for `hex` left by dead processes (the caller holds that layer's lock).
    pub(crate) fn clear_stale(&self, hex: &str) {
        for dir in ["ingest", "tmp"] {
            let Ok(rd) = std::fs::read_dir(self.root.join(dir)) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(hex) {
                    let _ = fsutil::remove_any(&e.path());
                }
            }
        }
    }

    // ----- snapshots -----

    fn layer_link(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    /// The committed snapshot directory of a layer, if there is one.
    pub fn snapshot(&self, diff_id: &Digest) -> Option<PathBuf> {
        let target = std::fs::read_link(self.layer_link(diff_id)).ok()?;
        let name = target.file_name()?.to_str()?.to_string();
        let dir = self.root.join("s").join(name);
        dir.is_dir().then_some(dir)
    }

    /// Commit an unpacked temporary directory as the snapshot of `diff_id`: rename it to the next free
    /// short name, then create the `layers/` link (the commit point).
    pub(crate) fn commit_snapshot(
        &self,
        tmp: &Path,
        diff_id: &Digest,
    ) -> Result<PathBuf, StoreError> {
        let sdir = self.root.join("s");
        let mut next = std::fs::read_dir(&sdir)
            .map_err(io("list snapshots", &sdir))?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        let dest = loop {
            let dest = sdir.join(next.to_string());
            match rustix::fs::renameat_with(
                rustix::fs::CWD,
                tmp,
                rustix::fs::CWD,
                &dest,
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Ok(()) => break dest,
                Err(rustix::io::Errno::EXIST) | Err(rustix::io::Errno::NOTEMPTY) => next += 1,
                Err(e) => return Err(io("commit snapshot", &dest)(e.into())),
            }
        };
        let link = self.layer_link(diff_id);
        let tmp_link =
            self.root
                .join("layers")
                .join(format!(".{}.{}", diff_id.hex(), std::process::id()));
        let _ = std::fs::remove_file(&tmp_link);
        std::os::unix::fs::symlink(format!("../s/{next}"), &tmp_link)
            .map_err(io("link snapshot", &tmp_link))?;
        std::fs::rename(&tmp_link, &link).map_err(io("link snapshot", &link))?;
        let _ = fsutil::sync_dir(&sdir);
        let _ = fsutil::sync_dir(&self.root.join("layers"));
        Ok(dest)
    }

    // ----- locks -----

    /// Shared by pulls and rootfs set-up; exclusive for `rm` and `prune`.
    pub fn gc_lock(&self, exclusive: bool) -> Result<Lock, StoreError> {
        let p = self.root.join("locks").join("gc");
        fsutil::lock(&p, exclusive).map_err(io("lock store", &p))
    }

    pub(crate) fn layer_lock(&self, d: &Digest) -> Result<Lock, StoreError> {
        let p = self.root.join("locks").join(d.hex());
        fsutil::lock(&p, true).map_err(io("lock layer", &p))
    }

    fn records_lock(&self) -> Result<Lock, StoreError> {
        let p = self.root.join("locks").join("records");
        fsutil::lock(&p, true).map_err(io("lock image records", &p))
    }

    // ----- image records -----

    fn record_path(&self, reference: &str) -> PathBuf {
        self.root.join("images").join(format!(
            "{}.json",
            &Digest::sha256_of(reference.as_bytes()).hex()[..32]
        ))
    }

    /// Write (or replace) the record of an image name.
    pub fn put_image(&self, record: &ImageRecord) -> Result<(), StoreError> {
        let _l = self.records_lock()?;
        let p = self.record_path(&record.reference);
        let bytes = serde_json::to_vec_pretty(record).expect("records serialize");
        fsutil::write_atomic(&p, &bytes).map_err(io("write image record", &p))
    }

    /// Every image record, sorted by reference.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let dir = self.root.join("images");
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir)
            .map_err(io("list images", &dir))?
            .flatten()
        {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            match serde_json::from_slice::<ImageRecord>(&bytes) {
                Ok(r) if r.version == RECORD_VERSION => out.push(r),
                Ok(_) | Err(_) => {
                    tracing::warn!(path = %p.display(), "ignoring unreadable image record")
                }
            }
        }
        out.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(out)
    }

    /// Find an image by reference (normalised first), manifest digest, config digest (image ID), or a
    /// unique prefix of at least 4 hex digits of either.
    pub fn image(&self, wanted: &str) -> Result<ImageRecord, StoreError> {
        let all = self.images()?;
        if let Ok(r) = Reference::parse(wanted) {
            let norm = r.to_string();
            if let Some(found) = all.iter().find(|i| i.reference == norm) {
                return Ok(found.clone());
            }
            if let Some(d) = r.digest()
                && let Some(found) = all.iter().find(|i| {
                    &i.digest == d
                        && Reference::parse(&i.reference).is_ok_and(|x| x.name() == r.name())
                })
            {
                return Ok(found.clone());
            }
        }
        let hex = wanted.trim_start_matches("sha256:");
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hits: Vec<&ImageRecord> = all
                .iter()
                .filter(|i| i.config.hex().starts_with(hex) || i.digest.hex().starts_with(hex))
                .collect();
            if let Some(first) = hits.first()
                && hits.iter().all(|h| h.config == first.config)
            {
                return Ok((*first).clone());
            }
        }
        Err(StoreError::NoImage(wanted.to_string()))
    }

    /// Remove an image name. Refused while a container's root filesystem uses the image and no other
    /// name keeps it. Blobs and snapshots stay until [`prune`](Self::prune).
    pub fn remove_image(&self, wanted: &str) -> Result<ImageRecord, StoreError> {
        let _gc = self.gc_lock(true)?;
        let record = self.image(wanted)?;
        let others_keep = self
            .images()?
            .iter()
            .any(|i| i.reference != record.reference && i.digest == record.digest);
        if !others_keep
            && let Some(user) = self
                .rootfs_records()?
                .into_iter()
                .find(|r| r.image_digest == record.digest)
        {
            return Err(StoreError::InUse {
                image: record.reference.clone(),
                owner: user.owner,
                key: user.key,
            });
        }
        let _l = self.records_lock()?;
        let p = self.record_path(&record.reference);
        std::fs::remove_file(&p).map_err(io("remove image record", &p))?;
        Ok(record)
    }

    /// Remove blobs and snapshots no image record (and no root filesystem) uses, and temporaries of
    /// dead processes.
    pub fn prune(&self) -> Result<PruneReport, StoreError> {
        let _gc = self.gc_lock(true)?;
        let mut keep_blobs = std::collections::HashSet::new();
        let mut keep_layers = std::collections::HashSet::new();
        for rec in self.images()? {
            keep_blobs.insert(rec.digest.hex().to_string());
            keep_blobs.insert(rec.config.hex().to_string());
            if let Some(i) = &rec.index_digest {
                keep_blobs.insert(i.hex().to_string());
            }
            for l in &rec.layers {
                keep_blobs.insert(l.digest.hex().to_string());
                keep_layers.insert(l.diff_id.hex().to_string());
            }
        }
        for r in self.rootfs_records()? {
            for d in r.diff_ids {
                keep_layers.insert(d.hex().to_string());
            }
        }
        let mut report = PruneReport::default();
        for alg in ["sha256", "sha512"] {
            let dir = self.root.join("blobs").join(alg);
            for e in std::fs::read_dir(&dir)
                .map_err(io("list blobs", &dir))?
                .flatten()
            {
                let name = e.file_name().to_string_lossy().into_owned();
                if !keep_blobs.contains(&name) {
                    report.bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                    fsutil::remove_any(&e.path()).map_err(io("remove blob", &e.path()))?;
                    report.blobs += 1;
                }
            }
        }
        let ldir = self.root.join("layers");
        let mut live_snapshots = std::collections::HashSet::new();
        for e in std::fs::read_dir(&ldir)
            .map_err(io("list layers", &ldir))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if keep_layers.contains(&name) {
                if let Ok(t) = std::fs::read_link(e.path())
                    && let Some(n) = t.file_name()
                {
                    live_snapshots.insert(n.to_string_lossy().into_owned());
                }
            } else {
                fsutil::remove_any(&e.path()).map_err(io("remove layer link", &e.path()))?;
            }
        }
        let sdir = self.root.join("s");
        for e in std::fs::read_dir(&sdir)
            .map_err(io("list snapshots", &sdir))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if !live_snapshots.contains(&name) {
                fsutil::remove_any(&e.path()).map_err(io("remove snapshot", &e.path()))?;
                report.snapshots += 1;
            }
        }
        for dir in ["ingest", "tmp"] {
            let d = self.root.join(dir);
            for e in std::fs::read_dir(&d)
                .map_err(io("list temporaries", &d))?
                .flatten()
            {
                let name = e.file_name().to_string_lossy().into_owned();
                let pid = name.rsplit('.').next().and_then(|p| p.parse::<u32>().ok());
                if pid.is_none_or(|p| !fsutil::pid_alive(p)) {
                    fsutil::remove_any(&e.path()).map_err(io("remove temporary", &e.path()))?;
                    report.temporaries += 1;
                }
            }
        }
        Ok(report)
    }
}

/// What `prune` removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    pub blobs: u64,
    pub bytes: u64,
    pub snapshots: u64,
    pub temporaries: u64,
}

/// The current time in RFC 3339.
pub(crate) fn now() -> String {
    jiff::Timestamp::now().to_string()
}

pub(crate) const CURRENT_RECORD_VERSION: u32 = RECORD_VERSION;

//! Apply one layer tar into an empty snapshot directory, converting OCI whiteouts to overlayfs form.
//!
//! Safety against hostile layers (the path-traversal CVEs of containerd, moby and runc): entry names are
//! cleaned lexically (`..` cannot climb above the root), every parent directory is opened with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` relative to the snapshot root, so a symlink met on
//! the way (`a -> /etc`, `a -> ../../..`) resolves *inside* the snapshot, and the final component is
//! created with `*at` calls that never follow it (`O_EXCL | O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`). Hard link
//! targets are resolved the same way, so they can only name files inside the snapshot. Overlay's own
//! `trusted.overlay.*` xattrs are never taken from a layer (they would steer the overlay mount).
//!
//! Whiteouts: `.wh.NAME` becomes a 0/0 character device `NAME`; `.wh..wh..opq` sets
//! `trusted.overlay.opaque=y` on its directory. Ownership, modes (setuid included), xattrs, device
//! numbers and mtimes are kept; directory mtimes are set last (writing into them changes them).

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use rustix::io::Errno;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("read layer tar: {0}")]
    Read(std::io::Error),
    #[error("entry {path:?}: {what}: {cause}")]
    Entry {
        path: String,
        what: &'static str,
        cause: std::io::Error,
    },
    #[error("open snapshot root {0}: {1}")]
    Root(String, std::io::Error),
}

/// What an unpack wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UnpackStats {
    pub entries: u64,
    pub bytes: u64,
    pub whiteouts: u64,
}

/// Clean a tar path lexically: drop empty, `.` and leading `/`, let `..` pop (never above the root).
/// Returns the components; empty means the root itself.
pub fn clean_path(raw: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

fn err(path: &[u8], what: &'static str, cause: impl Into<std::io::Error>) -> UnpackError {
    UnpackError::Entry {
        path: String::from_utf8_lossy(path).into_owned(),
        what,
        cause: cause.into(),
    }
}

/// Unpack the tar stream `input` into `root` (an empty directory).
pub fn unpack(input: impl Read, root: &Path) -> Result<UnpackStats, UnpackError> {
    let root_fd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Root(root.display().to_string(), e.into()))?;
    let mut u = Unpacker {
        root: root_fd,
        cache: None,
        dir_times: Vec::new(),
        stats: UnpackStats::default(),
    };
    let mut archive = tar::Archive::new(input);
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let entry = entry.map_err(UnpackError::Read)?;
        u.entry(entry)?;
    }
    // Directory times last, deepest first, so setting a child does not disturb its parent.
    u.dir_times.sort_by_key(|d| std::cmp::Reverse(d.0.len()));
    for (path, mtime) in std::mem::take(&mut u.dir_times) {
        let comps = clean_path(&path);
        let fd = if comps.is_empty() {
            rustix::fs::openat(
                &u.root,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
        } else {
            open_in_root(
                &u.root,
                &comps.join(&b'/'),
                OFlags::RDONLY | OFlags::DIRECTORY,
            )
        };
        if let Ok(fd) = fd {
            let _ = rustix::fs::futimens(&fd, &times(mtime));
        }
    }
    Ok(u.stats)
}

struct Unpacker {
    root: OwnedFd,
    /// The last parent directory opened (entries come grouped by directory).
    cache: Option<(Vec<u8>, OwnedFd)>,
    dir_times: Vec<(Vec<u8>, u64)>,
    stats: UnpackStats,
}

fn open_in_root(root: &OwnedFd, path: &[u8], flags: OFlags) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat2(
        root,
        path,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

fn times(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime as i64,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

impl Unpacker {
    /// The parent directory of an entry, created (0755, root-owned) where missing; resolved in the root.
    fn parent(&mut self, comps: &[&[u8]]) -> Result<OwnedFd, (Vec<u8>, &'static str, Errno)> {
        let joined = comps.join(&b'/');
        if let Some((p, fd)) = &self.cache
            && *p == joined
        {
            return fd.try_clone().map_err(|e| {
                (
                    joined,
                    "reuse parent",
                    Errno::from_io_error(&e).unwrap_or(Errno::IO),
                )
            });
        }
        let fd = if comps.is_empty() {
            rustix::fs::openat(
                &self.root,
                ".",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| (joined.clone(), "open root", e))?
        } else {
            match open_in_root(&self.root, &joined, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => self.make_parents(comps)?,
                Err(e) => return Err((joined, "open parent directory", e)),
            }
        };
        let keep = fd.try_clone().map_err(|e| {
            (
                joined.clone(),
                "dup",
                Errno::from_io_error(&e).unwrap_or(Errno::IO),
            )
        })?;
        self.cache = Some((joined, keep));
        Ok(fd)
    }

    fn make_parents(&self, comps: &[&[u8]]) -> Result<OwnedFd, (Vec<u8>, &'static str, Errno)> {
        let mut cur = rustix::fs::openat(
            &self.root,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| (Vec::new(), "open root", e))?;
        for i in 0..comps.len() {
            let prefix = comps[..=i].join(&b'/');
            cur = match open_in_root(&self.root, &prefix, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(&cur, comps[i], Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err((prefix, "create parent directory", e)),
                    }
                    open_in_root(&self.root, &prefix, OFlags::PATH | OFlags::DIRECTORY)
                        .map_err(|e| (prefix.clone(), "open created directory", e))?
                }
                Err(e) => return Err((prefix, "open parent directory", e)),
            };
        }
        Ok(cur)
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let comps = clean_path(&raw);
        self.stats.entries += 1;
        let header = entry.header().clone();
        // Links carry no meaningful mode; writers leave the field blank at times. Blank means default.
        let mode = header
            .mode()
            .unwrap_or(if kind.is_dir() { 0o755 } else { 0o644 })
            & 0o7777;
        let uid = header.uid().map_err(|e| err(&raw, "read uid", e))? as u32;
        let gid = header.gid().map_err(|e| err(&raw, "read gid", e))? as u32;
        let mtime = header.mtime().unwrap_or(0);
        let Some((name, parent_comps)) = comps.split_last() else {
            // The root itself ("./"): take its mode, owner and time.
            if kind.is_dir() {
                let fd = rustix::fs::openat(
                    &self.root,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| err(&raw, "open root", e))?;
                let _ = rustix::fs::fchown(
                    &fd,
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                );
                let _ = rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode));
                self.dir_times.push((Vec::new(), mtime));
            }
            return Ok(());
        };
        let name = name.to_vec();
        let parent = self
            .parent(parent_comps)
            .map_err(|(p, what, e)| err(&p, what, e))?;

        // Whiteouts.
        if name == OPAQUE {
            let dir = rustix::fs::openat(
                &parent,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| err(&raw, "open opaque directory", e))?;
            rustix::fs::fsetxattr(
                &dir,
                "trusted.overlay.opaque",
                b"y",
                rustix::fs::XattrFlags::empty(),
            )
            .map_err(|e| err(&raw, "mark directory opaque", e))?;
            self.stats.whiteouts += 1;
            return Ok(());
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Ok(());
            }
            self.remove_existing(&parent, hidden, &raw)?;
            rustix::fs::mknodat(
                &parent,
                hidden,
                FileType::CharacterDevice,
                Mode::empty(),
                rustix::fs::makedev(0, 0),
            )
            .map_err(|e| err(&raw, "create whiteout", e))?;
            self.stats.whiteouts += 1;
            return Ok(());
        }

        let nofollow = AtFlags::SYMLINK_NOFOLLOW;
        let chown = |p: &OwnedFd| {
            rustix::fs::chownat(
                p,
                name.as_slice(),
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
                nofollow,
            )
            .map_err(|e| err(&raw, "set owner", e))
        };
        match kind {
            tar::EntryType::Directory => {
                match rustix::fs::statat(&parent, name.as_slice(), nofollow) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                    Ok(_) => {
                        self.remove_existing(&parent, &name, &raw)?;
                        self.mkdir(&parent, &name, &raw)?;
                    }
                    Err(_) => self.mkdir(&parent, &name, &raw)?,
                }
                let dir = rustix::fs::openat(
                    &parent,
                    name.as_slice(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| err(&raw, "open directory", e))?;
                rustix::fs::fchown(
                    &dir,
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                )
                .map_err(|e| err(&raw, "set owner", e))?;
                rustix::fs::fchmod(&dir, Mode::from_raw_mode(mode))
                    .map_err(|e| err(&raw, "set mode", e))?;
                self.xattrs(&mut entry, &dir, &raw)?;
                let mut full = parent_comps.join(&b'/');
                if !full.is_empty() {
                    full.push(b'/');
                }
                full.extend_from_slice(&name);
                self.dir_times.push((full, mtime));
                // A directory may have replaced what the cached parent pointed at.
                self.cache = None;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.remove_existing(&parent, &name, &raw)?;
                let fd = rustix::fs::openat(
                    &parent,
                    name.as_slice(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| err(&raw, "create file", e))?;
                let mut file = std::fs::File::from(fd);
                let n =
                    std::io::copy(&mut entry, &mut file).map_err(|e| err(&raw, "write file", e))?;
                self.stats.bytes += n;
                // Owner before mode: chown clears setuid/setgid.
                rustix::fs::fchown(
                    &file,
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                )
                .map_err(|e| err(&raw, "set owner", e))?;
                rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))
                    .map_err(|e| err(&raw, "set mode", e))?;
                let owned: OwnedFd = file.into();
                self.xattrs(&mut entry, &owned, &raw)?;
                rustix::fs::futimens(&owned, &times(mtime))
                    .map_err(|e| err(&raw, "set times", e))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| {
                        err(
                            &raw,
                            "read symlink target",
                            std::io::Error::other("missing"),
                        )
                    })?
                    .into_owned();
                self.remove_existing(&parent, &name, &raw)?;
                rustix::fs::symlinkat(target.as_slice(), &parent, name.as_slice())
                    .map_err(|e| err(&raw, "create symlink", e))?;
                chown(&parent)?;
                let _ = rustix::fs::utimensat(&parent, name.as_slice(), &times(mtime), nofollow);
                self.cache = None;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| err(&raw, "read link target", std::io::Error::other("missing")))?
                    .into_owned();
                let tcomps = clean_path(&target);
                let Some((tname, tparent)) = tcomps.split_last() else {
                    return Err(err(
                        &raw,
                        "hard link",
                        std::io::Error::other("link to the root directory"),
                    ));
                };
                let tparent_fd = if tparent.is_empty() {
                    rustix::fs::openat(
                        &self.root,
                        ".",
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                } else {
                    open_in_root(
                        &self.root,
                        &tparent.join(&b'/'),
                        OFlags::PATH | OFlags::DIRECTORY,
                    )
                }
                .map_err(|e| err(&raw, "resolve hard link target", e))?;
                self.remove_existing(&parent, &name, &raw)?;
                rustix::fs::linkat(
                    &tparent_fd,
                    *tname,
                    &parent,
                    name.as_slice(),
                    AtFlags::empty(),
                )
                .map_err(|e| err(&raw, "create hard link", e))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                self.remove_existing(&parent, &name, &raw)?;
                rustix::fs::mknodat(
                    &parent,
                    name.as_slice(),
                    ft,
                    Mode::from_raw_mode(mode),
                    rustix::fs::makedev(major, minor),
                )
                .map_err(|e| err(&raw, "create device node", e))?;
                chown(&parent)?;
                // mknod applies the umask; set the exact mode (the name is the node just made, no symlink).
                let _ = rustix::fs::chmodat(
                    &parent,
                    name.as_slice(),
                    Mode::from_raw_mode(mode),
                    AtFlags::empty(),
                );
                let _ = rustix::fs::utimensat(&parent, name.as_slice(), &times(mtime), nofollow);
            }
            _ => {
                tracing::debug!(path = %String::from_utf8_lossy(&raw), ?kind, "skipping tar entry of unsupported type");
            }
        }
        Ok(())
    }

    fn mkdir(&self, parent: &OwnedFd, name: &[u8], raw: &[u8]) -> Result<(), UnpackError> {
        rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755))
            .map_err(|e| err(raw, "create directory", e))
    }

    /// Make room for an entry: a later entry replaces an earlier one (a directory only by a directory).
    fn remove_existing(
        &mut self,
        parent: &OwnedFd,
        name: &[u8],
        raw: &[u8],
    ) -> Result<(), UnpackError> {
        match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(err(raw, "inspect existing entry", e)),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                // Through the parent's fd path: remove_dir_all never follows symlinks inside.
                use std::os::fd::AsRawFd;
                use std::os::unix::ffi::OsStrExt;
                let path = format!("/proc/self/fd/{}", parent.as_fd().as_raw_fd());
                let full = Path::new(&path).join(std::ffi::OsStr::from_bytes(name));
                std::fs::remove_dir_all(&full).map_err(|e| err(raw, "replace directory", e))?;
                self.cache = None;
                Ok(())
            }
            Ok(_) => rustix::fs::unlinkat(parent, name, AtFlags::empty())
                .map_err(|e| err(raw, "replace entry", e)),
        }
    }

    fn xattrs<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        fd: &OwnedFd,
        raw: &[u8],
    ) -> Result<(), UnpackError> {
        let Some(exts) = entry
            .pax_extensions()
            .map_err(|e| err(raw, "read PAX headers", e))?
        else {
            return Ok(());
        };
        for ext in exts {
            let ext = ext.map_err(|e| err(raw, "read PAX header", e))?;
            let Some(key) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
                continue;
            };
            if key.starts_with(b"trusted.overlay.") {
                continue;
            }
            rustix::fs::fsetxattr(fd, key, ext.value_bytes(), rustix::fs::XattrFlags::empty())
                .map_err(|e| err(raw, "set xattr", e))?;
        }
        Ok(())
    }
}

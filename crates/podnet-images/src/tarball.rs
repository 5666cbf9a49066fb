//! Deterministic layer tarballs from a directory tree.
//!
//! The same tree always gives the same bytes: entries sorted by name, numeric owners without names,
//! modification times clamped to the recipe's source date (the reproducible-builds convention: a
//! time older than that is kept, a newer one, such as a file a maintainer script wrote during the
//! build, becomes the source date), gzip without a name or timestamp at a fixed level. So a layer's
//! digest depends only on what is in it.
//!
//! An overlayfs upper directory is turned into an OCI layer diff on the way: a whiteout (character
//! device 0:0) becomes a `.wh.<name>` entry and an opaque directory (`trusted.overlay.opaque=y`)
//! gets a `.wh..wh..opq` entry, as the OCI image spec's "Representing Changes" says.

use crate::digest::{Digest, HashWriter};
use crate::error::{Result, io, io_at};
use flate2::{Compression, GzBuilder};
use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};

/// The OCI whiteout prefix and the opaque-directory marker.
pub const WHITEOUT_PREFIX: &str = ".wh.";
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OVERLAY_OPAQUE: &str = "trusted.overlay.opaque";

/// gzip level: 6 is zlib's default, a fair trade between CI time and size.
const GZIP_LEVEL: u32 = 6;

/// A written layer blob.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layer {
    /// Digest of the compressed blob (what manifests reference).
    pub digest: Digest,
    /// Digest of the uncompressed tar (the image config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// Size of the compressed blob in bytes.
    pub size: u64,
}

/// How the tree is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeKind {
    /// A plain root filesystem (or part of one).
    Plain,
    /// An overlayfs upper directory: whiteouts and opaque directories are converted.
    OverlayUpper,
}

/// Writes the tree at `root` as a gzip-compressed layer tarball to `out`.
pub fn write_layer(root: &Path, kind: TreeKind, epoch: u64, out: &Path) -> Result<Layer> {
    let file = File::create(out).map_err(io_at("create", out))?;
    let compressed = HashWriter::new(file);
    let gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(compressed, Compression::new(GZIP_LEVEL));
    let uncompressed = HashWriter::new(gz);
    let mut builder = tar::Builder::new(uncompressed);
    builder.mode(tar::HeaderMode::Complete);
    builder.follow_symlinks(false);
    let mut w = Walker {
        root,
        kind,
        epoch,
        links: HashMap::new(),
        builder: &mut builder,
    };
    w.dir(Path::new(""))?;
    let what = || format!("write layer {}", out.display());
    let uncompressed = builder.into_inner().map_err(io(what()))?;
    let (gz, diff_id, _) = uncompressed.finish();
    let compressed = gz.finish().map_err(io(what()))?;
    let (file, digest, size) = compressed.finish();
    file.sync_all().map_err(io(what()))?;
    Ok(Layer {
        digest,
        diff_id,
        size,
    })
}

struct Walker<'a, W: Write> {
    root: &'a Path,
    kind: TreeKind,
    epoch: u64,
    /// (device, inode) of files with several links -> the path the first one was written under.
    links: HashMap<(u64, u64), PathBuf>,
    builder: &'a mut tar::Builder<W>,
}

impl<W: Write> Walker<'_, W> {
    fn dir(&mut self, rel: &Path) -> Result<()> {
        let abs = self.root.join(rel);
        let mut names: Vec<OsString> = fs::read_dir(&abs)
            .map_err(io_at("list", &abs))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(io_at("list", &abs))?;
        // Byte order, not locale order: the same on every machine.
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            self.entry(&rel.join(&name), &name)?;
        }
        Ok(())
    }

    fn entry(&mut self, rel: &Path, name: &OsStr) -> Result<()> {
        let abs = self.root.join(rel);
        let meta = fs::symlink_metadata(&abs).map_err(io_at("stat", &abs))?;
        let ft = meta.file_type();
        if self.kind == TreeKind::OverlayUpper && ft.is_char_device() && meta.rdev() == 0 {
            let mut wh = OsString::from(WHITEOUT_PREFIX);
            wh.push(name);
            return self.empty_file(&rel.with_file_name(wh));
        }
        let xattrs = xattrs(&abs)?;
        let mut header = Header::new_gnu();
        header.set_mode(meta.mode() & 0o7777);
        header.set_uid(meta.uid() as u64);
        header.set_gid(meta.gid() as u64);
        header.set_mtime((meta.mtime().max(0) as u64).min(self.epoch));
        let what = || format!("add {} to the layer", rel.display());
        let pax: Vec<(String, Vec<u8>)> = xattrs
            .iter()
            .filter(|(k, _)| !k.starts_with("trusted.overlay.") && k != "security.selinux")
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.clone()))
            .collect();
        if !pax.is_empty() {
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(io(what()))?;
        }
        if ft.is_dir() {
            header.set_entry_type(EntryType::Directory);
            header.set_size(0);
            self.builder
                .append_data(&mut header, rel, std::io::empty())
                .map_err(io(what()))?;
            let opaque = xattrs
                .iter()
                .any(|(k, v)| k == OVERLAY_OPAQUE && v.as_slice() == b"y");
            if self.kind == TreeKind::OverlayUpper && opaque {
                self.empty_file(&rel.join(OPAQUE_MARKER))?;
            }
            return self.dir(rel);
        }
        if ft.is_symlink() {
            let target = fs::read_link(&abs).map_err(io_at("read link", &abs))?;
            header.set_entry_type(EntryType::Symlink);
            header.set_size(0);
            return self
                .builder
                .append_link(&mut header, rel, &target)
                .map_err(io(what()));
        }
        if ft.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.links.get(&key) {
                    header.set_entry_type(EntryType::Link);
                    header.set_size(0);
                    let first = first.clone();
                    return self
                        .builder
                        .append_link(&mut header, rel, &first)
                        .map_err(io(what()));
                }
                self.links.insert(key, rel.to_path_buf());
            }
            header.set_entry_type(EntryType::Regular);
            header.set_size(meta.len());
            let file = File::open(&abs).map_err(io_at("open", &abs))?;
            return self
                .builder
                .append_data(&mut header, rel, file)
                .map_err(io(what()));
        }
        if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            header.set_entry_type(if ft.is_char_device() {
                EntryType::Char
            } else if ft.is_block_device() {
                EntryType::Block
            } else {
                EntryType::Fifo
            });
            header.set_size(0);
            let dev = meta.rdev();
            header
                .set_device_major(libc::major(dev))
                .and_then(|_| header.set_device_minor(libc::minor(dev)))
                .map_err(io(what()))?;
            return self
                .builder
                .append_data(&mut header, rel, std::io::empty())
                .map_err(io(what()));
        }
        // Sockets mean nothing in an image.
        Ok(())
    }

    fn empty_file(&mut self, rel: &Path) -> Result<()> {
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Regular);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(self.epoch);
        header.set_size(0);
        self.builder
            .append_data(&mut header, rel, std::io::empty())
            .map_err(io(format!("add {} to the layer", rel.display())))
    }
}

/// The extended attributes of `path` (not following symlinks), sorted by name.
pub fn xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let c = CString::new(path.as_os_str().as_bytes()).expect("paths have no NUL");
    let what = || format!("list extended attributes of {}", path.display());
    let mut names = vec![0u8; 1024];
    let n = loop {
        // SAFETY: the buffer is valid for its length; the kernel writes at most that much.
        let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
        if n >= 0 {
            break n as usize;
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) => names.resize(names.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(Vec::new()),
            _ => return Err(io(what())(e)),
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let cname = CString::new(name).expect("split at NUL");
        let mut value = vec![0u8; 256];
        loop {
            // SAFETY: as above.
            let m = unsafe {
                libc::lgetxattr(
                    c.as_ptr(),
                    cname.as_ptr(),
                    value.as_mut_ptr().cast(),
                    value.len(),
                )
            };
            if m >= 0 {
                value.truncate(m as usize);
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) {
                value.resize(value.len() * 4, 0);
                continue;
            }
            return Err(io(what())(e));
        }
        out.push((
            OsString::from_vec(name.to_vec())
                .to_string_lossy()
                .into_owned(),
            value,
        ));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;
    use std::os::unix::fs::{PermissionsExt, symlink};

    struct Tmp(PathBuf);
    impl Tmp {
        fn new(tag: &str) -> Tmp {
            let p = std::env::temp_dir().join(format!(
                "pnt-tarball-{}-{tag}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            fs::create_dir_all(&p).unwrap();
            Tmp(p)
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const EPOCH: u64 = 1_767_225_600;

    fn tree(root: &Path) {
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("usr/bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(root.join("usr/bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool2")).unwrap();
        symlink("tool", root.join("usr/bin/alias")).unwrap();
        fs::write(root.join("etc/b.conf"), b"b").unwrap();
        fs::write(root.join("etc/a.conf"), b"a").unwrap();
    }

    /// (path, type, size, mtime, link target) of every entry, in order.
    fn entries(blob: &Path) -> Vec<(String, EntryType, u64, u64, String)> {
        let mut ar = tar::Archive::new(GzDecoder::new(File::open(blob).unwrap()));
        ar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.entry_type(),
                    h.size().unwrap(),
                    h.mtime().unwrap(),
                    e.link_name()
                        .unwrap()
                        .map(|l| l.display().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn the_same_tree_gives_the_same_digest_whatever_its_times_or_creation_order() {
        let a = Tmp::new("a");
        let b = Tmp::new("b");
        tree(&a.0);
        // Same content, created in another order, a moment later.
        fs::create_dir_all(b.0.join("etc")).unwrap();
        fs::write(b.0.join("etc/a.conf"), b"a").unwrap();
        fs::write(b.0.join("etc/b.conf"), b"b").unwrap();
        fs::create_dir_all(b.0.join("usr/bin")).unwrap();
        symlink("tool", b.0.join("usr/bin/alias")).unwrap();
        fs::write(b.0.join("usr/bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(b.0.join("usr/bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::hard_link(b.0.join("usr/bin/tool"), b.0.join("usr/bin/tool2")).unwrap();
        let out = Tmp::new("out");
        let la = write_layer(&a.0, TreeKind::Plain, EPOCH, &out.0.join("a.tgz")).unwrap();
        let lb = write_layer(&b.0, TreeKind::Plain, EPOCH, &out.0.join("b.tgz")).unwrap();
        assert_eq!(la, lb);
        assert_eq!(
            std::fs::metadata(out.0.join("a.tgz")).unwrap().len(),
            la.size
        );
        // And the digests are those of the bytes written.
        let bytes = fs::read(out.0.join("a.tgz")).unwrap();
        assert_eq!(la.digest, Digest::of(&bytes));
        let mut raw = Vec::new();
        GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(la.diff_id, Digest::of(&raw));
    }

    #[test]
    fn a_changed_byte_changes_the_digest() {
        let a = Tmp::new("a");
        tree(&a.0);
        let out = Tmp::new("out");
        let before = write_layer(&a.0, TreeKind::Plain, EPOCH, &out.0.join("1.tgz")).unwrap();
        fs::write(a.0.join("etc/a.conf"), b"A").unwrap();
        let after = write_layer(&a.0, TreeKind::Plain, EPOCH, &out.0.join("2.tgz")).unwrap();
        assert_ne!(before.digest, after.digest);
        assert_ne!(before.diff_id, after.diff_id);
    }

    #[test]
    fn entries_are_sorted_times_clamped_and_hard_links_kept() {
        let a = Tmp::new("a");
        tree(&a.0);
        let out = Tmp::new("out");
        write_layer(&a.0, TreeKind::Plain, EPOCH, &out.0.join("l.tgz")).unwrap();
        let got = entries(&out.0.join("l.tgz"));
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc",
                "etc/a.conf",
                "etc/b.conf",
                "usr",
                "usr/bin",
                "usr/bin/alias",
                "usr/bin/tool",
                "usr/bin/tool2"
            ]
        );
        // Written now, after the epoch: clamped.
        assert!(got.iter().all(|e| e.3 == EPOCH), "{got:?}");
        let alias = &got[5];
        assert_eq!((alias.1, alias.4.as_str()), (EntryType::Symlink, "tool"));
        let tool2 = &got[7];
        assert_eq!(
            (tool2.1, tool2.2, tool2.4.as_str()),
            (EntryType::Link, 0, "usr/bin/tool")
        );
    }

    #[test]
    fn an_older_time_is_kept() {
        let a = Tmp::new("a");
        fs::write(a.0.join("old"), b"x").unwrap();
        let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
        File::options()
            .write(true)
            .open(a.0.join("old"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let out = Tmp::new("out");
        write_layer(&a.0, TreeKind::Plain, EPOCH, &out.0.join("l.tgz")).unwrap();
        assert_eq!(entries(&out.0.join("l.tgz"))[0].3, 1_600_000_000);
    }

    fn mknod_whiteout(path: &Path) -> bool {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: plain syscall on a valid C string.
        unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) == 0 }
    }

    fn set_opaque(path: &Path) -> bool {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        let name = CString::new(OVERLAY_OPAQUE).unwrap();
        // SAFETY: valid C strings and a one-byte value.
        unsafe { libc::lsetxattr(c.as_ptr(), name.as_ptr(), b"y".as_ptr().cast(), 1, 0) == 0 }
    }

    /// Needs root (mknod, trusted.* xattrs): an overlay upper dir's whiteouts and opaque
    /// directories become OCI whiteout entries, and overlay's own xattrs stay out of the layer.
    #[test]
    fn overlay_whiteouts_become_oci_whiteouts() {
        podnet_testkit::require_root();
        let up = Tmp::new("upper");
        fs::create_dir_all(up.0.join("etc/gone.d")).unwrap();
        fs::create_dir_all(up.0.join("var/cache/apt")).unwrap();
        assert!(mknod_whiteout(&up.0.join("etc/removed.conf")));
        assert!(set_opaque(&up.0.join("var/cache/apt")));
        fs::write(up.0.join("var/cache/apt/new"), b"n").unwrap();
        let out = Tmp::new("out");
        write_layer(&up.0, TreeKind::OverlayUpper, EPOCH, &out.0.join("l.tgz")).unwrap();
        let got = entries(&out.0.join("l.tgz"));
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        // Sorted by the names in the upper directory (`removed.conf` after `gone.d`).
        assert_eq!(
            names,
            [
                "etc",
                "etc/gone.d",
                "etc/.wh.removed.conf",
                "var",
                "var/cache",
                "var/cache/apt",
                "var/cache/apt/.wh..wh..opq",
                "var/cache/apt/new"
            ]
        );
        let wh = &got[2];
        assert_eq!((wh.1, wh.2), (EntryType::Regular, 0));
        // No trusted.overlay.* attribute leaks into the layer.
        let mut ar = tar::Archive::new(GzDecoder::new(File::open(out.0.join("l.tgz")).unwrap()));
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            if let Some(ext) = e.pax_extensions().unwrap() {
                for x in ext {
                    let x = x.unwrap();
                    assert!(!x.key().unwrap().contains("overlay"), "{:?}", x.key());
                }
            }
        }
        // The same upper read as a plain tree keeps the device (it is not a diff).
        write_layer(&up.0, TreeKind::Plain, EPOCH, &out.0.join("p.tgz")).unwrap();
        let plain = entries(&out.0.join("p.tgz"));
        assert!(
            plain
                .iter()
                .any(|e| e.0 == "etc/removed.conf" && e.1 == EntryType::Char)
        );
    }

    #[test]
    fn security_xattrs_are_kept() {
        podnet_testkit::require_root();
        let a = Tmp::new("caps");
        fs::write(a.0.join("ping"), b"x").unwrap();
        let c = CString::new(a.0.join("ping").as_os_str().as_bytes()).unwrap();
        let name = CString::new("user.podnet-test").unwrap();
        // SAFETY: valid C strings.
        let ok = unsafe { libc::lsetxattr(c.as_ptr(), name.as_ptr(), b"v1".as_ptr().cast(), 2, 0) };
        assert_eq!(ok, 0, "{}", std::io::Error::last_os_error());
        let out = Tmp::new("out");
        write_layer(&a.0, TreeKind::Plain, EPOCH, &out.0.join("l.tgz")).unwrap();
        let mut ar = tar::Archive::new(GzDecoder::new(File::open(out.0.join("l.tgz")).unwrap()));
        let mut found = false;
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            if let Some(ext) = e.pax_extensions().unwrap() {
                for x in ext {
                    let x = x.unwrap();
                    if x.key().unwrap() == "SCHILY.xattr.user.podnet-test" {
                        assert_eq!(x.value_bytes(), b"v1");
                        found = true;
                    }
                }
            }
        }
        assert!(found);
    }
}

//! Layer unpacking: metadata kept, whiteouts converted, hostile entries kept inside the snapshot.
//! Needs root (ownership, device nodes, trusted.* xattrs).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use podnet_oci::unpack::{clean_path, unpack};
use proptest::prelude::*;

fn new_header() -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// A tar entry with a raw name (tar::Builder refuses `..`, which is what we want to test).
fn entry(
    b: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: tar::EntryType,
    link: Option<&str>,
    data: &[u8],
) {
    let mut h = new_header();
    h.set_entry_type(kind);
    h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
    h.set_size(data.len() as u64);
    h.set_mtime(1_000_000);
    {
        let raw = h.as_old_mut();
        raw.name = [0; 100];
        raw.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            raw.linkname = [0; 100];
            raw.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn tar_of(f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    f(&mut b);
    b.into_inner().unwrap()
}

struct Sandbox {
    _dir: tempfile::TempDir,
    outside: std::path::PathBuf,
    root: std::path::PathBuf,
}

/// `<tmp>/outside` (must stay untouched) and `<tmp>/root` (the snapshot).
fn sandbox() -> Sandbox {
    let dir = tempfile::Builder::new()
        .prefix("pnt-unpack")
        .tempdir()
        .unwrap();
    let outside = dir.path().join("outside");
    let root = dir.path().join("root");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("victim"), b"original").unwrap();
    std::fs::create_dir(&root).unwrap();
    Sandbox {
        _dir: dir,
        outside,
        root,
    }
}

fn assert_outside_untouched(s: &Sandbox) {
    let names: Vec<_> = std::fs::read_dir(&s.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("victim")]);
    assert_eq!(
        std::fs::read(s.outside.join("victim")).unwrap(),
        b"original"
    );
    assert_eq!(
        std::fs::metadata(s.outside.join("victim")).unwrap().nlink(),
        1
    );
    let top: Vec<_> = std::fs::read_dir(s.root.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        top.len(),
        2,
        "something appeared beside the snapshot: {top:?}"
    );
}

#[test]
fn dotdot_and_absolute_names_stay_inside() {
    let s = sandbox();
    let t = tar_of(|b| {
        entry(
            b,
            "../outside/victim",
            tar::EntryType::Regular,
            None,
            b"pwned",
        );
        entry(
            b,
            "../../../../etc/pnt-evil",
            tar::EntryType::Regular,
            None,
            b"pwned",
        );
        entry(b, "/abs/file", tar::EntryType::Regular, None, b"abs");
    });
    unpack(&t[..], &s.root).unwrap();
    assert_eq!(
        std::fs::read(s.root.join("outside/victim")).unwrap(),
        b"pwned"
    );
    assert_eq!(
        std::fs::read(s.root.join("etc/pnt-evil")).unwrap(),
        b"pwned"
    );
    assert_eq!(std::fs::read(s.root.join("abs/file")).unwrap(), b"abs");
    assert!(!Path::new("/etc/pnt-evil").exists());
    assert_outside_untouched(&s);
}

#[test]
fn file_through_a_symlinked_parent_stays_inside() {
    let s = sandbox();
    let out = s.outside.display().to_string();
    let t = tar_of(|b| {
        entry(b, "abs", tar::EntryType::Symlink, Some(&out), b"");
        entry(b, "abs/victim", tar::EntryType::Regular, None, b"pwned");
        entry(
            b,
            "rel",
            tar::EntryType::Symlink,
            Some("../../../../.."),
            b"",
        );
        entry(b, "rel/escaped", tar::EntryType::Regular, None, b"pwned");
    });
    // Either refused or written inside the root: never outside.
    let _ = unpack(&t[..], &s.root);
    assert_outside_untouched(&s);
    assert!(s.root.join("escaped").exists() || !s.root.join("rel").exists());
}

#[test]
fn hard_links_cannot_reach_outside() {
    let s = sandbox();
    let victim = s.outside.join("victim").display().to_string();
    let out = s.outside.display().to_string();
    for t in [
        tar_of(|b| entry(b, "hl", tar::EntryType::Link, Some(&victim), b"")),
        tar_of(|b| {
            entry(
                b,
                "hl",
                tar::EntryType::Link,
                Some("../outside/victim"),
                b"",
            )
        }),
        tar_of(|b| {
            entry(b, "d", tar::EntryType::Symlink, Some(&out), b"");
            entry(b, "hl", tar::EntryType::Link, Some("d/victim"), b"");
        }),
    ] {
        let r = tempfile::tempdir_in(s.root.parent().unwrap()).unwrap();
        assert!(
            unpack(&t[..], r.path()).is_err(),
            "a link to a file that is not in the layer must fail"
        );
    }
    assert_eq!(
        std::fs::metadata(s.outside.join("victim")).unwrap().nlink(),
        1
    );
}

#[test]
fn symlink_replaced_then_written_through_stays_inside() {
    let s = sandbox();
    let out = s.outside.display().to_string();
    let t = tar_of(|b| {
        entry(b, "d/", tar::EntryType::Directory, None, b"");
        entry(b, "d/a", tar::EntryType::Regular, None, b"1");
        entry(b, "d", tar::EntryType::Symlink, Some(&out), b"");
        entry(b, "d/victim", tar::EntryType::Regular, None, b"pwned");
    });
    let _ = unpack(&t[..], &s.root);
    assert_outside_untouched(&s);
}

#[test]
fn whiteouts_and_opaque_directories_become_overlay_form() {
    let s = sandbox();
    let t = tar_of(|b| {
        entry(b, "etc/", tar::EntryType::Directory, None, b"");
        entry(b, "etc/.wh.motd", tar::EntryType::Regular, None, b"");
        entry(b, "var/cache/", tar::EntryType::Directory, None, b"");
        entry(
            b,
            "var/cache/.wh..wh..opq",
            tar::EntryType::Regular,
            None,
            b"",
        );
        entry(b, "var/cache/new", tar::EntryType::Regular, None, b"n");
    });
    let stats = unpack(&t[..], &s.root).unwrap();
    assert_eq!(stats.whiteouts, 2);
    let wh = std::fs::symlink_metadata(s.root.join("etc/motd")).unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    let v = xattr_get(&s.root.join("var/cache"), "trusted.overlay.opaque");
    assert_eq!(v.as_deref(), Some(&b"y"[..]));
    assert!(!s.root.join("var/cache/.wh..wh..opq").exists());
}

fn xattr_get(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(p, name, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[test]
fn metadata_is_preserved() {
    let s = sandbox();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = new_header();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_path("bin/su").unwrap();
    h.set_mode(0o4755);
    h.set_uid(1234);
    h.set_gid(5678);
    h.set_mtime(1_234_567_890);
    h.set_size(3);
    h.set_cksum();
    b.append_pax_extensions([
        ("SCHILY.xattr.user.pnt", &b"v"[..]),
        ("SCHILY.xattr.trusted.overlay.redirect", &b"/x"[..]),
    ])
    .unwrap();
    b.append(&h, &b"abc"[..]).unwrap();
    let mut h = new_header();
    h.set_entry_type(tar::EntryType::Char);
    h.set_path("dev/null").unwrap();
    h.set_mode(0o666);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    h.set_size(0);
    h.set_cksum();
    b.append(&h, &b""[..]).unwrap();
    let mut h = new_header();
    h.set_entry_type(tar::EntryType::Fifo);
    h.set_path("run/fifo").unwrap();
    h.set_mode(0o600);
    h.set_size(0);
    h.set_cksum();
    b.append(&h, &b""[..]).unwrap();
    let mut h = new_header();
    h.set_entry_type(tar::EntryType::Link);
    h.set_path("bin/su2").unwrap();
    h.set_link_name("bin/su").unwrap();
    h.set_size(0);
    h.set_cksum();
    b.append(&h, &b""[..]).unwrap();
    let mut h = new_header();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_path("bin/sh").unwrap();
    h.set_link_name("busybox").unwrap();
    h.set_size(0);
    h.set_cksum();
    b.append(&h, &b""[..]).unwrap();
    let mut h = new_header();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_path("bin/").unwrap();
    h.set_mode(0o711);
    h.set_mtime(1_111_111_111);
    h.set_size(0);
    h.set_cksum();
    b.append(&h, &b""[..]).unwrap();
    let t = b.into_inner().unwrap();
    unpack(&t[..], &s.root).unwrap();

    let m = std::fs::metadata(s.root.join("bin/su")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o4755);
    assert_eq!((m.uid(), m.gid()), (1234, 5678));
    assert_eq!(m.mtime(), 1_234_567_890);
    assert_eq!(m.nlink(), 2, "hard link kept");
    assert_eq!(
        xattr_get(&s.root.join("bin/su"), "user.pnt").as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(
        xattr_get(&s.root.join("bin/su"), "trusted.overlay.redirect"),
        None
    );
    let dev = std::fs::symlink_metadata(s.root.join("dev/null")).unwrap();
    assert_eq!(dev.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(dev.permissions().mode() & 0o777, 0o666);
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(s.root.join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(
        std::fs::read_link(s.root.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let d = std::fs::metadata(s.root.join("bin")).unwrap();
    assert_eq!(d.permissions().mode() & 0o7777, 0o711);
    assert_eq!(
        d.mtime(),
        1_111_111_111,
        "directory time set after its children"
    );
}

#[test]
fn later_entries_replace_earlier_ones() {
    let s = sandbox();
    let t = tar_of(|b| {
        entry(b, "x", tar::EntryType::Regular, None, b"old");
        entry(b, "x", tar::EntryType::Regular, None, b"new");
        entry(b, "d/", tar::EntryType::Directory, None, b"");
        entry(b, "d/f", tar::EntryType::Regular, None, b"f");
        entry(b, "d", tar::EntryType::Regular, None, b"now a file");
    });
    unpack(&t[..], &s.root).unwrap();
    assert_eq!(std::fs::read(s.root.join("x")).unwrap(), b"new");
    assert_eq!(std::fs::read(s.root.join("d")).unwrap(), b"now a file");
}

#[test]
fn clean_path_never_climbs() {
    assert_eq!(clean_path(b"../../a/./b/../c"), vec![&b"a"[..], &b"c"[..]]);
    assert!(clean_path(b"/").is_empty());
}

fn hostile_name() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("..".to_string()),
            Just(".".to_string()),
            Just("".to_string()),
            Just("l".to_string()),
            Just("outside".to_string()),
            "[a-c]{1,2}"
        ],
        1..6,
    )
    .prop_map(|c| c.join("/"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Random names, symlinks to `..`/absolute places and hard links: nothing lands outside the root.
    #[test]
    fn random_hostile_layers_never_escape(
        ops in prop::collection::vec((0u8..4, hostile_name(), hostile_name()), 1..12)
    ) {
        let s = sandbox();
        let out = s.outside.display().to_string();
        let t = tar_of(|b| {
            for (kind, name, target) in &ops {
                match kind {
                    0 => entry(b, name, tar::EntryType::Regular, None, b"x"),
                    1 => entry(b, name, tar::EntryType::Directory, None, b""),
                    2 => entry(b, name, tar::EntryType::Symlink, Some(if target.len() % 2 == 0 { &out } else { target }), b""),
                    _ => entry(b, name, tar::EntryType::Link, Some(target), b""),
                }
            }
        });
        let _ = unpack(&t[..], &s.root);
        assert_outside_untouched(&s);
    }
}

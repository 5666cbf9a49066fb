//! Paths under a root whose content the agent does not trust (an image's root filesystem, a volume a
//! container writes to), resolved *inside* it with `openat2(RESOLVE_IN_ROOT)`: a symlink such as
//! `/etc/passwd -> /etc/shadow` or `dir -> ../../..` names something in the root, never the node's
//! files (containerd resolves the user's `/etc/passwd` so; kubelet creates subPath directories so).

use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::io::Read;
use std::path::Path;

/// The text of `rel` (relative to `root`) with symlinks resolved inside `root`, at most `limit`
/// bytes; `None` when it is absent, not a regular file, or unreadable.
pub fn read_in_root(root: &Path, rel: &str, limit: u64) -> Option<String> {
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let fd = rustix::fs::openat2(
        &dir,
        rel.trim_start_matches('/'),
        // NONBLOCK: opening a FIFO must not wait for a writer.
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV,
    )
    .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return None;
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(limit)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Creates the directories of `rel` under `root` (0755), each resolved inside `root`, so a symlink a
/// container planted in its volume cannot make the agent create directories elsewhere on the node.
pub fn mkdir_in_root(root: &Path, rel: &str) -> std::io::Result<()> {
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut done = String::new();
    for comp in rel.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let parent = if done.is_empty() {
            dir.try_clone()?
        } else {
            rustix::fs::openat2(
                &dir,
                done.as_str(),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            )?
        };
        match rustix::fs::mkdirat(&parent, comp, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        if !done.is_empty() {
            done.push('/');
        }
        done.push_str(comp);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "node:x:0:0::/:/bin/sh\n").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        // Absolute and climbing links that would name the node's file if followed on the host.
        symlink(
            outside.path().join("secret"),
            root.path().join("etc/passwd"),
        )
        .unwrap();
        symlink(
            "../../../../../../..".to_string()
                + &outside.path().join("secret").display().to_string(),
            root.path().join("etc/group"),
        )
        .unwrap();
        assert_eq!(read_in_root(root.path(), "etc/passwd", 1 << 20), None);
        assert_eq!(read_in_root(root.path(), "/etc/group", 1 << 20), None);
        // A link inside the image is followed inside it.
        std::fs::write(root.path().join("etc/real"), "app:x:100:100::/:/bin/sh\n").unwrap();
        std::fs::remove_file(root.path().join("etc/passwd")).unwrap();
        symlink("/etc/real", root.path().join("etc/passwd")).unwrap();
        assert_eq!(
            read_in_root(root.path(), "/etc/passwd", 1 << 20).as_deref(),
            Some("app:x:100:100::/:/bin/sh\n")
        );
    }

    #[test]
    fn only_regular_files_and_at_most_the_limit() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        nix::unistd::mkfifo(
            &root.path().join("etc/passwd"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        // A FIFO with no writer: refused at once, not waited on.
        assert_eq!(read_in_root(root.path(), "etc/passwd", 1 << 20), None);
        std::fs::write(root.path().join("etc/group"), "x".repeat(100)).unwrap();
        assert_eq!(
            read_in_root(root.path(), "etc/group", 10).unwrap().len(),
            10
        );
        assert_eq!(read_in_root(root.path(), "etc/missing", 10), None);
    }

    #[test]
    fn directories_are_made_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        symlink(outside.path(), root.path().join("out")).unwrap();
        // The link resolves as if the root were `/`, to a directory the root lacks: refused.
        assert!(mkdir_in_root(root.path(), "out/made/deeper").is_err());
        assert!(!outside.path().join("made").exists());
        // Where the link's target exists inside the root, the directories go there.
        let inside = root.path().join(outside.path().strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();
        mkdir_in_root(root.path(), "out/made/deeper").unwrap();
        assert!(inside.join("made/deeper").is_dir());
        assert!(!outside.path().join("made").exists());
        mkdir_in_root(root.path(), "a/b").unwrap();
        assert!(root.path().join("a/b").is_dir());
    }
}

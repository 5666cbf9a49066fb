//! The busybox image's root: Debian's busybox-static binary alone, a link per applet, and the few
//! files a shell expects; no Debian under it, like the upstream image.

use crate::error::{Error, Result, io_at};
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

/// A root with only busybox: the binary, a link per applet (`busybox --list-full`), and the few
/// files a shell expects.
pub fn busybox_tree(upper: &Path, tree: &Path) -> Result<()> {
    let src = ["usr/bin/busybox", "bin/busybox"]
        .iter()
        .map(|p| upper.join(p))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "busybox-static installed no busybox binary under {}",
                upper.display()
            ))
        })?;
    let _ = fs::remove_dir_all(tree);
    let bin = tree.join("bin");
    fs::create_dir_all(&bin).map_err(io_at("create", &bin))?;
    let busybox = bin.join("busybox");
    fs::copy(&src, &busybox).map_err(io_at("copy", &src))?;
    fs::set_permissions(&busybox, fs::Permissions::from_mode(0o755))
        .map_err(io_at("chmod", &busybox))?;
    let out = std::process::Command::new(&busybox)
        .arg("--list-full")
        .output()
        .map_err(io_at("run", &busybox))?;
    if !out.status.success() {
        return Err(Error::Command {
            what: "list busybox's applets".into(),
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim().trim_start_matches('/');
        if applet.is_empty() || applet == "bin/busybox" || applet.contains("..") {
            continue;
        }
        let link = tree.join(applet);
        if link.symlink_metadata().is_ok() {
            continue;
        }
        fs::create_dir_all(link.parent().expect("has parent")).map_err(io_at("create", &link))?;
        symlink("/bin/busybox", &link).map_err(io_at("link", &link))?;
    }
    let files: [(&str, &str, u32); 4] = [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nwww-data:x:33:33:www-data:/var/www:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
            0o644,
        ),
        (
            "etc/group",
            "root:x:0:\ndaemon:x:1:\nwww-data:x:33:\nnogroup:x:65534:\n",
            0o644,
        ),
        (
            "etc/shadow",
            "root:*::0:::::\ndaemon:*::0:::::\nwww-data:*::0:::::\nnobody:*::0:::::\n",
            0o640,
        ),
        ("etc/nsswitch.conf", "hosts: files dns\n", 0o644),
    ];
    for (path, content, mode) in files {
        let p = tree.join(path);
        fs::create_dir_all(p.parent().expect("has parent")).map_err(io_at("create", &p))?;
        fs::write(&p, content).map_err(io_at("write", &p))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(io_at("chmod", &p))?;
    }
    for (dir, mode) in [
        ("dev", 0o755),
        ("home", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("var/www", 0o755),
    ] {
        let p = tree.join(dir);
        fs::create_dir_all(&p).map_err(io_at("create", &p))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(io_at("chmod", &p))?;
    }
    Ok(())
}

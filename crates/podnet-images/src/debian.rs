//! Root filesystems from Debian's packages, built without installing anything on the machine.
//!
//! The base comes from `mmdebstrap` (root mode, minbase, merged /usr). Each image layer installs its
//! packages with `apt-get` in a chroot whose root is an overlay: the base as the read-only lower
//! directory, an empty upper directory that collects every change, which is then exactly the layer
//! (see `tarball`). The overlay, proc and the bind mounts live in a private mount namespace
//! (`unshare --mount`), so they vanish with the build even if it is killed. apt reaches Debian's
//! mirror through the machine's network; the package lists and downloaded packages of the base are
//! shared by bind mounts and never land in a layer.

use crate::error::{Error, Result, io_at};
use crate::recipe::{DPKG_EXCLUDES, SOURCE_DATE_EPOCH, SUITE};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where apt fetches from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirrors {
    pub debian: String,
    pub security: String,
}

impl Default for Mirrors {
    fn default() -> Mirrors {
        Mirrors {
            debian: crate::recipe::DEBIAN_MIRROR.into(),
            security: crate::recipe::SECURITY_MIRROR.into(),
        }
    }
}

impl Mirrors {
    /// The apt sources of the base (also left in the images, so `apt-get update` works where the
    /// mirror is reachable).
    pub fn sources(&self) -> Vec<String> {
        vec![
            format!("deb {} {SUITE} main", self.debian),
            format!("deb {} {SUITE}-updates main", self.debian),
            format!("deb {} {SUITE}-security main", self.security),
        ]
    }
}

/// Removes what differs between two builds of the same packages: logs, caches, backups of
/// dpkg's and debconf's databases, temporary files. `$1` is the root.
const TIDY: &str = r#"
r=$1
rm -f "$r"/var/log/dpkg.log "$r"/var/log/alternatives.log "$r"/var/log/bootstrap.log
rm -rf "$r"/var/log/apt/*
rm -f "$r"/var/cache/ldconfig/aux-cache "$r"/var/cache/apt/*.bin
rm -f "$r"/var/lib/dpkg/*-old "$r"/var/cache/debconf/*-old
find "$r"/tmp "$r"/var/tmp -mindepth 1 -delete
"#;

/// Runs `cmd`, its output appended to `log`; a failure names `what` and quotes the log's end.
fn run_logged(mut cmd: Command, what: &str, log: &Path) -> Result<()> {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io_at("open", log))?;
    let err = file.try_clone().map_err(io_at("open", log))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .status()
        .map_err(|e| Error::Command {
            what: what.to_string(),
            detail: format!("start {:?}: {e}", cmd.get_program()),
        })?;
    if status.success() {
        return Ok(());
    }
    let text = fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(12).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(Error::Command {
        what: what.to_string(),
        detail: format!(
            "{status}; the end of {}:\n  {}",
            log.display(),
            tail.join("\n  ")
        ),
    })
}

/// Builds the Debian base at `rootfs` and moves apt's package lists and downloaded packages to
/// `apt/lists` and `apt/archives`, for the layers built on top.
pub fn bootstrap(mirrors: &Mirrors, rootfs: &Path, apt: &Path, log: &Path) -> Result<()> {
    // In a private mount namespace: the proc, sys and dev mounts mmdebstrap makes in the chroot
    // vanish with it, even when the build is killed (so a later cleanup of the directory never
    // walks into the machine's /dev).
    let mut cmd = Command::new("unshare");
    cmd.env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH.to_string())
        .args(["--mount", "--propagation", "private", "mmdebstrap"])
        .args([
            "--variant=minbase",
            "--mode=root",
            "--format=directory",
            "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
            "--skip=cleanup/apt/lists",
            "--skip=cleanup/apt/cache",
        ])
        .args(DPKG_EXCLUDES.iter().map(|o| format!("--dpkgopt={o}")))
        .arg(SUITE)
        .arg(rootfs)
        .args(mirrors.sources());
    run_logged(
        cmd,
        &format!("build the Debian {SUITE} base with mmdebstrap"),
        log,
    )?;

    let move_files = |from: PathBuf, to: PathBuf, keep: &[&str]| -> Result<()> {
        fs::create_dir_all(to.join("partial")).map_err(io_at("create", &to))?;
        for entry in fs::read_dir(&from).map_err(io_at("list", &from))?.flatten() {
            let name = entry.file_name();
            if keep.iter().any(|k| name == *k) {
                continue;
            }
            fs::rename(entry.path(), to.join(&name)).map_err(io_at("move", &entry.path()))?;
        }
        Ok(())
    };
    move_files(
        rootfs.join("var/lib/apt/lists"),
        apt.join("lists"),
        &["lock", "partial"],
    )?;
    move_files(
        rootfs.join("var/cache/apt/archives"),
        apt.join("archives"),
        &["lock", "partial"],
    )?;
    // mmdebstrap's root mode leaves device nodes and the machine's DNS and host name; a container
    // runtime provides all three.
    let dev = rootfs.join("dev");
    for entry in fs::read_dir(&dev).map_err(io_at("list", &dev))?.flatten() {
        let p = entry.path();
        let r = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        r.map_err(io_at("remove", &p))?;
    }
    let _ = fs::remove_file(rootfs.join("etc/hostname"));
    let resolv = rootfs.join("etc/resolv.conf");
    let _ = fs::remove_file(&resolv);
    // Empty, not absent: the apt steps bind the machine's resolver configuration over it.
    fs::write(&resolv, b"").map_err(io_at("write", &resolv))?;
    let mut tidy = Command::new("sh");
    tidy.args(["-euc", TIDY, "sh"]).arg(rootfs);
    run_logged(tidy, "tidy the Debian base", log)
}

/// Overlay, chroot and apt-get, run by `sh` in a private mount namespace. Arguments: base, upper,
/// work, merged, apt dir, staged files dir, then the packages. `$SCRIPT` runs in the chroot after
/// the install.
const APT_STEP: &str = r#"
base=$1 upper=$2 work=$3 merged=$4 apt=$5 files=$6
shift 6
mount -t overlay overlay -o "lowerdir=$base,upperdir=$upper,workdir=$work,redirect_dir=off,metacopy=off,index=off" "$merged"
mount --bind "$apt/lists" "$merged/var/lib/apt/lists"
mount --bind "$apt/archives" "$merged/var/cache/apt/archives"
mount --bind /etc/resolv.conf "$merged/etc/resolv.conf"
mount -t proc proc "$merged/proc"
mount --rbind /dev "$merged/dev"
in_root() {
  chroot "$merged" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive SOURCE_DATE_EPOCH="$EPOCH" "$@"
}
# No service starts inside the build (Debian's policy-rc.d convention).
printf '#!/bin/sh\nexit 101\n' > "$merged/usr/sbin/policy-rc.d"
chmod 755 "$merged/usr/sbin/policy-rc.d"
echo "+ apt-get install $*"
in_root apt-get install -y -q --no-install-recommends -o Dpkg::Use-Pty=0 "$@"
rm -f "$merged/usr/sbin/policy-rc.d"
(cd "$files" && find . -type f) | while read -r f; do
  echo "+ write ${f#.}"
  install -D -m "$(stat -c %a "$files/$f")" "$files/$f" "$merged/${f#./}"
done
if [ -n "$SCRIPT" ]; then
  in_root /bin/sh -eux -c "$SCRIPT"
fi
umount -R "$merged/dev"
umount "$merged/proc" "$merged/etc/resolv.conf" "$merged/var/cache/apt/archives" "$merged/var/lib/apt/lists"
tidy() {
TIDY_BODY
}
tidy "$merged"
umount "$merged"
"#;

/// The directories of one apt step.
pub struct AptStep<'a> {
    pub base: &'a Path,
    pub apt: &'a Path,
    /// Scratch space: `upper/` (the result), `work/`, `merged/`, `files/`.
    pub scratch: &'a Path,
    pub packages: &'a [&'a str],
    pub files: &'a [crate::recipe::File],
    pub script: &'a str,
    pub log: &'a Path,
    pub what: &'a str,
}

impl AptStep<'_> {
    pub fn upper(&self) -> PathBuf {
        self.scratch.join("upper")
    }

    /// Installs the packages on the base; the changes are left in [`AptStep::upper`].
    pub fn run(&self) -> Result<()> {
        let _ = fs::remove_dir_all(self.scratch);
        for d in ["upper", "work", "merged", "files"] {
            let p = self.scratch.join(d);
            fs::create_dir_all(&p).map_err(io_at("create", &p))?;
        }
        let staged = self.scratch.join("files");
        for f in self.files {
            let p = staged.join(f.path.trim_start_matches('/'));
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent).map_err(io_at("create", parent))?;
            }
            fs::write(&p, f.content).map_err(io_at("write", &p))?;
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&p, fs::Permissions::from_mode(f.mode))
                .map_err(io_at("chmod", &p))?;
        }
        let script = APT_STEP.replace("TIDY_BODY", TIDY);
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-euc"])
            .arg(script)
            .arg("sh")
            .arg(self.base)
            .arg(self.upper())
            .arg(self.scratch.join("work"))
            .arg(self.scratch.join("merged"))
            .arg(self.apt)
            .arg(&staged)
            .args(self.packages)
            .env("SCRIPT", self.script)
            .env("EPOCH", SOURCE_DATE_EPOCH.to_string());
        run_logged(cmd, self.what, self.log)
    }
}

/// The installed packages of the root at `root` (name -> version), read from dpkg's status file.
pub fn packages(root: &Path) -> Result<BTreeMap<String, String>> {
    let path = root.join("var/lib/dpkg/status");
    let text = fs::read_to_string(&path).map_err(io_at("read", &path))?;
    Ok(parse_status(&text))
}

/// Parses a dpkg status file: packages whose status is `install ok installed`.
pub fn parse_status(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        if let (Some(p), Some(v), Some("install ok installed")) =
            (field("Package"), field("Version"), field("Status"))
        {
            out.insert(p.to_string(), v.to_string());
        }
    }
    out
}

/// The dpkg status file of an overlay upper directory, if the step changed it.
pub fn upper_packages(upper: &Path) -> Result<Option<BTreeMap<String, String>>> {
    if upper.join("var/lib/dpkg/status").exists() {
        packages(upper).map(Some)
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_keeps_installed_packages_only() {
        let text = "Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b7\nDescription: x\n continued\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: nginx\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.22.1-9+deb12u12\n";
        let p = parse_status(text);
        assert_eq!(p.len(), 2);
        assert_eq!(p["bash"], "5.2.15-2+b7");
        assert_eq!(p["nginx"], "1.22.1-9+deb12u12");
    }

    #[test]
    fn sources_name_the_three_suites() {
        let s = Mirrors::default().sources();
        assert_eq!(s[0], "deb http://deb.debian.org/debian bookworm main");
        assert_eq!(
            s[1],
            "deb http://deb.debian.org/debian bookworm-updates main"
        );
        assert_eq!(
            s[2],
            "deb http://deb.debian.org/debian-security bookworm-security main"
        );
    }
}

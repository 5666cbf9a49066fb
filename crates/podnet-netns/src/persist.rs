//! Namespaces that outlive their creator: a new namespace bind-mounted onto a file, as `ip netns add`
//! does, so `ip netns exec`, `nsenter --net=PATH` and CNI's `CNI_NETNS` can all reach it by path.

use crate::error::{Error, Result};
use crate::netns::NetNs;
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where `ip netns` keeps named network namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// The kinds of namespace podnet persists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsKind {
    Net,
    Uts,
}

impl NsKind {
    fn flag(self) -> CloneFlags {
        match self {
            NsKind::Net => CloneFlags::CLONE_NEWNET,
            NsKind::Uts => CloneFlags::CLONE_NEWUTS,
        }
    }

    fn proc_name(self) -> &'static str {
        match self {
            NsKind::Net => "net",
            NsKind::Uts => "uts",
        }
    }
}

/// Makes `dir` a shared mount point (bind-mounting it onto itself first if needed), as iproute2 does,
/// so namespace mounts made later propagate into mount namespaces created since.
pub fn prepare_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let shared = |d: &Path| {
        mount(
            None::<&str>,
            d,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared(dir) {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL) => {
            mount(
                Some(dir),
                dir,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| Error::sys(format!("bind-mount {} onto itself", dir.display()), e))?;
            shared(dir).map_err(|e| Error::sys(format!("make {} a shared mount", dir.display()), e))
        }
        Err(e) => Err(Error::sys(
            format!("make {} a shared mount", dir.display()),
            e,
        )),
    }
}

/// Creates a new namespace of `kind`, runs `setup` inside it (on the creating thread), and binds it to
/// `path`. Fails with `AlreadyExists` if `path` exists. On any failure nothing is left behind.
pub fn create(kind: NsKind, path: &Path, setup: impl FnOnce() -> Result<()> + Send) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(path)
        .map_err(|e| Error::io(format!("create namespace file {}", path.display()), e))?;
    let made = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("podnet-nsnew".into())
            .spawn_scoped(scope, || -> Result<()> {
                unshare(kind.flag()).map_err(|e| {
                    Error::sys(format!("unshare {} namespace", kind.proc_name()), e)
                })?;
                setup()?;
                let own = format!("/proc/thread-self/ns/{}", kind.proc_name());
                mount(
                    Some(own.as_str()),
                    path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| Error::sys(format!("bind namespace to {}", path.display()), e))
            })
            .map_err(|e| Error::io("spawn namespace thread".into(), e))?
            .join()
            .unwrap_or_else(|_| Err(Error::Panicked(path.display().to_string())))
    });
    if made.is_err() {
        let _ = remove(path);
    }
    made
}

/// Unbinds and removes a persisted namespace. Returns `Ok(false)` if there was nothing there. The
/// namespace itself lives on while any process or open fd still holds it.
pub fn remove(path: &Path) -> Result<bool> {
    let existed = path.exists();
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(Error::sys(format!("unmount {}", path.display()), e)),
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(existed),
        Err(e) => Err(Error::io(format!("remove {}", path.display()), e)),
    }
}

/// The path of a named network namespace (`/run/netns/NAME`).
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

impl NetNs {
    /// `ip netns add NAME`, with `lo` brought up: the namespace is usable at once.
    pub fn create_named(name: &str) -> Result<NetNs> {
        prepare_dir(Path::new(NETNS_RUN_DIR))?;
        let path = netns_path(name);
        create(NsKind::Net, &path, || {
            let mut nl = podnet_netlink::Netlink::open().map_err(|e| Error::Netlink {
                what: format!("open netlink in new namespace {name}"),
                cause: e,
            })?;
            let lo = nl
                .link_by_name("lo")
                .and_then(|l| {
                    l.ok_or(podnet_netlink::Error::Kernel {
                        errno: libc::ENODEV,
                        message: None,
                    })
                })
                .map_err(|e| Error::Netlink {
                    what: format!("find lo in namespace {name}"),
                    cause: e,
                })?;
            nl.set_link_up(lo.index, true).map_err(|e| Error::Netlink {
                what: format!("bring lo up in namespace {name}"),
                cause: e,
            })
        })?;
        NetNs::open(&path)
    }

    /// `ip netns delete NAME`; `Ok(false)` if it did not exist.
    pub fn delete_named(name: &str) -> Result<bool> {
        remove(&netns_path(name))
    }
}

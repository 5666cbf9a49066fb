//! A handle on a network namespace and the one sanctioned way to work inside it.

use crate::error::{Error, Result};
use nix::sched::{CloneFlags, setns};
use podnet_netlink::Netlink;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// `NS_GET_NSTYPE` ioctl: which kind of namespace an nsfs file is.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// An open network namespace. Holding it keeps the namespace alive.
#[derive(Debug)]
pub struct NetNs {
    file: File,
    path: PathBuf,
}

/// Identity of a namespace (device and inode of its nsfs file): equal ids are the same namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NsId {
    pub dev: u64,
    pub ino: u64,
}

impl NetNs {
    /// Opens a network namespace by path (`/run/netns/x`, `/proc/PID/ns/net`, a bind mount). Anything
    /// that is not a network namespace is refused by name.
    pub fn open(path: impl AsRef<Path>) -> Result<NetNs> {
        let path = path.as_ref();
        let file = File::open(path)
            .map_err(|e| Error::io(format!("open network namespace {}", path.display()), e))?;
        // SAFETY: the fd is valid for the duration of the call; the ioctl takes no argument.
        let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
        if kind < 0 {
            return Err(Error::NotANamespace(path.display().to_string()));
        }
        if kind != libc::CLONE_NEWNET {
            return Err(Error::NotANamespace(path.display().to_string()));
        }
        Ok(NetNs {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The calling thread's own network namespace.
    pub fn current() -> Result<NetNs> {
        NetNs::open("/proc/thread-self/ns/net")
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    pub fn id(&self) -> Result<NsId> {
        let meta = self
            .file
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", self.path.display()), e))?;
        Ok(NsId {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Runs `f` inside this namespace on a dedicated OS thread that exists only for `f`. The caller's
    /// thread never changes namespace, and the namespace change dies with the thread, so nothing can
    /// leak into other work even if `f` panics (the panic is returned as an error).
    pub fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let fd = self.file.as_fd();
        std::thread::scope(|scope| {
            let worker = std::thread::Builder::new()
                .name("podnet-netns".into())
                .spawn_scoped(scope, move || {
                    setns(fd, CloneFlags::CLONE_NEWNET)
                        .map_err(|e| Error::Setns(e.desc().to_string()))?;
                    Ok(f())
                })
                .map_err(|e| Error::io("spawn namespace thread".into(), e))?;
            worker
                .join()
                .unwrap_or_else(|_| Err(Error::Panicked(self.path.display().to_string())))
        })
        .map_err(|e| e.in_namespace(&self.path))
    }

    /// An rtnetlink socket inside this namespace. It stays bound to the namespace for its whole life,
    /// whatever thread later uses it.
    pub fn netlink(&self) -> Result<Netlink> {
        self.run(Netlink::open)?.map_err(|e| Error::Netlink {
            what: format!("open netlink in {}", self.path.display()),
            cause: e,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_files_that_are_not_namespaces() {
        let err = NetNs::open("/proc/self/status").unwrap_err();
        assert!(matches!(err, Error::NotANamespace(_)), "{err}");
        let err = NetNs::open("/nonexistent/netns").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/netns"), "{err}");
    }

    #[test]
    fn running_inside_leaves_the_caller_where_it_was() {
        let here = NetNs::current().unwrap();
        let before = here.id().unwrap();
        let inside = here
            .run(|| NetNs::current().unwrap().id().unwrap())
            .unwrap();
        assert_eq!(inside, before);
        assert_eq!(NetNs::current().unwrap().id().unwrap(), before);
    }
}

//! Starting the pause process in the pod's new namespaces, and the namespace files around it.
//!
//! The agent may be multi-threaded (tokio), so the child side of every fork here does only
//! async-signal-safe system calls with everything prepared beforehand, and the agent's own threads
//! never change namespace: the new namespaces are made by `unshare` in a forked child, and `lo` is
//! brought up over a netlink socket opened by [`podnet_netns::NetNs::netlink`] (a dedicated thread).

use crate::error::{Error, Result};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Messages from the forked children to the agent, 8 bytes each (atomic on a pipe).
const MSG_PID: u32 = 1;
const MSG_UNSHARE: u32 = 2;
const MSG_HOSTNAME: u32 = 3;
const MSG_FORK: u32 = 4;
const MSG_EXEC: u32 = 5;

/// Which namespaces the pause process gets.
#[derive(Debug, Clone, Copy)]
pub struct NsFlags {
    pub net: bool,
    pub uts: bool,
}

/// The environment variable that tags a pause process with its sandbox's ID, so a pause whose PID
/// never reached the record (the agent was killed while starting it) is still found and stopped.
pub const SANDBOX_ENV: &str = "PODNET_SANDBOX";

/// Starts `pause` as PID 1 of a new PID namespace, with new IPC (and network and UTS unless shared
/// with the node) namespaces and `hostname` set, tagged with `sandbox_id` ([`SANDBOX_ENV`]). The
/// pause process is a grandchild: it is re-parented (to the nearest subreaper or init) at once, so
/// the agent never has to reap it and it does not die with the agent. Returns its host PID.
pub fn spawn_pause(pause: &Path, hostname: &str, ns: NsFlags, sandbox_id: &str) -> Result<u32> {
    let what = format!("start pause process {}", pause.display());
    let path = CString::new(pause.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("{what}: path contains NUL")))?;
    let arg0 = CString::new("podnet-pause").expect("static");
    let argv = [arg0.as_ptr(), std::ptr::null()];
    let tag = CString::new(format!("{SANDBOX_ENV}={sandbox_id}"))
        .map_err(|_| Error::Invalid(format!("{what}: sandbox id contains NUL")))?;
    let envp = [tag.as_ptr(), std::ptr::null()];
    let host = hostname.as_bytes().to_vec();
    let devnull = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/null")
        .map_err(|e| Error::io(format!("{what}: open /dev/null"), e))?;
    let mut flags = libc::CLONE_NEWPID | libc::CLONE_NEWIPC;
    if ns.net {
        flags |= libc::CLONE_NEWNET;
    }
    if ns.uts {
        flags |= libc::CLONE_NEWUTS;
    }
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::io(
            format!("{what}: pipe"),
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: pipe2 returned two fresh descriptors that we now own.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let w = wr.as_raw_fd();
    let null = devnull.as_raw_fd();

    // SAFETY: between fork and _exit/execve the children call only async-signal-safe functions on
    // memory prepared above (no allocation, no locks).
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(Error::io(
            format!("{what}: fork"),
            std::io::Error::last_os_error(),
        ));
    }
    if child == 0 {
        unsafe {
            let send = |tag: u32, val: u32| {
                let msg = [tag.to_ne_bytes(), val.to_ne_bytes()].concat_array();
                libc::write(w, msg.as_ptr().cast(), 8);
            };
            let errno = || *libc::__errno_location() as u32;
            if libc::unshare(flags) != 0 {
                send(MSG_UNSHARE, errno());
                libc::_exit(1);
            }
            if ns.uts && libc::sethostname(host.as_ptr().cast(), host.len()) != 0 {
                send(MSG_HOSTNAME, errno());
                libc::_exit(1);
            }
            let pid = libc::fork();
            if pid < 0 {
                send(MSG_FORK, errno());
                libc::_exit(1);
            }
            if pid == 0 {
                // PID 1 of the new namespace.
                let empty: libc::sigset_t = std::mem::zeroed();
                libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                libc::setsid();
                libc::dup2(null, 0);
                libc::dup2(null, 1);
                libc::dup2(null, 2);
                libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
                send(MSG_EXEC, errno());
                libc::_exit(127);
            }
            send(MSG_PID, pid as u32);
            libc::_exit(0);
        }
    }
    drop(wr);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None);
    let mut buf = Vec::new();
    let _ = fs::File::from(rd).read_to_end(&mut buf);
    let mut pid = None;
    for msg in buf.chunks_exact(8) {
        let tag = u32::from_ne_bytes(msg[0..4].try_into().expect("4 bytes"));
        let val = u32::from_ne_bytes(msg[4..8].try_into().expect("4 bytes"));
        let err = |step: &str| {
            Error::io(
                format!("{what}: {step}"),
                std::io::Error::from_raw_os_error(val as i32),
            )
        };
        match tag {
            MSG_PID => pid = Some(val),
            MSG_UNSHARE => return Err(err("unshare namespaces")),
            MSG_HOSTNAME => return Err(err(&format!("set hostname {hostname:?}"))),
            MSG_FORK => return Err(err("fork")),
            MSG_EXEC => return Err(err("exec")),
            _ => {}
        }
    }
    pid.ok_or_else(|| Error::Invalid(format!("{what}: the child reported no pid")))
}

trait ConcatArray {
    fn concat_array(self) -> [u8; 8];
}

impl ConcatArray for [[u8; 4]; 2] {
    fn concat_array(self) -> [u8; 8] {
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&self[0]);
        out[4..].copy_from_slice(&self[1]);
        out
    }
}

/// Brings `lo` up in the network namespace of `pid`.
pub fn loopback_up(pid: u32) -> Result<()> {
    let path = format!("/proc/{pid}/ns/net");
    let ns = podnet_netns::NetNs::open(&path).map_err(|e| Error::Netns {
        what: format!("open {path}"),
        cause: e,
    })?;
    let mut nl = ns.netlink().map_err(|e| Error::Netns {
        what: format!("netlink in {path}"),
        cause: e,
    })?;
    let nle = |what: &str| {
        let what = what.to_string();
        move |e: podnet_netlink::Error| Error::Invalid(format!("{what}: {e}"))
    };
    let lo = nl
        .link_by_name("lo")
        .map_err(nle("find lo"))?
        .ok_or_else(|| Error::Invalid("no lo in the new namespace".into()))?;
    nl.set_link_up(lo.index, true).map_err(nle("bring lo up"))
}

/// Bind-mounts the network namespace of `pid` onto `file` (made first), as `ip netns attach`.
pub fn bind_netns(pid: u32, file: &Path) -> Result<()> {
    if let Some(dir) = file.parent() {
        podnet_netns::persist::prepare_dir(dir).map_err(|e| Error::Netns {
            what: format!("prepare {}", dir.display()),
            cause: e,
        })?;
    }
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o444)
        .open(file)
        .map_err(|e| Error::io(format!("create {}", file.display()), e))?;
    let src = format!("/proc/{pid}/ns/net");
    mount(
        Some(src.as_str()),
        file,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| Error::sys(format!("bind {src} to {}", file.display()), e))
}

/// Unmounts whatever is mounted on `path` (lazily) and removes it; missing is fine.
pub fn unmount_remove(path: &Path, dir: bool) -> Result<()> {
    // Several stacked mounts (a retried bind) come off one by one.
    for _ in 0..8 {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => break,
            Err(e) => return Err(Error::sys(format!("unmount {}", path.display()), e)),
        }
    }
    let r = if dir {
        fs::remove_dir(path)
    } else {
        fs::remove_file(path)
    };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("remove {}", path.display()), e)),
    }
}

/// The pod's `/dev/shm`: a tmpfs every container of the pod bind-mounts (they share IPC, so they
/// share POSIX shared memory too), 64 MiB as Docker and containerd.
pub fn mount_shm(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    mount(
        Some("shm"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )
    .map_err(|e| Error::sys(format!("mount tmpfs on {}", dir.display()), e))
}

//! Sending a batch to nf_tables in the calling thread's network namespace and collecting what the
//! kernel rejected. A `GETGEN` request after the batch is the fence: every error about the batch
//! arrives before its answer.

use super::encode::Batch;
use crate::error::{Error, Result};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};
use std::os::fd::AsRawFd;
use std::time::Duration;

const NLMSG_ERROR: u16 = 2;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const MSG_NEWGEN: u16 = 15;
const MSG_GETGEN: u16 = 16;
/// How long the kernel may take to answer the fence (a batch is processed while it is sent, so
/// this is only a bound against a stuck socket).
const ANSWER_BOUND: Duration = Duration::from_secs(30);

/// Which network namespace the calling thread is in (device and inode of its namespace file).
pub fn current_netns() -> Result<(u64, u64)> {
    use std::os::linux::fs::MetadataExt;
    let m = std::fs::metadata("/proc/thread-self/ns/net")?;
    Ok((m.st_dev(), m.st_ino()))
}

/// A netlink socket to nf_tables, kept open across batches by a long-lived writer. Closing an
/// nf_tables socket waits for the kernel's pending transaction clean-up (an RCU grace period,
/// 10-20 ms here, whenever a batch deleted something), so a writer that closes its socket after
/// every batch pays that wait on each change.
pub struct Conn {
    socket: Socket,
    /// The namespace the socket belongs to: a socket acts on the namespace it was made in, so it
    /// is used only by threads in that namespace.
    pub netns: (u64, u64),
    /// Where answers are read (kept: a writer may send a batch every few milliseconds).
    buf: Vec<u8>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("netns", &self.netns).finish()
    }
}

impl Conn {
    /// A socket in the calling thread's namespace, which must be `netns`.
    pub fn open(netns: (u64, u64)) -> Result<Conn> {
        let mut socket = Socket::new(NETLINK_NETFILTER)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        let fd = socket.as_raw_fd();
        if set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 4 << 20).is_err() {
            let _ = set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, 4 << 20);
        }
        // Errors without a copy of the refused message: tens of thousands of them still fit
        // (NETLINK_CAP_ACK, Linux 4.3; without it answers are only larger).
        let _ = set_int(fd, libc::SOL_NETLINK, libc::NETLINK_CAP_ACK, 1);
        Ok(Conn {
            socket,
            netns,
            buf: vec![0u8; 256 * 1024],
        })
    }

    /// Sends `batch` and reads every answer up to the fence's; returns the (sequence number, errno)
    /// of each message the kernel refused. A socket that refused nothing has nothing left to read
    /// and can carry the next batch.
    pub fn exchange(&mut self, batch: &Batch, fence_seq: u32) -> Result<Vec<(u32, i32)>> {
        let Conn { socket, buf, .. } = self;
        let fd = socket.as_raw_fd();
        // A batch is one message to the kernel, so the send buffer must hold all of it (nft does
        // the same). FORCE passes the system's wmem_max but needs CAP_NET_ADMIN in the initial
        // user namespace; elsewhere (a lab in a user namespace) the plain option is the best there
        // is, and a batch too big for it fails to send with EMSGSIZE.
        let send_buf = batch.bytes.len() + 65536;
        if set_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, send_buf).is_err() {
            let _ = set_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, send_buf);
        }
        set_timeout(fd, ANSWER_BOUND)?;
        let sent = socket.send(&batch.bytes, 0)?;
        if sent != batch.bytes.len() {
            return Err(Error::Decode(format!(
                "sent {sent} of {} bytes of a batch",
                batch.bytes.len()
            )));
        }
        socket.send(&getgen(fence_seq), 0)?;
        let mut refused = Vec::new();
        loop {
            let n = match socket.recv(&mut &mut buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // The kernel dropped answers, so there were errors (only they are answered before the
                // fence): the batch was refused. The fence's answer may be lost too: wait briefly.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    refused.push((u32::MAX, libc::ENOBUFS));
                    set_timeout(fd, Duration::from_millis(200))?;
                    continue;
                }
                Err(e)
                    if !refused.is_empty()
                        && matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                {
                    return Ok(refused);
                }
                Err(e) => return Err(e.into()),
            };
            let mut at = 0;
            while at + 16 <= n {
                let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
                let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
                let seq = u32::from_ne_bytes(buf[at + 8..at + 12].try_into().expect("4 bytes"));
                if len < 16 || at + len > n {
                    return Err(Error::Decode("a truncated nf_tables answer".into()));
                }
                if kind == NLMSG_ERROR && len >= 20 {
                    let code =
                        i32::from_ne_bytes(buf[at + 16..at + 20].try_into().expect("4 bytes"));
                    if seq == fence_seq {
                        return Err(Error::Kernel { errno: -code });
                    }
                    if code != 0 {
                        refused.push((seq, -code));
                    }
                } else if kind == (NFNL_SUBSYS_NFTABLES << 8) | MSG_NEWGEN && seq == fence_seq {
                    // Everything about the batch came before the fence's answer.
                    return Ok(refused);
                }
                at += len.div_ceil(4) * 4;
            }
        }
    }
}

/// How long a receive may wait.
fn set_timeout(fd: i32, bound: Duration) -> Result<()> {
    let timeout = libc::timeval {
        tv_sec: bound.as_secs() as libc::time_t,
        tv_usec: bound.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: a valid socket and a timeval of the right size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::Io(std::io::Error::last_os_error()))
    }
}

fn set_int(fd: i32, level: libc::c_int, opt: libc::c_int, value: usize) -> Result<()> {
    let v = value.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: a valid socket and an int option.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::Io(std::io::Error::last_os_error()))
    }
}

/// `NFT_MSG_GETGEN`: answered with the ruleset's generation.
fn getgen(seq: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(20);
    m.extend_from_slice(&20u32.to_ne_bytes());
    m.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | MSG_GETGEN).to_ne_bytes());
    m.extend_from_slice(&1u16.to_ne_bytes()); // NLM_F_REQUEST
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m
}

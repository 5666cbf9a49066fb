//! The kernel's NFLOG: packets an nftables `log group N` rule hands to user space, over a
//! NETLINK_NETFILTER socket (nfnetlink_log). `log` to the kernel's own log would not do: inside a
//! network namespace other than the machine's it is silent unless `nf_log_all_netns` is set, which
//! is the machine's to decide.
//!
//! [`Listener`] binds one group in the calling thread's network namespace; [`parse`] reads the
//! messages (pure, checked against arbitrary bytes).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

const NETLINK_NETFILTER: libc::c_int = 12;
const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// One logged packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// The rule's `log prefix`.
    pub prefix: String,
    /// The first bytes of the packet, from its network header.
    pub payload: Vec<u8>,
}

/// A socket bound to one NFLOG group.
pub struct Listener {
    fd: OwnedFd,
    group: u16,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(align4(buf.len()), 0);
}

/// A config request for `group` (nlmsghdr + nfgenmsg + attributes).
fn config_message(group: u16, seq: u32, attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = vec![libc::AF_UNSPEC as u8, 0];
    body.extend_from_slice(&group.to_be_bytes());
    for (k, v) in attrs {
        attr(&mut body, *k, v);
    }
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG).to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&body);
    msg
}

impl Listener {
    /// Binds `group` in the calling thread's network namespace, copying `copy_range` bytes of each
    /// packet. Fails with EBUSY when another socket holds the group.
    pub fn bind(group: u16, copy_range: u32) -> io::Result<Listener> {
        // SAFETY: plain socket(2); the descriptor is owned right away.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: a zeroed sockaddr_nl is valid (family set below, pid 0 = kernel assigns).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: addr is a valid sockaddr_nl of the size passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let l = Listener { fd, group };
        // A larger receive buffer rides out bursts (the rule's rate limit bounds them anyway).
        l.setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUF, 1 << 20);
        let mut mode = copy_range.to_be_bytes().to_vec();
        mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
        l.request(&config_message(
            group,
            1,
            &[(NFULA_CFG_CMD, vec![NFULNL_CFG_CMD_BIND])],
        ))?;
        l.request(&config_message(group, 2, &[(NFULA_CFG_MODE, mode)]))?;
        Ok(l)
    }

    pub fn group(&self) -> u16 {
        self.group
    }

    fn setsockopt(&self, level: libc::c_int, name: libc::c_int, value: libc::c_int) {
        // SAFETY: value is a c_int of the size passed; failures only cost buffer size.
        unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            );
        }
    }

    /// Sends a request and waits for its acknowledgement.
    fn request(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: msg is a valid buffer of its length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 8192];
        self.set_timeout(Duration::from_secs(2))?;
        let n = self.recv_raw(&mut buf)?;
        match ack_error(&buf[..n]) {
            Some(0) | None => Ok(()),
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
        }
    }

    /// Makes [`Listener::recv`] return (with WouldBlock or TimedOut) after `t` without packets.
    pub fn set_timeout(&self, t: Duration) -> io::Result<()> {
        let tv = libc::timeval {
            tv_sec: t.as_secs() as libc::time_t,
            tv_usec: t.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: tv is a valid timeval of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn recv_raw(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is a valid writable buffer of its length.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Waits for the next batch of logged packets (up to the timeout). ENOBUFS (the kernel dropped
    /// messages because the socket was full) is reported as an empty batch: the counters still
    /// count those packets.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Vec<Logged>> {
        match self.recv_raw(buf) {
            Ok(n) => Ok(parse(&buf[..n])),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

/// The error code of the first NLMSG_ERROR message in `buf` (0 is an acknowledgement).
fn ack_error(buf: &[u8]) -> Option<i32> {
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().ok()?);
        if len < 16 || off + len > buf.len() {
            return None;
        }
        if kind == NLMSG_ERROR && len >= 20 {
            let code = i32::from_ne_bytes(buf[off + 16..off + 20].try_into().ok()?);
            return Some(-code);
        }
        off += align4(len);
    }
    None
}

/// Reads the packet messages of a netlink datagram; anything malformed is skipped.
pub fn parse(buf: &[u8]) -> Vec<Logged> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes")) as usize;
        let kind = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().expect("2 bytes"));
        if len < 16 || off + len > buf.len() {
            break;
        }
        if kind == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET && len >= 20 {
            // After the nfgenmsg (4 bytes): attributes.
            if let Some(l) = packet(&buf[off + 20..off + len]) {
                out.push(l);
            }
        }
        off += align4(len);
    }
    out
}

fn packet(mut attrs: &[u8]) -> Option<Logged> {
    let mut prefix = None;
    let mut payload = None;
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > attrs.len() {
            break;
        }
        let value = &attrs[4..len];
        match kind {
            NFULA_PREFIX => {
                let s = value.split(|b| *b == 0).next().unwrap_or_default();
                prefix = Some(String::from_utf8_lossy(s).into_owned());
            }
            NFULA_PAYLOAD => payload = Some(value.to_vec()),
            _ => {}
        }
        let next = align4(len).min(attrs.len());
        attrs = &attrs[next..];
    }
    Some(Logged {
        prefix: prefix?,
        payload: payload.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A packet message as the kernel sends it.
    pub(crate) fn message(prefix: &str, payload: &[u8]) -> Vec<u8> {
        let mut body = vec![libc::AF_INET as u8, 0, 0x0f, 0xab];
        attr(&mut body, 1, &[0x08, 0x00, 2, 0]); // NFULA_PACKET_HDR
        let mut p = prefix.as_bytes().to_vec();
        p.push(0);
        attr(&mut body, NFULA_PREFIX, &p);
        attr(&mut body, NFULA_PAYLOAD, payload);
        let mut msg = ((16 + body.len()) as u32).to_ne_bytes().to_vec();
        msg.extend_from_slice(&(NFNL_SUBSYS_ULOG << 8).to_ne_bytes());
        msg.extend_from_slice(&[0; 10]);
        msg.extend_from_slice(&body);
        msg
    }

    #[test]
    fn packets_are_read_with_prefix_and_payload() {
        let mut buf = message("podnet-policy ingress x/a by p", &[0x45, 1, 2]);
        buf.extend(message("second", &[9; 7]));
        let got = parse(&buf);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].prefix, "podnet-policy ingress x/a by p");
        assert_eq!(got[0].payload, vec![0x45, 1, 2]);
        assert_eq!(got[1].payload, vec![9; 7]);
    }

    #[test]
    fn config_requests_are_well_formed() {
        let m = config_message(4011, 7, &[(NFULA_CFG_CMD, vec![NFULNL_CFG_CMD_BIND])]);
        assert_eq!(
            u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), 0x0401);
        assert_eq!(&m[18..20], &4011u16.to_be_bytes());
        assert_eq!(m.len() % 4, 0);
        let mut ack = vec![0u8; 36];
        ack[0..4].copy_from_slice(&36u32.to_ne_bytes());
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack[16..20].copy_from_slice(&(-libc::EBUSY).to_ne_bytes());
        assert_eq!(ack_error(&ack), Some(libc::EBUSY));
    }

    proptest! {
        #[test]
        fn any_bytes_are_read_without_panic(buf in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse(&buf);
            let _ = ack_error(&buf);
        }

        #[test]
        fn truncated_messages_never_panic(cut in 0usize..80) {
            let m = message("podnet-policy egress x/a by p", &[0x45; 40]);
            let _ = parse(&m[..cut.min(m.len())]);
        }
    }
}

//! A blocking rtnetlink socket: one request at a time, acknowledged or dumped.
//!
//! The socket talks to the network namespace of the thread that created it, for its whole life. To
//! work in a pod's namespace, create the socket on a thread that has entered it (podnet-netns does).

use crate::error::{Error, Result};
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkDeserializable, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NetlinkSerializable,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// Receive buffer size: the kernel fills dump datagrams up to about 32 KiB.
const RECV_BUF: usize = 64 * 1024;
/// Bounds the messages one dump may return, so a misbehaving peer cannot make us loop forever.
const MAX_DUMP_MESSAGES: usize = 1_000_000;

/// How often a dump interrupted by a concurrent change is taken (see [`NetlinkSocket::dump`]).
const DUMP_ATTEMPTS: usize = 4;
/// NLM_F_DUMP_INTR on a dump message: the dump raced with a change.
const NLM_F_DUMP_INTR: u16 = 0x10;

/// NLMSGERR_ATTR_MSG: the extended-ack attribute carrying the kernel's explanation.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// NLM_F_CAPPED on an error message: only the request's header is echoed.
const NLM_F_CAPPED: u16 = 0x100;
/// NLM_F_ACK_TLVS on an error message: extended-ack attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;

/// A netlink socket of one protocol, bound to the current thread's network namespace.
pub struct NetlinkSocket {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl NetlinkSocket {
    pub fn open(protocol: isize) -> Result<Self> {
        let mut socket = Socket::new(protocol)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Extended acks give messages like "Unknown device type"; capped acks keep error replies small.
        // Both are best-effort: old kernels lack them and we still work.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        Ok(Self {
            socket,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    /// Sends one request and waits for its acknowledgement.
    pub fn request<M>(&mut self, msg: M, flags: u16) -> Result<()>
    where
        M: NetlinkSerializable + NetlinkDeserializable + std::fmt::Debug,
    {
        let seq = self.send(msg, flags | NLM_F_REQUEST | NLM_F_ACK)?;
        let mut done = false;
        self.receive(seq, |m: NetlinkMessage<M>| {
            if let NetlinkPayload::Error(_) = m.payload {
                done = true;
            }
            Ok(!done)
        })?;
        Ok(())
    }

    /// Sends a dump request and collects every reply message.
    pub fn dump<M>(&mut self, msg: M) -> Result<Vec<M>>
    where
        M: NetlinkSerializable + NetlinkDeserializable + std::fmt::Debug + Clone,
    {
        // A dump that raced with a change is flagged NLM_F_DUMP_INTR: its view may be inconsistent, so
        // it is taken again (a few times; then the last view is used, as iproute2 does).
        for _ in 0..DUMP_ATTEMPTS - 1 {
            let (out, interrupted) = self.dump_once(msg.clone())?;
            if !interrupted {
                return Ok(out);
            }
        }
        Ok(self.dump_once(msg)?.0)
    }

    fn dump_once<M>(&mut self, msg: M) -> Result<(Vec<M>, bool)>
    where
        M: NetlinkSerializable + NetlinkDeserializable + std::fmt::Debug,
    {
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_DUMP)?;
        let mut out = Vec::new();
        let mut interrupted = false;
        self.receive(seq, |m: NetlinkMessage<M>| {
            interrupted |= m.header.flags & NLM_F_DUMP_INTR != 0;
            match m.payload {
                NetlinkPayload::InnerMessage(inner) => {
                    if out.len() >= MAX_DUMP_MESSAGES {
                        return Err(Error::Decode("dump returned too many messages".into()));
                    }
                    out.push(inner);
                    Ok(true)
                }
                NetlinkPayload::Done(_) => Ok(false),
                _ => Ok(true),
            }
        })?;
        Ok((out, interrupted))
    }

    /// Sends a get request for one object and returns the kernel's reply.
    pub fn get<M>(&mut self, msg: M) -> Result<M>
    where
        M: NetlinkSerializable + NetlinkDeserializable + std::fmt::Debug,
    {
        let seq = self.send(msg, NLM_F_REQUEST)?;
        let mut reply = None;
        self.receive(seq, |m: NetlinkMessage<M>| match m.payload {
            NetlinkPayload::InnerMessage(inner) => {
                reply = Some(inner);
                Ok(false)
            }
            _ => Ok(true),
        })?;
        reply.ok_or_else(|| Error::Decode("no reply to get request".into()))
    }

    fn send<M>(&mut self, msg: M, flags: u16) -> Result<u32>
    where
        M: NetlinkSerializable + std::fmt::Debug,
    {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut bytes = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket.send(&bytes, 0)?;
        Ok(self.seq)
    }

    /// Reads datagrams until `on_message` returns false or the kernel reports an error for `seq`.
    fn receive<M>(
        &mut self,
        seq: u32,
        mut on_message: impl FnMut(NetlinkMessage<M>) -> Result<bool>,
    ) -> Result<()>
    where
        M: NetlinkSerializable + NetlinkDeserializable + std::fmt::Debug,
    {
        loop {
            let n = self.socket.recv(&mut &mut self.buf[..], 0)?;
            let mut offset = 0;
            while offset + 16 <= n {
                let bytes = &self.buf[offset..n];
                let len = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
                if len < 16 || len > bytes.len() {
                    return Err(Error::Decode(format!("bad netlink message length {len}")));
                }
                let msg = NetlinkMessage::<M>::deserialize(&bytes[..len])
                    .map_err(|e| Error::Decode(e.to_string()))?;
                offset += (len + 3) & !3;
                if msg.header.sequence_number != seq {
                    // A late reply to an earlier request (e.g. after an interrupted dump): not ours.
                    continue;
                }
                if let NetlinkPayload::Error(ref err) = msg.payload
                    && let Some(code) = err.code
                {
                    return Err(Error::Kernel {
                        errno: -code.get(),
                        message: ext_ack_message(msg.header.flags, &err.header),
                    });
                }
                if !on_message(msg)? {
                    return Ok(());
                }
            }
        }
    }
}

/// Finds the kernel's text explanation in an error message's extended-ack attributes.
fn ext_ack_message(flags: u16, echoed: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || echoed.len() < 16 {
        return None;
    }
    let echoed_len = if flags & NLM_F_CAPPED != 0 {
        16
    } else {
        u32::from_ne_bytes([echoed[0], echoed[1], echoed[2], echoed[3]]) as usize
    };
    let mut at = (echoed_len + 3) & !3;
    while at + 4 <= echoed.len() {
        let len = u16::from_ne_bytes([echoed[at], echoed[at + 1]]) as usize;
        let kind = u16::from_ne_bytes([echoed[at + 2], echoed[at + 3]]) & 0x3fff;
        if len < 4 || at + len > echoed.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &echoed[at + 4..at + len];
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        at += (len + 3) & !3;
    }
    None
}

/// The rtnetlink socket most of podnet uses.
pub struct Netlink {
    pub(crate) sock: NetlinkSocket,
}

impl Netlink {
    /// Opens an rtnetlink socket in the calling thread's network namespace.
    pub fn open() -> Result<Self> {
        Ok(Self {
            sock: NetlinkSocket::open(NETLINK_ROUTE)?,
        })
    }

    pub(crate) fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<()> {
        self.sock.request(msg, flags)
    }

    pub(crate) fn dump(&mut self, msg: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>> {
        self.sock.dump(msg)
    }

    pub(crate) fn get(&mut self, msg: RouteNetlinkMessage) -> Result<RouteNetlinkMessage> {
        self.sock.get(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_ack_text_is_found_after_a_capped_header() {
        let mut echoed = vec![0u8; 16];
        let text = b"Unknown device type\0";
        let len = (4 + text.len()) as u16;
        echoed.extend_from_slice(&len.to_ne_bytes());
        echoed.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        echoed.extend_from_slice(text);
        assert_eq!(
            ext_ack_message(NLM_F_CAPPED | NLM_F_ACK_TLVS, &echoed).as_deref(),
            Some("Unknown device type")
        );
        assert_eq!(
            ext_ack_message(NLM_F_CAPPED, &echoed),
            None,
            "no TLV flag, no text"
        );
        assert_eq!(
            ext_ack_message(NLM_F_CAPPED | NLM_F_ACK_TLVS, &echoed[..18]),
            None,
            "truncated"
        );
    }
}

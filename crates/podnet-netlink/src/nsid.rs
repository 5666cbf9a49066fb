//! Network namespace ids: how this namespace numbers another one (a veth's `link-netnsid`).

use crate::error::{Error, Result};
use crate::socket::Netlink;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use std::os::fd::RawFd;

impl Netlink {
    /// The id this socket's namespace uses for the namespace open at `netns_fd`, if it assigned one
    /// (it does as soon as a link crosses between the two).
    pub fn nsid_of(&mut self, netns_fd: RawFd) -> Result<Option<i32>> {
        let mut msg = NsidMessage::default();
        msg.attributes.push(NsidAttribute::Fd(netns_fd as u32));
        match self.get(RouteNetlinkMessage::GetNsId(msg))? {
            RouteNetlinkMessage::NewNsId(reply) => {
                Ok(reply.attributes.iter().find_map(|a| match a {
                    NsidAttribute::Id(id) if *id >= 0 => Some(*id),
                    _ => None,
                }))
            }
            other => Err(Error::Decode(format!(
                "unexpected reply to GetNsId: {other:?}"
            ))),
        }
    }
}

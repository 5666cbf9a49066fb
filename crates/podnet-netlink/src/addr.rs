//! Interface addresses.

use crate::error::{Error, Result};
use crate::socket::Netlink;
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

/// An address on an interface, with its prefix (`10.244.1.1/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub addr: IpNet,
}

fn family_of(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn address_message(index: u32, addr: IpNet) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family_of(addr.addr());
    msg.header.prefix_len = addr.prefix_len();
    msg.header.index = index;
    msg.attributes.push(AddressAttribute::Local(addr.addr()));
    msg.attributes.push(AddressAttribute::Address(addr.addr()));
    if let IpNet::V4(v4) = addr
        && v4.prefix_len() < 31
    {
        msg.attributes
            .push(AddressAttribute::Broadcast(v4.broadcast()));
    }
    msg
}

impl Netlink {
    /// Adds an address. With `replace`, an existing identical address is fine (idempotent setup);
    /// without it, an existing one is `EEXIST`. IPv6 addresses skip duplicate address detection: a pod
    /// interface is point-to-point with its bridge and DAD would delay it by about a second.
    pub fn add_address(&mut self, index: u32, addr: IpNet, replace: bool) -> Result<()> {
        let mut msg = address_message(index, addr);
        if addr.addr().is_ipv6() {
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        let flags = NLM_F_CREATE | if replace { NLM_F_REPLACE } else { NLM_F_EXCL };
        self.request(RouteNetlinkMessage::NewAddress(msg), flags)
    }

    /// Removes an address; `Ok(false)` if it was not there.
    pub fn delete_address(&mut self, index: u32, addr: IpNet) -> Result<bool> {
        match self.request(
            RouteNetlinkMessage::DelAddress(address_message(index, addr)),
            0,
        ) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every address in the namespace, or only those of one interface.
    pub fn addresses(&mut self, index: Option<u32>) -> Result<Vec<Address>> {
        let replies = self.dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))?;
        let mut out = Vec::new();
        for reply in replies {
            let RouteNetlinkMessage::NewAddress(m) = reply else {
                continue;
            };
            if index.is_some_and(|i| i != m.header.index) {
                continue;
            }
            // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point links.
            let local = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let address = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if let Some(ip) = local.or(address) {
                let addr = IpNet::new(ip, m.header.prefix_len)
                    .map_err(|e| Error::Decode(e.to_string()))?;
                out.push(Address {
                    index: m.header.index,
                    addr,
                });
            }
        }
        Ok(out)
    }
}

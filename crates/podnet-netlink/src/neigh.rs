//! Neighbour (ARP) entries and bridge/VXLAN forwarding-database entries: what a VXLAN overlay without
//! learning needs, one of each per peer node.

use crate::error::Result;
use crate::socket::Netlink;
use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::RouteType;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::{IpAddr, Ipv4Addr};

/// A permanent neighbour entry: `ip` is at `mac` on the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    pub index: u32,
    pub ip: IpAddr,
    pub mac: [u8; 6],
    pub permanent: bool,
}

/// A forwarding-database entry of a VXLAN device: frames for `mac` go to the VTEP at `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdbEntry {
    pub index: u32,
    pub mac: [u8; 6],
    pub dst: Option<Ipv4Addr>,
}

fn neigh_address(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
        IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
    }
}

fn mac_of(bytes: &[u8]) -> Option<[u8; 6]> {
    (bytes.len() == 6).then(|| {
        let mut m = [0u8; 6];
        m.copy_from_slice(bytes);
        m
    })
}

impl Netlink {
    /// Every neighbour-table entry of one family on one interface.
    fn neighbour_dump(
        &mut self,
        family: AddressFamily,
        index: u32,
    ) -> Result<Vec<NeighbourMessage>> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family;
        Ok(self
            .dump(RouteNetlinkMessage::GetNeighbour(msg))?
            .into_iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewNeighbour(m) if m.header.ifindex == index => Some(m),
                _ => None,
            })
            .collect())
    }

    /// Sets (creates or replaces) a permanent neighbour entry.
    pub fn set_neighbour(&mut self, index: u32, ip: IpAddr, mac: [u8; 6]) -> Result<()> {
        let mut msg = neighbour_message(index, ip);
        msg.header.state = NeighbourState::Permanent;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        self.request(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    /// Removes a neighbour entry; `Ok(false)` if it was not there.
    pub fn delete_neighbour(&mut self, index: u32, ip: IpAddr) -> Result<bool> {
        let msg = neighbour_message(index, ip);
        match self.request(RouteNetlinkMessage::DelNeighbour(msg), 0) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The IPv4 and IPv6 neighbour entries of an interface.
    pub fn neighbours(&mut self, index: u32) -> Result<Vec<Neighbour>> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            for m in self.neighbour_dump(family, index)? {
                let mut ip = None;
                let mut mac = None;
                for a in &m.attributes {
                    match a {
                        NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                            ip = Some(IpAddr::V4(*v4))
                        }
                        NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                            ip = Some(IpAddr::V6(*v6))
                        }
                        NeighbourAttribute::LinkLayerAddress(l) => mac = mac_of(l),
                        _ => {}
                    }
                }
                if let (Some(ip), Some(mac)) = (ip, mac) {
                    out.push(Neighbour {
                        index,
                        ip,
                        mac,
                        permanent: m.header.state == NeighbourState::Permanent,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Adds a forwarding entry on a VXLAN device (`bridge fdb append MAC dev X dst IP`).
    pub fn append_fdb(&mut self, index: u32, mac: [u8; 6], dst: Ipv4Addr) -> Result<()> {
        let msg = fdb_message(index, mac, Some(dst));
        self.request(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_APPEND,
        )
    }

    /// Removes a forwarding entry; `Ok(false)` if it was not there.
    pub fn delete_fdb(&mut self, index: u32, mac: [u8; 6], dst: Option<Ipv4Addr>) -> Result<bool> {
        match self.request(
            RouteNetlinkMessage::DelNeighbour(fdb_message(index, mac, dst)),
            0,
        ) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The forwarding entries of a device (VXLAN FDB, or a bridge port's).
    pub fn fdb(&mut self, index: u32) -> Result<Vec<FdbEntry>> {
        let mut out = Vec::new();
        for m in self.neighbour_dump(AddressFamily::Bridge, index)? {
            let mut mac = None;
            let mut dst = None;
            for a in &m.attributes {
                match a {
                    NeighbourAttribute::LinkLayerAddress(l) => mac = mac_of(l),
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => dst = Some(*v4),
                    // In bridge-family messages the crate cannot tell which family NDA_DST is and
                    // hands over the raw bytes: four of them are the VTEP's IPv4 address.
                    NeighbourAttribute::Destination(NeighbourAddress::Other(b)) if b.len() == 4 => {
                        dst = Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                    }
                    _ => {}
                }
            }
            if let Some(mac) = mac {
                out.push(FdbEntry { index, mac, dst });
            }
        }
        Ok(out)
    }
}

/// A neighbour message for `ip` on interface `index`, in the address's family.
fn neighbour_message(index: u32, ip: IpAddr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    msg.header.ifindex = index;
    msg.attributes
        .push(NeighbourAttribute::Destination(neigh_address(ip)));
    msg
}

fn fdb_message(index: u32, mac: [u8; 6], dst: Option<Ipv4Addr>) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    // NTF_SELF: the entry belongs to the VXLAN device's own table, not to a bridge above it.
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    if let Some(dst) = dst {
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(dst)));
    }
    msg
}

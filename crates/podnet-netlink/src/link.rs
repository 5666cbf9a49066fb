//! Links: bridges, veth pairs, VXLAN devices; their state, MTU, master, alias and bridge-port options.

use crate::error::{Error, Result};
use crate::socket::Netlink;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, InfoVxlan,
    LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::Ipv4Addr;
use std::os::fd::RawFd;

/// What podnet needs to know about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `bridge`, `veth`, `vxlan`, ... (`None` for devices without rtnl link ops, like `lo`).
    pub kind: Option<String>,
    pub mtu: u32,
    pub mac: Option<[u8; 6]>,
    pub up: bool,
    /// Index of the bridge (or other controller) the link is enslaved to.
    pub master: Option<u32>,
    pub alias: Option<String>,
    /// For a veth: the index of its peer (in the peer's namespace).
    pub peer_index: Option<u32>,
    /// Set when the peer lives in another namespace (its id as seen from this namespace).
    pub link_netnsid: Option<i32>,
}

impl Link {
    fn from_message(msg: &LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            mtu: 0,
            mac: None,
            up: msg.header.flags.contains(LinkFlags::Up),
            master: None,
            alias: None,
            peer_index: None,
            link_netnsid: None,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Mtu(m) => link.mtu = *m,
                LinkAttribute::Address(a) if a.len() == 6 => {
                    let mut mac = [0u8; 6];
                    mac.copy_from_slice(a);
                    link.mac = Some(mac);
                }
                LinkAttribute::Controller(m) => link.master = Some(*m),
                LinkAttribute::IfAlias(a) => link.alias = Some(a.clone()),
                LinkAttribute::Link(p) => link.peer_index = Some(*p),
                LinkAttribute::LinkNetNsId(id) => link.link_netnsid = Some(*id),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(kind) = info {
                            link.kind = Some(kind.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

/// A veth pair to create. Each end is made directly in its namespace (no move afterwards: moving links
/// between namespaces serialises on the rtnl lock and was measured to dominate pod setup elsewhere).
#[derive(Debug, Clone, Default)]
pub struct VethSpec<'a> {
    pub name: &'a str,
    /// Create this end in another namespace (an open fd of it); `None` for the socket's namespace.
    pub netns_fd: Option<RawFd>,
    pub mac: Option<[u8; 6]>,
    pub peer_name: &'a str,
    pub peer_netns_fd: Option<RawFd>,
    pub peer_mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    /// Enslave this end to a bridge (only when it is created in the socket's namespace).
    pub master: Option<u32>,
    /// Set right after creation (the kernel ignores an alias in a creation request). Only for an end
    /// created in the socket's namespace.
    pub alias: Option<&'a str>,
    /// Bring this end up at creation.
    pub up: bool,
}

/// A VXLAN device to create (flannel-style: one per node, no learning, FDB programmed by podnet).
#[derive(Debug, Clone)]
pub struct VxlanSpec<'a> {
    pub name: &'a str,
    pub vni: u32,
    pub local: Ipv4Addr,
    /// The underlay device the tunnel is bound to.
    pub underlay_index: u32,
    pub port: u16,
    pub mtu: u32,
    pub mac: Option<[u8; 6]>,
    pub alias: Option<&'a str>,
}

/// The attributes one end of a veth pair is created with.
fn end_attributes(
    name: &str,
    netns_fd: Option<RawFd>,
    mac: Option<[u8; 6]>,
    mtu: Option<u32>,
) -> Vec<LinkAttribute> {
    let mut attrs = vec![LinkAttribute::IfName(name.to_string())];
    if let Some(fd) = netns_fd {
        attrs.push(LinkAttribute::NetNsFd(fd));
    }
    if let Some(mac) = mac {
        attrs.push(LinkAttribute::Address(mac.to_vec()));
    }
    if let Some(mtu) = mtu {
        attrs.push(LinkAttribute::Mtu(mtu));
    }
    attrs
}

fn link_message(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg
}

impl Netlink {
    /// Looks a link up by name; `None` if there is none.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>> {
        let mut msg = link_message(0);
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.get(RouteNetlinkMessage::GetLink(msg)) {
            Ok(RouteNetlinkMessage::NewLink(m)) => Ok(Some(Link::from_message(&m))),
            Ok(other) => Err(Error::Decode(format!(
                "unexpected reply to GetLink: {other:?}"
            ))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>> {
        match self.get(RouteNetlinkMessage::GetLink(link_message(index))) {
            Ok(RouteNetlinkMessage::NewLink(m)) => Ok(Some(Link::from_message(&m))),
            Ok(other) => Err(Error::Decode(format!(
                "unexpected reply to GetLink: {other:?}"
            ))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn links(&mut self) -> Result<Vec<Link>> {
        let replies = self.dump(RouteNetlinkMessage::GetLink(link_message(0)))?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
                _ => None,
            })
            .collect())
    }

    /// Creates a bridge unless one of that name exists. Safe when many callers race: the loser of the
    /// creation race sees `EEXIST` and uses the winner's bridge. A non-bridge of that name is an error.
    pub fn ensure_bridge(
        &mut self,
        name: &str,
        alias: Option<&str>,
        mac: Option<[u8; 6]>,
    ) -> Result<Link> {
        if let Some(link) = self.link_by_name(name)? {
            return check_kind(link, "bridge");
        }
        let mut msg = link_message(0);
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        if let Some(mac) = mac {
            msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        match self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL) {
            Ok(())
            | Err(Error::Kernel {
                errno: libc::EEXIST,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
        let link = self
            .link_by_name(name)?
            .ok_or_else(|| Error::Decode(format!("bridge {name} vanished right after creation")))?;
        let link = check_kind(link, "bridge")?;
        if let Some(a) = alias
            && link.alias.as_deref() != Some(a)
        {
            self.set_link_alias(link.index, a)?;
        }
        if !link.up {
            self.set_link_up(link.index, true)?;
        }
        Ok(link)
    }

    /// Creates a veth pair in one request; fails with `EEXIST` if either name is taken.
    pub fn create_veth(&mut self, spec: &VethSpec<'_>) -> Result<()> {
        let mut peer = link_message(0);
        peer.attributes =
            end_attributes(spec.peer_name, spec.peer_netns_fd, spec.peer_mac, spec.mtu);
        let mut msg = link_message(0);
        msg.attributes = end_attributes(spec.name, spec.netns_fd, spec.mac, spec.mtu);
        if let Some(master) = spec.master {
            msg.attributes.push(LinkAttribute::Controller(master));
        }
        if spec.up {
            msg.header.flags = LinkFlags::Up;
            msg.header.change_mask = LinkFlags::Up;
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)?;
        if let (Some(alias), None) = (spec.alias, spec.netns_fd) {
            self.set_alias_by_name(spec.name, alias)?;
        }
        Ok(())
    }

    /// Creates a VXLAN device (learning off: podnet programs FDB and neighbour entries itself).
    pub fn create_vxlan(&mut self, spec: &VxlanSpec<'_>) -> Result<()> {
        let mut msg = link_message(0);
        msg.attributes
            .push(LinkAttribute::IfName(spec.name.to_string()));
        msg.attributes.push(LinkAttribute::Mtu(spec.mtu));
        if let Some(mac) = spec.mac {
            msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(vec![
                InfoVxlan::Id(spec.vni),
                InfoVxlan::Local(spec.local),
                InfoVxlan::Link(spec.underlay_index),
                InfoVxlan::Port(spec.port),
                InfoVxlan::Learning(false),
                // Checksums on the outer UDP header; avoids the offload bug class that delays flows.
                InfoVxlan::UDPCsum(true),
            ])),
        ]));
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)?;
        if let Some(alias) = spec.alias {
            self.set_alias_by_name(spec.name, alias)?;
        }
        Ok(())
    }

    /// Sets the alias of a link just created (the kernel ignores an alias in a creation request).
    fn set_alias_by_name(&mut self, name: &str, alias: &str) -> Result<()> {
        let mut set = link_message(0);
        set.attributes.push(LinkAttribute::IfName(name.to_string()));
        set.attributes
            .push(LinkAttribute::IfAlias(alias.to_string()));
        self.request(RouteNetlinkMessage::SetLink(set), 0)
    }

    pub fn set_link_up(&mut self, index: u32, up: bool) -> Result<()> {
        let mut msg = link_message(index);
        msg.header.flags = if up {
            LinkFlags::Up
        } else {
            LinkFlags::empty()
        };
        msg.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(msg), 0)
    }

    pub fn set_link_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        let mut msg = link_message(index);
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        self.request(RouteNetlinkMessage::SetLink(msg), 0)
    }

    pub fn set_link_address(&mut self, index: u32, mac: [u8; 6]) -> Result<()> {
        let mut msg = link_message(index);
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        self.request(RouteNetlinkMessage::SetLink(msg), 0)
    }

    pub fn set_link_master(&mut self, index: u32, master: u32) -> Result<()> {
        let mut msg = link_message(index);
        msg.attributes.push(LinkAttribute::Controller(master));
        self.request(RouteNetlinkMessage::SetLink(msg), 0)
    }

    pub fn set_link_alias(&mut self, index: u32, alias: &str) -> Result<()> {
        let mut msg = link_message(index);
        msg.attributes
            .push(LinkAttribute::IfAlias(alias.to_string()));
        self.request(RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// Turns hairpin mode of a bridge port on or off (a pod reaching itself through a Service needs it).
    pub fn set_bridge_port_hairpin(&mut self, index: u32, on: bool) -> Result<()> {
        let mut msg = link_message(index);
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                on,
            )])),
        ]));
        self.request(RouteNetlinkMessage::NewLink(msg), 0)
    }

    pub fn delete_link(&mut self, index: u32) -> Result<()> {
        self.request(RouteNetlinkMessage::DelLink(link_message(index)), 0)
    }

    /// Deletes a link by name; `Ok(false)` if there was none.
    pub fn delete_link_by_name(&mut self, name: &str) -> Result<bool> {
        let mut msg = link_message(0);
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::DelLink(msg), 0) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether a bridge port has hairpin mode on (reads the port's slave data).
    pub fn bridge_port_hairpin(&mut self, index: u32) -> Result<Option<bool>> {
        let mut msg = link_message(index);
        msg.header.interface_family = AddressFamily::Unspec;
        let reply = self.get(RouteNetlinkMessage::GetLink(msg))?;
        let RouteNetlinkMessage::NewLink(m) = reply else {
            return Ok(None);
        };
        for attr in &m.attributes {
            if let LinkAttribute::LinkInfo(infos) = attr {
                for info in infos {
                    if let LinkInfo::PortData(InfoPortData::BridgePort(opts)) = info {
                        for o in opts {
                            if let InfoBridgePort::HairpinMode(h) = o {
                                return Ok(Some(*h));
                            }
                        }
                    }
                }
            }
        }
        Ok(None)
    }
}

fn check_kind(link: Link, want: &str) -> Result<Link> {
    if link.kind.as_deref() == Some(want) {
        Ok(link)
    } else {
        Err(Error::Kernel {
            errno: libc::EEXIST,
            message: Some(format!(
                "{} exists but is a {}, not a {want}",
                link.name,
                link.kind.as_deref().unwrap_or("device without a kind")
            )),
        })
    }
}

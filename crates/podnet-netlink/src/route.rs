//! Routes. Routes podnet installs carry its protocol number, so a reconciler can list exactly its own
//! routes and remove the stale ones (`ip route` shows `proto podnet` once iproute2 knows the name).

use crate::error::{Error, Result};
use crate::socket::Netlink;
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric,
    RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

/// The rtnetlink protocol number on podnet's routes (registered as `podnet` in iproute2's rt_protos.d).
pub const RTPROT_PODNET: u8 = 112;
/// The main routing table.
pub const RT_TABLE_MAIN: u32 = 254;

/// A route as podnet reads and writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    /// The gateway is reachable on the link even though no address covers it (VXLAN next hops).
    pub onlink: bool,
    pub src: Option<IpAddr>,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    pub priority: Option<u32>,
    pub table: u32,
    /// 0 universe, 253 link, 254 host.
    pub scope: u8,
    pub protocol: u8,
}

impl Route {
    /// A route podnet owns, in the main table, universe scope unless it has no gateway and an
    /// interface (then link scope, as `ip route add DST dev X` makes it).
    pub fn new(dst: IpNet) -> Self {
        Route {
            dst,
            gateway: None,
            oif: None,
            onlink: false,
            src: None,
            mtu: None,
            advmss: None,
            priority: None,
            table: RT_TABLE_MAIN,
            scope: 0,
            protocol: RTPROT_PODNET,
        }
    }

    pub fn via(mut self, gw: IpAddr) -> Self {
        self.gateway = Some(gw);
        self.scope = 0;
        self
    }

    pub fn dev(mut self, oif: u32) -> Self {
        self.oif = Some(oif);
        if self.gateway.is_none() {
            self.scope = 253;
        }
        self
    }

    pub fn onlink(mut self) -> Self {
        self.onlink = true;
        self.scope = 0;
        self
    }

    pub fn mtu(mut self, mtu: Option<u32>) -> Self {
        self.mtu = mtu;
        self
    }

    fn to_message(&self) -> RouteMessage {
        let mut msg = RouteMessage::default();
        let header: &mut RouteHeader = &mut msg.header;
        header.address_family = if self.dst.addr().is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        header.destination_prefix_length = self.dst.prefix_len();
        header.table = if self.table < 256 {
            self.table as u8
        } else {
            252
        }; // RT_TABLE_COMPAT
        header.protocol = RouteProtocol::from(self.protocol);
        header.scope = RouteScope::from(self.scope);
        header.kind = RouteType::Unicast;
        if self.onlink {
            header.flags = RouteFlags::Onlink;
        }
        if self.table >= 256 {
            msg.attributes.push(RouteAttribute::Table(self.table));
        }
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(
                self.dst.network(),
            )));
        if let Some(gw) = self.gateway {
            msg.attributes
                .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
        }
        if let Some(oif) = self.oif {
            msg.attributes.push(RouteAttribute::Oif(oif));
        }
        if let Some(src) = self.src {
            msg.attributes
                .push(RouteAttribute::PrefSource(RouteAddress::from(src)));
        }
        if let Some(p) = self.priority {
            msg.attributes.push(RouteAttribute::Priority(p));
        }
        let mut metrics = Vec::new();
        if let Some(mtu) = self.mtu {
            metrics.push(RouteMetric::Mtu(mtu));
        }
        if let Some(mss) = self.advmss {
            metrics.push(RouteMetric::Advmss(mss));
        }
        if !metrics.is_empty() {
            msg.attributes.push(RouteAttribute::Metrics(metrics));
        }
        msg
    }

    fn from_message(m: &RouteMessage) -> Option<Route> {
        let family_any: IpAddr = match m.header.address_family {
            AddressFamily::Inet => IpAddr::from([0u8, 0, 0, 0]),
            AddressFamily::Inet6 => IpAddr::from([0u16; 8]),
            _ => return None,
        };
        let ip_of = |a: &RouteAddress| match a {
            RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
            RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
            _ => None,
        };
        let mut dst_ip = family_any;
        let mut r = Route::new(IpNet::new(family_any, 0).ok()?);
        r.protocol = u8::from(m.header.protocol);
        r.scope = u8::from(m.header.scope);
        r.table = u32::from(m.header.table);
        r.onlink = m.header.flags.contains(RouteFlags::Onlink);
        for attr in &m.attributes {
            match attr {
                RouteAttribute::Destination(a) => dst_ip = ip_of(a)?,
                RouteAttribute::Gateway(a) => r.gateway = ip_of(a),
                RouteAttribute::Oif(i) => r.oif = Some(*i),
                RouteAttribute::PrefSource(a) => r.src = ip_of(a),
                RouteAttribute::Priority(p) => r.priority = Some(*p),
                RouteAttribute::Table(t) => r.table = *t,
                RouteAttribute::Metrics(ms) => {
                    for metric in ms {
                        match metric {
                            RouteMetric::Mtu(v) => r.mtu = Some(*v),
                            RouteMetric::Advmss(v) => r.advmss = Some(*v),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        r.dst = IpNet::new(dst_ip, m.header.destination_prefix_length).ok()?;
        Some(r)
    }
}

impl Netlink {
    /// Adds a route; with `replace` an existing route to the same destination is overwritten
    /// (idempotent), without it an existing one is `EEXIST`.
    pub fn add_route(&mut self, route: &Route, replace: bool) -> Result<()> {
        let flags = NLM_F_CREATE | if replace { NLM_F_REPLACE } else { NLM_F_EXCL };
        self.request(RouteNetlinkMessage::NewRoute(route.to_message()), flags)
    }

    /// Deletes a route; `Ok(false)` if it was not there.
    pub fn delete_route(&mut self, route: &Route) -> Result<bool> {
        match self.request(RouteNetlinkMessage::DelRoute(route.to_message()), 0) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The unicast routes of one family in one table (main by default).
    pub fn routes(&mut self, ipv6: bool, table: u32) -> Result<Vec<Route>> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = if ipv6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let replies = self.dump(RouteNetlinkMessage::GetRoute(msg))?;
        let mut out = Vec::new();
        for reply in replies {
            let RouteNetlinkMessage::NewRoute(m) = reply else {
                continue;
            };
            if m.header.kind != RouteType::Unicast {
                continue;
            }
            let route =
                Route::from_message(&m).ok_or_else(|| Error::Decode("unreadable route".into()))?;
            if route.table == table {
                out.push(route);
            }
        }
        Ok(out)
    }
}

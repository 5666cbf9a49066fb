//! CHECK: is the attachment still as ADD left it? Interfaces, addresses and routes come from prevResult;
//! the bridge, the reservation and the firewall state from podnet's own knowledge.

use crate::addressing;
use crate::attachment::Target;
use crate::pod::{self, Expected};
use crate::{delegate, fail, firewall};
use ipnet::IpNet;
use podnet_netlink::Netlink;
use podnet_netns::NetNs;
use podnet_types::cni::{CniError, ErrorCode, Ipam, NetConf, Request};

pub fn check(req: &Request, conf: &NetConf) -> Result<(), CniError> {
    if conf.disable_check {
        // The administrator marked this network's CHECK as unreliable; the runtime should not have
        // called, and reporting a failure now would contradict that choice.
        eprintln!(
            "podnet-cni: CHECK skipped: disableCheck is set for network {}",
            conf.name
        );
        return Ok(());
    }
    let t = Target::new(conf, req);
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            ErrorCode::InvalidConfig,
            "prevResult: CHECK needs the result of the ADD",
        )
    })?;
    let netns = req.netns.as_deref().unwrap_or_default();

    let pod_index = prev
        .interfaces
        .iter()
        .position(|i| i.name == t.ifname() && i.sandbox.as_deref() == Some(netns))
        .ok_or_else(|| {
            fail::check(format!(
                "prevResult lists no interface {} in {netns}",
                t.ifname()
            ))
        })?;
    let pod_iface = &prev.interfaces[pod_index];
    let addresses: Vec<IpNet> = prev
        .ips
        .iter()
        .filter(|ip| ip.interface == Some(pod_index))
        .map(|ip| ip.address)
        .collect();
    if addresses.is_empty() {
        return Err(fail::check(format!(
            "prevResult lists no address for {}",
            t.ifname()
        )));
    }
    let gateways: Vec<_> = prev
        .ips
        .iter()
        .filter(|ip| ip.interface == Some(pod_index))
        .filter_map(|ip| ip.gateway)
        .collect();
    // The routes podnet makes go via the gateway; others in prevResult belong to other plugins.
    let routes = prev
        .routes
        .iter()
        .filter(|r| r.gw.is_some_and(|g| gateways.contains(&g)))
        .map(|r| (r.dst, r.gw))
        .collect();

    // Host side: the veth is there, up, on the bridge; the bridge holds the gateway.
    let mut nl = Netlink::open().map_err(|e| fail::kernel("open netlink", e))?;
    let host = nl
        .link_by_name(&t.host_veth)
        .map_err(|e| fail::kernel(format!("look up veth {}", t.host_veth), e))?
        .ok_or_else(|| {
            fail::check(format!(
                "host veth {} of {} is missing",
                t.host_veth, t.subject
            ))
        })?;
    let bridge = nl
        .link_by_name(&conf.bridge)
        .map_err(|e| fail::kernel(format!("look up bridge {}", conf.bridge), e))?
        .ok_or_else(|| fail::check(format!("bridge {} is missing", conf.bridge)))?;
    if host.master != Some(bridge.index) {
        return Err(fail::check(format!(
            "host veth {} is not attached to bridge {}",
            t.host_veth, conf.bridge
        )));
    }
    if !host.up {
        return Err(fail::check(format!("host veth {} is down", t.host_veth)));
    }
    if conf.hairpin_mode
        && nl
            .bridge_port_hairpin(host.index)
            .map_err(|e| fail::kernel(format!("read port options of {}", t.host_veth), e))?
            == Some(false)
    {
        return Err(fail::check(format!(
            "hairpin mode is off on {}",
            t.host_veth
        )));
    }
    let bridge_addrs = nl
        .addresses(Some(bridge.index))
        .map_err(|e| fail::kernel(format!("list addresses of {}", conf.bridge), e))?;
    for gw in &gateways {
        if !bridge_addrs.iter().any(|a| a.addr.addr() == *gw) {
            return Err(fail::check(format!(
                "bridge {} lacks gateway address {gw}",
                conf.bridge
            )));
        }
    }

    let pod_ns = NetNs::open(netns).map_err(|e| match &e {
        podnet_netns::Error::Io { cause, .. } if cause.kind() == std::io::ErrorKind::NotFound => {
            CniError::new(
                ErrorCode::UnknownContainer,
                format!("CNI_NETNS: {e}: {} no longer exists", t.subject),
            )
        }
        _ => fail::check(format!("network namespace of {}: {e}", t.subject)),
    })?;
    pod::check(
        &pod_ns,
        &Expected {
            ifname: t.ifname().to_string(),
            mac: pod_iface.mac.clone(),
            addresses: addresses.clone(),
            routes,
        },
        &t.subject,
    )?;

    // The reservation: the address is still recorded for this attachment.
    let record = addressing::find(conf, &t.owner)?;
    let Some((ip, reservation)) = record else {
        return Err(fail::check(format!(
            "no address is reserved for {}",
            t.subject
        )));
    };
    if !addresses.iter().any(|a| a.addr() == ip) {
        return Err(fail::check(format!(
            "{} holds {ip}, but prevResult says {addresses:?}",
            t.subject
        )));
    }

    if conf.ip_masq
        && let IpNet::V4(a) = addresses[0]
    {
        firewall::masq::check(&conf.name, a.trunc(), conf.cluster_cidr)?;
    }
    firewall::hostports::check(ip, &reservation.port_mappings)?;
    if conf.spoof_check {
        firewall::spoof::check(&t.host_veth, ip, pod_iface.mac.as_deref())?;
    }

    if let Ipam::Delegated { plugin } = &conf.ipam {
        let stdin = serde_json::to_vec(&conf.raw).expect("config serializes");
        delegate::exec(plugin, "CHECK", req, &stdin)?;
    }
    Ok(())
}

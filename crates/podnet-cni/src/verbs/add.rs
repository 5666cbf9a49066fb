//! ADD: address, bridge, veth (pod end made directly in the pod), port guards (anti-spoofing, the
//! policy hold), pod interface, masquerade, host ports.
//! Any failure undoes every step already taken.

use crate::addressing::{self, Lease};
use crate::attachment::Target;
use crate::pod::{self, PodInterface};
use crate::undo::Undo;
use crate::{fail, firewall, host};
use ipnet::IpNet;
use podnet_netlink::{Netlink, VethSpec};
use podnet_netns::NetNs;
use podnet_types::cni::{
    CniError, CniResult, ErrorCode, Interface, IpConfig, NetConf, Request, Route,
};
use podnet_types::names;
use serde_json::Value;
use std::net::IpAddr;

pub fn add(req: &Request, conf: &NetConf) -> Result<Value, CniError> {
    let t = Target::new(conf, req);
    let netns_path = req.netns.as_deref().unwrap_or_default();
    let pod = NetNs::open(netns_path).map_err(|e| match &e {
        // The container is gone: nothing was set up, so the runtime has nothing to clean (code 3).
        podnet_netns::Error::Io { cause, .. } if cause.kind() == std::io::ErrorKind::NotFound => {
            CniError::new(ErrorCode::UnknownContainer, format!("CNI_NETNS: {e}"))
        }
        _ => CniError::new(ErrorCode::InvalidEnvironment, format!("CNI_NETNS: {e}")),
    })?;
    let own =
        NetNs::current().map_err(|e| fail::kernel("open the plugin's own network namespace", e))?;
    if pod.id().ok()
        == Some(
            own.id()
                .map_err(|e| fail::kernel("identify the plugin's network namespace", e))?,
        )
    {
        return Err(CniError::new(
            ErrorCode::InvalidEnvironment,
            format!(
                "CNI_NETNS: {netns_path} is the plugin's own network namespace, not a container's"
            ),
        ));
    }
    if pod::interface_exists(&pod, t.ifname(), &t.subject)? {
        return Err(CniError::new(
            ErrorCode::InterfaceExists,
            format!(
                "create {} in {}: an interface of that name already exists",
                t.ifname(),
                t.subject
            ),
        ));
    }

    let store = addressing::open_store(conf)?;
    let mut undo = Undo::new();
    let lease = addressing::allocate(conf, req, &store, &t.owner, &t.subject)?;
    undo.push(
        format!("address {} of {}", lease.address.addr(), t.subject),
        || {
            addressing::release(conf, &t.owner, &t.subject)
                .and_then(|_| addressing::release_delegated(conf, req))
                .map_err(|e| e.to_string())
        },
    );
    match connect(req, conf, &t, &pod, &store, &lease, &mut undo) {
        Ok(result) => {
            undo.commit();
            Ok(result)
        }
        Err(e) => Err(undo.rollback(e)),
    }
}

fn connect<'a>(
    req: &Request,
    conf: &'a NetConf,
    t: &'a Target,
    pod: &NetNs,
    store: &'a podnet_ipam::Store,
    lease: &Lease,
    undo: &mut Undo<'a>,
) -> Result<Value, CniError> {
    let mut nl = Netlink::open().map_err(|e| fail::kernel("open netlink", e))?;
    host::ensure_forwarding()?;
    let bridge = host::ensure_bridge(&mut nl, &conf.bridge, lease.gateway, lease.address.trunc())?;

    let pod_mac = conf
        .runtime
        .mac
        .unwrap_or_else(|| names::mac_for_ip(lease.address.addr()));
    let spec = VethSpec {
        name: &t.host_veth,
        peer_name: t.ifname(),
        peer_netns_fd: Some(pod.fd()),
        peer_mac: Some(pod_mac),
        mtu: Some(conf.mtu),
        master: Some(bridge.index),
        up: true,
        ..Default::default()
    };
    nl.create_veth(&spec).map_err(|e| {
        // The name is derived from (network, container, ifname): a link holding it belongs to this
        // very attachment in another namespace (a runtime that skipped DEL), or to someone else.
        // Either way it is not ours to remove; say so.
        let hint = if e.is_exists() {
            " (that attachment already exists elsewhere: DEL it first)"
        } else {
            ""
        };
        fail::kernel(
            format!("create veth {} for {}", t.host_veth, t.subject),
            format!("{e}{hint}"),
        )
    })?;
    undo.push(format!("veth {}", t.host_veth), move || {
        let mut nl = Netlink::open().map_err(|e| e.to_string())?;
        nl.delete_link_by_name(&t.host_veth)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let host_link = nl
        .link_by_name(&t.host_veth)
        .map_err(|e| fail::kernel(format!("look up veth {}", t.host_veth), e))?
        .ok_or_else(|| {
            fail::kernel(
                format!("find veth {} for {}", t.host_veth, t.subject),
                "gone right after creation",
            )
        })?;
    // The alias names the owner for GC; set once the undo step exists, so its failure rolls back too.
    nl.set_link_alias(host_link.index, &t.alias).map_err(|e| {
        fail::kernel(
            format!("set alias of veth {} for {}", t.host_veth, t.subject),
            e,
        )
    })?;
    if conf.hairpin_mode {
        nl.set_bridge_port_hairpin(host_link.index, true)
            .map_err(|e| {
                fail::kernel(
                    format!("enable hairpin on {} for {}", t.host_veth, t.subject),
                    e,
                )
            })?;
    }

    // The port is a bridge port, not an interface of its own: the bridge hands it frames sent to
    // 802.1 reserved group addresses without passing them through the bridge's hooks, and its own
    // IP stack would take them (with any source). Strict reverse-path filtering (its routes are
    // the bridge's) and no IPv6 on it leave it nothing to accept.
    for (key, value) in [
        (
            ["net", "ipv4", "conf", t.host_veth.as_str(), "rp_filter"],
            "1",
        ),
        (
            ["net", "ipv6", "conf", t.host_veth.as_str(), "disable_ipv6"],
            "1",
        ),
    ] {
        podnet_netns::sysctl::write_if_present(&key, value).map_err(|e| {
            fail::kernel(format!("harden port {} for {}", t.host_veth, t.subject), e)
        })?;
    }

    // Before the pod's interface comes up (nothing in the pod can send until then): its port only
    // lets its own addresses through, and its address waits for its policies.
    let port = firewall::spoof::Port {
        host_veth: &t.host_veth,
        index: host_link.index,
        mac: pod_mac,
        ip: lease.address.addr(),
    };
    firewall::guard_port(
        &port,
        conf.spoof_check,
        conf.policy_hold && t.ifname() == "eth0",
    )?;
    undo.push(format!("port guards of {}", t.subject), move || {
        firewall::release_port(&port).map_err(|e| e.to_string())
    });

    pod::configure(
        pod,
        &PodInterface {
            ifname: t.ifname(),
            address: lease.address,
            gateway: lease.gateway,
            routes: &lease.routes,
            subject: &t.subject,
        },
    )?;

    if conf.ip_masq {
        firewall::masq::ensure(&conf.name, lease.address.trunc(), conf.cluster_cidr)?;
    }
    let mappings = &conf.runtime.port_mappings;
    if !mappings.is_empty() {
        // Recorded before installed: a plugin killed in between leaves a record that DEL and GC act
        // on, never a mapping nobody knows about.
        addressing::record_port_mappings(conf, store, lease.address.addr(), mappings, &t.subject)?;
        let pod_ip = lease.address.addr();
        undo.push(format!("host ports of {}", t.subject), move || {
            firewall::hostports::remove(pod_ip, mappings).map_err(|e| e.to_string())
        });
        firewall::hostports::add(pod_ip, mappings, &t.subject)?;
    }

    let ours = CniResult {
        interfaces: vec![
            Interface {
                name: t.host_veth.clone(),
                mac: host_link.mac.map(|m| names::format_mac(&m)),
                ..Default::default()
            },
            Interface {
                name: t.ifname().to_string(),
                mac: Some(names::format_mac(&pod_mac)),
                mtu: Some(conf.mtu),
                sandbox: req.netns.clone(),
                ..Default::default()
            },
        ],
        ips: vec![IpConfig {
            address: IpNet::V4(lease.address),
            gateway: Some(IpAddr::V4(lease.gateway)),
            interface: Some(1),
        }],
        routes: lease
            .routes
            .iter()
            .map(|r| Route::new(r.dst, Some(IpAddr::V4(r.gw.unwrap_or(lease.gateway)))))
            .collect(),
        dns: if conf.dns.is_empty() {
            lease.dns.clone()
        } else {
            conf.dns.clone()
        },
    };
    let result = match &conf.prev_result {
        Some(prev) => {
            let mut merged = prev.clone();
            merged.append(ours);
            merged
        }
        None => ours,
    };
    Ok(result.to_json(conf.cni_version))
}

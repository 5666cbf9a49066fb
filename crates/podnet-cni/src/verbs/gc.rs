//! GC: release every address, host port, policy hold and stray host veth of this network whose
//! attachment is not in `cni.dev/valid-attachments`, and the anti-spoofing entries of every port that
//! is gone. Keeps going past errors and reports all of them.

use crate::addressing;
use crate::{delegate, fail, firewall};
use podnet_netlink::Netlink;
use podnet_types::cni::{Attachment, CniError, ErrorCode, Ipam, NetConf, Request};
use podnet_types::names;
use std::collections::HashSet;

pub fn gc(req: &Request, conf: &NetConf) -> Result<(), CniError> {
    if conf.disable_gc {
        // The administrator asked that this network not be garbage-collected (shared state between
        // runtimes); the runtime should not have called, and we change nothing.
        eprintln!(
            "podnet-cni: GC skipped: disableGC is set for network {}",
            conf.name
        );
        return Ok(());
    }
    let valid_list = conf.valid_attachments.as_ref().ok_or_else(|| {
        CniError::new(
            ErrorCode::InvalidConfig,
            "cni.dev/valid-attachments: GC needs the list of valid attachments",
        )
    })?;
    let valid: HashSet<Attachment> = valid_list.iter().cloned().collect();
    let mut errors: Vec<String> = Vec::new();

    match addressing::retain_valid(conf, &valid) {
        Ok(stale) => {
            for (ip, record) in stale {
                // A stale address's hold for the policy agent goes with it (its port's entries go
                // below, with the port).
                let mut batch = Vec::new();
                match firewall::pending::installed() {
                    Ok(true) => firewall::pending::remove(&mut batch, ip),
                    Ok(false) => {}
                    Err(e) => errors.push(e.to_string()),
                }
                if let Err(e) = podnet_nft::apply_elements(&batch) {
                    errors.push(format!("policy hold of stale {ip}: {e}"));
                }
                if let Err(e) = firewall::hostports::remove(ip, &record.port_mappings) {
                    errors.push(format!(
                        "host ports of stale {} ({ip}): {e}",
                        record.owner.container_id
                    ));
                }
            }
        }
        Err(e) => errors.push(e.to_string()),
    }
    // Host-port elements pointing into this network's subnet that no valid attachment's record lists:
    // left by a plugin killed mid-ADD before this version recorded them first, or by hand.
    if let Ipam::Builtin(b) = &conf.ipam {
        let kept = addressing::state(conf).map(|s| s.unwrap_or_default());
        match kept {
            Ok(kept) => {
                let keep = |ip: std::net::Ipv4Addr, m: &podnet_types::cni::PortMapping| {
                    kept.reservations
                        .get(&ip)
                        .is_some_and(|r| r.port_mappings.contains(m))
                };
                if let Err(e) = firewall::hostports::retain(b.subnet, keep) {
                    errors.push(e.to_string());
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }

    if let Err(e) = remove_stray_veths(conf, &valid) {
        errors.push(e.to_string());
    }
    // Anti-spoofing entries of ports that are gone (DEL leaves them), of any network: a live port
    // keeps its entries.
    if let Err(e) = firewall::spoof::forget_gone_ports() {
        errors.push(e.to_string());
    }

    if let Ipam::Delegated { plugin } = &conf.ipam {
        let stdin = serde_json::to_vec(&conf.raw).expect("config serializes");
        if let Err(e) = delegate::exec(plugin, "GC", req, &stdin) {
            errors.push(e.to_string());
        }
    }

    if errors.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            ErrorCode::Kernel,
            format!("GC of network {} incomplete", conf.name),
        )
        .with_details(errors.join("; ")))
    }
}

/// Host veths of this network whose attachment is not valid. A host veth is this network's when its
/// name has podnet's prefix and its alias names the network, or, for one whose ADD died before the
/// alias was set, when it hangs on this network's bridge.
fn remove_stray_veths(conf: &NetConf, valid: &HashSet<Attachment>) -> Result<(), CniError> {
    let keep: HashSet<String> = valid
        .iter()
        .map(|a| names::host_veth_name(&conf.name, &a.container_id, &a.ifname))
        .collect();
    let alias_prefix = format!("{}{}/", names::ALIAS_PREFIX, conf.name);
    let mut nl = Netlink::open().map_err(|e| fail::kernel("open netlink", e))?;
    let links = nl.links().map_err(|e| fail::kernel("list links", e))?;
    let bridge = links
        .iter()
        .find(|l| l.name == conf.bridge)
        .map(|l| l.index);
    let mut errors = Vec::new();
    for link in links {
        let ours = link.name.starts_with(names::HOST_VETH_PREFIX)
            && match link.alias.as_deref() {
                Some(a) => a.starts_with(&alias_prefix),
                None => bridge.is_some() && link.master == bridge,
            };
        if ours && !keep.contains(&link.name) {
            match nl.delete_link(link.index) {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => errors.push(format!("delete stray veth {}: {e}", link.name)),
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(ErrorCode::Kernel, errors.join("; ")))
    }
}

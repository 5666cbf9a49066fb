//! STATUS: can an ADD succeed right now? State directory usable, an address left, nft present when the
//! firewall is needed; a delegated IPAM is asked too. Attached pods that lost their bridge are
//! reported as 51 (existing containers have limited connectivity), the rest as 50.

use crate::{addressing, delegate};
use podnet_netlink::Netlink;
use podnet_types::cni::{CniError, ErrorCode, Ipam, NetConf, Request, fields};
use podnet_types::ipam::Pool;

pub fn status(req: &Request, conf: &NetConf) -> Result<(), CniError> {
    let unavailable = |msg: String| CniError::new(ErrorCode::NotAvailable, msg);
    // Read-only: STATUS creates nothing. A state directory that does not exist yet is fine (ADD
    // makes it), as long as its parent can be written.
    let state = addressing::state(conf)
        .map_err(|e| unavailable(format!("state of network {}: {}", conf.name, e.msg)))?;
    if state.is_none() && !writable_ancestor(&conf.data_dir) {
        return Err(unavailable(format!(
            "IPAM dataDir {} cannot be created",
            conf.data_dir.display()
        )));
    }
    let state = state.unwrap_or_default();

    let attached = state.reservations.len();
    let bridge = Netlink::open().and_then(|mut nl| nl.link_by_name(&conf.bridge));
    match bridge {
        Ok(None) if attached > 0 => {
            return Err(CniError::new(
                ErrorCode::NotAvailableLimitedConnectivity,
                format!(
                    "bridge {} is gone: {attached} attached pods of network {} have no connectivity",
                    conf.bridge, conf.name
                ),
            ));
        }
        Ok(Some(link)) if link.kind.as_deref() != Some("bridge") => {
            return Err(unavailable(format!(
                "{} is a {}, not a bridge: ADD cannot attach pods to it",
                conf.bridge,
                link.kind.as_deref().unwrap_or("device without a kind")
            )));
        }
        _ => {}
    }

    match &conf.ipam {
        Ipam::Builtin(b) => {
            if state.free(&Pool::from_config(b)) == 0 {
                return Err(unavailable(format!(
                    "no free address in {}-{} of {} ({attached} reserved)",
                    b.range_start, b.range_end, b.subnet
                )));
            }
        }
        Ipam::Delegated { plugin } => {
            let stdin = serde_json::to_vec(&conf.raw).expect("config serializes");
            delegate::exec(plugin, "STATUS", req, &stdin)?;
        }
    }
    let needs_firewall = conf.ip_masq
        || !conf.runtime.port_mappings.is_empty()
        || conf
            .raw
            .as_object()
            .and_then(|o| fields::lookup(o, "capabilities").ok().flatten())
            .is_some_and(|caps| fields::flag(caps, "portMappings"));
    if needs_firewall && !podnet_nft::nft_binary().is_file() {
        return Err(unavailable(
            "nft (nftables) is not installed: masquerade and host ports need it".into(),
        ));
    }
    Ok(())
}

/// Whether the nearest existing directory on the way to `dir` takes a new directory: probed by making
/// one and removing it again (root passes every permission check, so asking `access(2)` proves nothing
/// about /proc, read-only mounts or full disks).
fn writable_ancestor(dir: &std::path::Path) -> bool {
    let Some(existing) = dir.ancestors().find(|p| p.is_dir()) else {
        return false;
    };
    let probe = existing.join(format!(".podnet-cni-status-{}", std::process::id()));
    match std::fs::create_dir(&probe) {
        Ok(()) => std::fs::remove_dir(&probe).is_ok(),
        Err(_) => false,
    }
}

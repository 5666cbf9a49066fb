//! STATUS: can an ADD succeed right now? State directory usable, an address left, nft present when the
//! firewall is needed; a delegated IPAM is asked too. Attached pods that lost their bridge are
//! reported as 51 (existing containers have limited connectivity), the rest as 50.

use crate::{addressing, delegate};
use podnet_netlink::Netlink;
use podnet_types::cni::{CniError, ErrorCode, Ipam, NetConf, Request};
use podnet_types::ipam::Pool;

pub fn status(req: &Request, conf: &NetConf) -> Result<(), CniError> {
    let unavailable = |msg: String| CniError::new(ErrorCode::NotAvailable, msg);
    let store = addressing::open_store(conf).map_err(|e| unavailable(e.msg))?;
    // Taking the lock proves the state directory is usable, not just readable.
    let state = {
        let locked = store
            .lock()
            .map_err(|e| unavailable(format!("state of network {}: {e}", conf.name)))?;
        locked.state.clone()
    };

    let attached = state.reservations.len();
    if attached > 0
        && matches!(
            Netlink::open().and_then(|mut nl| nl.link_by_name(&conf.bridge)),
            Ok(None)
        )
    {
        return Err(CniError::new(
            ErrorCode::NotAvailableLimitedConnectivity,
            format!(
                "bridge {} is gone: {attached} attached pods of network {} have no connectivity",
                conf.bridge, conf.name
            ),
        ));
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
            .pointer("/capabilities/portMappings")
            .and_then(|v| v.as_bool())
            == Some(true);
    if needs_firewall && !podnet_nft::nft_binary().is_file() {
        return Err(unavailable(
            "nft (nftables) is not installed: masquerade and host ports need it".into(),
        ));
    }
    Ok(())
}

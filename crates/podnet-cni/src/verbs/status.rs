//! STATUS: can an ADD succeed right now? State directory usable, an address left, nft present when the
//! firewall is needed; a delegated IPAM is asked too.

use crate::{addressing, delegate};
use podnet_types::cni::{CniError, ErrorCode, Ipam, NetConf, Request};
use podnet_types::ipam::Pool;

pub fn status(req: &Request, conf: &NetConf) -> Result<(), CniError> {
    let unavailable = |msg: String| CniError::new(ErrorCode::NotAvailable, msg);
    let store = addressing::open_store(conf).map_err(|e| unavailable(e.msg))?;
    let locked = store.lock().map_err(|e| unavailable(format!("state of network {}: {e}", conf.name)))?;
    match &conf.ipam {
        Ipam::Builtin(b) => {
            let pool = Pool::from_config(b);
            if locked.state.free(&pool) == 0 {
                return Err(unavailable(format!(
                    "no free address in {}-{} of {} ({} reserved)",
                    b.range_start,
                    b.range_end,
                    b.subnet,
                    locked.state.reservations.len()
                )));
            }
        }
        Ipam::Delegated { plugin } => {
            drop(locked);
            let stdin = serde_json::to_vec(&conf.raw).expect("config serializes");
            delegate::exec(plugin, "STATUS", req, &stdin)?;
        }
    }
    let needs_firewall = conf.ip_masq || !conf.runtime.port_mappings.is_empty()
        || conf.raw.pointer("/capabilities/portMappings").and_then(|v| v.as_bool()) == Some(true);
    if needs_firewall && !podnet_nft::nft_binary().is_file() {
        return Err(unavailable("nft (nftables) is not installed: masquerade and host ports need it".into()));
    }
    Ok(())
}

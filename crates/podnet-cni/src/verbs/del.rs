//! DEL: undo ADD, best-effort and idempotent. It succeeds when repeated, when the namespace is gone and
//! without prevResult; it works from the container ID and interface (the host veth's name is derived
//! from them) and from podnet's own record of the attachment (address, host ports), never from the
//! configuration's details, so a configuration ADD would refuse does not stop it (see
//! `NetConf::parse_for`). It fails only when something that still exists could not be removed (then
//! the runtime retries, rather than an address leaking).

use crate::addressing;
use crate::attachment::Target;
use crate::{delegate, fail, firewall};
use podnet_netlink::Netlink;
use podnet_types::cni::{CniError, Ipam, NetConf, Request};

pub fn del(req: &Request, conf: &NetConf) -> Result<(), CniError> {
    let t = Target::new(conf, req);
    let mut errors: Vec<CniError> = Vec::new();

    // Deleting the host end destroys the pair, so the pod's end goes too, wherever it is; nothing has
    // to enter the pod's namespace (which may already be gone). The port's guards stay behind, inert
    // (see `firewall::release_port`).
    if let Err(e) = Netlink::open().and_then(|mut nl| nl.delete_link_by_name(&t.host_veth)) {
        errors.push(fail::kernel(
            format!("delete veth {} of {}", t.host_veth, t.subject),
            e,
        ));
    }

    match addressing::find(conf, &t.owner) {
        Ok(Some((ip, record))) => {
            if let Err(e) = firewall::hostports::remove(ip, &record.port_mappings) {
                errors.push(e);
            }
        }
        Ok(None) => {}
        Err(e) => errors.push(e),
    }
    if let Err(e) = addressing::release(conf, &t.owner, &t.subject) {
        errors.push(e);
    }
    match &conf.ipam {
        // A plugin that is not installed (any more) holds nothing this DEL could release, and failing
        // for it would make the runtime retry forever; its own GC or an administrator must clean up.
        Ipam::Delegated { plugin } if !delegate::installed(plugin, req) => crate::log(
            req,
            &format!(
                "ipam.type {plugin:?} is not in CNI_PATH {:?}: its addresses were not released",
                req.path.join(":")
            ),
        ),
        _ => {
            if let Err(e) = addressing::release_delegated(conf, req) {
                errors.push(e);
            }
        }
    }

    let mut errors = errors.into_iter();
    match errors.next() {
        None => Ok(()),
        Some(first) => {
            let rest: Vec<String> = errors.map(|e| e.to_string()).collect();
            Err(if rest.is_empty() {
                first
            } else {
                first.with_details(format!("also: {}", rest.join("; ")))
            })
        }
    }
}

//! DEL: undo ADD, best-effort and idempotent. It succeeds when repeated, when the namespace is gone and
//! without prevResult; it fails only when something that still exists could not be removed (then the
//! runtime retries, rather than an address leaking).

use crate::addressing;
use crate::attachment::Target;
use crate::{fail, firewall};
use podnet_netlink::Netlink;
use podnet_types::cni::{CniError, NetConf, Request};

pub fn del(req: &Request, conf: &NetConf) -> Result<(), CniError> {
    let t = Target::new(conf, req);
    let mut errors: Vec<CniError> = Vec::new();

    // Deleting the host end destroys the pair, so the pod's end goes too, wherever it is; nothing has
    // to enter the pod's namespace (which may already be gone).
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
    if let Err(e) = addressing::release_delegated(conf, req) {
        errors.push(e);
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

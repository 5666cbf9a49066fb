//! Finding a namespace from the outside: the one a veth's peer lives in, named only by the netnsid the
//! local namespace gave it. Candidates are the pinned namespaces (`/run/netns`, where CNI runtimes keep
//! pods' namespaces) and those of running processes.

use crate::netns::{NetNs, NsId};
use podnet_netlink::Netlink;
use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;

fn candidates() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(crate::persist::NETNS_RUN_DIR)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    if let Ok(procs) = fs::read_dir("/proc") {
        for p in procs.flatten() {
            if p.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            {
                out.push(p.path().join("ns/net"));
            }
        }
    }
    out
}

impl NetNs {
    /// The namespace that `nl`'s namespace calls `nsid`, if one can be found and opened.
    pub fn find_by_nsid(nl: &mut Netlink, nsid: i32) -> Option<NetNs> {
        let mut seen: HashSet<NsId> = HashSet::new();
        for path in candidates() {
            let Ok(ns) = NetNs::open(&path) else { continue };
            let Ok(id) = ns.id() else { continue };
            if !seen.insert(id) {
                continue;
            }
            if nl.nsid_of(ns.fd()).ok().flatten() == Some(nsid) {
                return Some(ns);
            }
        }
        None
    }
}

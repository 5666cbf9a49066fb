//! One attachment: the (network, container, interface) triple and everything derived from it.

use podnet_types::cni::{Attachment, NetConf, Request};
use podnet_types::names;

#[derive(Debug, Clone)]
pub struct Target {
    pub owner: Attachment,
    /// The host end of the veth: deterministic, so DEL and GC find it without state.
    pub host_veth: String,
    pub alias: String,
    /// How messages name it: `pod default/web-1` when the runtime says, else `container <id>`.
    pub subject: String,
}

impl Target {
    pub fn new(conf: &NetConf, req: &Request) -> Target {
        let container_id = req.container_id.clone().unwrap_or_default();
        let ifname = req.ifname.clone().unwrap_or_default();
        Target {
            host_veth: names::host_veth_name(&conf.name, &container_id, &ifname),
            alias: names::host_veth_alias(&conf.name, &container_id, &ifname),
            owner: Attachment {
                container_id,
                ifname,
            },
            subject: req.subject(),
        }
    }

    pub fn ifname(&self) -> &str {
        &self.owner.ifname
    }
}

//! Addresses for attachments: the built-in allocator over the durable store, or a delegated IPAM plugin.
//!
//! Either way every attachment is recorded in the store (address, owner, host ports), so DEL and GC
//! work from podnet's own records and never from guesses.

use crate::{delegate, fail};
use ipnet::{IpNet, Ipv4Net};
use podnet_ipam::Store;
use podnet_types::cni::{
    Attachment, CniError, Dns, ErrorCode, Ipam, NetConf, PortMapping, Request,
};
use podnet_types::ipam::{AllocError, Pool, Reservation};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

/// What an attachment got.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The address with the subnet's prefix length (`10.244.1.5/24`).
    pub address: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub routes: Vec<IpNet>,
    /// DNS settings a delegated IPAM returned (merged into the result).
    pub dns: Dns,
}

pub fn open_store(conf: &NetConf) -> Result<Store, CniError> {
    Store::open(&conf.data_dir, &conf.name)
        .map_err(|e| fail::store(format!("open state of network {}", conf.name), e))
}

/// The address the runtime asked for, if any: the `ips` capability, else `CNI_ARGS` `IP=`.
fn requested(conf: &NetConf, req: &Request) -> Result<Option<Ipv4Addr>, CniError> {
    if let Some(IpAddr::V4(ip)) = conf.runtime.ips.iter().find(|ip| ip.is_ipv4()) {
        return Ok(Some(*ip));
    }
    match req.arg("IP") {
        None => Ok(None),
        Some(s) => s
            .split('/')
            .next()
            .unwrap_or_default()
            .parse::<Ipv4Addr>()
            .map(Some)
            .map_err(|_| {
                CniError::new(
                    ErrorCode::InvalidEnvironment,
                    format!("CNI_ARGS: IP={s:?} is not an IPv4 address"),
                )
            }),
    }
}

/// Reserves an address for the attachment.
pub fn allocate(
    conf: &NetConf,
    req: &Request,
    store: &Store,
    owner: &Attachment,
    subject: &str,
) -> Result<Lease, CniError> {
    match &conf.ipam {
        Ipam::Builtin(b) => {
            let want = requested(conf, req)?;
            let mut locked = store
                .lock()
                .map_err(|e| fail::store(format!("lock IPAM of network {}", conf.name), e))?;
            let ip = locked
                .state
                .allocate(&Pool::from_config(b), owner, want)
                .map_err(|e| {
                    let code = match e {
                        AllocError::Exhausted { .. } => ErrorCode::PoolExhausted,
                        _ => ErrorCode::InvalidConfig,
                    };
                    CniError::new(
                        code,
                        format!("allocate an address in {} for {subject}: {e}", b.subnet),
                    )
                })?;
            locked
                .commit()
                .map_err(|e| fail::store(format!("record address {ip} for {subject}"), e))?;
            Ok(Lease {
                address: Ipv4Net::new(ip, b.subnet.prefix_len()).expect("valid prefix"),
                gateway: b.gateway,
                routes: b.routes.clone(),
                dns: Dns::default(),
            })
        }
        Ipam::Delegated { plugin } => {
            let stdin = serde_json::to_vec(&conf.raw).expect("config serializes");
            let result = delegate::ipam_add(plugin, req, &stdin)?;
            let lease = lease_from_delegate(plugin, &result).inspect_err(|_| {
                let _ = delegate::exec(plugin, "DEL", req, &stdin);
            })?;
            let record = store.lock().and_then(|mut l| {
                l.state.reservations.insert(
                    lease.address.addr(),
                    Reservation {
                        owner: owner.clone(),
                        port_mappings: Vec::new(),
                    },
                );
                l.commit()
            });
            if let Err(e) = record {
                let _ = delegate::exec(plugin, "DEL", req, &stdin);
                return Err(fail::store(
                    format!("record address {} for {subject}", lease.address.addr()),
                    e,
                ));
            }
            Ok(lease)
        }
    }
}

fn lease_from_delegate(plugin: &str, r: &podnet_types::cni::CniResult) -> Result<Lease, CniError> {
    let ip = r.ips.iter().find_map(|ip| match ip.address {
        IpNet::V4(v4) => Some((v4, ip.gateway)),
        IpNet::V6(_) => None,
    });
    let Some((address, gateway)) = ip else {
        return Err(CniError::new(
            ErrorCode::Delegate,
            format!("{plugin} returned no IPv4 address"),
        ));
    };
    let gateway = match gateway {
        Some(IpAddr::V4(g)) => g,
        // Without a gateway the bridge takes the subnet's first host address, as the built-in IPAM does.
        _ => Ipv4Addr::from(u32::from(address.network()) + 1),
    };
    let mut routes: Vec<IpNet> = r
        .routes
        .iter()
        .map(|rt| rt.dst)
        .filter(|d| d.addr().is_ipv4())
        .collect();
    if routes.is_empty() {
        routes.push("0.0.0.0/0".parse().expect("literal"));
    }
    Ok(Lease {
        address,
        gateway,
        routes,
        dns: r.dns.clone(),
    })
}

/// Records the host ports installed for an attachment (so DEL and GC remove exactly those).
pub fn record_port_mappings(
    store: &Store,
    ip: Ipv4Addr,
    mappings: &[PortMapping],
    subject: &str,
) -> Result<(), CniError> {
    let mut locked = store
        .lock()
        .map_err(|e| fail::store(format!("lock state to record host ports of {subject}"), e))?;
    if let Some(r) = locked.state.reservations.get_mut(&ip) {
        r.port_mappings = mappings.to_vec();
    }
    locked
        .commit()
        .map_err(|e| fail::store(format!("record host ports of {subject}"), e))
}

/// Releases the attachment's address; returns what it held. Releasing nothing is fine.
pub fn release(
    conf: &NetConf,
    req: &Request,
    store: &Store,
    owner: &Attachment,
    subject: &str,
) -> Result<Option<(Ipv4Addr, Reservation)>, CniError> {
    let released = {
        let mut locked = store
            .lock()
            .map_err(|e| fail::store(format!("lock IPAM of network {}", conf.name), e))?;
        let released = locked.state.release(owner);
        if released.is_some() {
            locked
                .commit()
                .map_err(|e| fail::store(format!("release the address of {subject}"), e))?;
        }
        released
    };
    if let Ipam::Delegated { plugin } = &conf.ipam {
        let stdin = serde_json::to_vec(&conf.raw).expect("config serializes");
        delegate::exec(plugin, "DEL", req, &stdin)?;
    }
    Ok(released)
}

/// The address recorded for an attachment.
pub fn find(
    store: &Store,
    owner: &Attachment,
) -> Result<Option<(Ipv4Addr, Reservation)>, CniError> {
    let state = store
        .peek()
        .map_err(|e| fail::store("read IPAM state", e))?;
    Ok(state
        .find(owner)
        .and_then(|ip| state.reservations.get(&ip).map(|r| (ip, r.clone()))))
}

/// GC: drops every record not in `valid`; returns them so their host ports can be removed.
pub fn retain_valid(
    store: &Store,
    valid: &HashSet<Attachment>,
) -> Result<Vec<(Ipv4Addr, Reservation)>, CniError> {
    let mut locked = store
        .lock()
        .map_err(|e| fail::store("lock IPAM for GC", e))?;
    let stale = locked.state.retain_valid(valid);
    if !stale.is_empty() {
        locked.commit().map_err(|e| fail::store("record GC", e))?;
    }
    Ok(stale)
}

//! Addresses for attachments: the built-in allocator over the durable store, or a delegated IPAM plugin.
//!
//! Either way every attachment is recorded in the store (address, owner, host ports), so DEL and GC
//! work from podnet's own records and never from guesses. A state file that cannot be read is rebuilt
//! from the kernel (see [`crate::recover`]) rather than trusted or discarded.

use crate::{delegate, fail, recover};
use ipnet::{IpNet, Ipv4Net};
use podnet_ipam::{Locked, Store};
use podnet_types::cni::{
    Attachment, CniError, Dns, ErrorCode, Ipam, IpamRoute, NetConf, PortMapping, Request,
};
use podnet_types::ipam::{AllocError, Pool, PoolState, Reservation};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

/// What an attachment got.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The address with the subnet's prefix length (`10.244.1.5/24`).
    pub address: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub routes: Vec<IpamRoute>,
    /// DNS settings a delegated IPAM returned (merged into the result).
    pub dns: Dns,
}

/// The network's store, created if needed (ADD).
pub fn open_store(conf: &NetConf) -> Result<Store, CniError> {
    Store::open(&conf.data_dir, &conf.name)
        .map_err(|e| fail::store(format!("open state of network {}", conf.name), e))
}

/// The network's store if it exists (DEL, GC, STATUS never create it).
pub fn existing_store(conf: &NetConf) -> Option<Store> {
    Store::existing(&conf.data_dir, &conf.name)
}

/// The locked state; an unreadable state file is rebuilt from the attachments on the node.
pub fn lock(conf: &NetConf, store: &Store) -> Result<Locked, CniError> {
    match store.lock() {
        Ok(l) => Ok(l),
        Err(podnet_ipam::Error::Corrupt { path, reason }) => {
            let mut l = store
                .lock_for_rebuild()
                .map_err(|e| fail::store("lock the IPAM state for a rebuild", e))?;
            l.state = recover::rebuild(conf).map_err(|e| {
                e.with_details(format!(
                    "IPAM state {} is corrupt ({reason}) and could not be rebuilt",
                    path.display()
                ))
            })?;
            l.commit()
                .map_err(|e| fail::store("write the rebuilt IPAM state", e))?;
            eprintln!(
                "podnet-cni: IPAM state {} was corrupt ({reason}); rebuilt from {} attachments on this node (the old file is kept beside it)",
                path.display(),
                l.state.reservations.len()
            );
            Ok(l)
        }
        Err(e) => Err(fail::store(
            format!("lock IPAM of network {}", conf.name),
            e,
        )),
    }
}

fn read(conf: &NetConf, store: &Store) -> Result<PoolState, CniError> {
    match store.peek() {
        Ok(s) => Ok(s),
        Err(podnet_ipam::Error::Corrupt { .. }) => Ok(lock(conf, store)?.state.clone()),
        Err(e) => Err(fail::store("read IPAM state", e)),
    }
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
            let mut locked = lock(conf, store)?;
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
            let record = lock(conf, store).and_then(|mut l| {
                l.state.reservations.insert(
                    lease.address.addr(),
                    Reservation {
                        owner: owner.clone(),
                        port_mappings: Vec::new(),
                    },
                );
                l.commit().map_err(|e| {
                    fail::store(
                        format!("record address {} for {subject}", lease.address.addr()),
                        e,
                    )
                })
            });
            if let Err(e) = record {
                let _ = delegate::exec(plugin, "DEL", req, &stdin);
                return Err(e);
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
    let mut routes: Vec<IpamRoute> = r
        .routes
        .iter()
        .filter(|rt| rt.dst.addr().is_ipv4())
        .map(|rt| IpamRoute {
            dst: rt.dst,
            gw: match rt.gw {
                Some(IpAddr::V4(g)) => Some(g),
                _ => None,
            },
        })
        .collect();
    if routes.is_empty() {
        routes.push(IpamRoute {
            dst: "0.0.0.0/0".parse().expect("literal"),
            gw: None,
        });
    }
    Ok(Lease {
        address,
        gateway,
        routes,
        dns: r.dns.clone(),
    })
}

/// Records the host ports of an attachment before they are installed, so DEL and GC remove exactly
/// those even if the plugin dies in between.
pub fn record_port_mappings(
    conf: &NetConf,
    store: &Store,
    ip: Ipv4Addr,
    mappings: &[PortMapping],
    subject: &str,
) -> Result<(), CniError> {
    let mut locked = lock(conf, store)?;
    if let Some(r) = locked.state.reservations.get_mut(&ip) {
        r.port_mappings = mappings.to_vec();
    }
    locked
        .commit()
        .map_err(|e| fail::store(format!("record host ports of {subject}"), e))
}

/// Releases what the attachment holds in podnet's records; returns it. Nothing held is fine, and a
/// network whose state was never created has nothing to release.
pub fn release(
    conf: &NetConf,
    owner: &Attachment,
    subject: &str,
) -> Result<Option<(Ipv4Addr, Reservation)>, CniError> {
    let Some(store) = existing_store(conf) else {
        return Ok(None);
    };
    // Read first: a DEL with nothing to release needs no lock and no write (a read-only or full disk
    // must not make DEL fail forever).
    if read(conf, &store)?.find(owner).is_none() {
        return Ok(None);
    }
    let mut locked = lock(conf, &store)?;
    let released = locked.state.release(owner);
    if released.is_some() {
        locked
            .commit()
            .map_err(|e| fail::store(format!("release the address of {subject}"), e))?;
    }
    Ok(released)
}

/// DEL through a delegated IPAM plugin (with the built-in one there is nothing to do).
pub fn release_delegated(conf: &NetConf, req: &Request) -> Result<(), CniError> {
    if let Ipam::Delegated { plugin } = &conf.ipam {
        let stdin = serde_json::to_vec(&conf.raw).expect("config serializes");
        delegate::exec(plugin, "DEL", req, &stdin)?;
    }
    Ok(())
}

/// The address recorded for an attachment.
pub fn find(
    conf: &NetConf,
    owner: &Attachment,
) -> Result<Option<(Ipv4Addr, Reservation)>, CniError> {
    let Some(store) = existing_store(conf) else {
        return Ok(None);
    };
    let state = read(conf, &store)?;
    Ok(state
        .find(owner)
        .and_then(|ip| state.reservations.get(&ip).map(|r| (ip, r.clone()))))
}

/// GC: drops every record not in `valid`; returns them so their host ports can be removed.
pub fn retain_valid(
    conf: &NetConf,
    valid: &HashSet<Attachment>,
) -> Result<Vec<(Ipv4Addr, Reservation)>, CniError> {
    let Some(store) = existing_store(conf) else {
        return Ok(Vec::new());
    };
    let mut locked = lock(conf, &store)?;
    let stale = locked.state.retain_valid(valid);
    if !stale.is_empty() {
        locked.commit().map_err(|e| fail::store("record GC", e))?;
    }
    Ok(stale)
}

/// The state for reporting (STATUS), without creating anything.
pub fn state(conf: &NetConf) -> Result<Option<PoolState>, CniError> {
    match existing_store(conf) {
        None => Ok(None),
        Some(store) => read(conf, &store).map(Some),
    }
}

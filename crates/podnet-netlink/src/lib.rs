//! A small, synchronous rtnetlink client: links, addresses, routes, neighbours and FDB entries.
//!
//! Synchronous on purpose: `podnet-cni` runs once per pod operation and must not carry an async runtime,
//! and a socket belongs to the network namespace of the thread that opened it, so the natural unit is
//! "open a socket on a thread inside the namespace, do the work, drop it".

mod addr;
mod error;
mod link;
mod neigh;
mod nsid;
mod route;
mod socket;

pub use addr::Address;
pub use error::{Error, Result, strerror};
pub use link::{Link, VethSpec, VxlanSpec};
pub use neigh::{FdbEntry, Neighbour};
pub use route::{RT_TABLE_MAIN, RTPROT_PODNET, Route};
pub use socket::{Netlink, NetlinkSocket};

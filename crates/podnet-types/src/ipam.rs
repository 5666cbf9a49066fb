//! The address allocator: which address an attachment gets, as a pure function of the pool and the
//! current reservations. The durable store (podnet-ipam) loads this state, applies one operation under
//! a lock and writes it back atomically.

use crate::cni::config::{Attachment, BuiltinIpam, PortMapping};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;

/// The format version written into the state file; bump it on incompatible changes.
pub const STATE_FORMAT: u32 = 1;

/// The addresses an allocator may hand out: `start..=end` minus the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
    pub gateway: Ipv4Addr,
}

impl Pool {
    pub fn from_config(c: &BuiltinIpam) -> Self {
        Self {
            start: c.range_start,
            end: c.range_end,
            gateway: c.gateway,
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.start..=self.end).contains(&ip) && ip != self.gateway
    }

    pub fn size(&self) -> u32 {
        let n = u32::from(self.end) - u32::from(self.start) + 1;
        n - u32::from((self.start..=self.end).contains(&self.gateway))
    }
}

/// What is recorded for one reserved address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    #[serde(flatten)]
    pub owner: Attachment,
    /// Host port mappings installed for this attachment, so DEL and GC can remove exactly them.
    #[serde(
        rename = "portMappings",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub port_mappings: Vec<PortMapping>,
}

/// All reservations of one network, plus the round-robin cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolState {
    pub format: u32,
    /// The last address handed out: the next search starts after it, so a released address is not
    /// reused at once (stale conntrack entries and ARP caches elsewhere then age out first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Ipv4Addr>,
    #[serde(default)]
    pub reservations: BTreeMap<Ipv4Addr, Reservation>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("no free address in {start}-{end} ({reserved} reserved)")]
    Exhausted {
        start: Ipv4Addr,
        end: Ipv4Addr,
        reserved: usize,
    },
    #[error("requested address {0} is outside the pool or is the gateway")]
    RequestedOutsidePool(Ipv4Addr),
    #[error("requested address {ip} is already reserved by {holder}/{ifname}")]
    RequestedTaken {
        ip: Ipv4Addr,
        holder: String,
        ifname: String,
    },
}

impl PoolState {
    pub fn new() -> Self {
        Self {
            format: STATE_FORMAT,
            last: None,
            reservations: BTreeMap::new(),
        }
    }

    pub fn find(&self, owner: &Attachment) -> Option<Ipv4Addr> {
        self.reservations
            .iter()
            .find(|(_, r)| &r.owner == owner)
            .map(|(ip, _)| *ip)
    }

    /// Reserves an address for `owner`. An owner that already holds one gets the same one back: an ADD
    /// retried after a crash must not leak the first address.
    pub fn allocate(
        &mut self,
        pool: &Pool,
        owner: &Attachment,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, AllocError> {
        let held = self.find(owner);
        if let Some(ip) = held
            && requested.is_none_or(|r| r == ip)
        {
            return Ok(ip);
        }
        let ip = match requested {
            Some(ip) => {
                if !pool.contains(ip) {
                    return Err(AllocError::RequestedOutsidePool(ip));
                }
                if let Some(r) = self.reservations.get(&ip) {
                    return Err(AllocError::RequestedTaken {
                        ip,
                        holder: r.owner.container_id.clone(),
                        ifname: r.owner.ifname.clone(),
                    });
                }
                ip
            }
            None => self.next_free(pool)?,
        };
        // One attachment, one address: asking for a different one moves the attachment there.
        if let Some(old) = held {
            self.reservations.remove(&old);
        }
        self.reservations.insert(
            ip,
            Reservation {
                owner: owner.clone(),
                port_mappings: Vec::new(),
            },
        );
        self.last = Some(ip);
        Ok(ip)
    }

    fn next_free(&self, pool: &Pool) -> Result<Ipv4Addr, AllocError> {
        let start = u32::from(pool.start);
        let end = u32::from(pool.end);
        let span = end - start + 1;
        let after = match self.last {
            Some(l) if (start..=end).contains(&u32::from(l)) => u32::from(l) - start + 1,
            _ => 0,
        };
        // At most one pass over the range: bounded by its size, whatever the state holds.
        for step in 0..span {
            let candidate = Ipv4Addr::from(start + (after + step) % span);
            if candidate != pool.gateway && !self.reservations.contains_key(&candidate) {
                return Ok(candidate);
            }
        }
        Err(AllocError::Exhausted {
            start: pool.start,
            end: pool.end,
            reserved: self.reservations.len(),
        })
    }

    /// Releases what `owner` holds; returns it (with its port mappings) so the caller can undo them.
    pub fn release(&mut self, owner: &Attachment) -> Option<(Ipv4Addr, Reservation)> {
        let ip = self.find(owner)?;
        self.reservations.remove(&ip).map(|r| (ip, r))
    }

    /// GC: keeps only reservations of valid attachments; returns the rest.
    pub fn retain_valid(&mut self, valid: &HashSet<Attachment>) -> Vec<(Ipv4Addr, Reservation)> {
        let stale: Vec<Ipv4Addr> = self
            .reservations
            .iter()
            .filter(|(_, r)| !valid.contains(&r.owner))
            .map(|(ip, _)| *ip)
            .collect();
        stale
            .into_iter()
            .filter_map(|ip| self.reservations.remove(&ip).map(|r| (ip, r)))
            .collect()
    }

    /// Addresses still free in the pool.
    pub fn free(&self, pool: &Pool) -> u32 {
        let used = self
            .reservations
            .keys()
            .filter(|ip| pool.contains(**ip))
            .count() as u32;
        pool.size().saturating_sub(used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pool24() -> Pool {
        Pool {
            start: "10.244.1.1".parse().unwrap(),
            end: "10.244.1.254".parse().unwrap(),
            gateway: "10.244.1.1".parse().unwrap(),
        }
    }

    fn att(id: &str) -> Attachment {
        Attachment {
            container_id: id.into(),
            ifname: "eth0".into(),
        }
    }

    #[test]
    fn first_address_skips_the_gateway() {
        let mut s = PoolState::new();
        assert_eq!(
            s.allocate(&pool24(), &att("a"), None).unwrap().to_string(),
            "10.244.1.2"
        );
        assert_eq!(
            s.allocate(&pool24(), &att("b"), None).unwrap().to_string(),
            "10.244.1.3"
        );
    }

    #[test]
    fn same_owner_gets_the_same_address() {
        let mut s = PoolState::new();
        let a = s.allocate(&pool24(), &att("a"), None).unwrap();
        assert_eq!(s.allocate(&pool24(), &att("a"), None).unwrap(), a);
        assert_eq!(s.reservations.len(), 1);
    }

    #[test]
    fn released_addresses_are_not_reused_at_once() {
        let mut s = PoolState::new();
        let a = s.allocate(&pool24(), &att("a"), None).unwrap();
        s.release(&att("a"));
        let b = s.allocate(&pool24(), &att("b"), None).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn exhaustion_is_an_error_and_wraps_around() {
        let pool = Pool {
            start: "10.0.0.1".parse().unwrap(),
            end: "10.0.0.3".parse().unwrap(),
            gateway: "10.0.0.1".parse().unwrap(),
        };
        let mut s = PoolState::new();
        s.allocate(&pool, &att("a"), None).unwrap();
        s.allocate(&pool, &att("b"), None).unwrap();
        assert!(matches!(
            s.allocate(&pool, &att("c"), None),
            Err(AllocError::Exhausted { .. })
        ));
        s.release(&att("a"));
        assert_eq!(
            s.allocate(&pool, &att("c"), None).unwrap().to_string(),
            "10.0.0.2"
        );
        assert_eq!(s.free(&pool), 0);
    }

    #[test]
    fn requested_addresses_are_checked() {
        let mut s = PoolState::new();
        let want: Ipv4Addr = "10.244.1.50".parse().unwrap();
        assert_eq!(s.allocate(&pool24(), &att("a"), Some(want)).unwrap(), want);
        assert!(matches!(
            s.allocate(&pool24(), &att("b"), Some(want)),
            Err(AllocError::RequestedTaken { .. })
        ));
        assert!(matches!(
            s.allocate(&pool24(), &att("b"), Some("10.244.1.1".parse().unwrap())),
            Err(AllocError::RequestedOutsidePool(_))
        ));
    }

    #[test]
    fn a_new_request_moves_the_attachment_instead_of_adding_an_address() {
        let mut s = PoolState::new();
        let first = s.allocate(&pool24(), &att("a"), None).unwrap();
        let want: Ipv4Addr = "10.244.1.50".parse().unwrap();
        assert_eq!(s.allocate(&pool24(), &att("a"), Some(want)).unwrap(), want);
        assert_eq!(s.reservations.len(), 1);
        assert!(!s.reservations.contains_key(&first));
    }

    #[test]
    fn gc_keeps_only_valid_owners() {
        let mut s = PoolState::new();
        for id in ["a", "b", "c"] {
            s.allocate(&pool24(), &att(id), None).unwrap();
        }
        let valid: HashSet<Attachment> = [att("b")].into_iter().collect();
        let gone = s.retain_valid(&valid);
        assert_eq!(gone.len(), 2);
        assert_eq!(s.reservations.len(), 1);
        assert!(s.find(&att("b")).is_some());
    }

    #[test]
    fn state_round_trips_as_json() {
        let mut s = PoolState::new();
        s.allocate(&pool24(), &att("a"), None).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"containerID\":\"a\""), "{json}");
        assert_eq!(serde_json::from_str::<PoolState>(&json).unwrap(), s);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Alloc(u8),
        Release(u8),
        Gc(Vec<u8>),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..40).prop_map(Op::Alloc),
            2 => (0u8..40).prop_map(Op::Release),
            1 => proptest::collection::vec(0u8..40, 0..10).prop_map(Op::Gc),
        ]
    }

    proptest! {
        /// Whatever the sequence of operations: no address is held twice, every address is in the pool
        /// and is not the gateway, an owner holds at most one address, and allocation fails only when the
        /// pool is really full.
        #[test]
        fn allocator_invariants(ops in proptest::collection::vec(op(), 1..200)) {
            let pool = Pool { start: "10.1.0.1".parse().unwrap(), end: "10.1.0.30".parse().unwrap(), gateway: "10.1.0.1".parse().unwrap() };
            let mut s = PoolState::new();
            for op in ops {
                match op {
                    Op::Alloc(i) => match s.allocate(&pool, &att(&i.to_string()), None) {
                        Ok(ip) => prop_assert!(pool.contains(ip)),
                        Err(AllocError::Exhausted { .. }) => prop_assert_eq!(s.free(&pool), 0),
                        Err(e) => prop_assert!(false, "unexpected {}", e),
                    },
                    Op::Release(i) => { s.release(&att(&i.to_string())); }
                    Op::Gc(keep) => {
                        let valid: HashSet<Attachment> = keep.iter().map(|i| att(&i.to_string())).collect();
                        s.retain_valid(&valid);
                        prop_assert!(s.reservations.values().all(|r| valid.contains(&r.owner)));
                    }
                }
                let owners: HashSet<&Attachment> = s.reservations.values().map(|r| &r.owner).collect();
                prop_assert_eq!(owners.len(), s.reservations.len());
                prop_assert!(s.reservations.keys().all(|ip| pool.contains(*ip)));
            }
        }
    }
}

//! ClusterIP and NodePort allocation for Services: no duplicates, random choice like Kubernetes,
//! rebuilt from the stored Services on start.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use rand::Rng;

use crate::config::Cidr;

pub struct Allocator {
    cidr: Cidr,
    ips: HashSet<Ipv4Addr>,
    ports: HashSet<u16>,
    port_range: (u16, u16),
}

/// Why an allocation failed, worded for a field error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocError {
    OutOfRange(String),
    Taken,
    Full(String),
}

impl Allocator {
    pub fn new(cidr: Cidr, port_range: (u16, u16)) -> Self {
        Allocator {
            cidr,
            ips: HashSet::new(),
            ports: HashSet::new(),
            port_range,
        }
    }

    pub fn cidr(&self) -> Cidr {
        self.cidr
    }

    pub fn port_range(&self) -> (u16, u16) {
        self.port_range
    }

    /// Marks an existing allocation (on start).
    pub fn restore_ip(&mut self, ip: Ipv4Addr) {
        self.ips.insert(ip);
    }

    pub fn restore_port(&mut self, port: u16) {
        self.ports.insert(port);
    }

    /// Allocates `want`, or a random free address when `None`. The network and broadcast addresses are
    /// never handed out.
    pub fn allocate_ip(&mut self, want: Option<Ipv4Addr>) -> Result<Ipv4Addr, AllocError> {
        let size = self.cidr.size();
        if let Some(ip) = want {
            match self.cidr.offset(ip) {
                Some(o) if o > 0 && o + 1 < size => {}
                _ => {
                    return Err(AllocError::OutOfRange(format!(
                        "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                        self.cidr
                    )));
                }
            }
            if !self.ips.insert(ip) {
                return Err(AllocError::Taken);
            }
            return Ok(ip);
        }
        if self.ips.len() as u64 + 2 >= size {
            return Err(AllocError::Full(format!(
                "range is full (cidr {})",
                self.cidr
            )));
        }
        let mut rng = rand::rng();
        let start = rng.random_range(1..size - 1);
        for i in 0..size {
            let o = 1 + (start - 1 + i) % (size - 2);
            let ip = self.cidr.nth(o).expect("offset in range");
            if self.ips.insert(ip) {
                return Ok(ip);
            }
        }
        Err(AllocError::Full(format!(
            "range is full (cidr {})",
            self.cidr
        )))
    }

    pub fn release_ip(&mut self, ip: Ipv4Addr) {
        self.ips.remove(&ip);
    }

    pub fn allocate_port(&mut self, want: Option<u16>) -> Result<u16, AllocError> {
        let (lo, hi) = self.port_range;
        if let Some(p) = want {
            if p < lo || p > hi {
                return Err(AllocError::OutOfRange(format!(
                    "provided port is not in the valid range. The range of valid ports is {lo}-{hi}"
                )));
            }
            if !self.ports.insert(p) {
                return Err(AllocError::Taken);
            }
            return Ok(p);
        }
        let n = u32::from(hi - lo) + 1;
        let start = rand::rng().random_range(0..n);
        for i in 0..n {
            let p = lo + ((start + i) % n) as u16;
            if self.ports.insert(p) {
                return Ok(p);
            }
        }
        Err(AllocError::Full(format!("range is full ({lo}-{hi})")))
    }

    pub fn release_port(&mut self, p: u16) {
        self.ports.remove(&p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_duplicates_and_ranges() {
        let mut a = Allocator::new(Cidr::parse("10.96.0.0/29").unwrap(), (30000, 30002));
        assert_eq!(
            a.allocate_ip(Some(Ipv4Addr::new(10, 96, 0, 1))).unwrap(),
            Ipv4Addr::new(10, 96, 0, 1)
        );
        assert_eq!(
            a.allocate_ip(Some(Ipv4Addr::new(10, 96, 0, 1))),
            Err(AllocError::Taken)
        );
        assert!(matches!(
            a.allocate_ip(Some(Ipv4Addr::new(10, 96, 0, 0))),
            Err(AllocError::OutOfRange(_))
        ));
        assert!(matches!(
            a.allocate_ip(Some(Ipv4Addr::new(10, 97, 0, 0))),
            Err(AllocError::OutOfRange(_))
        ));
        let mut got = HashSet::new();
        for _ in 0..5 {
            got.insert(a.allocate_ip(None).unwrap());
        }
        assert_eq!(got.len(), 5);
        assert!(matches!(a.allocate_ip(None), Err(AllocError::Full(_))));
        let ports: HashSet<u16> = (0..3).map(|_| a.allocate_port(None).unwrap()).collect();
        assert_eq!(ports.len(), 3);
        assert!(a.allocate_port(None).is_err());
        a.release_port(30001);
        assert_eq!(a.allocate_port(None).unwrap(), 30001);
        assert!(matches!(
            a.allocate_port(Some(80)),
            Err(AllocError::OutOfRange(_))
        ));
    }
}

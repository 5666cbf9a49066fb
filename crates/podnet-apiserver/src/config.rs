//! The API server's configuration.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::node::NodeConnector;
use crate::pki::Pki;

/// An IPv4 CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = s.split_once('/')?;
        let addr: Ipv4Addr = a.parse().ok()?;
        let prefix: u8 = p.parse().ok()?;
        if prefix > 32 {
            return None;
        }
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        Some(Cidr {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }

    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }

    /// The n-th address of the range.
    pub fn nth(&self, n: u64) -> Option<Ipv4Addr> {
        (n < self.size()).then(|| Ipv4Addr::from(u32::from(self.addr).wrapping_add(n as u32)))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        };
        u32::from(ip) & mask == u32::from(self.addr)
    }

    /// Offset of `ip` in the range.
    pub fn offset(&self, ip: Ipv4Addr) -> Option<u64> {
        self.contains(ip)
            .then(|| u64::from(u32::from(ip) - u32::from(self.addr)))
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Everything the API server needs; see [`Config::new`] for the defaults.
#[derive(Clone)]
pub struct Config {
    /// Where the store lives.
    pub data_dir: PathBuf,
    /// CA, serving certificate and the bearer token clients must present.
    pub pki: Pki,
    /// Service ClusterIPs come from here; the first address is the `kubernetes` service's.
    pub service_cidr: Cidr,
    /// NodePorts come from here (inclusive).
    pub node_port_range: (u16, u16),
    /// The address nodes reach the API server on (the `kubernetes` service's endpoint).
    pub advertise_address: Ipv4Addr,
    pub advertise_port: u16,
    /// Request bodies larger than this get 413.
    pub max_body_bytes: usize,
    /// How the server reaches nodes for pods/log and pods/exec.
    pub node_connector: Arc<dyn NodeConnector>,
    /// `iss` of the tokens the server mints, and the audience it accepts in tokens presented to it.
    pub service_account_issuer: String,
    /// How often the node lifecycle controller looks at node heartbeats (kube-controller-manager's
    /// `--node-monitor-period`).
    pub node_monitor_period: Duration,
    /// A node whose Lease and status go unrenewed this long becomes Unknown and unreachable
    /// (`--node-monitor-grace-period`).
    pub node_monitor_grace_period: Duration,
    /// The same for a node that never reported a Ready condition.
    pub node_startup_grace_period: Duration,
    /// Run the built-in controllers (deployments, replicasets, namespaces, garbage collection, service
    /// accounts, endpoints, scheduler). Benchmarks of the bare API turn them off.
    pub controllers: bool,
    /// Where LoadBalancer Services get their addresses; `None` leaves them pending, as on a cluster
    /// without a load-balancer implementation.
    pub lb_pool: Option<podnet_apimachinery::loadbalancer::Pool>,
}

impl Config {
    /// A configuration with Kubernetes' defaults: service CIDR 10.96.0.0/12, NodePorts 30000-32767,
    /// advertised on 10.100.0.1:6443 (the lab router's underlay address), 3 MiB body limit, nodes reached
    /// over HTTPS on their kubelet port with the lab CA, tokens issued as
    /// `https://kubernetes.default.svc.cluster.local`, nodes unreachable after 40 s without a heartbeat.
    pub fn new(data_dir: PathBuf, pki: Pki) -> Config {
        let connector = Arc::new(crate::node::HttpsNodeConnector::new(&pki));
        Config {
            data_dir,
            pki,
            service_cidr: Cidr::parse("10.96.0.0/12").expect("valid default CIDR"),
            node_port_range: (30000, 32767),
            advertise_address: Ipv4Addr::new(10, 100, 0, 1),
            advertise_port: 6443,
            max_body_bytes: 3 * 1024 * 1024,
            node_connector: connector,
            service_account_issuer: crate::auth::DEFAULT_ISSUER.to_string(),
            node_monitor_period: Duration::from_secs(5),
            node_monitor_grace_period: Duration::from_secs(40),
            node_startup_grace_period: Duration::from_secs(60),
            controllers: true,
            lb_pool: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.96.0.0/12").unwrap();
        assert_eq!(c.nth(1), Some(Ipv4Addr::new(10, 96, 0, 1)));
        assert!(c.contains(Ipv4Addr::new(10, 111, 255, 255)));
        assert!(!c.contains(Ipv4Addr::new(10, 112, 0, 0)));
        assert_eq!(c.offset(Ipv4Addr::new(10, 96, 1, 0)), Some(256));
        assert_eq!(
            Cidr::parse("10.96.1.7/12").unwrap().addr,
            Ipv4Addr::new(10, 96, 0, 0)
        );
        assert!(Cidr::parse("10.0.0.0/33").is_none());
    }
}

//! Stale UDP conntrack entries, as kube-proxy removes them.
//!
//! UDP has no connection end, so conntrack keeps sending a client's datagrams to the endpoint it first
//! chose (or nowhere, if they arrived while the service had no endpoint) for as long as the client keeps
//! talking: kubernetes#48370. When a UDP endpoint goes away its entries are deleted, and when a UDP
//! service port gains its first endpoint every entry to the service's addresses is deleted. Deleting is
//! best effort: errors are logged, never fatal.

use super::model::{PortState, Protocol, ServiceState};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// A set of UDP conntrack entries to delete.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flow {
    /// Entries whose original destination is `ip:port`; only those NATed to `endpoint` if given.
    Address {
        ip: Ipv4Addr,
        port: u16,
        endpoint: Option<Ipv4Addr>,
    },
    /// Entries to node port `port` on any local address; only those NATed to `endpoint` if given.
    NodePort {
        port: u16,
        endpoint: Option<Ipv4Addr>,
    },
}

impl Flow {
    /// The `conntrack` arguments that delete these entries.
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = ["-D", "-p", "udp"].map(String::from).to_vec();
        let endpoint = match self {
            Flow::Address { ip, port, endpoint } => {
                a.extend([
                    "--orig-dst".into(),
                    ip.to_string(),
                    "--orig-port-dst".into(),
                    port.to_string(),
                ]);
                endpoint
            }
            Flow::NodePort { port, endpoint } => {
                a.extend(["--orig-port-dst".into(), port.to_string()]);
                endpoint
            }
        };
        if let Some(ep) = endpoint {
            a.extend(["--dst-nat".into(), ep.to_string()]);
        }
        a
    }
}

/// The flows made stale by a Service's change from `old` to `new` (either may be absent).
pub fn stale_flows(old: Option<&ServiceState>, new: Option<&ServiceState>) -> Vec<Flow> {
    let udp = |s: Option<&ServiceState>| -> Vec<PortState> {
        s.map(|s| {
            s.ports
                .iter()
                .filter(|p| p.protocol == Protocol::Udp)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
    };
    let (old, new) = (udp(old), udp(new));
    let mut flows = Vec::new();
    let addresses = |p: &PortState, endpoint: Option<Ipv4Addr>, out: &mut Vec<Flow>| {
        for ip in p.cluster_ip.iter().chain(&p.external_ips) {
            out.push(Flow::Address {
                ip: *ip,
                port: p.port,
                endpoint,
            });
        }
        if let Some(np) = p.node_port {
            out.push(Flow::NodePort { port: np, endpoint });
        }
    };
    for o in &old {
        let n = new.iter().find(|n| n.port == o.port);
        let still: Vec<Ipv4Addr> = n
            .map(|n| n.reachable_endpoints().iter().map(|e| e.ip).collect())
            .unwrap_or_default();
        let mut gone: Vec<Ipv4Addr> = o
            .reachable_endpoints()
            .iter()
            .map(|e| e.ip)
            .filter(|ip| !still.contains(ip))
            .collect();
        gone.dedup();
        for ip in gone {
            addresses(o, Some(ip), &mut flows);
        }
    }
    for n in &new {
        let had = old
            .iter()
            .find(|o| o.port == n.port)
            .is_some_and(|o| o.has_endpoints());
        if n.has_endpoints() && !had {
            addresses(n, None, &mut flows);
        }
    }
    flows.sort();
    flows.dedup();
    flows
}

/// Deletes the entries of `flows` in the calling thread's network namespace with Debian's
/// `conntrack` tool. Returns one message per failure; "0 flow entries" is not one.
pub fn delete(flows: &[Flow]) -> Vec<String> {
    let mut errors = Vec::new();
    for f in flows {
        let args = f.args();
        match Command::new(conntrack_binary())
            .args(&args)
            .stdin(Stdio::null())
            .output()
        {
            // conntrack exits 1 when nothing matched; its stderr then says "0 flow entries".
            Ok(out) if out.status.success() => {}
            Ok(out) if String::from_utf8_lossy(&out.stderr).contains("0 flow entries") => {}
            Ok(out) => errors.push(format!(
                "conntrack {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => errors.push(format!("run conntrack {}: {e}", args.join(" "))),
        }
    }
    errors
}

fn conntrack_binary() -> std::path::PathBuf {
    ["/usr/sbin/conntrack", "/sbin/conntrack"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| "conntrack".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::model::Endpoint;

    fn state(eps: &[&str], node_port: Option<u16>) -> ServiceState {
        ServiceState {
            ports: vec![PortState {
                protocol: Protocol::Udp,
                port: 53,
                cluster_ip: Some("10.96.0.10".parse().unwrap()),
                node_port,
                external_ips: vec![],
                cluster_endpoints: eps
                    .iter()
                    .map(|ip| Endpoint {
                        ip: ip.parse().unwrap(),
                        port: 5353,
                    })
                    .collect(),
                local_endpoints: vec![],
                internal_local: false,
                external_local: false,
                affinity: None,
            }],
        }
    }

    #[test]
    fn removed_endpoint_and_first_endpoint() {
        let a = state(&["10.244.1.5", "10.244.1.6"], Some(30053));
        let b = state(&["10.244.1.6"], Some(30053));
        assert_eq!(
            stale_flows(Some(&a), Some(&b)),
            vec![
                Flow::Address {
                    ip: "10.96.0.10".parse().unwrap(),
                    port: 53,
                    endpoint: Some("10.244.1.5".parse().unwrap())
                },
                Flow::NodePort {
                    port: 30053,
                    endpoint: Some("10.244.1.5".parse().unwrap())
                },
            ]
        );
        let none = state(&[], None);
        let one = state(&["10.244.1.6"], None);
        assert_eq!(
            stale_flows(Some(&none), Some(&one)),
            vec![Flow::Address {
                ip: "10.96.0.10".parse().unwrap(),
                port: 53,
                endpoint: None
            }]
        );
        assert!(stale_flows(Some(&one), Some(&one)).is_empty());
        assert_eq!(stale_flows(Some(&one), None).len(), 1);
    }

    #[test]
    fn tcp_is_left_alone() {
        let mut a = state(&["10.244.1.5"], None);
        a.ports[0].protocol = Protocol::Tcp;
        assert!(stale_flows(Some(&a), None).is_empty());
    }

    #[test]
    fn arguments() {
        let f = Flow::Address {
            ip: "10.96.0.10".parse().unwrap(),
            port: 53,
            endpoint: Some("10.244.1.5".parse().unwrap()),
        };
        assert_eq!(
            f.args().join(" "),
            "-D -p udp --orig-dst 10.96.0.10 --orig-port-dst 53 --dst-nat 10.244.1.5"
        );
    }
}

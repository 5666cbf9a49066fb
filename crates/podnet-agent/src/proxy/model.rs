//! What the proxy should program, from API objects alone (pure, no IO).
//!
//! The semantics are kube-proxy's: ready endpoints, and only when none is ready the serving and
//! terminating ones (KEP-1669); `internalTrafficPolicy: Local` and `externalTrafficPolicy: Local` use
//! this node's endpoints only; headless, ExternalName and Services claimed by another proxy (label
//! `service.kubernetes.io/service-proxy-name`) are left alone. IPv4 only.

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

/// The label that hands a Service to another proxy implementation.
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";
/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// kube-proxy's default ClientIP affinity timeout (3 hours).
pub const DEFAULT_AFFINITY_SECONDS: u32 = 10_800;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> ServiceKey {
        ServiceKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The API's spelling (`TCP` when absent, as the API server defaults it).
    pub fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// nftables' spelling (`meta l4proto`, `inet_proto` keys).
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One usable endpoint of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
}

/// The desired state of one service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortState {
    pub protocol: Protocol,
    pub port: u16,
    pub cluster_ip: Option<Ipv4Addr>,
    pub node_port: Option<u16>,
    /// Load-balancer ingress IPs and spec.externalIPs: dispatched like the cluster IP, with the
    /// external traffic policy (issue 14 adds the addresses themselves to nodes).
    pub external_ips: Vec<Ipv4Addr>,
    /// Endpoints for "Cluster" policy: ready ones anywhere, or the serving+terminating ones if none
    /// is ready. Sorted.
    pub cluster_endpoints: Vec<Endpoint>,
    /// Endpoints for "Local" policy: this node's ready ones, or its serving+terminating ones if none
    /// of them is ready. Sorted.
    pub local_endpoints: Vec<Endpoint>,
    pub internal_local: bool,
    pub external_local: bool,
    /// ClientIP affinity timeout in seconds.
    pub affinity: Option<u32>,
}

impl PortState {
    /// Whether traffic to node ports or external addresses reaches this port.
    pub fn external(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty()
    }

    /// Whether any endpoint anywhere can serve (otherwise connections are rejected).
    pub fn has_endpoints(&self) -> bool {
        !self.cluster_endpoints.is_empty()
    }

    /// Every endpoint some chain of this port sends to.
    pub fn reachable_endpoints(&self) -> BTreeSet<Endpoint> {
        let mut all = BTreeSet::new();
        if self.uses_cluster_chain() {
            all.extend(self.cluster_endpoints.iter().copied());
        }
        if self.uses_local_chain() {
            all.extend(self.local_endpoints.iter().copied());
        }
        all
    }

    /// The cluster-policy chain serves internal traffic (iTP Cluster), external traffic (eTP Cluster),
    /// and pod/node traffic short-circuited from the external chain under eTP Local.
    pub fn uses_cluster_chain(&self) -> bool {
        self.has_endpoints() && (!self.internal_local || self.external())
    }

    pub fn uses_local_chain(&self) -> bool {
        !self.local_endpoints.is_empty()
            && (self.internal_local || (self.external() && self.external_local))
    }
}

/// The desired state of one Service: its ports, sorted by (protocol, port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceState {
    pub ports: Vec<PortState>,
}

/// Why a Service is not proxied (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    ExternalName,
    Headless,
    OtherProxy,
    NoClusterIp,
}

/// The desired state of `svc` given the EndpointSlices that name it (others are ignored), as seen
/// from node `node`.
pub fn service_state(
    svc: &Service,
    slices: &[&EndpointSlice],
    node: &str,
) -> Result<ServiceState, Skip> {
    let labels = svc.metadata.labels.as_ref();
    if labels.is_some_and(|l| l.contains_key(SERVICE_PROXY_NAME_LABEL)) {
        return Err(Skip::OtherProxy);
    }
    let Some(spec) = svc.spec.as_ref() else {
        return Err(Skip::NoClusterIp);
    };
    let type_ = spec.type_.as_deref().unwrap_or("ClusterIP");
    if type_ == "ExternalName" {
        return Err(Skip::ExternalName);
    }
    if spec.cluster_ip.as_deref() == Some("None") {
        return Err(Skip::Headless);
    }
    let cluster_ip = spec
        .cluster_ips
        .iter()
        .flatten()
        .chain(spec.cluster_ip.iter())
        .find_map(|s| s.parse::<Ipv4Addr>().ok());
    let Some(cluster_ip) = cluster_ip else {
        return Err(Skip::NoClusterIp);
    };
    let node_ports = matches!(type_, "NodePort" | "LoadBalancer");
    let mut external_ips: Vec<Ipv4Addr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|s| s.parse().ok())
        .collect();
    if type_ == "LoadBalancer" {
        let ingress = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref());
        external_ips.extend(
            ingress
                .into_iter()
                .flatten()
                .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
                .filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok()),
        );
    }
    external_ips.sort();
    external_ips.dedup();
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
    let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_AFFINITY_SECONDS)
    });
    let mut ports = Vec::new();
    for sp in spec.ports.iter().flatten() {
        let (Some(protocol), Ok(port)) = (
            Protocol::parse(sp.protocol.as_deref()),
            u16::try_from(sp.port),
        ) else {
            continue;
        };
        let (cluster_endpoints, local_endpoints) = endpoints_for(sp, protocol, slices, node);
        let external = !external_ips.is_empty() || node_ports;
        ports.push(PortState {
            protocol,
            port,
            cluster_ip: Some(cluster_ip),
            node_port: sp
                .node_port
                .filter(|_| node_ports)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0),
            external_ips: external_ips.clone(),
            cluster_endpoints,
            local_endpoints,
            internal_local,
            external_local: external_local && external,
            affinity,
        });
    }
    ports.sort_by_key(|p| (p.protocol, p.port));
    ports.dedup_by_key(|p| (p.protocol, p.port));
    Ok(ServiceState { ports })
}

struct Candidate {
    ep: Endpoint,
    ready: bool,
    serving_terminating: bool,
    local: bool,
}

/// Picks the endpoints of one service port: matched to slice ports by name and protocol, IPv4 slices
/// only, the first address of each endpoint (as kube-proxy does), duplicates across slices merged.
fn endpoints_for(
    sp: &ServicePort,
    protocol: Protocol,
    slices: &[&EndpointSlice],
    node: &str,
) -> (Vec<Endpoint>, Vec<Endpoint>) {
    let want_name = sp.name.as_deref().unwrap_or("");
    let mut candidates: Vec<Candidate> = Vec::new();
    for slice in slices.iter().filter(|s| s.address_type == "IPv4") {
        let Some(target) = slice.ports.iter().flatten().find_map(|p| {
            let name = p.name.as_deref().unwrap_or("");
            (name == want_name && Protocol::parse(p.protocol.as_deref()) == Some(protocol))
                .then_some(p.port)
                .flatten()
                .and_then(|p| u16::try_from(p).ok())
        }) else {
            continue;
        };
        for e in &slice.endpoints {
            let Some(ip) = e.addresses.first().and_then(|a| a.parse::<Ipv4Addr>().ok()) else {
                continue;
            };
            let c = e.conditions.as_ref();
            let ready = c.and_then(|c| c.ready).unwrap_or(true);
            let serving = c.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
            candidates.push(Candidate {
                ep: Endpoint { ip, port: target },
                ready,
                serving_terminating: serving && terminating,
                local: e.node_name.as_deref() == Some(node),
            });
        }
    }
    let pick = |only_local: bool| -> Vec<Endpoint> {
        let eligible = || candidates.iter().filter(|c| !only_local || c.local);
        let mut out: Vec<Endpoint> = eligible().filter(|c| c.ready).map(|c| c.ep).collect();
        if out.is_empty() {
            out = eligible()
                .filter(|c| c.serving_terminating)
                .map(|c| c.ep)
                .collect();
        }
        out.sort();
        out.dedup();
        out
    };
    (pick(false), pick(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ClientIPConfig, LoadBalancerIngress, LoadBalancerStatus, ServiceSpec, ServiceStatus,
        SessionAffinityConfig,
    };
    use k8s_openapi::api::discovery::v1::{
        Endpoint as SliceEndpoint, EndpointConditions, EndpointPort,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn svc(type_: &str, ports: &[(&str, &str, i32, Option<i32>)]) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some("default".into()),
                name: Some("web".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some(type_.into()),
                cluster_ip: Some("10.96.0.20".into()),
                cluster_ips: Some(vec!["10.96.0.20".into()]),
                ports: Some(
                    ports
                        .iter()
                        .map(|(name, proto, port, np)| ServicePort {
                            name: Some(name.to_string()),
                            protocol: Some(proto.to_string()),
                            port: *port,
                            node_port: *np,
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn ep(
        ip: &str,
        node: &str,
        ready: Option<bool>,
        serving: Option<bool>,
        term: Option<bool>,
    ) -> SliceEndpoint {
        SliceEndpoint {
            addresses: vec![ip.into()],
            node_name: Some(node.into()),
            conditions: Some(EndpointConditions {
                ready,
                serving,
                terminating: term,
            }),
            ..Default::default()
        }
    }

    fn slice(ports: &[(&str, &str, i32)], endpoints: Vec<SliceEndpoint>) -> EndpointSlice {
        EndpointSlice {
            address_type: "IPv4".into(),
            endpoints,
            metadata: ObjectMeta::default(),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p, port)| EndpointPort {
                        name: Some(n.to_string()),
                        protocol: Some(p.to_string()),
                        port: Some(*port),
                        ..Default::default()
                    })
                    .collect(),
            ),
        }
    }

    fn e(ip: &str, port: u16) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn ready_endpoints_matched_by_port_name_and_protocol() {
        let s = svc(
            "ClusterIP",
            &[("http", "TCP", 80, None), ("dns", "UDP", 53, None)],
        );
        let sl = slice(
            &[("http", "TCP", 8080), ("dns", "UDP", 5353)],
            vec![
                ep("10.244.1.5", "n1", Some(true), None, None),
                ep("10.244.2.5", "n2", None, None, None),
                ep("10.244.2.6", "n2", Some(false), Some(false), Some(false)),
            ],
        );
        let st = service_state(&s, &[&sl], "n1").unwrap();
        assert_eq!(st.ports.len(), 2);
        let tcp = &st.ports[0];
        assert_eq!((tcp.protocol, tcp.port), (Protocol::Tcp, 80));
        assert_eq!(
            tcp.cluster_endpoints,
            vec![e("10.244.1.5", 8080), e("10.244.2.5", 8080)]
        );
        assert_eq!(tcp.local_endpoints, vec![e("10.244.1.5", 8080)]);
        let udp = &st.ports[1];
        assert_eq!(udp.cluster_endpoints[0].port, 5353);
    }

    #[test]
    fn terminating_endpoints_only_when_none_ready() {
        let s = svc("ClusterIP", &[("", "TCP", 80, None)]);
        let terminating = ep("10.244.1.9", "n1", Some(false), Some(true), Some(true));
        let not_serving = ep("10.244.1.8", "n1", Some(false), Some(false), Some(true));
        let only_term = slice(
            &[("", "TCP", 80)],
            vec![terminating.clone(), not_serving.clone()],
        );
        let st = service_state(&s, &[&only_term], "n1").unwrap();
        assert_eq!(st.ports[0].cluster_endpoints, vec![e("10.244.1.9", 80)]);
        let with_ready = slice(
            &[("", "TCP", 80)],
            vec![
                terminating,
                not_serving,
                ep("10.244.2.2", "n2", Some(true), None, None),
            ],
        );
        let st = service_state(&s, &[&with_ready], "n1").unwrap();
        assert_eq!(st.ports[0].cluster_endpoints, vec![e("10.244.2.2", 80)]);
        // Locally nothing is ready, so the local set falls back to this node's terminating one.
        assert_eq!(st.ports[0].local_endpoints, vec![e("10.244.1.9", 80)]);
    }

    #[test]
    fn traffic_policies_and_affinity() {
        let mut s = svc("NodePort", &[("", "TCP", 80, Some(30080))]);
        let spec = s.spec.as_mut().unwrap();
        spec.internal_traffic_policy = Some("Local".into());
        spec.external_traffic_policy = Some("Local".into());
        spec.session_affinity = Some("ClientIP".into());
        spec.session_affinity_config = Some(SessionAffinityConfig {
            client_ip: Some(ClientIPConfig {
                timeout_seconds: Some(60),
            }),
        });
        let sl = slice(
            &[("", "TCP", 80)],
            vec![ep("10.244.2.5", "n2", Some(true), None, None)],
        );
        let st = service_state(&s, &[&sl], "n1").unwrap();
        let p = &st.ports[0];
        assert!(p.internal_local && p.external_local);
        assert_eq!(p.node_port, Some(30080));
        assert_eq!(p.affinity, Some(60));
        assert!(p.has_endpoints());
        assert!(p.local_endpoints.is_empty());
        // eTP Local keeps the cluster chain for pod and node traffic short-circuited to it.
        assert!(p.uses_cluster_chain());
        assert!(!p.uses_local_chain());
        s.spec.as_mut().unwrap().session_affinity_config = None;
        assert_eq!(
            service_state(&s, &[&sl], "n1").unwrap().ports[0].affinity,
            Some(DEFAULT_AFFINITY_SECONDS)
        );
    }

    #[test]
    fn cluster_ip_services_ignore_node_ports_and_external_policy() {
        let mut s = svc("ClusterIP", &[("", "TCP", 80, Some(30080))]);
        s.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
        let p = &service_state(&s, &[], "n1").unwrap().ports[0];
        assert_eq!(p.node_port, None);
        assert!(!p.external_local);
        assert!(!p.has_endpoints());
    }

    #[test]
    fn load_balancer_ingress_ips_are_external_addresses() {
        let mut s = svc("LoadBalancer", &[("", "TCP", 80, Some(30080))]);
        s.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![
                    LoadBalancerIngress {
                        ip: Some("192.0.2.10".into()),
                        ..Default::default()
                    },
                    LoadBalancerIngress {
                        hostname: Some("lb.example".into()),
                        ..Default::default()
                    },
                ]),
            }),
            ..Default::default()
        });
        let p = &service_state(&s, &[], "n1").unwrap().ports[0];
        assert_eq!(
            p.external_ips,
            vec!["192.0.2.10".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!(p.node_port, Some(30080));
    }

    #[test]
    fn skipped_services() {
        let mut headless = svc("ClusterIP", &[("", "TCP", 80, None)]);
        headless.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        headless.spec.as_mut().unwrap().cluster_ips = Some(vec!["None".into()]);
        assert_eq!(service_state(&headless, &[], "n1"), Err(Skip::Headless));
        let mut ext = svc("ExternalName", &[]);
        ext.spec.as_mut().unwrap().cluster_ip = None;
        assert_eq!(service_state(&ext, &[], "n1"), Err(Skip::ExternalName));
        let mut other = svc("ClusterIP", &[("", "TCP", 80, None)]);
        other.metadata.labels =
            Some([(SERVICE_PROXY_NAME_LABEL.to_string(), "x".to_string())].into());
        assert_eq!(service_state(&other, &[], "n1"), Err(Skip::OtherProxy));
        let mut v6 = svc("ClusterIP", &[("", "TCP", 80, None)]);
        v6.spec.as_mut().unwrap().cluster_ip = Some("fd00::1".into());
        v6.spec.as_mut().unwrap().cluster_ips = Some(vec!["fd00::1".into()]);
        assert_eq!(service_state(&v6, &[], "n1"), Err(Skip::NoClusterIp));
    }

    #[test]
    fn ipv6_slices_are_ignored() {
        let s = svc("ClusterIP", &[("", "TCP", 80, None)]);
        let mut sl = slice(
            &[("", "TCP", 80)],
            vec![ep("10.244.1.5", "n1", None, None, None)],
        );
        sl.address_type = "IPv6".into();
        assert!(
            service_state(&s, &[&sl], "n1").unwrap().ports[0]
                .cluster_endpoints
                .is_empty()
        );
    }
}

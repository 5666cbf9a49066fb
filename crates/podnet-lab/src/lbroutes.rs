//! The router as the lab's cloud load balancer: every LoadBalancer Service's address (from the pool,
//! written into its status by the control plane's `service-lb` controller) gets a /32 route on the
//! router to one node, and the router answers ARP for it on its internet side (`proxy_arp`), so the
//! internet host reaches the address as it would a cloud's. This is MetalLB's layer-2 mode with the
//! router in the switch's place: one node per address (the node's service proxy spreads the traffic
//! over every endpoint), chosen among the Ready nodes; with `externalTrafficPolicy: Local` only among
//! nodes with a ready endpoint of the Service, so the client's address reaches the pod. A route stays
//! on its node while that node is still eligible (no established connection is moved).
//!
//! The plan is pure ([`plan`]); [`run`] watches Services, EndpointSlices and Nodes in the in-process
//! API server and applies the plan's difference to the router's routes, which carry their own
//! protocol number ([`RTPROT_PODNET_LB`]) so the lab's routing reconciler and this one never touch
//! each other's routes.

use crate::error::{Result, nl, ns};
use crate::paths::LabPaths;
use crate::state::LabState;
use ipnet::{IpNet, Ipv4Net};
use podnet_apimachinery::loadbalancer::{self, Pool};
use podnet_apimachinery::{object, resources};
use podnet_netlink::{Netlink, RT_TABLE_MAIN, Route};
use podnet_netns::{NetNs, persist, sysctl};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The rtnetlink protocol number of the load-balancer routes (podnet's own routes use 112).
pub const RTPROT_PODNET_LB: u8 = 113;
/// The router's link to the internet host (made by `underlay::build_internet`).
const INTERNET_LINK: &str = "internet";
/// A full pass even without events: repairs routes changed by hand.
const RESYNC: Duration = Duration::from_secs(10);
/// Events arriving this close together make one pass.
const BATCH: Duration = Duration::from_millis(20);

/// A node as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub underlay_ip: Ipv4Addr,
    pub ready: bool,
}

/// Where each pool address should be routed: address -> node underlay address. `current` is what
/// the router has now (kept where still eligible).
pub fn plan(
    pool: &Pool,
    services: &[Value],
    slices: &[Value],
    nodes: &[NodeInfo],
    current: &BTreeMap<Ipv4Addr, Ipv4Addr>,
) -> BTreeMap<Ipv4Addr, Ipv4Addr> {
    let ready: Vec<&NodeInfo> = nodes.iter().filter(|n| n.ready).collect();
    let mut out = BTreeMap::new();
    for svc in services {
        if object::str_at(svc, "spec.type") != Some("LoadBalancer") || object::is_deleting(svc) {
            continue;
        }
        let ips = loadbalancer::held(pool, svc);
        if ips.is_empty() {
            continue;
        }
        let eligible: Vec<Ipv4Addr> =
            if object::str_at(svc, "spec.externalTrafficPolicy") == Some("Local") {
                let with_endpoints = ready_endpoint_nodes(svc, slices);
                ready
                    .iter()
                    .filter(|n| with_endpoints.contains(n.name.as_str()))
                    .map(|n| n.underlay_ip)
                    .collect()
            } else {
                ready.iter().map(|n| n.underlay_ip).collect()
            };
        if eligible.is_empty() {
            continue;
        }
        for ip in ips {
            let node = match current.get(&ip) {
                Some(n) if eligible.contains(n) => *n,
                // spread addresses over nodes by the address itself: stable across restarts
                _ => eligible[(u32::from(ip) as usize) % eligible.len()],
            };
            out.insert(ip, node);
        }
    }
    out
}

/// Nodes holding a ready endpoint of `svc` (EndpointSlices labelled with its name).
fn ready_endpoint_nodes(svc: &Value, slices: &[Value]) -> BTreeSet<String> {
    let (ns, name) = (object::namespace(svc), object::name(svc));
    slices
        .iter()
        .filter(|s| object::namespace(s) == ns)
        .filter(|s| {
            object::labels(s)
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .and_then(Value::as_str)
                == Some(name)
        })
        .filter_map(|s| s.get("endpoints").and_then(Value::as_array))
        .flatten()
        .filter(|e| e.pointer("/conditions/ready") != Some(&Value::Bool(false)))
        .filter_map(|e| e.get("nodeName")?.as_str().map(str::to_string))
        .collect()
}

fn node_ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// The load-balancer routes the router has now.
fn current_routes(nl_: &mut Netlink) -> Result<BTreeMap<Ipv4Addr, Route>> {
    Ok(nl_
        .routes(false, RT_TABLE_MAIN)
        .map_err(nl("list the router's routes"))?
        .into_iter()
        .filter(|r| r.protocol == RTPROT_PODNET_LB)
        .filter_map(|r| match r.dst {
            IpNet::V4(n) if n.prefix_len() == 32 => Some((n.addr(), r)),
            _ => None,
        })
        .collect())
}

fn lb_route(ip: Ipv4Addr, node: Ipv4Addr) -> Route {
    let mut r = Route::new(IpNet::V4(Ipv4Net::new(ip, 32).expect("/32"))).via(IpAddr::V4(node));
    r.protocol = RTPROT_PODNET_LB;
    r
}

/// One pass: reads the objects, plans, and changes only the routes that differ. Returns the changes
/// made, as `ip route` would say them.
fn sync_once(
    api: &podnet_apiserver::registry::Api,
    pool: &Pool,
    state: &LabState,
    nl_: &mut Netlink,
) -> Result<Vec<String>> {
    let def = |group: &str, plural: &str| resources::find(group, "v1", plural).expect("served");
    let services = api.list_values(def("", "services"), None);
    let slices = api.list_values(def("discovery.k8s.io", "endpointslices"), None);
    let node_objs = api.list_values(def("", "nodes"), None);
    let nodes: Vec<NodeInfo> = state
        .plan
        .nodes
        .iter()
        .map(|n| NodeInfo {
            name: n.name.clone(),
            underlay_ip: n.underlay_ip,
            ready: node_objs
                .iter()
                .any(|o| object::name(o) == n.name && node_ready(o)),
        })
        .collect();
    let have = current_routes(nl_)?;
    let current: BTreeMap<Ipv4Addr, Ipv4Addr> = have
        .iter()
        .filter_map(|(ip, r)| match r.gateway {
            Some(IpAddr::V4(gw)) => Some((*ip, gw)),
            _ => None,
        })
        .collect();
    let want = plan(pool, &services, &slices, &nodes, &current);
    let mut changes = Vec::new();
    for (ip, r) in &have {
        if !want.contains_key(ip) {
            nl_.delete_route(r)
                .map_err(nl(format!("delete the load-balancer route to {ip}")))?;
            changes.push(format!("- {ip}"));
        }
    }
    for (ip, node) in &want {
        if current.get(ip) != Some(node) {
            nl_.add_route(&lb_route(*ip, *node), true)
                .map_err(nl(format!("route load-balancer address {ip} via {node}")))?;
            changes.push(format!("+ {ip} via {node}"));
        }
    }
    Ok(changes)
}

/// Runs the router's load-balancer routing until `stop`; the thread it starts logs each change and
/// each failure (then retries on the next event or resync).
pub fn start(
    paths: &LabPaths,
    state: &LabState,
    api: Arc<podnet_apiserver::registry::Api>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    let pool = Pool {
        first: state.plan.spec.lb_pool.first,
        last: state.plan.spec.lb_pool.last,
    };
    let router_path = persist::netns_path(&paths.router_netns());
    let router =
        NetNs::open(&router_path).map_err(ns(format!("open {}", router_path.display())))?;
    // The internet host ARPs for pool addresses on its own segment: the router answers for those it
    // routes elsewhere (and only those: it has no default route).
    router
        .run(|| sysctl::ensure(&["net", "ipv4", "conf", INTERNET_LINK, "proxy_arp"], "1"))
        .map_err(ns("enter the router"))?
        .map_err(ns("turn on proxy ARP on the router's internet link"))?;
    let mut nl_ = router.netlink().map_err(ns("open netlink in the router"))?;
    let state = state.clone();
    let name = paths.name.clone();
    std::thread::Builder::new()
        .name("lb-routes".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("podnet lab daemon {name}: load-balancer routes: runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
                for res in ["services", "discovery.k8s.io/endpointslices", "nodes"] {
                    let Ok(mut w) = api.store.watch(res, None, None) else {
                        continue;
                    };
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        // a lagged watch is just another reason to look again
                        while !matches!(w.next().await, Ok(None)) {
                            let _ = tx.try_send(());
                        }
                    });
                }
                while !stop.load(Ordering::SeqCst) {
                    match sync_once(&api, &pool, &state, &mut nl_) {
                        Ok(changes) => {
                            for c in changes {
                                eprintln!("podnet lab daemon {name}: load-balancer route {c}");
                            }
                        }
                        Err(e) => {
                            eprintln!("podnet lab daemon {name}: load-balancer routes: {e}")
                        }
                    }
                    let _ = tokio::time::timeout(RESYNC, rx.recv()).await;
                    tokio::time::sleep(BATCH).await;
                    while rx.try_recv().is_ok() {}
                }
            });
        })
        .map_err(crate::error::io("start the load-balancer routing thread"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pool() -> Pool {
        Pool {
            first: Ipv4Addr::new(203, 0, 113, 100),
            last: Ipv4Addr::new(203, 0, 113, 199),
        }
    }

    fn nodes() -> Vec<NodeInfo> {
        (1..=3)
            .map(|i| NodeInfo {
                name: format!("node{i}"),
                underlay_ip: Ipv4Addr::new(10, 100, 0, 1 + i),
                ready: i != 3,
            })
            .collect()
    }

    fn lb(name: &str, ip: &str, local: bool) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer",
                     "externalTrafficPolicy": if local { "Local" } else { "Cluster" }},
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
        })
    }

    fn slice(svc: &str, eps: &[(&str, bool)]) -> Value {
        json!({
            "metadata": {"name": format!("{svc}-x"), "namespace": "default",
                         "labels": {"kubernetes.io/service-name": svc}},
            "endpoints": eps.iter().map(|(n, r)| json!({
                "addresses": ["10.244.1.5"], "nodeName": n, "conditions": {"ready": r}
            })).collect::<Vec<_>>(),
        })
    }

    const N1: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 2);
    const N2: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 3);

    #[test]
    fn cluster_policy_goes_to_a_ready_node_and_stays_there() {
        let svcs = [
            lb("a", "203.0.113.100", false),
            lb("b", "203.0.113.101", false),
        ];
        let p = plan(&pool(), &svcs, &[], &nodes(), &BTreeMap::new());
        let a = Ipv4Addr::new(203, 0, 113, 100);
        let b = Ipv4Addr::new(203, 0, 113, 101);
        // node3 is not Ready: never chosen; the two addresses land on different nodes
        assert_eq!(p.len(), 2);
        assert!(p.values().all(|n| *n == N1 || *n == N2));
        assert_ne!(p[&a], p[&b]);
        // a route already on an eligible node stays
        let cur = BTreeMap::from([(a, N2), (b, N2)]);
        assert_eq!(plan(&pool(), &svcs, &[], &nodes(), &cur)[&a], N2);
        assert_eq!(plan(&pool(), &svcs, &[], &nodes(), &cur)[&b], N2);
    }

    #[test]
    fn local_policy_only_to_nodes_with_ready_endpoints() {
        let svcs = [lb("a", "203.0.113.100", true)];
        let a = Ipv4Addr::new(203, 0, 113, 100);
        let slices = [slice("a", &[("node2", true), ("node1", false)])];
        let p = plan(
            &pool(),
            &svcs,
            &slices,
            &nodes(),
            &BTreeMap::from([(a, N1)]),
        );
        assert_eq!(p[&a], N2, "moved off node1, whose endpoint is not ready");
        // no ready endpoint anywhere: no route (the address is unreachable, as with MetalLB)
        let none = [slice("a", &[("node1", false)])];
        assert!(plan(&pool(), &svcs, &none, &nodes(), &BTreeMap::new()).is_empty());
        // another Service's endpoints do not count
        let other = [slice("b", &[("node1", true)])];
        assert!(plan(&pool(), &svcs, &other, &nodes(), &BTreeMap::new()).is_empty());
    }

    #[test]
    fn only_pool_addresses_of_load_balancers() {
        let mut c = lb("c", "203.0.113.100", false);
        c["spec"]["type"] = json!("ClusterIP");
        let svcs = [lb("a", "198.51.100.7", false), c];
        assert!(plan(&pool(), &svcs, &[], &nodes(), &BTreeMap::new()).is_empty());
    }
}

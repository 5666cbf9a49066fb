//! The nftables objects of the service proxy and the transaction text that creates them (pure).
//!
//! One table, `ip podnet-services` by default. A packet meets a constant number of rules whatever the
//! number of Services: `services` dispatches on `daddr . l4proto . dport` through the `service-ips`
//! verdict map (cluster IPs and external addresses) and on `l4proto . dport` through `service-nodeports`
//! for packets to a local address; the target is one chain per service port, named after the Service
//! (`svc-default/web-tcp-80`), whose one DNAT rule picks an endpoint at random from the port's block
//! of slots in an `endpoints-K` map (`dnat to numgen random mod N offset B map @endpoints-K`, see
//! [`Blocks`]); a pod sent back to itself is masqueraded by one lookup of `hairpin` in postrouting.
//! Ports with session affinity, or lists of more than [`MAX_MAPPED_ENDPOINTS`], use endpoint chains
//! (`ep-default/web-tcp-80-10.244.1.5-8080`) chosen by `numgen` rules instead (no anonymous sets:
//! see `render_port`). Names cannot collide: namespaces and names are DNS labels (no `/`, no `.`),
//! so the `/` ends the namespace and the protocol, port and endpoint are read from the right.
//!
//! Filter chains reject new connections to service ports without endpoints (`no-endpoint-services`,
//! `no-endpoint-nodeports`) and to unknown ports of cluster IPs, so clients fail at once instead of
//! timing out. Packets that must be masqueraded carry a mark bit podnet owns; `masquerading` (srcnat)
//! rewrites them. Base chains use kube-proxy's hooks and priorities so they compose with the CNI
//! plugin's table (`inet podnet-cni`, whose host-port chains use the bit 0x2000).

use super::model::{Endpoint, PortState, ServiceKey, ServiceState};
use ipnet::Ipv4Net;
use std::collections::{BTreeMap, BTreeSet};

pub const DEFAULT_TABLE: &str = "podnet-services";
/// The mark bit meaning "masquerade this packet" (kube-proxy's value; podnet-cni uses 0x2000).
pub const DEFAULT_MASQUERADE_MARK: u32 = 0x4000;
/// Chain and set names stay well below the kernel's 256 bytes.
const MAX_NAME: usize = 200;

/// What every rule of the table depends on besides the Services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    pub table: String,
    /// Pod addresses: traffic from elsewhere to a cluster IP is masqueraded (so replies come back
    /// through this node), and pods reaching a node port of an eTP Local service use all endpoints.
    pub cluster_cidrs: Vec<Ipv4Net>,
    pub masquerade_mark: u32,
}

impl Base {
    pub fn new(table: impl Into<String>, cluster_cidrs: Vec<Ipv4Net>) -> Base {
        Base {
            table: table.into(),
            cluster_cidrs,
            masquerade_mark: DEFAULT_MASQUERADE_MARK,
        }
    }

    /// `ip saddr != A ip saddr != B ...`: the source is outside every cluster CIDR (`None` when
    /// there are none). Negations in one rule rather than an anonymous set, which would make each
    /// rule own a set of its own.
    fn outside_cluster(&self) -> Option<String> {
        (!self.cluster_cidrs.is_empty()).then(|| {
            self.cluster_cidrs
                .iter()
                .map(|c| format!("ip saddr != {c}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
    }

    /// One `ip saddr CIDR VERDICT` rule per cluster CIDR: consecutive rules ending in a verdict
    /// are an "or".
    fn inside_cluster(&self, verdict: &str) -> Vec<String> {
        self.cluster_cidrs
            .iter()
            .map(|c| format!("ip saddr {c} {verdict}"))
            .collect()
    }
}

/// The verdict maps and the set a Service puts elements into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Container {
    ServiceIps,
    ServiceNodePorts,
    NoEndpointServices,
    NoEndpointNodePorts,
    ClusterIps,
    /// Endpoint slot -> address . port: what a service port's DNAT picks from; one map per
    /// [`BLOCKS_PER_SHARD`] blocks (see [`Blocks`]).
    Endpoints(u32),
    /// `endpoint . endpoint` pairs: a connection DNATed back to its own source is masqueraded.
    Hairpin,
}

impl crate::nft_text::SetName for Container {
    fn set_name(&self) -> std::borrow::Cow<'_, str> {
        self.name()
    }
}

impl Container {
    /// The maps and sets every table has (endpoint maps come as Services need them).
    pub const FIXED: [Container; 6] = [
        Container::ServiceIps,
        Container::ServiceNodePorts,
        Container::NoEndpointServices,
        Container::NoEndpointNodePorts,
        Container::ClusterIps,
        Container::Hairpin,
    ];

    pub fn name(self) -> std::borrow::Cow<'static, str> {
        if let Container::Endpoints(shard) = self {
            return format!("endpoints-{shard}").into();
        }
        match self {
            Container::ServiceIps => "service-ips",
            Container::ServiceNodePorts => "service-nodeports",
            Container::NoEndpointServices => "no-endpoint-services",
            Container::NoEndpointNodePorts => "no-endpoint-nodeports",
            Container::ClusterIps => "cluster-ips",
            Container::Hairpin => "hairpin",
            Container::Endpoints(_) => unreachable!("named above"),
        }
        .into()
    }

    fn declaration(self) -> (&'static str, &'static str) {
        match self {
            Container::ServiceIps | Container::NoEndpointServices => (
                "map",
                "type ipv4_addr . inet_proto . inet_service : verdict ;",
            ),
            Container::ServiceNodePorts | Container::NoEndpointNodePorts => {
                ("map", "type inet_proto . inet_service : verdict ;")
            }
            Container::ClusterIps => ("set", "type ipv4_addr ;"),
            // `typeof`: nft has no datatype name for what numgen makes.
            Container::Endpoints(_) => {
                ("map", "typeof numgen random mod 1 : ip daddr . th dport ;")
            }
            Container::Hairpin => ("set", "type ipv4_addr . ipv4_addr ;"),
        }
    }
}

/// Every object one Service owns in the table. Element values are `None` in sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub chains: BTreeMap<String, Vec<String>>,
    /// Affinity sets: name -> declaration.
    pub sets: BTreeMap<String, String>,
    pub elements: BTreeMap<(Container, String), Option<String>>,
}

/// `<ns>/<name>-<proto>-<port>`: the part of every name that identifies the service port.
pub fn port_id(key: &ServiceKey, port: &PortState) -> String {
    format!(
        "{}/{}-{}-{}",
        key.namespace,
        key.name,
        port.protocol.nft(),
        port.port
    )
}

/// A name as nft accepts it: API names are DNS labels, so only an over-long name needs work: it is
/// cut and given a hash of the whole, which keeps it unique and deterministic.
pub fn object_name(prefix: &str, id: &str) -> String {
    let full = format!("{prefix}-{id}");
    if full.len() <= MAX_NAME && podnet_nft::script::is_identifier(&full) {
        return full;
    }
    let cleaned: String = full
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME - 17)
        .collect();
    let hash = podnet_types::names::fnv1a64(&[full.as_bytes()]);
    format!("{cleaned}-{hash:016x}")
}

fn endpoint_id(id: &str, ep: &Endpoint) -> String {
    format!("{id}-{}-{}", ep.ip, ep.port)
}

/// The table's fixed part: maps, the dispatch and filter chains, masquerading.
pub fn base_commands(base: &Base) -> Vec<String> {
    let t = format!("ip {}", base.table);
    let mark = format!("{:#x}", base.masquerade_mark);
    let mut c = vec![format!("add table {t}")];
    for container in Container::FIXED {
        let (kind, decl) = container.declaration();
        c.push(format!("add {kind} {t} {} {{ {decl} }}", container.name()));
    }
    let mut chain = |name: &str, hook: Option<&str>, rules: &[String]| {
        match hook {
            Some(h) => c.push(format!("add chain {t} {name} {{ {h} ; policy accept ; }}")),
            None => c.push(format!("add chain {t} {name}")),
        }
        for r in rules {
            c.push(format!("add rule {t} {name} {r}"));
        }
    };
    chain(
        "mark-for-masquerade",
        None,
        &[format!("meta mark set meta mark | {mark}")],
    );
    chain(
        "masquerading",
        Some("type nat hook postrouting priority srcnat"),
        &[
            // Hairpin: a pod whose connection to a Service was sent back to itself. Masqueraded so
            // the reply comes back through the node (kube-proxy marks per endpoint chain; here one
            // set lookup covers every endpoint).
            "ct status dnat ip saddr . ip daddr @hairpin jump mark-for-masquerade".into(),
            format!("meta mark & {mark} == 0 return"),
            format!("meta mark set meta mark ^ {mark}"),
            "masquerade fully-random".into(),
        ],
    );
    // Node ports answer on every local address but loopback: kube-proxy's nftables mode with
    // `--nodeport-addresses` covering all addresses (its default is the node's primary addresses
    // only; here that would leave out the pod network's gateway, which pods use to reach a node).
    let local = "fib daddr type local ip daddr != 127.0.0.0/8";
    chain(
        "services",
        None,
        &[
            "ip daddr . meta l4proto . th dport vmap @service-ips".into(),
            format!("{local} meta l4proto . th dport vmap @service-nodeports"),
        ],
    );
    chain(
        "nat-prerouting",
        Some("type nat hook prerouting priority dstnat"),
        &["jump services".into()],
    );
    chain(
        "nat-output",
        Some("type nat hook output priority -100"),
        &["jump services".into()],
    );
    chain(
        "reject-chain",
        None,
        &[
            "meta l4proto tcp reject with tcp reset".into(),
            "reject".into(),
        ],
    );
    chain(
        "endpoints-check",
        None,
        &[
            "ip daddr . meta l4proto . th dport vmap @no-endpoint-services".into(),
            format!("{local} meta l4proto . th dport vmap @no-endpoint-nodeports"),
        ],
    );
    // Every check runs after the DNAT of its path (input and forward after prerouting's, output at
    // dstnat + 10, after nat-output's): a packet still addressed to a service there found no endpoint
    // for it. Checking output before its DNAT would drop what the node itself sends to an
    // externalTrafficPolicy Local node port without a local endpoint, which `ext-` chains send to
    // every endpoint (kubernetes#131765).
    let check = "ct state new jump endpoints-check".to_string();
    let unknown = "ip daddr @cluster-ips jump reject-chain".to_string();
    chain(
        "filter-input",
        Some("type filter hook input priority -10"),
        std::slice::from_ref(&check),
    );
    chain(
        "filter-forward",
        Some("type filter hook forward priority -10"),
        &[check.clone(), unknown.clone()],
    );
    chain(
        "filter-output",
        Some("type filter hook output priority -90"),
        &[check, unknown],
    );
    c
}

/// Bits of an endpoint slot that number the endpoints of one list: a list of up to 4096 endpoints
/// is chosen from by one rule; a longer one (and any with session affinity) uses endpoint chains.
pub const SLOT_BITS: u32 = 12;
pub const MAX_MAPPED_ENDPOINTS: usize = 1 << SLOT_BITS;
const MAX_BLOCKS: u32 = 1 << (32 - SLOT_BITS);
/// Blocks per endpoint map. Every element added to a map is checked against every rule that looks
/// the map up, and every rule binding a map checks its elements, so one map for 10k Services made
/// programming them quadratic (10 s); maps of 64 lists keep both products small.
pub const BLOCKS_PER_SHARD: u32 = 64;

/// The endpoint map a block's slots are in.
pub fn shard_of(block: u32) -> u32 {
    block / BLOCKS_PER_SHARD
}

/// Which blocks of endpoint slots each Service holds: a service port's endpoint list owns the keys
/// `block << SLOT_BITS ..` of the `endpoints` map, and its DNAT rule is `numgen random mod N offset
/// BASE map @endpoints`. So an endpoint replaced only changes map elements, which the kernel commits
/// without walking the ruleset; a new rule, a jump or a goto element makes it validate every chain
/// reachable from the hooks (with 10k Services, tens of milliseconds).
///
/// A block is kept while its Service keeps the list (so its keys are stable), and a block given up
/// is reused only after the transaction that gave it up (see [`Blocks::settle`]).
#[derive(Debug, Clone, Default)]
pub struct Blocks {
    held: std::collections::HashMap<ServiceKey, BTreeMap<String, u32>>,
    free: Vec<u32>,
    released: Vec<u32>,
    next: u32,
}

impl Blocks {
    fn lease(&mut self, key: &ServiceKey) -> Lease<'_> {
        let old = self.held.remove(key).unwrap_or_default();
        Lease {
            blocks: self,
            key: key.clone(),
            old,
            new: BTreeMap::new(),
        }
    }

    fn allocate(&mut self) -> Option<u32> {
        if let Some(b) = self.free.pop() {
            return Some(b);
        }
        // Block 0 stays unused: every DNAT rule then shows its offset.
        let b = self.next.max(1);
        (b < MAX_BLOCKS).then(|| {
            self.next = b + 1;
            b
        })
    }

    /// The blocks given up since the last call may be handed out again (a transaction that
    /// deleted their elements was applied or abandoned).
    pub fn settle(&mut self) {
        self.free.append(&mut self.released);
    }

    /// Gives up the blocks of a Service that is gone.
    pub fn release(&mut self, key: &ServiceKey) {
        if let Some(blocks) = self.held.remove(key) {
            self.released.extend(blocks.into_values());
        }
    }

    /// Gives up the blocks of every Service `keep` does not name.
    pub fn retain(&mut self, keep: impl Fn(&ServiceKey) -> bool) {
        let gone: Vec<ServiceKey> = self.held.keys().filter(|k| !keep(k)).cloned().collect();
        for k in gone {
            let blocks = self.held.remove(&k).unwrap_or_default();
            self.released.extend(blocks.into_values());
        }
    }

    /// How many endpoint maps the blocks handed out so far need (`endpoints-0` ..).
    pub fn shards(&self) -> u32 {
        if self.next == 0 {
            0
        } else {
            shard_of(self.next - 1) + 1
        }
    }

    /// How many blocks are held (tests).
    pub fn held(&self) -> usize {
        self.held.values().map(BTreeMap::len).sum()
    }
}

/// The blocks one render of a Service uses; the ones it did not use are given up when it ends.
struct Lease<'a> {
    blocks: &'a mut Blocks,
    key: ServiceKey,
    old: BTreeMap<String, u32>,
    new: BTreeMap<String, u32>,
}

impl Lease<'_> {
    fn block(&mut self, list: &str) -> Option<u32> {
        if let Some(b) = self.new.get(list) {
            return Some(*b);
        }
        let b = match self.old.remove(list) {
            Some(b) => b,
            None => self.blocks.allocate()?,
        };
        self.new.insert(list.to_string(), b);
        Some(b)
    }

    /// Gives up the block `list` took in this render (its port uses endpoint chains after all).
    /// Reused only after `settle`: it may hold elements the transaction being built deletes.
    fn give_back(&mut self, list: &str) {
        if let Some(b) = self.new.remove(list) {
            self.blocks.released.push(b);
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.blocks
            .released
            .extend(std::mem::take(&mut self.old).into_values());
        let new = std::mem::take(&mut self.new);
        if !new.is_empty() {
            self.blocks.held.insert(self.key.clone(), new);
        }
    }
}

/// The objects of one Service (empty when it is gone or not proxied), taking endpoint slot blocks
/// from `blocks`.
pub fn render_service(
    base: &Base,
    key: &ServiceKey,
    state: &ServiceState,
    blocks: &mut Blocks,
) -> Rendered {
    let mut r = Rendered::default();
    let mut lease = blocks.lease(key);
    for port in &state.ports {
        render_port(base, key, port, &mut lease, &mut r);
    }
    r
}

fn render_port(base: &Base, key: &ServiceKey, p: &PortState, lease: &mut Lease, r: &mut Rendered) {
    let id = port_id(key, p);
    let proto = p.protocol.nft();
    let svc_chain = object_name("svc", &id);
    let loc_chain = object_name("loc", &id);
    let ext_chain = object_name("ext", &id);
    let goto = |c: &str| Some(format!("goto {c}"));
    let reject = goto("reject-chain");
    let drop = Some("drop".to_string());

    // Each endpoint list is chosen from by one DNAT through the `endpoints` map, unless the port
    // has session affinity (which remembers clients per endpoint chain, as kube-proxy does) or a
    // list too long for a block; those use endpoint chains.
    let mut blocks = BTreeMap::new();
    let mut mapped = p.affinity.is_none();
    for (list, eps, used) in [
        ("cluster", &p.cluster_endpoints, p.uses_cluster_chain()),
        ("local", &p.local_endpoints, p.uses_local_chain()),
    ] {
        if !mapped || !used {
            continue;
        }
        match (eps.len() <= MAX_MAPPED_ENDPOINTS)
            .then(|| lease.block(&format!("{id}/{list}")))
            .flatten()
        {
            Some(b) => {
                blocks.insert(list, b);
            }
            None => mapped = false,
        }
    }
    if !mapped {
        // All of the port's lists or none: hairpin is either the set's or the endpoint chains'.
        for list in blocks.keys() {
            lease.give_back(&format!("{id}/{list}"));
        }
        blocks.clear();
    }

    let ep_chain = |ep: &Endpoint| object_name("ep", &endpoint_id(&id, ep));
    let aff_set = |ep: &Endpoint| object_name("aff", &endpoint_id(&id, ep));
    if mapped {
        for ep in p.reachable_endpoints() {
            r.elements
                .insert((Container::Hairpin, format!("{} . {}", ep.ip, ep.ip)), None);
        }
    } else {
        // Endpoint chains: hairpin traffic (a pod reaching itself) is masqueraded so the reply
        // comes back through the node; affinity remembers the client per endpoint.
        for ep in p.reachable_endpoints() {
            let mut rules = vec![format!("ip saddr {} jump mark-for-masquerade", ep.ip)];
            if let Some(timeout) = p.affinity {
                let set = aff_set(&ep);
                rules.push(format!("update @{set} {{ ip saddr }}"));
                r.sets.insert(
                    set,
                    format!("{{ type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ; }}"),
                );
            }
            rules.push(format!(
                "meta l4proto {proto} dnat to {}:{}",
                ep.ip, ep.port
            ));
            r.chains.insert(ep_chain(&ep), rules);
        }
    }
    type Elements = BTreeMap<(Container, String), Option<String>>;
    let policy_rules =
        |elements: &mut Elements, list: &str, endpoints: &[Endpoint], masq_from_outside: bool| {
            let mut rules = Vec::new();
            if masq_from_outside
                && let (Some(cip), Some(outside)) = (p.cluster_ip, base.outside_cluster())
            {
                // Off-cluster clients reaching a cluster IP through this node: replies must return here.
                rules.push(format!("ip daddr {cip} {outside} jump mark-for-masquerade"));
            }
            if let Some(block) = blocks.get(list) {
                let first = block << SLOT_BITS;
                let map = Container::Endpoints(shard_of(*block));
                for (i, ep) in endpoints.iter().enumerate() {
                    elements.insert(
                        (map, (first + i as u32).to_string()),
                        Some(format!("{} . {}", ep.ip, ep.port)),
                    );
                }
                rules.push(format!(
                    "meta l4proto {proto} dnat to numgen random mod {} offset {first} map @{}",
                    endpoints.len(),
                    map.name()
                ));
                return rules;
            }
            if p.affinity.is_some() {
                for ep in endpoints {
                    rules.push(format!("ip saddr @{} goto {}", aff_set(ep), ep_chain(ep)));
                }
            }
            // Uniform choice without an anonymous verdict map: rule i takes 1/(n-i) of what reaches it.
            // Every `numgen ... vmap { ... }` is an anonymous set, and the kernel names each new one by
            // scanning the table's sets, so 10k Services cost minutes that way (kube-proxy's layout);
            // this costs at most n rule evaluations on a connection's first packet, whatever the number
            // of Services.
            let n = endpoints.len();
            for (i, ep) in endpoints.iter().enumerate() {
                if i + 1 == n {
                    rules.push(format!("goto {}", ep_chain(ep)));
                } else {
                    rules.push(format!(
                        "numgen random mod {} == 0 goto {}",
                        n - i,
                        ep_chain(ep)
                    ));
                }
            }
            rules
        };
    if p.uses_cluster_chain() {
        let rules = policy_rules(
            &mut r.elements,
            "cluster",
            &p.cluster_endpoints,
            !p.internal_local,
        );
        r.chains.insert(svc_chain.clone(), rules);
    }
    if p.uses_local_chain() {
        let rules = policy_rules(
            &mut r.elements,
            "local",
            &p.local_endpoints,
            p.internal_local,
        );
        r.chains.insert(loc_chain.clone(), rules);
    }

    // Internal traffic: the cluster IP.
    if let Some(cip) = p.cluster_ip {
        let k = format!("{cip} . {proto} . {}", p.port);
        r.elements
            .insert((Container::ClusterIps, cip.to_string()), None);
        let (target, has) = if p.internal_local {
            (&loc_chain, !p.local_endpoints.is_empty())
        } else {
            (&svc_chain, p.has_endpoints())
        };
        if has {
            r.elements.insert((Container::ServiceIps, k), goto(target));
        } else {
            let verdict = if p.has_endpoints() {
                drop.clone()
            } else {
                reject.clone()
            };
            r.elements
                .insert((Container::NoEndpointServices, k), verdict);
        }
    }

    // External traffic: node ports, load-balancer and external IPs.
    if !p.external() {
        return;
    }
    let has_external = if p.external_local {
        !p.local_endpoints.is_empty()
    } else {
        p.has_endpoints()
    };
    if p.has_endpoints() {
        let mut rules = Vec::new();
        if p.external_local {
            // Pods and the node itself use every endpoint (as if they went out to a load balancer
            // and came back); only traffic from elsewhere keeps its source and stays on this node.
            rules.extend(base.inside_cluster(&format!("goto {svc_chain}")));
            rules.push("fib saddr type local jump mark-for-masquerade".into());
            rules.push(format!("fib saddr type local goto {svc_chain}"));
            if has_external {
                rules.push(format!("goto {loc_chain}"));
            }
        } else {
            rules.push("jump mark-for-masquerade".into());
            rules.push(format!("goto {svc_chain}"));
        }
        r.chains.insert(ext_chain.clone(), rules);
    }
    let no_external = if !p.has_endpoints() {
        reject.clone()
    } else if !has_external {
        drop.clone()
    } else {
        None
    };
    let mut external_keys: Vec<(Container, Container, String)> = p
        .external_ips
        .iter()
        .map(|ip| {
            (
                Container::ServiceIps,
                Container::NoEndpointServices,
                format!("{ip} . {proto} . {}", p.port),
            )
        })
        .collect();
    if let Some(np) = p.node_port {
        external_keys.push((
            Container::ServiceNodePorts,
            Container::NoEndpointNodePorts,
            format!("{proto} . {np}"),
        ));
    }
    for (dispatch, no_endpoint, k) in external_keys {
        if p.has_endpoints() {
            r.elements.insert((dispatch, k.clone()), goto(&ext_chain));
        }
        if let Some(v) = &no_external {
            r.elements.insert((no_endpoint, k), Some(v.clone()));
        }
    }
}

pub use crate::nft_text::Transaction;

/// The whole table from scratch in one transaction: whatever was there (including hand-made
/// changes) is replaced atomically.
pub fn full_transaction<'a>(
    base: &Base,
    services: impl IntoIterator<Item = &'a Rendered> + Clone,
    endpoint_maps: u32,
) -> Transaction {
    let mut tx = Transaction::new("ip", &base.table);
    // `add` first so `delete` cannot fail on a missing table.
    tx.raw(&format!("add table ip {}", base.table));
    tx.raw(&format!("delete table ip {}", base.table));
    write_everything(&mut tx, base, services, endpoint_maps);
    tx
}

/// Declares endpoint maps `shards` (an existing one is left as it is).
pub fn declare_endpoint_maps(tx: &mut Transaction, shards: std::ops::Range<u32>) {
    for shard in shards {
        let map = Container::Endpoints(shard);
        let (kind, decl) = map.declaration();
        tx.cmd("add", kind, format_args!("{} {{ {decl} }}", map.name()));
    }
}

/// The whole table written again over what it holds, in one transaction, keeping the affinity
/// sets' elements (the clients each endpoint remembers, which a [`full_transaction`] would forget,
/// as kube-proxy does not): every rule goes (`flush table`), the dispatch maps and sets are emptied,
/// `obsolete` chains and sets (applied before, wanted no more, or declared differently now) are
/// deleted once nothing refers to them, and everything wanted is written again. A chain made by hand
/// stays, unreachable; a start-up rebuild replaces the table.
pub fn refill_transaction<'a>(
    base: &Base,
    services: impl IntoIterator<Item = &'a Rendered> + Clone,
    obsolete_chains: &BTreeSet<String>,
    obsolete_sets: &BTreeMap<String, String>,
    endpoint_maps: u32,
) -> Transaction {
    let mut tx = Transaction::new("ip", &base.table);
    tx.raw(&format!("add table ip {}", base.table));
    tx.raw(&format!("flush table ip {}", base.table));
    // Each map and set is declared before it is emptied, and each obsolete object before it is
    // deleted, so one removed by hand does not make the refill fail. Endpoint maps no Service uses
    // any more stay, empty (a table keeps as many as it once needed).
    let shards = (0..endpoint_maps).map(Container::Endpoints);
    for container in Container::FIXED.into_iter().chain(shards) {
        let (kind, decl) = container.declaration();
        tx.cmd(
            "add",
            kind,
            format_args!("{} {{ {decl} }}", container.name()),
        );
        tx.cmd("flush", kind, format_args!("{}", container.name()));
    }
    for c in obsolete_chains {
        tx.add_chain(c);
        tx.delete_chain(c);
    }
    for (s, decl) in obsolete_sets {
        tx.add_set(s, decl);
        tx.delete_set(s);
    }
    write_everything(&mut tx, base, services, endpoint_maps);
    tx
}

/// Every object of the table, in an order the kernel accepts: the fixed part, the Services' chains
/// and sets, their rules, the map elements, and the hooked chains last: until they exist nothing in
/// the table is reachable from a hook, so the kernel has no ruleset graph to re-validate while the
/// rest is added (with the hooks first, programming 10k Services took minutes, not seconds).
fn write_everything<'a>(
    tx: &mut Transaction,
    base: &Base,
    services: impl IntoIterator<Item = &'a Rendered> + Clone,
    endpoint_maps: u32,
) {
    let (hooked, rest): (Vec<String>, Vec<String>) =
        base_commands(base).into_iter().partition(|l| is_hooked(l));
    for line in &rest {
        tx.raw(line);
    }
    declare_endpoint_maps(tx, 0..endpoint_maps);
    for r in services.clone() {
        for name in r.chains.keys() {
            tx.add_chain(name);
        }
        for (name, decl) in &r.sets {
            tx.add_set(name, decl);
        }
    }
    for r in services.clone() {
        for (name, rules) in &r.chains {
            tx.add_rules(name, rules);
        }
    }
    tx.add_elements(services.into_iter().flat_map(|r| r.elements.iter()));
    for line in &hooked {
        tx.raw(line);
    }
}

/// Whether a base command creates a hooked chain or adds a rule to one.
fn is_hooked(line: &str) -> bool {
    const HOOKED: [&str; 6] = [
        "masquerading",
        "nat-prerouting",
        "nat-output",
        "filter-input",
        "filter-forward",
        "filter-output",
    ];
    let mut words = line.split_whitespace();
    let (verb, what) = (words.next(), words.next());
    let name = words.nth(2);
    verb == Some("add")
        && matches!(what, Some("chain" | "rule"))
        && name.is_some_and(|n| HOOKED.contains(&n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::model::Protocol;

    fn port(eps: &[(&str, u16)], local: &[(&str, u16)]) -> PortState {
        let e = |v: &[(&str, u16)]| {
            v.iter()
                .map(|(ip, port)| Endpoint {
                    ip: ip.parse().unwrap(),
                    port: *port,
                })
                .collect::<Vec<_>>()
        };
        PortState {
            protocol: Protocol::Tcp,
            port: 80,
            cluster_ip: Some("10.96.0.20".parse().unwrap()),
            node_port: None,
            external_ips: vec![],
            cluster_endpoints: e(eps),
            local_endpoints: e(local),
            internal_local: false,
            external_local: false,
            affinity: None,
        }
    }

    fn base() -> Base {
        Base::new("podnet-services", vec!["10.244.0.0/16".parse().unwrap()])
    }

    fn key() -> ServiceKey {
        ServiceKey::new("default", "web")
    }

    fn render(p: PortState) -> Rendered {
        render_service(
            &base(),
            &key(),
            &ServiceState { ports: vec![p] },
            &mut Blocks::default(),
        )
    }

    #[test]
    fn cluster_ip_dispatch_and_a_dnat_through_the_endpoint_map() {
        let p = port(&[("10.244.1.5", 8080), ("10.244.2.5", 8080)], &[]);
        let r = render(p);
        assert_eq!(
            r.elements[&(Container::ServiceIps, "10.96.0.20 . tcp . 80".into())],
            Some("goto svc-default/web-tcp-80".into())
        );
        // Block 1 (block 0 is never used): slots 4096 and 4097.
        assert_eq!(
            r.chains["svc-default/web-tcp-80"],
            vec![
                "ip daddr 10.96.0.20 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
                "meta l4proto tcp dnat to numgen random mod 2 offset 4096 map @endpoints-0",
            ]
        );
        assert_eq!(
            r.elements[&(Container::Endpoints(0), "4096".into())],
            Some("10.244.1.5 . 8080".into())
        );
        assert_eq!(
            r.elements[&(Container::Endpoints(0), "4097".into())],
            Some("10.244.2.5 . 8080".into())
        );
        assert!(
            r.elements
                .contains_key(&(Container::Hairpin, "10.244.2.5 . 10.244.2.5".into()))
        );
        assert!(
            r.elements
                .contains_key(&(Container::ClusterIps, "10.96.0.20".into()))
        );
        assert_eq!(
            r.chains.len(),
            1,
            "no endpoint chains: {:?}",
            r.chains.keys()
        );
    }

    #[test]
    fn an_endpoint_replaced_changes_elements_only() {
        let mut blocks = Blocks::default();
        let state = |eps: &[(&str, u16)]| ServiceState {
            ports: vec![port(eps, &[])],
        };
        let a = render_service(
            &base(),
            &key(),
            &state(&[("10.244.1.5", 80), ("10.244.2.5", 80)]),
            &mut blocks,
        );
        let b = render_service(
            &base(),
            &key(),
            &state(&[("10.244.1.5", 80), ("10.244.3.5", 80)]),
            &mut blocks,
        );
        assert_eq!(a.chains, b.chains);
        assert_ne!(a.elements, b.elements);
        assert_eq!(blocks.held(), 1);
        // Scaled: the rule changes, the block stays.
        let c = render_service(&base(), &key(), &state(&[("10.244.1.5", 80)]), &mut blocks);
        assert_eq!(
            c.chains["svc-default/web-tcp-80"][1],
            "meta l4proto tcp dnat to numgen random mod 1 offset 4096 map @endpoints-0"
        );
        // No endpoints: no list, the block is given up, and reused only after `settle`.
        render_service(&base(), &key(), &state(&[]), &mut blocks);
        assert_eq!(blocks.held(), 0);
        let other = ServiceKey::new("default", "other");
        let d = render_service(&base(), &other, &state(&[("10.244.1.5", 80)]), &mut blocks);
        assert!(
            d.elements
                .contains_key(&(Container::Endpoints(0), "8192".into()))
        );
        blocks.release(&other);
        blocks.settle();
        let e = render_service(&base(), &key(), &state(&[("10.244.1.5", 80)]), &mut blocks);
        assert!(
            e.elements
                .contains_key(&(Container::Endpoints(0), "8192".into()))
        );
        assert_eq!(blocks.held(), 1);
    }

    #[test]
    fn lists_too_long_for_a_block_use_endpoint_chains() {
        let eps: Vec<(String, u16)> = (0..=MAX_MAPPED_ENDPOINTS)
            .map(|i| (format!("10.244.{}.{}", i / 250, i % 250 + 1), 80))
            .collect();
        let eps: Vec<(&str, u16)> = eps.iter().map(|(a, p)| (a.as_str(), *p)).collect();
        let mut blocks = Blocks::default();
        let r = render_service(
            &base(),
            &key(),
            &ServiceState {
                ports: vec![port(&eps, &[])],
            },
            &mut blocks,
        );
        assert_eq!(blocks.held(), 0);
        assert!(
            !r.elements
                .keys()
                .any(|(c, _)| matches!(c, Container::Endpoints(_)))
        );
        assert_eq!(r.chains.len(), MAX_MAPPED_ENDPOINTS + 2);
        assert_eq!(
            r.chains["ep-default/web-tcp-80-10.244.0.1-80"][0],
            "ip saddr 10.244.0.1 jump mark-for-masquerade"
        );
    }

    /// When the slot blocks run out between a port's two lists, the port falls back to endpoint
    /// chains for both: a list left choosing through the map would get no hairpin element (the
    /// endpoint chains carry hairpin then), and its block would be held for nothing.
    #[test]
    fn blocks_running_out_mid_port_leave_no_list_on_the_map() {
        let mut p = port(
            &[("10.244.1.5", 80), ("10.244.2.5", 80)],
            &[("10.244.1.5", 80)],
        );
        p.node_port = Some(30080);
        p.external_local = true;
        let mut blocks = Blocks {
            next: MAX_BLOCKS - 1,
            ..Blocks::default()
        };
        let r = render_service(
            &base(),
            &key(),
            &ServiceState { ports: vec![p] },
            &mut blocks,
        );
        for chain in ["svc-default/web-tcp-80", "loc-default/web-tcp-80"] {
            assert!(
                !r.chains[chain].iter().any(|rule| rule.contains("map @")),
                "{chain}: {:?}",
                r.chains[chain]
            );
        }
        assert!(
            !r.elements
                .keys()
                .any(|(c, _)| matches!(c, Container::Endpoints(_))),
            "{:?}",
            r.elements
        );
        assert_eq!(blocks.held(), 0);
        // The block given back is handed out again after the transaction.
        blocks.settle();
        assert_eq!(blocks.allocate(), Some(MAX_BLOCKS - 1));
    }

    #[test]
    fn no_endpoints_reject_and_local_policy_without_local_endpoints_drops() {
        let p = port(&[], &[]);
        let r = render(p);
        assert!(r.chains.is_empty());
        assert_eq!(
            r.elements[&(
                Container::NoEndpointServices,
                "10.96.0.20 . tcp . 80".into()
            )],
            Some("goto reject-chain".into())
        );
        let mut p = port(&[("10.244.2.5", 80)], &[]);
        p.internal_local = true;
        let r = render(p);
        assert_eq!(
            r.elements[&(
                Container::NoEndpointServices,
                "10.96.0.20 . tcp . 80".into()
            )],
            Some("drop".into())
        );
        assert!(!r.elements.keys().any(|(c, _)| *c == Container::ServiceIps));
    }

    #[test]
    fn several_cluster_cidrs_render_without_anonymous_sets() {
        let b = Base::new(
            "t",
            vec![
                "10.244.0.0/16".parse().unwrap(),
                "10.250.0.0/16".parse().unwrap(),
            ],
        );
        let mut p = port(&[("10.244.1.5", 80)], &[("10.244.1.5", 80)]);
        p.node_port = Some(30080);
        p.external_local = true;
        let r = render_service(
            &b,
            &key(),
            &ServiceState { ports: vec![p] },
            &mut Blocks::default(),
        );
        assert_eq!(
            r.chains["svc-default/web-tcp-80"][0],
            "ip daddr 10.96.0.20 ip saddr != 10.244.0.0/16 ip saddr != 10.250.0.0/16 jump mark-for-masquerade"
        );
        assert_eq!(
            r.chains["ext-default/web-tcp-80"][..2],
            [
                "ip saddr 10.244.0.0/16 goto svc-default/web-tcp-80".to_string(),
                "ip saddr 10.250.0.0/16 goto svc-default/web-tcp-80".to_string(),
            ]
        );
        // What the agent sends must compile to nf_tables messages.
        let mut tx = Transaction::new("ip", "t");
        for line in base_commands(&b) {
            tx.raw(&line);
        }
        declare_endpoint_maps(&mut tx, 0..1);
        for (name, rules) in &r.chains {
            tx.add_chain(name);
            tx.add_rules(name, rules);
        }
        tx.add_elements(r.elements.iter());
        podnet_nft::nl::parse::Sets::default()
            .compile(tx.text())
            .expect("compiles");
    }

    #[test]
    fn node_port_external_local_keeps_client_address() {
        let mut p = port(
            &[("10.244.1.5", 80), ("10.244.2.5", 80)],
            &[("10.244.1.5", 80)],
        );
        p.node_port = Some(30080);
        p.external_local = true;
        let r = render(p.clone());
        assert_eq!(
            r.elements[&(Container::ServiceNodePorts, "tcp . 30080".into())],
            Some("goto ext-default/web-tcp-80".into())
        );
        let ext = &r.chains["ext-default/web-tcp-80"];
        assert_eq!(
            ext,
            &vec![
                "ip saddr 10.244.0.0/16 goto svc-default/web-tcp-80".to_string(),
                "fib saddr type local jump mark-for-masquerade".into(),
                "fib saddr type local goto svc-default/web-tcp-80".into(),
                "goto loc-default/web-tcp-80".into(),
            ]
        );
        // The local chain does not masquerade: the client's address is preserved. Its list has
        // a block of its own.
        assert_eq!(
            r.chains["loc-default/web-tcp-80"],
            vec!["meta l4proto tcp dnat to numgen random mod 1 offset 8192 map @endpoints-0"]
        );
        assert_eq!(
            r.elements[&(Container::Endpoints(0), "8192".into())],
            Some("10.244.1.5 . 80".into())
        );
        // eTP Cluster masquerades.
        p.external_local = false;
        let r = render(p.clone());
        assert_eq!(
            r.chains["ext-default/web-tcp-80"][0],
            "jump mark-for-masquerade"
        );
        assert!(!r.chains.contains_key("loc-default/web-tcp-80"));
        // eTP Local, no local endpoint: outside traffic dropped, pods still served.
        p.external_local = true;
        p.local_endpoints.clear();
        let r = render(p);
        assert_eq!(
            r.elements[&(Container::NoEndpointNodePorts, "tcp . 30080".into())],
            Some("drop".into())
        );
        assert!(r.chains.contains_key("ext-default/web-tcp-80"));
    }

    #[test]
    fn affinity_sets_checked_before_random_choice() {
        let mut p = port(&[("10.244.1.5", 80), ("10.244.2.5", 80)], &[]);
        p.affinity = Some(30);
        let r = render(p);
        let svc = &r.chains["svc-default/web-tcp-80"];
        assert_eq!(
            svc[1],
            "ip saddr @aff-default/web-tcp-80-10.244.1.5-80 goto ep-default/web-tcp-80-10.244.1.5-80"
        );
        assert!(svc[3].starts_with("numgen random mod 2 == 0 goto"));
        assert_eq!(
            r.sets["aff-default/web-tcp-80-10.244.2.5-80"],
            "{ type ipv4_addr ; flags dynamic,timeout ; timeout 30s ; }"
        );
        assert_eq!(
            r.chains["ep-default/web-tcp-80-10.244.2.5-80"][1],
            "update @aff-default/web-tcp-80-10.244.2.5-80 { ip saddr }"
        );
    }

    #[test]
    fn long_names_are_cut_uniquely() {
        let a = object_name("ep", &"x".repeat(300));
        let b = object_name("ep", &format!("{}y", "x".repeat(299)));
        assert!(a.len() <= MAX_NAME && b.len() <= MAX_NAME);
        assert_ne!(a, b);
        assert_eq!(a, object_name("ep", &"x".repeat(300)));
        assert!(podnet_nft::script::is_identifier(&a));
    }

    #[test]
    fn elements_are_batched_per_container() {
        let mut tx = Transaction::new("ip", "t");
        let a = (Container::ServiceIps, "1.2.3.4 . tcp . 80".to_string());
        let b = (Container::ClusterIps, "1.2.3.4".to_string());
        let va = Some("goto x".to_string());
        tx.add_elements([(&a, &va), (&b, &None)]);
        assert_eq!(
            tx.text(),
            "add element ip t service-ips { 1.2.3.4 . tcp . 80 : goto x }\nadd element ip t cluster-ips { 1.2.3.4 }\n"
        );
    }
}

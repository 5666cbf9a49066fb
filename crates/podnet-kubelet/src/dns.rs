//! The files kubelet writes for every pod: `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`.

use k8s_openapi::api::core::v1::Pod;

/// The cluster's DNS settings (kubelet's `--cluster-dns` and `--cluster-domain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDns {
    pub nameservers: Vec<String>,
    pub domain: String,
}

impl Default for ClusterDns {
    fn default() -> Self {
        ClusterDns {
            nameservers: vec!["10.96.0.10".into()],
            domain: "cluster.local".into(),
        }
    }
}

/// What a resolv.conf says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// glibc reads at most three nameservers; kubelet keeps the first three.
const MAX_NAMESERVERS: usize = 3;
/// Kubernetes' limit on search domains (since 1.28).
const MAX_SEARCHES: usize = 32;

impl ResolvConf {
    /// Parses a resolv.conf; unknown lines are ignored.
    pub fn parse(text: &str) -> ResolvConf {
        let mut out = ResolvConf::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => out.nameservers.extend(words.next().map(str::to_string)),
                Some("search") | Some("domain") => {
                    out.searches = words.map(str::to_string).collect()
                }
                Some("options") => out.options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
        out
    }

    pub fn render(&self) -> String {
        podnet_runtime::etc::resolv_conf(&self.nameservers, &self.searches, &self.options)
    }
}

/// The pod's hostname: `spec.hostname`, else its name, cut to 63 characters without a trailing `-`
/// or `.` (kubelet's rule).
pub fn hostname(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    let name = spec
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    let mut cut: String = name.chars().take(63).collect();
    while cut.ends_with(['-', '.']) {
        cut.pop();
    }
    cut
}

/// `hostname.subdomain.namespace.svc.<domain>` when the pod has a subdomain.
pub fn fqdn(pod: &Pod, domain: &str) -> Option<String> {
    let sub = pod
        .spec
        .as_ref()?
        .subdomain
        .clone()
        .filter(|s| !s.is_empty())?;
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    Some(format!("{}.{sub}.{ns}.svc.{domain}", hostname(pod)))
}

/// What `/etc/hostname` holds: the FQDN with `setHostnameAsFQDN`, else the short name.
pub fn hostname_file(pod: &Pod, domain: &str) -> String {
    let as_fqdn = pod
        .spec
        .as_ref()
        .and_then(|s| s.set_hostname_as_fqdn)
        .unwrap_or(false);
    let name = match fqdn(pod, domain) {
        Some(f) if as_fqdn => f,
        _ => hostname(pod),
    };
    format!("{name}\n")
}

/// The managed `/etc/hosts` of a pod with its own network namespace, as kubelet writes it (rendered
/// by the runtime's `etc::hosts`).
pub fn hosts_file(pod: &Pod, pod_ips: &[String], domain: &str) -> String {
    podnet_runtime::etc::hosts(
        pod_ips,
        &hostname(pod),
        fqdn(pod, domain).as_deref(),
        &aliases(pod),
    )
}

/// The `/etc/hosts` of a hostNetwork pod: the node's, plus the pod's host aliases.
pub fn host_network_hosts_file(node_hosts: &str, pod: &Pod) -> String {
    let mut s = String::from("# Kubernetes-managed hosts file (host network).\n");
    s.push_str(node_hosts);
    if !s.ends_with('\n') {
        s.push('\n');
    }
    let with_aliases = podnet_runtime::etc::hosts(&[], "", None, &aliases(pod));
    // Only the aliases part of the runtime's rendering: the node's own entries come first.
    if let Some(i) = with_aliases.find("\n# Entries added by HostAliases.") {
        s.push_str(&with_aliases[i..]);
    }
    s
}

/// `spec.hostAliases` as (address, names).
fn aliases(pod: &Pod) -> Vec<(String, Vec<String>)> {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_aliases.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|a| (a.ip, a.hostnames.unwrap_or_default()))
        .collect()
}

/// The pod's resolv.conf from its dnsPolicy and dnsConfig (kubelet's rules): `ClusterFirst` (the
/// default) points at the cluster DNS with the namespace's search path and `ndots:5`; a hostNetwork
/// pod with `ClusterFirst` gets the node's settings unless the policy is `ClusterFirstWithHostNet`;
/// `Default` is the node's; `None` only what dnsConfig says. dnsConfig then adds nameservers and
/// searches and overrides options by name.
pub fn resolv_conf(pod: &Pod, node: &ResolvConf, cluster: &ClusterDns) -> ResolvConf {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let policy = spec
        .and_then(|s| s.dns_policy.clone())
        .unwrap_or_else(|| "ClusterFirst".into());
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let cluster_first = || ResolvConf {
        nameservers: cluster.nameservers.clone(),
        searches: [
            format!("{ns}.svc.{}", cluster.domain),
            format!("svc.{}", cluster.domain),
            cluster.domain.clone(),
        ]
        .into_iter()
        .chain(node.searches.iter().cloned())
        .collect(),
        options: vec!["ndots:5".into()],
    };
    let mut conf = match policy.as_str() {
        "None" => ResolvConf::default(),
        "Default" => node.clone(),
        "ClusterFirstWithHostNet" => cluster_first(),
        _ if host_network => node.clone(),
        _ => cluster_first(),
    };
    if let Some(cfg) = spec.and_then(|s| s.dns_config.as_ref()) {
        for n in cfg.nameservers.iter().flatten() {
            if !conf.nameservers.contains(n) {
                conf.nameservers.push(n.clone());
            }
        }
        for s in cfg.searches.iter().flatten() {
            if !conf.searches.contains(s) {
                conf.searches.push(s.clone());
            }
        }
        for opt in cfg.options.iter().flatten() {
            let Some(name) = opt.name.as_deref().filter(|n| !n.is_empty()) else {
                continue;
            };
            let rendered = match &opt.value {
                Some(v) => format!("{name}:{v}"),
                None => name.to_string(),
            };
            conf.options.retain(|o| o.split(':').next() != Some(name));
            conf.options.push(rendered);
        }
    }
    conf.nameservers.truncate(MAX_NAMESERVERS);
    conf.searches.truncate(MAX_SEARCHES);
    conf
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn hosts_file_names_the_pod() {
        let p = pod(json!({"metadata": {"name": "web-1", "namespace": "ns"},
            "spec": {"containers": [], "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["a", "b"]}]}}));
        let h = hosts_file(&p, &["10.244.1.5".into()], "cluster.local");
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(h.contains("\n10.244.1.5\tweb-1\n"));
        assert!(h.ends_with("# Entries added by HostAliases.\n1.2.3.4\ta\tb\n"));
        let sub = pod(json!({"metadata": {"name": "x", "namespace": "ns"},
            "spec": {"containers": [], "hostname": "web-0", "subdomain": "nginx"}}));
        assert!(
            hosts_file(&sub, &["10.244.1.6".into()], "cluster.local")
                .contains("10.244.1.6\tweb-0.nginx.ns.svc.cluster.local\tweb-0\n")
        );
        assert_eq!(hostname_file(&sub, "cluster.local"), "web-0\n");
    }

    #[test]
    fn hostnames_are_cut_to_63() {
        let long = format!("{}-{}", "a".repeat(62), "b");
        let p = pod(json!({"metadata": {"name": long}, "spec": {"containers": []}}));
        assert_eq!(hostname(&p), "a".repeat(62));
    }

    #[test]
    fn resolv_conf_follows_dns_policy() {
        let node = ResolvConf::parse("nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n");
        let cluster = ClusterDns::default();
        let p = pod(json!({"metadata": {"namespace": "shop"}, "spec": {"containers": []}}));
        assert_eq!(
            resolv_conf(&p, &node, &cluster).render(),
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
        let hn = pod(json!({"spec": {"hostNetwork": true, "containers": []}}));
        assert_eq!(resolv_conf(&hn, &node, &cluster), node);
        let hn2 = pod(
            json!({"spec": {"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet", "containers": []}}),
        );
        assert_eq!(
            resolv_conf(&hn2, &node, &cluster).nameservers,
            ["10.96.0.10"]
        );
        let none = pod(json!({"spec": {"dnsPolicy": "None", "containers": [],
            "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["a.b"], "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}}));
        assert_eq!(
            resolv_conf(&none, &node, &cluster).render(),
            "search a.b\nnameserver 1.1.1.1\noptions ndots:2 edns0\n"
        );
        let merge = pod(
            json!({"spec": {"containers": [], "dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}}}),
        );
        assert_eq!(resolv_conf(&merge, &node, &cluster).options, ["ndots:1"]);
    }
}

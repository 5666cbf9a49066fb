//! The pod's `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`, rendered as kubelet writes them.

use std::fmt::Write;

/// kubelet's managed `/etc/hosts`: localhost entries, then the pod's own address and name, then
/// `hostAliases` (address, names).
pub fn hosts(
    pod_ips: &[String],
    hostname: &str,
    fqdn: Option<&str>,
    aliases: &[(String, Vec<String>)],
) -> String {
    let mut s = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    for ip in pod_ips {
        match fqdn {
            Some(f) => {
                let _ = writeln!(s, "{ip}\t{f}\t{hostname}");
            }
            None => {
                let _ = writeln!(s, "{ip}\t{hostname}");
            }
        }
    }
    if !aliases.is_empty() {
        s.push_str("\n# Entries added by HostAliases.\n");
        for (ip, names) in aliases {
            let _ = writeln!(s, "{ip}\t{}", names.join("\t"));
        }
    }
    s
}

/// `/etc/resolv.conf` from nameservers, search domains and options (`ndots:5`).
pub fn resolv_conf(nameservers: &[String], searches: &[String], options: &[String]) -> String {
    let mut s = String::new();
    if !searches.is_empty() {
        let _ = writeln!(s, "search {}", searches.join(" "));
    }
    for n in nameservers {
        let _ = writeln!(s, "nameserver {n}");
    }
    if !options.is_empty() {
        let _ = writeln!(s, "options {}", options.join(" "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_has_localhost_the_pod_and_aliases() {
        let h = hosts(
            &["10.244.1.5".into()],
            "web-1",
            None,
            &[("1.2.3.4".into(), vec!["a".into(), "b".into()])],
        );
        assert!(h.contains("127.0.0.1\tlocalhost\n"));
        assert!(h.contains("10.244.1.5\tweb-1\n"));
        assert!(h.ends_with("1.2.3.4\ta\tb\n"));
        let h = hosts(
            &["10.244.1.5".into()],
            "web-1",
            Some("web-1.svc.ns.svc.cluster.local"),
            &[],
        );
        assert!(h.contains("10.244.1.5\tweb-1.svc.ns.svc.cluster.local\tweb-1\n"));
    }

    #[test]
    fn resolv_conf_orders_search_nameservers_options() {
        let r = resolv_conf(
            &["10.96.0.10".into()],
            &[
                "default.svc.cluster.local".into(),
                "svc.cluster.local".into(),
            ],
            &["ndots:5".into()],
        );
        assert_eq!(
            r,
            "search default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
    }
}

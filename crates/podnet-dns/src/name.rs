//! What a query name means in the cluster zone, read from its labels (untrusted bytes from the network).
//!
//! The Kubernetes DNS specification's names, under a zone such as `cluster.local`:
//! `<svc>.<ns>.svc.<zone>`, `<host>.<svc>.<ns>.svc.<zone>` (headless endpoints),
//! `_<port>._<proto>.<svc>.<ns>.svc.<zone>` (SRV), `<a-b-c-d>.<ns>.pod.<zone>`, `dns-version.<zone>`,
//! and the reverse names `d.c.b.a.in-addr.arpa` / the 32 nibbles of `ip6.arpa`. Parsing is pure and
//! never fails: anything in the zone that is not one of these shapes is [`QName::Unknown`] (NXDOMAIN).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A cluster domain (`cluster.local`), kept as lower-case labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    labels: Vec<String>,
    /// The labels joined, kept because every answer names it.
    name: String,
}

/// A zone that is not a valid domain name.
#[derive(Debug, thiserror::Error)]
#[error("cluster domain {0:?} is not a domain name (labels of a-z, 0-9 and '-', 1 to 63 bytes)")]
pub struct BadZone(pub String);

impl Zone {
    /// `cluster.local` or `cluster.local.`; labels of letters, digits and dashes.
    pub fn new(domain: &str) -> Result<Zone, BadZone> {
        let trimmed = domain.trim_end_matches('.');
        let labels: Vec<String> = trimmed.split('.').map(|l| l.to_ascii_lowercase()).collect();
        let valid = !trimmed.is_empty()
            && trimmed.len() <= 200
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(BadZone(domain.to_string()));
        }
        Ok(Zone {
            name: labels.join("."),
            labels,
        })
    }

    /// `cluster.local` (no trailing dot).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}

/// What a query name is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QName {
    /// Not in the cluster zone nor a reverse name: forwarded upstream.
    Outside,
    /// The zone itself (`cluster.local`): SOA.
    Apex,
    /// `dns-version.<zone>`: TXT with the schema version.
    DnsVersion,
    /// `svc.<zone>`: exists as a parent of services.
    SvcRoot,
    /// `<ns>.svc.<zone>`: exists when the namespace has services.
    SvcNamespace { ns: String },
    /// `<svc>.<ns>.svc.<zone>`.
    Service { ns: String, svc: String },
    /// `<host>.<svc>.<ns>.svc.<zone>`: a headless service's endpoint (hostname or dashed IP).
    Endpoint {
        ns: String,
        svc: String,
        host: String,
    },
    /// `_<proto>.<svc>.<ns>.svc.<zone>`: exists as the parent of the SRV names.
    SrvProto {
        ns: String,
        svc: String,
        proto: String,
    },
    /// `_<port>._<proto>.<svc>.<ns>.svc.<zone>`.
    Srv {
        ns: String,
        svc: String,
        port: String,
        proto: String,
    },
    /// `pod.<zone>`.
    PodRoot,
    /// `<ns>.pod.<zone>`.
    PodNamespace { ns: String },
    /// `<a-b-c-d>.<ns>.pod.<zone>` (IPv6: the address with `-` for `:`).
    Pod { ns: String, ip: IpAddr },
    /// In the zone, of no known shape: NXDOMAIN.
    Unknown,
    /// A complete reverse name: PTR.
    Reverse(IpAddr),
}

/// Reads a name given as its labels, root excluded, leftmost first (as `Name::iter` yields them).
pub fn parse<'a, I>(labels: I, zone: &Zone) -> QName
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: DoubleEndedIterator + ExactSizeIterator,
{
    let labels: Vec<&[u8]> = labels.into_iter().collect();
    if let Some(ip) = reverse(&labels) {
        return QName::Reverse(ip);
    }
    let n = labels.len();
    let z = zone.len();
    if n < z
        || !labels[n - z..]
            .iter()
            .zip(&zone.labels)
            .all(|(l, zl)| l.eq_ignore_ascii_case(zl.as_bytes()))
    {
        return QName::Outside;
    }
    // The labels left of the zone, rightmost first, lower-cased; a label that cannot be part of a
    // Kubernetes name makes the whole name unknown.
    let mut rest = Vec::with_capacity(n - z);
    for l in labels[..n - z].iter().rev() {
        match lower(l) {
            Some(s) => rest.push(s),
            None => return QName::Unknown,
        }
    }
    let mut rest = rest.into_iter();
    let Some(kind) = rest.next() else {
        return QName::Apex;
    };
    let parts: Vec<String> = rest.collect();
    match (kind.as_str(), parts.as_slice()) {
        ("dns-version", []) => QName::DnsVersion,
        ("svc", []) => QName::SvcRoot,
        ("svc", [ns]) if plain(ns) => QName::SvcNamespace { ns: ns.clone() },
        ("svc", [ns, svc]) if plain(ns) && plain(svc) => QName::Service {
            ns: ns.clone(),
            svc: svc.clone(),
        },
        ("svc", [ns, svc, third]) if plain(ns) && plain(svc) => match third.strip_prefix('_') {
            Some(proto) if plain(proto) => QName::SrvProto {
                ns: ns.clone(),
                svc: svc.clone(),
                proto: proto.to_string(),
            },
            None if plain(third) => QName::Endpoint {
                ns: ns.clone(),
                svc: svc.clone(),
                host: third.clone(),
            },
            _ => QName::Unknown,
        },
        ("svc", [ns, svc, proto, port]) if plain(ns) && plain(svc) => {
            match (proto.strip_prefix('_'), port.strip_prefix('_')) {
                (Some(proto), Some(port)) if plain(proto) && plain(port) => QName::Srv {
                    ns: ns.clone(),
                    svc: svc.clone(),
                    port: port.to_string(),
                    proto: proto.to_string(),
                },
                _ => QName::Unknown,
            }
        }
        ("pod", []) => QName::PodRoot,
        ("pod", [ns]) if plain(ns) => QName::PodNamespace { ns: ns.clone() },
        ("pod", [ns, dashed]) if plain(ns) => match undash(dashed) {
            Some(ip) => QName::Pod { ns: ns.clone(), ip },
            None => QName::Unknown,
        },
        _ => QName::Unknown,
    }
}

/// An address written with dashes (`10-244-1-5`, `fd00--1`), as pod and endpoint names carry it.
pub fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The inverse of [`dashed`]; only the canonical spelling is accepted (no leading zeros, lower case,
/// RFC 5952 compression), so each address has one name.
pub fn undash(s: &str) -> Option<IpAddr> {
    let ip = if s.bytes().filter(|&b| b == b'-').count() == 3 && !s.contains("--") {
        IpAddr::V4(s.replace('-', ".").parse::<Ipv4Addr>().ok()?)
    } else {
        IpAddr::V6(s.replace('-', ":").parse::<Ipv6Addr>().ok()?)
    };
    (dashed(ip) == s).then_some(ip)
}

/// The reverse name of an address (`5.1.244.10.in-addr.arpa`), no trailing dot.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

fn reverse(labels: &[&[u8]]) -> Option<IpAddr> {
    let n = labels.len();
    if n < 2 || !labels[n - 1].eq_ignore_ascii_case(b"arpa") {
        return None;
    }
    if labels[n - 2].eq_ignore_ascii_case(b"in-addr") && n == 6 {
        let mut o = [0u8; 4];
        for (i, l) in labels[..4].iter().enumerate() {
            let s = std::str::from_utf8(l).ok()?;
            // Decimal without leading zeros, as the canonical reverse name has it.
            if s.is_empty() || s.len() > 3 || (s.len() > 1 && s.starts_with('0')) {
                return None;
            }
            o[3 - i] = s.parse().ok()?;
        }
        return Some(IpAddr::V4(Ipv4Addr::from(o)));
    }
    if labels[n - 2].eq_ignore_ascii_case(b"ip6") && n == 34 {
        let mut bytes = [0u8; 16];
        for (i, l) in labels[..32].iter().enumerate() {
            let [c] = l else { return None };
            let v = (*c as char).to_digit(16)? as u8;
            let byte = 15 - i / 2;
            bytes[byte] |= if i % 2 == 0 { v } else { v << 4 };
        }
        return Some(IpAddr::V6(Ipv6Addr::from(bytes)));
    }
    None
}

/// A label lower-cased, if it is made only of what Kubernetes names and SRV labels use.
fn lower(l: &[u8]) -> Option<String> {
    if l.is_empty()
        || !l
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    {
        return None;
    }
    Some(l.iter().map(|b| b.to_ascii_lowercase() as char).collect())
}

/// A label that is not an SRV `_` label.
fn plain(s: &str) -> bool {
    !s.is_empty() && !s.contains('_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(name: &str) -> QName {
        let zone = Zone::new("cluster.local").unwrap();
        let labels: Vec<&[u8]> = name
            .trim_end_matches('.')
            .split('.')
            .filter(|l| !l.is_empty())
            .map(str::as_bytes)
            .collect();
        parse(labels, &zone)
    }

    #[test]
    fn shapes() {
        assert_eq!(p("example.com"), QName::Outside);
        assert_eq!(p("local"), QName::Outside);
        assert_eq!(p("cluster.local"), QName::Apex);
        assert_eq!(p("CLUSTER.Local."), QName::Apex);
        assert_eq!(p("dns-version.cluster.local"), QName::DnsVersion);
        assert_eq!(p("svc.cluster.local"), QName::SvcRoot);
        assert_eq!(
            p("default.svc.cluster.local"),
            QName::SvcNamespace {
                ns: "default".into()
            }
        );
        assert_eq!(
            p("Nginx.Default.svc.cluster.local"),
            QName::Service {
                ns: "default".into(),
                svc: "nginx".into()
            }
        );
        assert_eq!(
            p("web-0.nginx.default.svc.cluster.local"),
            QName::Endpoint {
                ns: "default".into(),
                svc: "nginx".into(),
                host: "web-0".into()
            }
        );
        assert_eq!(
            p("_tcp.nginx.default.svc.cluster.local"),
            QName::SrvProto {
                ns: "default".into(),
                svc: "nginx".into(),
                proto: "tcp".into()
            }
        );
        assert_eq!(
            p("_http._TCP.nginx.default.svc.cluster.local"),
            QName::Srv {
                ns: "default".into(),
                svc: "nginx".into(),
                port: "http".into(),
                proto: "tcp".into()
            }
        );
        assert_eq!(p("_http.nginx._default.svc.cluster.local"), QName::Unknown);
        assert_eq!(p("a.b.c.d.svc.cluster.local"), QName::Unknown);
        assert_eq!(p("x.y.cluster.local"), QName::Unknown);
        assert_eq!(p("pod.cluster.local"), QName::PodRoot);
        assert_eq!(
            p("10-244-1-5.default.pod.cluster.local"),
            QName::Pod {
                ns: "default".into(),
                ip: "10.244.1.5".parse().unwrap()
            }
        );
        assert_eq!(
            p("fd00--1.default.pod.cluster.local"),
            QName::Pod {
                ns: "default".into(),
                ip: "fd00::1".parse().unwrap()
            }
        );
        // Non-canonical spellings name nothing.
        assert_eq!(p("10-244-1-05.default.pod.cluster.local"), QName::Unknown);
        assert_eq!(p("10-244-1.default.pod.cluster.local"), QName::Unknown);
        assert_eq!(
            p("5.1.244.10.in-addr.arpa"),
            QName::Reverse("10.244.1.5".parse().unwrap())
        );
        assert_eq!(p("05.1.244.10.in-addr.arpa"), QName::Outside);
        assert_eq!(p("1.244.10.in-addr.arpa"), QName::Outside);
    }

    #[test]
    fn odd_bytes_in_the_zone_are_unknown() {
        let zone = Zone::new("cluster.local").unwrap();
        let labels: Vec<&[u8]> = vec![b"ng\0inx", b"default", b"svc", b"cluster", b"local"];
        assert_eq!(parse(labels, &zone), QName::Unknown);
        let labels: Vec<&[u8]> = vec![b"a.b", b"svc", b"cluster", b"local"];
        assert_eq!(parse(labels, &zone), QName::Unknown);
    }

    #[test]
    fn zones() {
        assert!(Zone::new("cluster.local.").is_ok());
        assert_eq!(Zone::new("Corp.Example").unwrap().name(), "corp.example");
        for bad in ["", ".", "a..b", "a b", "a_b.local"] {
            assert!(Zone::new(bad).is_err(), "{bad}");
        }
    }

    fn label() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?"
    }

    proptest! {
        /// Arbitrary labels (any bytes) never panic and are classified in or out of the zone.
        #[test]
        fn any_bytes(labels in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..64), 0..10)) {
            let zone = Zone::new("cluster.local").unwrap();
            let refs: Vec<&[u8]> = labels.iter().map(Vec::as_slice).collect();
            let _ = parse(refs, &zone);
            let mut inzone = labels.clone();
            inzone.push(b"cluster".to_vec());
            inzone.push(b"local".to_vec());
            let refs: Vec<&[u8]> = inzone.iter().map(Vec::as_slice).collect();
            prop_assert_ne!(parse(refs, &zone), QName::Outside);
        }

        /// Names built from their parts read back as those parts.
        #[test]
        fn round_trips(ns in label(), svc in label(), host in label(), port in label(), ip in any::<u32>(), ip6 in any::<u128>()) {
            let z = "cluster.local";
            prop_assert_eq!(p(&format!("{svc}.{ns}.svc.{z}")), QName::Service { ns: ns.clone(), svc: svc.clone() });
            prop_assert_eq!(p(&format!("{host}.{svc}.{ns}.svc.{z}")), QName::Endpoint { ns: ns.clone(), svc: svc.clone(), host: host.clone() });
            prop_assert_eq!(p(&format!("_{port}._udp.{svc}.{ns}.svc.{z}")), QName::Srv { ns: ns.clone(), svc: svc.clone(), port: port.clone(), proto: "udp".into() });
            for ip in [IpAddr::V4(Ipv4Addr::from(ip)), IpAddr::V6(Ipv6Addr::from(ip6))] {
                prop_assert_eq!(undash(&dashed(ip)), Some(ip));
                prop_assert_eq!(p(&format!("{}.{ns}.pod.{z}", dashed(ip))), QName::Pod { ns: ns.clone(), ip });
                prop_assert_eq!(p(&reverse_name(ip)), QName::Reverse(ip));
            }
        }
    }
}

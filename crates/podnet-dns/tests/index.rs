//! Each record kind the index answers, as the Kubernetes DNS specification and CoreDNS have them.

mod common;

use common::*;
use hickory_proto::rr::RecordType;
use podnet_dns::name::parse;
use podnet_dns::{Index, Lookup, Rcode, Rec};
use serde_json::json;

fn ask(index: &Index, name: &str, qtype: RecordType) -> Lookup {
    let labels: Vec<&[u8]> = name.split('.').map(str::as_bytes).collect();
    index.lookup(&parse(labels, index.zone()), qtype)
}

fn answer(index: &Index, name: &str, qtype: RecordType) -> podnet_dns::Answer {
    match ask(index, name, qtype) {
        Lookup::Answer(a) => a,
        Lookup::Forward => panic!("{name} {qtype} was forwarded"),
    }
}

fn recs(index: &Index, name: &str, qtype: RecordType) -> Vec<Rec> {
    let a = answer(index, name, qtype);
    assert_eq!(a.rcode, Rcode::NoError, "{name} {qtype}");
    a.answers
}

fn nxdomain(index: &Index, name: &str) {
    let a = answer(index, name, RecordType::A);
    assert_eq!(a.rcode, Rcode::NxDomain, "{name}: {a:?}");
    assert!(a.answers.is_empty());
}

fn nodata(index: &Index, name: &str, qtype: RecordType) {
    let a = answer(index, name, qtype);
    assert!(a.is_nodata(), "{name} {qtype}: {a:?}");
}

#[test]
fn cluster_ip_service_a_and_aaaa() {
    let i = cluster();
    let name = "nginx.default.svc.cluster.local";
    assert_eq!(
        recs(&i, name, RecordType::A),
        [Rec::A("10.96.0.20".parse().unwrap())]
    );
    assert_eq!(
        recs(&i, name, RecordType::AAAA),
        [Rec::Aaaa("fd00:96::20".parse().unwrap())]
    );
    // Case does not matter.
    assert_eq!(
        recs(&i, "NGINX.Default.SVC.cluster.LOCAL", RecordType::A).len(),
        1
    );
    // The name exists: other types are NODATA, not NXDOMAIN.
    nodata(&i, name, RecordType::MX);
    nodata(&i, name, RecordType::TXT);
}

#[test]
fn headless_service_answers_ready_endpoints() {
    let i = cluster();
    let mut a = recs(&i, "web.default.svc.cluster.local", RecordType::A);
    a.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        a,
        [
            Rec::A("10.244.1.10".parse().unwrap()),
            Rec::A("10.244.2.11".parse().unwrap())
        ],
        "web-2 is not ready"
    );
    nodata(&i, "web.default.svc.cluster.local", RecordType::AAAA);
}

#[test]
fn headless_endpoint_names() {
    let i = cluster();
    assert_eq!(
        recs(&i, "web-0.web.default.svc.cluster.local", RecordType::A),
        [Rec::A("10.244.1.10".parse().unwrap())]
    );
    nxdomain(&i, "web-2.web.default.svc.cluster.local");
    nxdomain(&i, "web-9.web.default.svc.cluster.local");
    // Without a hostname the endpoint is named by its dashed address.
    assert_eq!(
        recs(
            &i,
            "10-244-3-7.bare.default.svc.cluster.local",
            RecordType::A
        ),
        [Rec::A("10.244.3.7".parse().unwrap())]
    );
    // A ClusterIP service has no endpoint names.
    nxdomain(&i, "x.nginx.default.svc.cluster.local");
}

#[test]
fn srv_records() {
    let i = cluster();
    let a = answer(
        &i,
        "_http._tcp.nginx.default.svc.cluster.local",
        RecordType::SRV,
    );
    assert_eq!(
        a.answers,
        [Rec::Srv {
            priority: 0,
            weight: 100,
            port: 80,
            target: "nginx.default.svc.cluster.local".into()
        }]
    );
    assert!(a.additionals.contains(&(
        "nginx.default.svc.cluster.local".into(),
        Rec::A("10.96.0.20".parse().unwrap())
    )));
    assert_eq!(
        recs(
            &i,
            "_dns._udp.nginx.default.svc.cluster.local",
            RecordType::SRV
        )
        .len(),
        1
    );
    // Wrong protocol, unknown port name: nothing there.
    nxdomain(&i, "_dns._tcp.nginx.default.svc.cluster.local");
    nxdomain(&i, "_ftp._tcp.nginx.default.svc.cluster.local");
    nodata(
        &i,
        "_http._tcp.nginx.default.svc.cluster.local",
        RecordType::A,
    );
    nodata(&i, "_tcp.nginx.default.svc.cluster.local", RecordType::A);

    // Headless: one SRV per ready endpoint, named, with the endpoint's port.
    let a = answer(
        &i,
        "_http._tcp.web.default.svc.cluster.local",
        RecordType::SRV,
    );
    assert_eq!(
        a.answers,
        [
            Rec::Srv {
                priority: 0,
                weight: 50,
                port: 8080,
                target: "web-0.web.default.svc.cluster.local".into()
            },
            Rec::Srv {
                priority: 0,
                weight: 50,
                port: 8080,
                target: "web-1.web.default.svc.cluster.local".into()
            }
        ]
    );
    assert_eq!(a.additionals.len(), 2);
}

#[test]
fn external_name_is_a_cname() {
    let i = cluster();
    for t in [RecordType::A, RecordType::AAAA, RecordType::CNAME] {
        assert_eq!(
            recs(&i, "ext.default.svc.cluster.local", t),
            [Rec::Cname("example.org".into())]
        );
    }
}

#[test]
fn pod_names_are_verified() {
    let i = cluster();
    assert_eq!(
        recs(&i, "10-244-1-5.default.pod.cluster.local", RecordType::A),
        [Rec::A("10.244.1.5".parse().unwrap())]
    );
    // The address exists, but not in that namespace; an address no pod has.
    nxdomain(&i, "10-244-1-5.other.pod.cluster.local");
    nxdomain(&i, "10-244-1-6.default.pod.cluster.local");
    nodata(&i, "10-244-1-5.default.pod.cluster.local", RecordType::AAAA);
    nodata(&i, "default.pod.cluster.local", RecordType::A);
    nxdomain(&i, "other.pod.cluster.local");
}

#[test]
fn nxdomain_and_empty_non_terminals() {
    let i = cluster();
    nxdomain(&i, "nope.default.svc.cluster.local");
    nxdomain(&i, "nginx.other.svc.cluster.local");
    // What a pod's search path makes of an absolute name.
    nxdomain(
        &i,
        "nginx.default.svc.cluster.local.default.svc.cluster.local",
    );
    nxdomain(&i, "a.b.c.d.e.f.svc.cluster.local");
    nxdomain(&i, "whatever.cluster.local");
    // Parents of existing names exist (RFC 8020): NOERROR without records.
    nodata(&i, "default.svc.cluster.local", RecordType::A);
    nodata(&i, "svc.cluster.local", RecordType::A);
    nodata(&i, "cluster.local", RecordType::A);
    nxdomain(&i, "empty.svc.cluster.local");
}

#[test]
fn apex_soa_and_dns_version() {
    let i = cluster();
    assert_eq!(recs(&i, "cluster.local", RecordType::SOA), [Rec::Soa]);
    assert_eq!(
        recs(&i, "dns-version.cluster.local", RecordType::TXT),
        [Rec::Txt("1.1.0".into())]
    );
}

#[test]
fn reverse_lookups() {
    let i = cluster();
    assert_eq!(
        recs(&i, "20.0.96.10.in-addr.arpa", RecordType::PTR),
        [Rec::Ptr("nginx.default.svc.cluster.local".into())]
    );
    assert_eq!(
        recs(&i, "10.1.244.10.in-addr.arpa", RecordType::PTR),
        [Rec::Ptr("web-0.web.default.svc.cluster.local".into())]
    );
    assert_eq!(
        recs(&i, "5.1.244.10.in-addr.arpa", RecordType::PTR),
        [Rec::Ptr("10-244-1-5.default.pod.cluster.local".into())]
    );
    let v6 = podnet_dns::name::reverse_name("fd00:96::20".parse().unwrap());
    assert_eq!(
        recs(&i, &v6, RecordType::PTR),
        [Rec::Ptr("nginx.default.svc.cluster.local".into())]
    );
    // Addresses the cluster does not know go upstream.
    assert_eq!(
        ask(&i, "1.1.1.1.in-addr.arpa", RecordType::PTR),
        Lookup::Forward
    );
}

#[test]
fn outside_names_are_forwarded() {
    let i = cluster();
    assert_eq!(ask(&i, "example.org", RecordType::A), Lookup::Forward);
    assert_eq!(ask(&i, "local", RecordType::A), Lookup::Forward);
}

#[test]
fn changes_and_deletes() {
    let mut i = cluster();
    let serial = i.serial();
    // Scale web: web-1 gone, web-3 ready.
    i.apply_slice(&slice(
        "default",
        "web-abcde",
        "web",
        "IPv4",
        &[
            ("10.244.1.10", Some("web-0"), Some(true)),
            ("10.244.4.13", Some("web-3"), Some(true)),
        ],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
    ));
    assert!(i.serial() != serial);
    nxdomain(&i, "web-1.web.default.svc.cluster.local");
    assert_eq!(
        recs(&i, "web-3.web.default.svc.cluster.local", RecordType::A).len(),
        1
    );
    // A second slice of the same service adds to it.
    i.apply_slice(&slice(
        "default",
        "web-fghij",
        "web",
        "IPv6",
        &[("fd00::13", Some("web-4"), Some(true))],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
    ));
    assert_eq!(
        recs(&i, "web.default.svc.cluster.local", RecordType::AAAA),
        [Rec::Aaaa("fd00::13".parse().unwrap())]
    );
    assert_eq!(
        recs(
            &i,
            "_http._tcp.web.default.svc.cluster.local",
            RecordType::SRV
        )
        .len(),
        3
    );
    // Deleting the service and its slices.
    i.delete_service(&headless("default", "web", json!([])));
    nxdomain(&i, "web.default.svc.cluster.local");
    nxdomain(&i, "web-0.web.default.svc.cluster.local");
    i.delete_service(&service("default", "nginx", &["10.96.0.20"], json!([])));
    assert_eq!(
        ask(&i, "20.0.96.10.in-addr.arpa", RecordType::PTR),
        Lookup::Forward
    );
    i.delete_pod(&pod("default", "client", &[]));
    nxdomain(&i, "10-244-1-5.default.pod.cluster.local");
    // A full list replaces everything.
    i.replace_services([&service(
        "kube-system",
        "kube-dns",
        &["10.96.0.10"],
        json!([]),
    )]);
    nxdomain(&i, "ext.default.svc.cluster.local");
    assert_eq!(
        recs(&i, "kube-dns.kube-system.svc.cluster.local", RecordType::A),
        [Rec::A("10.96.0.10".parse().unwrap())]
    );
    assert_eq!(i.counts().0, 1);
}

#[test]
fn a_custom_domain() {
    let mut i = Index::new(podnet_dns::Zone::new("corp.example").unwrap());
    i.apply_service(&service("default", "nginx", &["10.96.0.20"], json!([])));
    assert_eq!(
        recs(&i, "nginx.default.svc.corp.example", RecordType::A).len(),
        1
    );
    assert_eq!(
        ask(&i, "nginx.default.svc.cluster.local", RecordType::A),
        Lookup::Forward
    );
}

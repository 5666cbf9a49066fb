//! The netlink writer against the kernel and against `nft` itself: the same script applied by
//! `nft -f` in one namespace and by [`Netlink`] in another must leave the same table, compared
//! in nft's listing and in its raw expression dump (`--debug=netlink`: registers, lengths, byte
//! values), so what podnet sends is what nft would have sent.

use podnet_nft::Netlink;
use podnet_testkit::TestNs;

const SHAPES: &str = include_str!("shapes.nft");
/// What the NetworkPolicy table is written with (an inet table).
const POLICY_SHAPES: &str = include_str!("policy-shapes.nft");

/// The table as nft shows it, and its expressions as the kernel holds them (handles dropped).
fn dump(ns: &TestNs, table: &str) -> (String, String) {
    dump_in(ns, "ip", table)
}

fn dump_in(ns: &TestNs, family: &str, table: &str) -> (String, String) {
    let listing = ns.sh("nft", &["list", "table", family, table]);
    let raw = ns.sh("nft", &["--debug=netlink", "list", "table", family, table]);
    let raw = raw
        .lines()
        .filter(|l| l.trim_start().starts_with('['))
        .collect::<Vec<_>>()
        .join("\n");
    (listing, raw)
}

fn by_nft(script: &str) -> TestNs {
    let ns = TestNs::new("nft");
    let file = std::env::temp_dir().join(format!("{}.nft", ns.name()));
    std::fs::write(&file, script).unwrap();
    ns.sh("nft", &["-f", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    ns
}

fn by_netlink(nl: &mut Netlink, script: &str) -> TestNs {
    let ns = TestNs::new("nl");
    ns.run(|| nl.apply(script)).expect("netlink apply");
    ns
}

#[test]
fn every_shape_is_what_nft_makes() {
    let want = by_nft(SHAPES);
    let mut nl = Netlink::new();
    let got = by_netlink(&mut nl, SHAPES);
    let (want_list, want_raw) = dump(&want, "t");
    let (got_list, got_raw) = dump(&got, "t");
    assert_eq!(got_list, want_list);
    assert_eq!(got_raw, want_raw);
}

#[test]
fn every_policy_shape_is_what_nft_makes_and_a_refill_keeps_counters() {
    let want = by_nft(POLICY_SHAPES);
    let mut nl = Netlink::new();
    let got = by_netlink(&mut nl, POLICY_SHAPES);
    assert_eq!(dump_in(&got, "inet", "p"), dump_in(&want, "inet", "p"));
    // A refill: every rule goes, the maps and sets are emptied, everything is written again.
    let refill = format!(
        "flush table inet p\nflush map inet p ingress-pods\nflush set inet p sel-1\nflush set inet p np-1\n{}",
        POLICY_SHAPES
            .lines()
            .filter(|l| !l.starts_with("add table"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    got.run(|| nl.apply(&refill)).expect("refill");
    assert_eq!(dump_in(&got, "inet", "p"), dump_in(&want, "inet", "p"));
    // Counters and their removal.
    got.run(|| nl.apply("flush chain inet p pod-in-x/a\ndelete counter inet p drop-in-x/deny\n"))
        .expect("delete counter");
    let list = got.sh("nft", &["list", "counters", "table", "inet", "p"]);
    assert!(!list.contains("drop-in-x/deny"), "{list}");
}

#[test]
fn incremental_changes_and_a_rebuild_match_nft() {
    let changes = "\
delete element ip t service-ips { 10.96.0.21 . udp . 53 }
add chain ip t svc-b
flush chain ip t svc-default/web-tcp-80
add rule ip t svc-b goto ep-default/web-tcp-80-10.244.1.5-8080
add element ip t service-ips { 10.96.0.22 . tcp . 443 : goto svc-b }
add element ip t cluster-ips { 10.96.0.22 }
delete set ip t aff-x
";
    let want = by_nft(SHAPES);
    let file = std::env::temp_dir().join(format!("{}-2.nft", want.name()));
    std::fs::write(&file, changes).unwrap();
    // The set is still referenced by the endpoint chain's rule: drop that first in both.
    want.sh(
        "nft",
        &[
            "flush",
            "chain",
            "ip",
            "t",
            "ep-default/web-tcp-80-10.244.1.5-8080",
        ],
    );
    want.sh("nft", &["-f", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);

    let mut nl = Netlink::new();
    let got = by_netlink(&mut nl, SHAPES);
    got.run(|| {
        nl.apply("flush chain ip t ep-default/web-tcp-80-10.244.1.5-8080\n")
            .and_then(|_| nl.apply(changes))
    })
    .expect("incremental apply");
    assert_eq!(dump(&got, "t"), dump(&want, "t"));

    // A rebuild in one batch replaces everything.
    let rebuild = format!("add table ip t\ndelete table ip t\n{SHAPES}");
    got.run(|| nl.apply(&rebuild)).expect("rebuild");
    let fresh = by_nft(SHAPES);
    assert_eq!(dump(&got, "t"), dump(&fresh, "t"));
}

#[test]
fn a_refused_batch_changes_nothing_and_names_the_command() {
    let mut nl = Netlink::new();
    let ns = by_netlink(&mut nl, SHAPES);
    let before = dump(&ns, "t");
    let bad = "\
add element ip t cluster-ips { 10.96.0.99 }
add rule ip t services goto no-such-chain
";
    let err = ns.run(|| nl.apply(bad)).unwrap_err().to_string();
    assert!(
        err.contains("add rule ip t services goto no-such-chain") && err.contains("No such file"),
        "{err}"
    );
    assert_eq!(dump(&ns, "t"), before, "the batch was applied in part");
    // Text outside the supported language is refused before anything is sent.
    let err = ns
        .run(|| nl.apply("add rule ip t services ether type ip accept\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot compile") && err.contains("ether type"),
        "{err}"
    );
    // Elements of a set this writer never saw declared are refused, not guessed.
    let err = Netlink::new()
        .apply("add element ip t cluster-ips { 10.96.0.1 }\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("was not declared"), "{err}");
}

#[test]
fn a_batch_bigger_than_a_netlink_attribute() {
    // 20k elements: several NEWSETELEM messages in one batch.
    let mut script = String::from(
        "add table ip big\nadd map ip big m { type ipv4_addr . inet_proto . inet_service : verdict ; }\nadd chain ip big c\n",
    );
    let mut elems = Vec::new();
    for i in 0..20_000u32 {
        let [a, b] = ((i % 60000) as u16).to_be_bytes();
        elems.push(format!("10.96.{a}.{b} . tcp . {} : goto c", 1 + i % 60000));
    }
    script.push_str(&format!(
        "add element ip big m {{ {} }}\n",
        elems.join(", ")
    ));
    let mut nl = Netlink::new();
    let ns = by_netlink(&mut nl, &script);
    let list = ns.sh("nft", &["list", "map", "ip", "big", "m"]);
    assert_eq!(list.matches(": goto c").count(), 20_000);
}

/// One writer used in two namespaces: its kept socket belongs to the first, so in the second it
/// makes another, and each table lands where its thread was.
#[test]
fn a_kept_socket_is_used_only_in_its_own_namespace() {
    let mut nl = Netlink::new();
    let a = TestNs::new("nl-a");
    let b = TestNs::new("nl-b");
    a.run(|| nl.apply("add table ip ta\n")).expect("a");
    b.run(|| nl.apply("add table ip tb\n")).expect("b");
    a.run(|| nl.apply("add chain ip ta c\n")).expect("a again");
    let in_a = a.sh("nft", &["list", "tables"]);
    let in_b = b.sh("nft", &["list", "tables"]);
    assert!(
        in_a.contains("table ip ta") && !in_a.contains("table ip tb"),
        "{in_a}"
    );
    assert!(
        in_b.contains("table ip tb") && !in_b.contains("table ip ta"),
        "{in_b}"
    );
    assert!(a.sh("nft", &["list", "chains"]).contains("chain c"));
    // A refused batch leaves the writer usable.
    assert!(a.run(|| nl.apply("delete table ip missing\n")).is_err());
    a.run(|| nl.apply("add chain ip ta d\n"))
        .expect("after a refusal");
}

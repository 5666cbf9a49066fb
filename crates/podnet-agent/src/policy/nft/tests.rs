use super::*;
use crate::policy::model::{Block, Protocol};

#[test]
fn rules_cross_peers_with_numbered_ports() {
    let peers = [
        PeerExpr::Expr("ip saddr @sel-1".into()),
        PeerExpr::Expr("ip saddr 10.0.0.0/8".into()),
    ];
    let ports = [
        Port::Range(Protocol::Tcp, 80, 80),
        Port::Range(Protocol::Udp, 53, 60),
        Port::Nothing,
    ];
    assert_eq!(
        rule_lines(Direction::Ingress, &peers, Some(&ports), None),
        vec![
            "ip saddr @sel-1 meta l4proto tcp th dport 80 accept",
            "ip saddr @sel-1 meta l4proto udp th dport 53-60 accept",
            "ip saddr 10.0.0.0/8 meta l4proto tcp th dport 80 accept",
            "ip saddr 10.0.0.0/8 meta l4proto udp th dport 53-60 accept",
        ]
    );
    // No peers and no ports: everything.
    assert_eq!(
        rule_lines(Direction::Ingress, &[PeerExpr::Any], None, None),
        vec!["accept"]
    );
    // Every peer broken: nothing.
    assert!(rule_lines(Direction::Ingress, &[], None, None).is_empty());
    // Every port broken: nothing.
    assert!(
        rule_lines(
            Direction::Ingress,
            &[PeerExpr::Any],
            Some(&[Port::Nothing]),
            None
        )
        .is_empty()
    );
    // A protocol alone.
    assert_eq!(
        rule_lines(
            Direction::Egress,
            &[PeerExpr::Any],
            Some(&[Port::Protocol(Protocol::Sctp)]),
            None
        ),
        vec!["meta l4proto sctp accept"]
    );
}

#[test]
fn named_ports_look_up_their_set() {
    let named = [Port::Named(Protocol::Tcp, "http".into())];
    assert_eq!(
        rule_lines(
            Direction::Ingress,
            &[PeerExpr::Expr("ip saddr @sel-1".into())],
            Some(&named),
            Some("np-in-x/p-0")
        ),
        vec!["ip saddr @sel-1 ip daddr . meta l4proto . th dport @np-in-x/p-0 accept"]
    );
    // Egress sets hold the peers already; a rule whose peers are all broken allows nothing.
    assert_eq!(
        rule_lines(
            Direction::Egress,
            &[PeerExpr::Expr("ip daddr @sel-1".into())],
            Some(&named),
            Some("np-eg-x/p-0")
        ),
        vec!["ip daddr . meta l4proto . th dport @np-eg-x/p-0 accept"]
    );
    assert!(rule_lines(Direction::Egress, &[], Some(&named), Some("np-eg-x/p-0")).is_empty());
}

#[test]
fn blocks_and_selectors_use_the_peer_address() {
    let b = Block {
        cidr: "10.0.0.0/8".parse().unwrap(),
        except: vec!["10.1.0.0/16".parse().unwrap()],
    };
    assert_eq!(
        block_expr(Direction::Ingress, &b),
        "ip saddr 10.0.0.0/8 ip saddr != 10.1.0.0/16"
    );
    assert_eq!(
        block_expr(Direction::Egress, &b),
        "ip daddr 10.0.0.0/8 ip daddr != 10.1.0.0/16"
    );
    assert_eq!(selector_expr(Direction::Egress, "sel-1"), "ip daddr @sel-1");
}

#[test]
fn a_full_rebuild_hooks_its_chains_last() {
    let mut r = Rendered::default();
    r.chains.insert("pol-in-x/p".into(), vec!["accept".into()]);
    r.sets.insert("sel-1".into(), "{ type ipv4_addr ; }".into());
    r.elements.insert(("sel-1".into(), "10.0.0.1".into()), None);
    r.counters.insert("drop-in-x/p".into());
    let text = full_transaction(
        &Base::new("t"),
        [&r],
        Rebuild::Replace,
        &Rendered::default(),
    )
    .into_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "add table inet t");
    assert_eq!(lines[1], "delete table inet t");
    let pos = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap();
    assert!(pos("add set inet t sel-1") < pos("add element inet t sel-1"));
    assert!(pos("add chain inet t pol-in-x/p") < pos("add rule inet t pol-in-x/p"));
    assert!(pos("add element") < pos("hook forward priority filter ;"));
    assert!(
        lines
            .last()
            .unwrap()
            .contains("ip daddr vmap @ingress-pods")
    );
    let refill = full_transaction(&Base::new("t"), [&r], Rebuild::Refill, &{
        let mut o = Rendered::default();
        o.chains.insert("pod-in-x/gone".into(), vec![]);
        o.counters.insert("drop-in-x/gone".into());
        o
    })
    .into_text();
    let lines: Vec<&str> = refill.lines().collect();
    assert_eq!(
        &lines[..10],
        &[
            "add table inet t",
            "flush table inet t",
            // The verdict maps still point at pod chains: emptied before any chain goes.
            "add map inet t ingress-pods { type ipv4_addr : verdict ; }",
            "add map inet t egress-pods { type ipv4_addr : verdict ; }",
            "flush map inet t ingress-pods",
            "flush map inet t egress-pods",
            // Declared first, so one already gone (by hand) does not fail the refill.
            "add chain inet t pod-in-x/gone",
            "delete chain inet t pod-in-x/gone",
            "add counter inet t drop-in-x/gone",
            "delete counter inet t drop-in-x/gone",
        ]
    );
}

#[test]
fn incremental_steps_are_ordered_for_the_kernel() {
    let mut old = Rendered::default();
    old.chains
        .insert("pod-in-x/a".into(), vec!["jump pol-in-x/old".into()]);
    old.chains.insert(
        "pol-in-x/old".into(),
        vec!["ip saddr @sel-old accept".into()],
    );
    old.sets
        .insert("sel-old".into(), "{ type ipv4_addr ; }".into());
    old.elements
        .insert(("sel-old".into(), "10.0.0.9".into()), None);
    old.elements.insert(
        ("ingress-pods".into(), "10.0.0.1".into()),
        Some("goto pod-in-x/a".into()),
    );
    old.counters.insert("drop-in-x/old".into());
    let mut new = Rendered::default();
    new.chains
        .insert("pod-in-x/a".into(), vec!["jump pol-in-x/new".into()]);
    new.chains.insert(
        "pol-in-x/new".into(),
        vec!["ip saddr @sel-new accept".into()],
    );
    new.sets
        .insert("sel-new".into(), "{ type ipv4_addr ; }".into());
    new.elements
        .insert(("sel-new".into(), "10.0.0.8".into()), None);
    new.elements.insert(
        ("ingress-pods".into(), "10.0.0.1".into()),
        Some("goto pod-in-x/a".into()),
    );
    new.counters.insert("drop-in-x/new".into());
    let mut plan = Plan::default();
    plan.diff(&old, &new);
    let text = plan.transaction("t").into_text();
    let lines: Vec<&str> = text.lines().collect();
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| *l == needle)
            .unwrap_or_else(|| panic!("{needle} missing from:\n{text}"))
    };
    assert!(pos("flush chain inet t pod-in-x/a") < pos("delete chain inet t pol-in-x/old"));
    assert!(pos("flush chain inet t pol-in-x/old") < pos("delete set inet t sel-old"));
    assert!(pos("flush chain inet t pol-in-x/old") < pos("delete counter inet t drop-in-x/old"));
    assert!(
        pos("add set inet t sel-new { type ipv4_addr ; }")
            < pos("add rule inet t pol-in-x/new ip saddr @sel-new accept")
    );
    assert!(
        pos("add chain inet t pol-in-x/new") < pos("add rule inet t pod-in-x/a jump pol-in-x/new")
    );
    assert!(
        pos("add rule inet t pol-in-x/new ip saddr @sel-new accept")
            < pos("add element inet t sel-new { 10.0.0.8 }")
    );
    assert!(
        !text.contains("delete element inet t sel-old"),
        "elements go with their set"
    );
    assert!(
        !text.contains("ingress-pods"),
        "unchanged map entries are left alone"
    );
}

/// Whatever the policies: no VXLAN from pods (to any node, its own included) and no IPv6 across
/// the pods' bridge (the review reached isolated pods both ways).
#[test]
fn guards_stop_tunnel_injection_and_unjudged_ipv6() {
    let text = full_transaction(
        &Base::new("t"),
        [&Rendered::default()],
        Rebuild::Replace,
        &Rendered::default(),
    )
    .into_text();
    for rule in [
        "add chain inet t guard-forward { type filter hook forward priority filter - 10 ; policy accept ; }",
        "add rule inet t guard-forward udp dport 4789 counter drop",
        "add rule inet t guard-forward meta nfproto ipv6 meta iifkind \"bridge\" counter drop",
        "add rule inet t guard-forward meta nfproto ipv6 meta oifkind \"bridge\" counter drop",
        "add chain inet t guard-input { type filter hook input priority filter - 10 ; policy accept ; }",
        "add rule inet t guard-input meta iifkind \"bridge\" udp dport 4789 counter drop",
    ] {
        assert!(
            text.lines().any(|l| l == rule),
            "missing {rule:?} in:\n{text}"
        );
    }
}

#[test]
fn the_hold_is_the_plugins_table_and_no_rebuild_empties_it() {
    let base = Base::new(DEFAULT_TABLE);
    assert_eq!(
        base.pending_table(),
        podnet_types::names::POLICY_PENDING_TABLE,
        "the CNI plugin marks addresses in this table"
    );
    for how in [Rebuild::Replace, Rebuild::Refill] {
        let text = full_transaction(&base, [], how, &Rendered::default()).into_text();
        assert!(text.contains(
            "add chain inet podnet-policy-pending hold { type filter hook forward priority filter - 5"
        ));
        assert!(
            text.contains("add rule inet podnet-policy-pending hold ip saddr @pods counter drop")
        );
        assert!(
            text.contains("add rule inet podnet-policy-pending hold ip daddr @pods counter drop")
        );
        // Marks made by the plugin survive: the set is never flushed nor the table deleted.
        assert!(
            !text.contains("delete table inet podnet-policy-pending"),
            "{text}"
        );
        assert!(
            !text.contains("flush set inet podnet-policy-pending"),
            "{text}"
        );
        assert!(
            !text.contains("flush table inet podnet-policy-pending"),
            "{text}"
        );
    }
    let mut tx = Transaction::new("inet", DEFAULT_TABLE);
    clear_pending(&mut tx, &base, "10.0.0.5".parse().unwrap());
    assert_eq!(
        tx.text(),
        "add element inet podnet-policy-pending pods { 10.0.0.5 }\n\
         delete element inet podnet-policy-pending pods { 10.0.0.5 }\n"
    );
}
